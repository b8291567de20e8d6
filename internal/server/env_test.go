package server_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/kluis-nl/kluis"
	"github.com/kluis-nl/kluis/internal/app/apptest"
	"github.com/kluis-nl/kluis/internal/mail"
	"github.com/kluis-nl/kluis/internal/metrics"
	"github.com/kluis-nl/kluis/internal/ratelimit"
	"github.com/kluis-nl/kluis/internal/sender"
	"github.com/kluis-nl/kluis/internal/server"
	"github.com/kluis-nl/kluis/internal/store"
	"github.com/kluis-nl/kluis/internal/transfer"
)

type envOptions struct {
	limiter *ratelimit.Limiter
	trusted []netip.Prefix
	sectxt  server.SecurityTxt
	// metricsToken is --metrics-token.
	metricsToken string
	// baseURL, if set, is the public address (--base-url).
	baseURL string
	// noRun serves the server's handler on a loopback server of the test
	// without its background work, for a test that runs the purge itself.
	noRun bool
	// staticLog is --log-static ("": the default).
	staticLog string
}

// env is the real server (package app) on a loopback port.
type env struct {
	t       testing.TB
	ctx     context.Context
	app     *apptest.App
	svc     *transfer.Service
	senders *sender.Service
	handler http.Handler
	url     string // where the server listens
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
	// The route tests make many drafts as one sender; the quotas are
	// tested in package transfer. The route table calls the reply pages
	// many times from one address; their own limit is tested in package
	// web.
	ao := apptest.Options{
		Policy:       `{"defaults": {"max_open_drafts": 100000}}`,
		Limiter:      o.limiter,
		ReplyLimiter: ratelimit.New(ratelimit.Config{PerMinute: 100_000, Burst: 100_000, GlobalPerMinute: 1_000_000}),
	}
	local := true
	if len(o.trusted) > 0 {
		var ps []string
		for _, p := range o.trusted {
			ps = append(ps, p.String())
		}
		ao.Args = append(ao.Args, "--trusted-proxy", strings.Join(ps, ","))
		local = false
	}
	if o.baseURL != "" {
		ao.Args = append(ao.Args, "--base-url", o.baseURL)
		local = local && strings.HasPrefix(o.baseURL, "http://127.0.0.1")
	}
	if !local {
		// The development mailbox is only for a plainly local setup.
		ao.Args = append(ao.Args, "--smtp", apptest.NoRelay)
	}
	if o.sectxt.Contact != "" {
		ao.Args = append(ao.Args, "--security-contact", o.sectxt.Contact)
	}
	if o.sectxt.Policy != "" {
		ao.Args = append(ao.Args, "--security-policy-url", o.sectxt.Policy)
	}
	if !o.sectxt.Expires.IsZero() {
		ao.Args = append(ao.Args, "--security-txt-expires", o.sectxt.Expires.Format(time.RFC3339))
	}
	if o.metricsToken != "" {
		ao.Args = append(ao.Args, "--metrics-token", o.metricsToken)
	}
	if o.staticLog != "" {
		ao.Args = append(ao.Args, "--log-static", o.staticLog)
	}
	a := apptest.New(t, ao)
	url := a.URL()
	if o.noRun {
		srv := httptest.NewServer(a.Handler)
		t.Cleanup(srv.Close)
		url = srv.URL
	} else {
		a.Start()
	}
	return &env{t: t, ctx: context.Background(), app: a, svc: a.Transfers, senders: a.Senders, handler: a.Handler, url: url,
		metrics: a.Metrics, db: a.DB,
		client: &http.Client{
			Transport:     &http.Transport{DisableCompression: true},
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}}
}

// mails returns how many mails of kind to `to` the server sent (to its
// development mailbox) or queued (for a relay that never answers).
func (e *env) mails(kind mail.Kind, to string) int {
	e.t.Helper()
	if e.app.Mailbox != nil {
		return len(e.app.Delivered(kind, to))
	}
	return len(e.app.Queued(kind, to))
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
	r, err := http.NewRequestWithContext(e.ctx, method, e.url+path, rd)
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
	return &fixture{e: &env{t: t, ctx: e.ctx, app: e.app, svc: e.svc, senders: e.senders, handler: e.handler, url: e.url, client: e.client, metrics: e.metrics, db: e.db}}
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
