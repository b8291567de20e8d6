package transfer

// Sending at the deadline (issue 17: a person asked for files sends
// "until the deadline or until they press Done"). A request whose person
// uploaded files but never pressed Done is sent when its deadline passes:
// the purge round (Purge) first sends every such request through finish,
// the one finish path of Done (malware scan, the requester's mail, the
// audit entry transfer.finish with at=deadline), dropping uploads that
// were not complete. Only then does it purge what expired, so the draft
// is sent rather than erased.
//
// Two instances may do this at once: finish locks the transfer's row and
// then the request's (and marks each with a conditional update), so one
// of them sends it and the other finds it sent (ECONFLICT) and moves on.

import (
	"context"
	"time"

	"github.com/kluis-nl/kluis"
	"github.com/kluis-nl/kluis/internal/audit"
	"github.com/kluis-nl/kluis/internal/store"
)

// deadlineBatch is how many requests one query of sendAtDeadline lists.
const deadlineBatch = 200

// sendAtDeadline sends the upload of every request whose deadline is at
// or before now and that was never sent. A request it cannot send is
// logged and left; its draft is then purged as any expired one (what
// breaks a send here, the database or the blob store, breaks the purge
// too). Returns how many it sent.
func (s *Service) sendAtDeadline(ctx context.Context, now time.Time) (int, error) {
	ctx = audit.WithActor(ctx, audit.System)
	sent := 0
	tried := map[string]bool{}
	for {
		due, err := s.db.FileRequestsDueAtDeadline(ctx, now, deadlineBatch)
		if err != nil {
			return sent, err
		}
		fresh := 0
		for _, d := range due {
			if tried[d.RequestID] {
				continue
			}
			tried[d.RequestID] = true
			fresh++
			ok, err := s.sendRequestAtDeadline(ctx, d)
			if err != nil {
				if ctx.Err() != nil {
					return sent, ctx.Err()
				}
				s.log.Error("file request: sending at the deadline failed", "request", d.RequestID, "transfer", d.TransferID, "err", err)
				continue
			}
			if ok {
				sent++
			}
		}
		if len(due) < deadlineBatch || fresh == 0 {
			return sent, nil
		}
	}
}

// sendRequestAtDeadline sends one request's upload at its deadline; false
// (and no error) if there was nothing to send or it was sent (or revoked)
// meanwhile, by another instance or its person. A file the malware scan
// refuses is removed (and kept in the transfer's label), and the rest is
// sent: nobody is there to choose again.
func (s *Service) sendRequestAtDeadline(ctx context.Context, d store.DeadlineDue) (bool, error) {
	for range MaxRequestFiles + 2 {
		_, err := s.finish(ctx, Owner{TransferID: d.TransferID}, "", nil, true)
		switch kluis.ErrorCode(err) {
		case "":
			s.log.Info("file request sent at its deadline", "request", d.RequestID, "transfer", d.TransferID)
			return true, nil
		case kluis.EINFECTED, kluis.EUNSCANNABLE, kluis.ESCANPENDING:
			// A refused file is gone, or a file was completed during the
			// scan: finish again with what is left.
			continue
		case kluis.ECONFLICT, kluis.EINVALID, kluis.EREVOKED, kluis.EEXPIRED, kluis.ENOTFOUND:
			// Sent or revoked meanwhile, or nothing to send.
			return false, nil
		default:
			return false, err
		}
	}
	return false, kluis.Errorf(kluis.ECONFLICT, "The upload could not be sent at the deadline.")
}
