package e2e

import (
	"bytes"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/kluis-nl/kluis/internal/kluistest"
)

// TestBrowserSMSFlow (issue 15): the whole SMS flow in Chromium. The
// sender chooses a code by SMS for the recipient in the send form (the
// review shows the number masked), uploads and starts; the recipient
// gives the password, lands on the code page, types the code the SMS
// gateway (a test endpoint that records requests; the production code
// knows nothing of it) received, and the files open and download. Every
// page passes axe and reflows at 390 and 320 px; the whole number is on
// no page the recipient sees and in no log.
func TestBrowserSMSFlow(t *testing.T) {
	const pw = "Lente-Peer-73!x"
	g := kluistest.NewSMSGateway(t)
	mp := startMailpit(t)
	s := startBrowserServer(t, append([]string{"--smtp", mp.smtpURL(), "--mail-from", "Kluis Test <kluis@example.nl>"}, g.Args()...)...)
	to := uniq("sms-") + "@example.nl"
	src := newSource(61, 200_000, "SMSFLOW")
	path := writeSource(t, t.TempDir(), "dossier.pdf", src)

	b := newBrowser(t, s.base)
	verifyInBrowser(t, b, mp, "en", uniq("afzender-")+"@example.nl")
	for _, w := range []int64{390, 320} {
		b.viewport(w, 720)
		b.check("compose-sms")
		b.noSideways("compose-sms")
	}
	b.do(chromedp.SendKeys(chromedp.CSS("#to"), to),
		chromedp.SendKeys(chromedp.CSS("#message"), "Het geheime sms-bericht"),
		chromedp.SendKeys(chromedp.CSS("#recipient_phone"), to+" +31 6 5544 3321"))
	b.do(chromedp.SetUploadFiles(chromedp.CSS("#files"), []string{path}))
	b.waitFor(`document.querySelectorAll("#file-list li").length === 1`)
	b.do(chromedp.Click(chromedp.CSS("#pw-manual")))
	b.waitFor(`!document.getElementById("manual-panel").hidden`)
	b.do(chromedp.SendKeys(chromedp.CSS("#password"), pw))
	b.do(chromedp.Click(chromedp.CSS("#next")))
	b.waitLong(`!document.getElementById("review").hidden || !document.getElementById("compose-errors").hidden`, 30*time.Second)
	got := b.text("#review-recipients")
	if !strings.Contains(got, "Gets a code by SMS at +31 6 •••• ••21 after the password") || strings.Contains(got, "5544") {
		t.Fatalf("review recipients: %q (errors: %q)", got, b.eval(`document.getElementById("compose-errors-list").textContent`))
	}
	for _, w := range []int64{390, 320} {
		b.viewport(w, 720)
		b.check("review-sms")
		b.noSideways("review-sms")
	}
	b.do(chromedp.Click(chromedp.CSS("#start")))
	b.waitLong(`!document.getElementById("summary").hidden || !document.getElementById("compose-errors").hidden`, time.Minute)
	if b.eval(`String(document.getElementById("summary").hidden)`) == "true" {
		t.Fatalf("no summary; errors: %q", b.eval(`document.getElementById("compose-errors-list").textContent`))
	}
	if n := len(g.Sent()); n != 0 {
		t.Fatalf("%d SMS messages before the recipient gave the password", n)
	}

	msgs := mp.waitMail(t, 20*time.Second, "the notification", func(ms []*mpMessage) bool { return len(mailsTo(ms, to)) > 0 })
	links := mailLinks(mailsTo(msgs, to)[0])
	if len(links) != 1 {
		t.Fatalf("links %v", links)
	}
	access, _ := splitLink(t, links[0])
	r := newBrowser(t, s.base, "_recipient")
	r.viewport(390, 720)
	r.setLang("en", "/r/"+access)
	r.open("/r/" + access)
	r.do(chromedp.SetValue(chromedp.ID("password"), pw))
	r.submit("main form button[type=submit]")
	if p := r.path(); p != "/r/"+access+"/code" {
		t.Fatalf("after the right password: %s, want the code page", p)
	}
	if main := r.text("main"); !strings.Contains(main, "6 •••• ••21") || strings.Contains(main, "5544") {
		t.Errorf("code page: %q", main)
	}
	for _, w := range []int64{390, 320} {
		r.viewport(w, 720)
		r.check("code-sms")
		r.noSideways("code-sms")
	}
	sent := g.Sent()
	if len(sent) != 1 || sent[0].To != "+31655443321" {
		t.Fatalf("SMS messages: %+v", sent)
	}
	r.do(chromedp.SetValue(chromedp.ID("code"), g.LastCode(t)))
	r.submit("main form button[type=submit]")
	if p := r.path(); p != "/r/"+access+"/open" || !strings.Contains(r.text("main"), "Het geheime sms-bericht") {
		t.Fatalf("after the code: %s %q", p, r.text("main"))
	}
	for _, w := range []int64{390, 320} {
		r.viewport(w, 720)
		r.check("contents-sms")
		r.noSideways("contents-sms")
	}
	if got := r.download(`a[href*="/files/"]`); !bytes.Equal(got, src.bytesAt(0, src.size)) {
		t.Errorf("download: %d bytes differ", len(got))
	}
	if strings.Contains(string(s.log()), "5544") {
		t.Error("the server log holds the phone number")
	}
	// The audit export (NTA 7516 6.4.2) has the SMS sent and the open
	// with its method and result, the number only masked.
	s.stop(t)
	out, err := exec.Command(kluisBin, "admin", "audit", "export", "--data", s.data, "--format", "json", "--since", "1h").CombinedOutput()
	if err != nil {
		t.Fatalf("kluis admin audit export: %v\n%s", err, out)
	}
	for _, want := range []string{`"recipient.sms_code"`, "+31 6 •••• ••21", `method=password+sms step=password`, `"recipient.unlock"`, `method=password+sms"`} {
		if !strings.Contains(string(out), want) {
			t.Errorf("the audit export lacks %s:\n%s", want, out)
		}
	}
	if strings.Contains(string(out), "5544") {
		t.Error("the audit export holds the phone number")
	}
}
