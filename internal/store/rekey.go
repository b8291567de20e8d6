package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ErrBusy is returned by [OpenSQLiteExclusive] when another process has
// the database open, which is almost always a running `kluis serve`.
var ErrBusy = errors.New("store: the database is in use by another process")

// OpenSQLiteExclusive opens the SQLite database at path for maintenance
// that must not run beside a server, such as a master key rotation. The
// single connection runs in exclusive locking mode and takes the lock at
// once; it keeps it until Close, so no other process can read or write in
// between. If another connection has the database open (in WAL mode every
// open connection, even an idle one, holds a shared lock), it waits at
// most busy and returns an error wrapping [ErrBusy]. Migrations are
// applied after the lock is taken.
func OpenSQLiteExclusive(ctx context.Context, path string, busy time.Duration) (*DB, error) {
	q := url.Values{}
	q.Add("_pragma", "busy_timeout("+strconv.FormatInt(busy.Milliseconds(), 10)+")")
	q.Add("_pragma", "locking_mode(EXCLUSIVE)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(FULL)")
	q.Add("_pragma", "secure_delete(ON)")
	q.Add("_pragma", "foreign_keys(ON)")
	q.Set("_txlock", "exclusive")
	sqldb, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	// One connection that lives until Close: the lock belongs to it.
	sqldb.SetMaxOpenConns(1)
	sqldb.SetMaxIdleConns(1)
	sqldb.SetConnMaxIdleTime(0)
	sqldb.SetConnMaxLifetime(0)
	db := &DB{Q: Q{sqldb}, db: sqldb}
	if err := db.lockNow(ctx); err != nil {
		sqldb.Close()
		if isBusy(err) {
			return nil, fmt.Errorf("%w (%s): %v", ErrBusy, path, err)
		}
		return nil, fmt.Errorf("lock database %s: %w", path, err)
	}
	if err := db.migrate(ctx); err != nil {
		sqldb.Close()
		return nil, err
	}
	return db, nil
}

// lockNow takes the exclusive lock with an empty write transaction; in
// exclusive locking mode the connection keeps it after the commit.
func (db *DB) lockNow(ctx context.Context) error {
	tx, err := db.db.BeginTx(ctx, nil) // BEGIN EXCLUSIVE (_txlock)
	if err != nil {
		return err
	}
	// Writing a temporary table is not enough to take the database lock;
	// reading the schema is, and BEGIN EXCLUSIVE already asked for it.
	var n int
	if err := tx.QueryRowContext(ctx, "SELECT count(*) FROM sqlite_master").Scan(&n); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

// isBusy reports SQLITE_BUSY or SQLITE_LOCKED (also in extended codes).
func isBusy(err error) bool {
	var coded interface{ Code() int }
	if errors.As(err, &coded) {
		c := coded.Code() & 0xff
		return c == 5 || c == 6
	}
	return false
}

// SealedColumn names a column whose values are sealed under the master key.
type SealedColumn struct {
	Table  string
	Column string
	// RowID is the SQL expression, over the table's columns, that gives the
	// row id the value was sealed with, in SQLite's dialect: the primary key
	// column itself ("id"), or the lower-case hex of a binary primary key
	// ("lower(hex(id_hash))"). PostgreSQL needs the key column to page by,
	// so only these two forms are accepted there.
	RowID string
}

func (c SealedColumn) String() string { return c.Table + "." + c.Column }

// ResealFunc returns the new value for one sealed value, or nil to keep it
// as it is. An error stops [DB.Reseal] and rolls everything back.
type ResealFunc func(col SealedColumn, rowID string, sealed []byte) ([]byte, error)

// ResealCount is what [DB.Reseal] did in one column.
type ResealCount struct {
	Column   SealedColumn
	Resealed int // values rewritten
	Kept     int // values fn returned nil for
}

// Reseal runs fn over every non-NULL value of cols and writes the values
// it returns back, all in one transaction: either every value is rewritten
// or none is. Table and column names come from our own code, never from
// input. On SQLite it pages by rowid; on PostgreSQL by the table's primary
// key (see [SealedColumn.RowID]), and it checks before the commit that the
// exclusive instance lock of [OpenPostgresExclusive] is still held, so no
// server can have started in between.
func (db *DB) Reseal(ctx context.Context, cols []SealedColumn, fn ResealFunc) ([]ResealCount, error) {
	if db.dialect == Postgres {
		return db.resealPostgres(ctx, cols, fn)
	}
	tx, err := db.BeginTx(ctx)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	counts := make([]ResealCount, 0, len(cols))
	for _, col := range cols {
		// Page by rowid.
		page := func(last any) (string, []any) {
			if last == nil {
				last = int64(-1 << 63)
			}
			return fmt.Sprintf("SELECT rowid, %s, %s FROM %s WHERE %s IS NOT NULL AND rowid > ? ORDER BY rowid LIMIT 256",
				col.RowID, col.Column, col.Table, col.Column), []any{last}
		}
		upd := fmt.Sprintf("UPDATE %s SET %s = ? WHERE rowid = ?", col.Table, col.Column)
		c, err := resealPages(ctx, tx.tx, col, fn, page, upd)
		if err != nil {
			return nil, err
		}
		counts = append(counts, c)
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("reseal: commit: %w", err)
	}
	return counts, nil
}

// resealPages re-seals col in tx a page at a time, so memory stays bounded
// and no cursor is open while it writes. page gives the query (and its
// arguments) for the rows after the key last (nil before the first page):
// key, row id and sealed value, ordered by key, 256 at most. upd writes a
// new value ($1) to the row with a key ($2).
func resealPages(ctx context.Context, tx *sql.Tx, col SealedColumn, fn ResealFunc, page func(last any) (string, []any), upd string) (ResealCount, error) {
	c := ResealCount{Column: col}
	var last any // the last key of the previous page; nil before the first
	for {
		type item struct {
			key    any
			id     string
			sealed []byte
		}
		var batch []item
		q, args := page(last)
		rows, err := tx.QueryContext(ctx, q, args...)
		if err != nil {
			return c, fmt.Errorf("reseal %s: %w", col, err)
		}
		for rows.Next() {
			var it item
			if err := rows.Scan(&it.key, &it.id, &it.sealed); err != nil {
				rows.Close()
				return c, fmt.Errorf("reseal %s: %w", col, err)
			}
			batch = append(batch, it)
		}
		if err := rows.Close(); err != nil {
			return c, fmt.Errorf("reseal %s: %w", col, err)
		}
		if err := rows.Err(); err != nil {
			return c, fmt.Errorf("reseal %s: %w", col, err)
		}
		if len(batch) == 0 {
			return c, nil
		}
		for _, it := range batch {
			last = it.key
			out, err := fn(col, it.id, it.sealed)
			if err != nil {
				return c, fmt.Errorf("reseal %s of row %s: %w", col, it.id, err)
			}
			if out == nil {
				c.Kept++
				continue
			}
			if _, err := tx.ExecContext(ctx, upd, out, it.key); err != nil {
				return c, fmt.Errorf("reseal %s of row %s: %w", col, it.id, err)
			}
			c.Resealed++
		}
	}
}

// Migration is one applied schema migration.
type Migration struct {
	Version   string
	AppliedAt time.Time
}

// Migrations lists the applied schema migrations, oldest version first.
func (q Q) Migrations(ctx context.Context) ([]Migration, error) {
	rows, err := q.q.QueryContext(ctx, "SELECT version, applied_at FROM schema_migrations ORDER BY version")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Migration
	for rows.Next() {
		var m Migration
		var at int64
		if err := rows.Scan(&m.Version, &at); err != nil {
			return nil, err
		}
		m.AppliedAt = fromMS(at)
		out = append(out, m)
	}
	return out, rows.Err()
}

// # Maintenance on PostgreSQL
//
// Several instances share a PostgreSQL database, so "stop the server" cannot
// be checked with a file lock as on SQLite. Instead every process that opens
// the database with [OpenPostgres] (kluis serve, and the admin commands that
// may run beside it) holds a session-level advisory lock, instanceLockKey, in
// shared mode on one dedicated connection for as long as it has the database
// open. [OpenPostgresExclusive] takes the same lock in exclusive mode: it
// succeeds only when no such process is connected, and while it holds the
// lock no instance can start (OpenPostgres refuses with [ErrMaintenance]).
// Advisory locks belong to the connection, so a crashed instance releases
// its lock at once, and the lock is per database, so instances sharing one
// database see each other wherever they run.

// instanceLockKey is held shared by every open [DB] on PostgreSQL and
// exclusively by maintenance ([OpenPostgresExclusive]).
const instanceLockKey int64 = 0x6b6c7569735f696e // "kluis_in"

// ErrMaintenance is returned by [OpenPostgres] while maintenance that needs
// the database to itself (a master key rotation) holds it.
var ErrMaintenance = errors.New("store: maintenance (a master key rotation) holds the database; start again when it has finished")

// instanceHold keeps the instance lock on one dedicated connection, and
// with it the instance's own key (see [DB.ClaimOutbox]).
type instanceHold struct {
	exclusive bool  // maintenance ([OpenPostgresExclusive]), not an instance
	key       int64 // this instance's own advisory lock, held exclusively; 0 for maintenance
	mu        sync.Mutex
	conn      *sql.Conn
	stop      chan struct{}
	done      chan struct{}
	closed    bool
}

// holdInstanceLock takes the instance lock in shared mode on a dedicated
// connection and keeps it: a watcher checks the connection every 30 s and,
// if it was lost (a database restart or a broken network path), takes the
// lock again on a new one, so the process stays visible to maintenance.
//
// On the same connection it holds a lock of its own, under a random key
// that names this instance while it lives: outbox claims record it, and a
// claim whose instance no longer holds its key is free at once
// ([DB.ClaimOutbox]).
func (db *DB) holdInstanceLock(ctx context.Context) error {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return err
	}
	// Positive and never 0, so that the key's halves read back from
	// pg_locks as they are stored.
	key := int64(binary.BigEndian.Uint64(b[:])>>2) | 1
	conn, err := db.sharedInstanceLock(ctx, key)
	if err != nil {
		return err
	}
	h := &instanceHold{conn: conn, key: key, stop: make(chan struct{}), done: make(chan struct{})}
	db.hold, db.claimant = h, key
	go h.watch(db)
	return nil
}

func (db *DB) sharedInstanceLock(ctx context.Context, key int64) (*sql.Conn, error) {
	conn, err := db.db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("open postgres database: %w", err)
	}
	var ok bool
	if err := conn.QueryRowContext(ctx, "SELECT pg_try_advisory_lock_shared($1)", instanceLockKey).Scan(&ok); err != nil {
		conn.Close()
		return nil, fmt.Errorf("open postgres database: instance lock: %w", err)
	}
	if !ok {
		conn.Close()
		return nil, ErrMaintenance
	}
	if err := conn.QueryRowContext(ctx, "SELECT pg_try_advisory_lock($1)", key).Scan(&ok); err != nil || !ok {
		// Closing returns the connection to the pool with its session,
		// so give the shared lock up first.
		conn.ExecContext(ctx, "SELECT pg_advisory_unlock_all()")
		conn.Close()
		if err == nil {
			err = errors.New("another session holds this instance's key")
		}
		return nil, fmt.Errorf("open postgres database: instance key: %w", err)
	}
	return conn, nil
}

func (h *instanceHold) watch(db *DB) {
	defer close(h.done)
	tick := time.NewTicker(30 * time.Second)
	defer tick.Stop()
	for {
		select {
		case <-h.stop:
			return
		case <-tick.C:
		}
		h.mu.Lock()
		conn := h.conn
		h.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if conn != nil {
			if err := conn.PingContext(ctx); err == nil {
				cancel()
				continue
			}
			conn.Close()
		}
		// Lost: take the lock again on a fresh connection (waiting, if a
		// rotation holds it, until the next tick).
		conn, err := db.sharedInstanceLock(ctx, h.key)
		cancel()
		h.mu.Lock()
		if err != nil {
			h.conn = nil
		} else if h.closed {
			conn.Close()
		} else {
			h.conn = conn
		}
		h.mu.Unlock()
	}
}

// release stops the watcher and gives the lock up (closing the connection
// ends the session, and with it the lock).
func (h *instanceHold) release() {
	if h == nil {
		return
	}
	if h.stop != nil {
		close(h.stop)
		<-h.done
	}
	h.mu.Lock()
	h.closed = true
	if h.conn != nil {
		// Closing a *sql.Conn only returns it to the pool, where the
		// session (and its advisory lock) lives on until the pool closes,
		// and even then the server lets go a moment later. Unlock first,
		// so the lock is gone when release returns.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		h.conn.ExecContext(ctx, "SELECT pg_advisory_unlock_all()")
		cancel()
		h.conn.Close()
		h.conn = nil
	}
	h.mu.Unlock()
}

// alive reports whether the held connection still answers; for the
// exclusive hold of maintenance, which has no watcher.
func (h *instanceHold) alive(ctx context.Context) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.conn == nil {
		return errors.New("the instance lock's connection is gone")
	}
	return h.conn.PingContext(ctx)
}

// OpenPostgresExclusive opens the PostgreSQL database at dsn for
// maintenance that must not run beside a server, such as a master key
// rotation. It takes the instance lock exclusively and keeps it until
// Close. If any other process has the database open through Kluis (a
// running kluis serve on any host, or an admin command), it returns an
// error wrapping [ErrBusy] that says who: the process id on the database
// server, the client address and since when. Migrations are applied after
// the lock is taken.
func OpenPostgresExclusive(ctx context.Context, dsn string) (*DB, error) {
	sqldb, err := openPostgresPool(ctx, dsn)
	if err != nil {
		return nil, err
	}
	sqldb.SetMaxOpenConns(4)
	db := &DB{Q: Q{pgQuerier{sqldb}}, db: sqldb, dialect: Postgres}
	conn, err := sqldb.Conn(ctx)
	if err != nil {
		sqldb.Close()
		return nil, fmt.Errorf("open postgres database: %w", err)
	}
	var ok bool
	if err := conn.QueryRowContext(ctx, "SELECT pg_try_advisory_lock($1)", instanceLockKey).Scan(&ok); err != nil {
		conn.Close()
		sqldb.Close()
		return nil, fmt.Errorf("open postgres database: instance lock: %w", err)
	}
	if !ok {
		who := db.instanceHolders(ctx, conn)
		conn.Close()
		sqldb.Close()
		return nil, fmt.Errorf("%w: %s", ErrBusy, who)
	}
	db.hold = &instanceHold{conn: conn, exclusive: true}
	if err := db.migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

// instanceHolders describes the sessions holding the instance lock, for
// the refusal message. The columns used are visible to every role.
func (db *DB) instanceHolders(ctx context.Context, conn *sql.Conn) string {
	// Advisory locks belong to one database; pg_locks lists every
	// database's, so only this one's count. A 64-bit key shows as classid
	// (high half) and objid (low half).
	key := instanceLockKey
	rows, err := conn.QueryContext(ctx, `SELECT l.pid, coalesce(host(a.client_addr), 'local socket'), coalesce(to_char(a.backend_start AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS'), '?')
		FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid
		WHERE l.locktype = 'advisory' AND l.granted AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) AND l.classid::bigint = $1 AND l.objid::bigint = $2 AND l.objsubid = 1
		ORDER BY l.pid`, int64(uint64(key)>>32), int64(uint64(key)&0xffffffff))
	if err != nil {
		return "other processes have the database open"
	}
	defer rows.Close()
	var who []string
	for rows.Next() {
		var pid int64
		var addr, since string
		if err := rows.Scan(&pid, &addr, &since); err != nil {
			break
		}
		who = append(who, fmt.Sprintf("pid %d from %s since %s UTC", pid, addr, since))
	}
	if len(who) == 0 {
		return "other processes have the database open"
	}
	return fmt.Sprintf("%d Kluis process(es) have the database open (database sessions: %s)", len(who), strings.Join(who, "; "))
}

// pgKey returns the primary key column to page by and the PostgreSQL
// expression of the row id, from the SQLite-dialect RowID.
func (c SealedColumn) pgKey() (key, rowID string, err error) {
	if inner, ok := strings.CutPrefix(c.RowID, "lower(hex("); ok {
		if k, ok := strings.CutSuffix(inner, "))"); ok && isIdent(k) {
			return k, "encode(" + k + ", 'hex')", nil
		}
	}
	if isIdent(c.RowID) {
		return c.RowID, c.RowID, nil
	}
	return "", "", fmt.Errorf("reseal %s: row id %q has no PostgreSQL form (give the key column or lower(hex(KEY)))", c, c.RowID)
}

func isIdent(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if !(r == '_' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}

// resealPostgres is Reseal on PostgreSQL: one transaction (a write
// transaction of [DB.BeginTx], so it also holds the writer lock), paging
// each table by its primary key.
func (db *DB) resealPostgres(ctx context.Context, cols []SealedColumn, fn ResealFunc) ([]ResealCount, error) {
	if db.hold == nil || !db.hold.exclusive {
		return nil, errors.New("reseal: open the database with OpenPostgresExclusive (no server may run during a rotation)")
	}
	tx, err := db.BeginTx(ctx)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	// A rotation re-seals every row; wait for row locks as long as it takes
	// rather than BeginTx's 15 s (nothing else may run anyway).
	if _, err := tx.tx.ExecContext(ctx, "SET LOCAL lock_timeout = 0"); err != nil {
		return nil, fmt.Errorf("reseal: %w", err)
	}
	counts := make([]ResealCount, 0, len(cols))
	for _, col := range cols {
		key, rowID, err := col.pgKey()
		if err != nil {
			return nil, err
		}
		page := func(last any) (string, []any) {
			q := fmt.Sprintf("SELECT %s, %s, %s FROM %s WHERE %s IS NOT NULL", key, rowID, col.Column, col.Table, col.Column)
			args := []any{}
			if last != nil {
				q += fmt.Sprintf(" AND %s > $1", key)
				args = append(args, last)
			}
			return q + fmt.Sprintf(" ORDER BY %s LIMIT 256", key), args
		}
		upd := fmt.Sprintf("UPDATE %s SET %s = $1 WHERE %s = $2", col.Table, col.Column, key)
		c, err := resealPages(ctx, tx.tx, col, fn, page, upd)
		if err != nil {
			return nil, err
		}
		counts = append(counts, c)
	}
	if err := db.hold.alive(ctx); err != nil {
		return nil, fmt.Errorf("reseal: lost the exclusive instance lock (%v); nothing was changed, run again", err)
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("reseal: commit: %w", err)
	}
	return counts, nil
}

// OpenExclusive opens the database named by spec (as [Open] takes it) for
// maintenance that needs it to itself: [OpenSQLiteExclusive] for SQLite
// (waiting at most busy for other connections to go), or
// [OpenPostgresExclusive]. It never creates a SQLite database.
func OpenExclusive(ctx context.Context, spec, dataDir string, busy time.Duration) (*DB, error) {
	switch {
	case strings.HasPrefix(spec, "postgres://"), strings.HasPrefix(spec, "postgresql://"):
		return OpenPostgresExclusive(ctx, spec)
	}
	path, err := sqlitePath(spec, dataDir)
	if err != nil {
		return nil, err
	}
	return OpenSQLiteExclusive(ctx, path, busy)
}

// OpenExisting opens the database named by spec (as [Open] takes it) for
// administration: like Open, but a SQLite database must exist already, so
// a mistyped data folder is not silently replaced by an empty database.
func OpenExisting(ctx context.Context, spec, dataDir string) (*DB, error) {
	switch {
	case strings.HasPrefix(spec, "postgres://"), strings.HasPrefix(spec, "postgresql://"):
		return OpenPostgres(ctx, spec)
	}
	path, err := sqlitePath(spec, dataDir)
	if err != nil {
		return nil, err
	}
	return OpenSQLite(ctx, path)
}

// sqlitePath resolves a SQLite spec ("" or sqlite:PATH) to an existing
// database file.
func sqlitePath(spec, dataDir string) (string, error) {
	var path string
	switch {
	case spec == "":
		path = filepath.Join(dataDir, "kluis.db")
	case strings.HasPrefix(spec, "sqlite:"):
		path = strings.TrimPrefix(spec, "sqlite:")
		if path == "" {
			return "", errors.New("--db sqlite:PATH: the path is empty")
		}
	default:
		// Never echo spec: it may carry a password.
		return "", errors.New("--db: give sqlite:PATH or a postgres:// URL")
	}
	if st, err := os.Stat(path); err != nil || !st.Mode().IsRegular() {
		if spec == "" {
			return "", fmt.Errorf("no Kluis database in %s: give the server's data folder with --data, or the database with --db", dataDir)
		}
		return "", fmt.Errorf("no Kluis database at %s: check --db", path)
	}
	return path, nil
}

// NewestSealedIdentity returns the wrapped identity of the most recently
// created transfer that still has one, or nil if there is none; its key id
// tells which master key the database is sealed under.
func (q Q) NewestSealedIdentity(ctx context.Context) ([]byte, error) {
	var b []byte
	err := q.q.QueryRowContext(ctx, `SELECT identity_sealed FROM transfers WHERE identity_sealed IS NOT NULL ORDER BY created_at DESC LIMIT 1`).Scan(&b)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	return b, err
}
