package e2e

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestBrowserReceiveCode (issue 13, items 6 and 8): the short code from the
// mail, typed at /receive; a wrong code shows the form again with the
// error and what was typed; the generated password is words, typed in
// capitals with spaces, with a Show toggle on the field. Every page passes
// axe and reflows at 320 px.
func TestBrowserReceiveCode(t *testing.T) {
	mp := startMailpit(t)
	s := startBrowserServer(t, "--smtp", mp.smtpURL(), "--mail-from", "Kluis Test <kluis@example.nl>")
	c := s.create(t, password{Mode: "generate"}, "Bericht via de code")
	if !regexp.MustCompile(`^[a-z]+(-[a-z]+){6}$`).MatchString(c.Password) {
		t.Fatalf("generated password %q is not seven words", c.Password)
	}
	access, _ := s.finish(t, c)
	codeRE := regexp.MustCompile(`\b[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}\b`)
	var code string
	mp.waitMail(t, 30*time.Second, "the notification", func(ms []*mpMessage) bool {
		for _, m := range mailsTo(ms, "to@example.nl") {
			if code = codeRE.FindString(m.Text); code != "" {
				return true
			}
		}
		return false
	})

	b := newBrowser(t, s.base)
	b.viewport(320, 640)
	for i, lang := range []string{"nl", "en"} {
		b.setLang(lang, "/receive")
		b.check("receive-" + lang)
		b.noSideways("receive-" + lang)
		wrong := "K7QM-3XPT-9HRW-D2FA"
		b.do(chromedp.SetValue(chromedp.ID("code"), wrong))
		b.submit("main form button[type=submit]")
		if p := b.path(); p != "/receive" {
			t.Fatalf("%s: a wrong code went to %s, want the form again", lang, p)
		}
		if got := b.eval(`document.getElementById("code").value`); got != wrong {
			t.Errorf("%s: the field holds %q after a wrong code, want %q", lang, got, wrong)
		}
		if got := b.eval(`document.querySelector("[data-error-summary] a")?.getAttribute("href") ?? ""`); got != "#code" {
			t.Errorf("%s: error summary links to %q, want #code", lang, got)
		}
		if got := b.eval(`document.getElementById("code").getAttribute("aria-invalid") ?? ""`); got != "true" {
			t.Errorf("%s: the field is not marked invalid", lang)
		}
		b.check("receive-wrong-" + lang)
		b.noSideways("receive-wrong-" + lang)

		// The real code as someone types it from a printed mail.
		typed := strings.ToLower(strings.ReplaceAll(code, "-", " "))
		b.do(chromedp.SetValue(chromedp.ID("code"), typed))
		b.submit("main form button[type=submit]")
		if i > 0 {
			// Unlocked in the first round: the code leads to the contents.
			if p := b.path(); p != "/r/"+strings.ReplaceAll(code, "-", "")+"/open" {
				t.Errorf("%s: after the code at %s", lang, p)
			}
			continue
		}
		if p := b.path(); p != "/r/"+strings.ReplaceAll(code, "-", "") {
			t.Fatalf("%s: after the code at %s", lang, p)
		}
		// Show toggle: a button with a name and a pressed state.
		if got := b.eval(`(() => { const x = document.querySelector("[data-show-password] button"); return x && !x.closest("[hidden]") ? x.getAttribute("aria-pressed") + "|" + x.textContent : "missing"; })()`); got != "false|"+map[string]string{"nl": "Wachtwoord tonen", "en": "Show password"}[lang] {
			t.Errorf("%s: Show button %q", lang, got)
		}
		words := strings.ToUpper(strings.ReplaceAll(c.Password, "-", " "))
		b.do(chromedp.SendKeys(chromedp.ID("password"), words))
		b.do(chromedp.Click(chromedp.CSS("[data-show-password] button")))
		if got := b.eval(`document.getElementById("password").type + "|" + document.querySelector("[data-show-password] button").getAttribute("aria-pressed")`); got != "text|true" {
			t.Errorf("%s: after Show: %s, want text|true", lang, got)
		}
		b.check("password-shown-" + lang)
		b.noSideways("password-shown-" + lang)
		b.do(chromedp.Click(chromedp.CSS("[data-show-password] button")))
		if got := b.eval(`document.getElementById("password").type + "|" + document.querySelector("[data-show-password] button").getAttribute("aria-pressed")`); got != "password|false" {
			t.Errorf("%s: after hiding again: %s, want password|false", lang, got)
		}
		b.submit("main form button[type=submit]")
		if p := b.path(); !strings.HasSuffix(p, "/open") {
			t.Fatalf("%s: the words in capitals with spaces did not open the transfer: at %s", lang, p)
		}
		if !strings.Contains(b.text("main"), "Bericht via de code") {
			t.Errorf("%s: contents lack the message", lang)
		}
		b.check("contents-" + lang)
	}
	// The link in the mail still works as well.
	b.open("/r/" + access)
	if p := b.path(); !strings.HasSuffix(p, "/open") {
		t.Errorf("the link, in the unlocked browser: at %s", p)
	}
}
