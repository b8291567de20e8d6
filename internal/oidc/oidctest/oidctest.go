// Package oidctest runs a real OpenID provider in-process on a loopback
// port, for tests of Kluis's relying party: discovery, the authorization
// code flow with PKCE, signed ID tokens, refresh tokens, RP-initiated
// logout. It is built on github.com/zitadel/oidc/v3's op package, so tokens
// are made and signed by that provider, never by hand.
//
// # Use
//
//	p := oidctest.New(t)
//	p.AddClient("kluis", "secret", "http://127.0.0.1:8080/sso/callback")
//	p.SetUser(oidctest.User{Subject: "u1", Email: "a@gemeente.example", Groups: []string{"kluis-admins"}, AMR: []string{"pwd", "mfa"}})
//
// The provider's sign-in page (where an authorization request lands) is a
// form with one field, "username", holding a user's Subject (no
// password: the test decides who signs in). Browsers fill it in; Go
// clients call SignIn with the page's URL. A disabled user cannot sign in
// and cannot refresh.
package oidctest

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"html/template"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/zitadel/oidc/v3/pkg/op"
)

// User is an account at the provider.
type User struct {
	Subject string
	Email   string
	Name    string
	// Groups go into the ID token's "groups" claim.
	Groups []string
	// Overage replaces the groups claim with Entra's overage marker
	// (_claim_names/_claim_sources), as Entra does past 200 groups.
	Overage bool
	// ACR and AMR go into the ID token as they are.
	ACR string
	AMR []string
	// Disabled users cannot sign in or refresh.
	Disabled bool
}

// Provider is a running OpenID provider.
type Provider struct {
	// Issuer is the provider's URL (http://127.0.0.1:PORT).
	Issuer string
	st     *storage
	srv    *httptest.Server
}

// Option changes how New sets the provider up.
type Option func(*options)

type options struct{ noDevice bool }

// WithoutDeviceGrant makes a provider that does not offer the device
// authorization grant (RFC 8628), as ADFS does not: its discovery document
// has no device_authorization_endpoint and that endpoint answers 404, so a
// command-line client must use a browser on a loopback redirect.
func WithoutDeviceGrant() Option { return func(o *options) { o.noDevice = true } }

// New starts a provider on a loopback port; it stops when the test ends.
func New(t testing.TB, opts ...Option) *Provider {
	t.Helper()
	var o options
	for _, f := range opts {
		f(&o)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("oidctest: %v", err)
	}
	issuer := "http://" + ln.Addr().String()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatalf("oidctest: %v", err)
	}
	st := &storage{
		key:      key,
		keyID:    rand.Text()[:8],
		users:    map[string]*User{},
		clients:  map[string]*client{},
		requests: map[string]*authRequest{},
		codes:    map[string]string{},
		refresh:  map[string]*refreshToken{},
		devices:  map[string]*device{},
	}
	cfg := &op.Config{
		CodeMethodS256:        true,
		AuthMethodPost:        true,
		GrantTypeRefreshToken: true,
		DeviceAuthorization: op.DeviceAuthorizationConfig{
			Lifetime:     5 * time.Minute,
			PollInterval: time.Second,
			UserFormPath: "/device",
			UserCode:     op.UserCodeBase20,
		},
	}
	if _, err := rand.Read(cfg.CryptoKey[:]); err != nil {
		t.Fatalf("oidctest: %v", err)
	}
	p, err := op.NewProvider(cfg, st, op.StaticIssuer(issuer), op.WithAllowInsecure(),
		op.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatalf("oidctest: %v", err)
	}
	st.callback = op.AuthCallbackURL(p)
	mux := http.NewServeMux()
	mux.HandleFunc("/login", st.login)
	mux.HandleFunc("/device", st.deviceForm)
	mux.Handle("/", p)
	if o.noDevice {
		mux.Handle("/device_authorization", http.NotFoundHandler())
		mux.Handle("/.well-known/openid-configuration", withoutDevice(p))
	}
	srv := httptest.NewUnstartedServer(mux)
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	return &Provider{Issuer: issuer, st: st, srv: srv}
}

// AddClient registers a confidential client (client_secret_basic or
// _post) with the redirect URIs it may use; each redirect URI's origin
// root ("http://host:port/") is also a permitted post-logout redirect. A
// loopback redirect URI registered without a port
// ("http://127.0.0.1/callback") admits that path on any port, as RFC 8252
// (section 7.3) asks of a provider for command-line clients.
func (p *Provider) AddClient(id, secret string, redirectURIs ...string) {
	var post []string
	loopback := false
	for _, r := range redirectURIs {
		if u, err := url.Parse(r); err == nil {
			post = append(post, u.Scheme+"://"+u.Host+"/")
			if ip := net.ParseIP(u.Hostname()); u.Scheme == "http" && u.Port() == "" && ip != nil && ip.IsLoopback() {
				loopback = true
			}
		}
	}
	p.st.mu.Lock()
	defer p.st.mu.Unlock()
	p.st.clients[id] = &client{id: id, secret: secret, redirects: redirectURIs, postLogout: post, loginURL: p.Issuer + "/login", loopback: loopback}
}

// withoutDevice serves op's discovery document without the device
// authorization endpoint.
func withoutDevice(op http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := httptest.NewRecorder()
		op.ServeHTTP(rec, r)
		var doc map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &doc); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		delete(doc, "device_authorization_endpoint")
		if gts, ok := doc["grant_types_supported"].([]any); ok {
			doc["grant_types_supported"] = slices.DeleteFunc(gts, func(g any) bool { return g == "urn:ietf:params:oauth:grant-type:device_code" })
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(doc)
	})
}

// SetUser adds or replaces a user.
func (p *Provider) SetUser(u User) {
	p.st.mu.Lock()
	defer p.st.mu.Unlock()
	c := u
	p.st.users[u.Subject] = &c
}

// Disable switches a user off: no sign-in, no refresh.
func (p *Provider) Disable(subject string) {
	p.st.mu.Lock()
	defer p.st.mu.Unlock()
	if u := p.st.users[subject]; u != nil {
		u.Disabled = true
	}
}

// EndedSessions counts the RP-initiated logouts the provider received.
func (p *Provider) EndedSessions() int {
	p.st.mu.Lock()
	defer p.st.mu.Unlock()
	return p.st.ended
}

// SignIn completes the provider's sign-in page at loginURL (where the
// authorization request redirected to) as subject, with c (which must keep
// cookies of the relying party it came from), and returns the final
// response after following redirects.
func SignIn(c *http.Client, loginURL, subject string) (*http.Response, error) {
	u, err := url.Parse(loginURL)
	if err != nil {
		return nil, err
	}
	return c.PostForm(u.Scheme+"://"+u.Host+"/login", url.Values{"id": {u.Query().Get("id")}, "username": {subject}})
}

// ApproveDevice approves a device authorization grant's user code as
// subject, as the user would on the verification page.
func (p *Provider) ApproveDevice(userCode, subject string) error {
	resp, err := http.PostForm(p.Issuer+"/device", url.Values{"user_code": {userCode}, "username": {subject}})
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("oidctest: device approval answered %s", resp.Status)
	}
	return nil
}

var loginPage = template.Must(template.New("login").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Test provider</title></head>
<body><main><h1>Test provider</h1><form method="post" action="{{.Action}}">
{{if .ID}}<input type="hidden" name="id" value="{{.ID}}">{{end}}
{{if .Device}}<label for="user_code">Code</label> <input id="user_code" name="user_code">{{end}}
<label for="username">User</label> <input id="username" name="username">
<button id="submit" type="submit">Sign in</button></form>{{if .Error}}<p id="error">{{.Error}}</p>{{end}}</main></body></html>`))

type storage struct {
	key      *rsa.PrivateKey
	keyID    string
	callback func(context.Context, string) string

	mu       sync.Mutex
	users    map[string]*User
	clients  map[string]*client
	requests map[string]*authRequest
	codes    map[string]string // code -> request id
	refresh  map[string]*refreshToken
	devices  map[string]*device // device code -> state
	ended    int
}

func (s *storage) login(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodGet {
		_ = loginPage.Execute(w, map[string]any{"Action": "/login", "ID": r.URL.Query().Get("id")})
		return
	}
	id, sub := r.PostFormValue("id"), r.PostFormValue("username")
	s.mu.Lock()
	req, u := s.requests[id], s.users[sub]
	ok := req != nil && u != nil && !u.Disabled
	if ok {
		req.subject, req.done, req.authTime, req.acr, req.amr = u.Subject, true, time.Now(), u.ACR, slices.Clone(u.AMR)
	}
	s.mu.Unlock()
	if !ok {
		w.WriteHeader(http.StatusForbidden)
		_ = loginPage.Execute(w, map[string]any{"Action": "/login", "ID": id, "Error": "unknown or disabled user"})
		return
	}
	http.Redirect(w, r, s.callback(r.Context(), id), http.StatusFound)
}

func (s *storage) deviceForm(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodGet {
		_ = loginPage.Execute(w, map[string]any{"Action": "/device", "Device": true})
		return
	}
	code, sub := r.PostFormValue("user_code"), r.PostFormValue("username")
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.users[sub]
	for _, d := range s.devices {
		if d.userCode == code && u != nil && !u.Disabled {
			d.state.Done, d.state.Subject, d.state.AMR, d.state.AuthTime = true, u.Subject, slices.Clone(u.AMR), time.Now()
			_ = loginPage.Execute(w, map[string]any{"Action": "/device", "Error": "approved"})
			return
		}
	}
	w.WriteHeader(http.StatusForbidden)
	_ = loginPage.Execute(w, map[string]any{"Action": "/device", "Device": true, "Error": "unknown code or user"})
}
