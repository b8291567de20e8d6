// Package storetest gives tests a fresh PostgreSQL database, so the store
// conformance suite and engine tests can run against PostgreSQL as well as
// SQLite.
//
// Set KLUIS_TEST_POSTGRES_URL to an administrator URL (one that may CREATE
// DATABASE), e.g. postgres://postgres@127.0.0.1:55432/postgres?sslmode=disable.
// Without it the PostgreSQL tests skip, except under CI=true, where they fail.
package storetest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" driver
)

// EnvPostgres names the environment variable with the administrator URL.
const EnvPostgres = "KLUIS_TEST_POSTGRES_URL"

// Postgres creates a fresh, empty database kluis_test_<random> and returns
// its URL; the database is dropped when the test ends (after the test's own
// cleanups, so register closing handles after calling Postgres). It skips
// the test when KLUIS_TEST_POSTGRES_URL is unset, and fails it under CI=true.
func Postgres(t testing.TB) string {
	t.Helper()
	admin := RequirePostgres(t)
	u, err := url.Parse(admin)
	if err != nil {
		t.Fatalf("%s: not a URL", EnvPostgres)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	adb, err := sql.Open("pgx", admin)
	if err != nil {
		t.Fatalf("open %s: %v", EnvPostgres, err)
	}
	var b [8]byte
	rand.Read(b[:])
	name := "kluis_test_" + hex.EncodeToString(b[:])
	if _, err := adb.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		adb.Close()
		t.Fatalf("create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		defer adb.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := adb.ExecContext(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("drop database %s: %v", name, err)
		}
	})
	u.Path = "/" + name
	return u.String()
}

// RequirePostgres returns the administrator URL from KLUIS_TEST_POSTGRES_URL.
// Unset, it skips the test with a clear message, or fails it under CI=true.
func RequirePostgres(t testing.TB) string {
	t.Helper()
	admin := os.Getenv(EnvPostgres)
	if admin == "" {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is not set; CI must run the PostgreSQL tests (.ci/run starts a server)", EnvPostgres)
		}
		t.Skipf("PostgreSQL tests skipped: set %s to an administrator URL, e.g. postgres://postgres@127.0.0.1:55432/postgres?sslmode=disable", EnvPostgres)
	}
	return admin
}
