package store

import (
	"context"
	"time"
)

// Counts for the per-sender and per-recipient limits (transfer.Create,
// transfer.NewFile). Call them inside the write transaction that creates
// the transfer or file, after Tx.LockSender (locks.go): then a count and
// the insert it allows cannot interleave with another's, on SQLite (one
// writer) or PostgreSQL (the sender's advisory lock). Addresses are
// compared without regard to case, with the database's lower(), which the
// sender lock's key uses too.

// CountOpenDrafts counts a sender's transfers that are not finished yet
// (draft or uploading) and still live at now: not revoked, purged or
// expired.
func (q Q) CountOpenDrafts(ctx context.Context, email string, now time.Time) (int, error) {
	var n int
	err := q.q.QueryRowContext(ctx, `SELECT count(*) FROM transfers
		WHERE lower(sender_email) = lower(?) AND state IN ('draft', 'uploading')
		AND revoked_at IS NULL AND purged_at IS NULL AND expires_at > ?`, email, ms(now)).Scan(&n)
	return n, err
}

// RecentFile is a file of a sender's recent transfer, with that
// transfer's creation time.
type RecentFile struct {
	File      *FileRow
	CreatedAt time.Time
}

// RecentFiles lists the files of a sender's transfers created after since
// that still hold content (not revoked or purged).
func (q Q) RecentFiles(ctx context.Context, email string, since time.Time) ([]RecentFile, error) {
	rows, err := q.q.QueryContext(ctx, `SELECT t.created_at, f.id, f.transfer_id, f.idx, f.complete, f.rev, f.updated_at,
			f.meta_sealed, f.private_sealed, f.sum_sealed, f.manifest_sealed, f.head_sealed, f.scan_sealed
		FROM transfers t JOIN files f ON f.transfer_id = t.id
		WHERE lower(t.sender_email) = lower(?) AND t.created_at > ? AND t.revoked_at IS NULL AND t.purged_at IS NULL
		ORDER BY t.created_at, f.idx`, email, ms(since))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []RecentFile
	for rows.Next() {
		var f FileRow
		var created, updated int64
		if err := rows.Scan(&created, &f.ID, &f.TransferID, &f.Index, &f.Complete, &f.Rev, &updated,
			&f.MetaSealed, &f.PrivateSealed, &f.SumSealed, &f.ManifestSealed, &f.HeadSealed, &f.ScanSealed); err != nil {
			return nil, err
		}
		f.UpdatedAt = fromMS(updated)
		out = append(out, RecentFile{File: &f, CreatedAt: fromMS(created)})
	}
	return out, rows.Err()
}

// CountReplies counts the replies (sent or being written) that address
// made to transfer replyTo.
func (q Q) CountReplies(ctx context.Context, replyTo, email string) (int, error) {
	var n int
	err := q.q.QueryRowContext(ctx, `SELECT count(*) FROM transfers WHERE reply_to = ? AND lower(sender_email) = lower(?)`,
		replyTo, email).Scan(&n)
	return n, err
}
