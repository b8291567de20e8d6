package store

import (
	"context"
	"math"
	"time"
)

// A sender's own pages list transfers in pages, newest first, and load the
// recipients, downloads and files of a page's transfers in one query each
// (not one per transfer): a sender with 10,000 transfers gets a page in a
// few milliseconds.

// pageChunk bounds the ids in one IN list (SQLite allows 32,766 variables).
const pageChunk = 500

const qSenderPage = `SELECT ` + transferCols + ` FROM transfers
	WHERE sender_email = ? AND (created_at, id) < (?, ?)
	ORDER BY created_at DESC, id DESC LIMIT ?`

// TransfersBySenderPage lists up to limit of a sender's transfers, newest
// first, that come after the one created at before with id beforeID (the
// last of the previous page; a zero before starts at the newest).
func (q Q) TransfersBySenderPage(ctx context.Context, email string, before time.Time, beforeID string, limit int) ([]*TransferRow, error) {
	at := int64(math.MaxInt64)
	if !before.IsZero() {
		at = ms(before)
	}
	return scanAll(scanTransfer)(q.q.QueryContext(ctx, qSenderPage, email, at, beforeID, limit))
}

// chunks calls fn with ids in pieces of at most pageChunk.
func chunks(ids []string, fn func(part []string) error) error {
	for len(ids) > 0 {
		n := min(len(ids), pageChunk)
		if err := fn(ids[:n]); err != nil {
			return err
		}
		ids = ids[n:]
	}
	return nil
}

// RecipientsOf returns the recipients of the transfers ids, by transfer,
// each transfer's in the order they were added.
func (q Q) RecipientsOf(ctx context.Context, ids []string) (map[string][]*RecipientRow, error) {
	out := map[string][]*RecipientRow{}
	err := chunks(ids, func(part []string) error {
		in, args := inList(part)
		rows, err := q.q.QueryContext(ctx, `SELECT `+recipientCols+` FROM recipients WHERE transfer_id IN (`+in+`) ORDER BY id`, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			r, err := scanRecipient(rows)
			if err != nil {
				return err
			}
			out[r.TransferID] = append(out[r.TransferID], r)
		}
		return rows.Err()
	})
	return out, err
}

// DownloadsOf returns the download records of the transfers ids, by
// transfer, oldest first.
func (q Q) DownloadsOf(ctx context.Context, ids []string) (map[string][]Download, error) {
	out := map[string][]Download{}
	err := chunks(ids, func(part []string) error {
		in, args := inList(part)
		rows, err := q.q.QueryContext(ctx, `SELECT r.transfer_id, d.recipient_id, d.file_idx, d.at FROM downloads d
			JOIN recipients r ON r.id = d.recipient_id WHERE r.transfer_id IN (`+in+`) ORDER BY d.at`, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var tid string
			var d Download
			var at int64
			if err := rows.Scan(&tid, &d.RecipientID, &d.FileIndex, &at); err != nil {
				return err
			}
			d.At = fromMS(at)
			out[tid] = append(out[tid], d)
		}
		return rows.Err()
	})
	return out, err
}

// FilesOf returns the files of the transfers ids, by transfer, each
// transfer's in upload order.
func (q Q) FilesOf(ctx context.Context, ids []string) (map[string][]*FileRow, error) {
	out := map[string][]*FileRow{}
	err := chunks(ids, func(part []string) error {
		in, args := inList(part)
		rows, err := q.q.QueryContext(ctx, `SELECT `+fileCols+` FROM files WHERE transfer_id IN (`+in+`) ORDER BY transfer_id, idx`, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			f, err := scanFile(rows)
			if err != nil {
				return err
			}
			out[f.TransferID] = append(out[f.TransferID], f)
		}
		return rows.Err()
	})
	return out, err
}

// RepliesTo lists the transfers that answer transfer id (replies of its
// recipients), oldest first.
func (q Q) RepliesTo(ctx context.Context, id string) ([]*TransferRow, error) {
	return scanAll(scanTransfer)(q.q.QueryContext(ctx, `SELECT `+transferCols+` FROM transfers WHERE reply_to = ? ORDER BY created_at`, id))
}

// ReplyCounts returns how many sent replies (finished) answer each of the
// transfers ids, for the ids that have any: one query per chunk of a page
// of My transfers, on the reply_to index.
func (q Q) ReplyCounts(ctx context.Context, ids []string) (map[string]int, error) {
	out := map[string]int{}
	err := chunks(ids, func(part []string) error {
		in, args := inList(part)
		rows, err := q.q.QueryContext(ctx, `SELECT reply_to, COUNT(*) FROM transfers
			WHERE reply_to IN (`+in+`) AND finished_at IS NOT NULL GROUP BY reply_to`, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var id string
			var n int
			if err := rows.Scan(&id, &n); err != nil {
				return err
			}
			out[id] = n
		}
		return rows.Err()
	})
	return out, err
}
