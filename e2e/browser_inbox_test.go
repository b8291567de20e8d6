package e2e

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestBrowserInbox: a signed-in sender sets an inbox passphrase, locks and
// unlocks the inbox, on a 320 px screen, in Dutch and in English; every
// state (and each error) is checked with axe-core and for reflow.
func TestBrowserInbox(t *testing.T) {
	needBrowser(t)
	mp := startMailpit(t)
	s := startBrowserServer(t, "--smtp", mp.smtpURL(), "--mail-from", "Kluis Test <kluis@example.nl>")
	codeRE := regexp.MustCompile(`(?m)^\s*(\d{8})\s*$`)
	email := uniq("inbox-") + "@example.nl"
	const pass = "Zeven-Lange-Inbox-Woorden"

	b := newBrowser(t, s.base)
	b.viewport(320, 800)
	b.setLang("nl", "/")
	b.open("/inbox")
	if p := b.path(); !strings.HasPrefix(p, "/send") {
		t.Fatalf("the inbox without a session went to %s, want the verification page", p)
	}
	if st := b.await(`fetch("/api/v1/verify", {method: "POST", headers: {"Content-Type": "application/json"},
		body: JSON.stringify({email: "` + email + `", name: "Ina Inbox", lang: "nl"})}).then(r => String(r.status))`); st != "202" {
		t.Fatalf("verify: %s", st)
	}
	msgs := mp.waitMail(t, 15*time.Second, "the verification code", func(ms []*mpMessage) bool {
		got := mailsTo(ms, email)
		return len(got) > 0 && codeRE.MatchString(got[len(got)-1].Text)
	})
	got := mailsTo(msgs, email)
	code := codeRE.FindStringSubmatch(got[len(got)-1].Text)[1]
	if st := b.await(`fetch("/api/v1/verify/confirm", {method: "POST", headers: {"Content-Type": "application/json"},
		body: JSON.stringify({code: "` + code + `"})}).then(r => String(r.status))`); st != "200" {
		t.Fatalf("confirm: %s", st)
	}

	page := func(name string, want ...string) {
		t.Helper()
		if strings.Contains(b.eval(`document.documentElement.outerHTML`), pass) {
			t.Errorf("%s: the page holds the passphrase", name)
		}
		b.page(name, want...)
	}
	typePass := func(sel, v string) {
		t.Helper()
		b.do(chromedp.SendKeys(chromedp.CSS(sel), v))
	}

	// My transfers links to the inbox.
	b.open("/transfers")
	b.submit(`main a[href="/inbox"]`)
	page("inbox-create-nl", "Kies uw inboxwachtwoord")
	typePass("#passphrase", pass)
	typePass("#passphrase_again", pass+"?")
	b.submit("main form[action='/inbox'] button[type=submit]")
	page("inbox-mismatch-nl", "Er is een probleem", "niet hetzelfde")
	typePass("#passphrase", pass)
	typePass("#passphrase_again", pass)
	b.submit("main form[action='/inbox'] button[type=submit]")
	page("inbox-created-nl", "Uw inbox is ingesteld en open.", "age1")
	b.submit("main form[action='/inbox/lock'] button[type=submit]")
	page("inbox-locked-nl", "Uw inbox is op slot.", "Uw inbox openen")
	typePass("#passphrase", "niet-het-goede-wachtwoord")
	b.submit("main form[action='/inbox/unlock'] button[type=submit]")
	page("inbox-wrong-nl", "Het inboxwachtwoord klopt niet.")
	typePass("#passphrase", pass)
	b.submit("main form[action='/inbox/unlock'] button[type=submit]")
	page("inbox-unlocked-nl", "Uw inbox is open.")

	b.setLang("en", "/inbox")
	page("inbox-open-en", "Your inbox is open in this browser.", "Your public inbox key")
	b.submit("main form[action='/inbox/lock'] button[type=submit]")
	page("inbox-locked-en", "Your inbox is locked.", "Open your inbox")
	typePass("#passphrase", "not-the-right-password")
	b.submit("main form[action='/inbox/unlock'] button[type=submit]")
	page("inbox-wrong-en", "There is a problem", "The inbox password is not correct.")
	typePass("#passphrase", pass)
	b.submit("main form[action='/inbox/unlock'] button[type=submit]")
	page("inbox-unlocked-en", "Your inbox is open.")

	// Logging out locks it: after a new sign-in the inbox asks again.
	b.submit("main form[action='/logout'] button[type=submit]")
	b.open("/inbox")
	if p := b.path(); !strings.HasPrefix(p, "/send") {
		t.Fatalf("after logout /inbox went to %s, want the verification page", p)
	}
}
