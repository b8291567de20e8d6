package transfer

import (
	"context"
	"errors"
	"fmt"

	"github.com/kluis-nl/kluis"
	"github.com/kluis-nl/kluis/internal/segment"
	"github.com/kluis-nl/kluis/internal/store"
)

// A file's manifest is stored one entry per segments row (sealed with
// purposeSegment, bound to the row id FILE:INDEX) plus a head in the file
// row (purposeHead, bound to the file id); see package segment. A commit
// writes one entry and the head, whatever came before. Files written
// before migration 0009 hold the whole manifest in files.manifest_sealed
// (purposeManifest) instead: they are read as they are, and moved to rows
// when a segment is added to them (convertLegacy).

func integrityError(err error) error {
	return &kluis.Error{Code: kluis.EINTEGRITY, Message: "Stored data failed verification.", Err: err}
}

// head returns the upload state of f: all that tus HEAD, a segment commit
// and completing the file need. It never reads the entries.
func (s *Service) head(f *store.FileRow) (segment.Head, error) {
	if f.HeadSealed == nil {
		m, err := s.legacyManifest(f)
		if err != nil {
			return segment.Head{}, err
		}
		return m.Head(), nil
	}
	b, err := s.keys.Open(purposeHead, f.ID, f.HeadSealed)
	if err != nil {
		return segment.Head{}, integrityError(err)
	}
	h, err := segment.UnmarshalHead(b)
	if err != nil {
		return segment.Head{}, integrityError(err)
	}
	return h, nil
}

// manifest reads every entry of f and checks them against its head (see
// segment.Assemble): for downloads, Finish and the collector.
//
// f was read before the entries, outside any transaction the entries are
// read in, so a segment committed in between (a file being written while
// the collector or Finish looks at it) pairs an older head with newer
// entries. That is no integrity failure: when the entries do not fit, the
// file row is read again, and only a failure at an unchanged revision
// counts. The collector used to take such a file for unreadable and keep
// its orphans until the next collect; Finish failed with EINTEGRITY.
func (s *Service) manifest(ctx context.Context, q store.Q, f *store.FileRow) (*segment.Manifest, error) {
	for attempt := 1; ; attempt++ {
		m, err := s.readManifest(ctx, q, f)
		if err == nil || kluis.ErrorCode(err) != kluis.EINTEGRITY || attempt == 5 {
			return m, err
		}
		now, ferr := q.File(ctx, f.ID)
		if ferr != nil || now.Rev == f.Rev {
			return m, err
		}
		f = now
	}
}

func (s *Service) readManifest(ctx context.Context, q store.Q, f *store.FileRow) (*segment.Manifest, error) {
	if f.HeadSealed == nil {
		return s.legacyManifest(f)
	}
	h, err := s.head(f)
	if err != nil {
		return nil, err
	}
	rows, err := q.Segments(ctx, f.ID)
	if err != nil {
		return nil, err
	}
	entries := make([]segment.Entry, 0, len(rows))
	for i, r := range rows {
		// The seal binds the row id, so a row copied to another file or
		// index does not open; the index read must be the one sealed.
		if r.Index != i || r.ID != store.SegmentID(f.ID, i) {
			return nil, integrityError(fmt.Errorf("file %s: segment row %q where entry %d belongs", f.ID, r.ID, i))
		}
		b, err := s.keys.Open(purposeSegment, r.ID, r.EntrySealed)
		if err != nil {
			return nil, integrityError(fmt.Errorf("segment entry %s: %w", r.ID, err))
		}
		e, err := segment.UnmarshalEntry(b)
		if err != nil {
			return nil, integrityError(fmt.Errorf("segment entry %s: %w", r.ID, err))
		}
		entries = append(entries, e)
	}
	m, err := segment.Assemble(h, entries)
	if err != nil {
		return nil, integrityError(fmt.Errorf("file %s: %w", f.ID, err))
	}
	return m, nil
}

// legacyManifest opens a manifest stored whole (before migration 0009).
func (s *Service) legacyManifest(f *store.FileRow) (*segment.Manifest, error) {
	if f.ManifestSealed == nil {
		return nil, kluis.Errorf(kluis.EINTEGRITY, "This file is no longer available.")
	}
	b, err := s.keys.Open(purposeManifest, f.ID, f.ManifestSealed)
	if err != nil {
		return nil, integrityError(err)
	}
	m, err := segment.Unmarshal(b)
	if err != nil {
		return nil, integrityError(err)
	}
	return m, nil
}

// convertLegacy moves an unfinished file stored with a whole manifest to
// entry rows, so that its next segments commit in O(1). Compare-and-swap
// on the revision: a file another request converted or wrote meanwhile
// gives ECONFLICT, and the client resumes from the current offset.
func (s *Service) convertLegacy(ctx context.Context, f *store.FileRow) error {
	m, err := s.legacyManifest(f)
	if err != nil {
		return err
	}
	h := m.Head() // also links the entries (Prev)
	rows := make([]store.SegmentRow, len(m.Entries))
	for i, e := range m.Entries {
		id := store.SegmentID(f.ID, i)
		rows[i] = store.SegmentRow{ID: id, FileID: f.ID, Index: i, EntrySealed: s.keys.Seal(purposeSegment, id, segment.MarshalEntry(e))}
	}
	err = s.db.ConvertManifest(ctx, f.ID, f.Rev, rows, s.keys.Seal(purposeHead, f.ID, h.Marshal()), s.now())
	if errors.Is(err, store.ErrConflict) {
		return kluis.Errorf(kluis.ECONFLICT, "This upload was changed by another request. Ask the server for the current offset and resume.")
	}
	if err == nil {
		s.log.Info("manifest moved to segment rows", "file", f.ID, "segments", len(rows))
	}
	return err
}
