package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// GatewayPassword is the sealed password of a transfer the SMTP gateway
// made, waiting for its sender (migration 0028).
type GatewayPassword struct {
	TokenHash   []byte
	TransferID  string
	SenderEmail string
	Sealed      []byte
	CreatedAt   time.Time
	ExpiresAt   time.Time
}

// InsertGatewayPassword stores a waiting password.
func (q Q) InsertGatewayPassword(ctx context.Context, p *GatewayPassword) error {
	_, err := q.q.ExecContext(ctx, `INSERT INTO gateway_passwords (token_hash, transfer_id, sender_email, sealed, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)`,
		p.TokenHash, p.TransferID, p.SenderEmail, p.Sealed, ms(p.CreatedAt), ms(p.ExpiresAt))
	return err
}

// GatewayPassword finds a waiting password by its token's hash, if it
// belongs to email and has not expired at now; else ErrNotFound.
func (q Q) GatewayPassword(ctx context.Context, tokenHash []byte, email string, now time.Time) (*GatewayPassword, error) {
	var p GatewayPassword
	var created, expires int64
	err := q.q.QueryRowContext(ctx, `SELECT token_hash, transfer_id, sender_email, sealed, created_at, expires_at FROM gateway_passwords
		WHERE token_hash = ? AND sender_email = ? AND expires_at > ?`, tokenHash, email, ms(now)).
		Scan(&p.TokenHash, &p.TransferID, &p.SenderEmail, &p.Sealed, &created, &expires)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	p.CreatedAt, p.ExpiresAt = fromMS(created), fromMS(expires)
	return &p, nil
}

// DeleteGatewayPassword removes a waiting password; ErrNotFound when
// another request took it first (so it is shown once).
func (q Q) DeleteGatewayPassword(ctx context.Context, tokenHash []byte) error {
	res, err := q.q.ExecContext(ctx, `DELETE FROM gateway_passwords WHERE token_hash = ?`, tokenHash)
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil {
		return err
	} else if n == 0 {
		return ErrNotFound
	}
	return nil
}

// DeleteExpiredGatewayPasswords removes the passwords whose link expired.
func (q Q) DeleteExpiredGatewayPasswords(ctx context.Context, now time.Time) (int64, error) {
	res, err := q.q.ExecContext(ctx, `DELETE FROM gateway_passwords WHERE expires_at <= ?`, ms(now))
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// GatewayMessage is a mail the SMTP gateway is taking or took (migration
// 0022), found by its sender and the hash of its Message-ID.
type GatewayMessage struct {
	SenderEmail  string
	MessageHash  []byte
	Claimant     string
	ClaimedUntil time.Time
	TransferID   string     // "" before the transfer was made
	TakenAt      *time.Time // set once its transfer is finished
	CreatedAt    time.Time
}

// ErrMessageTaken and ErrMessageBusy are ClaimGatewayMessage's answers for
// a mail that was taken already, and for one another gateway is taking.
var (
	ErrMessageTaken = errors.New("store: this mail was taken already")
	ErrMessageBusy  = errors.New("store: this mail is being taken just now")
)

// ClaimGatewayMessage claims the mail (email, hash) for claimant until
// until, in one statement: when there is no row yet, or its claim ran out
// before now and it was not taken. It returns the row as claimed; its
// TransferID is the draft an earlier claimant left (to be erased). When
// the mail was taken it returns that row with ErrMessageTaken; when
// another claim holds it, ErrMessageBusy.
func (q Q) ClaimGatewayMessage(ctx context.Context, email string, hash []byte, claimant string, now, until time.Time) (*GatewayMessage, error) {
	var tid sql.NullString
	err := q.q.QueryRowContext(ctx, `INSERT INTO gateway_messages (sender_email, message_hash, claimant, claimed_until, created_at)
		VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (sender_email, message_hash) DO UPDATE SET claimant = excluded.claimant, claimed_until = excluded.claimed_until
		WHERE gateway_messages.taken_at IS NULL AND gateway_messages.claimed_until <= ?
		RETURNING transfer_id`, email, hash, claimant, ms(until), ms(now), ms(now)).Scan(&tid)
	if err == nil {
		return &GatewayMessage{SenderEmail: email, MessageHash: hash, Claimant: claimant, ClaimedUntil: fromMS(ms(until)),
			TransferID: tid.String, CreatedAt: fromMS(ms(now))}, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("claim gateway message: %w", err)
	}
	m := GatewayMessage{SenderEmail: email, MessageHash: hash}
	var claimed, created int64
	var taken sql.NullInt64
	err = q.q.QueryRowContext(ctx, `SELECT claimant, claimed_until, transfer_id, taken_at, created_at FROM gateway_messages
		WHERE sender_email = ? AND message_hash = ?`, email, hash).Scan(&m.Claimant, &claimed, &tid, &taken, &created)
	if errors.Is(err, sql.ErrNoRows) {
		// Removed between the two statements (a refused mail's claim):
		// the caller tries again.
		return nil, ErrMessageBusy
	}
	if err != nil {
		return nil, err
	}
	m.ClaimedUntil, m.CreatedAt, m.TransferID = fromMS(claimed), fromMS(created), tid.String
	if taken.Valid {
		t := fromMS(taken.Int64)
		m.TakenAt = &t
		return &m, ErrMessageTaken
	}
	return &m, ErrMessageBusy
}

// RenewGatewayMessage extends the claim while the mail streams in;
// ErrConflict when the claim was taken over.
func (q Q) RenewGatewayMessage(ctx context.Context, email string, hash []byte, claimant string, until time.Time) error {
	return q.gatewayMessageExec(ctx, `UPDATE gateway_messages SET claimed_until = ?
		WHERE sender_email = ? AND message_hash = ? AND claimant = ? AND taken_at IS NULL`, ms(until), email, hash, claimant)
}

// SetGatewayMessageTransfer records the draft the claimant made.
func (q Q) SetGatewayMessageTransfer(ctx context.Context, email string, hash []byte, claimant, transferID string) error {
	return q.gatewayMessageExec(ctx, `UPDATE gateway_messages SET transfer_id = ?
		WHERE sender_email = ? AND message_hash = ? AND claimant = ? AND taken_at IS NULL`, transferID, email, hash, claimant)
}

// GatewayMessageTaken records that the mail's transfer is finished.
func (q Q) GatewayMessageTaken(ctx context.Context, email string, hash []byte, claimant, transferID string, at time.Time) error {
	return q.gatewayMessageExec(ctx, `UPDATE gateway_messages SET taken_at = ?, transfer_id = ?
		WHERE sender_email = ? AND message_hash = ? AND claimant = ? AND taken_at IS NULL`, ms(at), transferID, email, hash, claimant)
}

// ReleaseGatewayMessage removes the claim of a refused mail, so that the
// mail, sent again, is judged again.
func (q Q) ReleaseGatewayMessage(ctx context.Context, email string, hash []byte, claimant string) error {
	return q.gatewayMessageExec(ctx, `DELETE FROM gateway_messages
		WHERE sender_email = ? AND message_hash = ? AND claimant = ? AND taken_at IS NULL`, email, hash, claimant)
}

func (q Q) gatewayMessageExec(ctx context.Context, query string, args ...any) error {
	res, err := q.q.ExecContext(ctx, query, args...)
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil {
		return err
	} else if n == 0 {
		return ErrConflict
	}
	return nil
}

// DeleteOldGatewayMessages removes the rows of mails first seen before
// before (the dedupe window has passed), except claims still held.
func (q Q) DeleteOldGatewayMessages(ctx context.Context, before, now time.Time) (int64, error) {
	res, err := q.q.ExecContext(ctx, `DELETE FROM gateway_messages WHERE created_at < ? AND (taken_at IS NOT NULL OR claimed_until <= ?)`,
		ms(before), ms(now))
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}
