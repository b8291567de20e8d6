package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kluis-nl/kluis"
	"github.com/kluis-nl/kluis/internal/app/apptest"
	"github.com/kluis-nl/kluis/internal/kluistest"
	"github.com/kluis-nl/kluis/internal/secret"
	"github.com/kluis-nl/kluis/internal/sender"
	"github.com/kluis-nl/kluis/internal/store"
	"github.com/kluis-nl/kluis/internal/transfer"
)

// apiEnv is the real server (package app) on a loopback port, with a
// fake clock and the log kept; the tests call its API over HTTP.
type apiEnv struct {
	t       testing.TB
	ctx     context.Context
	app     *apptest.App
	dir     string
	cfg     transfer.Config
	clock   *kluistest.Clock
	logs    *kluistest.Logs
	db      *store.DB
	keys    *secret.Keyring
	svc     *transfer.Service
	senders *sender.Service
	url     string // where the server listens
	client  *http.Client
}

// newAPIEnv starts the server of o (with the engine settings tune). Every
// request of the suite is validated against the OpenAPI document
// (openapi_test.go).
func newAPIEnv(t testing.TB, tune ...func(*transfer.Config)) *apiEnv {
	t.Helper()
	return startAPIEnv(t, apptest.Options{Engine: func(c *transfer.Config) {
		for _, f := range tune {
			f(c)
		}
	}})
}

// startAPIEnv is newAPIEnv for a server described by o.
func startAPIEnv(t testing.TB, o apptest.Options) *apiEnv {
	t.Helper()
	a := apptest.Start(t, o)
	e := &apiEnv{t: t, ctx: context.Background(), app: a, dir: a.Dir, cfg: a.Transfers.Config(), clock: a.Clock, logs: a.Logs,
		db: a.DB, keys: a.Keys, svc: a.Transfers, senders: a.Senders, url: a.URL()}
	e.client = &http.Client{Transport: newSpecTransport(func() testing.TB { return e.t }, &http.Transport{DisableCompression: true})}
	return e
}

// req sends a request; body may be nil, []byte, string, io.Reader or a
// value to send as JSON.
func (e *apiEnv) req(method, path, token string, header map[string]string, body any) *http.Response {
	e.t.Helper()
	resp, err := e.try(method, path, token, header, body)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	return resp
}

// try is req for requests that may fail at the connection level.
func (e *apiEnv) try(method, path, token string, header map[string]string, body any) (*http.Response, error) {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	case string:
		rd = strings.NewReader(b)
	case io.Reader:
		rd = b
	default:
		j, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(j)
		if header == nil {
			header = map[string]string{}
		}
		if _, ok := header["Content-Type"]; !ok {
			header["Content-Type"] = "application/json"
		}
	}
	r, err := http.NewRequestWithContext(e.ctx, method, e.url+path, rd)
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

// jsonOK reads a successful JSON response into v.
func (e *apiEnv) jsonOK(resp *http.Response, status int, v any) {
	e.t.Helper()
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != status {
		e.t.Fatalf("%s %s: status %d, want %d: %s", resp.Request.Method, resp.Request.URL.Path, resp.StatusCode, status, b)
	}
	if v != nil {
		if err := json.Unmarshal(b, v); err != nil {
			e.t.Fatalf("decode %s: %v", b, err)
		}
	}
}

// apiError checks the error shape {"error":{"code","message"[,"at"]}}
// exactly and returns code and message.
func apiError(t testing.TB, resp *http.Response, status int) (code, message string, at *time.Time) {
	t.Helper()
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != status {
		t.Fatalf("%s %s: status %d, want %d: %s", resp.Request.Method, resp.Request.URL.Path, resp.StatusCode, status, b)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("error Content-Type %q, want application/json", ct)
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(b, &top); err != nil || len(top) != 1 || top["error"] == nil {
		t.Fatalf("error body is not {\"error\":{...}}: %s", b)
	}
	var detail map[string]any
	if err := json.Unmarshal(top["error"], &detail); err != nil {
		t.Fatalf("error detail: %s", b)
	}
	for k := range detail {
		if k != "code" && k != "message" && k != "at" && k != "fields" && k != "file" && k != "finding" {
			t.Errorf("unexpected error field %q in %s", k, b)
		}
	}
	c, ok1 := detail["code"].(string)
	m, ok2 := detail["message"].(string)
	if !ok1 || !ok2 || c == "" || m == "" {
		t.Fatalf("error code or message missing: %s", b)
	}
	if s, ok := detail["at"].(string); ok {
		tm, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Errorf("at %q: %v", s, err)
		}
		at = &tm
	}
	return c, m, at
}

// created is the part of the create response the tests use.
type created struct {
	ID          string `json:"id"`
	UploadToken string `json:"upload_token"`
	Password    string `json:"password"`
	LinkSecret  string `json:"link_secret"`
	ExpiresAt   time.Time
}

// create makes a transfer through the engine: creating over HTTP needs a
// verified sender (cookie session), which is not what these tests are
// about. Everything after creation goes over HTTP.
func (e *apiEnv) create(message string) created {
	e.t.Helper()
	const pw = "Vrolijk-Paarse-Olifant-42"
	c, err := e.svc.Create(e.ctx, transfer.CreateRequest{
		SenderEmail: "afzender@example.nl", SenderName: "Afzender", To: []string{"ontvanger@example.nl"},
		Message: message, PasswordMode: kluis.PasswordManual, Password: pw,
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return created{ID: c.Transfer.ID, UploadToken: c.UploadToken, Password: pw, ExpiresAt: c.Transfer.ExpiresAt}
}

type fileJSON struct {
	ID     string `json:"id"`
	Index  int    `json:"index"`
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// put uploads one file in a single plain request.
func (e *apiEnv) put(c created, name string, data []byte) fileJSON {
	e.t.Helper()
	var f fileJSON
	e.jsonOK(e.req("PUT", "/api/v1/transfers/"+c.ID+"/files", c.UploadToken,
		map[string]string{"Kluis-File-Name": url.PathEscape(name), "Content-Type": "application/octet-stream"}, data),
		http.StatusCreated, &f)
	return f
}

// finish returns the recipients' access ids, in order.
func (e *apiEnv) finish(c created) []string {
	e.t.Helper()
	var out struct {
		Links []struct {
			URL string `json:"url"`
		} `json:"links"`
	}
	body := any(nil)
	if c.LinkSecret != "" {
		body = map[string]string{"link_secret": c.LinkSecret}
	}
	e.jsonOK(e.req("POST", "/api/v1/transfers/"+c.ID+"/finish", c.UploadToken, nil, body), http.StatusOK, &out)
	var ids []string
	for _, l := range out.Links {
		u, err := url.Parse(l.URL)
		if err != nil {
			e.t.Fatal(err)
		}
		ids = append(ids, strings.TrimPrefix(u.Path, "/r/"))
	}
	return ids
}

func (e *apiEnv) unlock(access, sec string) string {
	e.t.Helper()
	var out struct {
		Session string `json:"session"`
	}
	e.jsonOK(e.req("POST", "/api/v1/links/"+access+"/unlock", "", nil, map[string]string{"secret": sec}), http.StatusOK, &out)
	return out.Session
}

// shared is a ready transfer with files, over HTTP.
type shared struct {
	c       created
	access  []string
	session string
	files   []fileJSON
	data    [][]byte
}

func (e *apiEnv) shared(names []string, sizes []int) *shared {
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
func (e *apiEnv) segmentPaths(transferID, fileID string) []string {
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
