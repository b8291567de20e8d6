package web

import (
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"

	"github.com/kluis-nl/kluis"
	"github.com/kluis-nl/kluis/internal/kluistest"
	"github.com/kluis-nl/kluis/internal/oidc/oidctest"
)

// ssoEnv is a server with staff single sign-on at a real OpenID provider
// (oidctest), whose organisation domain gemeente.example must use it.
type ssoEnv struct {
	app *TestApp
	op  *oidctest.Provider
}

func newSSOEnv(t *testing.T) *ssoEnv {
	t.Helper()
	op := oidctest.New(t)
	a := startApp(t, TestAppOptions{
		Args:   []string{"--oidc-issuer", op.Issuer, "--oidc-client-id", "kluis", "--oidc-role-admin", "kluis-admins", "--oidc-role-helpdesk", "servicedesk"},
		Env:    map[string]string{"KLUIS_OIDC_CLIENT_SECRET": "kluis-secret"},
		Policy: `{"organisation_domains": ["gemeente.example"]}`,
	})
	op.AddClient("kluis", "kluis-secret", a.URL+"/sso/callback")
	op.SetUser(oidctest.User{Subject: "beheer", Email: "beheer@gemeente.example", Name: "Bea Beheer", Groups: []string{"kluis-admins"}, AMR: []string{"pwd", "mfa"}})
	op.SetUser(oidctest.User{Subject: "zonder-mfa", Email: "zonder@gemeente.example", Name: "Zeno Zonder", Groups: []string{"kluis-admins"}, AMR: []string{"pwd"}})
	op.SetUser(oidctest.User{Subject: "balie", Email: "balie@gemeente.example", Name: "Bo Balie", Groups: []string{"servicedesk"}, AMR: []string{"pwd"}})
	return &ssoEnv{app: a, op: op}
}

// browser follows redirects across the server and the provider, keeps
// cookies like a browser on localhost, and records every URL it visits.
type browser struct {
	*http.Client
	visited []string
}

func newBrowser() *browser {
	jar, _ := cookiejar.New(nil)
	b := &browser{}
	b.Client = &http.Client{Jar: &secureJar{jar}, CheckRedirect: func(r *http.Request, _ []*http.Request) error {
		b.visited = append(b.visited, r.URL.String())
		return nil
	}}
	return b
}

func (b *browser) get(t *testing.T, u string) (*http.Response, string) {
	t.Helper()
	resp, err := b.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

// signIn starts at /sso/start?next=next, signs in at the provider as
// subject, and returns the page the server ends on.
func (e *ssoEnv) signIn(t *testing.T, b *browser, subject, next string) (*http.Response, string) {
	t.Helper()
	resp, _ := b.get(t, e.app.URL+"/sso/start?next="+url.QueryEscape(next))
	if !strings.HasPrefix(resp.Request.URL.String(), e.op.Issuer+"/login") {
		t.Fatalf("/sso/start ended at %s, not the provider's sign-in page", resp.Request.URL)
	}
	resp, err := oidctest.SignIn(b.Client, resp.Request.URL.String(), subject)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

func (b *browser) sessionToken(t *testing.T, base string) string {
	t.Helper()
	u, _ := url.Parse(base)
	for _, c := range b.Jar.Cookies(u) {
		if c.Name == senderSessionCookie {
			return c.Value
		}
	}
	return ""
}

// TestSSOSignInRolesAndLogout: a staff member signs in at the provider
// and lands where they were going, with the roles their groups and second
// factor earn; /admin needs the admin role with MFA; logout ends the
// server session and the provider's.
func TestSSOSignInRolesAndLogout(t *testing.T) {
	e := newSSOEnv(t)
	lang := "nl"

	b := newBrowser()
	_, body := b.get(t, e.app.URL+"/send")
	if want := translate(lang, "sso.button", "Gemeente Voorbeeld"); !strings.Contains(body, want) {
		t.Fatalf("the sign-in page offers no %q:\n%s", want, body)
	}
	resp, body := e.signIn(t, b, "beheer", "/admin")
	if resp.StatusCode != http.StatusOK || resp.Request.URL.Path != "/admin" {
		t.Fatalf("admin with MFA: %d at %s\n%s", resp.StatusCode, resp.Request.URL, body)
	}
	if !strings.Contains(body, "beheer@gemeente.example") || !strings.Contains(body, translate(lang, "admin.roles", "admin")) {
		t.Fatalf("the admin page does not say who and which role:\n%s", body)
	}
	token := b.sessionToken(t, e.app.URL)
	s, err := e.app.Senders.Authenticate(context.Background(), token)
	if err != nil || s.Auth != "sso" || !s.Roles.Has("admin") {
		t.Fatalf("session: %+v, %v", s, err)
	}

	// The callback replayed (same browser, state used) is refused.
	var callback string
	for _, u := range b.visited {
		if strings.Contains(u, "/sso/callback") {
			callback = u
		}
	}
	if callback == "" {
		t.Fatalf("no callback among %v", b.visited)
	}
	resp, _ = b.get(t, callback)
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("replayed callback: %d", resp.StatusCode)
	}

	// Logout: the server session ends, then the provider's.
	ended := e.op.EndedSessions()
	resp, err = b.PostForm(e.app.URL+"/logout", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || e.op.EndedSessions() != ended+1 {
		t.Fatalf("logout: %d at %s, provider sessions ended %d → %d", resp.StatusCode, resp.Request.URL, ended, e.op.EndedSessions())
	}
	if _, err := e.app.Senders.Authenticate(context.Background(), token); kluis.ErrorCode(err) != kluis.EUNAUTHORIZED {
		t.Fatalf("the session still works after logout: %v", err)
	}

	for _, tc := range []struct{ subject, text string }{
		{"zonder-mfa", "admin.forbidden_mfa"},
		{"balie", "admin.forbidden_role"},
	} {
		b := newBrowser()
		resp, body := e.signIn(t, b, tc.subject, "/admin/stats")
		if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, translate(lang, tc.text)) {
			t.Errorf("%s: /admin/stats answered %d\n%s", tc.subject, resp.StatusCode, body)
		}
	}
}

// TestSSOCallbackOtherBrowser: a callback opened in another browser than
// the one that started the sign-in is refused; one presented with another
// sign-in's binding uses the state up.
func TestSSOCallbackOtherBrowser(t *testing.T) {
	e := newSSOEnv(t)
	b := newBrowser()
	resp, _ := b.get(t, e.app.URL+"/sso/start")
	// The provider signs in; stop at its redirect to the callback.
	b.CheckRedirect = func(r *http.Request, _ []*http.Request) error {
		if r.URL.Path == "/sso/callback" {
			return http.ErrUseLastResponse
		}
		return nil
	}
	resp, err := oidctest.SignIn(b.Client, resp.Request.URL.String(), "beheer")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	callback := resp.Header.Get("Location")
	if !strings.Contains(callback, "/sso/callback") {
		t.Fatalf("provider answered %d to %q", resp.StatusCode, callback)
	}
	// Another browser without a sign-in of its own, and one with its own
	// (so it holds a binding cookie, as a victim of login CSRF would).
	if resp, _ := newBrowser().get(t, callback); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("callback in another browser: %d", resp.StatusCode)
	}
	other := newBrowser()
	other.get(t, e.app.URL+"/sso/start")
	if resp, _ := other.get(t, callback); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("callback in another browser with its own sign-in: %d", resp.StatusCode)
	}
	if other.sessionToken(t, e.app.URL) != "" {
		t.Fatal("the other browser got a session")
	}
	b.CheckRedirect = nil
	if resp, _ := b.get(t, callback); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("callback after the other browser's try: %d", resp.StatusCode)
	}
}

// TestSSOStaffRefusedMailedCode: an address in an organisation domain gets
// no mailed code but the form again, saying to sign in with the work
// account; an outside sender gets the code as before.
func TestSSOStaffRefusedMailedCode(t *testing.T) {
	e := newSSOEnv(t)
	b := newBrowser()
	resp, err := b.PostForm(e.app.URL+"/send/verify", url.Values{"name": {"Bea Beheer"}, "email": {"beheer@gemeente.example"}})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(string(body), translate("nl", "send.error_sso_required")) {
		t.Fatalf("staff address: %d\n%s", resp.StatusCode, body)
	}
	resp, err = b.PostForm(e.app.URL+"/send/verify", url.Values{"name": {"Burger"}, "email": {"burger@example.nl"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("outside address: %d", resp.StatusCode)
	}
}

// TestSSOAdviceInLog: a staff member whose token carries Entra's group
// overage marker, or group ids where the roles name groups, signs in
// without roles, and the log tells the administrator what to configure.
// The pages allow the provider's end-session origin as a form target (the
// logout form continues there), and no other.
func TestSSOAdviceInLog(t *testing.T) {
	op := oidctest.New(t)
	logs := kluistest.NewLogs()
	a := startApp(t, TestAppOptions{
		Args:   []string{"--oidc-issuer", op.Issuer, "--oidc-client-id", "kluis", "--oidc-role-admin", "kluis-admins"},
		Env:    map[string]string{"KLUIS_OIDC_CLIENT_SECRET": "kluis-secret"},
		Policy: `{"organisation_domains": ["gemeente.example"]}`,
		Logs:   logs,
	})
	op.AddClient("kluis", "kluis-secret", a.URL+"/sso/callback")
	op.SetUser(oidctest.User{Subject: "veel", Email: "veel@gemeente.example", Overage: true, AMR: []string{"mfa"}})
	op.SetUser(oidctest.User{Subject: "guid", Email: "guid@gemeente.example", Groups: []string{"0b5c1f9e-2d3a-4c6b-8e7f-9a0b1c2d3e4f"}, AMR: []string{"mfa"}})
	e := &ssoEnv{app: a, op: op}
	for _, tc := range []struct{ subject, advice string }{
		{"veel", "Groups assigned to the application"},
		{"guid", "Put the groups' object ids in --oidc-role-*"},
	} {
		b := newBrowser()
		resp, _ := e.signIn(t, b, tc.subject, "/send")
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: sign-in ended with %d", tc.subject, resp.StatusCode)
		}
		s, err := a.Senders.Authenticate(context.Background(), b.sessionToken(t, a.URL))
		if err != nil || len(s.Roles) != 0 {
			t.Fatalf("%s: session %+v, %v; want one without roles", tc.subject, s, err)
		}
		if !logs.Contains(tc.advice) {
			t.Errorf("%s: the log does not say %q:\n%s", tc.subject, tc.advice, logs.String())
		}
	}
	resp, _ := newBrowser().get(t, a.URL+"/send")
	csp := resp.Header.Get("Content-Security-Policy")
	if !strings.Contains(csp, "form-action 'self' "+op.Issuer) || strings.Count(csp, "http") != 1 {
		t.Errorf("CSP %q: want form-action 'self' and the provider's origin only", csp)
	}
}
