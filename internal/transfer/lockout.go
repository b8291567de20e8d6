package transfer

// The lock-out of a recipient's access: one counter and one escalating
// lock for every way a recipient proves who they are.
//
// Every try of a recipient (the transfer password today; an SMS code or
// an OpenID login as second factors later) goes through Attempt: reserve
// it (BeginAttempt, or Unlock for the password) before it is checked, then
// record it as failed (Fail) or right (Succeed). All kinds count in the
// same per-recipient counter and lead to the same lock-out, so guessing
// one factor cannot be combined with guessing another to get more tries.
// A new factor must use Attempt and nothing else.
//
// The lock escalates: every MaxFailures wrong attempts in a row lock the
// access, the n-th time for Lockouts[n-1] (by default 15 minutes, then an
// hour, then a day, and a day for every further lock); after HoldAfter
// wrong attempts in all (50) it stays locked until the sender unblocks it,
// from My transfers or with the one-time link in the lock-out mail, in
// their own verified session. The sender is mailed at every lock. A
// recipient who opens the transfer resets it all.

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/kluis-nl/kluis"
	"github.com/kluis-nl/kluis/internal/audit"
	"github.com/kluis-nl/kluis/internal/secret"
	"github.com/kluis-nl/kluis/internal/store"
)

// DefaultLockouts is how long the successive locks last by default: 15
// minutes, an hour, then a day for each further lock.
func DefaultLockouts() []time.Duration {
	return []time.Duration{15 * time.Minute, time.Hour, 24 * time.Hour}
}

// AttemptKind is what a recipient tried.
type AttemptKind string

const (
	AttemptPassword AttemptKind = "password" // the transfer password or link secret
	AttemptSMS      AttemptKind = "sms"      // a code sent by SMS (second factor)
	AttemptLogin    AttemptKind = "login"    // an OpenID login (second factor)
)

// auditResult is the audit result of a failed attempt of this kind.
func (k AttemptKind) auditResult() string {
	switch k {
	case AttemptPassword:
		return audit.WrongPassword
	case AttemptSMS:
		return audit.WrongCode
	default:
		return audit.Refused
	}
}

// Attempt is one reserved try of a recipient. Call Fail or Succeed once
// the try is checked. A reserved attempt counts as failed until Succeed
// says otherwise, so a crash in between errs on the safe side.
type Attempt struct {
	s    *Service
	t    *store.TransferRow
	r    *store.RecipientRow // as counted: Failures and FailTotal of this try
	kind AttemptKind
}

// BeginAttempt reserves a try of kind for the recipient of accessID,
// before it is checked, in the statement that checks the lock: parallel
// tries never get past the limit. Returns ENOTFOUND, EEXPIRED or EREVOKED
// as Lookup does, and ELOCKED (with the date, or without one while the
// access waits for the sender) when the access is locked.
func (s *Service) BeginAttempt(ctx context.Context, accessID string, kind AttemptKind) (*Attempt, error) {
	r, t, err := s.recipientByAccess(ctx, s.db.Q, accessID)
	if err != nil {
		return nil, err
	}
	if err := s.openable(t, r); err != nil {
		return nil, err
	}
	return s.reserve(ctx, t, r, kind)
}

// reserve counts a try of r, or answers ELOCKED.
func (s *Service) reserve(ctx context.Context, t *store.TransferRow, r *store.RecipientRow, kind AttemptKind) (*Attempt, error) {
	counted, err := s.db.ReserveAttempt(ctx, r.ID, s.cfg.MaxFailures, s.cfg.HoldAfter, s.now())
	if errors.Is(err, store.ErrNotFound) {
		if fresh, ferr := s.db.Recipient(ctx, r.ID); ferr == nil {
			r = fresh
		}
		s.audit.Log(ctx, audit.Event{Actor: audit.Recipient(r.ID), Action: audit.RecipientUnlock, Object: t.ID, Result: audit.Locked,
			Detail: "kind=" + string(kind)})
		s.met().Unlock(UnlockLocked)
		// The count is at a limit and yet nothing locks the access: the
		// tries that reached it were cut off between their reservation
		// and their check (a killed process, an answer that could not be
		// written), and counted as wrong, as a reserved try does until it
		// succeeds. Take the lock the last of them would have taken, with
		// its end and the sender's mail, instead of refusing for ever
		// without either.
		hold := s.cfg.HoldAfter > 0 && r.FailTotal >= s.cfg.HoldAfter
		if !locked(r, s.now()) && (r.Failures >= s.cfg.MaxFailures || hold) {
			return nil, s.lock(context.WithoutCancel(ctx), t, r, r.Failures, r.FailTotal, hold)
		}
		return nil, s.lockedError(r)
	}
	if err != nil {
		return nil, err
	}
	return &Attempt{s: s, t: t, r: counted, kind: kind}, nil
}

// Fail records that the try was wrong. It returns the error to answer:
// EWRONGSECRET (the caller may say so in its own words), or ELOCKED when
// this try locked the access. The try that locks tells the sender, in
// the same transaction as the lock.
func (a *Attempt) Fail(ctx context.Context) error {
	wrong := kluis.Errorf(kluis.EWRONGSECRET, "The password is not correct.")
	if a.kind != AttemptPassword {
		wrong = kluis.Errorf(kluis.EWRONGSECRET, "That is not correct.")
	}
	return a.s.failure(ctx, a, wrong)
}

// Succeed records that the try was right: it no longer counts. (Opening
// the transfer, as Unlock does after the password, clears the whole
// count.)
func (a *Attempt) Succeed(ctx context.Context) error {
	return a.s.db.UncountAttempt(ctx, a.r.ID)
}

// lockoutFor is how long the lock after `before` earlier locks lasts.
func (s *Service) lockoutFor(before int) time.Duration {
	ls := s.cfg.Lockouts
	if len(ls) == 0 {
		ls = DefaultLockouts()
	}
	return ls[min(max(before, 0), len(ls)-1)]
}

// failure handles a wrong try. The try whose number reaches MaxFailures
// locks the access for the next step of the schedule; the one that reaches
// HoldAfter in all locks it until the sender lifts it. Only that one try
// locks (the store's Lock is conditional on its count), and tells the
// sender, with a one-time unblock link.
func (s *Service) failure(ctx context.Context, a *Attempt, wrong error) error {
	t, r := a.t, a.r
	n, total := r.Failures, r.FailTotal
	msg := "wrong transfer password"
	if a.kind != AttemptPassword {
		msg = "wrong recipient attempt"
	}
	s.log.Warn(msg, "transfer", r.TransferID, "recipient", r.ID, "kind", string(a.kind), "failures", n, "total", total)
	s.audit.Log(ctx, audit.Event{Actor: audit.Recipient(r.ID), Action: audit.RecipientUnlockFail, Object: r.TransferID,
		Result: a.kind.auditResult(), Detail: fmt.Sprintf("kind=%s failures=%d total=%d", a.kind, n, total)})
	if a.kind == AttemptPassword {
		s.met().Unlock(UnlockWrongPassword)
	}
	hold := s.cfg.HoldAfter > 0 && total >= s.cfg.HoldAfter
	if n < s.cfg.MaxFailures && !hold {
		return wrong
	}
	return s.lock(ctx, t, r, n, total, hold)
}

// lock locks r's access after the wrong try number n (total in all): for
// the next step of the schedule, or until the sender lifts it (hold). Only
// the try whose count is still n (total) locks, and tells the sender, with
// a one-time unblock link. It returns the ELOCKED to answer.
func (s *Service) lock(ctx context.Context, t *store.TransferRow, r *store.RecipientRow, n, total int, hold bool) error {
	now := s.now()
	var until *time.Time
	if !hold {
		u := now.Add(s.lockoutFor(r.Lockouts))
		until = &u
	}
	token := secret.NewToken()
	tx, err := s.db.BeginTx(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	didLock, err := tx.Lock(ctx, r.ID, n, total, until, now, secret.HashToken(token))
	if err != nil {
		return err
	}
	detail := "recipient=" + strconv.FormatInt(r.ID, 10) + " lock=" + strconv.Itoa(r.Lockouts+1) + " total=" + strconv.Itoa(total)
	if until != nil {
		detail += " until=" + until.Format(time.RFC3339)
	} else {
		detail += " until=sender"
	}
	if didLock {
		if err := s.notifyLockout(ctx, tx, t, r, until, total, token); err != nil {
			return err
		}
		if err := s.audit.Record(ctx, tx.Q, audit.Event{Actor: audit.System, Action: audit.RecipientLocked, Object: r.TransferID,
			Result: audit.Locked, Detail: detail}); err != nil {
			return err
		}
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	if didLock {
		s.wakeMailer()
		s.met().Lockout()
		s.log.Warn("recipient locked out", "transfer", r.TransferID, "recipient", r.ID, "lock", r.Lockouts+1, "held", until == nil, "until", until)
	}
	if fresh, err := s.db.Recipient(ctx, r.ID); err == nil && (fresh.HeldAt != nil || fresh.LockedUntil != nil) {
		return s.lockedError(fresh)
	}
	r.LockedUntil = until
	if until == nil {
		r.HeldAt = &now
	}
	return s.lockedError(r)
}

// locked reports whether r is locked at now.
func locked(r *store.RecipientRow, now time.Time) bool {
	return r.HeldAt != nil || (r.LockedUntil != nil && now.Before(*r.LockedUntil))
}

// lockedError is the answer while r is locked: with the date it ends, or
// without one while it waits for the sender.
func (s *Service) lockedError(r *store.RecipientRow) error {
	if r.HeldAt != nil {
		return &kluis.Error{Code: kluis.ELOCKED, Message: "Too many wrong attempts. Access to this transfer stays blocked until the sender unblocks it; the sender has been told. Contact the sender."}
	}
	return &kluis.Error{Code: kluis.ELOCKED, Message: "Too many wrong attempts. Access to this transfer is blocked for now; the sender has been told. Try again later or contact the sender.", At: r.LockedUntil}
}

// LiftLock is the sender's unblocking of one recipient's access (My
// transfers, in the sender's own session: o comes from AuthorizeSender).
// It clears the count and the lock. Returns ENOTFOUND if that recipient of
// the transfer is not locked now.
func (s *Service) LiftLock(ctx context.Context, o Owner, recipientID int64) error {
	if recipientID <= 0 {
		return kluis.Errorf(kluis.ENOTFOUND, "This recipient's access is not blocked.")
	}
	_, err := s.liftLock(ctx, o, recipientID, nil, "list")
	return err
}

// LiftLockWithLink is the sender's unblocking with the one-time link of a
// lock-out mail, in the sender's own session (o from AuthorizeSender). The
// link works once, and only for the latest lock of its recipient. Returns
// the recipient's address, or ENOTFOUND when the link does not (or no
// longer) work.
func (s *Service) LiftLockWithLink(ctx context.Context, o Owner, token string) (string, error) {
	if token == "" {
		return "", errLinkUsed()
	}
	return s.liftLock(ctx, o, 0, secret.HashToken(token), "mail")
}

// LockedByLink returns the address of the recipient whose access the
// one-time link of a lock-out mail would unblock (for the confirmation
// page), or ENOTFOUND when the link does not (or no longer) work.
func (s *Service) LockedByLink(ctx context.Context, o Owner, token string) (string, error) {
	if token == "" {
		return "", errLinkUsed()
	}
	r, err := s.db.LockedByLink(ctx, o.TransferID, secret.HashToken(token))
	if errors.Is(err, store.ErrNotFound) || (err == nil && !locked(r, s.now())) {
		return "", errLinkUsed()
	}
	if err != nil {
		return "", err
	}
	return r.Address, nil
}

func errLinkUsed() error {
	return kluis.Errorf(kluis.ENOTFOUND, "This unblock link does not work (any more): it was used, a later lock-out mail replaced it, or the lock has ended.")
}

func (s *Service) liftLock(ctx context.Context, o Owner, recipientID int64, unlockHash []byte, via string) (string, error) {
	now := s.now()
	tx, err := s.db.BeginTx(ctx)
	if err != nil {
		return "", err
	}
	defer tx.Rollback()
	// An expired, revoked or purged transfer has nothing to unblock; the
	// shared lock keeps a revoke from passing in between.
	if t, err := tx.TransferForShare(ctx, o.TransferID); err != nil || s.live(t) != nil {
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return "", err
		}
		return "", kluis.Errorf(kluis.ENOTFOUND, "This transfer has ended: there is nothing to unblock.")
	}
	id, err := tx.LiftLock(ctx, o.TransferID, recipientID, unlockHash, now)
	if errors.Is(err, store.ErrNotFound) {
		if unlockHash != nil {
			return "", errLinkUsed()
		}
		return "", kluis.Errorf(kluis.ENOTFOUND, "This recipient's access is not blocked.")
	}
	if err != nil {
		return "", err
	}
	r, err := tx.Recipient(ctx, id)
	if err != nil {
		return "", err
	}
	if err := s.audit.Record(ctx, tx.Q, audit.Event{Actor: actorOr(ctx, audit.System), Action: audit.RecipientLockLifted, Object: o.TransferID,
		Detail: "recipient=" + strconv.FormatInt(id, 10) + " via=" + via}); err != nil {
		return "", err
	}
	if err := tx.Commit(); err != nil {
		return "", err
	}
	s.log.Info("recipient unblocked by the sender", "transfer", o.TransferID, "recipient", id, "via", via)
	return r.Address, nil
}
