package e2e

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/chromedp"
)

// pressEnter sends one Enter key press to the focused element as a person
// makes it: keydown (with the text "\r", which also makes the keypress)
// and keyup, once. chromedp's KeyEvent helper would send it twice.
func (b *tab) pressEnter() {
	b.t.Helper()
	b.do(chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		down := input.DispatchKeyEventParams{Type: input.DispatchKeyEventTypeKeyDown, Key: "Enter", Code: "Enter",
			WindowsVirtualKeyCode: 13, NativeVirtualKeyCode: 13, Text: "\r", UnmodifiedText: "\r"}
		if _, err := chromedp.Call(ctx, input.DispatchKeyEvent, down); err != nil {
			return err
		}
		up := input.DispatchKeyEventParams{Type: input.DispatchKeyEventTypeKeyUp, Key: "Enter", Code: "Enter", WindowsVirtualKeyCode: 13, NativeVirtualKeyCode: 13}
		_, err := chromedp.Call(ctx, input.DispatchKeyEvent, up)
		return err
	}))
}

// transfers is the number of the signed-in sender's transfers (drafts
// included), asked from the API with the page's session.
func (b *tab) transfers() int {
	b.t.Helper()
	js := `fetch("/api/v1/transfers", {credentials: "same-origin"}).then(r => r.ok ? r.json().then(j => String((j.transfers || []).length)) : "status " + r.status)`
	got, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](js, chromedp.EvalAwaitPromise))
	if err != nil {
		b.t.Fatalf("list transfers: %v", err)
	}
	n := 0
	for _, c := range got {
		if c < '0' || c > '9' {
			b.t.Fatalf("list transfers: %s", got)
		}
		n = n*10 + int(c-'0')
	}
	return n
}

// TestBrowserSendReview: Enter in the subject (a one-line field) never
// sends: it goes to the review, which shows each recipient with what they
// get; two external addresses in To/Cc bring the warning, and "one
// transfer per recipient" makes a transfer for each with one click, each
// with its own password, all listed in the summary. Also at 320 and 390 px.
func TestBrowserSendReview(t *testing.T) {
	mp := startMailpit(t)
	s := startBrowserServer(t, "--smtp", mp.smtpURL(), "--mail-from", "Kluis Test <kluis@example.nl>")
	b := newBrowser(t, s.base)
	senderAddr := uniq("afzender-") + "@example.nl"
	a1, a2 := uniq("burger-")+"@example.org", uniq("buur-")+"@example.com"
	file := writeSource(t, t.TempDir(), "besluit.bin", newSource(51, 300<<10, "BESLUIT"))

	verifyInBrowser(t, b, mp, "nl", senderAddr)
	if got := b.text("#to-hint"); !strings.Contains(got, "Elke ontvanger ziet alle adressen bij Aan en Cc") {
		t.Errorf("the To hint does not say the addresses are shown: %q", got)
	}
	b.do(chromedp.SendKeys(chromedp.CSS("#to"), a1+"; "+a2),
		chromedp.SendKeys(chromedp.CSS("#message"), "Hierbij het besluit."),
		chromedp.SetUploadFiles(chromedp.CSS("#files"), []string{file}))
	b.waitFor(`document.querySelectorAll("#file-list li").length === 1`)
	b.do(chromedp.Click(chromedp.CSS("#subject")), chromedp.SendKeys(chromedp.CSS("#subject"), "Uw besluit"))
	b.pressEnter()
	b.waitFor(`!document.getElementById("review").hidden`)
	if n := b.transfers(); n != 0 {
		t.Fatalf("Enter in the subject created %d transfer(s)", n)
	}
	review := b.text("#review-content")
	for _, want := range []string{a1, a2, "besluit.bin", "Uw besluit", "Hierbij het besluit.", "Nederlands", "Ziet de andere adressen bij Aan en Cc", "Ontvangers zien elkaars adressen"} {
		if !strings.Contains(review, want) {
			t.Errorf("review lacks %q:\n%s", want, review)
		}
	}
	if got := b.eval(`document.activeElement.id`); got != "review-heading" {
		t.Errorf("focus on %q after Next, want the review heading", got)
	}
	b.check("review-nl")
	b.shot("review-nl", "#review-heading")
	// Start without a choice for the visible addresses: asked, nothing made.
	b.do(chromedp.Click(chromedp.CSS("#start")))
	b.waitFor(`!document.getElementById("privacy-error").hidden`)
	if n := b.transfers(); n != 0 {
		t.Fatalf("start without a privacy choice created %d transfer(s)", n)
	}
	for _, w := range []int64{320, 390} {
		b.viewport(w, 800)
		b.noSideways("review at " + itoa(w))
	}
	b.viewport(1280, 900)

	// One transfer per recipient: two transfers, two passwords, one click.
	b.do(chromedp.Click(chromedp.CSS("#privacy-separate")))
	b.waitLong(`document.getElementById("review-content").dataset.privacy === "separate"`, 30*time.Second)
	if got := b.text("#review-content"); strings.Contains(got, "Ziet de andere adressen") || !strings.Contains(got, "eigen verzending") {
		t.Errorf("review for one transfer per recipient:\n%s", got)
	}
	b.do(chromedp.Click(chromedp.CSS("#start")))
	b.waitLong(`!document.getElementById("summary").hidden || !document.getElementById("compose-errors").hidden`, 2*time.Minute)
	if b.eval(`String(document.getElementById("summary").hidden)`) == "true" {
		t.Fatalf("no summary: %q", b.text("#compose-errors-list"))
	}
	if n := b.transfers(); n != 2 {
		t.Errorf("%d transfers after one per recipient, want 2", n)
	}
	pw := b.eval(`[...document.querySelectorAll("#summary-password .kluis-password-line")].map(x => x.textContent).join("\n")`)
	lines := strings.Split(pw, "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], a1) || !strings.Contains(lines[1], a2) {
		t.Fatalf("summary passwords %q", pw)
	}
	p1, p2 := lines[0][strings.LastIndex(lines[0], ": ")+2:], lines[1][strings.LastIndex(lines[1], ": ")+2:]
	if len(p1) < 10 || p1 == p2 {
		t.Errorf("the transfers do not have their own passwords: %q %q", p1, p2)
	}
	if got := b.text("#summary-list"); !strings.Contains(got, a1) || !strings.Contains(got, a2) {
		t.Errorf("summary lacks a recipient:\n%s", got)
	}
	b.check("summary-separate-nl")
	for _, w := range []int64{320, 390} {
		b.viewport(w, 800)
		b.noSideways("summary at " + itoa(w))
	}
	b.viewport(390, 800)
	b.shot("summary-phone-nl", "#summary-heading")
	// Each recipient's mail shows no other address.
	msgs := mp.waitMail(t, 20*time.Second, "the two notifications", func(ms []*mpMessage) bool {
		return len(mailsTo(ms, a1)) > 0 && len(mailsTo(ms, a2)) > 0
	})
	if m := mailsTo(msgs, a1)[0]; strings.Contains(m.Text+m.HTML, a2) {
		t.Errorf("the mail to %s names %s", a1, a2)
	}
	if m := mailsTo(msgs, a2)[0]; strings.Contains(m.Text+m.HTML, a1) {
		t.Errorf("the mail to %s names %s", a2, a1)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// TestBrowserSenderPagesPhone: every sender page reflows at 320 and 390
// px (WCAG 1.4.10): start, sign-in, code, compose (also with its errors),
// review, My transfers, help, privacy and accessibility.
func TestBrowserSenderPagesPhone(t *testing.T) {
	mp := startMailpit(t)
	s := startBrowserServer(t, "--smtp", mp.smtpURL(), "--mail-from", "Kluis Test <kluis@example.nl>")
	b := newBrowser(t, s.base)
	both := func(name string) {
		t.Helper()
		for _, w := range []int64{320, 390} {
			b.viewport(w, 800)
			b.noSideways(name + " at " + itoa(w))
		}
	}
	b.setLang("nl", "/")
	for _, p := range []string{"/", "/send", "/help/send", "/help", "/privacy", "/accessibility"} {
		b.open(p)
		both(p)
	}
	email := uniq("een-lange-naam-van-een-afzender-") + "@gemeente-met-een-lange-naam.example.nl"
	b.open("/send")
	b.do(chromedp.SendKeys(chromedp.CSS("#name"), "Anne de Vries"), chromedp.SendKeys(chromedp.CSS("#email"), email))
	b.submit("main form[action='/send/verify'] button[type=submit]")
	both("code page")
	msgs := mp.waitMail(t, 15*time.Second, "the code", func(ms []*mpMessage) bool { return len(mailsTo(ms, email)) > 0 })
	m := codeLine.FindStringSubmatch(mailsTo(msgs, email)[0].Text)
	if m == nil {
		t.Fatal("no code in the mail")
	}
	b.do(chromedp.SendKeys(chromedp.CSS("#code"), m[1]))
	b.submit("main form[action='/send/confirm'] button[type=submit]")
	b.waitFor(`!document.getElementById("compose").hidden`)
	both("compose")
	b.do(chromedp.Click(chromedp.CSS("#next")))
	b.waitFor(`!document.getElementById("compose-errors").hidden`)
	both("compose with errors")
	b.do(chromedp.SendKeys(chromedp.CSS("#to"), uniq("ontvanger-met-een-lang-adres-")+"@example.org"),
		chromedp.SendKeys(chromedp.CSS("#message"), "Bericht"))
	b.do(chromedp.Click(chromedp.CSS("#next")))
	b.waitFor(`!document.getElementById("review").hidden`)
	both("review")
	b.check("review-phone-nl")
	for _, p := range []string{"/transfers", "/help/send", "/privacy", "/accessibility"} {
		b.open(p)
		both(p + " (signed in)")
	}
}
