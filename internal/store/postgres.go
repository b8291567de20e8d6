package store

import (
	"context"
	"database/sql"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" driver
)

// Advisory lock keys (PostgreSQL). Advisory locks are per database, so
// instances sharing a database share these locks.
const (
	// migrateLockKey is held by the transaction that applies one migration,
	// so instances starting at once migrate once.
	migrateLockKey int64 = 0x6b6c7569735f6d67 // "kluis_mg"
)

// OpenPostgres opens the PostgreSQL database at dsn (a postgres:// URL,
// through pgx v5's database/sql driver, with the TLS rule of
// [ResolvePostgres]) and applies the migrations. Errors never include dsn,
// which may carry a password.
func OpenPostgres(ctx context.Context, dsn string) (*DB, error) {
	sqldb, err := openPostgresPool(ctx, dsn)
	if err != nil {
		return nil, err
	}
	sqldb.SetMaxOpenConns(16)
	sqldb.SetMaxIdleConns(4)
	sqldb.SetConnMaxIdleTime(5 * time.Minute)
	db := &DB{Q: Q{pgQuerier{sqldb}}, db: sqldb, dialect: Postgres}
	// Held (shared) while open, so maintenance sees this process; refused
	// while a master key rotation holds it (rekey.go).
	if err := db.holdInstanceLock(ctx); err != nil {
		sqldb.Close()
		return nil, err
	}
	if err := db.migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

// migratePostgres applies migrations/postgres/*.sql, each in its own
// transaction under an advisory lock: a second instance waits for the
// first and then finds the migration recorded.
func (db *DB) migratePostgres(ctx context.Context) error {
	names, err := fs.Glob(migrations, "migrations/postgres/*.sql")
	if err != nil {
		return err
	}
	sort.Strings(names)
	for _, name := range names {
		version := strings.TrimSuffix(name[strings.LastIndex(name, "/")+1:], ".sql")
		if err := db.migratePostgresOne(ctx, name, version); err != nil {
			return err
		}
	}
	return nil
}

func (db *DB) migratePostgresOne(ctx context.Context, name, version string) error {
	tx, err := db.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	defer tx.Rollback()
	// Another instance may be building an index for minutes: wait for it
	// rather than give up after the connection's lock_timeout.
	if _, err := tx.ExecContext(ctx, "SET LOCAL lock_timeout = 0"); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if _, err := tx.ExecContext(ctx, "SELECT pg_advisory_xact_lock($1)", migrateLockKey); err != nil {
		return fmt.Errorf("migrate: lock: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (version TEXT PRIMARY KEY, applied_at BIGINT NOT NULL)`); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	var n int
	if err := tx.QueryRowContext(ctx, "SELECT count(*) FROM schema_migrations WHERE version = $1", version).Scan(&n); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if n > 0 {
		return nil
	}
	body, err := migrations.ReadFile(name)
	if err != nil {
		return err
	}
	// No arguments: pgx sends it with the simple protocol, which takes
	// several statements.
	if _, err := tx.ExecContext(ctx, string(body)); err != nil {
		return fmt.Errorf("migrate %s: %w", version, err)
	}
	if _, err := tx.ExecContext(ctx, "INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)", version, time.Now().UnixMilli()); err != nil {
		return fmt.Errorf("migrate %s: %w", version, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("migrate %s: %w", version, err)
	}
	return nil
}

// pgQuerier runs the package's ?-placeholder SQL on PostgreSQL.
type pgQuerier struct{ q querier }

func (p pgQuerier) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	return p.q.ExecContext(ctx, rebind(query), args...)
}

func (p pgQuerier) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	return p.q.QueryContext(ctx, rebind(query), args...)
}

func (p pgQuerier) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	return p.q.QueryRowContext(ctx, rebind(query), args...)
}

// rebind rewrites ? placeholders to $1, $2, ... for PostgreSQL. A ? inside
// a single-quoted literal is left alone (the package's SQL has none; a test
// checks that).
func rebind(query string) string {
	if !strings.Contains(query, "?") {
		return query
	}
	var b strings.Builder
	b.Grow(len(query) + 16)
	n := 0
	quoted := false
	for i := 0; i < len(query); i++ {
		c := query[i]
		switch {
		case c == '\'':
			quoted = !quoted
			b.WriteByte(c)
		case c == '?' && !quoted:
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}
