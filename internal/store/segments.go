package store

import (
	"context"
	"fmt"
	"strconv"
	"time"
)

// SegmentRow is a segments row: one manifest entry of a file, sealed on its
// own (migration 0009). ID is SegmentID(FileID, Index), the row id its
// seal is bound to.
type SegmentRow struct {
	ID          string
	FileID      string
	Index       int
	EntrySealed []byte
}

// SegmentID is the id of a file's segment entry number idx: "FILE:IDX".
func SegmentID(fileID string, idx int) string { return fileID + ":" + strconv.Itoa(idx) }

// Segments returns a file's segment entries in index order.
func (q Q) Segments(ctx context.Context, fileID string) ([]SegmentRow, error) {
	rows, err := q.q.QueryContext(ctx, `SELECT id, file_id, idx, entry_sealed FROM segments WHERE file_id = ? ORDER BY idx`, fileID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []SegmentRow
	for rows.Next() {
		var s SegmentRow
		if err := rows.Scan(&s.ID, &s.FileID, &s.Index, &s.EntrySealed); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// appendSegment stores a file's new head and its new entry row if the
// file's revision is still rev; ErrConflict otherwise.
func (q Q) appendSegment(ctx context.Context, fileID string, rev int64, seg SegmentRow, head []byte, now time.Time) error {
	if seg.FileID != fileID || seg.ID != SegmentID(fileID, seg.Index) {
		return fmt.Errorf("append segment: row %q does not belong to file %s", seg.ID, fileID)
	}
	res, err := q.q.ExecContext(ctx, `UPDATE files SET head_sealed = ?, rev = rev + 1, updated_at = ?
		WHERE id = ? AND rev = ? AND complete = 0 AND head_sealed IS NOT NULL`, head, ms(now), fileID, rev)
	if err := affected(res, err, ErrConflict); err != nil {
		return err
	}
	if _, err := q.q.ExecContext(ctx, `INSERT INTO segments (id, file_id, idx, entry_sealed) VALUES (?, ?, ?, ?)`,
		seg.ID, seg.FileID, seg.Index, seg.EntrySealed); err != nil {
		return fmt.Errorf("insert segment: %w", err)
	}
	return nil
}

// ConvertManifest moves a file stored with a whole manifest (before
// migration 0009) to entry rows: it inserts segs, sets the head and clears
// manifest_sealed, if the file's revision is still rev and it has no head
// yet; ErrConflict otherwise (another request converted or wrote it).
func (db *DB) ConvertManifest(ctx context.Context, fileID string, rev int64, segs []SegmentRow, head []byte, now time.Time) error {
	tx, err := db.BeginTx(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	res, err := tx.q.ExecContext(ctx, `UPDATE files SET head_sealed = ?, manifest_sealed = NULL, rev = rev + 1, updated_at = ?
		WHERE id = ? AND rev = ? AND head_sealed IS NULL`, head, ms(now), fileID, rev)
	if err := affected(res, err, ErrConflict); err != nil {
		return err
	}
	for _, s := range segs {
		if s.FileID != fileID || s.ID != SegmentID(fileID, s.Index) {
			return fmt.Errorf("convert manifest: row %q does not belong to file %s", s.ID, fileID)
		}
		if _, err := tx.q.ExecContext(ctx, `INSERT INTO segments (id, file_id, idx, entry_sealed) VALUES (?, ?, ?, ?)`,
			s.ID, s.FileID, s.Index, s.EntrySealed); err != nil {
			return fmt.Errorf("insert segment: %w", err)
		}
	}
	return tx.Commit()
}
