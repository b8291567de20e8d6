package e2e

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/kluis-nl/kluis/internal/kluistest"
)

// TestBrowserFileRequestSMS: a staff member asks a citizen for files with
// a mobile number (a number without country code is refused first, naming
// the field). The citizen gets the personal link by mail and by SMS
// through the test's SMS gateway; the SMS holds that link and nothing else
// of the request (no message, no code, no other token), and the link from
// the SMS works: the citizen sends a file with it. The request's page
// shows the staff member that the SMS was sent, with the number masked.
func TestBrowserFileRequestSMS(t *testing.T) {
	needBrowser(t)
	g := kluistest.NewSMSGateway(t)
	mp := startMailpit(t)
	s := startBrowserServer(t, append([]string{"--smtp", mp.smtpURL(), "--mail-from", "Kluis Test <kluis@example.nl>"}, g.Args()...)...)
	staff := uniq("staf-") + "@example.nl"
	citizen := uniq("burger-") + "@example.org"
	const pass = "Zeven-Lange-Inbox-Woorden"

	b := newBrowser(t, s.base)
	b.viewport(1280, 900)
	b.setLang("nl", "/")
	signInStaffNL(t, b, mp, staff)

	b.open("/inbox")
	b.do(chromedp.SendKeys(chromedp.CSS("#passphrase"), pass), chromedp.SendKeys(chromedp.CSS("#passphrase_again"), pass))
	b.submit("main form[action='/inbox'] button[type=submit]")
	b.open("/requests")
	b.page("requests-sms-nl", "Mobiel nummer (niet verplicht)")
	b.do(chromedp.SendKeys(chromedp.CSS("#address"), citizen), chromedp.SendKeys(chromedp.CSS("#mobile"), "06 9988 7766"),
		chromedp.SendKeys(chromedp.CSS("#message"), "Stuur uw loonstrook van maart."))
	b.submit("main form[action='/requests'] button[type=submit]")
	b.page("requests-mobile-error-nl", "Schrijf het mobiele nummer met + en de landcode")
	if len(g.Sent()) != 0 {
		t.Fatal("an SMS went out for a refused request")
	}
	b.waitFor(`document.querySelector("#mobile") !== null`)
	b.eval(`document.querySelector("#mobile").value = "+31 6 9988 7766", "ok"`)
	b.submit("main form[action='/requests'] button[type=submit]")
	b.page("request-sms-nl", citizen, "Sms met de link", "+31 6 •••• ••66")
	reqPath := b.eval(`location.pathname`)

	// The SMS: to the number, with the link of the mail and nothing else.
	deadline := time.Now().Add(15 * time.Second)
	for len(g.Sent()) == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	sent := g.Sent()
	if len(sent) != 1 || sent[0].To != "+31699887766" {
		t.Fatalf("SMS messages: %+v", sent)
	}
	text := sent[0].Text
	msgs := mp.waitMail(t, 15*time.Second, "the request mail", func(ms []*mpMessage) bool { return len(mailsTo(ms, citizen)) > 0 })
	mailLink := regexp.MustCompile(`https?://\S+/q/[a-z0-9]+`).FindString(mailsTo(msgs, citizen)[0].Text)
	links := regexp.MustCompile(`https?://\S+`).FindAllString(text, -1)
	if len(links) != 1 || links[0] != mailLink {
		t.Fatalf("SMS %q: want exactly the mail's link %s", text, mailLink)
	}
	rest := strings.Replace(text, links[0], "", 1)
	if strings.Contains(text, "loonstrook") || regexp.MustCompile(`\d{6}|[A-Za-z0-9_-]{16,}`).MatchString(rest) {
		t.Errorf("SMS %q carries more than the link", text)
	}
	if !strings.Contains(text, "Sam Staf") {
		t.Errorf("SMS %q does not say who asks", text)
	}

	// The staff member sees that it was sent.
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		b.open(reqPath)
		if b.eval(`document.querySelector("#request-sms")?.dataset.state ?? ""`) == "sent" || time.Now().After(deadline) {
			break
		}
	}
	b.page("request-sms-sent-nl", "+31 6 •••• ••66: verstuurd op")

	// The citizen opens the link from the SMS and sends a file with it.
	c := newBrowser(t, s.base)
	c.viewport(320, 800)
	c.open(links[0][strings.Index(links[0], "/q/"):])
	c.page("filereq-sms-nl", "Stuur uw loonstrook van maart.")
	file := filepath.Join(t.TempDir(), "loonstrook.pdf")
	if err := os.WriteFile(file, []byte("loonstrook maart"), 0o600); err != nil {
		t.Fatal(err)
	}
	c.do(chromedp.SetUploadFiles(chromedp.ID("files"), []string{file}))
	c.submit("main form button[type=submit]")
	c.waitLong(`location.pathname.startsWith("/q/") && !!document.querySelector("main h1") && !document.querySelector("form[data-request-form]")`, time.Minute)
	b.open(reqPath)
	b.page("request-sms-done-nl", "bestanden ontvangen", "+31 6 •••• ••66: verstuurd op")
	if strings.Contains(b.text("main"), "9988") {
		t.Error("the page shows the whole number")
	}
}
