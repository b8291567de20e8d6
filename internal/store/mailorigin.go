package store

import (
	"context"
	"database/sql"
	"errors"
	"time"
)

// MailOrigin is the mail a transfer was made from by the SMTP gateway,
// kept while the transfer can still be refused (migration 0039).
type MailOrigin struct {
	TransferID    string
	SubjectSealed []byte
	ReceivedAt    time.Time
}

// InsertMailOrigin records the mail a transfer was made from.
func (q Q) InsertMailOrigin(ctx context.Context, m *MailOrigin) error {
	_, err := q.q.ExecContext(ctx, `INSERT INTO mail_origins (transfer_id, subject_sealed, received_at) VALUES (?, ?, ?)`,
		m.TransferID, m.SubjectSealed, ms(m.ReceivedAt))
	return err
}

// TakeMailOrigin returns and deletes the mail a transfer was made from.
// Returns ErrNotFound if the transfer was not made from a mail (or its
// record is gone).
func (q Q) TakeMailOrigin(ctx context.Context, transferID string) (*MailOrigin, error) {
	m := MailOrigin{TransferID: transferID}
	var received int64
	err := q.q.QueryRowContext(ctx, `SELECT subject_sealed, received_at FROM mail_origins WHERE transfer_id = ?`, transferID).
		Scan(&m.SubjectSealed, &received)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	if _, err := q.q.ExecContext(ctx, `DELETE FROM mail_origins WHERE transfer_id = ?`, transferID); err != nil {
		return nil, err
	}
	m.ReceivedAt = fromMS(received)
	return &m, nil
}

// DeleteSettledMailOrigins deletes the records of transfers that can no
// longer be refused: sent (or expired, revoked, refused) rather than a
// draft or waiting for their malware scan.
func (q Q) DeleteSettledMailOrigins(ctx context.Context) (int64, error) {
	res, err := q.q.ExecContext(ctx, `DELETE FROM mail_origins WHERE transfer_id IN
		(SELECT id FROM transfers WHERE state NOT IN ('draft', 'uploading', 'scanning'))`)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}
