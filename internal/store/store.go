// Package store keeps Kluis's metadata in SQL: transfers, recipients,
// files, download sessions. SQLite (modernc.org/sqlite, pure Go) is the
// embedded default; PostgreSQL (pgx v5 through database/sql) is the
// alternative for several instances sharing one database ([Open] with a
// postgres:// URL).
//
// # Durability and erasure
//
// SQLite runs in WAL mode with one writer at a time (_txlock=immediate and a
// busy timeout), synchronous=FULL, and secure_delete on every connection
// (it is a per-connection pragma, so it lives in the DSN). After content is
// erased, Checkpoint truncates the WAL so deleted bytes survive neither in
// free pages nor in old WAL frames.
//
// On PostgreSQL, deleted rows stay in the table's pages as dead tuples (and
// in the WAL) until VACUUM reclaims them and the pages are reused; there is
// no equivalent of secure_delete. Erasure there relies on (auto)VACUUM and
// on the storage's own encryption, which is weaker than SQLite's overwrite.
//
// # Conventions
//
// Times are stored as Unix milliseconds (UTC). Methods that change several
// rows take a *Tx; callers use BeginTx, defer Rollback and Commit. SQL is
// written once, with ? placeholders and constructs both dialects share; on
// PostgreSQL the placeholders are rewritten to $1..$n (see rebind).
package store

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"path/filepath"
	"sort"
	"strings"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

//go:embed migrations
var migrations embed.FS

// ErrNotFound is returned when a row does not exist.
var ErrNotFound = errors.New("store: not found")

// ErrConflict is returned when a compare-and-swap update lost its race.
var ErrConflict = errors.New("store: concurrent update")

// Dialect is the SQL dialect of a database.
type Dialect int

const (
	SQLite Dialect = iota
	Postgres
)

func (d Dialect) String() string {
	if d == Postgres {
		return "postgres"
	}
	return "sqlite"
}

// DB is the metadata database.
type DB struct {
	Q
	db      *sql.DB
	dialect Dialect
	hold    *instanceHold // PostgreSQL: the instance lock (rekey.go)
	// claimant is this instance's own advisory lock key on PostgreSQL
	// (holdInstanceLock), recorded in the outbox rows it claims; 0 on
	// SQLite and for maintenance.
	claimant int64
}

// Dialect reports which SQL dialect the database speaks.
func (db *DB) Dialect() Dialect { return db.dialect }

// Open opens the metadata database named by spec: "" for SQLite at
// DATADIR/kluis.db, "sqlite:PATH" for SQLite at PATH, or a
// postgres:// or postgresql:// URL for PostgreSQL.
func Open(ctx context.Context, spec, dataDir string) (*DB, error) {
	switch {
	case spec == "":
		return OpenSQLite(ctx, filepath.Join(dataDir, "kluis.db"))
	case strings.HasPrefix(spec, "sqlite:"):
		path := strings.TrimPrefix(spec, "sqlite:")
		if path == "" {
			return nil, errors.New("--db sqlite:PATH: the path is empty")
		}
		return OpenSQLite(ctx, path)
	case strings.HasPrefix(spec, "postgres://"), strings.HasPrefix(spec, "postgresql://"):
		return OpenPostgres(ctx, spec)
	default:
		// Never echo spec: it may carry a password.
		return nil, errors.New("--db: give sqlite:PATH or a postgres:// URL")
	}
}

// OpenSQLite opens (creating if needed) the SQLite database at path and
// applies the migrations.
func OpenSQLite(ctx context.Context, path string) (*DB, error) {
	q := url.Values{}
	// busy_timeout first: the pragmas run in order on every new
	// connection, and switching to WAL needs a lock another connection
	// may hold for a moment.
	q.Add("_pragma", "busy_timeout(15000)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(FULL)")
	q.Add("_pragma", "secure_delete(ON)")
	q.Add("_pragma", "foreign_keys(ON)")
	// A page cache of up to 32 MiB per connection (SQLite's default is
	// 2 MiB), filled only as pages are read: the purge of a large backlog
	// reads the same index pages again and again, each a system call
	// without it (bench/README.md, "Scale").
	q.Add("_pragma", "cache_size(-32768)")
	q.Set("_txlock", "immediate")
	dsn := "file:" + path + "?" + q.Encode()
	sqldb, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	// Readers run in parallel under WAL; writers queue on the busy timeout.
	sqldb.SetMaxOpenConns(8)
	sqldb.SetConnMaxIdleTime(5 * time.Minute)
	db := &DB{Q: Q{sqldb}, db: sqldb, dialect: SQLite}
	if err := db.migrateRetrying(ctx); err != nil {
		sqldb.Close()
		return nil, err
	}
	// Table statistics for the query planner, where they are missing or
	// old (bounded work): without them SQLite may count a sender's drafts
	// through the index of all live transfers.
	if _, err := sqldb.ExecContext(ctx, "PRAGMA optimize=0x10002"); err != nil {
		sqldb.Close()
		return nil, fmt.Errorf("optimize database %s: %w", path, err)
	}
	return db, nil
}

// Optimize refreshes the query planner's statistics where the tables
// changed much (SQLite's PRAGMA optimize, bounded work; run it about
// hourly). On PostgreSQL autovacuum does this; it does nothing there.
func (db *DB) Optimize(ctx context.Context) error {
	if db.dialect == Postgres {
		return nil
	}
	_, err := db.db.ExecContext(ctx, "PRAGMA optimize")
	return err
}

// Close closes the database (on PostgreSQL it first gives up the instance
// lock, see rekey.go).
func (db *DB) Close() error {
	db.hold.release()
	db.hold = nil
	return db.db.Close()
}

// Ping checks that the database answers (for /readyz).
func (db *DB) Ping(ctx context.Context) error {
	var one int
	return db.db.QueryRowContext(ctx, "SELECT 1").Scan(&one)
}

// Checkpoint moves the WAL into the database file and truncates the WAL,
// so content deleted under secure_delete is gone from both files.
//
// On PostgreSQL it does nothing: deleted and overwritten tuples stay in
// the table files until VACUUM (autovacuum) reclaims the space and later
// writes reuse it, and in the WAL until it is recycled. Erasure there rests
// on VACUUM and the storage's own encryption; it is not as strong as
// SQLite's secure_delete with a truncated WAL.
func (db *DB) Checkpoint(ctx context.Context) error {
	if db.dialect == Postgres {
		return nil
	}
	_, err := db.db.ExecContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)")
	return err
}

// migrateRetrying runs the migrations, retrying while another process or
// connection holds the database: SQLite answers "busy" at once, without
// waiting for the busy timeout, when a fresh file is switched to WAL or two
// openers race on the first write.
func (db *DB) migrateRetrying(ctx context.Context) error {
	deadline := time.Now().Add(30 * time.Second)
	for wait := 10 * time.Millisecond; ; wait = min(2*wait, time.Second) {
		err := db.migrate(ctx)
		if err == nil || !strings.Contains(err.Error(), "SQLITE_BUSY") || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
	}
}

func (db *DB) migrate(ctx context.Context) error {
	if err := db.migrateSchema(ctx); err != nil {
		return err
	}
	if err := db.chainLegacyAudit(ctx); err != nil {
		return err
	}
	return db.recountStats(ctx, true)
}

func (db *DB) migrateSchema(ctx context.Context) error {
	if db.dialect == Postgres {
		return db.migratePostgres(ctx)
	}
	if _, err := db.db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (version TEXT PRIMARY KEY, applied_at INTEGER NOT NULL)`); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	names, err := fs.Glob(migrations, "migrations/sqlite/*.sql")
	if err != nil {
		return err
	}
	sort.Strings(names)
	for _, name := range names {
		version := strings.TrimSuffix(name[strings.LastIndex(name, "/")+1:], ".sql")
		tx, err := db.db.BeginTx(ctx, nil)
		if err != nil {
			return fmt.Errorf("migrate: %w", err)
		}
		var n int
		if err := tx.QueryRowContext(ctx, "SELECT count(*) FROM schema_migrations WHERE version = ?", version).Scan(&n); err != nil {
			tx.Rollback()
			return fmt.Errorf("migrate: %w", err)
		}
		if n > 0 {
			tx.Rollback()
			continue
		}
		body, err := migrations.ReadFile(name)
		if err != nil {
			tx.Rollback()
			return err
		}
		if _, err := tx.ExecContext(ctx, string(body)); err != nil {
			tx.Rollback()
			return fmt.Errorf("migrate %s: %w", version, err)
		}
		if _, err := tx.ExecContext(ctx, "INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)", version, time.Now().UnixMilli()); err != nil {
			tx.Rollback()
			return fmt.Errorf("migrate %s: %w", version, err)
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("migrate %s: %w", version, err)
		}
	}
	return nil
}

// Tx is a write transaction.
type Tx struct {
	Q
	tx *sql.Tx
	pg bool // PostgreSQL: the row and advisory locks of locks.go apply
}

// BeginTx starts a write transaction. Always defer Rollback.
//
// On SQLite write transactions run one at a time (_txlock=immediate). On
// PostgreSQL they run in parallel at READ COMMITTED: a transaction that
// reads rows and then writes on the strength of what it read must lock
// what it relies on first, with the narrowest lock that keeps its check
// true until the commit (locks.go): the transfer row for a transfer's
// state, files and recipients, the sender's advisory lock for per-sender
// quotas. Single statements that check and change at once (conditional
// updates, upserts) need no lock. Every statement waits at most 15 s for a
// lock (lock_timeout, set for each connection), like SQLite's busy
// timeout.
func (db *DB) BeginTx(ctx context.Context) (*Tx, error) {
	tx, err := db.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("begin: %w", err)
	}
	if db.dialect == Postgres {
		return &Tx{Q: Q{pgQuerier{tx}}, tx: tx, pg: true}, nil
	}
	return &Tx{Q: Q{tx}, tx: tx}, nil
}

// Commit commits the transaction.
func (tx *Tx) Commit() error { return tx.tx.Commit() }

// Rollback rolls back; it is a no-op after Commit.
func (tx *Tx) Rollback() error {
	err := tx.tx.Rollback()
	if errors.Is(err, sql.ErrTxDone) {
		return nil
	}
	return err
}

// Q runs queries on the database or inside a transaction; DB and Tx both
// embed it, so read helpers work in and out of transactions.
type Q struct{ q querier }

// postgres reports whether q runs on PostgreSQL.
func (q Q) postgres() bool {
	_, ok := q.q.(pgQuerier)
	return ok
}

// querier is what both *sql.DB and *sql.Tx offer, so read helpers work in
// and out of transactions.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func ms(t time.Time) int64 { return t.UnixMilli() }

func msPtr(t *time.Time) any {
	if t == nil {
		return nil
	}
	return t.UnixMilli()
}

func fromMS(v int64) time.Time { return time.UnixMilli(v).UTC() }

func fromNullMS(v sql.NullInt64) *time.Time {
	if !v.Valid {
		return nil
	}
	t := fromMS(v.Int64)
	return &t
}
