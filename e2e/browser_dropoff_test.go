package e2e

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestBrowserDropoff: an administrator adds a staff member to team
// "inkomen" (kluis admin team, before the member has an inbox); the
// member (1280 px) sets an inbox, which gives the team its key; a citizen
// on a phone (320 px, Ukrainian) verifies their address on /to/inkomen
// with the mailed code and sends a file (over tus, by the page script) and
// a message. The citizen's browser reaches the server through the harness
// proxy, which cuts the upload's connection half-way (cutUpload); the
// page's tus client resumes where the server stopped. The member is
// mailed, locks the inbox, unlocks it with the passphrase, opens what was
// sent and downloads the same bytes. Every page is checked with axe-core and for
// reflow.
func TestBrowserDropoff(t *testing.T) {
	needBrowser(t)
	mp := startMailpit(t)
	pol := filepath.Join(t.TempDir(), "policy.json")
	if err := os.WriteFile(pol, []byte(`{"dropoffs": [{"slug": "inkomen", "team": "inkomen",
	  "name": {"nl": "Team Inkomen", "en": "Income team", "uk": "Команда доходів"},
	  "description": {"nl": "Stuur ons uw loonstroken.", "uk": "Надішліть нам свої розрахункові листи."}}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	s := startBrowserServer(t, "--smtp", mp.smtpURL(), "--mail-from", "Kluis Test <kluis@example.nl>", "--policy", pol)
	codeRE := regexp.MustCompile(`(?m)^\s*(\d{8})\s*$`)
	staff := uniq("team-") + "@example.nl"
	citizen := uniq("burger-") + "@example.org"
	const pass = "Zeven-Lange-Team-Woorden"
	if out, err := exec.Command(kluisBin, "admin", "team", "add", "inkomen", staff, "--reason", "e2e", "--data", s.data).CombinedOutput(); err != nil {
		t.Fatalf("admin team add: %v\n%s", err, out)
	}
	lastCode := func(to string) string {
		t.Helper()
		msgs := mp.waitMail(t, 15*time.Second, "the verification code", func(ms []*mpMessage) bool {
			got := mailsTo(ms, to)
			return len(got) > 0 && codeRE.MatchString(got[len(got)-1].Text)
		})
		got := mailsTo(msgs, to)
		return codeRE.FindStringSubmatch(got[len(got)-1].Text)[1]
	}

	// The team member signs in and sets an inbox: the team gets its key.
	b := newBrowser(t, s.base)
	b.viewport(1280, 900)
	b.setLang("nl", "/")
	if st := b.await(`fetch("/api/v1/verify", {method: "POST", headers: {"Content-Type": "application/json"},
		body: JSON.stringify({email: "` + staff + `", name: "Tess Team", lang: "nl"})}).then(r => String(r.status))`); st != "202" {
		t.Fatalf("verify: %s", st)
	}
	if st := b.await(`fetch("/api/v1/verify/confirm", {method: "POST", headers: {"Content-Type": "application/json"},
		body: JSON.stringify({code: "` + lastCode(staff) + `"})}).then(r => String(r.status))`); st != "200" {
		t.Fatalf("confirm: %s", st)
	}
	b.open("/inbox")
	b.do(chromedp.SendKeys(chromedp.CSS("#passphrase"), pass), chromedp.SendKeys(chromedp.CSS("#passphrase_again"), pass))
	b.submit("main form[action='/inbox'] button[type=submit]")
	b.open("/dropoffs")
	b.page("dropoffs-empty-nl", "Binnengekomen voor mijn team", "nog niets binnengekomen")
	b.open("/")
	b.page("home-nl", "Team Inkomen")

	// The citizen, on a phone, in Ukrainian, through the proxy.
	px := newProxy(t, s.addr)
	c := newBrowser(t, px.base())
	c.viewport(320, 800)
	c.setLang("uk", "/to/inkomen")
	c.page("to-verify-uk", "Команда доходів", "Надішліть нам свої розрахункові листи.", "Надіслати код")
	c.submit("main form[action$='/verify'] button[type=submit]")
	c.page("to-verify-errors-uk", "Введіть своє ім’я.", "Введіть свою електронну адресу.")
	c.do(chromedp.SendKeys(chromedp.CSS("#name"), "Petro Kovalenko"), chromedp.SendKeys(chromedp.CSS("#email"), citizen))
	c.submit("main form[action$='/verify'] button[type=submit]")
	c.page("to-code-uk", citizen)
	c.do(chromedp.SendKeys(chromedp.CSS("#code"), lastCode(citizen)))
	c.submit("main form[action$='/code'] button[type=submit]")
	c.page("to-upload-uk", "Вашу електронну адресу", "Надіслати")
	if strings.Contains(c.text("body"), staff) {
		t.Error("the citizen's page shows the team member's address")
	}
	// 8 MiB: the page sends it in requests of 2 MiB (chunkSize in
	// request-page.js), so the cut falls inside one of them.
	doc := bytes.Repeat([]byte("loonstrook maart "), 8<<20/17+1)
	file := filepath.Join(t.TempDir(), "loonstrook.pdf")
	if err := os.WriteFile(file, doc, 0o600); err != nil {
		t.Fatal(err)
	}
	c.do(chromedp.SendKeys(chromedp.CSS("#message"), "Hier is mijn loonstrook."),
		chromedp.SetUploadFiles(chromedp.ID("files"), []string{file}))
	c.waitFor(`document.querySelector("form[data-request-form]")?.dataset.started === "1"`)
	cutUpload(t, px, c.results, "drop-off upload", int64(len(doc)), 5<<20, func() {
		c.submit("main form button[type=submit]")
		c.waitLong(`location.search.includes("sent=1") && !!document.querySelector("main h2")`, 2*time.Minute)
	})
	c.page("to-sent-uk", "Ваші файли надіслано")
	c.viewport(1280, 900)
	c.page("to-sent-uk-1280", "Ваші файли надіслано")

	// The member is mailed and opens it with the unlocked inbox.
	msgs := mp.waitMail(t, 15*time.Second, "the team's notice", func(ms []*mpMessage) bool {
		for _, m := range mailsTo(ms, staff) {
			if strings.Contains(m.Text, "/dropoffs/") {
				return true
			}
		}
		return false
	})
	var link string
	for _, m := range mailsTo(msgs, staff) {
		if l := regexp.MustCompile(`/dropoffs/[A-Za-z0-9_-]+`).FindString(m.Text); l != "" {
			link = l
			if strings.Contains(m.Text, "loonstrook.pdf") || strings.Contains(m.Text, "Hier is mijn loonstrook") {
				t.Error("the team's mail names the file or the message")
			}
		}
	}
	// The member locks the inbox and opens what was sent with the
	// passphrase.
	b.open("/inbox")
	b.submit("main form[action='/inbox/lock'] button[type=submit]")
	b.open("/dropoffs")
	b.page("dropoffs-nl", citizen)
	b.submit(`main a[href="` + link + `"]`)
	b.page("dropoff-locked-nl", citizen, "Team Inkomen", "Open eerst uw inbox")
	b.submit(`main a[href="/inbox"]`)
	// The field is set by script (see TestBrowserFileRequest).
	b.waitFor(`document.querySelector("#passphrase") !== null`)
	b.eval(`document.querySelector("#passphrase").value = ` + strconv.Quote(pass) + `, "ok"`)
	b.submit("main form[action='/inbox/unlock'] button[type=submit]")
	b.open(link)
	b.page("dropoff-nl", citizen, "Team Inkomen")
	b.submit("main form[action$='/open'] button[type=submit]")
	b.page("dropoff-contents-nl", "Hier is mijn loonstrook.", "loonstrook.pdf")
	if got := b.download(`a[href*="/files/"]`); !bytes.Equal(got, doc) {
		t.Fatalf("download: %d bytes, want the %d sent", len(got), len(doc))
	}
}
