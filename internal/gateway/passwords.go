package gateway

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/kluis-nl/kluis"
	"github.com/kluis-nl/kluis/internal/mail"
	"github.com/kluis-nl/kluis/internal/secret"
	"github.com/kluis-nl/kluis/internal/store"
)

// PurposePassword is the keyring purpose of a waiting password (listed in
// transfer.SealedValues, so a master key rotation reseals it).
const PurposePassword = "gateway.password"

// MaxPasswordWait bounds how long a password waits for its sender: while
// it waits, a copy of the database plus the master key opens the transfer
// (docs/security.md "Mail gateway").
const MaxPasswordWait = 24 * time.Hour

// Mailer queues a mail in the caller's transaction (the outbox).
type Mailer interface {
	Enqueue(ctx context.Context, tx *store.Tx, m *mail.Message) (string, error)
}

// Passwords is the Confirmer of kluis serve: the password waits sealed
// under the master key, and the sender gets a mail with a one-time link to
// the page that shows it once (only in the sender's own signed-in
// session); showing it erases it.
type Passwords struct {
	db     *store.DB
	keys   *secret.Keyring
	mailer Mailer
	org    mail.Org
	wait   time.Duration
	now    func() time.Time
	log    *slog.Logger
}

// PasswordsDeps are what Passwords is built from.
type PasswordsDeps struct {
	DB     *store.DB
	Keys   *secret.Keyring
	Mailer Mailer
	Org    mail.Org
	// Wait is how long the link works; 0 or more than MaxPasswordWait:
	// MaxPasswordWait.
	Wait time.Duration
	Now  func() time.Time
	Log  *slog.Logger
}

// NewPasswords builds the keeper of waiting passwords.
func NewPasswords(d PasswordsDeps) *Passwords {
	p := &Passwords{db: d.DB, keys: d.Keys, mailer: d.Mailer, org: d.Org, wait: d.Wait, now: d.Now, log: d.Log}
	if p.wait <= 0 || p.wait > MaxPasswordWait {
		p.wait = MaxPasswordWait
	}
	if p.now == nil {
		p.now = time.Now
	}
	if p.log == nil {
		p.log = slog.Default()
	}
	return p
}

// PasswordPath is the page of a waiting password (package web).
func PasswordPath(transferID, token string) string {
	return "/transfers/" + transferID + "/password/" + token
}

// Confirm seals the password and queues the sender's mail with the link
// in tx, the transaction that finishes the transfer (Confirmer).
func (p *Passwords) Confirm(ctx context.Context, tx *store.Tx, c Confirmation) ([]string, error) {
	now := p.now()
	token := secret.NewToken()
	h := secret.HashToken(token)
	row := &store.GatewayPassword{TokenHash: h, TransferID: c.TransferID, SenderEmail: strings.ToLower(c.Sender),
		Sealed: p.keys.Seal(PurposePassword, hex.EncodeToString(h), []byte(c.Password)), CreatedAt: now, ExpiresAt: now.Add(p.wait)}
	m, err := mail.Render(mail.KindGatewayPassword, mail.Lang(c.Lang), p.org, c.Sender,
		mail.GatewayPassword{Link: p.org.BaseURL + PasswordPath(c.TransferID, token), ExpiresAt: row.ExpiresAt})
	if err != nil {
		return nil, err
	}
	if err := tx.InsertGatewayPassword(ctx, row); err != nil {
		return nil, err
	}
	id, err := p.mailer.Enqueue(ctx, tx, m)
	if err != nil {
		return nil, err
	}
	return []string{id}, nil
}

func errLinkUsed() error {
	return kluis.Errorf(kluis.ENOTFOUND, "This link has been used already or has expired.")
}

// Waiting reports whether token is a password link of transfer for email
// that still works (ENOTFOUND if not); it shows nothing.
func (p *Passwords) Waiting(ctx context.Context, transferID, token, email string) error {
	row, err := p.db.GatewayPassword(ctx, secret.HashToken(token), strings.ToLower(email), p.now())
	if errors.Is(err, store.ErrNotFound) || (err == nil && row.TransferID != transferID) {
		return errLinkUsed()
	}
	return err
}

// Reveal returns the password of a working link once, and erases it.
func (p *Passwords) Reveal(ctx context.Context, transferID, token, email string) (string, error) {
	h := secret.HashToken(token)
	tx, err := p.db.BeginTx(ctx)
	if err != nil {
		return "", err
	}
	defer tx.Rollback()
	row, err := tx.GatewayPassword(ctx, h, strings.ToLower(email), p.now())
	if errors.Is(err, store.ErrNotFound) || (err == nil && row.TransferID != transferID) {
		return "", errLinkUsed()
	}
	if err != nil {
		return "", err
	}
	pw, err := p.keys.Open(PurposePassword, hex.EncodeToString(h), row.Sealed)
	if err != nil {
		return "", fmt.Errorf("open the waiting password of %s: %w", transferID, err)
	}
	if err := tx.DeleteGatewayPassword(ctx, h); errors.Is(err, store.ErrNotFound) {
		return "", errLinkUsed()
	} else if err != nil {
		return "", err
	}
	if err := tx.Commit(); err != nil {
		return "", err
	}
	// secure_delete is on; the checkpoint also clears the WAL.
	if err := p.db.Checkpoint(ctx); err != nil {
		p.log.Error("checkpoint after showing a gateway password", "err", err)
	}
	p.log.Info("gateway password shown to its sender", "action", "gateway.password", "transfer", transferID)
	return string(pw), nil
}

// Cleanup erases the passwords whose link expired.
func (p *Passwords) Cleanup(ctx context.Context) error {
	n, err := p.db.DeleteExpiredGatewayPasswords(ctx, p.now())
	if err != nil {
		return err
	}
	if n > 0 {
		if err := p.db.Checkpoint(ctx); err != nil {
			p.log.Error("checkpoint after erasing expired gateway passwords", "err", err)
		}
		p.log.Info("expired gateway passwords erased", "action", "gateway.password_expired", "count", n)
	}
	return nil
}
