package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// OutboxRow is an outbox row: one mail waiting for delivery. Sealed is the
// rendered mail, opaque here; it is nil once the mail failed for good.
type OutboxRow struct {
	ID           string
	Kind         string
	CreatedAt    time.Time
	NotBefore    time.Time
	Attempts     int
	ClaimedUntil *time.Time
	FailedAt     *time.Time
	LastError    string
	Sealed       []byte
	// RecipientMasked is the recipient's address masked (written at
	// insert, for the admin console; not read back by the worker).
	RecipientMasked string
}

const outboxCols = `id, kind, created_at, not_before, attempts, claimed_until, failed_at, last_error, sealed`

func scanOutbox(row interface{ Scan(...any) error }) (*OutboxRow, error) {
	var o OutboxRow
	var created, notBefore int64
	var claimed, failed sql.NullInt64
	var lastErr sql.NullString
	err := row.Scan(&o.ID, &o.Kind, &created, &notBefore, &o.Attempts, &claimed, &failed, &lastErr, &o.Sealed)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	o.CreatedAt, o.NotBefore = fromMS(created), fromMS(notBefore)
	o.ClaimedUntil, o.FailedAt = fromNullMS(claimed), fromNullMS(failed)
	o.LastError = lastErr.String
	return &o, nil
}

// InsertOutbox queues a mail. Call it in the transaction of the change
// that causes the mail.
func (q Q) InsertOutbox(ctx context.Context, o *OutboxRow) error {
	var lastErr, masked any
	if o.LastError != "" {
		lastErr = o.LastError
	}
	if o.RecipientMasked != "" {
		masked = o.RecipientMasked
	}
	_, err := q.q.ExecContext(ctx, `INSERT INTO outbox (`+outboxCols+`, recipient_masked)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		o.ID, o.Kind, ms(o.CreatedAt), ms(o.NotBefore), o.Attempts,
		msPtr(o.ClaimedUntil), msPtr(o.FailedAt), lastErr, o.Sealed, masked)
	if err != nil {
		return fmt.Errorf("insert outbox: %w", err)
	}
	return nil
}

// Outbox returns one outbox row. Returns ErrNotFound if there is none.
func (q Q) Outbox(ctx context.Context, id string) (*OutboxRow, error) {
	return scanOutbox(q.q.QueryRowContext(ctx, `SELECT `+outboxCols+` FROM outbox WHERE id = ?`, id))
}

// ClaimOutbox claims up to limit mails that are due (not failed, not_before
// reached, not claimed by a live lease) until now+lease, and returns them.
// The claim is one statement, so several instances never claim the same
// row while its lease lasts.
//
// On PostgreSQL the rows are picked FOR UPDATE SKIP LOCKED, so two
// instances claiming at the same moment take different rows instead of
// both updating the same ones. A claim also records the claiming
// instance's own advisory lock key (claimed_by, migration 0010), which the
// instance holds on its dedicated connection for as long as it lives
// (holdInstanceLock). A claim whose key no session holds any more (the
// instance died, and PostgreSQL ended its session and locks with it) is
// free at once, lease or not: the mail a killed instance was sending goes
// out on the next round of any instance, with the same Message-ID, instead
// of after the lease. An instance that only lost its connection for a
// moment may see such a mail sent twice, as after any crash.
func (db *DB) ClaimOutbox(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]*OutboxRow, error) {
	return db.claimOutbox(ctx, db.postgres(), db.claimant, now, lease, limit)
}

// claimOutbox is ClaimOutbox on q (a transaction too, for the plan checks
// of hot.go), for the dialect and the claiming instance's key.
func (q Q) claimOutbox(ctx context.Context, pg bool, claimant int64, now time.Time, lease time.Duration, limit int) ([]*OutboxRow, error) {
	lock, dead := "", ""
	var by any
	if pg {
		lock = " FOR UPDATE SKIP LOCKED"
		if claimant != 0 {
			by = claimant
		}
		// A 64-bit advisory key shows in pg_locks as classid (high half)
		// and objid (low half), in the database it belongs to.
		dead = ` OR (claimed_by IS NOT NULL AND NOT EXISTS (SELECT 1 FROM pg_locks l
				WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
				AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
				AND l.classid::bigint = claimed_by >> 32 AND l.objid::bigint = claimed_by & 4294967295))`
	}
	rows, err := q.q.QueryContext(ctx, `UPDATE outbox SET claimed_until = ?, claimed_by = ?
		WHERE id IN (SELECT id FROM outbox
			WHERE failed_at IS NULL AND not_before <= ? AND (claimed_until IS NULL OR claimed_until < ?`+dead+`)
			ORDER BY not_before LIMIT ?`+lock+`)
		RETURNING `+outboxCols, ms(now.Add(lease)), by, ms(now), ms(now), limit)
	if err != nil {
		return nil, fmt.Errorf("claim outbox: %w", err)
	}
	defer rows.Close()
	var out []*OutboxRow
	for rows.Next() {
		o, err := scanOutbox(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, o)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("claim outbox: %w", err)
	}
	return out, nil
}

// DeleteOutbox deletes a delivered mail. With secure_delete its bytes are
// overwritten; call DB.Checkpoint afterwards to clear the WAL too. A row
// that is already gone is not an error.
func (q Q) DeleteOutbox(ctx context.Context, id string) error {
	if _, err := q.q.ExecContext(ctx, `DELETE FROM outbox WHERE id = ?`, id); err != nil {
		return fmt.Errorf("delete outbox: %w", err)
	}
	return nil
}

// RetryOutbox records a failed attempt and releases the claim until
// notBefore. Returns ErrNotFound if the row is gone or failed.
func (q Q) RetryOutbox(ctx context.Context, id string, notBefore time.Time, attempts int, lastError string) error {
	res, err := q.q.ExecContext(ctx, `UPDATE outbox SET not_before = ?, attempts = ?, last_error = ?, claimed_until = NULL, claimed_by = NULL
		WHERE id = ? AND failed_at IS NULL`, ms(notBefore), attempts, lastError, id)
	return affected(res, err, ErrNotFound)
}

// FailOutbox gives up on a mail: it is marked failed and its sealed content
// is erased; id, kind, dates and the error stay for the operator. Returns
// ErrNotFound if the row is gone.
func (q Q) FailOutbox(ctx context.Context, id string, at time.Time, lastError string) error {
	return q.inTx(ctx, func(q Q) error {
		// The statistics count a mail once, on the day it first failed.
		lock := ""
		if q.postgres() {
			lock = " FOR UPDATE"
		}
		var failed sql.NullInt64
		err := q.q.QueryRowContext(ctx, `SELECT failed_at FROM outbox WHERE id = ?`+lock, id).Scan(&failed)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		res, err := q.q.ExecContext(ctx, `UPDATE outbox SET failed_at = ?, last_error = ?, claimed_until = NULL, claimed_by = NULL, sealed = NULL
			WHERE id = ?`, ms(at), lastError, id)
		if err := affected(res, err, ErrNotFound); err != nil || failed.Valid {
			return err
		}
		var sum statsSum
		sum.add(at, metricMailsFailed, 1)
		return q.addStats(ctx, &sum)
	})
}

// OutboxDepth counts the mails waiting (including those being sent) and
// those that failed for good. Mails held for a transfer that waits for its
// malware scan are not pending (OutboxHeld counts them).
func (q Q) OutboxDepth(ctx context.Context) (pending, failed int, err error) {
	// Two counts over outbox_due (failed_at first), not a pass over the
	// table: failed mails stay 30 days. A held mail's not_before is
	// heldNotBefore, so the index alone tells it apart.
	err = q.q.QueryRowContext(ctx, `SELECT (SELECT count(*) FROM outbox WHERE failed_at IS NULL AND not_before < ?),
		(SELECT count(*) FROM outbox WHERE failed_at IS NOT NULL)`, heldNotBefore).Scan(&pending, &failed)
	if err != nil {
		return 0, 0, fmt.Errorf("outbox depth: %w", err)
	}
	return pending, failed, nil
}

// OutboxHeld counts the mails held until a malware scan has run.
func (q Q) OutboxHeld(ctx context.Context) (int, error) {
	var n int
	if err := q.q.QueryRowContext(ctx, `SELECT count(*) FROM outbox WHERE held_for IS NOT NULL`).Scan(&n); err != nil {
		return 0, fmt.Errorf("outbox held: %w", err)
	}
	return n, nil
}

// DeleteFailedOutbox deletes the records of mails that failed before the
// given time. Returns how many it deleted.
func (q Q) DeleteFailedOutbox(ctx context.Context, before time.Time) (int64, error) {
	res, err := q.q.ExecContext(ctx, `DELETE FROM outbox WHERE failed_at IS NOT NULL AND failed_at < ?`, ms(before))
	if err != nil {
		return 0, fmt.Errorf("delete failed outbox: %w", err)
	}
	return res.RowsAffected()
}

// ReleaseOutboxClaims ends every claim on waiting mail, so it is due again
// at once. Only for a database that no other process uses (SQLite at
// start): claims there can only be a dead process's. Returns how many it
// released.
func (q Q) ReleaseOutboxClaims(ctx context.Context) (int64, error) {
	res, err := q.q.ExecContext(ctx, `UPDATE outbox SET claimed_until = NULL, claimed_by = NULL WHERE claimed_until IS NOT NULL AND failed_at IS NULL`)
	if err != nil {
		return 0, fmt.Errorf("release outbox claims: %w", err)
	}
	return res.RowsAffected()
}
