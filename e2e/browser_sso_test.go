package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/kluis-nl/kluis/internal/oidc/oidctest"
)

// TestBrowserStaffSSO (issue 14): staff sign in with the organisation's
// identity provider, a real OpenID provider (oidctest, on zitadel's op
// package: discovery, PKCE, signed ID tokens, RP-initiated logout), in
// Chromium at 1280 and at 320 px. A staff address is refused the mailed
// code in the form; the sign-in button goes to the provider and back,
// signed in; logout ends the session at the provider too; a replayed
// callback signs nobody in. Every page passes axe and, at 320 px, reflows
// without sideways scrolling.
func TestBrowserStaffSSO(t *testing.T) {
	op := oidctest.New(t)
	op.SetUser(oidctest.User{Subject: "beheer", Email: "bea.beheer@gemeente.example", Name: "Bea Beheer", Groups: []string{"kluis-admins"}, AMR: []string{"pwd", "mfa"}})
	cfg := t.TempDir()
	secretFile := filepath.Join(cfg, "oidc.secret")
	if err := os.WriteFile(secretFile, []byte("staff-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	policyFile := filepath.Join(cfg, "policy.json")
	if err := os.WriteFile(policyFile, []byte(`{"organisation_domains": ["gemeente.example"]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	s := startBrowserServer(t, "--policy", policyFile, "--org-name", "Gemeente Voorbeeld",
		"--oidc-issuer", op.Issuer, "--oidc-client-id", "kluis-staff", "--oidc-client-secret-file", secretFile, "--oidc-role-admin", "kluis-admins")
	op.AddClient("kluis-staff", "staff-secret", s.base+"/sso/callback")

	for _, width := range []int64{1280, 320} {
		t.Run(fmt.Sprint(width), func(t *testing.T) {
			b := newBrowser(t, s.base, fmt.Sprintf("-%d", width))
			b.viewport(width, 800)
			page := func(name string) {
				t.Helper()
				name = fmt.Sprintf("%s-%d", name, width)
				b.check(name)
				b.noSideways(name)
			}
			b.setLang("en", "/send")
			if got := b.text("#sso-start"); got != "Sign in with Gemeente Voorbeeld" {
				t.Fatalf("sign-in button %q", got)
			}
			page("sso-details")

			// A staff address typed into the form: no mailed code.
			b.do(chromedp.SendKeys(chromedp.CSS("#name"), "Bea Beheer"), chromedp.SendKeys(chromedp.CSS("#email"), "bea.beheer@gemeente.example"))
			b.submit("main form[action='/send/verify'] button[type=submit]")
			if !strings.Contains(b.text("main"), "Staff of the organisation sign in with their work account, not with a code") {
				t.Fatalf("a staff address in the form: %q", b.text("main"))
			}
			page("sso-refused-code")

			// The button: to the provider's sign-in page and back, signed in.
			b.submit("#sso-start")
			if !strings.HasPrefix(b.eval(`location.href`), op.Issuer+"/login") {
				t.Fatalf("the button went to %s, not the provider", b.eval(`location.href`))
			}
			b.do(chromedp.SetValue(chromedp.ID("username"), "beheer"))
			b.submit("#submit")
			if !strings.HasPrefix(b.path(), "/send") || !strings.Contains(b.text("h1"), "Send files and a message") {
				t.Fatalf("after signing in: %s %q", b.path(), b.text("h1"))
			}
			page("sso-compose")
			b.open("/transfers")
			if p := b.path(); p != "/transfers" {
				t.Fatalf("My transfers while signed in: %s", p)
			}
			page("sso-mine")

			// Logout: the server session ends, and the provider's.
			before := op.EndedSessions()
			b.submit("form[action='/logout'] button[type=submit]")
			if op.EndedSessions() != before+1 {
				t.Errorf("the provider ended %d sessions at logout, want %d", op.EndedSessions(), before+1)
			}
			b.open("/transfers")
			if p := b.path(); !strings.HasPrefix(p, "/send") {
				t.Errorf("My transfers after logout: %s, want the sign-in", p)
			}
		})
	}

	// A callback replayed in another browser (state used, not its
	// binding cookie) signs nobody in and says why, in a page that passes.
	b := newBrowser(t, s.base, "-replay")
	b.viewport(320, 800)
	b.setLang("en", "/send")
	b.open("/sso/callback?state=replayed-state&code=replayed-code")
	if !strings.Contains(b.text("main"), "This sign-in is not valid any more") {
		t.Fatalf("a replayed callback: %q", b.text("main"))
	}
	b.check("sso-failed")
	b.noSideways("sso-failed")
}
