package store

import (
	"context"
	"database/sql"
	"errors"
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
