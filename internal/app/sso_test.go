package app_test

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/kluis-nl/kluis"
	"github.com/kluis-nl/kluis/internal/app"
	"github.com/kluis-nl/kluis/internal/app/apptest"
	"github.com/kluis-nl/kluis/internal/config"
	"github.com/kluis-nl/kluis/internal/oidc/oidctest"
	"github.com/kluis-nl/kluis/internal/sender"
)

// ssoArgs are the --oidc-* flags of a server that uses op as its provider.
func ssoArgs(op *oidctest.Provider, extra ...string) []string {
	return append([]string{"--oidc-issuer", op.Issuer, "--oidc-client-id", "kluis", "--oidc-role-admin", "kluis-admins"}, extra...)
}

// TestSSORequiredFromPolicy: with --oidc-issuer, an address in the
// policy's organisation domains gets no mailed code; an outside sender
// still does; sso_domains narrows the list.
func TestSSORequiredFromPolicy(t *testing.T) {
	op := oidctest.New(t)
	for _, tc := range []struct {
		name, policy string
		refused      []string
		allowed      []string
	}{
		{"organisation domains", `{"organisation_domains": ["gemeente.example"]}`, []string{"a@gemeente.example", "b@wijk.gemeente.example"}, []string{"c@burger.example"}},
		{"sso_domains", `{"organisation_domains": ["gemeente.example", "ggd.example"], "sso_domains": ["ggd.example"]}`, []string{"a@ggd.example"}, []string{"b@gemeente.example"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := apptest.New(t, apptest.Options{Policy: tc.policy, Args: ssoArgs(op), Env: map[string]string{"KLUIS_OIDC_CLIENT_SECRET": "s"}})
			if a.SSO == nil {
				t.Fatal("no provider")
			}
			for _, addr := range tc.refused {
				_, err := a.Senders.Start(a.Ctx, "", addr, "Medewerker", "", "nl")
				if !errors.Is(err, sender.ErrSSORequired) || kluis.ErrorCode(err) != kluis.EPOLICY || !strings.Contains(kluis.ErrorMessage(err), "organisation account") {
					t.Errorf("%s: mailed code not refused: %v", addr, err)
				}
			}
			for _, addr := range tc.allowed {
				if _, err := a.Senders.Start(a.Ctx, "", addr, "Burger", "", "nl"); err != nil {
					t.Errorf("%s: %v", addr, err)
				}
			}
		})
	}
	// Without --oidc-issuer the same policy refuses nobody the mailed code.
	a := apptest.New(t, apptest.Options{Policy: `{"organisation_domains": ["gemeente.example"]}`})
	if _, err := a.Senders.Start(a.Ctx, "", "a@gemeente.example", "Medewerker", "", "nl"); err != nil {
		t.Fatal(err)
	}
}

// TestSSOProviderUnreachable: a server whose provider cannot be discovered
// does not start, and says which flag to check.
func TestSSOProviderUnreachable(t *testing.T) {
	cfg, err := config.ParseServe([]string{"--data", t.TempDir(), "--addr", "127.0.0.1:0", "--oidc-issuer", "http://127.0.0.1:1", "--oidc-client-id", "kluis"},
		func(k string) string { return map[string]string{"KLUIS_OIDC_CLIENT_SECRET": "s"}[k] }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	a, err := app.New(context.Background(), cfg, app.Options{Stdout: io.Discard})
	if err == nil {
		a.Close()
		t.Fatal("started without its provider")
	}
	if !strings.Contains(err.Error(), "--oidc-issuer") || !strings.Contains(err.Error(), "discovery") {
		t.Fatalf("error %q does not name the flag", err)
	}
}
