package oidc_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/kluis-nl/kluis/internal/oidc"
	"github.com/kluis-nl/kluis/internal/oidc/oidctest"
	"github.com/kluis-nl/kluis/internal/role"
)

// A provider without the device grant: no device endpoint in discovery, so
// DeviceStart says so and the command line uses a loopback redirect, on
// whatever port it got, with PKCE; the code goes back through Finish.
func TestLoopbackWithoutDeviceGrant(t *testing.T) {
	op := oidctest.New(t, oidctest.WithoutDeviceGrant())
	op.AddClient("kluis", "s3cret", "http://127.0.0.1:1/sso/callback", "http://127.0.0.1/callback")
	op.SetUser(oidctest.User{Subject: "u1", Email: "a.jansen@gemeente.example", Groups: []string{"g-admin"}, AMR: []string{"pwd", "mfa"}})
	ctx := context.Background()
	p, err := oidc.New(ctx, oidc.Config{Issuer: op.Issuer, ClientID: "kluis", ClientSecret: "s3cret", RedirectURL: "http://127.0.0.1:1/sso/callback"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.DeviceStart(ctx); !errors.Is(err, oidc.ErrNoDeviceGrant) {
		t.Fatalf("DeviceStart without the grant: err = %v, want ErrNoDeviceGrant", err)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan url.Values, 1)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r.URL.Query()
		w.Write([]byte("ok"))
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	redirect := "http://" + ln.Addr().String() + "/callback"

	authURL, flow, err := p.BeginLoopback(redirect)
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(authURL)
	if u.Query().Get("redirect_uri") != redirect || u.Query().Get("code_challenge_method") != "S256" || u.Query().Get("nonce") != flow.Nonce {
		t.Fatalf("authorization URL %s", authURL)
	}
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}
	resp, err := c.Get(authURL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp, err = oidctest.SignIn(c, resp.Request.URL.String(), "u1"); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	var q url.Values
	select {
	case q = <-got:
	case <-time.After(10 * time.Second):
		t.Fatal("the provider did not redirect to the loopback listener")
	}
	if q.Get("state") != flow.State {
		t.Fatalf("state %q, want %q", q.Get("state"), flow.State)
	}
	// Without the verifier the code is worth nothing.
	bad := flow
	bad.Verifier = "x" + strings.Repeat("a", 50)
	if _, err := p.Finish(ctx, q.Get("code"), bad); !errors.Is(err, oidc.ErrSignIn) {
		t.Errorf("finish with another verifier: %v", err)
	}
	id, err := p.Finish(ctx, q.Get("code"), flow)
	if err != nil {
		t.Fatal(err)
	}
	if id.Email != "a.jansen@gemeente.example" {
		t.Errorf("identity %+v", id)
	}
	m := oidc.Mapping{Groups: map[role.Role][]string{role.Admin: {"g-admin"}}, MFA: []role.Role{role.Admin}, AMR: oidc.DefaultAMR}
	if g, _ := m.Roles(id); !g.Has(role.Admin) {
		t.Errorf("roles %v", g)
	}
}

func TestBeginLoopbackRefusesOtherRedirects(t *testing.T) {
	_, p := setup(t)
	for _, r := range []string{"https://127.0.0.1:8080/cb", "http://localhost:8080/cb", "http://example.nl:8080/cb", "http://127.0.0.1/cb", "http://127.0.0.1:8080/cb?x=1", "http://u@127.0.0.1:8080/cb"} {
		if _, _, err := p.BeginLoopback(r); err == nil {
			t.Errorf("BeginLoopback(%q) accepted", r)
		}
	}
	// A flow whose redirect was changed afterwards is refused too.
	_, f, err := p.BeginLoopback("http://[::1]:8080/cb")
	if err != nil {
		t.Fatal(err)
	}
	f.Redirect = "http://evil.example/cb"
	if _, err := p.Finish(context.Background(), "code", f); !errors.Is(err, oidc.ErrSignIn) {
		t.Errorf("Finish with a non-loopback redirect: %v", err)
	}
}

// DevicePoll answers ErrPending while the user has not approved, and the
// identity once approved.
func TestDevicePoll(t *testing.T) {
	op, p := setup(t)
	op.SetUser(oidctest.User{Subject: "u1", Email: "a.jansen@gemeente.example"})
	ctx := context.Background()
	da, err := p.DeviceStart(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.DevicePoll(ctx, da, 1500*time.Millisecond); !errors.Is(err, oidc.ErrPending) {
		t.Fatalf("before approval: err = %v, want ErrPending", err)
	}
	if err := op.ApproveDevice(da.UserCode, "u1"); err != nil {
		t.Fatal(err)
	}
	id, err := p.DevicePoll(ctx, da, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if id.Email != "a.jansen@gemeente.example" || id.RefreshToken == "" {
		t.Errorf("identity %+v", id)
	}
}

// Advice tells the administrator why a sign-in got no role: Entra's group
// overage, ids where names are mapped, names where ids are mapped.
func TestAdviceFromRealTokens(t *testing.T) {
	const guid = "3f2a9c1e-7b4d-4e8a-9f10-2c3d4e5f6a7b"
	op, p := setup(t)
	op.SetUser(oidctest.User{Subject: "over", Email: "a@gemeente.example", Overage: true})
	op.SetUser(oidctest.User{Subject: "ids", Email: "b@gemeente.example", Groups: []string{guid}})
	op.SetUser(oidctest.User{Subject: "names", Email: "c@gemeente.example", Groups: []string{"Kluis Beheer"}})
	op.SetUser(oidctest.User{Subject: "other", Email: "d@gemeente.example", Groups: []string{"Burgerzaken"}})
	byName := oidc.Mapping{Groups: map[role.Role][]string{role.Admin: {"Kluis Beheer"}}}
	byID := oidc.Mapping{Groups: map[role.Role][]string{role.Admin: {guid}}}
	id := func(sub string) *oidc.Identity {
		code, flow := signIn(t, p, sub)
		id, err := p.Finish(context.Background(), code, flow)
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	over, ids, names, other := id("over"), id("ids"), id("names"), id("other")
	for _, tc := range []struct {
		name string
		m    oidc.Mapping
		id   *oidc.Identity
		want string
	}{
		{"overage", byName, over, "groupMembershipClaims: ApplicationGroup"},
		{"ids sent, names mapped", byName, ids, "Object ID"},
		{"names sent, ids mapped", byID, names, "Put the group names in --oidc-role-*"},
		{"ids match", byID, ids, ""},
		{"names match", byName, names, ""},
		{"not a mapped group", byName, other, ""},
		{"no mapping", oidc.Mapping{}, over, ""},
	} {
		got := tc.m.Advice(tc.id)
		if tc.want == "" && got != "" || !strings.Contains(got, tc.want) {
			t.Errorf("%s: Advice = %q, want it to hold %q", tc.name, got, tc.want)
		}
	}
	if g, w := byName.Roles(over); len(g)+len(w) > 0 {
		t.Errorf("overage granted %v %v", g, w)
	}
}
