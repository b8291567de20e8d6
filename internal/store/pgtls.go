package store

import (
	"context"
	"crypto/tls"
	"database/sql"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"os"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
)

// openPostgresPool opens a pool for dsn with the TLS rule of
// [ResolvePostgres] and checks that a connection can be made.
func openPostgresPool(ctx context.Context, dsn string) (*sql.DB, error) {
	cfg, t, err := ResolvePostgres(dsn)
	if err != nil {
		return nil, err
	}
	// Like SQLite's busy timeout: a statement waits at most 15 s for a row
	// or advisory lock, then fails rather than hang (a pool full of
	// waiting writers would otherwise never let the holder finish). An
	// operator's own lock_timeout in the URL wins.
	if _, ok := cfg.RuntimeParams["lock_timeout"]; !ok {
		if cfg.RuntimeParams == nil {
			cfg.RuntimeParams = map[string]string{}
		}
		cfg.RuntimeParams["lock_timeout"] = "15s"
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
