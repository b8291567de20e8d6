package e2e

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/kluis-nl/kluis/internal/oidc/oidctest"
)

// TestBrowserAdminConsole (issue 19): an administrator signs in at a real
// OpenID provider (oidctest) with a second factor, finds a transfer by its
// sender, revokes it with a reason, finds the revocation in the audit
// log, and reads the statistics. Every console page passes axe and
// reflows at 320 px, in Dutch and in English; no page shows the
// transfer's message or file name.
func TestBrowserAdminConsole(t *testing.T) {
	op := oidctest.New(t)
	op.SetUser(oidctest.User{Subject: "beheer", Email: "beheer@gemeente.example", Name: "Bea Beheer", Groups: []string{"kluis-admins"}, AMR: []string{"pwd", "mfa"}})
	cfg := t.TempDir()
	secretFile := filepath.Join(cfg, "oidc.secret")
	if err := os.WriteFile(secretFile, []byte("staff-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := startBrowserServer(t, "--oidc-issuer", op.Issuer, "--oidc-client-id", "kluis", "--oidc-client-secret-file", secretFile,
		"--oidc-role-admin", "kluis-admins")
	op.AddClient("kluis", "staff-secret", s.base+"/sso/callback")

	const message, fileName = "Het geheime bericht 8812", "jaaropgave-8812.txt"
	newTransfer := func() string {
		t.Helper()
		req := map[string]any{
			"sender":   map[string]string{"email": "sender@example.nl", "name": "Sender"},
			"to":       []string{"to@example.nl"},
			"message":  message,
			"password": password{Mode: "generate"},
		}
		var c created
		if st, code := call(t, "POST", s.base+"/api/v1/transfers", s.senderKey(t), req, &c); st != http.StatusCreated {
			t.Fatalf("create transfer: %d %s", st, code)
		}
		if st, code := s.plainUpload(t, &c, fileName, newSource(7, 1_000, "JAAROPGAVE"), false); st != http.StatusCreated {
			t.Fatalf("upload: %d %s", st, code)
		}
		s.finish(t, &c)
		return c.ID
	}
	ids := map[string]string{"nl": newTransfer(), "en": newTransfer()}

	for _, width := range []int64{1280, 320} {
		suffix := "-1280"
		if width == 320 {
			suffix = "-320"
		}
		b := newBrowser(t, s.base, suffix)
		if width == 320 {
			b.viewport(320, 640)
		}
		b.open("/sso/start?next=/admin")
		if !strings.HasPrefix(b.eval(`location.href`), op.Issuer+"/login") {
			t.Fatalf("/sso/start went to %s", b.eval(`location.href`))
		}
		b.do(chromedp.SetValue(chromedp.ID("username"), "beheer"))
		b.submit("#submit")
		if p := b.path(); p != "/admin" {
			t.Fatalf("after the sign-in: %s %q", p, b.text("main"))
		}
		page := func(name string) {
			t.Helper()
			if strings.Contains(b.text("body"), message) || strings.Contains(b.text("body"), fileName) {
				t.Errorf("%s%s shows the transfer's content", name, suffix)
			}
			b.check(name)
			if width == 320 {
				b.noSideways(name)
			}
		}
		for _, lang := range []string{"nl", "en"} {
			id := ids[lang]
			b.setLang(lang, "/admin")
			page("admin-" + lang)

			b.open("/admin/transfers?sender=sender@example.nl")
			if !strings.Contains(b.text("#transfer-results"), id) {
				t.Fatalf("the search does not list %s: %q", id, b.text("main"))
			}
			page("transfers-" + lang)

			if width == 1280 {
				// Revoke: first without a reason (an error), then with one.
				b.open("/admin/transfers/" + id + "/revoke")
				page("revoke-" + lang)
				b.do(chromedp.SetValue(chromedp.ID("reason"), "kort"))
				b.submit("main form button[type=submit]")
				if b.eval(`document.getElementById("reason").getAttribute("aria-invalid")`) != "true" {
					t.Errorf("a short reason: no error at %s", b.path())
				}
				page("revoke-error-" + lang)
				b.do(chromedp.SetValue(chromedp.ID("reason"), "Melding 2026-118 ("+lang+")"))
				b.submit("main form button[type=submit]")
				if !strings.Contains(b.path(), "done=revoked") {
					t.Fatalf("after revoking: %s %q", b.path(), b.text("main"))
				}
				page("revoked-" + lang)
			} else {
				b.open("/admin/transfers/" + ids["nl"] + "/revoke")
				page("revoke-" + lang)
			}

			b.open("/admin/audit?action=transfer.revoke")
			if !strings.Contains(b.text("#audit-results"), "Melding 2026-118") {
				t.Errorf("the audit log does not show the revocation: %q", b.text("main"))
			}
			page("audit-" + lang)

			b.open("/admin/stats")
			if n := b.eval(`String(document.querySelectorAll(".kluis-chart__bar").length)`); n != "31" {
				t.Errorf("the chart has %s bars", n)
			}
			page("stats-" + lang)
		}
	}
}
