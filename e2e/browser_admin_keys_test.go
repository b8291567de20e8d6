package e2e

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/kluis-nl/kluis/internal/oidc/oidctest"
)

// TestBrowserAdminKeysAndBulk (issue 19): an administrator signed in at a
// real OpenID provider makes an API key in the console (first with a
// reason too short, which says what to fix), sees the secret once on the
// list the form redirects to (a reload shows nothing and makes nothing),
// uses it with the API, and expires it with a reason; then ticks two
// transfers in the search results, is shown what will happen (two
// transfers, their numbers), gives one reason and revokes them. The
// sender gets a mail per transfer through real SMTP (Mailpit) with the
// number and the reason. Every page passes axe and reflows at 320 px, in
// Dutch and English.
func TestBrowserAdminKeysAndBulk(t *testing.T) {
	op := oidctest.New(t)
	op.SetUser(oidctest.User{Subject: "beheer", Email: "beheer@gemeente.example", Name: "Bea Beheer", Groups: []string{"kluis-admins"}, AMR: []string{"pwd", "mfa"}})
	secretFile := filepath.Join(t.TempDir(), "oidc.secret")
	if err := os.WriteFile(secretFile, []byte("staff-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	mp := startMailpit(t)
	s := startBrowserServer(t, "--oidc-issuer", op.Issuer, "--oidc-client-id", "kluis", "--oidc-client-secret-file", secretFile,
		"--oidc-role-admin", "kluis-admins", "--smtp", mp.smtpURL(), "--mail-from", "Kluis Test <kluis@example.nl>")
	op.AddClient("kluis", "staff-secret", s.base+"/sso/callback")

	const message = "Het geheime bericht 6624"
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
		s.finish(t, &c)
		return c.ID
	}
	bulk := map[string][]string{"nl": {newTransfer(), newTransfer()}, "en": {newTransfer(), newTransfer()}}

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
		b.do(chromedp.SetValue(chromedp.ID("username"), "beheer"))
		b.submit("#submit")
		if p := b.path(); p != "/admin" {
			t.Fatalf("after the sign-in: %s %q", p, b.text("main"))
		}
		page := func(name string) {
			t.Helper()
			if strings.Contains(b.text("body"), message) {
				t.Errorf("%s%s shows the transfer's message", name, suffix)
			}
			b.check(name)
			if width == 320 {
				b.noSideways(name)
			}
		}
		for _, lang := range []string{"nl", "en"} {
			b.setLang(lang, "/admin/keys")
			page("keys-" + lang)

			// A new key: a short reason first.
			b.do(chromedp.SetValue(chromedp.ID("sender"), "script-"+lang+"@gemeente.example"),
				chromedp.SetValue(chromedp.ID("name"), "Zaaksysteem "+lang+suffix),
				chromedp.SetValue(chromedp.ID("days"), "30"),
				chromedp.SetValue(chromedp.ID("reason"), "kort"))
			b.submit("main form[action='/admin/keys'] button[type=submit]")
			if b.eval(`document.getElementById("reason").getAttribute("aria-invalid")`) != "true" {
				t.Errorf("a short reason: no error at %s", b.path())
			}
			page("keys-error-" + lang)
			b.do(chromedp.SetValue(chromedp.ID("reason"), "Wijziging 2026-77 ("+lang+")"))
			b.submit("main form[action='/admin/keys'] button[type=submit]")
			key := strings.TrimSpace(b.text("#key-secret"))
			if !strings.HasPrefix(key, "kluis_ak_") {
				t.Fatalf("no key shown: %q", b.text("main"))
			}
			// Post/Redirect/Get: the key shows on the list after the
			// redirect; a reload neither shows it again nor makes another.
			if p := b.path(); p != "/admin/keys#key-created" {
				t.Errorf("after making a key: at %s, want the list after a redirect", p)
			}
			page("keys-created-" + lang)
			rows := b.eval(`String(document.querySelectorAll("#key-table tbody tr").length)`)
			b.eval(`document.documentElement.dataset.kluisMark = "old"`)
			b.eval(`setTimeout(() => location.reload(), 0), ""`)
			b.waitNewPage()
			if b.eval(`document.getElementById("key-secret") ? "shown" : ""`) != "" || strings.Contains(b.text("body"), key) {
				t.Error("the reloaded page shows the key again")
			}
			if got := b.eval(`String(document.querySelectorAll("#key-table tbody tr").length)`); got != rows {
				t.Errorf("the reload changed the list: %s keys, were %s", got, rows)
			}
			var list struct{}
			if st, code := call(t, "GET", s.base+"/api/v1/transfers", key, nil, &list); st != http.StatusOK {
				t.Errorf("the new key with the API: %d %s", st, code)
			}
			id := b.eval(`document.querySelector("#key-table tbody tr").dataset.key`)
			b.open("/admin/keys")
			if strings.Contains(b.text("body"), key) {
				t.Error("the list shows the key's secret")
			}
			b.open("/admin/keys/" + id)
			page("key-" + lang)
			b.do(chromedp.SetValue(chromedp.ID("reason"), "Koppeling uitgezet ("+lang+")"))
			b.submit("main form button[value=expire]")
			if !strings.Contains(b.path(), "done=expired") || b.eval(`document.getElementById("key-`+id+`").dataset.state`) != "expired" {
				t.Fatalf("after expiring: %s %q", b.path(), b.text("main"))
			}
			page("key-expired-" + lang)
			if st, _ := call(t, "GET", s.base+"/api/v1/transfers", key, nil, &list); st != http.StatusUnauthorized {
				t.Errorf("the expired key with the API: %d", st)
			}

			// Bulk revocation of this language's two transfers.
			ids := bulk[lang]
			b.open("/admin/transfers?sender=sender@example.nl")
			page("transfers-" + lang)
			if width == 320 {
				continue
			}
			for _, id := range ids {
				b.do(chromedp.Click(chromedp.ID("sel-" + id)))
			}
			b.submit("#bulk button[type=submit]")
			listed := b.text("#bulk-list")
			if !strings.Contains(listed, ids[0]) || !strings.Contains(listed, ids[1]) || !strings.Contains(b.text("#bulk-count"), "2") {
				t.Fatalf("the confirmation does not list both: %q", b.text("main"))
			}
			page("bulk-confirm-" + lang)
			reason := "Melding 2026-300 (" + lang + ")"
			b.do(chromedp.SetValue(chromedp.ID("reason"), reason))
			b.submit("main form button[type=submit]")
			for _, id := range ids {
				if got := b.eval(`document.querySelector("#bulk-results [data-transfer='` + id + `']").dataset.outcome`); got != "revoked" {
					t.Errorf("%s: %s", id, got)
				}
			}
			page("bulk-done-" + lang)
			mp.waitMail(t, 30*time.Second, "the sender's mails for "+strings.Join(ids, ", "), func(msgs []*mpMessage) bool {
				n := 0
				for _, m := range msgs {
					for _, id := range ids {
						if m.to() == "sender@example.nl" && strings.Contains(m.Subject, id) && strings.Contains(m.Text, reason) && !strings.Contains(m.Text, message) {
							n++
						}
					}
				}
				return n == 2
			})
		}
	}
}
