package store

import (
	"context"
	"fmt"
	"time"
)

// AuditRow is one audit log entry. See package audit for what goes in it.
type AuditRow struct {
	ID     int64
	At     time.Time
	Actor  string
	Action string
	Object string
	Result string
	IP     string
	Detail string
}

// InsertAudit appends an entry and sets its ID. Call it in the transaction
// of the change it records, so the change and its entry commit together.
func (q Q) InsertAudit(ctx context.Context, a *AuditRow) error {
	err := q.q.QueryRowContext(ctx, `INSERT INTO audit (at, actor, action, object, result, ip, detail)
		VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id`,
		ms(a.At), a.Actor, a.Action, a.Object, a.Result, a.IP, a.Detail).Scan(&a.ID)
	if err != nil {
		return fmt.Errorf("insert audit: %w", err)
	}
	return nil
}

// AuditSince calls fn for every entry at or after since, oldest first. The
// rows stay open while fn runs: fn must not use the database.
func (q Q) AuditSince(ctx context.Context, since time.Time, fn func(*AuditRow) error) error {
	rows, err := q.q.QueryContext(ctx, `SELECT id, at, actor, action, object, result, ip, detail
		FROM audit WHERE at >= ? ORDER BY at, id`, ms(since))
	if err != nil {
		return fmt.Errorf("read audit: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var a AuditRow
		var at int64
		if err := rows.Scan(&a.ID, &at, &a.Actor, &a.Action, &a.Object, &a.Result, &a.IP, &a.Detail); err != nil {
			return fmt.Errorf("read audit: %w", err)
		}
		a.At = fromMS(at)
		if err := fn(&a); err != nil {
			return err
		}
	}
	return rows.Err()
}

// DeleteAuditBefore deletes entries older than before (the audit
// retention). Returns how many it deleted.
func (q Q) DeleteAuditBefore(ctx context.Context, before time.Time) (int64, error) {
	res, err := q.q.ExecContext(ctx, `DELETE FROM audit WHERE at < ?`, ms(before))
	if err != nil {
		return 0, fmt.Errorf("delete audit: %w", err)
	}
	return res.RowsAffected()
}

// EraseTransfer deletes a transfer's minimal record at once, with its
// recipients, files, download records, served ranges and sessions (by
// cascade). Returns ErrNotFound if there is no such transfer. Call
// DB.Checkpoint afterwards.
func (q Q) EraseTransfer(ctx context.Context, id string) error {
	if _, err := q.q.ExecContext(ctx, `DELETE FROM sessions WHERE recipient_id IN (SELECT id FROM recipients WHERE transfer_id = ?)`, id); err != nil {
		return fmt.Errorf("erase sessions: %w", err)
	}
	if _, err := q.q.ExecContext(ctx, `DELETE FROM files WHERE transfer_id = ?`, id); err != nil {
		return fmt.Errorf("erase files: %w", err)
	}
	if _, err := q.q.ExecContext(ctx, `DELETE FROM downloads WHERE recipient_id IN (SELECT id FROM recipients WHERE transfer_id = ?)`, id); err != nil {
		return fmt.Errorf("erase downloads: %w", err)
	}
	if _, err := q.q.ExecContext(ctx, `DELETE FROM served WHERE recipient_id IN (SELECT id FROM recipients WHERE transfer_id = ?)`, id); err != nil {
		return fmt.Errorf("erase served ranges: %w", err)
	}
	if _, err := q.q.ExecContext(ctx, `DELETE FROM recipients WHERE transfer_id = ?`, id); err != nil {
		return fmt.Errorf("erase recipients: %w", err)
	}
	res, err := q.q.ExecContext(ctx, `DELETE FROM transfers WHERE id = ?`, id)
	return affected(res, err, ErrNotFound)
}
