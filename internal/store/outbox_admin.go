package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// The admin console's mail queue (issue 19): what is waiting or failed,
// as metadata only, and the two actions on one mail. Nothing here reads
// the sealed mail.

// OutboxEntry is one queued or failed mail as the console shows it: no
// content, no full address.
type OutboxEntry struct {
	ID              string
	Kind            string
	CreatedAt       time.Time
	NotBefore       time.Time // the next try of a waiting mail
	Attempts        int
	Sending         bool       // claimed by a worker right now
	FailedAt        *time.Time // nil: still waiting
	LastError       string     // may name the recipient: mask before showing
	RecipientMasked string     // "" for mails queued before migration 0037
}

// OutboxFilter picks the failed mails (newest failure first) or the
// waiting ones (next try first), from after the row (At, ID) of an
// earlier page when At is set.
type OutboxFilter struct {
	Failed bool
	At     time.Time
	ID     string
}

// ListOutbox returns up to limit mails of f, read through the outbox_due
// index. Mails held for a malware scan are not waiting (OutboxHeld counts
// them).
func (q Q) ListOutbox(ctx context.Context, f OutboxFilter, now time.Time, limit int) ([]*OutboxEntry, error) {
	cond, order := `failed_at IS NULL AND not_before < ?`, `not_before, id`
	args := []any{heldNotBefore}
	if f.Failed {
		cond, order, args = `failed_at IS NOT NULL`, `failed_at DESC, id DESC`, nil
	}
	if !f.At.IsZero() {
		if f.Failed {
			cond += ` AND (failed_at < ? OR (failed_at = ? AND id < ?))`
		} else {
			cond += ` AND (not_before > ? OR (not_before = ? AND id > ?))`
		}
		args = append(args, ms(f.At), ms(f.At), f.ID)
	}
	rows, err := q.q.QueryContext(ctx, `SELECT `+outboxEntryCols+` FROM outbox WHERE `+cond+` ORDER BY `+order+` LIMIT ?`, append(args, limit)...)
	if err != nil {
		return nil, fmt.Errorf("list outbox: %w", err)
	}
	defer rows.Close()
	var out []*OutboxEntry
	for rows.Next() {
		e, err := scanOutboxEntry(rows, now, nil)
		if err != nil {
			return nil, fmt.Errorf("list outbox: %w", err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list outbox: %w", err)
	}
	return out, nil
}

const outboxEntryCols = `id, kind, created_at, not_before, attempts, claimed_until, failed_at, last_error, recipient_masked`

// scanOutboxEntry reads the outboxEntryCols (and held_for when held is
// not nil) of one row.
func scanOutboxEntry(row interface{ Scan(...any) error }, now time.Time, held *sql.NullString) (*OutboxEntry, error) {
	var e OutboxEntry
	var created, notBefore int64
	var claimed, failed sql.NullInt64
	var lastErr, masked sql.NullString
	dest := []any{&e.ID, &e.Kind, &created, &notBefore, &e.Attempts, &claimed, &failed, &lastErr, &masked}
	if held != nil {
		dest = append(dest, held)
	}
	if err := row.Scan(dest...); err != nil {
		return nil, err
	}
	e.CreatedAt, e.NotBefore, e.FailedAt = fromMS(created), fromMS(notBefore), fromNullMS(failed)
	e.Sending = claimed.Valid && claimed.Int64 >= ms(now)
	e.LastError, e.RecipientMasked = lastErr.String, masked.String
	return &e, nil
}

// OutboxMail returns one mail of the queue (waiting, failed or held for
// a malware scan: held). Returns ErrNotFound if there is none.
func (q Q) OutboxMail(ctx context.Context, id string, now time.Time) (e *OutboxEntry, held bool, err error) {
	var h sql.NullString
	e, err = scanOutboxEntry(q.q.QueryRowContext(ctx, `SELECT `+outboxEntryCols+`, held_for FROM outbox WHERE id = ?`, id), now, &h)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, false, ErrNotFound
	}
	if err != nil {
		return nil, false, fmt.Errorf("outbox mail: %w", err)
	}
	return e, h.Valid, nil
}

// RetryOutboxNow makes a waiting mail due at once (now). A mail that
// failed for good has no content left and cannot be retried; a mail held
// for a malware scan or being sent right now is left alone. Returns
// ErrNotFound then.
func (q Q) RetryOutboxNow(ctx context.Context, id string, now time.Time) error {
	res, err := q.q.ExecContext(ctx, `UPDATE outbox SET not_before = ?
		WHERE id = ? AND failed_at IS NULL AND held_for IS NULL AND (claimed_until IS NULL OR claimed_until < ?)`, ms(now), id, ms(now))
	return affected(res, err, ErrNotFound)
}

// DropOutbox deletes a waiting mail (it is never sent) or the record of a
// failed one. A mail held for a malware scan or being sent right now is
// left alone: ErrNotFound. With secure_delete its bytes are overwritten;
// call DB.Checkpoint afterwards to clear the WAL too.
func (q Q) DropOutbox(ctx context.Context, id string, now time.Time) error {
	res, err := q.q.ExecContext(ctx, `DELETE FROM outbox
		WHERE id = ? AND held_for IS NULL AND (failed_at IS NOT NULL OR claimed_until IS NULL OR claimed_until < ?)`, id, ms(now))
	return affected(res, err, ErrNotFound)
}
