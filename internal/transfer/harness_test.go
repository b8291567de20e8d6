package transfer_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kluis-nl/kluis"
	"github.com/kluis-nl/kluis/internal/blob/local"
	"github.com/kluis-nl/kluis/internal/secret"
	"github.com/kluis-nl/kluis/internal/store"
	"github.com/kluis-nl/kluis/internal/store/storetest"
	"github.com/kluis-nl/kluis/internal/transfer"
)

// fakeClock is the engine's injected clock: a time that tests move by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	// Start at the real time (to the millisecond, as the database keeps it):
	// blob modification times are real, and the collector compares them
	// with the engine's clock.
	return &fakeClock{t: time.Now().UTC().Truncate(time.Millisecond)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// syncBuffer is a log sink that tests can read while the engine writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) Bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return bytes.Clone(b.buf.Bytes())
}

// env is a real engine in a temporary data folder.
type env struct {
	t     testing.TB
	ctx   context.Context
	dir   string
	db    *store.DB
	blobs *local.Store
	keys  *secret.Keyring
	cfg   transfer.Config
	clock *fakeClock
	logs  *syncBuffer
	svc   *transfer.Service
}

// testConfig is DefaultConfig made cheap: a low scrypt work factor and small
// segments, so multi-segment files cost little.
func testConfig() transfer.Config {
	cfg := transfer.DefaultConfig()
	cfg.PasswordLogN = 10
	cfg.SegmentSize = 100_000
	return cfg
}

func newEnv(t testing.TB, tune ...func(*transfer.Config)) *env {
	t.Helper()
	cfg := testConfig()
	for _, f := range tune {
		f(&cfg)
	}
	return openEnv(t, t.TempDir(), cfg, newFakeClock())
}

// envMaker makes a fresh env; newEnv (SQLite) and newPostgresEnv.
type envMaker func(t testing.TB, tune ...func(*transfer.Config)) *env

// newPostgresEnv is newEnv with the metadata in a fresh PostgreSQL
// database (see storetest; skips without KLUIS_TEST_POSTGRES_URL).
func newPostgresEnv(t testing.TB, tune ...func(*transfer.Config)) *env {
	t.Helper()
	cfg := testConfig()
	for _, f := range tune {
		f(&cfg)
	}
	dsn := storetest.Postgres(t)
	db, err := store.OpenPostgres(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return openEnvDB(t, t.TempDir(), cfg, newFakeClock(), db)
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

// openEnv opens an engine on an existing (or new) data folder.
func openEnv(t testing.TB, dir string, cfg transfer.Config, clock *fakeClock) *env {
	t.Helper()
	ctx := context.Background()
	db, err := store.OpenSQLite(ctx, filepath.Join(dir, "kluis.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return openEnvDB(t, dir, cfg, clock, db)
}

// openEnvDB opens an engine on a data folder (blobs, master key) and an
// open database.
func openEnvDB(t testing.TB, dir string, cfg transfer.Config, clock *fakeClock, db *store.DB) *env {
	t.Helper()
	ctx := context.Background()
	blobs, err := local.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	keys, _, err := secret.LoadOrCreateMasterKey(filepath.Join(dir, "master.key"))
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	e := &env{t: t, ctx: ctx, dir: dir, db: db, blobs: blobs, keys: keys, cfg: cfg, clock: clock, logs: logs}
	e.svc = transfer.New(db, blobs, keys, cfg, clock.Now, log)
	return e
}

// createOpts describes a transfer to create.
type createOpts struct {
	mode     kluis.PasswordMode
	password string
	message  string
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
		Message: o.message, PasswordMode: mode, Password: pw, ExpiresAt: o.expires, Options: o.options,
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
