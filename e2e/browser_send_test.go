package e2e

import (
	"archive/zip"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
)

// The send flow in a real Chromium, against a real `kluis serve` with SMTP
// to Mailpit: details, the code from the mail, the compose page, an upload
// that a TCP reset cuts half-way and tus-js-client resumes, the summary
// with the generated password; then every recipient (To, Cc, Bcc) opens
// their own link from their own mail with that password and downloads.
//
// The sender's browser reaches the server only through the harness proxy,
// which counts the bytes it forwards and cuts the upload. Chromium treats
// http://127.0.0.1 as a secure context, so the __Host- cookies work over
// plain http as in the receive tests.

// sendWords are texts the send pages must show, per language.
var sendWords = map[string]map[string]string{
	"nl": {"details": "Wie verstuurt er?", "code": "verificatiecode", "compose": "Bestanden en bericht versturen", "summary": "De verzending is verstuurd", "problem": "Er is een probleem"},
	"en": {"details": "Who is sending?", "code": "verification code", "compose": "Send files and a message", "summary": "The transfer has been sent", "problem": "There is a problem"},
}

// codeLine is the verification code in the mail's text: a line of 8 digits.
var codeLine = regexp.MustCompile(`(?m)^\s*(\d{8})\s*$`)

// waitLong is waitFor with a longer timeout (uploads).
func (b *tab) waitLong(cond string, d time.Duration) {
	b.t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if ok, err := chromedp.Run(b.ctx, chromedp.Evaluate[bool](cond)); err == nil && ok {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	b.t.Fatalf("timed out after %v waiting for %s (at %s); errors shown: %q", d, cond, b.path(),
		b.eval(`(document.getElementById("compose-errors-list")||{}).textContent || ""`))
}

// media emulates a CSS media type ("print"; "" for the screen).
func (b *tab) media(m string) {
	b.t.Helper()
	b.do(chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		_, err := chromedp.Call(ctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{Media: m})
		return err
	}))
}

// shot saves a viewport screenshot with the element sel scrolled into
// view. Full-page screenshots leave out-of-process frames (the sandboxed
// mail preview) empty; the viewport capture shows them.
func (b *tab) shot(name, sel string) {
	b.t.Helper()
	b.eval(`document.querySelector(` + strconvQuote(sel) + `).scrollIntoView(); ""`)
	b.do(chromedp.Sleep(300 * time.Millisecond))
	png, err := chromedp.Run(b.ctx, chromedp.CaptureScreenshot())
	if err != nil {
		b.t.Fatalf("screenshot: %v", err)
	}
	b.step++
	if err := os.WriteFile(filepath.Join(b.out, fmt.Sprintf("%02d-%s.png", b.step, name)), png, 0o644); err != nil {
		b.t.Fatal(err)
	}
}

// startTransfer goes from the compose form to the review (Next) and
// starts the transfer there: the only button that sends. privacy, if
// given, is the choice for visible external addresses (keep, bcc,
// separate).
func (b *tab) startTransfer(privacy ...string) {
	b.t.Helper()
	b.do(chromedp.Click(chromedp.CSS("#next")))
	b.waitLong(`!document.getElementById("review").hidden || !document.getElementById("compose-errors").hidden`, 30*time.Second)
	if b.eval(`String(document.getElementById("review").hidden)`) == "true" {
		b.t.Fatalf("no review; errors: %q", b.eval(`document.getElementById("compose-errors-list").textContent`))
	}
	for _, p := range privacy {
		b.do(chromedp.Click(chromedp.CSS("#privacy-" + p)))
		b.waitLong(`document.getElementById("review-content").dataset.privacy === "`+p+`" && !document.getElementById("review").hidden`, 30*time.Second)
	}
	b.do(chromedp.Click(chromedp.CSS("#start")))
}

// writeSource writes src into dir/name and returns the path.
func writeSource(t *testing.T, dir, name string, src *source) string {
	t.Helper()
	p := filepath.Join(dir, name)
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(f, src.reader(0)); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return p
}

// verifyInBrowser fills the details form, reads the code from Mailpit and
// confirms it; the browser ends on the compose page.
func verifyInBrowser(t *testing.T, b *tab, mp *mailpit, lang, email string) {
	t.Helper()
	w := sendWords[lang]
	b.setLang(lang, "/send")
	if !strings.Contains(b.text("h1"), w["details"]) {
		t.Fatalf("details heading %q", b.text("h1"))
	}
	b.check("details-" + lang)
	// An empty form: the summary names and links the required fields.
	b.submit("main form[action='/send/verify'] button[type=submit]")
	if got := b.eval(`[...document.querySelectorAll("[data-error-summary] a")].map(a => a.getAttribute("href")).join(",")`); got != "#name,#email" {
		t.Errorf("details error summary links %q, want #name,#email", got)
	}
	if got := b.eval(`document.activeElement.hasAttribute("data-error-summary") ? "summary" : document.activeElement.tagName`); got != "summary" {
		t.Errorf("focus after the errors is on %s, want the error summary", got)
	}
	b.check("details-errors-" + lang)
	b.do(chromedp.SendKeys(chromedp.CSS("#name"), "Anne de Vries"),
		chromedp.SendKeys(chromedp.CSS("#email"), email),
		chromedp.SendKeys(chromedp.CSS("#phone"), "058 123 4567"),
		chromedp.Click(chromedp.CSS("#remember")))
	b.submit("main form[action='/send/verify'] button[type=submit]")
	if !strings.Contains(strings.ToLower(b.text("h1")), w["code"]) {
		t.Fatalf("code page heading %q", b.text("h1"))
	}
	b.check("code-" + lang)
	msgs := mp.waitMail(t, 15*time.Second, "the verification code to "+email, func(ms []*mpMessage) bool { return len(mailsTo(ms, email)) > 0 })
	m := codeLine.FindStringSubmatch(mailsTo(msgs, email)[0].Text)
	if m == nil {
		t.Fatalf("no code in the mail:\n%s", mailsTo(msgs, email)[0].Text)
	}
	b.do(chromedp.SendKeys(chromedp.CSS("#code"), m[1]))
	b.submit("main form[action='/send/confirm'] button[type=submit]")
	if p := b.path(); p != "/send" {
		t.Fatalf("after the code: at %s", p)
	}
	b.waitFor(`!document.getElementById("compose").hidden`)
	if !strings.Contains(b.text("h1"), w["compose"]) {
		t.Fatalf("compose heading %q", b.text("h1"))
	}
}

func TestBrowserSend(t *testing.T) {
	mp := startMailpit(t)
	s := startBrowserServer(t, "--smtp", mp.smtpURL(), "--mail-from", "Kluis Test <kluis@example.nl>")
	px := newProxy(t, s.addr)
	b := newBrowser(t, px.base())

	senderAddr := uniq("afzender-") + "@example.nl"
	to, cc, bcc := uniq("aan-")+"@example.nl", uniq("cc-")+"@example.nl", uniq("bcc-")+"@example.org"
	message := "Beste ontvanger,\n\nHierbij het rapport. " + uniq("bericht-")
	dir := t.TempDir()
	big := newSource(31, 24<<20, "RAPPORT")
	small := newSource(32, 1<<20, "BIJLAGE")
	bigPath := writeSource(t, dir, "rapport.bin", big)
	smallPath := writeSource(t, dir, "bijlage.bin", small)

	verifyInBrowser(t, b, mp, "nl", senderAddr)
	b.check("compose-nl")

	// Remembered on this device: a new visit to the details form (after
	// logging out is the other helper's page) would be prefilled.
	if got := b.eval(`localStorage.getItem("kluis.sender.details") || ""`); !strings.Contains(got, senderAddr) {
		t.Errorf("details not remembered: %q", got)
	}

	// A bad Cc address: named in the summary, which links to the field.
	b.do(chromedp.SendKeys(chromedp.CSS("#to"), to),
		chromedp.SendKeys(chromedp.CSS("#cc"), "geen-adres"),
		chromedp.SendKeys(chromedp.CSS("#bcc"), bcc),
		chromedp.SendKeys(chromedp.CSS("#message"), message))
	b.do(chromedp.SetUploadFiles(chromedp.CSS("#files"), []string{bigPath, smallPath}))
	b.waitFor(`document.querySelectorAll("#file-list li").length === 2`)
	if got := b.text("#files-total"); !strings.HasPrefix(got, "2 bestanden, samen 26,2 MB") || strings.Contains(got, "(en)") {
		t.Errorf("total %q, want 2 bestanden, samen 26,2 MB (24 MiB + 1 MiB)", got)
	}
	// The mail text: bold by the toolbar button (aria-pressed follows).
	b.do(chromedp.SendKeys(chromedp.CSS("#reference"), "Zaak 2026-0042"))
	b.do(chromedp.SendKeys(chromedp.CSS("#subject"), "Uw rapport"),
		chromedp.Click(chromedp.CSS("#body")),
		chromedp.Click(chromedp.CSS(`.kluis-tool[data-cmd="bold"]`)))
	b.do(chromedp.SendKeys(chromedp.CSS("#body"), "Belangrijk"))
	if got := b.eval(`document.querySelector('.kluis-tool[data-cmd="bold"]').getAttribute("aria-pressed")`); got != "true" {
		t.Errorf("bold button aria-pressed=%s while typing bold", got)
	}
	// A manual password from the list of common ones: the meter calls it
	// weak, the server refuses it.
	b.do(chromedp.Click(chromedp.CSS("#pw-manual")))
	b.waitFor(`!document.getElementById("manual-panel").hidden`)
	b.do(chromedp.SendKeys(chromedp.CSS("#password"), "Welkom2025"))
	b.waitFor(`document.getElementById("strength-meter").value > 0`)
	if v := b.eval(`String(document.getElementById("strength-meter").value)`); v != "1" && v != "2" {
		t.Errorf("strength of Welkom2025: %s, want weak (1 or 2)", v)
	}
	b.do(chromedp.Click(chromedp.CSS("#next")))
	b.waitFor(`!document.getElementById("compose-errors").hidden`)
	got := b.eval(`[...document.querySelectorAll("#compose-errors-list a")].map(a => a.getAttribute("href") + " " + a.textContent).join("|")`)
	if !strings.Contains(got, "#cc ") || !strings.Contains(got, "geen-adres") {
		t.Errorf("compose errors %q, want one for #cc naming geen-adres", got)
	}
	if !strings.Contains(got, "#password ") {
		t.Errorf("compose errors %q, want one for #password", got)
	}
	if got := b.eval(`document.activeElement.id`); got != "compose-errors" {
		t.Errorf("focus on %q after the errors, want the summary", got)
	}
	if got := b.eval(`document.getElementById("cc").getAttribute("aria-invalid") || ""`); got != "true" {
		t.Error("the Cc field is not marked invalid")
	}
	b.do(chromedp.Sleep(600 * time.Millisecond)) // the preview settles
	b.check("compose-errors-nl")
	b.shot("mail-preview-nl", "#preview-heading")
	b.do(chromedp.SetValue(chromedp.CSS("#cc"), cc))
	b.do(chromedp.Click(chromedp.CSS("#pw-generate")))
	b.waitFor(`document.getElementById("manual-panel").hidden`)

	// Start: the connection that carries the 12th MiB of what follows is
	// cut with a reset, in the middle of the 24 MiB file. As in
	// TestInterruptedUpload, the proxy first stalls for a second (a
	// connection that hangs, then drops), so the server has read what
	// reached it: an abrupt reset also loses what sits unread in the
	// server's socket receive queue, which varies with load (measured
	// 1.08× idle, 1.12× with other tests running).
	//
	// The page uploads in requests of at most ~2 MiB for a file this size
	// (chunkSize in send-page.js): Chromium itself resends the request a
	// reset cut (before tus-js-client asks the server for its offset, so
	// the server answers 409), and with one unbounded request that resend
	// alone cost ~4 MB here (1.15–1.20× in total).
	payload := big.size + small.size
	base := px.forwarded.Load()
	px.cutTotalStall.Store(int64(time.Second))
	px.cutTotal.Store(base + 12<<20)
	cutsBefore := px.cuts.Load()
	b.startTransfer("keep")
	b.waitLong(`!document.getElementById("progress").hidden || !document.getElementById("summary").hidden || !document.getElementById("compose-errors").hidden`, 30*time.Second)
	if got := b.eval(`document.getElementById("gen-password").textContent`); got == "" {
		t.Error("the generated password is not shown while uploading")
	}
	b.waitLong(`!document.getElementById("summary").hidden || !document.getElementById("compose-errors").hidden`, 3*time.Minute)
	if !strings.Contains(b.text("#summary-heading"), sendWords["nl"]["summary"]) {
		t.Fatalf("no summary; errors: %q", b.eval(`document.getElementById("compose-errors-list").textContent`))
	}
	sent := px.forwarded.Load() - base
	cuts := px.cuts.Load() - cutsBefore
	ratio := float64(sent) / float64(payload)
	t.Logf("upload: %d bytes of files, %d bytes forwarded client→server from submit to summary (ratio %.4f), %d cut(s)", payload, sent, ratio, cuts)
	fmt.Fprintf(b.results, "upload ratio %.4f (%d of %d bytes), cuts %d\n", ratio, sent, payload, cuts)
	if cuts < 1 {
		t.Error("the upload was never cut")
	}
	if os.Getenv("KLUIS_DEBUG_SEND") != "" {
		for _, l := range strings.Split(string(s.log()), "\n") {
			if strings.Contains(l, "\"request") && !strings.Contains(l, "static") {
				t.Log(l)
			}
		}
	}
	// What is counted besides the file bytes: the create request (a few
	// kB), tus's HEAD/POST/PATCH headers and the finish request.
	if ratio > 1.1 {
		t.Errorf("the server received %d bytes for %d bytes of files (%.3f×), more than 1.1×", sent, payload, ratio)
	}
	password := b.text("#summary-password")
	if len(password) < 10 {
		t.Fatalf("summary password %q", password)
	}
	summary := b.text("#summary-list")
	// The print view (this summary) carries the send date and the
	// sender's reference.
	for _, want := range []string{to, cc, bcc, "rapport.bin", "bijlage.bin", "Verstuurd op", "Zaak 2026-0042"} {
		if !strings.Contains(summary, want) {
			t.Errorf("summary lacks %q:\n%s", want, summary)
		}
	}
	if got := b.eval(`sessionStorage.getItem("kluis.send.state") || ""`); got != "" {
		t.Errorf("state left in sessionStorage after finishing: %q", got)
	}
	if strings.Contains(b.eval(`JSON.stringify(sessionStorage) + JSON.stringify(localStorage)`), password) {
		t.Error("the password is in web storage")
	}
	b.check("summary-nl")
	// The printed summary: no buttons, forms or navigation.
	b.media("print")
	if got := b.eval(`getComputedStyle(document.getElementById("print")).display + "," + getComputedStyle(document.querySelector(".kluis-lang")).display`); got != "none,none" {
		t.Errorf("print view shows buttons or navigation: %s", got)
	}
	b.check("summary-print-nl")
	b.media("")

	// The compose page in English, for axe.
	b.setLang("en", "/send")
	b.waitFor(`!document.getElementById("compose").hidden`)
	b.do(chromedp.Sleep(600 * time.Millisecond))
	b.check("compose-en")

	// Each recipient: their own mail, their own link, the password.
	msgs := mp.waitMail(t, 20*time.Second, "the three notifications", func(ms []*mpMessage) bool {
		return len(mailsTo(ms, to)) > 0 && len(mailsTo(ms, cc)) > 0 && len(mailsTo(ms, bcc)) > 0
	})
	r := newBrowser(t, s.base, "_recipients")
	// The details page in English for a browser without a session.
	verifyDetailsOnly(t, r, "en")
	seen := map[string]bool{}
	for i, addr := range []string{to, cc, bcc} {
		lang := map[int]string{0: "en", 1: "nl", 2: "en"}[i]
		ms := mailsTo(msgs, addr)
		if len(ms) != 1 {
			t.Fatalf("%d mails to %s, want 1", len(ms), addr)
		}
		if strings.Contains(ms[0].Text, password) || strings.Contains(ms[0].HTML, password) {
			t.Errorf("the password is in the mail to %s", addr)
		}
		if !strings.Contains(ms[0].HTML, "<b>Belangrijk</b>") {
			t.Errorf("the mail to %s lacks the bold text", addr)
		}
		links := mailLinks(ms[0])
		if len(links) != 1 || seen[links[0]] {
			t.Fatalf("links in the mail to %s: %v", addr, links)
		}
		seen[links[0]] = true
		access, _ := splitLink(t, links[0])
		r.setLang(lang, "/r/"+access)
		r.check("password-" + lang)
		r.do(chromedp.SendKeys(chromedp.CSS("#password"), password))
		r.submit("main form button[type=submit]")
		if p := r.path(); p != "/r/"+access+"/open" {
			t.Fatalf("%s after the password: at %s", addr, p)
		}
		if got := r.eval(`document.querySelector(".kluis-message").textContent`); got != message {
			t.Errorf("%s sees the message %q, want %q", addr, got, message)
		}
		r.check("contents-" + lang)
		if got := r.download(`a[href*="/files/"][data-name="bijlage.bin"]`); !bytes.Equal(got, small.bytesAt(0, small.size)) {
			t.Errorf("%s: bijlage.bin: %d bytes differ from the upload", addr, len(got))
		}
		zipped := r.download(`a[href$="/zip"]`)
		zr, err := zip.NewReader(bytes.NewReader(zipped), int64(len(zipped)))
		if err != nil {
			t.Fatalf("%s: ZIP: %v", addr, err)
		}
		want := map[string]*source{"rapport.bin": big, "bijlage.bin": small}
		for _, f := range zr.File {
			src, ok := want[f.Name]
			if !ok {
				continue
			}
			rc, err := f.Open()
			if err != nil {
				t.Fatal(err)
			}
			body, err := io.ReadAll(rc)
			rc.Close()
			if err != nil || !bytes.Equal(body, src.bytesAt(0, src.size)) {
				t.Errorf("%s: ZIP %s differs from the upload (%v)", addr, f.Name, err)
			}
			delete(want, f.Name)
		}
		if len(want) > 0 {
			t.Errorf("%s: ZIP lacks %v", addr, want)
		}
	}
}

// verifyDetailsOnly opens the details page in lang without a session and
// checks it (and its error state) with axe.
func verifyDetailsOnly(t *testing.T, b *tab, lang string) {
	t.Helper()
	b.setLang(lang, "/send")
	if !strings.Contains(b.text("h1"), sendWords[lang]["details"]) {
		t.Fatalf("details heading (%s) %q", lang, b.text("h1"))
	}
	b.check("details-" + lang)
	b.do(chromedp.SendKeys(chromedp.CSS("#email"), "geen adres"))
	b.submit("main form[action='/send/verify'] button[type=submit]")
	if !strings.Contains(b.text("[data-error-summary]"), sendWords[lang]["problem"]) {
		t.Errorf("no error summary (%s)", lang)
	}
	b.check("details-errors-" + lang)
}

// TestBrowserSendReloadResume: the page is reloaded while the upload hangs
// half-way; after choosing the same file again the upload continues where
// the server stopped, and the transfer arrives.
func TestBrowserSendReloadResume(t *testing.T) {
	mp := startMailpit(t)
	s := startBrowserServer(t, "--smtp", mp.smtpURL(), "--mail-from", "Kluis Test <kluis@example.nl>")
	px := newProxy(t, s.addr)
	b := newBrowser(t, px.base())
	senderAddr := uniq("afzender-") + "@example.nl"
	to := uniq("aan-") + "@example.nl"
	big := newSource(41, 24<<20, "HERLADEN")
	bigPath := writeSource(t, t.TempDir(), "dossier.bin", big)

	verifyInBrowser(t, b, mp, "en", senderAddr)
	b.do(chromedp.SendKeys(chromedp.CSS("#to"), to))
	b.do(chromedp.SetUploadFiles(chromedp.CSS("#files"), []string{bigPath}))
	b.waitFor(`document.querySelectorAll("#file-list li").length === 1`)

	// The connection carrying the 12th MiB hangs for 4 s, then is reset;
	// the page is reloaded while it hangs.
	base := px.forwarded.Load()
	px.cutTotalStall.Store(int64(4 * time.Second))
	px.cutTotal.Store(base + 12<<20)
	b.startTransfer()
	b.waitLong(`!document.getElementById("progress").hidden`, 30*time.Second)
	password := b.text("#gen-password")
	if password == "" {
		t.Fatal("no generated password shown before the upload")
	}
	b.waitLong(`document.getElementById("total-progress").value >= 40`, 60*time.Second)
	b.check("uploading-en")
	if st := b.eval(`sessionStorage.getItem("kluis.send.state") || ""`); st == "" || strings.Contains(st, password) {
		t.Fatalf("state in sessionStorage: %q", st)
	}
	b.open("/send")
	b.waitFor(`!document.getElementById("resume-notice").hidden`)
	if !b.eval2bool(`document.getElementById("compose").hidden`) {
		t.Error("the compose form is shown next to the resume notice")
	}
	b.check("resume-notice-en")
	time.Sleep(4 * time.Second) // the hanging connection is reset by now
	if px.cuts.Load() < 1 {
		t.Error("the upload was never cut")
	}
	b.do(chromedp.SetUploadFiles(chromedp.CSS("#resume-files"), []string{bigPath}))
	b.waitLong(`!document.getElementById("summary").hidden || !document.getElementById("compose-errors").hidden`, 2*time.Minute)
	if !strings.Contains(b.text("#summary-heading"), sendWords["en"]["summary"]) {
		t.Fatalf("no summary after resuming; errors: %q", b.eval(`document.getElementById("compose-errors-list").textContent`))
	}
	sent := px.forwarded.Load() - base
	ratio := float64(sent) / float64(big.size)
	t.Logf("reload resume: %d bytes forwarded client→server for a %d byte file, page loads included (ratio %.4f), %d cut(s)", sent, big.size, ratio, px.cuts.Load())
	fmt.Fprintf(b.results, "reload-resume ratio %.4f (%d of %d bytes)\n", ratio, sent, big.size)
	if ratio > 1.1 {
		t.Errorf("the server received %.3f× the file's bytes across the reload, more than 1.1×", ratio)
	}
	b.check("summary-after-reload-en")

	// New transfer, then cancelled while it uploads: the draft is revoked,
	// the state is gone and the form is back.
	b.do(chromedp.Click(chromedp.CSS("#new-transfer")))
	b.waitFor(`location.pathname === "/send" && document.getElementById("compose") && !document.getElementById("compose").hidden`)
	other := uniq("nooit-") + "@example.nl"
	b.do(chromedp.SendKeys(chromedp.CSS("#to"), other))
	b.do(chromedp.SetUploadFiles(chromedp.CSS("#files"), []string{bigPath}))
	b.waitFor(`document.querySelectorAll("#file-list li").length === 1`)
	px.cutTotalStall.Store(int64(3 * time.Second))
	px.cutTotal.Store(px.forwarded.Load() + 6<<20)
	b.startTransfer()
	b.waitLong(`document.getElementById("total-progress").value >= 15`, 60*time.Second)
	b.eval(`window.confirm = () => true; ""`)
	b.do(chromedp.Click(chromedp.CSS("#cancel")))
	b.waitLong(`!document.getElementById("compose").hidden && !document.getElementById("compose-status").hidden`, 30*time.Second)
	if got := b.eval(`document.activeElement.id`); got != "compose-status" {
		t.Errorf("focus after cancelling on %q, want the status message", got)
	}
	if st := b.eval(`sessionStorage.getItem("kluis.send.state") || ""`); st != "" {
		t.Errorf("state kept after cancelling: %q", st)
	}
	b.check("cancelled-en")
	time.Sleep(2 * time.Second)
	if !strings.Contains(string(s.log()), `"route":"POST /api/v1/transfers/{id}/revoke","status":200`) {
		t.Error("the cancelled draft was not revoked")
	}
	if n := len(mailsTo(mp.all(t), other)); n != 0 {
		t.Errorf("%d mails to the recipient of the cancelled transfer", n)
	}

	// It arrived: the recipient opens it with the password shown before.
	msgs := mp.waitMail(t, 20*time.Second, "the notification", func(ms []*mpMessage) bool { return len(mailsTo(ms, to)) > 0 })
	links := mailLinks(mailsTo(msgs, to)[0])
	if len(links) != 1 {
		t.Fatalf("links %v", links)
	}
	access, _ := splitLink(t, links[0])
	r := newBrowser(t, s.base, "_recipient")
	r.open("/r/" + access)
	r.do(chromedp.SendKeys(chromedp.CSS("#password"), password))
	r.submit("main form button[type=submit]")
	if got := r.download(`a[href*="/files/"][data-name="dossier.bin"]`); !bytes.Equal(got, big.bytesAt(0, big.size)) {
		t.Errorf("dossier.bin: %d bytes differ from the upload", len(got))
	}
}

func (b *tab) eval2bool(js string) bool {
	b.t.Helper()
	v, err := chromedp.Run(b.ctx, chromedp.Evaluate[bool](js))
	if err != nil {
		b.t.Fatalf("evaluate %q: %v", js, err)
	}
	return v
}

// TestBrowserSendNoPassword: "no password" warns plainly, the page hands
// the link secret to finish, and the recipient's link opens without one.
func TestBrowserSendNoPassword(t *testing.T) {
	mp := startMailpit(t)
	s := startBrowserServer(t, "--smtp", mp.smtpURL(), "--mail-from", "Kluis Test <kluis@example.nl>")
	b := newBrowser(t, s.base)
	to := uniq("open-") + "@example.nl"
	src := newSource(51, 300_000, "OPEN")
	path := writeSource(t, t.TempDir(), "overzicht.csv", src)

	verifyInBrowser(t, b, mp, "nl", uniq("afzender-")+"@example.nl")
	b.do(chromedp.SendKeys(chromedp.CSS("#to"), to))
	b.do(chromedp.SetUploadFiles(chromedp.CSS("#files"), []string{path}))
	b.waitFor(`document.querySelectorAll("#file-list li").length === 1`)
	b.do(chromedp.Click(chromedp.CSS("#pw-none")))
	b.waitFor(`!document.getElementById("none-panel").hidden`)
	if got := b.text("#none-panel"); !strings.Contains(got, "minimaal") {
		t.Errorf("no-password warning %q", got)
	}
	b.check("no-password-nl")
	b.startTransfer()
	b.waitLong(`!document.getElementById("summary").hidden || !document.getElementById("compose-errors").hidden`, time.Minute)
	if !strings.Contains(b.text("#summary-heading"), sendWords["nl"]["summary"]) {
		t.Fatalf("no summary; errors: %q", b.eval(`document.getElementById("compose-errors-list").textContent`))
	}
	if !b.eval2bool(`document.getElementById("summary-password-box").hidden`) {
		t.Error("a password box in the summary of a no-password transfer")
	}
	if got := b.eval(`JSON.stringify(sessionStorage)`); got != "{}" {
		t.Errorf("sessionStorage after a no-password transfer: %s", got)
	}
	b.check("summary-no-password-nl")

	msgs := mp.waitMail(t, 20*time.Second, "the notification", func(ms []*mpMessage) bool { return len(mailsTo(ms, to)) > 0 })
	links := mailLinks(mailsTo(msgs, to)[0])
	if len(links) != 1 || !strings.Contains(links[0], "#") {
		t.Fatalf("links %v: want one with the secret after #", links)
	}
	access, fragment := splitLink(t, links[0])
	r := newBrowser(t, s.base, "_recipient")
	r.setLang("en", "/")
	r.eval(`document.documentElement.dataset.kluisMark = "old"`)
	r.eval(`location.href = ` + strconvQuote(s.base+"/r/"+access+"#"+fragment) + `; ""`)
	r.waitFor(`location.pathname.endsWith("/open") && document.readyState === "complete"`)
	r.check("contents-en")
	if got := r.download(`a[href*="/files/"]`); !bytes.Equal(got, src.bytesAt(0, src.size)) {
		t.Errorf("download: %d bytes differ", len(got))
	}
}
