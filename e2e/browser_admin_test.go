package e2e

import (
	"net/http"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// TestBrowserAdminConsole (issue 19): an administrator signs in at a real
// OpenID provider (oidctest) with a second factor, finds a transfer by its
// sender, revokes it with a reason, finds the revocation in the audit
// log, and reads the statistics. Every console page passes axe and
// reflows at 320 px, in Dutch and in English; no page shows the
// transfer's message or file name.
func TestBrowserAdminConsole(t *testing.T) {
	s, issuer := startAdminServer(t)

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
		if !strings.HasPrefix(b.eval(`location.href`), issuer+"/login") {
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
				b.withReason(page, "revoke-error-"+lang, "Melding 2026-118 ("+lang+")", "done=revoked")
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
