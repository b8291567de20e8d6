package store

import (
	"context"
	"fmt"
)

// ForwardAudit hands the next entries (at most limit, in chain order) that
// destination name has not had yet to send, and records them as sent when
// send returns nil. It returns how many it forwarded; 0 means nothing was
// waiting.
//
// The destination's row stays locked from the first read to the commit, so
// of several instances one forwards at a time and each entry is handed
// over in order. Delivery is at least once: if the process dies after send
// and before the commit, the same entries are sent again (each carries its
// id, so a receiver can drop the repeat). A failed send rolls back and the
// entries wait for the next call.
func (db *DB) ForwardAudit(ctx context.Context, name string, limit int, send func([]*AuditRow) error) (int, error) {
	if limit <= 0 {
		return 0, fmt.Errorf("forward audit: limit must be positive")
	}
	tx, err := db.BeginTx(ctx)
	if err != nil {
		return 0, err
	}
	defer func() { _ = tx.Rollback() }()
	if _, err := tx.q.ExecContext(ctx, `INSERT INTO audit_forward (name, last_id) VALUES (?, 0) ON CONFLICT (name) DO NOTHING`, name); err != nil {
		return 0, fmt.Errorf("forward audit: %w", err)
	}
	var last int64
	if err := tx.q.QueryRowContext(ctx, `UPDATE audit_forward SET last_id = last_id WHERE name = ? RETURNING last_id`, name).Scan(&last); err != nil {
		return 0, fmt.Errorf("forward audit: %w", err)
	}
	rows, err := tx.q.QueryContext(ctx, `SELECT `+auditColumns+` FROM audit WHERE id > ? ORDER BY id LIMIT ?`, last, limit)
	if err != nil {
		return 0, fmt.Errorf("forward audit: read: %w", err)
	}
	var batch []*AuditRow
	if err := eachAudit(rows, func(a *AuditRow) error { batch = append(batch, a); return nil }); err != nil {
		return 0, err
	}
	if len(batch) == 0 {
		return 0, tx.Commit()
	}
	if err := send(batch); err != nil {
		return 0, err
	}
	if _, err := tx.q.ExecContext(ctx, `UPDATE audit_forward SET last_id = ? WHERE name = ?`, batch[len(batch)-1].ID, name); err != nil {
		return 0, fmt.Errorf("forward audit: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("forward audit: commit: %w", err)
	}
	return len(batch), nil
}
