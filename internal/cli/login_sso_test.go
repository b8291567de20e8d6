package cli

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/cookiejar"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kluis-nl/kluis/internal/app/apptest"
	"github.com/kluis-nl/kluis/internal/oidc/oidctest"
)

// ssoServer is a real server whose staff sign in at op (a real OpenID
// provider), with a one-hour SSO cap so the tests can pass it.
func ssoServer(t *testing.T, op *oidctest.Provider) *apptest.App {
	t.Helper()
	srv := apptest.Start(t, apptest.Options{
		Args: []string{"--oidc-issuer", op.Issuer, "--oidc-client-id", "kluis", "--oidc-role-helpdesk", "g-help",
			"--oidc-scopes", "openid,email,profile,offline_access", "--oidc-session-max", "1h"},
		Env:    map[string]string{"KLUIS_OIDC_CLIENT_SECRET": "kluis-secret"},
		Policy: `{"organisation_domains": ["gemeente.example"]}`,
	})
	// The server's own callback, and the loopback of the command line on
	// any port (RFC 8252), as an administrator registers them.
	op.AddClient("kluis", "kluis-secret", srv.URL()+"/sso/callback", "http://127.0.0.1/callback")
	op.SetUser(oidctest.User{Subject: "balie", Email: "bo.balie@gemeente.example", Name: "Bo Balie", Groups: []string{"g-help"}, AMR: []string{"pwd"}})
	return srv
}

// syncBuffer is a bytes buffer that the command writes while the test
// reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// cliEnv runs kluis commands in-process against one server, with one
// configuration folder (the token file).
type cliEnv struct {
	t       *testing.T
	srv     *apptest.App
	env     map[string]string
	openURL func(string) error
}

func newCLIEnv(t *testing.T, srv *apptest.App) *cliEnv {
	return &cliEnv{t: t, srv: srv, env: map[string]string{"XDG_CONFIG_HOME": t.TempDir(), "KLUIS_SERVER": srv.URL()}}
}

func (e *cliEnv) run(stderr io.Writer, args ...string) (string, error) {
	var out syncBuffer
	a, err := Program{Version: "test"}.newApp(english(func(k string) string { return e.env[k] }), Stdio{In: strings.NewReader(""), Out: &out, Err: stderr})
	if err != nil {
		return "", err
	}
	a.openURL = e.openURL
	if a.openURL == nil {
		a.openURL = func(string) error { return errors.New("no browser in this test") }
	}
	err = a.run(e.t.Context(), args)
	return out.String(), err
}

func (e *cliEnv) storedToken() storedLogin {
	e.t.Helper()
	b, err := os.ReadFile(filepath.Join(e.env["XDG_CONFIG_HOME"], "kluis", "token.json"))
	if err != nil {
		e.t.Fatal(err)
	}
	var tf tokenFile
	if err := json.Unmarshal(b, &tf); err != nil {
		e.t.Fatal(err)
	}
	for _, l := range tf.Servers {
		return l
	}
	e.t.Fatal("no login stored")
	return storedLogin{}
}

var userCodeRE = regexp.MustCompile(`type this code: (\S+)`)

// TestLoginSSODevice: kluis login --sso with a provider that offers the
// device grant: the command shows the provider's address and a code; the
// person approves it at the provider (here: the provider's own form); the
// command gets a token for 30 days at most. The server re-checks the
// account at the provider once per cap (1 h here): while the account is
// active the token keeps working; a disabled account loses it at the next
// re-check.
func TestLoginSSODevice(t *testing.T) {
	op := oidctest.New(t)
	srv := ssoServer(t, op)
	e := newCLIEnv(t, srv)

	var stderr syncBuffer
	approved := make(chan error, 1)
	go func() {
		deadline := time.Now().Add(20 * time.Second)
		for time.Now().Before(deadline) {
			if m := userCodeRE.FindStringSubmatch(stderr.String()); m != nil {
				approved <- op.ApproveDevice(m[1], "balie")
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
		approved <- errors.New("no user code shown")
	}()
	out, err := e.run(&stderr, "login", "--sso")
	if aerr := <-approved; aerr != nil {
		t.Fatalf("approval: %v\n%s", aerr, stderr.String())
	}
	if err != nil {
		t.Fatalf("kluis login --sso: %v\n%s", err, stderr.String())
	}
	if !strings.Contains(stderr.String(), op.Issuer+"/device") || !strings.Contains(out, "Logged in as bo.balie@gemeente.example") {
		t.Errorf("stderr %q, stdout %q", stderr.String(), out)
	}
	l := e.storedToken()
	if life := l.ExpiresAt.Sub(srv.Clock.Now()); life > 30*24*time.Hour || life < 29*24*time.Hour {
		t.Errorf("the CLI token lasts %v, want 30 days", life)
	}
	// The token works, also after one re-check at the provider.
	if _, err := e.run(io.Discard, "status"); err != nil {
		t.Fatalf("kluis status after login: %v", err)
	}
	srv.Clock.Advance(61 * time.Minute)
	if _, err := e.run(io.Discard, "status"); err != nil {
		t.Fatalf("kluis status after a re-check: %v", err)
	}
	// Disabled at the provider: gone at the next re-check (within the cap).
	op.Disable("balie")
	srv.Clock.Advance(61 * time.Minute)
	var errOut strings.Builder
	_, err = e.run(&errOut, "status")
	if code := exitCode(err); code != exitAuth {
		t.Fatalf("kluis status of a disabled account: exit %d (%v), want %d", code, err, exitAuth)
	}
	if !strings.Contains(err.Error(), "kluis login") {
		t.Errorf("the error does not say to log in again: %v", err)
	}
	if !strings.Contains(string(srv.Logs.Bytes()), "sso.recheck") {
		t.Error("the failed re-check is not logged")
	}
}

// TestLoginSSOBrowser: a provider without the device grant (like ADFS):
// kluis login --sso opens the browser at the provider with a loopback
// redirect; the provider sends the browser back to the command line's
// listener, which hands the code to the server. The browser here is a Go
// HTTP client that signs in on the provider's page.
func TestLoginSSOBrowser(t *testing.T) {
	op := oidctest.New(t, oidctest.WithoutDeviceGrant())
	srv := ssoServer(t, op)
	e := newCLIEnv(t, srv)
	var page string
	opened := make(chan error, 1)
	e.openURL = func(u string) error {
		go func() {
			jar, _ := cookiejar.New(nil)
			c := &http.Client{Jar: jar}
			resp, err := c.Get(u)
			if err != nil {
				opened <- err
				return
			}
			resp.Body.Close()
			if resp, err = oidctest.SignIn(c, resp.Request.URL.String(), "balie"); err != nil {
				opened <- err
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			page = string(b)
			opened <- nil
		}()
		return nil
	}
	var stderr syncBuffer
	out, err := e.run(&stderr, "login", "--sso")
	if oerr := <-opened; oerr != nil {
		t.Fatalf("browser: %v", oerr)
	}
	if err != nil {
		t.Fatalf("kluis login --sso: %v\n%s", err, stderr.String())
	}
	if !strings.Contains(out, "Logged in as bo.balie@gemeente.example") || !strings.Contains(stderr.String(), op.Issuer+"/authorize?") {
		t.Errorf("stdout %q, stderr %q", out, stderr.String())
	}
	if !strings.Contains(page, "You are signed in") {
		t.Errorf("the browser's last page: %q", page)
	}
	if _, err := e.run(io.Discard, "status"); err != nil {
		t.Fatalf("kluis status after login: %v", err)
	}
	// --browser is the same flow where the device grant is offered too;
	// without --sso it is a usage error.
	if _, err := e.run(io.Discard, "login", "--browser"); exitCode(err) != exitUsage {
		t.Errorf("--browser without --sso: %v", err)
	}
	if _, err := e.run(io.Discard, "login", "--sso", "--email", "a@gemeente.example"); exitCode(err) != exitUsage {
		t.Errorf("--sso with --email: %v", err)
	}
}

// TestLoginSSOBrowserRefused: the person cancels at the provider (a
// disabled account cannot sign in): the command says the sign-in failed
// and stores nothing.
func TestLoginSSOBrowserDisabled(t *testing.T) {
	op := oidctest.New(t)
	srv := ssoServer(t, op)
	op.Disable("balie")
	e := newCLIEnv(t, srv)
	opened := make(chan int, 1)
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	defer cancel()
	e.openURL = func(u string) error {
		go func() {
			jar, _ := cookiejar.New(nil)
			c := &http.Client{Jar: jar}
			resp, err := c.Get(u)
			if err != nil {
				opened <- 0
				return
			}
			resp.Body.Close()
			resp, err = oidctest.SignIn(c, resp.Request.URL.String(), "balie")
			if err != nil {
				opened <- 0
				return
			}
			resp.Body.Close()
			opened <- resp.StatusCode
			// The provider refused: the person gives up.
			cancel()
		}()
		return nil
	}
	var out syncBuffer
	a, err := Program{Version: "test"}.newApp(english(func(k string) string { return e.env[k] }), Stdio{In: strings.NewReader(""), Out: &out, Err: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	a.openURL = e.openURL
	err = a.run(ctx, []string{"login", "--sso", "--browser"})
	if st := <-opened; st != http.StatusForbidden {
		t.Errorf("the provider answered %d to a disabled account, want 403", st)
	}
	if err == nil || out.String() != "" {
		t.Fatalf("login of a disabled account: err %v, out %q", err, out.String())
	}
	if _, err := os.Stat(filepath.Join(e.env["XDG_CONFIG_HOME"], "kluis", "token.json")); err == nil {
		t.Error("a token was stored")
	}
}

// TestLoginMailedCodeRefusedForStaff: an address in the organisation's
// domains that asks for a mailed code through the API (kluis login
// --email) is told to use kluis login --sso; an outside address still
// gets its code.
func TestLoginMailedCodeRefusedForStaff(t *testing.T) {
	op := oidctest.New(t)
	srv := ssoServer(t, op)
	e := newCLIEnv(t, srv)
	_, err := e.run(io.Discard, "login", "--email", "bo.balie@gemeente.example")
	if code := exitCode(err); code != exitRefused {
		t.Fatalf("exit %d (%v), want %d", code, err, exitRefused)
	}
	if !strings.Contains(err.Error(), "bo.balie@gemeente.example signs in with a work account") || !strings.Contains(err.Error(), "Run kluis login --sso.") {
		t.Errorf("error: %v", err)
	}
	if n := len(srv.Queued("", "bo.balie@gemeente.example")) + len(srv.Delivered("", "bo.balie@gemeente.example")); n != 0 {
		t.Errorf("%d mails for the staff address", n)
	}
}

// TestLoginSSOWithoutSSO: a server without single sign-on says so, and
// points at the mailed code.
func TestLoginSSOWithoutSSO(t *testing.T) {
	srv := apptest.Start(t, apptest.Options{})
	e := newCLIEnv(t, srv)
	_, err := e.run(io.Discard, "login", "--sso")
	if code := exitCode(err); code != exitRefused {
		t.Fatalf("exit %d (%v), want %d", code, err, exitRefused)
	}
	if !strings.Contains(err.Error(), "has no sign-in with a work account") || !strings.Contains(err.Error(), "kluis login --email") {
		t.Errorf("error: %v", err)
	}
}
