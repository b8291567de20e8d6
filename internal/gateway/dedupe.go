package gateway

import (
	"context"
	"crypto/sha256"
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/kluis-nl/kluis"
	"github.com/kluis-nl/kluis/internal/secret"
	"github.com/kluis-nl/kluis/internal/store"
	"github.com/kluis-nl/kluis/internal/transfer"
)

// Crash safety and dedupe (issue 18 item 4).
//
// A mail is answered 250 only after its transfer is finished, and that is
// a committed transaction (SQLite with synchronous=FULL, or PostgreSQL):
// until then the mail server still has the mail and sends it again. Two
// things could make a second transfer of the same mail: the 250 is lost
// after the commit (the connection breaks), or Kluis stops between making
// the draft and finishing it, leaving a draft and perhaps the sender's
// confirmation mail. So each mail with a Message-ID is claimed, by its
// sender and the SHA-256 of its Message-ID, in gateway_messages before
// anything is made:
//
//   - a mail that was taken (its transfer finished) within DedupeWindow is
//     answered 250 again and not taken twice;
//   - a mail another delivery is taking just now is answered 451 (the mail
//     server tries again later);
//   - a claim whose gateway stopped runs out (ClaimLease, renewed while the
//     mail streams in): the next delivery takes it over, erases the draft
//     left behind (its waiting password with it), or, when that transfer
//     was in fact finished, answers 250 without taking the mail again;
//   - a refused mail's claim is released, so the mail sent again is judged
//     again.
//
// A mail without a Message-ID cannot be recognised when it comes again; it
// is taken every time (the organisation's mail server adds one).

// errDuplicate ends the taking of a mail that was taken already: answered
// 250, nothing made.
var errDuplicate = errors.New("gateway: this mail was taken already")

// claim is the hold of one taking on its mail's row.
type claim struct {
	g        *Gateway
	email    string
	hash     []byte
	claimant string
	stop     chan struct{}
	done     sync.WaitGroup
}

// messageHash is the key of a mail: its Message-ID as written, without
// the angle brackets, hashed (the row need not show it).
func messageHash(messageID string) []byte {
	id := strings.TrimSpace(messageID)
	id = strings.TrimSuffix(strings.TrimPrefix(id, "<"), ">")
	if id == "" {
		return nil
	}
	h := sha256.Sum256([]byte(id))
	return h[:]
}

// claim claims the mail for this taking. It returns errDuplicate for a
// mail taken already, an SMTP 451 for one being taken elsewhere, nil
// when this taking may go on (t.claim is set, nil for a mail without a
// Message-ID).
func (t *taking) claimMail(messageID string) error {
	hash := messageHash(messageID)
	if hash == nil {
		t.g.log.Info("mail gateway: a mail without a Message-ID cannot be recognised if it comes again", "action", "gateway.take", "actor", t.env.Actor)
		return nil
	}
	g := t.g
	c := &claim{g: g, email: t.env.From, hash: hash, claimant: secret.NewToken()}
	var m *store.GatewayMessage
	var err error
	for range 3 {
		now := g.now()
		m, err = g.db.ClaimGatewayMessage(t.ctx, c.email, hash, c.claimant, now, now.Add(g.cfg.ClaimLease))
		if !errors.Is(err, store.ErrMessageBusy) || m != nil {
			break
		}
		// Released just now by a refusal: claim again.
	}
	switch {
	case errors.Is(err, store.ErrMessageTaken):
		g.log.Info("mail gateway: the same mail again; not taken twice", "action", "gateway.take", "result", "duplicate",
			"transfer", m.TransferID, "actor", t.env.Actor)
		return errDuplicate
	case errors.Is(err, store.ErrMessageBusy):
		g.log.Info("mail gateway: the same mail is being taken just now", "action", "gateway.take", "result", "busy", "actor", t.env.Actor)
		return smtpErr(451, smtp.EnhancedCode{4, 3, 0}, "Kluis is taking this same mail (the same Message-ID) just now; your mail server will try again.")
	case err != nil:
		return err
	}
	t.claim = c
	if m.TransferID != "" {
		// A gateway that stopped left this transfer behind.
		finished, err := t.leftBehind(m.TransferID)
		if err != nil {
			t.release()
			return err
		}
		if finished {
			if err := g.db.GatewayMessageTaken(t.ctx, c.email, hash, c.claimant, m.TransferID, g.now()); err != nil {
				return err
			}
			t.claim = nil
			g.log.Info("mail gateway: the same mail again, taken before a stop; not taken twice", "action", "gateway.take", "result", "duplicate",
				"transfer", m.TransferID, "actor", t.env.Actor)
			return errDuplicate
		}
	}
	c.stop = make(chan struct{})
	c.done.Go(c.renew)
	return nil
}

// leftBehind looks at the transfer an earlier, stopped taking of the same
// mail made: a finished one means the mail was taken (true); a draft is
// erased (its waiting password and any confirmation link with it).
func (t *taking) leftBehind(id string) (bool, error) {
	o := transfer.Owner{TransferID: id}
	tr, err := t.g.svc.Transfer(t.ctx, o)
	if kluis.ErrorCode(err) == kluis.ENOTFOUND {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if tr.State != kluis.StateDraft && tr.State != kluis.StateUploading {
		return true, nil
	}
	t.g.log.Warn("mail gateway: erasing the unfinished transfer of a mail whose taking stopped; the mail is taken again",
		"action", "gateway.take", "result", "retake", "transfer", id, "actor", t.env.Actor)
	ctx := context.WithoutCancel(t.ctx)
	if err := t.g.svc.Revoke(ctx, o, ""); err != nil && kluis.ErrorCode(err) != kluis.ECONFLICT {
		return false, err
	}
	if err := t.g.svc.Erase(ctx, o); err != nil && kluis.ErrorCode(err) != kluis.ENOTFOUND {
		return false, err
	}
	return false, nil
}

// renew keeps the claim while the mail streams in.
func (c *claim) renew() {
	tick := time.NewTicker(c.g.cfg.ClaimLease / 4)
	defer tick.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-tick.C:
		}
		err := c.g.db.RenewGatewayMessage(context.Background(), c.email, c.hash, c.claimant, c.g.now().Add(c.g.cfg.ClaimLease))
		if err != nil {
			// Taken over (this gateway stalled past the lease) or the
			// database is away: the end of the mail tells.
			c.g.log.Warn("mail gateway: could not renew the claim on a mail being taken", "err", err)
		}
	}
}

func (c *claim) halt() {
	if c.stop != nil {
		close(c.stop)
		c.done.Wait()
		c.stop = nil
	}
}

// recordTransfer notes the draft in the claim, so that a successor can
// erase it if this gateway stops.
func (t *taking) recordTransfer(id string) error {
	if t.claim == nil {
		return nil
	}
	err := t.g.db.SetGatewayMessageTransfer(t.ctx, t.claim.email, t.claim.hash, t.claim.claimant, id)
	if errors.Is(err, store.ErrConflict) {
		return kluis.Errorf(kluis.EUNAVAILABLE, "Another delivery of this mail took it over.")
	}
	return err
}

// taken records that the mail's transfer is finished.
func (t *taking) taken(id string) {
	c := t.claim
	if c == nil {
		return
	}
	c.halt()
	t.claim = nil
	if err := t.g.db.GatewayMessageTaken(context.WithoutCancel(t.ctx), c.email, c.hash, c.claimant, id, t.g.now()); err != nil {
		// The transfer is finished: a successor that finds this claim
		// run out sees that and does not take the mail again.
		t.g.log.Error("mail gateway: could not record a taken mail", "transfer", id, "err", err)
	}
}

// release gives up the claim of a mail that was not taken.
func (t *taking) release() {
	c := t.claim
	if c == nil {
		return
	}
	c.halt()
	t.claim = nil
	if err := t.g.db.ReleaseGatewayMessage(context.WithoutCancel(t.ctx), c.email, c.hash, c.claimant); err != nil && !errors.Is(err, store.ErrConflict) {
		t.g.log.Error("mail gateway: could not release the claim on a refused mail", "err", err)
	}
}

// Cleanup forgets the mails taken longer than DedupeWindow ago, and the
// subjects of mails whose transfers were sent (ndr.go).
func (g *Gateway) Cleanup(ctx context.Context) error {
	if n, err := g.svc.ForgetMailOrigins(ctx); err != nil {
		return err
	} else if n > 0 {
		g.log.Info("mail gateway: erased the subjects of mails whose transfers were sent", "action", "gateway.origin_erased", "count", n)
	}
	now := g.now()
	n, err := g.db.DeleteOldGatewayMessages(ctx, now.Add(-DedupeWindow), now)
	if err != nil {
		return err
	}
	if n > 0 {
		g.log.Info("mail gateway: forgot mails past the dedupe window", "action", "gateway.dedupe_expired", "count", n)
	}
	return nil
}
