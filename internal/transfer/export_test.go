package transfer

import (
	"context"
)

// LegacyManifest returns file fileID's manifest sealed whole, as versions
// before migration 0009 stored it in files.manifest_sealed (entries
// without Prev), so tests can turn a file back into that form.
func (s *Service) LegacyManifest(ctx context.Context, fileID string) ([]byte, error) {
	f, err := s.db.File(ctx, fileID)
	if err != nil {
		return nil, err
	}
	m, err := s.manifest(ctx, s.db.Q, f)
	if err != nil {
		return nil, err
	}
	for i := range m.Entries {
		m.Entries[i].Prev = nil
	}
	return s.keys.Seal(purposeManifest, f.ID, m.Marshal()), nil
}
