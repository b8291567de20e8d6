// Package apptest starts the real Kluis server (package app) for a test:
// on 127.0.0.1:0, with a temporary data folder, the tests' cheap engine
// settings, a kluistest.Clock and a kluistest.Logs. Tests of the API, the
// server, the engine and the benchmarks use it instead of building the
// parts themselves, so they exercise the program as it runs.
//
// Packages that package app imports cannot use it in their internal tests
// (an import cycle); their tests use package kluistest directly.
package apptest

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kluis-nl/kluis/internal/app"
	"github.com/kluis-nl/kluis/internal/config"
	"github.com/kluis-nl/kluis/internal/kluistest"
	"github.com/kluis-nl/kluis/internal/mail"
	"github.com/kluis-nl/kluis/internal/mail/devbox"
	"github.com/kluis-nl/kluis/internal/ratelimit"
	"github.com/kluis-nl/kluis/internal/transfer"
)

// Options describe the server that New and Start build. The zero value is
// kluis serve with a fresh data folder on 127.0.0.1:0, SQLite, the
// development mailbox, no policy file and no rate limits, on a Clock at the
// real time and logging into Logs.
type Options struct {
	// Dir is the data folder; "": a new temporary one. A second App on the
	// same Dir (and DB) is a restart, or a second instance.
	Dir string
	// DB is --db: "" (SQLite in Dir) or a PostgreSQL URL (storetest.Postgres).
	DB string
	// Args are more flags of kluis serve, such as "--trusted-proxy",
	// "127.0.0.1" or "--rate-limit", "60".
	Args []string
	// Env holds KLUIS_* (and AWS_*) variables; the process's own
	// environment is never read.
	Env map[string]string
	// Policy, if set, is the policy file (JSON): written into Dir and
	// passed as --policy.
	Policy string
	// Engine adjusts the engine's settings after the tests' own cheap ones
	// (TestConfig).
	Engine func(*transfer.Config)
	// Clock is the server's clock; nil: kluistest.NewClock().
	Clock *kluistest.Clock
	// Logs receives the server's log; nil: kluistest.NewLogs().
	Logs *kluistest.Logs
	// Limiter and ReplyLimiter replace the rate limiters (app.Options).
	Limiter, ReplyLimiter *ratelimit.Limiter
}

// TestConfig is what tests change in the engine's configuration: a cheap
// scrypt work factor and small segments, so that files of a few hundred
// kilobytes have several.
func TestConfig(c *transfer.Config) {
	c.PasswordLogN = 10
	c.SegmentSize = 100_000
}

// App is the real server (package app) of one test, with what the test
// needs around it.
type App struct {
	*app.App
	T   testing.TB
	Ctx context.Context // ends when the test ends
	Dir string          // the data folder
	// DBSpec is --db: "" for SQLite in Dir, or a PostgreSQL URL.
	DBSpec string
	Clock  *kluistest.Clock
	Logs   *kluistest.Logs
	// Reload asks the server to reload its policy file, as SIGHUP does.
	Reload chan<- os.Signal

	policyFile string
	stdout     *kluistest.Buffer
	stop       func() error
}

// New builds the server described by o and closes it when the test ends.
// It does not run: the engine and the other parts can be used directly,
// and nothing happens in the background. See Start.
func New(t testing.TB, o Options) *App {
	t.Helper()
	dir := o.Dir
	if dir == "" {
		dir = t.TempDir()
	}
	if o.Clock == nil {
		o.Clock = kluistest.NewClock()
	}
	if o.Logs == nil {
		o.Logs = kluistest.NewLogs()
	}
	policyFile := ""
	args := []string{"--data", dir, "--addr", "127.0.0.1:0", "--rate-limit", "0", "--rate-limit-global", "0"}
	if o.DB != "" {
		args = append(args, "--db", o.DB)
	}
	if o.Policy != "" {
		f, err := os.CreateTemp(dir, "policy-*.json")
		if err != nil {
			t.Fatal(err)
		}
		_, err = f.WriteString(o.Policy)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			t.Fatal(err)
		}
		args = append(args, "--policy", f.Name())
		policyFile = f.Name()
	}
	args = append(args, o.Args...)
	getenv := func(k string) string { return o.Env[k] }
	cfg, err := config.ParseServe(args, getenv, io.Discard)
	if err != nil {
		t.Fatalf("kluis serve %s: %v", strings.Join(args, " "), err)
	}
	reload := make(chan os.Signal, 1)
	stdout := &kluistest.Buffer{}
	a, err := app.New(context.Background(), cfg, app.Options{
		Stdout: stdout, Log: o.Logs.Logger(), Getenv: getenv, Version: "test", Reload: reload,
		Now: o.Clock.Now,
		Engine: func(c *transfer.Config) {
			TestConfig(c)
			if o.Engine != nil {
				o.Engine(c)
			}
		},
		Limiter: o.Limiter, ReplyLimiter: o.ReplyLimiter,
	})
	if err != nil {
		t.Fatalf("kluis serve %s: %v", strings.Join(args, " "), err)
	}
	t.Cleanup(func() { a.Close() })
	return &App{App: a, T: t, Ctx: t.Context(), Dir: dir, DBSpec: o.DB, Clock: o.Clock, Logs: o.Logs, Reload: reload, stdout: stdout, policyFile: policyFile}
}

// Start is New, then Run until the test ends: the server answers at URL()
// and the background work (outbox, purge, cleanup, policy reloads) runs.
func Start(t testing.TB, o Options) *App {
	t.Helper()
	a := New(t, o)
	a.Start()
	return a
}

// Start runs the server until the test ends or Stop.
func (a *App) Start() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.App.Run(ctx) }()
	var once sync.Once
	var err error
	a.stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-done:
			case <-time.After(30 * time.Second):
				err = errors.New("apptest: the server did not stop within 30 s")
			}
		})
		return err
	}
	a.T.Cleanup(func() {
		if err := a.stop(); err != nil {
			a.T.Errorf("kluis serve: %v", err)
		}
	})
}

// Stop ends Run, as SIGTERM does, and returns its error. The App can then
// be closed, and another App started on the same data folder.
func (a *App) Stop() error {
	if a.stop == nil {
		return errors.New("apptest: Stop without Start")
	}
	return a.stop()
}

// PolicyFile is the policy file written for Options.Policy ("" without).
func (a *App) PolicyFile() string { return a.policyFile }

// Stdout is what the server printed for the person who started it.
func (a *App) Stdout() string { return a.stdout.String() }

// Mail waits (up to 10 s) until the development mailbox holds a mail of
// kind to `to` and returns the newest. The outbox delivers it only while
// the server runs (Start).
func (a *App) Mail(kind mail.Kind, to string) devbox.Entry {
	a.T.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; {
		if m := a.Mails(kind, to); len(m) > 0 {
			return m[0]
		}
		if time.Now().After(deadline) {
			a.T.Fatalf("no %s mail to %s within 10 s", kind, to)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Mails returns the mails of kind to `to` in the development mailbox,
// newest first ("" matches every kind or recipient).
func (a *App) Mails(kind mail.Kind, to string) []devbox.Entry {
	if a.Mailbox == nil {
		a.T.Fatal("apptest: no development mailbox (--smtp is set)")
	}
	var out []devbox.Entry
	for _, e := range a.Mailbox.List() {
		if (kind == "" || e.Kind == string(kind)) && (to == "" || strings.EqualFold(e.To, to)) {
			out = append(out, e)
		}
	}
	return out
}

// NoRelay is an --smtp relay that never answers (nothing listens on port
// 1). Tests that need a setup the development mailbox refuses (a trusted
// proxy, a public base URL) pass it; their mail stays queued, see Queued.
const NoRelay = "smtp://127.0.0.1:1/?tls=none"

// Queued returns the mails of kind to `to` still in the outbox ("" matches
// every kind or recipient), opened with the master key as the mail worker
// opens them: with --smtp NoRelay, every mail the server queued. SQLite
// only.
func (a *App) Queued(kind mail.Kind, to string) []mail.Message {
	a.T.Helper()
	if a.DBSpec != "" && !strings.HasPrefix(a.DBSpec, "sqlite:") {
		a.T.Fatal("apptest: Queued reads SQLite only")
	}
	db, err := sql.Open("sqlite", "file:"+a.DataFile("kluis.db")+"?mode=ro&_pragma=busy_timeout(10000)")
	if err != nil {
		a.T.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT id, sealed FROM outbox WHERE sealed IS NOT NULL AND held_for IS NULL ORDER BY created_at, id`)
	if err != nil {
		a.T.Fatal(err)
	}
	defer rows.Close()
	var out []mail.Message
	for rows.Next() {
		var id string
		var sealed []byte
		if err := rows.Scan(&id, &sealed); err != nil {
			a.T.Fatal(err)
		}
		plain, err := a.Keys.Open("outbox.mail", id, sealed)
		if err != nil {
			a.T.Fatalf("open queued mail %s: %v", id, err)
		}
		var m mail.Message
		if err := json.Unmarshal(plain, &m); err != nil {
			a.T.Fatal(err)
		}
		if (kind == "" || m.Kind == kind) && (to == "" || strings.EqualFold(m.To, to)) {
			out = append(out, m)
		}
	}
	if err := rows.Err(); err != nil {
		a.T.Fatal(err)
	}
	return out
}

// Delivered waits (up to 10 s) until the outbox is empty and returns the
// mails of kind to `to` in the development mailbox, newest first: with
// the server running, every mail it queued.
func (a *App) Delivered(kind mail.Kind, to string) []devbox.Entry {
	a.T.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; {
		pending, _, err := a.DB.OutboxDepth(context.Background())
		if err != nil {
			a.T.Fatal(err)
		}
		if pending == 0 {
			return a.Mails(kind, to)
		}
		if time.Now().After(deadline) {
			a.T.Fatalf("%d mails still queued after 10 s", pending)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// DataFile is the path of name inside the data folder.
func (a *App) DataFile(name ...string) string {
	return filepath.Join(append([]string{a.Dir}, name...)...)
}
