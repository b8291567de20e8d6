package server_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/kluis-nl/kluis"
	"github.com/kluis-nl/kluis/internal/blob/local"
	"github.com/kluis-nl/kluis/internal/mail"
	"github.com/kluis-nl/kluis/internal/mail/devbox"
	"github.com/kluis-nl/kluis/internal/metrics"
	"github.com/kluis-nl/kluis/internal/policy"
	"github.com/kluis-nl/kluis/internal/ratelimit"
	"github.com/kluis-nl/kluis/internal/secret"
	"github.com/kluis-nl/kluis/internal/sender"
	"github.com/kluis-nl/kluis/internal/server"
	"github.com/kluis-nl/kluis/internal/store"
	"github.com/kluis-nl/kluis/internal/transfer"
	"github.com/kluis-nl/kluis/internal/web"
)

// capture is a mailer that records what is queued (the engine's and the
// sender service's).
type capture struct {
	mu   sync.Mutex
	msgs []mail.Message
}

func (c *capture) Enqueue(_ context.Context, _ *store.Tx, m *mail.Message) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.msgs = append(c.msgs, *m)
	return "", nil
}
func (c *capture) Wake() {}

func (c *capture) count(kind mail.Kind, to string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, m := range c.msgs {
		if m.Kind == kind && m.To == to {
			n++
		}
	}
	return n
}

type envOptions struct {
	limiter *ratelimit.Limiter
	trusted []netip.Prefix
	sectxt  server.SecurityTxt
	// metricsToken is Deps.MetricsToken.
	metricsToken string
	// baseURL, if set, is the public address (transfer.Config.BaseURL).
	baseURL string
}

// env is the whole handler, built as cmd/kluis/serve.go builds it, on a
// loopback server.
type env struct {
	t       testing.TB
	ctx     context.Context
	svc     *transfer.Service
	senders *sender.Service
	mail    *capture
	handler http.Handler
	srv     *httptest.Server
	client  *http.Client
	metrics *metrics.Metrics
	db      *store.DB
}

const (
	ownerEmail = "afzender@example.nl"
	otherEmail = "other@example.nl"
	password   = "Vrolijk-Paarse-Olifant-42"
)

func newEnv(t testing.TB, o envOptions) *env {
	t.Helper()
	dir := t.TempDir()
	ctx := context.Background()
	cfg := transfer.DefaultConfig()
	cfg.PasswordLogN = 10
	cfg.SegmentSize = 100_000
	if o.baseURL != "" {
		cfg.BaseURL = o.baseURL
	}
	db, err := store.OpenSQLite(ctx, filepath.Join(dir, "kluis.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	blobs, err := local.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	keys, _, err := secret.LoadOrCreateMasterKey(filepath.Join(dir, "master.key"))
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewJSONHandler(io.Discard, nil))
	svc := transfer.New(db, blobs, keys, cfg, nil, log)
	// The route tests make many drafts as one sender; the quotas are
	// tested in package transfer.
	noQuota, err := policy.Parse([]byte(`{"defaults": {"max_open_drafts": 100000}}`))
	if err != nil {
		t.Fatal(err)
	}
	svc.SetPolicy(func() *policy.Policy { return noQuota })
	mc := &capture{}
	org := mail.Org{BaseURL: cfg.BaseURL}
	svc.SetMailer(mc, org)
	senders := sender.New(db, keys, mc, org, sender.DefaultConfig(), nil, log)
	// The route table calls the reply pages many times from one address;
	// their own limit is tested in package web.
	replies := ratelimit.New(ratelimit.Config{PerMinute: 100_000, Burst: 100_000, GlobalPerMinute: 1_000_000})
	pages, err := web.New(web.Deps{Transfers: svc, Senders: senders, BaseURL: cfg.BaseURL, Mailbox: true, Log: log, ReplyLimiter: replies})
	if err != nil {
		t.Fatal(err)
	}
	met := metrics.New(db, nil, log)
	svc.SetMetrics(met)
	h, err := server.New(server.Deps{
		Transfers: svc, Senders: senders, Log: log, Mailbox: devbox.New().Handler(), Web: pages,
		Limiter: o.limiter, TrustedProxies: o.trusted, SecurityTxt: o.sectxt,
		Metrics: met, MetricsToken: o.metricsToken,
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &env{t: t, ctx: ctx, svc: svc, senders: senders, mail: mc, handler: h, srv: srv, metrics: met, db: db,
		client: &http.Client{
			Transport:     &http.Transport{DisableCompression: true},
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}}
}

// do sends a request; body may be nil, []byte, string or a value to send
// as JSON. It returns the response with its body read.
func (e *env) do(method, path, token string, hdr map[string]string, body any) (*http.Response, []byte) {
	e.t.Helper()
	var rd io.Reader
	ctype := ""
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	case string:
		rd = strings.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		rd, ctype = bytes.NewReader(j), "application/json"
	}
	r, err := http.NewRequestWithContext(e.ctx, method, e.srv.URL+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if ctype != "" {
		r.Header.Set("Content-Type", ctype)
	}
	if token != "" {
		r.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range hdr {
		r.Header.Set(k, v)
	}
	resp, err := e.client.Do(r)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

func (e *env) must(status int, method, path, token string, hdr map[string]string, body any, out any) {
	e.t.Helper()
	resp, b := e.do(method, path, token, hdr, body)
	if resp.StatusCode != status {
		e.t.Fatalf("%s %s: %d, want %d: %s", method, path, resp.StatusCode, status, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			e.t.Fatalf("%s %s: %v: %s", method, path, err, b)
		}
	}
}

// errCode returns the code of a JSON error body, or "".
func errCode(b []byte) string {
	var v struct {
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	_ = json.Unmarshal(b, &v)
	return v.Error.Code
}

// fixture is one sender's transfers in every state the routes need, made
// lazily: each cell of the route table gets a fresh one and makes only what
// it uses.
type fixture struct {
	e *env

	openID, openToken string // created, one file, not finished
	tusID             string // a tus upload of the open transfer
	readyID           string // finished
	access            string // the recipient's access id of the ready transfer
	session           string // the recipient's download session
	fileID            string // a file of the ready transfer
	otherUploadToken  string // upload token of another sender's transfer
}

func (e *env) createTransfer(from string) (id, token string) {
	e.t.Helper()
	c, err := e.svc.Create(e.ctx, transfer.CreateRequest{
		SenderEmail: from, SenderName: "Afzender", To: []string{"ontvanger@example.nl"},
		Message: "bericht", PasswordMode: kluis.PasswordManual, Password: password,
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return c.Transfer.ID, c.UploadToken
}

func (e *env) putFile(id, token, name string) string {
	e.t.Helper()
	var f struct {
		ID string `json:"id"`
	}
	e.must(http.StatusCreated, "PUT", "/api/v1/transfers/"+id+"/files", token,
		map[string]string{"Kluis-File-Name": url.PathEscape(name), "Content-Type": "application/octet-stream"}, []byte("inhoud van "+name), &f)
	return f.ID
}

func (e *env) fixture(t testing.TB) *fixture {
	return &fixture{e: &env{t: t, ctx: e.ctx, svc: e.svc, senders: e.senders, mail: e.mail, handler: e.handler, srv: e.srv, client: e.client}}
}

// open makes the open transfer (one file uploaded).
func (fx *fixture) open() {
	if fx.openID != "" {
		return
	}
	fx.openID, fx.openToken = fx.e.createTransfer(ownerEmail)
	fx.e.putFile(fx.openID, fx.openToken, "a.txt")
}

// tus starts a tus upload in the open transfer.
func (fx *fixture) tus() {
	if fx.tusID != "" {
		return
	}
	fx.open()
	e := fx.e
	resp, b := e.do("POST", "/api/v1/uploads/", fx.openToken, map[string]string{
		"Tus-Resumable": "1.0.0", "Upload-Length": "5",
		"Upload-Metadata": "filename " + base64.StdEncoding.EncodeToString([]byte("tus.txt")),
	}, nil)
	if resp.StatusCode != http.StatusCreated {
		e.t.Fatalf("tus create: %d %s", resp.StatusCode, b)
	}
	loc, _ := url.Parse(resp.Header.Get("Location"))
	fx.tusID = loc.Path[strings.LastIndexByte(loc.Path, '/')+1:]
}

// ready makes the finished transfer and its recipient's access id.
func (fx *fixture) ready() {
	if fx.readyID != "" {
		return
	}
	e := fx.e
	readyID, readyToken := e.createTransfer(ownerEmail)
	fx.readyID = readyID
	fx.fileID = e.putFile(readyID, readyToken, "b.txt")
	var fin struct {
		Links []struct {
			URL string `json:"url"`
		} `json:"links"`
	}
	e.must(http.StatusOK, "POST", "/api/v1/transfers/"+readyID+"/finish", readyToken, nil, nil, &fin)
	u, _ := url.Parse(fin.Links[0].URL)
	fx.access = u.Path[strings.LastIndexByte(u.Path, '/')+1:]
}

// unlock opens a download session for the recipient.
func (fx *fixture) unlock() {
	if fx.session != "" {
		return
	}
	fx.ready()
	var s struct {
		Session string `json:"session"`
	}
	fx.e.must(http.StatusOK, "POST", "/api/v1/links/"+fx.access+"/unlock", "", nil, map[string]string{"secret": password}, &s)
	fx.session = s.Session
}

// otherUpload makes a transfer of another sender.
func (fx *fixture) otherUpload() {
	if fx.otherUploadToken == "" {
		_, fx.otherUploadToken = fx.e.createTransfer(otherEmail)
	}
}
