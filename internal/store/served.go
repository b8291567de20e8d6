package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// ServedSpans returns the byte ranges of file fileIdx served so far to a
// recipient, as stored by SetServedSpans; "" if none.
func (q Q) ServedSpans(ctx context.Context, recipientID int64, fileIdx int) (string, error) {
	var spans string
	err := q.q.QueryRowContext(ctx, `SELECT spans FROM served WHERE recipient_id = ? AND file_idx = ?`, recipientID, fileIdx).Scan(&spans)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read served ranges: %w", err)
	}
	return spans, nil
}

// SetServedSpans stores the byte ranges of file fileIdx served so far to a
// recipient. Call it in the transaction that read them, after
// Tx.RecipientForUpdate, so parallel downloads do not lose each other's
// ranges.
func (q Q) SetServedSpans(ctx context.Context, recipientID int64, fileIdx int, spans string) error {
	_, err := q.q.ExecContext(ctx, `INSERT INTO served (recipient_id, file_idx, spans) VALUES (?, ?, ?)
		ON CONFLICT (recipient_id, file_idx) DO UPDATE SET spans = excluded.spans`, recipientID, fileIdx, spans)
	if err != nil {
		return fmt.Errorf("store served ranges: %w", err)
	}
	return nil
}
