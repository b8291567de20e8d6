package api_test

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/kluis-nl/kluis/internal/app/apptest"
	"github.com/kluis-nl/kluis/internal/oidc/oidctest"
)

// ssoAPIEnv is a server whose staff sign in at op, a real OpenID provider.
func ssoAPIEnv(t *testing.T, op *oidctest.Provider) *apiEnv {
	t.Helper()
	e := startAPIEnv(t, apptest.Options{
		Args: []string{"--oidc-issuer", op.Issuer, "--oidc-client-id", "kluis", "--oidc-role-helpdesk", "g-help",
			"--oidc-scopes", "openid,email,profile,offline_access"},
		Env:    map[string]string{"KLUIS_OIDC_CLIENT_SECRET": "kluis-secret"},
		Policy: `{"organisation_domains": ["gemeente.example"]}`,
	})
	op.AddClient("kluis", "kluis-secret", e.url+"/sso/callback", "http://127.0.0.1/callback")
	op.SetUser(oidctest.User{Subject: "balie", Email: "bo.balie@gemeente.example", Name: "Bo Balie", Groups: []string{"g-help"}, AMR: []string{"pwd"}})
	return e
}

// A staff address asking for a mailed code through the API is refused
// with a field code a client can act on, and words that name kluis login
// --sso, in English or Dutch.
func TestVerifyRefusesStaffAddress(t *testing.T) {
	e := ssoAPIEnv(t, oidctest.New(t))
	for _, tc := range []struct{ lang, want string }{
		{"en", "On the command line: kluis login --sso."},
		{"nl", "Op de opdrachtregel: kluis login --sso."},
	} {
		resp := e.req("POST", "/api/v1/verify", "", map[string]string{"Accept-Language": tc.lang}, map[string]string{"email": "bo.balie@gemeente.example"})
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var body struct {
			Error struct {
				Code, Message string
				Fields        []struct{ Field, Code, Key string }
			}
		}
		if err := json.Unmarshal(b, &body); err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusForbidden || body.Error.Code != "policy" || len(body.Error.Fields) != 1 ||
			body.Error.Fields[0].Code != "sso_required" || body.Error.Fields[0].Field != "email" || !strings.Contains(body.Error.Message, tc.want) ||
			!strings.Contains(body.Error.Message, "gemeente.example") {
			t.Errorf("%s: %d %s", tc.lang, resp.StatusCode, b)
		}
	}
	// An outside sender still gets the code.
	resp := e.req("POST", "/api/v1/verify", "", nil, map[string]string{"email": "burger@example.nl"})
	e.jsonOK(resp, http.StatusAccepted, nil)
}

// The device sign-in through the API: pending until the person approves
// at the provider, then a CLI token; the handle works once.
func TestSSODeviceThroughAPI(t *testing.T) {
	t.Parallel()
	op := oidctest.New(t)
	e := ssoAPIEnv(t, op)
	var st struct {
		Method    string    `json:"method"`
		Handle    string    `json:"handle"`
		UserCode  string    `json:"user_code"`
		VerURI    string    `json:"verification_uri"`
		ExpiresAt time.Time `json:"expires_at"`
	}
	e.jsonOK(e.req("POST", "/api/v1/sso/start", "", nil, map[string]string{"lang": "nl"}), http.StatusOK, &st)
	if st.Method != "device" || st.UserCode == "" || st.VerURI != op.Issuer+"/device" {
		t.Fatalf("start: %+v", st)
	}
	// Not approved yet: 202 after the server's wait.
	var pending struct{ Status string }
	e.jsonOK(e.req("POST", "/api/v1/sso/finish", "", nil, map[string]string{"handle": st.Handle}), http.StatusAccepted, &pending)
	if pending.Status != "pending" {
		t.Fatalf("pending: %+v", pending)
	}
	if err := op.ApproveDevice(st.UserCode, "balie"); err != nil {
		t.Fatal(err)
	}
	var done struct {
		Token     string    `json:"token"`
		ExpiresAt time.Time `json:"expires_at"`
		Sender    struct{ Email string }
	}
	e.jsonOK(e.req("POST", "/api/v1/sso/finish", "", nil, map[string]string{"handle": st.Handle}), http.StatusOK, &done)
	if done.Token == "" || done.Sender.Email != "bo.balie@gemeente.example" || done.ExpiresAt.Sub(e.clock.Now()) > 30*24*time.Hour {
		t.Fatalf("finish: %+v", done)
	}
	e.jsonOK(e.req("GET", "/api/v1/me", done.Token, nil, nil), http.StatusOK, nil)
	// The handle is used up.
	if code, _, _ := apiError(t, e.req("POST", "/api/v1/sso/finish", "", nil, map[string]string{"handle": st.Handle}), http.StatusUnauthorized); code != "unauthorized" {
		t.Errorf("a used handle: %s", code)
	}
}

// The loopback sign-in through the API: the provider sends the browser to
// the client's listener; a code with the wrong handle is refused and ends
// nothing else, the right one gives a token. A redirect that is not a
// loopback address is refused at the start.
func TestSSOLoopbackThroughAPI(t *testing.T) {
	op := oidctest.New(t, oidctest.WithoutDeviceGrant())
	e := ssoAPIEnv(t, op)
	if code, msg, _ := apiError(t, e.req("POST", "/api/v1/sso/start", "", nil, map[string]string{}), http.StatusBadRequest); code != "invalid" || !strings.Contains(msg, "redirect_uri") {
		t.Errorf("no redirect without the device grant: %s %s", code, msg)
	}
	if code, _, _ := apiError(t, e.req("POST", "/api/v1/sso/start", "", nil, map[string]string{"redirect_uri": "https://evil.example/cb"}), http.StatusBadRequest); code != "invalid" {
		t.Errorf("a non-loopback redirect: %s", code)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan url.Values, 1)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got <- r.URL.Query() })}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	var st struct {
		Method  string `json:"method"`
		Handle  string `json:"handle"`
		AuthURL string `json:"auth_url"`
	}
	e.jsonOK(e.req("POST", "/api/v1/sso/start", "", nil, map[string]string{"redirect_uri": "http://" + ln.Addr().String() + "/callback"}), http.StatusOK, &st)
	if st.Method != "browser" || !strings.HasPrefix(st.AuthURL, op.Issuer) {
		t.Fatalf("start: %+v", st)
	}
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}
	resp, err := c.Get(st.AuthURL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp, err = oidctest.SignIn(c, resp.Request.URL.String(), "balie"); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	q := <-got
	// Someone else's handle with this code and state: refused.
	if code, _, _ := apiError(t, e.req("POST", "/api/v1/sso/finish", "", nil, map[string]string{"handle": "x" + st.Handle, "state": q.Get("state"), "code": q.Get("code")}), http.StatusUnauthorized); code != "unauthorized" {
		t.Errorf("another handle: %s", code)
	}
	// The flow was taken by that try (single use): even the right handle
	// now fails, so a leaked code and state are worth one try at most.
	if code, _, _ := apiError(t, e.req("POST", "/api/v1/sso/finish", "", nil, map[string]string{"handle": st.Handle, "state": q.Get("state"), "code": q.Get("code")}), http.StatusUnauthorized); code != "unauthorized" {
		t.Errorf("after a wrong handle: %s", code)
	}
}
