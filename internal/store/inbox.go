package store

import (
	"context"
	"database/sql"
	"errors"
	"time"
)

// InboxKey is a sender's personal inbox key: the public recipient in
// plain, the identity only wrapped (see package sender, inbox.go).
type InboxKey struct {
	Email          string
	Recipient      string
	IdentitySealed []byte
	CreatedAt      time.Time
}

// InsertInboxKey stores a sender's inbox key. Returns ErrConflict if the
// address has one already: a key is set once, never silently replaced,
// since what was encrypted to the old one would become unreadable.
func (q Q) InsertInboxKey(ctx context.Context, k *InboxKey) error {
	res, err := q.q.ExecContext(ctx, `INSERT INTO inbox_keys (email, recipient, identity_sealed, created_at)
		VALUES (?, ?, ?, ?) ON CONFLICT (email) DO NOTHING`, k.Email, k.Recipient, k.IdentitySealed, ms(k.CreatedAt))
	return affected(res, err, ErrConflict)
}

// ReplaceInboxWrap puts a new wrap (a new passphrase) on an address's
// inbox key, if its wrap is still old: of two changes at once, one
// passes. The recipient, and so the identity, stays. Returns ErrConflict
// if the wrap changed meanwhile (or the key is gone).
func (q Q) ReplaceInboxWrap(ctx context.Context, email string, old, sealed []byte) error {
	res, err := q.q.ExecContext(ctx, `UPDATE inbox_keys SET identity_sealed = ? WHERE email = ? AND identity_sealed = ?`, sealed, email, old)
	return affected(res, err, ErrConflict)
}

// InboxKey returns the inbox key of an address. Returns ErrNotFound if it
// has none.
func (q Q) InboxKey(ctx context.Context, email string) (*InboxKey, error) {
	var k InboxKey
	var created int64
	err := q.q.QueryRowContext(ctx, `SELECT email, recipient, identity_sealed, created_at FROM inbox_keys WHERE email = ?`, email).
		Scan(&k.Email, &k.Recipient, &k.IdentitySealed, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	k.CreatedAt = fromMS(created)
	return &k, nil
}

// InboxKeyFold is InboxKey with the address compared without regard to
// case (team members are named by an administrator, who may type the
// address in another case than its owner signed in with).
func (q Q) InboxKeyFold(ctx context.Context, email string) (*InboxKey, error) {
	var k InboxKey
	var created int64
	err := q.q.QueryRowContext(ctx, `SELECT email, recipient, identity_sealed, created_at FROM inbox_keys WHERE lower(email) = lower(?)
		ORDER BY email LIMIT 1`, email).Scan(&k.Email, &k.Recipient, &k.IdentitySealed, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	k.CreatedAt = fromMS(created)
	return &k, nil
}

// SetSessionInbox stores (or, with nil, clears) the unlocked inbox
// identity of a sender session, sealed by the caller with a key only the
// session's token carries. Returns ErrNotFound if the session is gone.
func (q Q) SetSessionInbox(ctx context.Context, idHash, sealed []byte) error {
	res, err := q.q.ExecContext(ctx, `UPDATE sender_sessions SET inbox_sealed = ? WHERE id_hash = ?`, sealed, idHash)
	return affected(res, err, ErrNotFound)
}

// SessionInbox returns a sender session's sealed inbox identity, nil when
// the session has not unlocked its inbox. Returns ErrNotFound if the
// session is gone.
func (q Q) SessionInbox(ctx context.Context, idHash []byte) ([]byte, error) {
	var sealed []byte
	err := q.q.QueryRowContext(ctx, `SELECT inbox_sealed FROM sender_sessions WHERE id_hash = ?`, idHash).Scan(&sealed)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	return sealed, err
}
