package transfer

import (
	"context"

	"github.com/kluis-nl/kluis"
)

// settleUploads finishes what a crash left half done in the transfer's
// uploads, so that Finish judges the files as their clients see them. A
// process killed after an upload's last segment was committed and before
// the file was marked complete (tusd completes a file in a second step)
// left a file that holds every byte but is not complete; its client has
// seen the whole length in HEAD and will send nothing more, so it is
// completed here. Only a file with a declared size of at least one byte
// qualifies: an empty tus upload is completed in its creation request,
// whose client never had an answer if that step did not happen.
func (s *Service) settleUploads(ctx context.Context, o Owner) error {
	files, err := s.db.Files(ctx, o.TransferID)
	if err != nil {
		return err
	}
	for _, f := range files {
		if f.Complete {
			continue
		}
		var meta fileMeta
		if err := s.openJSON(purposeFileMeta, f.ID, f.MetaSealed, &meta); err != nil {
			return err
		}
		man, err := s.manifest(f)
		if err != nil {
			return err
		}
		if meta.Size <= 0 || man.Size() != meta.Size {
			continue
		}
		// A request completing it at the same moment wins the
		// compare-and-swap; either way the file ends complete.
		if _, err := s.CompleteFile(ctx, o, f.ID); err != nil && kluis.ErrorCode(err) != kluis.ECONFLICT {
			return err
		}
		s.log.Info("completed an upload whose last step a crash cut off", "transfer", o.TransferID, "file", f.ID)
	}
	return nil
}
