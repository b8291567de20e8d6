package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Transfers that wait for their malware scan (migration 0018): the sender
// finished them while clamd could not be reached and the policy is
// fail-closed. They stay in state 'scanning', their notifications queued
// but held, until a retry scans them (ready, the mails released) or
// scan_until passes or a file is refused (failed, the mails deleted).

// heldNotBefore is the not_before of a held mail: later than any clock,
// so ClaimOutbox never takes it while it is held.
const heldNotBefore = int64(1) << 62

// ScanWait is the waiting state of a transfer in state 'scanning'.
type ScanWait struct {
	Since    time.Time // when the sender finished the transfer
	Until    time.Time // when the transfer gives up waiting and fails
	NextAt   time.Time // the next retry
	Attempts int       // retries so far
}

// StartScanWait moves a draft or uploading transfer to state 'scanning'
// (finished by its sender at now; finished_at stays NULL until it is
// sent), to be retried from next on and to fail at until.
func (q Q) StartScanWait(ctx context.Context, id string, now, next, until time.Time) error {
	res, err := q.q.ExecContext(ctx, `UPDATE transfers SET state = 'scanning', scan_since = ?, scan_until = ?, scan_next_at = ?,
		scan_attempts = 0, scan_claimed_until = NULL
		WHERE id = ? AND state IN ('draft', 'uploading')`, ms(now), ms(until), ms(next), id)
	return affected(res, err, ErrConflict)
}

// ScanWaitOf returns the waiting state of a transfer. Returns ErrNotFound
// if the transfer does not wait for its scan.
func (q Q) ScanWaitOf(ctx context.Context, id string) (*ScanWait, error) {
	var since, until, next sql.NullInt64
	var w ScanWait
	err := q.q.QueryRowContext(ctx, `SELECT scan_since, scan_until, scan_next_at, scan_attempts FROM transfers
		WHERE id = ? AND state = 'scanning'`, id).Scan(&since, &until, &next, &w.Attempts)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	w.Since, w.Until, w.NextAt = fromMS(since.Int64), fromMS(until.Int64), fromMS(next.Int64)
	return &w, nil
}

// ClaimScanWaits claims up to limit waiting transfers whose retry is due
// at now and that no live lease holds, until now+lease, and returns their
// ids. One statement, and on PostgreSQL FOR UPDATE SKIP LOCKED, so two
// instances never retry the same transfer while its lease lasts.
func (db *DB) ClaimScanWaits(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]string, error) {
	return db.claimScanWaits(ctx, db.postgres(), now, lease, limit)
}

func (q Q) claimScanWaits(ctx context.Context, pg bool, now time.Time, lease time.Duration, limit int) ([]string, error) {
	lock := ""
	if pg {
		lock = " FOR UPDATE SKIP LOCKED"
	}
	ids, err := scanStrings(q.q.QueryContext(ctx, `UPDATE transfers SET scan_claimed_until = ?
		WHERE id IN (SELECT id FROM transfers
			WHERE state = 'scanning' AND scan_next_at <= ? AND (scan_claimed_until IS NULL OR scan_claimed_until < ?)
			ORDER BY scan_next_at LIMIT ?`+lock+`)
		RETURNING id`, ms(now.Add(lease)), ms(now), ms(now), limit))
	if err != nil {
		return nil, fmt.Errorf("claim scan waits: %w", err)
	}
	return ids, nil
}

// RetryScanWait ends the claim on a waiting transfer and sets its next
// retry, counting the attempt.
func (q Q) RetryScanWait(ctx context.Context, id string, next time.Time) error {
	res, err := q.q.ExecContext(ctx, `UPDATE transfers SET scan_next_at = ?, scan_attempts = scan_attempts + 1,
		scan_claimed_until = NULL WHERE id = ? AND state = 'scanning'`, ms(next), id)
	return affected(res, err, ErrConflict)
}

// EndScanWait makes a waiting transfer ready, finished at now, and makes
// its held mails due at now. Recipients with an access id count as
// notified at now when notified is true (a mailer is configured).
// Returns ErrConflict if the transfer no longer waits.
func (q Q) EndScanWait(ctx context.Context, id string, now time.Time, notified bool) error {
	res, err := q.q.ExecContext(ctx, `UPDATE transfers SET state = 'ready', finished_at = ?,
		scan_since = NULL, scan_until = NULL, scan_next_at = NULL, scan_claimed_until = NULL
		WHERE id = ? AND state = 'scanning'`, ms(now), id)
	if err := affected(res, err, ErrConflict); err != nil {
		return err
	}
	if notified {
		if _, err := q.q.ExecContext(ctx, `UPDATE recipients SET notified_at = ?
			WHERE transfer_id = ? AND access_hash IS NOT NULL AND notified_at IS NULL AND revoked_at IS NULL`, ms(now), id); err != nil {
			return fmt.Errorf("end scan wait: %w", err)
		}
	}
	if _, err := q.q.ExecContext(ctx, `UPDATE outbox SET held_for = NULL, not_before = ? WHERE held_for = ?`, ms(now), id); err != nil {
		return fmt.Errorf("release held mail: %w", err)
	}
	return nil
}

// FailScanWait ends a waiting transfer that will never be ready: it is
// marked 'failed' and revoked at now, so the purge erases its content, and
// its held mails and a mail gateway's sealed password for its sender are
// deleted. Returns ErrConflict if it no longer waits.
func (q Q) FailScanWait(ctx context.Context, id string, now time.Time) error {
	res, err := q.q.ExecContext(ctx, `UPDATE transfers SET state = 'failed', revoked_at = ?,
		scan_since = NULL, scan_until = NULL, scan_next_at = NULL, scan_claimed_until = NULL
		WHERE id = ? AND state = 'scanning'`, ms(now), id)
	if err := affected(res, err, ErrConflict); err != nil {
		return err
	}
	if _, err := q.q.ExecContext(ctx, `DELETE FROM gateway_passwords WHERE transfer_id = ?`, id); err != nil {
		return fmt.Errorf("delete gateway password: %w", err)
	}
	return q.DeleteHeldOutbox(ctx, id)
}

// HoldOutbox holds the mails ids for the transfer id: they are not sent
// until EndScanWait releases them.
func (q Q) HoldOutbox(ctx context.Context, transferID string, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	in, args := inList(ids)
	_, err := q.q.ExecContext(ctx, `UPDATE outbox SET held_for = ?, not_before = ? WHERE id IN (`+in+`)`,
		append([]any{transferID, heldNotBefore}, args...)...)
	if err != nil {
		return fmt.Errorf("hold outbox: %w", err)
	}
	return nil
}

// DeleteHeldOutbox deletes the mails held for a transfer (secure_delete
// overwrites them; call DB.Checkpoint after the commit).
func (q Q) DeleteHeldOutbox(ctx context.Context, transferID string) error {
	if _, err := q.q.ExecContext(ctx, `DELETE FROM outbox WHERE held_for = ?`, transferID); err != nil {
		return fmt.Errorf("delete held mail: %w", err)
	}
	return nil
}

// HeldOutbox returns the ids of the mails held for a transfer.
func (q Q) HeldOutbox(ctx context.Context, transferID string) ([]string, error) {
	return scanStrings(q.q.QueryContext(ctx, `SELECT id FROM outbox WHERE held_for = ? ORDER BY id`, transferID))
}
