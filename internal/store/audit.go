package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// AuditRow is one audit log entry. See package audit for what goes in it.
//
// The entries form one hash chain in id order: PrevHash is the Hash of the
// entry before (of the retention checkpoint for the first entry kept, 32
// zero bytes for the very first entry), and Hash is AuditHash of the
// entry. InsertAudit sets ID, PrevHash and Hash.
type AuditRow struct {
	ID       int64
	At       time.Time
	Actor    string
	Action   string
	Object   string
	Result   string
	IP       string
	Detail   string
	Role     string
	Reason   string
	PrevHash []byte
	Hash     []byte
}

// auditDomain starts every hashed encoding, so an entry's hash can never
// be mistaken for the hash of anything else (and a later format gets a
// new name).
const auditDomain = "kluis-audit-v1\x00"

// AuditHash is the hash of an entry: SHA-256 over auditDomain, PrevHash
// (32 bytes) and then id, at (Unix ms), actor, action, object, result,
// ip, detail, role, reason, in that order, each as a 4-byte big-endian
// length followed by its bytes (the two numbers in decimal ASCII). The
// lengths make the encoding unambiguous: no two different entries encode
// the same.
func AuditHash(a *AuditRow) []byte {
	h := sha256.New()
	h.Write([]byte(auditDomain))
	prev := make([]byte, sha256.Size)
	copy(prev, a.PrevHash)
	h.Write(prev)
	var n [4]byte
	for _, f := range []string{strconv.FormatInt(a.ID, 10), strconv.FormatInt(ms(a.At), 10),
		a.Actor, a.Action, a.Object, a.Result, a.IP, a.Detail, a.Role, a.Reason} {
		binary.BigEndian.PutUint32(n[:], uint32(len(f)))
		h.Write(n[:])
		h.Write([]byte(f))
	}
	return h.Sum(nil)
}

// InsertAudit appends an entry to the chain and sets its ID, PrevHash and
// Hash. Call it in the transaction of the change it records, so the change
// and its entry commit together; with db.Q it runs in a transaction of its
// own.
//
// The chain head row is locked (PostgreSQL: the UPDATE's row lock; SQLite
// writes one at a time anyway) from here to the commit, so entries from
// several instances still form one chain and ids follow it without gaps.
// Record the entry late in a transaction: the lock serialises every
// audited write that is still open.
func (q Q) InsertAudit(ctx context.Context, a *AuditRow) error {
	return q.inTx(ctx, func(q Q) error { return q.insertAudit(ctx, a) })
}

// inTx runs fn in q's transaction, or in a transaction of its own when q
// runs outside one.
func (q Q) inTx(ctx context.Context, fn func(Q) error) error {
	sqldb, pg, ok := q.outsideTx()
	if !ok {
		return fn(q)
	}
	tx, err := sqldb.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback()
	in := Q{tx}
	if pg {
		in = Q{pgQuerier{tx}}
	}
	if err := fn(in); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// outsideTx returns the database when q runs outside a transaction.
func (q Q) outsideTx() (db *sql.DB, pg bool, ok bool) {
	inner := q.q
	if p, isPG := inner.(pgQuerier); isPG {
		inner, pg = p.q, true
	}
	db, ok = inner.(*sql.DB)
	return db, pg, ok
}

func (q Q) insertAudit(ctx context.Context, a *AuditRow) error {
	return q.insertAudits(ctx, []*AuditRow{a})
}

// InsertAudits is InsertAudit for many entries at once (the purge writes
// one per transfer): the chain head is moved once and the entries go in
// a few statements, in the order given.
func (q Q) InsertAudits(ctx context.Context, rows []*AuditRow) error {
	return q.inTx(ctx, func(q Q) error { return q.insertAudits(ctx, rows) })
}

// auditInsertBatch is how many entries one INSERT writes (12 values each,
// well below SQLite's and PostgreSQL's limits on parameters).
const auditInsertBatch = 500

func (q Q) insertAudits(ctx context.Context, rows []*AuditRow) error {
	if len(rows) == 0 {
		return nil
	}
	var last int64
	var prev []byte
	err := q.q.QueryRowContext(ctx, `UPDATE audit_head SET last_id = last_id + ? WHERE one = 1 RETURNING last_id, last_hash`, len(rows)).Scan(&last, &prev)
	if err != nil {
		return fmt.Errorf("insert audit: chain head: %w", err)
	}
	for i, a := range rows {
		a.At = fromMS(ms(a.At))
		a.ID = last - int64(len(rows)-1-i)
		a.PrevHash = prev
		a.Hash = AuditHash(a)
		prev = a.Hash
	}
	for len(rows) > 0 {
		chunk := rows[:min(len(rows), auditInsertBatch)]
		rows = rows[len(chunk):]
		args := make([]any, 0, 12*len(chunk))
		// The statistics' counters of the entries' days (stats.go) commit
		// with them.
		var sum statsSum
		for _, a := range chunk {
			args = append(args, a.ID, ms(a.At), a.Actor, a.Action, a.Object, a.Result, a.IP, a.Detail, a.Role, a.Reason, a.PrevHash, a.Hash)
			metrics, values := auditStats(a)
			for i, m := range metrics {
				sum.add(a.At, m, values[i])
			}
		}
		insert := qInsertAudit + strings.Repeat(`, (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, len(chunk)-1)
		head := chunk[len(chunk)-1].Hash
		if q.postgres() {
			// One round trip for all but the head's id, while the head is
			// locked.
			with := `WITH h AS (UPDATE audit_head SET last_hash = ? WHERE one = 1) `
			pre := []any{head}
			if len(sum.keys) > 0 {
				with += `, s AS (` + qAddStats(len(sum.keys)) + `) `
				pre = append(pre, sum.args()...)
			}
			if _, err = q.q.ExecContext(ctx, with+insert, append(pre, args...)...); err != nil {
				return fmt.Errorf("insert audit: %w", err)
			}
			continue
		}
		if _, err := q.q.ExecContext(ctx, insert, args...); err != nil {
			return fmt.Errorf("insert audit: %w", err)
		}
		if _, err := q.q.ExecContext(ctx, `UPDATE audit_head SET last_hash = ? WHERE one = 1`, head); err != nil {
			return fmt.Errorf("insert audit: chain head: %w", err)
		}
		if err := q.addStats(ctx, &sum); err != nil {
			return fmt.Errorf("insert audit: %w", err)
		}
	}
	return nil
}

const qInsertAudit = `INSERT INTO audit (id, at, actor, action, object, result, ip, detail, role, reason, prev_hash, hash)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`

const auditColumns = `id, at, actor, action, object, result, ip, detail, role, reason, prev_hash, hash`

func scanAudit(rows *sql.Rows) (*AuditRow, error) {
	var a AuditRow
	var at int64
	if err := rows.Scan(&a.ID, &at, &a.Actor, &a.Action, &a.Object, &a.Result, &a.IP, &a.Detail, &a.Role, &a.Reason, &a.PrevHash, &a.Hash); err != nil {
		return nil, fmt.Errorf("read audit: %w", err)
	}
	a.At = fromMS(at)
	return &a, nil
}

// AuditSince calls fn for every entry at or after since, oldest first. The
// rows stay open while fn runs: fn must not use the database.
func (q Q) AuditSince(ctx context.Context, since time.Time, fn func(*AuditRow) error) error {
	rows, err := q.q.QueryContext(ctx, `SELECT `+auditColumns+`
		FROM audit WHERE at >= ? ORDER BY at, id`, ms(since))
	if err != nil {
		return fmt.Errorf("read audit: %w", err)
	}
	return eachAudit(rows, fn)
}

func eachAudit(rows *sql.Rows, fn func(*AuditRow) error) error {
	defer rows.Close()
	for rows.Next() {
		a, err := scanAudit(rows)
		if err != nil {
			return err
		}
		if err := fn(a); err != nil {
			return err
		}
	}
	return rows.Err()
}

// AuditHead is the state of the chain: its newest entry, and the
// retention checkpoint it is verified from.
type AuditHead struct {
	LastID   int64  // the newest entry (0: none yet)
	LastHash []byte // its hash
	CutID    int64  // entries up to this id were removed by retention
	CutHash  []byte // the hash of entry CutID (32 zero bytes if none)
	CutAt    time.Time
}

// AuditHead reads the chain head.
func (q Q) AuditHead(ctx context.Context) (*AuditHead, error) {
	var h AuditHead
	var cutAt int64
	err := q.q.QueryRowContext(ctx, `SELECT last_id, last_hash, cut_id, cut_hash, cut_at FROM audit_head WHERE one = 1`).
		Scan(&h.LastID, &h.LastHash, &h.CutID, &h.CutHash, &cutAt)
	if err != nil {
		return nil, fmt.Errorf("read audit chain head: %w", err)
	}
	h.CutAt = fromMS(cutAt)
	return &h, nil
}

// AuditChain calls fn for every entry after the retention checkpoint in
// chain (id) order. The rows stay open while fn runs: fn must not use the
// database.
func (q Q) AuditChain(ctx context.Context, after int64, fn func(*AuditRow) error) error {
	rows, err := q.q.QueryContext(ctx, `SELECT `+auditColumns+` FROM audit WHERE id > ? ORDER BY id`, after)
	if err != nil {
		return fmt.Errorf("read audit: %w", err)
	}
	return eachAudit(rows, fn)
}

// auditPruneBatch bounds the entries one retention transaction removes.
const auditPruneBatch = 1000

// PruneAudit removes the oldest entries of the chain that are older than
// before (the audit retention), and only those: it stops at the first
// entry in chain order that is not, so an entry written with a late
// clock keeps the ones after it. Each batch first moves the retention
// checkpoint (the id and hash of the last removed entry) in the same
// transaction, so the rest of the chain stays verifiable from there (the
// database's triggers refuse a delete the checkpoint does not cover).
// Returns how many it removed.
func (db *DB) PruneAudit(ctx context.Context, before time.Time) (int64, error) {
	var total int64
	for {
		tx, err := db.BeginTx(ctx)
		if err != nil {
			return total, err
		}
		n, err := tx.pruneAudit(ctx, before, auditPruneBatch)
		if err == nil {
			err = tx.Commit()
		}
		tx.Rollback()
		if err != nil {
			return total, err
		}
		total += n
		if n < auditPruneBatch {
			return total, nil
		}
	}
}

// pruneAudit removes at most limit entries (see PruneAudit).
func (tx *Tx) pruneAudit(ctx context.Context, before time.Time, limit int) (int64, error) {
	var cut int64
	if err := tx.q.QueryRowContext(ctx, `UPDATE audit_head SET cut_id = cut_id WHERE one = 1 RETURNING cut_id`).Scan(&cut); err != nil {
		return 0, fmt.Errorf("prune audit: chain head: %w", err)
	}
	rows, err := tx.q.QueryContext(ctx, `SELECT id, at, hash FROM audit WHERE id > ? ORDER BY id LIMIT ?`, cut, limit)
	if err != nil {
		return 0, fmt.Errorf("prune audit: %w", err)
	}
	var last struct {
		id, at int64
		hash   []byte
	}
	var n int64
	for rows.Next() {
		var id, at int64
		var hash []byte
		if err := rows.Scan(&id, &at, &hash); err != nil {
			rows.Close()
			return 0, fmt.Errorf("prune audit: %w", err)
		}
		if at >= ms(before) {
			break
		}
		last.id, last.at, last.hash = id, at, hash
		n++
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("prune audit: %w", err)
	}
	if n == 0 {
		return 0, nil
	}
	if _, err := tx.q.ExecContext(ctx, `UPDATE audit_head SET cut_id = ?, cut_hash = ?, cut_at = ? WHERE one = 1`, last.id, last.hash, last.at); err != nil {
		return 0, fmt.Errorf("prune audit: checkpoint: %w", err)
	}
	res, err := tx.q.ExecContext(ctx, `DELETE FROM audit WHERE id > ? AND id <= ?`, cut, last.id)
	if err != nil {
		return 0, fmt.Errorf("prune audit: %w", err)
	}
	return res.RowsAffected()
}

// chainLegacyAudit chains the entries written before migration 0015 (in
// id order, from the genesis hash), once: the head's legacy flag says
// whether it is still to do. Runs at open, after the migrations and
// before any new entry.
func (db *DB) chainLegacyAudit(ctx context.Context) error {
	var legacy int
	if err := db.q.QueryRowContext(ctx, `SELECT legacy FROM audit_head WHERE one = 1`).Scan(&legacy); err != nil {
		return fmt.Errorf("audit chain: %w", err)
	}
	if legacy == 0 {
		return nil
	}
	tx, err := db.BeginTx(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	// The row lock keeps a second instance opening at the same moment out.
	var h AuditHead
	if err := tx.q.QueryRowContext(ctx, `UPDATE audit_head SET legacy = 0 WHERE one = 1 AND legacy = 1 RETURNING last_id, last_hash`).Scan(&h.LastID, &h.LastHash); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return nil // done by another instance
		}
		return fmt.Errorf("audit chain: %w", err)
	}
	var old []*AuditRow
	if err := tx.AuditChain(ctx, 0, func(a *AuditRow) error { old = append(old, a); return nil }); err != nil {
		return err
	}
	prev := make([]byte, sha256.Size)
	for _, a := range old {
		a.PrevHash = prev
		a.Hash = AuditHash(a)
		if _, err := tx.q.ExecContext(ctx, `UPDATE audit SET prev_hash = ?, hash = ? WHERE id = ?`, a.PrevHash, a.Hash, a.ID); err != nil {
			return fmt.Errorf("audit chain: %w", err)
		}
		prev = a.Hash
		h.LastID = a.ID
	}
	if len(old) > 0 {
		if _, err := tx.q.ExecContext(ctx, `UPDATE audit_head SET last_id = ?, last_hash = ? WHERE one = 1`, h.LastID, prev); err != nil {
			return fmt.Errorf("audit chain: %w", err)
		}
	}
	return tx.Commit()
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
	if _, err := q.q.ExecContext(ctx, `DELETE FROM dropoff_uploads WHERE transfer_id = ?`, id); err != nil {
		return fmt.Errorf("erase drop-off record: %w", err)
	}
	res, err := q.q.ExecContext(ctx, `DELETE FROM transfers WHERE id = ?`, id)
	return affected(res, err, ErrNotFound)
}

// Problems VerifyAudit finds.
const (
	AuditEdited     = "edited"      // an entry no longer matches its hash: changed (or moved to another id)
	AuditLink       = "link"        // an entry does not follow the one before it: one was deleted, inserted or moved there
	AuditBeyondHead = "beyond_head" // an entry after the chain's newest: inserted
	AuditTail       = "tail"        // the chain ends before its newest entry: the newest were deleted
)

// AuditBreak is the first place where the chain is broken.
type AuditBreak struct {
	ID      int64
	At      time.Time // the entry's time (AuditTail: of the last entry that is there)
	Problem string    // AuditEdited, AuditLink, AuditBeyondHead or AuditTail
}

// AuditVerdict is what VerifyAudit found.
type AuditVerdict struct {
	Head    *AuditHead
	Entries int64       // entries checked
	Break   *AuditBreak // nil: the chain is whole
}

// VerifyAudit walks the chain from the retention checkpoint to the head
// and reports the first break. One statement reads the head and the
// entries, so it sees one snapshot (SQLite's WAL read, PostgreSQL's
// statement snapshot) and can run while the server writes: an entry past
// the head is then one that was inserted, not one written meanwhile.
func (q Q) VerifyAudit(ctx context.Context) (*AuditVerdict, error) {
	rows, err := q.q.QueryContext(ctx, `SELECT h.last_id, h.last_hash, h.cut_id, h.cut_hash, h.cut_at,
		a.id, a.at, a.actor, a.action, a.object, a.result, a.ip, a.detail, a.role, a.reason, a.prev_hash, a.hash
		FROM audit_head h LEFT JOIN audit a ON a.id > h.cut_id WHERE h.one = 1 ORDER BY a.id`)
	if err != nil {
		return nil, fmt.Errorf("verify audit: %w", err)
	}
	defer rows.Close()
	var v *AuditVerdict
	var prev []byte
	var lastID int64
	var lastAt time.Time
	for rows.Next() {
		var h AuditHead
		var cutAt int64
		var id, at sql.NullInt64
		var actor, action, object, result, ip, detail, role, reason sql.NullString
		var a AuditRow
		if err := rows.Scan(&h.LastID, &h.LastHash, &h.CutID, &h.CutHash, &cutAt,
			&id, &at, &actor, &action, &object, &result, &ip, &detail, &role, &reason, &a.PrevHash, &a.Hash); err != nil {
			return nil, fmt.Errorf("verify audit: %w", err)
		}
		if v == nil {
			h.CutAt = fromMS(cutAt)
			v = &AuditVerdict{Head: &h}
			prev, lastID, lastAt = h.CutHash, h.CutID, h.CutAt
		}
		if !id.Valid {
			break // no entries after the checkpoint
		}
		a.ID, a.At = id.Int64, fromMS(at.Int64)
		a.Actor, a.Action, a.Object, a.Result = actor.String, action.String, object.String, result.String
		a.IP, a.Detail, a.Role, a.Reason = ip.String, detail.String, role.String, reason.String
		switch {
		case a.ID > v.Head.LastID:
			v.Break = &AuditBreak{ID: a.ID, At: a.At, Problem: AuditBeyondHead}
		case !bytes.Equal(AuditHash(&a), a.Hash):
			v.Break = &AuditBreak{ID: a.ID, At: a.At, Problem: AuditEdited}
		case !bytes.Equal(a.PrevHash, prev):
			v.Break = &AuditBreak{ID: a.ID, At: a.At, Problem: AuditLink}
		}
		if v.Break != nil {
			return v, nil
		}
		v.Entries++
		prev, lastID, lastAt = a.Hash, a.ID, a.At
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("verify audit: %w", err)
	}
	if v == nil {
		return nil, errors.New("verify audit: the chain head row is missing")
	}
	if lastID != v.Head.LastID || !bytes.Equal(prev, v.Head.LastHash) {
		v.Break = &AuditBreak{ID: lastID, At: lastAt, Problem: AuditTail}
	}
	return v, nil
}
