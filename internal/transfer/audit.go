package transfer

import (
	"context"
	"errors"
	"fmt"

	"github.com/kluis-nl/kluis"
	"github.com/kluis-nl/kluis/internal/audit"
	"github.com/kluis-nl/kluis/internal/store"
)

// actorOr is the request's actor (set by the API after authentication),
// else fallback.
func actorOr(ctx context.Context, fallback string) string {
	if a := audit.Actor(ctx); a != "" {
		return a
	}
	return fallback
}

// Erase deletes the minimal record of a finished transfer at once, as its
// sender's right to erasure: the transfer row with its recipients (and
// their addresses), download records and any remaining files, blobs first.
// A transfer that recipients can still open must be revoked first. The
// audit entry keeps only the transfer id.
func (s *Service) Erase(ctx context.Context, o Owner) error {
	t, err := s.db.Transfer(ctx, o.TransferID)
	if errors.Is(err, store.ErrNotFound) {
		return kluis.Errorf(kluis.ENOTFOUND, "This transfer does not exist.")
	}
	if err != nil {
		return err
	}
	if t.RevokedAt == nil && t.PurgedAt == nil && s.now().Before(t.ExpiresAt) {
		return kluis.Errorf(kluis.ECONFLICT, "This transfer is still available to its recipients. Revoke it first, then erase it.")
	}
	// The deletion must finish once begun: a client that goes away does
	// not leave half of it.
	ctx = context.WithoutCancel(ctx)
	if err := s.deletePrefix(ctx, "t/"+t.ID+"/"); err != nil {
		return fmt.Errorf("erase blobs of %s: %w", t.ID, err)
	}
	tx, err := s.db.BeginTx(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if err := tx.EraseTransfer(ctx, t.ID); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return kluis.Errorf(kluis.ENOTFOUND, "This transfer does not exist.")
		}
		return err
	}
	// Only the kind of actor: the record being erased named the sender.
	actor := audit.UploadToken
	if a := audit.Actor(ctx); a != audit.UploadToken && a != "" {
		actor = "sender"
	}
	if err := s.audit.Record(ctx, tx.Q, audit.Event{Actor: actor, Action: audit.TransferErase, Object: t.ID}); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	// A segment committed by a request still in flight; list once more.
	if err := s.deletePrefix(ctx, "t/"+t.ID+"/"); err != nil {
		return fmt.Errorf("erase blobs of %s: %w", t.ID, err)
	}
	if err := s.db.Checkpoint(ctx); err != nil {
		s.log.Error("checkpoint after erase failed", "err", err)
	}
	s.log.Info("transfer erased by its sender", "transfer", t.ID)
	return nil
}
