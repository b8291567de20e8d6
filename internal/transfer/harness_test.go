package transfer_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kluis-nl/kluis"
	"github.com/kluis-nl/kluis/internal/app/apptest"
	"github.com/kluis-nl/kluis/internal/audit"
	"github.com/kluis-nl/kluis/internal/blob"
	"github.com/kluis-nl/kluis/internal/kluistest"
	"github.com/kluis-nl/kluis/internal/policy"
	"github.com/kluis-nl/kluis/internal/secret"
	"github.com/kluis-nl/kluis/internal/store"
	"github.com/kluis-nl/kluis/internal/store/storetest"
	"github.com/kluis-nl/kluis/internal/transfer"
)

// env is a real engine: the server of package app, built (not running) on
// a temporary data folder, with the tests' cheap settings
// (apptest.TestConfig). Its fields name the parts the tests use.
type env struct {
	t     testing.TB
	ctx   context.Context
	app   *apptest.App
	dir   string
	db    *store.DB
	blobs blob.Store
	keys  *secret.Keyring
	cfg   transfer.Config
	clock *kluistest.Clock
	logs  *kluistest.Logs
	svc   *transfer.Service
	tune  []func(*transfer.Config)
}

func newEnv(t testing.TB, tune ...func(*transfer.Config)) *env {
	t.Helper()
	return openEnv(t, apptest.Options{Clock: kluistest.NewClock()}, tune...)
}

// envMaker makes a fresh env; newEnv (SQLite) and newPostgresEnv.
type envMaker func(t testing.TB, tune ...func(*transfer.Config)) *env

// newPostgresEnv is newEnv with the metadata in a fresh PostgreSQL
// database (see storetest; skips without KLUIS_TEST_POSTGRES_URL).
func newPostgresEnv(t testing.TB, tune ...func(*transfer.Config)) *env {
	t.Helper()
	return openEnv(t, apptest.Options{DB: storetest.Postgres(t), Clock: kluistest.NewClock()}, tune...)
}

// forEachDB runs fn as parallel subtests "sqlite" and "postgres", each
// with its envMaker. The postgres one skips without
// KLUIS_TEST_POSTGRES_URL (and fails under CI=true).
func forEachDB(t *testing.T, fn func(t *testing.T, newEnv envMaker)) {
	for _, b := range []struct {
		name string
		mk   envMaker
	}{{"sqlite", newEnv}, {"postgres", newPostgresEnv}} {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			if b.name == "postgres" {
				storetest.RequirePostgres(t)
			}
			fn(t, b.mk)
		})
	}
}

// openEnv builds the server of o with the engine settings tune, as the
// mails' organisation "Gemeente Test".
func openEnv(t testing.TB, o apptest.Options, tune ...func(*transfer.Config)) *env {
	t.Helper()
	o.Args = append([]string{"--org-name", "Gemeente Test"}, o.Args...)
	o.Engine = func(c *transfer.Config) {
		for _, f := range tune {
			f(c)
		}
	}
	a := apptest.New(t, o)
	return &env{t: t, ctx: context.Background(), app: a, dir: a.Dir, db: a.DB, blobs: a.Blobs, keys: a.Keys,
		cfg: a.Transfers.Config(), clock: a.Clock, logs: a.Logs, svc: a.Transfers, tune: tune}
}

// reopen starts another engine ("instance", or the same one after a
// restart) on the data folder dir (e's own, or a copy) and e's database,
// with e's settings and clock.
func (e *env) reopen(t testing.TB, dir string) *env {
	t.Helper()
	return openEnv(t, apptest.Options{Dir: dir, DB: e.app.DBSpec, Clock: e.clock}, e.tune...)
}

// withPolicy puts a policy (JSON) in force, as a reload of the policy file
// does.
func (e *env) withPolicy(js string) {
	e.t.Helper()
	p, err := policy.Parse([]byte(js))
	if err != nil {
		e.t.Fatal(err)
	}
	e.app.Policy.Set(p)
}

// withAudit returns the audit log (kept for --audit-retention, 365 days).
func (e *env) withAudit() *audit.Recorder { return e.app.Audit }

// runMail runs the server's outbox worker until the test ends: queued
// mail is delivered to the development mailbox (e.app.Mails).
func (e *env) runMail(t testing.TB) {
	t.Helper()
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); e.app.Outbox.Run(ctx) }()
	t.Cleanup(func() { stop(); <-done })
}

// createOpts describes a transfer to create.
type createOpts struct {
	mode     kluis.PasswordMode
	password string
	message  string
	subject  string
	to, bcc  []string
	expires  time.Time
	options  kluis.Options
}

func (e *env) create(o createOpts) *transfer.Created {
	e.t.Helper()
	to := o.to
	if len(to) == 0 {
		to = []string{"ontvanger@example.nl"}
	}
	mode := o.mode
	if mode == "" {
		mode = kluis.PasswordManual
	}
	pw := o.password
	if mode == kluis.PasswordManual && pw == "" {
		pw = "Vrolijk-Paarse-Olifant-42"
	}
	c, err := e.svc.Create(e.ctx, transfer.CreateRequest{
		SenderEmail: "afzender@example.nl", SenderName: "Afzender", To: to, Bcc: o.bcc,
		Message: o.message, Subject: o.subject, PasswordMode: mode, Password: pw, ExpiresAt: o.expires, Options: o.options,
	})
	if err != nil {
		e.t.Fatalf("create: %v", err)
	}
	if mode == kluis.PasswordManual {
		c.Password = pw // so tests find the secret in one place
	}
	return c
}

// secretOf is what a recipient types (or the link carries) to unlock c.
func secretOf(c *transfer.Created) string {
	if c.LinkSecret != "" {
		return c.LinkSecret
	}
	return c.Password
}

func owner(c *transfer.Created) transfer.Owner { return transfer.Owner{TransferID: c.Transfer.ID} }

// upload adds a complete file, written in pieces of the given sizes (the
// rest in a last call).
func (e *env) upload(o transfer.Owner, name string, data []byte, pieces ...int) *kluis.File {
	e.t.Helper()
	f, err := e.svc.NewFile(e.ctx, o, name, "application/octet-stream", int64(len(data)))
	if err != nil {
		e.t.Fatalf("new file: %v", err)
	}
	var bounds []int
	sum := 0
	for _, p := range pieces {
		sum += p
		if sum < len(data) {
			bounds = append(bounds, sum)
		}
	}
	bounds = append(bounds, len(data))
	start := 0
	for _, end := range bounds {
		n, err := e.svc.WriteFile(e.ctx, o, f.ID, int64(start), bytes.NewReader(data[start:end]))
		if err != nil {
			e.t.Fatalf("write file at %d: %v", start, err)
		}
		if n != int64(end-start) {
			e.t.Fatalf("write file at %d: wrote %d, want %d", start, n, end-start)
		}
		start = end
	}
	if _, err := e.svc.CompleteFile(e.ctx, o, f.ID); err != nil {
		e.t.Fatalf("complete file: %v", err)
	}
	return f
}

func (e *env) finish(c *transfer.Created) *transfer.Finished {
	e.t.Helper()
	f, err := e.svc.Finish(e.ctx, owner(c), c.LinkSecret)
	if err != nil {
		e.t.Fatalf("finish: %v", err)
	}
	return f
}

func (e *env) unlock(access, sec string) *transfer.Session {
	e.t.Helper()
	s, err := e.svc.Unlock(e.ctx, access, sec)
	if err != nil {
		e.t.Fatalf("unlock: %v", err)
	}
	return s
}

// readFile downloads a file whole through OpenFile and ReadAt.
func (e *env) readFile(s *transfer.Session, fileID string) ([]byte, error) {
	e.t.Helper()
	kf, fr, err := e.svc.OpenFile(e.ctx, s, fileID)
	if err != nil {
		return nil, err
	}
	defer fr.Close()
	return io.ReadAll(io.NewSectionReader(fr, 0, kf.Size))
}

// ready is a finished transfer with files, unlocked once.
type ready struct {
	c     *transfer.Created
	fin   *transfer.Finished
	files []*kluis.File
	data  [][]byte
	sess  *transfer.Session
}

func (e *env) readyTransfer(o createOpts, sizes ...int) *ready {
	e.t.Helper()
	r := &ready{c: e.create(o)}
	for i, n := range sizes {
		d := randomBytes(uint64(i+1)*7919+uint64(n), n)
		r.data = append(r.data, d)
		r.files = append(r.files, e.upload(owner(r.c), "bestand-"+string(rune('a'+i))+".bin", d))
	}
	r.fin = e.finish(r.c)
	r.sess = e.unlock(r.fin.Links[0].AccessID, secretOf(r.c))
	return r
}

func randomBytes(seed uint64, n int) []byte {
	b := make([]byte, n)
	var s [32]byte
	s[0], s[1], s[2] = byte(seed), byte(seed>>8), byte(seed>>16)
	rand.NewChaCha8(s).Read(b)
	return b
}

func sha256hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// wantCode fails unless err is a kluis error with the given code.
func wantCode(t testing.TB, err error, code kluis.Code) *kluis.Error {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want code %s", code)
	}
	var ke *kluis.Error
	if !errors.As(err, &ke) || ke.Code != code {
		t.Fatalf("got error %v (code %s), want code %s", err, kluis.ErrorCode(err), code)
	}
	return ke
}

// rawDB opens the database file directly, as someone with the disk would.
// Close it before the engine purges: an open reader can hold back the WAL
// checkpoint.
func rawDB(t testing.TB, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	return db
}

// walkFiles calls fn with every regular file under dir and its bytes.
func walkFiles(t testing.TB, dir string, fn func(path string, b []byte)) {
	t.Helper()
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		fn(p, b)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// blobFiles lists the segment files on disk of a transfer, by file id.
func (e *env) blobFiles(transferID string) map[string][]string {
	e.t.Helper()
	out := map[string][]string{}
	root := filepath.Join(e.dir, "blobs", "t", transferID)
	entries, err := os.ReadDir(root)
	if err != nil {
		if os.IsNotExist(err) {
			return out
		}
		e.t.Fatal(err)
	}
	for _, fd := range entries {
		segs, err := os.ReadDir(filepath.Join(root, fd.Name()))
		if err != nil {
			e.t.Fatal(err)
		}
		for _, s := range segs {
			out[fd.Name()] = append(out[fd.Name()], filepath.Join(root, fd.Name(), s.Name()))
		}
	}
	return out
}

// segmentPaths returns the segment files of one file in order (the key
// starts with the zero-padded index).
func (e *env) segmentPaths(transferID, fileID string) []string {
	e.t.Helper()
	ps := e.blobFiles(transferID)[fileID]
	if len(ps) == 0 {
		e.t.Fatalf("no segments for file %s", fileID)
	}
	// os.ReadDir sorts by name, which is segment order.
	return ps
}

func containsAny(hay []byte, needles map[string][]byte) []string {
	var hits []string
	for name, n := range needles {
		if len(n) > 0 && bytes.Contains(hay, n) {
			hits = append(hits, name)
		}
	}
	return hits
}

func countLines(b []byte, substr string) int {
	n := 0
	for _, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, substr) {
			n++
		}
	}
	return n
}

// makeLegacy turns a file back into the form versions before migration
// 0009 stored: the whole manifest sealed in files.manifest_sealed, no head
// and no segment entry rows.
func (e *env) makeLegacy(fileID string) {
	e.t.Helper()
	sealed, err := e.svc.LegacyManifest(e.ctx, fileID)
	if err != nil {
		e.t.Fatal(err)
	}
	db := rawDB(e.t, filepath.Join(e.dir, "kluis.db"))
	defer db.Close()
	if _, err := db.Exec(`DELETE FROM segments WHERE file_id = ?`, fileID); err != nil {
		e.t.Fatal(err)
	}
	if _, err := db.Exec(`UPDATE files SET manifest_sealed = ?, head_sealed = NULL WHERE id = ?`, sealed, fileID); err != nil {
		e.t.Fatal(err)
	}
}
