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
//   - A tus POST whose 201 was lost (the process was killed, or the
//     connection broke, after the file's row was committed) leaves an
//     upload that its client cannot name; the client creates another one.
//     An incomplete tus upload that holds no byte, that nobody has touched
//     for an upload lease and whose lease nobody holds is dropped here: a
//     client that has the 201 writes at once (or, for an empty file, tusd
//     completes it before answering), and one that calls Finish has no
//     writing left to do. An upload that holds bytes is never dropped, as
//     its client may resume it at any time; so a POST that carried data
//     (tus creation-with-upload) and lost its answer still blocks Finish.
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
		h, err := s.head(f)
		if err != nil {
			return err
		}
		if h.Count == 0 {
			if err := s.dropUnnamedUpload(ctx, f); err != nil {
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

// dropUnnamedUpload deletes an incomplete tus upload that holds no byte
// once nothing suggests a client is about to write it: it is older than an
// upload lease, and taking its lease shows that no request holds it. The
// delete is conditional on the revision read, so a segment committed or a
// completion in between keeps the file.
func (s *Service) dropUnnamedUpload(ctx context.Context, f *store.FileRow) error {
	if s.now().Sub(f.UpdatedAt) < s.leaseTTL() {
		return nil // just created: its client may be about to write
	}
	// A request holds the lease (a PATCH before its first commit): leave
	// it be, without asking it to let go as AcquireLease would.
	if l, err := s.db.CurrentLease(ctx, f.ID); err == nil && l.ExpiresAt.After(s.now()) {
		return nil
	} else if err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	token := newLeaseToken()
	if _, err := s.db.AcquireLease(ctx, f.ID, s.holder, token, s.now(), s.leaseTTL()); err != nil {
		if errors.Is(err, store.ErrLeaseHeld) {
			return nil // a request holds it; Finish reports it incomplete
		}
		return err
	}
	defer s.db.ReleaseLease(context.WithoutCancel(ctx), f.ID, token)
	if err := s.db.DeleteIncompleteFile(ctx, f.ID, f.Rev); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return nil
		}
		return err
	}
	// A write that failed before its commit may have left a blob.
	if err := s.deletePrefix(context.WithoutCancel(ctx), fmt.Sprintf("t/%s/%s/", f.TransferID, f.ID)); err != nil {
		return err
	}
	s.log.Info("removed an upload that never received a byte and that no client can name", "transfer", f.TransferID, "file", f.ID)
	return nil
}
