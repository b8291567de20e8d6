package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Shared rate-limit buckets (table rate_limits), for instances that share
// one database. Each key has one value, its "theoretical arrival time"
// (GCRA, the generic cell rate algorithm): a bucket of burst tokens that
// refills one token per interval is the same as allowing a request when
// tat <= now + (burst-1)*interval and then setting tat to
// max(tat, now) + interval. One conditional upsert takes a token, so
// parallel requests on several instances never pass the limit together.
// "now" is the later of the request's clock reading and the newest one
// the bucket has seen (column seen). Times are Unix microseconds.

func us(t time.Time) int64 { return t.UnixMicro() }

// TakeRateToken takes one token from key's bucket (burst tokens, one more
// every interval). When the bucket is empty it takes nothing and returns
// false with how long until a token is there.
func (q Q) TakeRateToken(ctx context.Context, key string, now time.Time, interval time.Duration, burst int) (bool, time.Duration, error) {
	if interval <= 0 || burst < 1 {
		return false, 0, errors.New("store: rate bucket needs a positive interval and burst")
	}
	n, iv := us(now), interval.Microseconds()
	// The request counts at the newest time the bucket has seen if that
	// is later than its own reading (e, below): it read the clock, then
	// waited for a connection or for the row while other requests took
	// tokens at later times. Judged at its own, older time the bucket
	// would look fuller than it is.
	const e = `(CASE WHEN rate_limits.seen > ? THEN rate_limits.seen ELSE ? END)`
	var tat int64
	err := q.q.QueryRowContext(ctx, `INSERT INTO rate_limits (key, tat, seen) VALUES (?, ?, ?)
		ON CONFLICT (key) DO UPDATE SET tat = (CASE WHEN rate_limits.tat > `+e+` THEN rate_limits.tat ELSE `+e+` END) + ?,
			seen = `+e+`
		WHERE rate_limits.tat <= `+e+` + ?
		RETURNING tat`, key, n+iv, n, n, n, n, n, iv, n, n, n, n, int64(burst-1)*iv).Scan(&tat)
	if err == nil {
		return true, 0, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return false, 0, fmt.Errorf("take rate token: %w", err)
	}
	var seen int64
	err = q.q.QueryRowContext(ctx, `SELECT tat, seen FROM rate_limits WHERE key = ?`, key).Scan(&tat, &seen)
	if errors.Is(err, sql.ErrNoRows) {
		// Pruned in the meantime: full again, but this request was refused.
		return false, time.Microsecond, nil
	}
	if err != nil {
		return false, 0, fmt.Errorf("take rate token: %w", err)
	}
	return false, time.Duration(max(tat-(max(n, seen)+int64(burst-1)*iv), 1)) * time.Microsecond, nil
}

// ReturnRateToken gives back a token taken from key (when a second bucket
// refused the same request), so a refused request costs nothing.
func (q Q) ReturnRateToken(ctx context.Context, key string, interval time.Duration) error {
	_, err := q.q.ExecContext(ctx, `UPDATE rate_limits SET tat = tat - ? WHERE key = ?`, interval.Microseconds(), key)
	return err
}

// PruneRateBuckets deletes buckets that are full again at now (the same as
// having no row).
func (q Q) PruneRateBuckets(ctx context.Context, now time.Time) (int64, error) {
	res, err := q.q.ExecContext(ctx, `DELETE FROM rate_limits WHERE tat <= ?`, us(now))
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// MarkRateKey records key until a time: a row whose tat is in the future
// (a rate limiter's mark on a client, such as "failed lately"); a later
// time wins. PruneRateBuckets deletes it once the time has passed.
func (q Q) MarkRateKey(ctx context.Context, key string, until time.Time) error {
	_, err := q.q.ExecContext(ctx, `INSERT INTO rate_limits (key, tat) VALUES (?, ?)
		ON CONFLICT (key) DO UPDATE SET tat = (CASE WHEN rate_limits.tat > excluded.tat THEN rate_limits.tat ELSE excluded.tat END)`,
		key, us(until))
	if err != nil {
		return fmt.Errorf("mark rate key: %w", err)
	}
	return nil
}

// RateKeyUntil returns until when key was marked (MarkRateKey), or the zero
// time if it has no row.
func (q Q) RateKeyUntil(ctx context.Context, key string) (time.Time, error) {
	var tat int64
	err := q.q.QueryRowContext(ctx, `SELECT tat FROM rate_limits WHERE key = ?`, key).Scan(&tat)
	if errors.Is(err, sql.ErrNoRows) {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("rate key: %w", err)
	}
	return time.UnixMicro(tat).UTC(), nil
}
