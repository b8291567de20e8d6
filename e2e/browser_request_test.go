package e2e

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestBrowserFileRequest: a staff member (1280 px) sets an inbox and asks a
// citizen for files; the citizen (320 px, Ukrainian page from the
// request's language) sends a file (over tus, by the page script) and a
// message from the link in the mail. The citizen's browser reaches the
// server through the harness proxy, which cuts the upload's connection
// with a reset half-way; the page's tus client resumes where the server
// stopped. The staff member locks the inbox, unlocks it again with the
// passphrase, opens what was sent and downloads the same bytes. Every page
// is checked with axe-core and for reflow.
func TestBrowserFileRequest(t *testing.T) {
	needBrowser(t)
	mp := startMailpit(t)
	s := startBrowserServer(t, "--smtp", mp.smtpURL(), "--mail-from", "Kluis Test <kluis@example.nl>")
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
	b.submit(`main a[href="/requests"]`)
	b.page("requests-nl", "Verzoeken om bestanden", "Nieuw verzoek")
	b.submit("main form[action='/requests'] button[type=submit]")
	b.page("requests-errors-nl", "Vul een e-mailadres in.", "Schrijf wat u vraagt.")
	b.do(chromedp.SendKeys(chromedp.CSS("#address"), citizen), chromedp.SendKeys(chromedp.CSS("#message"), "Stuur uw loonstrook van maart."),
		chromedp.SetValue(chromedp.CSS("#lang"), "uk"))
	b.submit("main form[action='/requests'] button[type=submit]")
	b.page("request-open-nl", citizen, "wacht op bestanden")
	reqPath := b.eval(`location.pathname`)

	msgs := mp.waitMail(t, 15*time.Second, "the request mail", func(ms []*mpMessage) bool { return len(mailsTo(ms, citizen)) > 0 })
	link := regexp.MustCompile(`https?://\S+/q/[a-z0-9]+`).FindString(mailsTo(msgs, citizen)[0].Text)
	if link == "" {
		t.Fatalf("no link in the request mail:\n%s", mailsTo(msgs, citizen)[0].Text)
	}

	// The citizen, on a phone, through the proxy.
	px := newProxy(t, s.addr)
	c := newBrowser(t, px.base())
	c.viewport(320, 800)
	c.open(link[strings.Index(link, "/q/"):])
	c.page("filereq-uk", "Stuur uw loonstrook van maart.", "Надіслати")
	// 8 MiB: the page sends it in requests of 2 MiB (chunkSize in
	// request-page.js), so the cut falls inside one of them.
	doc := bytes.Repeat([]byte("loonstrook maart "), 8<<20/17+1)
	file := filepath.Join(t.TempDir(), "loonstrook.pdf")
	if err := os.WriteFile(file, doc, 0o600); err != nil {
		t.Fatal(err)
	}
	c.do(chromedp.SendKeys(chromedp.CSS("#message"), "Hier is mijn loonstrook."),
		chromedp.SetUploadFiles(chromedp.ID("files"), []string{file}))
	// The page script took over the form: the file goes over tus.
	c.waitFor(`document.querySelector("form[data-request-form]")?.dataset.started === "1"`)
	// The connection that carries the 5th MiB from here is cut.
	cutUpload(t, px, c.results, "request upload", int64(len(doc)), 5<<20, func() {
		c.submit("main form button[type=submit]")
		c.waitLong(`location.pathname.startsWith("/q/") && !!document.querySelector("main h1") && !document.querySelector("form[data-request-form]")`, 2*time.Minute)
	})
	c.page("filereq-sent-uk", "Ваші файли надіслано")

	// The staff member locks the inbox, then opens what was sent with the
	// passphrase.
	mp.waitMail(t, 15*time.Second, "the requester's notice", func(ms []*mpMessage) bool { return len(mailsTo(ms, staff)) > 1 })
	// My transfers lists the request with the person's state.
	b.open("/transfers")
	b.page("transfers-requests-nl", "Verzoeken om bestanden", citizen, "bestanden ontvangen")
	b.open("/inbox")
	b.submit("main form[action='/inbox/lock'] button[type=submit]")
	b.open(reqPath)
	b.page("request-done-locked-nl", "bestanden ontvangen", "Uw inbox is op slot")
	b.submit(`main a[href="/inbox"]`)
	b.do(chromedp.SendKeys(chromedp.CSS("#passphrase"), pass+"x"))
	b.submit("main form[action='/inbox/unlock'] button[type=submit]")
	b.page("inbox-wrong-nl")
	// The field is set by script: the error page's node can be replaced
	// between a lookup and the typing ("could not set value on node").
	b.waitFor(`document.querySelector("#passphrase") !== null`)
	b.eval(`document.querySelector("#passphrase").value = ` + strconv.Quote(pass) + `, "ok"`)
	b.submit("main form[action='/inbox/unlock'] button[type=submit]")
	b.open(reqPath)
	b.page("request-done-nl", "bestanden ontvangen")
	b.submit("main form[action$='/open'] button[type=submit]")
	b.page("request-contents-nl", "Hier is mijn loonstrook.", "loonstrook.pdf")
	if got := b.download(`a[href*="/files/"]`); !bytes.Equal(got, doc) {
		t.Fatalf("download: %d bytes, want the %d sent", len(got), len(doc))
	}
}

// signInStaffNL signs staff in as "Sam Staf" (Dutch) in b's browser with
// the code mailed through mp, by the API's verify and confirm calls.
func signInStaffNL(t *testing.T, b *tab, mp *mailpit, staff string) {
	t.Helper()
	codeRE := regexp.MustCompile(`(?m)^\s*(\d{8})\s*$`)
	if st := b.await(`fetch("/api/v1/verify", {method: "POST", headers: {"Content-Type": "application/json"},
		body: JSON.stringify({email: "` + staff + `", name: "Sam Staf", lang: "nl"})}).then(r => String(r.status))`); st != "202" {
		t.Fatalf("verify: %s", st)
	}
	msgs := mp.waitMail(t, 15*time.Second, "the verification code", func(ms []*mpMessage) bool {
		got := mailsTo(ms, staff)
		return len(got) > 0 && codeRE.MatchString(got[len(got)-1].Text)
	})
	got := mailsTo(msgs, staff)
	code := codeRE.FindStringSubmatch(got[len(got)-1].Text)[1]
	if st := b.await(`fetch("/api/v1/verify/confirm", {method: "POST", headers: {"Content-Type": "application/json"},
		body: JSON.stringify({code: "` + code + `"})}).then(r => String(r.status))`); st != "200" {
		t.Fatalf("confirm: %s", st)
	}
}
