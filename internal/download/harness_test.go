package download_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/kluis-nl/kluis"
	"github.com/kluis-nl/kluis/internal/api"
	"github.com/kluis-nl/kluis/internal/blob"
	"github.com/kluis-nl/kluis/internal/blob/local"
	"github.com/kluis-nl/kluis/internal/download"
	"github.com/kluis-nl/kluis/internal/secret"
	"github.com/kluis-nl/kluis/internal/store"
	"github.com/kluis-nl/kluis/internal/transfer"
)

// env is a real engine (SQLite, a blob folder) with a loopback server
// whose two routes are the API's download routes, served by this package
// directly: transfers are made through the engine, downloads go over
// HTTP.
type env struct {
	t      testing.TB
	ctx    context.Context
	dir    string
	blobs  *countingStore
	svc    *transfer.Service
	srv    *httptest.Server
	client *http.Client
}

func newEnv(t testing.TB, tune ...func(*transfer.Config)) *env {
	t.Helper()
	dir := t.TempDir()
	ctx := context.Background()
	cfg := transfer.DefaultConfig()
	cfg.PasswordLogN = 10
	cfg.SegmentSize = 100_000
	for _, f := range tune {
		f(&cfg)
	}
	db, err := store.OpenSQLite(ctx, filepath.Join(dir, "kluis.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	folder, err := local.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	blobs := &countingStore{Store: folder}
	keys, err := secret.NewKeyring(secret.GenerateMasterKey())
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	svc := transfer.New(transfer.Deps{DB: db, Blobs: blobs, Keys: keys, Config: cfg, Log: log})
	e := &env{t: t, ctx: ctx, dir: dir, blobs: blobs, svc: svc, client: &http.Client{Transport: &http.Transport{DisableCompression: true}}}
	mux := http.NewServeMux()
	session := func(next func(http.ResponseWriter, *http.Request, *transfer.Session) error) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			s, err := svc.OpenSession(r.Context(), strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer "))
			if err == nil {
				err = next(w, r, s)
			}
			if err != nil {
				writeError(w, err)
			}
		}
	}
	mux.HandleFunc("GET /api/v1/session/files/{fid}", session(func(w http.ResponseWriter, r *http.Request, s *transfer.Session) error {
		return download.ServeFile(w, r, svc, s, r.PathValue("fid"), log)
	}))
	mux.HandleFunc("GET /api/v1/session/zip", session(func(w http.ResponseWriter, r *http.Request, s *transfer.Session) error {
		return download.ServeZip(w, r, svc, s, log)
	}))
	e.srv = httptest.NewServer(mux)
	t.Cleanup(e.srv.Close)
	return e
}

// countingStore is the blob folder, counting the bytes read from it: what
// a download has read of the stored data, to compare with what it has
// sent.
type countingStore struct {
	blob.Store
	read atomic.Int64
}

func (c *countingStore) Open(ctx context.Context, key string) (blob.Reader, error) {
	r, err := c.Store.Open(ctx, key)
	if err != nil {
		return nil, err
	}
	return &countingReader{Reader: r, read: &c.read}, nil
}

type countingReader struct {
	blob.Reader
	read *atomic.Int64
}

func (c *countingReader) ReadAt(p []byte, off int64) (int, error) {
	n, err := c.Reader.ReadAt(p, off)
	c.read.Add(int64(n))
	return n, err
}

// writeError answers as the API does: its status for the error's code and
// {"error":{"code","message"}}.
func writeError(w http.ResponseWriter, err error) {
	code := kluis.ErrorCode(err)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(api.Status(code))
	json.NewEncoder(w).Encode(map[string]any{"error": map[string]string{"code": string(code), "message": kluis.ErrorMessage(err)}})
}

// req sends a request and fails the test if it does not get an answer.
func (e *env) req(method, path, token string, header map[string]string, body io.Reader) *http.Response {
	e.t.Helper()
	resp, err := e.try(method, path, token, header, body)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	return resp
}

// try is req for requests that may fail at the connection level.
func (e *env) try(method, path, token string, header map[string]string, body io.Reader) (*http.Response, error) {
	e.t.Helper()
	r, err := http.NewRequestWithContext(e.ctx, method, e.srv.URL+path, body)
	if err != nil {
		e.t.Fatal(err)
	}
	if token != "" {
		r.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range header {
		r.Header.Set(k, v)
	}
	return e.client.Do(r)
}

type created struct {
	ID       string
	Password string
}

func (e *env) create(message string) created {
	e.t.Helper()
	const pw = "Vrolijk-Paarse-Olifant-42"
	c, err := e.svc.Create(e.ctx, transfer.CreateRequest{
		SenderEmail: "afzender@example.nl", SenderName: "Afzender", To: []string{"ontvanger@example.nl"},
		Message: message, PasswordMode: kluis.PasswordManual, Password: pw,
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return created{ID: c.Transfer.ID, Password: pw}
}

type fileJSON struct {
	ID   string
	Name string
	Size int64
}

// put stores one file through the engine, as the API's plain upload does.
func (e *env) put(c created, name string, data []byte) fileJSON {
	e.t.Helper()
	o := transfer.Owner{TransferID: c.ID}
	f, err := e.svc.NewFile(e.ctx, o, name, "application/octet-stream", int64(len(data)))
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.svc.WriteFile(e.ctx, o, f.ID, 0, bytes.NewReader(data)); err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.svc.CompleteFile(e.ctx, o, f.ID); err != nil {
		e.t.Fatal(err)
	}
	return fileJSON{ID: f.ID, Name: f.Name, Size: int64(len(data))}
}

// finish returns the recipients' access ids, in order.
func (e *env) finish(c created) []string {
	e.t.Helper()
	fin, err := e.svc.Finish(e.ctx, transfer.Owner{TransferID: c.ID}, "")
	if err != nil {
		e.t.Fatal(err)
	}
	var ids []string
	for _, l := range fin.Links {
		ids = append(ids, l.AccessID)
	}
	return ids
}

// unlock returns a download session token.
func (e *env) unlock(access, sec string) string {
	e.t.Helper()
	s, err := e.svc.Unlock(e.ctx, access, sec)
	if err != nil {
		e.t.Fatal(err)
	}
	return s.Token
}

// shared is a ready transfer with files and an unlocked session.
type shared struct {
	c       created
	access  []string
	session string
	files   []fileJSON
	data    [][]byte
}

func (e *env) shared(names []string, sizes []int) *shared {
	e.t.Helper()
	s := &shared{c: e.create("bericht")}
	for i, n := range names {
		d := randomBytes(uint64(i*31+sizes[i]), sizes[i])
		s.data = append(s.data, d)
		s.files = append(s.files, e.put(s.c, n, d))
	}
	s.access = e.finish(s.c)
	s.session = e.unlock(s.access[0], s.c.Password)
	return s
}

func randomBytes(seed uint64, n int) []byte {
	b := make([]byte, n)
	var s [32]byte
	s[0], s[1], s[2] = byte(seed), byte(seed>>8), byte(seed>>16)
	rand.NewChaCha8(s).Read(b)
	return b
}

// segmentPaths lists the segment files of one file, in order.
func (e *env) segmentPaths(transferID, fileID string) []string {
	e.t.Helper()
	root := filepath.Join(e.dir, "blobs", "t", transferID, fileID)
	entries, err := os.ReadDir(root)
	if err != nil {
		e.t.Fatal(err)
	}
	var out []string
	for _, en := range entries {
		out = append(out, filepath.Join(root, en.Name()))
	}
	return out
}

// flip changes one bit of the file at path, at (from the end if at < 0).
func flip(t *testing.T, path string, at int) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if at < 0 {
		at += len(b)
	}
	b[at] ^= 0x80
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}
