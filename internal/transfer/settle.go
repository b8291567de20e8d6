package transfer

import (
	"context"
	"errors"
	"fmt"

	"github.com/kluis-nl/kluis"
	"github.com/kluis-nl/kluis/internal/store"
)

// settleUploads finishes what a crash left half done in the transfer's
// uploads, so that Finish judges the files as their clients see them:
//
//   - A process killed after a tus upload's last segment was committed and
//     before the file was marked complete (tusd completes a file in a
//     second step) left a file that holds every byte but is not complete;
//     its client has seen the whole length in HEAD and will send nothing
//     more, so it is completed here. Only a file with a declared size of at
//     least one byte qualifies: an empty tus upload is completed in its
//     creation request, whose client never had an answer if that step did
//     not happen.
//   - A plain upload that did not complete keeps nothing (docs/api.md). A
//     failure its request sees deletes the file at once; a process killed
//     during the request left the file and its segments, which nobody can
//     name to resume or remove. Such a file is dropped here once no request
//     writes it: a plain upload holds its upload lease for the whole
//     request, so taking the lease proves the writer gone (on SQLite at
//     once after the restart, which clears the leases; on PostgreSQL when
//     the dead instance's lease has run out).
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
		if meta.Plain {
			if err := s.dropFailedPlain(ctx, f); err != nil {
				return err
			}
			continue
		}
		man, err := s.manifest(ctx, s.db.Q, f)
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

// dropFailedPlain deletes an incomplete plain upload that no request
// writes: its row, then its segments (a crash in between leaves blobs that
// no manifest lists, which the collector removes).
func (s *Service) dropFailedPlain(ctx context.Context, f *store.FileRow) error {
	token := newLeaseToken()
	if _, err := s.db.AcquireLease(ctx, f.ID, s.holder, token, s.now(), s.leaseTTL()); err != nil {
		if errors.Is(err, store.ErrLeaseHeld) {
			return nil // still being written; Finish reports it incomplete
		}
		return err
	}
	defer s.db.ReleaseLease(context.WithoutCancel(ctx), f.ID, token)
	if err := s.db.DeleteFile(ctx, f.ID); err != nil {
		return err
	}
	if err := s.deletePrefix(context.WithoutCancel(ctx), fmt.Sprintf("t/%s/%s/", f.TransferID, f.ID)); err != nil {
		return err
	}
	s.log.Info("removed a plain upload that a crash cut off", "transfer", f.TransferID, "file", f.ID)
	return nil
}
