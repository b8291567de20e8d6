package transfer

// The second factor by SMS (issue 15). The transfer password stays the
// key: the right password makes a pending session that already holds the
// unwrapped identity sealed under the client's token (as every session
// does), but opens nothing until the code sent by SMS is given in that
// same session. So a copy of the database, blobs and master key still
// cannot open a transfer, and the code alone cannot either.
//
// Codes: 6 digits from crypto/rand, kept only as an HMAC of session id
// and code (a key from the master key), valid for SMSConfig.CodeTTL, used
// up by the statement that accepts them. Wrong codes are tries in the one
// lock-out (Attempt, kind AttemptSMS), with the password tries. An SMS
// goes out only after the right password, at most once per Cooldown per
// session, and within caps per recipient per day and for the whole
// service per hour, so holding a link cannot run up costs.

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"math/big"
	"strconv"
	"strings"
	"time"

	"github.com/kluis-nl/kluis"
	"github.com/kluis-nl/kluis/internal/audit"
	"github.com/kluis-nl/kluis/internal/locale"
	"github.com/kluis-nl/kluis/internal/secret"
	"github.com/kluis-nl/kluis/internal/sms"
	"github.com/kluis-nl/kluis/internal/store"
)

// SMSConfig bounds the SMS codes. Zero values take the defaults of
// DefaultSMSConfig.
type SMSConfig struct {
	CodeTTL         time.Duration // how long a code works
	Cooldown        time.Duration // between two codes of one session
	PerRecipientDay int           // codes to one recipient in 24 hours
	PerHour         int           // codes of the whole service in an hour
}

// DefaultSMSConfig: a code lives 10 minutes (ASVS 5.0 6.5.x asks at most
// 10), a new one after a minute, 5 a day to a recipient, 100 an hour in
// all.
func DefaultSMSConfig() SMSConfig {
	return SMSConfig{CodeTTL: 10 * time.Minute, Cooldown: time.Minute, PerRecipientDay: 5, PerHour: 100}
}

func (c SMSConfig) withDefaults() SMSConfig {
	d := DefaultSMSConfig()
	if c.CodeTTL <= 0 {
		c.CodeTTL = d.CodeTTL
	}
	if c.Cooldown <= 0 {
		c.Cooldown = d.Cooldown
	}
	if c.PerRecipientDay <= 0 {
		c.PerRecipientDay = d.PerRecipientDay
	}
	if c.PerHour <= 0 {
		c.PerHour = d.PerHour
	}
	return c
}

// SMSCodeDigits is the length of a code.
const SMSCodeDigits = 6

const (
	purposePhone   = "recipient.phone"
	purposeSMSCode = "recipient.smscode"
)

// pendingTTL is how long a pending session waits for its code.
const pendingTTL = 15 * time.Minute

// sealPhone seals a recipient's number under the master key.
func (s *Service) sealPhone(recipientID int64, e164 string) []byte {
	return s.keys.Seal(purposePhone, strconv.FormatInt(recipientID, 10), []byte(e164))
}

// phone opens a recipient's number; "" when there is none.
func (s *Service) phone(r *store.RecipientRow) (string, error) {
	if r.PhoneSealed == nil {
		return "", nil
	}
	p, err := s.keys.Open(purposePhone, strconv.FormatInt(r.ID, 10), r.PhoneSealed)
	if err != nil {
		return "", &kluis.Error{Code: kluis.EINTEGRITY, Message: "Stored data failed verification.", Err: err}
	}
	return string(p), nil
}

// maskedPhone is what views show of a recipient's number.
func (s *Service) maskedPhone(r *store.RecipientRow) string {
	p, err := s.phone(r)
	if err != nil || p == "" {
		return ""
	}
	return sms.Mask(p)
}

func (s *Service) smsCodeHash(sessionIDHash []byte, code string) []byte {
	return s.keys.MAC(purposeSMSCode, append(append([]byte{}, sessionIDHash...), code...))
}

func newSMSCode() (string, error) {
	n, err := rand.Int(rand.Reader, big.NewInt(1_000_000))
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%06d", n.Int64()), nil
}

// Pending is a session that passed the password and waits for the code.
type Pending struct {
	Token      string // the session token (already the client's cookie)
	Phone      string // masked
	CodeSentAt *time.Time
	// CodeExpiresAt is when the last code sent stops working (nil: none
	// sent), so a page can tell an expired code from a wrong one.
	CodeExpiresAt *time.Time
	// NextSendAt is when another code may be asked for.
	NextSendAt time.Time
	idHash     []byte
	transfer   *store.TransferRow
	recipient  *store.RecipientRow
	row        *store.SessionRow
	key        []byte
}

// OpenPending checks the token of a pending session. Returns
// EUNAUTHORIZED when it is no pending session (ended, wrong, or verified
// already) and the transfer's own errors (expired, revoked).
func (s *Service) OpenPending(ctx context.Context, token string) (*Pending, error) {
	row, idHash, key, err := s.sessionRow(ctx, token)
	if err != nil {
		return nil, err
	}
	if !row.Pending {
		return nil, kluis.Errorf(kluis.EUNAUTHORIZED, "This session needs no code.")
	}
	r, err := s.db.Recipient(ctx, row.RecipientID)
	if err != nil {
		return nil, errSessionEnded()
	}
	t, err := s.db.Transfer(ctx, r.TransferID)
	if err != nil {
		return nil, err
	}
	if err := s.openable(t, r); err != nil {
		return nil, err
	}
	p := &Pending{Token: token, Phone: s.maskedPhone(r), CodeSentAt: row.CodeSentAt, CodeExpiresAt: row.CodeExpires, idHash: idHash, transfer: t, recipient: r, row: row, key: key}
	cfg := s.cfg.SMS.withDefaults()
	if row.CodeSentAt != nil {
		p.NextSendAt = row.CodeSentAt.Add(cfg.Cooldown)
	}
	return p, nil
}

func errSessionEnded() error {
	return kluis.Errorf(kluis.EUNAUTHORIZED, "Your download session has ended. Open the link from your mail again.")
}

// TransferID and RecipientID name whose pending session this is.
func (p *Pending) TransferID() string { return p.transfer.ID }
func (p *Pending) RecipientID() int64 { return p.recipient.ID }

// SendCode makes a new code for a pending session and sends it by SMS.
// Returns ETOOMANYREQUESTS (with RetryAfter) during the cooldown, EQUOTA
// over a cap, and EUNAVAILABLE when no gateway is set or it fails. A send
// counts in the caps once it is attempted, whatever the gateway says.
func (s *Service) SendCode(ctx context.Context, p *Pending) error {
	cfg := s.cfg.SMS.withDefaults()
	now := s.now()
	if s.sms == nil {
		return kluis.Errorf(kluis.EUNAVAILABLE, "No SMS gateway is configured. Contact the sender.")
	}
	to, err := s.phone(p.recipient)
	if err != nil {
		return err
	}
	if to == "" {
		return kluis.Errorf(kluis.EINTEGRITY, "This recipient has no mobile number.")
	}
	if p.row.CodeSentAt != nil && now.Before(p.row.CodeSentAt.Add(cfg.Cooldown)) {
		at := p.row.CodeSentAt.Add(cfg.Cooldown)
		return &kluis.Error{Code: kluis.ETOOMANYREQUESTS, Message: "A code was sent a moment ago. Wait a little before you ask for a new one.", RetryAfter: at.Sub(now)}
	}
	code, err := newSMSCode()
	if err != nil {
		return err
	}
	tx, err := s.db.BeginTx(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	// The lock serialises the count and the insert, so parallel sends of
	// one sender's recipients (or of everyone on SQLite) stay under the
	// caps.
	if err := tx.LockSender(ctx, "sms"); err != nil {
		return err
	}
	n, err := tx.SMSSent(ctx, p.recipient.ID, now.Add(-24*time.Hour))
	if err != nil {
		return err
	}
	all, err := tx.SMSSent(ctx, 0, now.Add(-time.Hour))
	if err != nil {
		return err
	}
	if n >= cfg.PerRecipientDay || all >= cfg.PerHour {
		which := "recipient"
		if n < cfg.PerRecipientDay {
			which = "service"
		}
		s.log.Warn("sms cap reached", "transfer", p.transfer.ID, "recipient", p.recipient.ID, "cap", which)
		s.audit.Log(ctx, audit.Event{Actor: audit.Recipient(p.recipient.ID), Action: audit.RecipientSMS, Object: p.transfer.ID,
			Result: audit.Refused, Detail: "cap=" + which})
		return kluis.Errorf(kluis.EQUOTA, "Too many codes were sent. Try again later or contact the sender.")
	}
	hash, expires := s.smsCodeHash(p.idHash, code), now.Add(cfg.CodeTTL)
	err = tx.SetSessionCode(ctx, p.idHash, p.recipient.ID, hash, expires, now, now.Add(-cfg.Cooldown))
	if errors.Is(err, store.ErrConflict) {
		return &kluis.Error{Code: kluis.ETOOMANYREQUESTS, Message: "A code was sent a moment ago. Wait a little before you ask for a new one.", RetryAfter: cfg.Cooldown}
	}
	if err != nil {
		return err
	}
	if err := s.audit.Record(ctx, tx.Q, audit.Event{Actor: audit.Recipient(p.recipient.ID), Action: audit.RecipientSMS, Object: p.transfer.ID,
		Detail: "to=" + sms.Mask(to)}); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	p.row.CodeSentAt, p.row.CodeHash, p.row.CodeExpires = &now, hash, &expires
	p.CodeSentAt, p.CodeExpiresAt, p.NextSendAt = &now, &expires, now.Add(cfg.Cooldown)
	if err := s.sms.Send(ctx, to, s.smsText(p.transfer, code)); err != nil {
		s.log.Error("sms not sent", "transfer", p.transfer.ID, "recipient", p.recipient.ID, "err", err)
		return &kluis.Error{Code: kluis.EUNAVAILABLE, Message: "The code could not be sent. Try again in a moment.", Err: err}
	}
	s.log.Info("sms code sent", "transfer", p.transfer.ID, "recipient", p.recipient.ID)
	return nil
}

// smsText names the organisation and the code, never the transfer's
// subject, sender or contents.
func (s *Service) smsText(t *store.TransferRow, code string) string {
	org := s.org.Name
	if org == "" {
		org = "Kluis"
	}
	l, _ := locale.Parse(t.Lang)
	return locale.For(l).T("unlock.sms_text", org, code)
}

// VerifyCode checks the code of a pending session. The try counts in the
// recipient's lock-out with the password tries. A right code ends the
// pending state (once: the code is used up), opens the transfer as the
// password does for a password-only recipient, and returns the session.
// A wrong or expired code gives EWRONGSECRET, or ELOCKED when this try
// locked the access.
func (s *Service) VerifyCode(ctx context.Context, p *Pending, code string) (*Session, error) {
	code = strings.Map(func(r rune) rune {
		if r == ' ' || r == '-' {
			return -1
		}
		return r
	}, strings.TrimSpace(code))
	a, err := s.reserve(ctx, p.transfer, p.recipient, AttemptSMS)
	if err != nil {
		return nil, err
	}
	now := s.now()
	ok := len(code) == SMSCodeDigits && p.row.CodeHash != nil && secret.Equal(s.smsCodeHash(p.idHash, code), p.row.CodeHash)
	expires := now.Add(s.cfg.SessionTTL)
	if expires.After(p.transfer.ExpiresAt) {
		expires = p.transfer.ExpiresAt
	}
	if ok {
		// Conditional on the hash and expiry: a replayed or expired code
		// fails here even when it matched the row read before.
		err = s.db.VerifySession(ctx, p.idHash, p.row.CodeHash, now, expires)
		if errors.Is(err, store.ErrNotFound) {
			ok = false
		} else if err != nil {
			return nil, err
		}
	}
	if !ok {
		return nil, a.Fail(ctx)
	}
	if err := s.db.MarkOpened(ctx, p.recipient.ID, now); err != nil {
		return nil, err
	}
	if err := s.db.MarkVerified(ctx, p.recipient.ID, now); err != nil {
		return nil, err
	}
	s.audit.Log(ctx, audit.Event{Actor: audit.Recipient(p.recipient.ID), Action: audit.RecipientUnlock, Object: p.transfer.ID,
		Detail: "method=" + string(kluis.AuthPasswordSMS)})
	s.log.Info("transfer unlocked", "transfer", p.transfer.ID, "recipient", p.recipient.ID, "method", string(kluis.AuthPasswordSMS))
	s.met().Unlock(UnlockOK)
	return s.OpenSession(ctx, p.Token)
}
