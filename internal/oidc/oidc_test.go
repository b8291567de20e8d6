package oidc_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"slices"
	"testing"

	"github.com/kluis-nl/kluis/internal/oidc"
	"github.com/kluis-nl/kluis/internal/oidc/oidctest"
	"github.com/kluis-nl/kluis/internal/role"
)

// signIn runs the code flow against op as subject and returns the code
// the provider sent to the callback (the redirect is not followed).
func signIn(t *testing.T, p *oidc.Provider, subject string) (string, oidc.Flow) {
	t.Helper()
	authURL, flow := p.Begin()
	jar, _ := cookiejar.New(nil)
	var got *url.URL
	c := &http.Client{Jar: jar, CheckRedirect: func(r *http.Request, _ []*http.Request) error {
		if r.URL.Path == "/cb" {
			got = r.URL
			return http.ErrUseLastResponse
		}
		return nil
	}}
	resp, err := c.Get(authURL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp, err = oidctest.SignIn(c, resp.Request.URL.String(), subject); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got == nil {
		t.Fatalf("the provider did not redirect to the callback (last: %s %s)", resp.Status, resp.Request.URL)
	}
	if got.Query().Get("state") != flow.State {
		t.Fatalf("state = %q, want %q", got.Query().Get("state"), flow.State)
	}
	return got.Query().Get("code"), flow
}

func setup(t *testing.T) (*oidctest.Provider, *oidc.Provider) {
	t.Helper()
	op := oidctest.New(t)
	cb := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(cb.Close)
	op.AddClient("kluis", "s3cret", cb.URL+"/cb")
	p, err := oidc.New(context.Background(), oidc.Config{Issuer: op.Issuer, ClientID: "kluis", ClientSecret: "s3cret", RedirectURL: cb.URL + "/cb",
		Scopes: []string{"openid", "email", "profile", "offline_access"}})
	if err != nil {
		t.Fatal(err)
	}
	return op, p
}

func TestFinish(t *testing.T) {
	op, p := setup(t)
	op.SetUser(oidctest.User{Subject: "u1", Email: "a.jansen@gemeente.example", Name: "A. Jansen", Groups: []string{"g-admin", "x"}, AMR: []string{"pwd", "mfa"}})
	code, flow := signIn(t, p, "u1")
	id, err := p.Finish(context.Background(), code, flow)
	if err != nil {
		t.Fatal(err)
	}
	if id.Email != "a.jansen@gemeente.example" || id.Name != "A. Jansen" || !slices.Equal(id.Groups, []string{"g-admin", "x"}) || !slices.Contains(id.AMR, "mfa") {
		t.Errorf("identity = %+v", id)
	}
	if id.RefreshToken == "" {
		t.Error("no refresh token")
	}
	// The code works once.
	if _, err := p.Finish(context.Background(), code, flow); !errors.Is(err, oidc.ErrSignIn) {
		t.Errorf("second redeem: err = %v, want ErrSignIn", err)
	}
	if p.LogoutURL(id.IDToken, "http://x/") == "" {
		t.Error("the provider advertises end_session_endpoint, but LogoutURL is empty")
	}
}

func TestFinishRefusesAnotherFlowsNonce(t *testing.T) {
	op, p := setup(t)
	op.SetUser(oidctest.User{Subject: "u1", Email: "a@gemeente.example"})
	code, flow := signIn(t, p, "u1")
	flow.Nonce = "replayed"
	if _, err := p.Finish(context.Background(), code, flow); !errors.Is(err, oidc.ErrSignIn) {
		t.Errorf("err = %v, want ErrSignIn for a nonce mismatch", err)
	}
}

func TestFinishRefusesWrongVerifier(t *testing.T) {
	op, p := setup(t)
	op.SetUser(oidctest.User{Subject: "u1", Email: "a@gemeente.example"})
	code, flow := signIn(t, p, "u1")
	_, other := p.Begin()
	flow.Verifier = other.Verifier
	if _, err := p.Finish(context.Background(), code, flow); !errors.Is(err, oidc.ErrSignIn) {
		t.Errorf("err = %v, want ErrSignIn for a wrong PKCE verifier", err)
	}
}

func TestRefreshFailsForDisabledUser(t *testing.T) {
	op, p := setup(t)
	op.SetUser(oidctest.User{Subject: "u1", Email: "a@gemeente.example"})
	code, flow := signIn(t, p, "u1")
	id, err := p.Finish(context.Background(), code, flow)
	if err != nil {
		t.Fatal(err)
	}
	again, err := p.Refresh(context.Background(), id.RefreshToken)
	if err != nil || again.Email != id.Email {
		t.Fatalf("refresh: %+v, %v", again, err)
	}
	op.Disable("u1")
	if _, err := p.Refresh(context.Background(), again.RefreshToken); !errors.Is(err, oidc.ErrSignIn) {
		t.Errorf("refresh of a disabled user: err = %v, want ErrSignIn", err)
	}
}

func TestOverage(t *testing.T) {
	op, p := setup(t)
	op.SetUser(oidctest.User{Subject: "u1", Email: "a@gemeente.example", Overage: true})
	code, flow := signIn(t, p, "u1")
	id, err := p.Finish(context.Background(), code, flow)
	if err != nil {
		t.Fatal(err)
	}
	if !id.GroupsOverage {
		t.Error("GroupsOverage not set for Entra's _claim_names marker")
	}
}

func TestMappingRoles(t *testing.T) {
	m := oidc.Mapping{
		Groups: map[role.Role][]string{role.Admin: {"g-admin"}, role.Auditor: {"g-audit"}, role.Helpdesk: {"3f1c-id"}},
		MFA:    []role.Role{role.Admin, role.Auditor},
		ACR:    []string{"phr"},
		AMR:    oidc.DefaultAMR,
	}
	for _, tc := range []struct {
		name              string
		id                oidc.Identity
		granted, withheld string
	}{
		{"mfa by amr", oidc.Identity{Groups: []string{"g-admin", "g-audit"}, AMR: []string{"pwd", "mfa"}}, "admin,auditor", ""},
		{"mfa by acr", oidc.Identity{Groups: []string{"g-admin"}, ACR: "phr"}, "admin", ""},
		{"no mfa", oidc.Identity{Groups: []string{"g-admin", "3f1c-id"}, AMR: []string{"pwd"}}, "helpdesk", "admin"},
		{"group id", oidc.Identity{Groups: []string{"3f1c-id"}}, "helpdesk", ""},
		{"no groups", oidc.Identity{AMR: []string{"mfa"}}, "", ""},
		{"overage", oidc.Identity{Groups: []string{"g-admin"}, GroupsOverage: true, AMR: []string{"mfa"}}, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g, w := m.Roles(&tc.id)
			if g.String() != tc.granted || w.String() != tc.withheld {
				t.Errorf("Roles = %q, %q; want %q, %q", g, w, tc.granted, tc.withheld)
			}
		})
	}
}

func TestDeviceGrant(t *testing.T) {
	op, p := setup(t)
	op.SetUser(oidctest.User{Subject: "u1", Email: "a.jansen@gemeente.example", AMR: []string{"mfa"}})
	ctx := context.Background()
	da, err := p.DeviceStart(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if da.VerificationURI == "" || da.UserCode == "" {
		t.Fatalf("device response = %+v", da)
	}
	done := make(chan error, 1)
	var id *oidc.Identity
	go func() {
		var err error
		id, err = p.DeviceFinish(ctx, da)
		done <- err
	}()
	if err := op.ApproveDevice(da.UserCode, "u1"); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if id.Email != "a.jansen@gemeente.example" || id.RefreshToken == "" {
		t.Errorf("identity = %+v", id)
	}
}

func TestDeviceGrantRefusesDisabledUser(t *testing.T) {
	op, p := setup(t)
	op.SetUser(oidctest.User{Subject: "u1", Email: "a@gemeente.example", Disabled: true})
	da, err := p.DeviceStart(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := op.ApproveDevice(da.UserCode, "u1"); err == nil {
		t.Error("a disabled user approved a device sign-in")
	}
}

func TestLogoutAtProvider(t *testing.T) {
	op, p := setup(t)
	op.SetUser(oidctest.User{Subject: "u1", Email: "a@gemeente.example"})
	code, flow := signIn(t, p, "u1")
	id, err := p.Finish(context.Background(), code, flow)
	if err != nil {
		t.Fatal(err)
	}
	back := p.LogoutURL(id.IDToken, "")
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Get(back)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if op.EndedSessions() != 1 {
		t.Errorf("the provider ended %d sessions, want 1 (answer %s)", op.EndedSessions(), resp.Status)
	}
	if _, err := p.Refresh(context.Background(), id.RefreshToken); !errors.Is(err, oidc.ErrSignIn) {
		t.Errorf("refresh after logout: err = %v, want ErrSignIn", err)
	}
}
