package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Upload leases lock one unfinished file across instances (tus requests,
// plain uploads): one holder at a time may append segments. See the
// migration 0006_leases.sql and docs/architecture.md.
//
// Safety rests on the token, not on clocks: a lease changes hands only
// through AcquireLease, which gives it a fresh random token, and every
// segment commit checks the token inside its transaction
// (AppendSegmentFenced). Expiry only decides when a silent holder (a
// crashed or paused process) may be replaced; clocks of instances should
// agree to well within the lease duration, but skew can only make a commit
// fail, never let two holders commit.

// ErrLeaseHeld is returned by AcquireLease when another holder has a lease
// that has not expired; the holder has been asked to release it.
var ErrLeaseHeld = errors.New("store: upload lease held by another request")

// ErrLeaseLost is returned when a lease token no longer holds: the lease
// expired, was released, or was taken over by another holder.
var ErrLeaseLost = errors.New("store: upload lease lost")

// Lease is an upload_leases row.
type Lease struct {
	FileID           string
	Token            string
	Holder           string
	ExpiresAt        time.Time
	ReleaseRequested bool
}

// AcquireLease takes the lease on fileID for holder with token, valid for
// ttl from now, if there is none or the current one has expired (one
// statement: of parallel callers exactly one wins). Otherwise it asks the
// current holder to release (release_requested) and returns that lease
// with ErrLeaseHeld; the caller polls until it wins or gives up.
func (q Q) AcquireLease(ctx context.Context, fileID, holder, token string, now time.Time, ttl time.Duration) (*Lease, error) {
	if token == "" || ttl <= 0 {
		return nil, errors.New("store: lease needs a token and a positive duration")
	}
	exp := now.Add(ttl)
	var got string
	err := q.q.QueryRowContext(ctx, `INSERT INTO upload_leases (file_id, token, holder, expires_at, release_requested)
		VALUES (?, ?, ?, ?, 0)
		ON CONFLICT (file_id) DO UPDATE SET token = excluded.token, holder = excluded.holder,
			expires_at = excluded.expires_at, release_requested = 0
		WHERE upload_leases.expires_at <= ?
		RETURNING token`, fileID, token, holder, ms(exp), ms(now)).Scan(&got)
	switch {
	case err == nil && got == token:
		return &Lease{FileID: fileID, Token: token, Holder: holder, ExpiresAt: fromMS(ms(exp))}, nil
	case err == nil:
		return nil, fmt.Errorf("acquire lease: unexpected token returned")
	case !errors.Is(err, sql.ErrNoRows):
		return nil, fmt.Errorf("acquire lease: %w", err)
	}
	// Held and not expired: ask the holder to let go.
	cur := Lease{FileID: fileID}
	var exps int64
	err = q.q.QueryRowContext(ctx, `UPDATE upload_leases SET release_requested = 1
		WHERE file_id = ? AND token <> ? RETURNING token, holder, expires_at`, fileID, token).
		Scan(&cur.Token, &cur.Holder, &exps)
	if errors.Is(err, sql.ErrNoRows) {
		// Released in the meantime: the next attempt will win.
		return nil, ErrLeaseHeld
	}
	if err != nil {
		return nil, fmt.Errorf("request lease release: %w", err)
	}
	cur.ExpiresAt, cur.ReleaseRequested = fromMS(exps), true
	return &cur, ErrLeaseHeld
}

// RenewLease extends a lease that token still holds to now+ttl and reports
// whether its release was requested. An expired lease cannot be renewed
// (ErrLeaseLost): once expired it may have changed hands, and its holder
// must acquire again.
func (q Q) RenewLease(ctx context.Context, fileID, token string, now time.Time, ttl time.Duration) (releaseRequested bool, err error) {
	var rr int
	err = q.q.QueryRowContext(ctx, `UPDATE upload_leases SET expires_at = ?
		WHERE file_id = ? AND token = ? AND expires_at > ? RETURNING release_requested`,
		ms(now.Add(ttl)), fileID, token, ms(now)).Scan(&rr)
	if errors.Is(err, sql.ErrNoRows) {
		return false, ErrLeaseLost
	}
	if err != nil {
		return false, fmt.Errorf("renew lease: %w", err)
	}
	return rr != 0, nil
}

// LeaseReleaseRequested reports whether another request asked for the
// lease token holds; ErrLeaseLost if token holds it no longer (or it
// expired).
func (q Q) LeaseReleaseRequested(ctx context.Context, fileID, token string, now time.Time) (bool, error) {
	var rr int
	err := q.q.QueryRowContext(ctx, `SELECT release_requested FROM upload_leases
		WHERE file_id = ? AND token = ? AND expires_at > ?`, fileID, token, ms(now)).Scan(&rr)
	if errors.Is(err, sql.ErrNoRows) {
		return false, ErrLeaseLost
	}
	if err != nil {
		return false, err
	}
	return rr != 0, nil
}

// ReleaseLease deletes the lease if token still holds it. Releasing a lease
// that is gone or changed hands is not an error (it returns ErrLeaseLost
// only so callers can tell; they may ignore it).
func (q Q) ReleaseLease(ctx context.Context, fileID, token string) error {
	res, err := q.q.ExecContext(ctx, `DELETE FROM upload_leases WHERE file_id = ? AND token = ?`, fileID, token)
	return affected(res, err, ErrLeaseLost)
}

// CurrentLease returns the lease row of fileID, expired or not. Returns
// ErrNotFound if there is none.
func (q Q) CurrentLease(ctx context.Context, fileID string) (*Lease, error) {
	l := Lease{FileID: fileID}
	var exp int64
	var rr int
	err := q.q.QueryRowContext(ctx, `SELECT token, holder, expires_at, release_requested FROM upload_leases WHERE file_id = ?`, fileID).
		Scan(&l.Token, &l.Holder, &exp, &rr)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	l.ExpiresAt, l.ReleaseRequested = fromMS(exp), rr != 0
	return &l, nil
}

// DeleteExpiredLeases removes leases that expired before the given time
// (left by crashed holders, or by tus requests for ids that do not exist).
func (q Q) DeleteExpiredLeases(ctx context.Context, before time.Time) (int64, error) {
	res, err := q.q.ExecContext(ctx, `DELETE FROM upload_leases WHERE expires_at <= ?`, ms(before))
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// DeleteAllLeases removes every upload lease. Deleting a lease never lets
// a holder commit (the fence needs the row with its token); it only makes
// live holders fail their next commit, so use it only where no other
// process can hold one (SQLite at start).
func (q Q) DeleteAllLeases(ctx context.Context) (int64, error) {
	res, err := q.q.ExecContext(ctx, `DELETE FROM upload_leases`)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// AppendSegmentFenced commits one segment under the file's upload lease:
// in one transaction it checks that token still holds an unexpired lease
// on the file (on PostgreSQL the lease row is locked FOR UPDATE, so a
// takeover waits for this commit), then, if the file's revision is still
// rev, stores the new head and inserts the segment's entry row. A revision
// names exactly one head, and so one end offset and one next index: the
// caller computed the new head from revision rev, so the segment it adds
// starts where that head ended. The cost is one lease check, one update
// and one insert, whatever the number of segments before it.
//
// Returns ErrLeaseLost (wrapped, with the reason) if the lease does not
// hold, ErrConflict if the revision moved on; nothing is changed then.
//
// The lease row lock and the revision compare-and-swap are all the
// ordering a commit needs (it takes no transfer lock, see locks.go), so
// uploads of several files, on several instances, commit in parallel.
func (db *DB) AppendSegmentFenced(ctx context.Context, fileID, token string, rev int64, seg SegmentRow, head []byte, now time.Time) error {
	stx, err := db.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer stx.Rollback()
	tx := Q{stx}
	query := `SELECT token, expires_at FROM upload_leases WHERE file_id = ?`
	if db.dialect == Postgres {
		tx = Q{pgQuerier{stx}}
		query += ` FOR UPDATE`
	}
	var cur string
	var exp int64
	err = tx.q.QueryRowContext(ctx, query, fileID).Scan(&cur, &exp)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("%w: no lease on the file (released or expired and removed)", ErrLeaseLost)
	case err != nil:
		return fmt.Errorf("check lease: %w", err)
	case cur != token:
		return fmt.Errorf("%w: another request holds the upload now", ErrLeaseLost)
	case exp <= ms(now):
		return fmt.Errorf("%w: the lease expired at %s", ErrLeaseLost, fromMS(exp).Format(time.RFC3339Nano))
	}
	if err := tx.appendSegment(ctx, fileID, rev, seg, head, now); err != nil {
		return err
	}
	return stx.Commit()
}
