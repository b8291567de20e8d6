package store

import (
	"context"
	"crypto/tls"
	"database/sql"
	"fmt"
	"io/fs"
	"net/netip"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib" // also registers the "pgx" driver
)

// Advisory lock keys (PostgreSQL). Advisory locks are per database, so
// instances sharing a database share these locks.
const (
	// migrateLockKey is held by the transaction that applies one migration,
	// so instances starting at once migrate once.
	migrateLockKey int64 = 0x6b6c7569735f6d67 // "kluis_mg"
	// writerLockKey is held by every write transaction (BeginTx), so
	// write transactions run one at a time, as on SQLite.
	writerLockKey int64 = 0x6b6c7569735f7778 // "kluis_wx"
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

// openPostgresPool opens a pool for dsn with the TLS rule of
// [ResolvePostgres] and checks that a connection can be made.
func openPostgresPool(ctx context.Context, dsn string) (*sql.DB, error) {
	cfg, t, err := ResolvePostgres(dsn)
	if err != nil {
		return nil, err
	}
	sqldb := stdlib.OpenDB(*cfg)
	if err := sqldb.PingContext(ctx); err != nil {
		sqldb.Close()
		if !t.Explicit && !t.Local {
			return nil, fmt.Errorf("open postgres database (TLS with certificate and host name checks is required for a host that is not loopback; "+
				"add ?sslmode=... to the URL only if you must choose otherwise): %w", err)
		}
		return nil, fmt.Errorf("open postgres database: %w", err)
	}
	return sqldb, nil
}

// PostgresTLS is how Kluis secures its connection to PostgreSQL.
type PostgresTLS struct {
	// Mode is the sslmode in effect (libpq's names).
	Mode string
	// Explicit: the URL has sslmode (or ssl), or PGSSLMODE is set.
	Explicit bool
	// Local: every host is loopback (localhost, 127.0.0.0/8, ::1) or a
	// Unix socket.
	Local bool
}

// Warning returns a sentence for the log when the connection to a host
// that is not local is not TLS with full certificate checks; else "".
func (t PostgresTLS) Warning() string {
	if t.Local {
		return ""
	}
	switch t.Mode {
	case "verify-full":
		return ""
	case "verify-ca":
		return "PostgreSQL: sslmode=verify-ca checks the certificate but not that it names the host; use sslmode=verify-full"
	case "disable", "allow", "prefer":
		return "PostgreSQL: sslmode=" + t.Mode + " lets the connection to the database run without TLS (passwords and data in plain on the network); use sslmode=verify-full"
	default:
		return "PostgreSQL: sslmode=" + t.Mode + " encrypts but does not check the server's certificate, so anyone on the network path can pose as the database; use sslmode=verify-full"
	}
}

// sslModes are libpq's sslmode values.
var sslModes = map[string]bool{"disable": true, "allow": true, "prefer": true, "require": true, "verify-ca": true, "verify-full": true}

// ResolvePostgres parses a postgres:// URL into pgx's configuration with
// Kluis's TLS rule: when the URL (or PGSSLMODE) names no sslmode and a host
// is not loopback or a Unix socket, sslmode is verify-full (TLS, the
// certificate checked against the system's roots or sslrootcert, and the
// host name), where pgx and libpq would use prefer (TLS if offered,
// unchecked, else plain text). An explicit sslmode is honoured; a local
// host keeps libpq's default. Errors never include dsn.
func ResolvePostgres(dsn string) (*pgx.ConnConfig, PostgresTLS, error) {
	var t PostgresTLS
	u, err := url.Parse(dsn)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return nil, t, errors.New("--db: not a valid postgres:// URL; write postgres://USER:PASS@HOST:PORT/DBNAME?sslmode=verify-full (percent-encode / # @ in the password)")
	}
	q := u.Query()
	if m := q.Get("sslmode"); m != "" && !sslModes[m] {
		return nil, t, fmt.Errorf("--db: sslmode=%q is not one of disable, allow, prefer, require, verify-ca, verify-full", m)
	}
	t.Explicit = q.Has("sslmode") || q.Has("ssl") || os.Getenv("PGSSLMODE") != ""
	cfg, err := parsePostgres(dsn)
	if err != nil {
		return nil, t, err
	}
	t.Local = isLocalPostgres(cfg)
	if !t.Explicit && !t.Local {
		q.Set("sslmode", "verify-full")
		u.RawQuery = q.Encode()
		if cfg, err = parsePostgres(u.String()); err != nil {
			return nil, t, err
		}
	}
	t.Mode = effectiveSSLMode(cfg)
	return cfg, t, nil
}

// parsePostgres is pgx.ParseConfig with an error that holds no part of dsn.
func parsePostgres(dsn string) (*pgx.ConnConfig, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		// pgx's message quotes the URL (password redacted, the rest not);
		// keep only what is wrong.
		msg := "check its form: postgres://USER:PASS@HOST:PORT/DBNAME?sslmode=verify-full"
		var pe *pgconn.ParseConfigError
		if errors.As(err, &pe) && pe.Unwrap() != nil && !strings.Contains(pe.Unwrap().Error(), "://") {
			msg = pe.Unwrap().Error()
		}
		return nil, errors.New("--db: the PostgreSQL URL cannot be used: " + msg)
	}
	return cfg, nil
}

// isLocalPostgres: every host cfg may connect to is loopback or a Unix
// socket. A host name other than localhost counts as remote even if it
// resolves to loopback: what it resolves to can change.
func isLocalPostgres(cfg *pgx.ConnConfig) bool {
	hosts := []string{cfg.Host}
	for _, f := range cfg.Fallbacks {
		hosts = append(hosts, f.Host)
	}
	for _, h := range hosts {
		if network, _ := pgconn.NetworkAddress(h, 5432); network == "unix" || strings.EqualFold(h, "localhost") {
			continue
		}
		ip, err := netip.ParseAddr(h)
		if err != nil || !ip.Unmap().IsLoopback() {
			return false
		}
	}
	return true
}

// effectiveSSLMode names, in libpq's terms, what the resolved TLS
// configuration of the first remote host does.
func effectiveSSLMode(cfg *pgx.ConnConfig) string {
	tlsOf := []*tls.Config{cfg.TLSConfig}
	for _, f := range cfg.Fallbacks {
		if f.Host == cfg.Host && f.Port == cfg.Port {
			tlsOf = append(tlsOf, f.TLSConfig)
		}
	}
	first, plainFallback := tlsOf[0], false
	for _, c := range tlsOf[1:] {
		if c == nil {
			plainFallback = true
		}
	}
	switch {
	case first == nil && len(tlsOf) > 1:
		return "allow"
	case first == nil:
		return "disable"
	case plainFallback:
		return "prefer"
	case !first.InsecureSkipVerify:
		return "verify-full"
	case first.VerifyPeerCertificate != nil:
		return "verify-ca"
	default:
		return "require"
	}
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
