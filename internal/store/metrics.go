package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// OldestDueForPurge returns since when the longest-waiting transfer that is
// due for purge (expired or revoked at now, not yet purged) has been due:
// the earlier of its revocation and its expiry. ok is false when no
// transfer is due.
func (q Q) OldestDueForPurge(ctx context.Context, now time.Time) (since time.Time, ok bool, err error) {
	var v sql.NullInt64
	err = q.q.QueryRowContext(ctx, `SELECT min(CASE WHEN revoked_at IS NOT NULL AND revoked_at < expires_at THEN revoked_at ELSE expires_at END) FROM transfers
		WHERE purged_at IS NULL AND (revoked_at IS NOT NULL OR expires_at <= ?)`, ms(now)).Scan(&v)
	if err != nil {
		return time.Time{}, false, fmt.Errorf("oldest due for purge: %w", err)
	}
	if !v.Valid {
		return time.Time{}, false, nil
	}
	return fromMS(v.Int64), true, nil
}
