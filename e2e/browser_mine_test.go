package e2e

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/kluis-nl/kluis/internal/locale"
)

// The sender's pages (My transfers) and the recipient's reply, in a real
// Chromium against a real `kluis serve` that delivers mail to Mailpit.
// Each flow runs once per language, so axe-core sees every page in Dutch
// and in English.

var mineWords = map[string]map[string]string{
	"nl": {"reply": "Antwoord sturen", "sent": "Uw antwoord is verstuurd", "problem": "Er is een probleem", "mine": "Mijn verzendingen",
		"opened": "Geopend op", "downloaded": "gedownload op", "sure": "Weet u het zeker?", "revoked_one": "Toegang ingetrokken op",
		"gone": "ingetrokken", "extended": "De nieuwe datum is opgeslagen", "too_late": "te laat", "subject": "Antwoord van",
		"re": "Antw: ", "reply_intro": "bestanden die u zelf heeft verstuurd", "open_reply": "Antwoord openen"},
	"en": {"reply": "Send a reply", "sent": "Your reply has been sent", "problem": "There is a problem", "mine": "My transfers",
		"opened": "Opened on", "downloaded": "Downloaded", "sure": "Are you sure?", "revoked_one": "Access revoked on",
		"gone": "revoked", "extended": "The new date has been saved", "too_late": "too late", "subject": "Reply from",
		"re": "Re: ", "reply_intro": "files you sent yourself", "open_reply": "Open reply"},
}

func otherLang(lang string) string {
	if lang == "nl" {
		return "en"
	}
	return "nl"
}

// TestBrowserReply: a recipient opens their link, unlocks it and replies
// with a message and a file; the sender gets the mail in Mailpit, opens the
// reply with their own password, reads the message and downloads the file.
// The recipient's pages run in one language, the sender's in the other.
// The replier gives a name; the mail is titled "Re: <subject>" and names
// them; the reply's password page speaks to the sender; and the signed-in
// sender finds the reply under the transfer in My transfers and opens it
// there too.
func TestBrowserReply(t *testing.T) {
	needBrowser(t)
	mp := startMailpit(t)
	for _, lang := range []string{"nl", "en"} {
		t.Run(lang, func(t *testing.T) {
			// A server per language: the reply pages are limited per client
			// (bursts of 4), and both languages' browsers are 127.0.0.1.
			s := startBrowserServer(t, "--smtp", mp.smtpURL(), "--mail-from", "Kluis Test <kluis@example.nl>")
			w := mineWords[lang]
			pw := "Herfst-Peer-" + lang + "-73"
			subject := "Uw formulier " + lang
			c := createReq(t, s, s.senderKey(t), map[string]any{
				"sender":   map[string]string{"email": "sender@example.nl", "name": "Sender"},
				"to":       []string{"to@example.nl"},
				"subject":  subject,
				"message":  "Wilt u het formulier ingevuld terugsturen?",
				"password": password{Mode: "manual", Value: pw},
			})
			form := newSource(21, 40_000, "FORMULIER")
			if st, code := s.plainUpload(t, c, "formulier.pdf", form, false); st != http.StatusCreated {
				t.Fatalf("upload: %d %s", st, code)
			}
			access, _ := s.finish(t, c)

			// The recipient.
			b := newBrowser(t, s.base, "-recipient")
			b.setLang(lang, "/")
			b.open("/r/" + access)
			b.do(chromedp.SendKeys(chromedp.ID("password"), pw))
			b.submit("main form button[type=submit]")
			if p := b.path(); p != "/r/"+access+"/open" {
				t.Fatalf("after the password: at %s", p)
			}
			b.check("contents-with-reply")
			b.submit(`main a[href$="/reply"]`)
			if !strings.Contains(b.text("h1"), w["reply"]) || !strings.Contains(b.text("main"), "sender@example.nl") {
				t.Fatalf("reply form: %q", b.text("main"))
			}
			b.check("reply-form")
			for _, w := range []int64{320, 390} {
				b.viewport(w, 800)
				b.noSideways(fmt.Sprintf("reply-form-%d", w))
			}
			b.viewport(1280, 900)

			// Nothing filled in: an error summary linked to the field.
			b.submit("main form button[type=submit]")
			if !strings.Contains(b.text("[data-error-summary]"), w["problem"][:10]) {
				t.Error("no error summary for an empty reply")
			}
			if got := b.eval(`document.querySelector("[data-error-summary] a").getAttribute("href")`); got != "#message" {
				t.Errorf("the summary links to %q, want #message", got)
			}
			b.check("reply-empty")
			b.phones("reply-empty")

			answer := newSource(22, 123_456, "INGEVULD")
			file := filepath.Join(t.TempDir(), "ingevuld-"+lang+".pdf")
			if err := os.WriteFile(file, answer.bytesAt(0, answer.size), 0o600); err != nil {
				t.Fatal(err)
			}
			message := "Hierbij het ingevulde formulier.\nMet vriendelijke groet, " + lang
			replier := "Joke de Vries " + lang
			b.do(chromedp.SendKeys(chromedp.ID("name"), replier), chromedp.SendKeys(chromedp.ID("message"), message),
				chromedp.SetUploadFiles(chromedp.ID("files"), []string{file}))
			// The upload's progress: the page script posts the form itself
			// and writes the answer into this same window, so what the
			// progress line said survives in it.
			b.eval(`window.kluisProgress = []; new MutationObserver(() => window.kluisProgress.push(document.getElementById("reply-progress-text").textContent))
				.observe(document.getElementById("reply-progress-text"), {childList: true, characterData: true, subtree: true}); ""`)
			b.submit("main form button[type=submit]")
			if got := b.eval(`JSON.stringify(window.kluisProgress || null)`); !strings.Contains(got, `100%`) {
				t.Errorf("the reply's upload showed no progress up to 100%%: %s", got)
			}
			if !strings.Contains(b.text("h1"), w["sent"]) || !strings.Contains(b.text("main"), "ingevuld-"+lang+".pdf") {
				t.Fatalf("after sending the reply: %q", b.text("main"))
			}
			b.check("reply-sent")
			b.phones("reply-sent")

			// The sender's mail: a new one, with one link, from the recipient.
			isReply := func(m *mpMessage) string {
				if l := mailLinks(m); strings.Contains(m.Subject, subject) && len(l) == 1 && !seenLink[l[0]] {
					return l[0]
				}
				return ""
			}
			msgs := mp.waitMail(t, 15*time.Second, "the reply mail to sender@example.nl", func(ms []*mpMessage) bool {
				for _, m := range mailsTo(ms, "sender@example.nl") {
					if isReply(m) != "" {
						return true
					}
				}
				return false
			})
			var replyLink string
			for _, m := range mailsTo(msgs, "sender@example.nl") {
				if l := isReply(m); l != "" {
					replyLink = l
					if strings.Contains(m.Text+m.HTML, pw) || strings.Contains(m.Text+m.HTML, "Met vriendelijke groet") {
						t.Error("the reply mail holds the password or the confidential message")
					}
					// The sender's language (Dutch: the API default).
					if m.Subject != mineWords["nl"]["re"]+subject || !strings.Contains(m.Text, replier) {
						t.Errorf("reply mail subject %q, want %q, naming %q:\n%s", m.Subject, mineWords["nl"]["re"]+subject, replier, m.Text)
					}
				}
			}
			seenLink[replyLink] = true
			replyAccess, frag := splitLink(t, replyLink)
			if frag != "" {
				t.Errorf("a password reply's link carries a fragment: %s", replyLink)
			}

			// The sender opens it with their own password.
			sb := newBrowser(t, s.base, "-sender")
			sb.setLang(otherLang(lang), "/")
			sb.open("/r/" + replyAccess)
			if !strings.Contains(sb.text("main"), mineWords[otherLang(lang)]["reply_intro"]) {
				t.Errorf("the reply's password page does not speak to its sender: %q", sb.text("main"))
			}
			sb.check("reply-password")
			sb.phones("reply-password")
			sb.do(chromedp.SendKeys(chromedp.ID("password"), pw))
			sb.submit("main form button[type=submit]")
			if p := sb.path(); p != "/r/"+replyAccess+"/open" {
				t.Fatalf("the sender cannot open the reply with their password: at %s: %q", p, sb.text("main"))
			}
			if got := sb.eval(`document.querySelector(".kluis-message").textContent`); got != message {
				t.Errorf("reply message shown as %q, want %q", got, message)
			}
			if !strings.Contains(sb.text("main"), "to@example.nl") {
				t.Error("the reply does not show who sent it")
			}
			sb.check("reply-opened")
			sb.phones("reply-opened")
			got := sb.download(`a[href*="/files/"][data-name="ingevuld-` + lang + `.pdf"]`)
			if !bytes.Equal(got, answer.bytesAt(0, answer.size)) {
				t.Errorf("the reply's file: %d bytes differ from the %d sent", len(got), answer.size)
			}

			// The sender, signed in in a fresh browser, finds the reply under
			// the transfer in My transfers, and opens it there with the same
			// password.
			mb := newBrowser(t, s.base, "-mine")
			mb.setLang(lang, "/")
			browserLogin(t, mb, mp, "sender@example.nl", lang)
			// The list says the transfer got a reply.
			mb.open("/transfers")
			if want := locale.For(locale.Lang(lang)).T("mine.one_reply"); !strings.Contains(mb.eval(`document.querySelector('main a[href="/transfers/`+c.ID+`"]').closest("tr").textContent`), want) {
				t.Errorf("My transfers does not say the transfer got a reply (%q): %q", want, mb.text("main"))
			}
			mb.check("list-with-reply")
			mb.phones("list-with-reply")
			mb.open("/transfers/" + c.ID)
			if !strings.Contains(mb.text("main"), replier) {
				t.Errorf("the status page does not name the replier: %q", mb.text("main"))
			}
			mb.check("detail-with-reply")
			phones := func(tb *tab, name string) {
				for _, w := range []int64{320, 390} {
					tb.viewport(w, 800)
					tb.noSideways(fmt.Sprintf("%s-%d", name, w))
				}
				tb.viewport(1280, 900)
			}
			phones(mb, "detail-with-reply")
			mb.submit(`main a[href^="/transfers/` + c.ID + `/replies/"]`)
			if !strings.Contains(mb.text("main"), w["reply_intro"]) {
				t.Errorf("own reply page: %q", mb.text("main"))
			}
			mb.check("own-reply-password")
			phones(mb, "own-reply-password")
			mb.do(chromedp.SendKeys(chromedp.ID("password"), pw))
			mb.submit("main form button[type=submit]")
			if p := mb.path(); !strings.HasPrefix(p, "/transfers/"+c.ID+"/replies/") || !strings.HasSuffix(p, "/open") {
				t.Fatalf("the sender cannot open the reply from My transfers: at %s: %q", p, mb.text("main"))
			}
			if got := mb.eval(`document.querySelector(".kluis-message").textContent`); got != message {
				t.Errorf("reply message shown as %q from My transfers", got)
			}
			mb.check("own-reply-opened")
			phones(mb, "own-reply-opened")
			got = mb.download(`a[href*="/files/"][data-name="ingevuld-` + lang + `.pdf"]`)
			if !bytes.Equal(got, answer.bytesAt(0, answer.size)) {
				t.Errorf("the reply's file from My transfers: %d bytes differ from the %d sent", len(got), answer.size)
			}
		})
	}
}

// browserLogin verifies email inside the browser b (the JSON verification
// called from the page, with the code from Mailpit), so the session cookie
// is the browser's own.
func browserLogin(t *testing.T, b *tab, mp *mailpit, email, lang string) {
	t.Helper()
	codeRE := regexp.MustCompile(`(?m)^\s*(\d{8})\s*$`)
	before := len(mailsTo(mp.all(t), email))
	if st := b.await(`fetch("/api/v1/verify", {method: "POST", headers: {"Content-Type": "application/json"},
		body: JSON.stringify({email: "` + email + `", name: "Sender", lang: "` + lang + `"})}).then(r => String(r.status))`); st != "202" {
		t.Fatalf("verify: %s", st)
	}
	msgs := mp.waitMail(t, 15*time.Second, "the verification code", func(ms []*mpMessage) bool {
		got := mailsTo(ms, email)
		return len(got) > before && codeRE.MatchString(got[len(got)-1].Text)
	})
	got := mailsTo(msgs, email)
	code := codeRE.FindStringSubmatch(got[len(got)-1].Text)[1]
	if st := b.await(`fetch("/api/v1/verify/confirm", {method: "POST", headers: {"Content-Type": "application/json"},
		body: JSON.stringify({code: "` + code + `"})}).then(r => String(r.status))`); st != "200" {
		t.Fatalf("confirm: %s", st)
	}
}

// seenLink keeps the reply links of earlier subtests apart.
var seenLink = map[string]bool{}

// TestBrowserMyTransfers: the sender logs in inside the browser (the JSON
// verification, called from the page with the code from Mailpit), follows
// a recipient's download on the status page, revokes one recipient (whose
// link then shows the revoked page with the date), moves the expiry and
// logs out.
func TestBrowserMyTransfers(t *testing.T) {
	needBrowser(t)
	mp := startMailpit(t)
	s := startBrowserServer(t, "--smtp", mp.smtpURL(), "--mail-from", "Kluis Test <kluis@example.nl>")
	ams, err := time.LoadLocation("Europe/Amsterdam")
	if err != nil {
		ams = time.FixedZone("CET", 3600)
	}
	codeRE := regexp.MustCompile(`(?m)^\s*(\d{8})\s*$`)
	for _, lang := range []string{"nl", "en"} {
		t.Run(lang, func(t *testing.T) {
			w := mineWords[lang]
			const pw = "Winter-Kers-58"
			first, second := "eerste-"+lang+"@example.nl", "tweede-"+lang+"@example.nl"
			c := createReq(t, s, s.senderKey(t), map[string]any{
				"sender":   map[string]string{"email": "sender@example.nl", "name": "Sender"},
				"to":       []string{first, second},
				"subject":  "Stukken " + lang,
				"message":  "Vertrouwelijk",
				"password": password{Mode: "manual", Value: pw},
			})
			doc := newSource(31, 70_000, "STUK")
			if st, code := s.plainUpload(t, c, "stuk.pdf", doc, false); st != http.StatusCreated {
				t.Fatalf("upload: %d %s", st, code)
			}
			links := finishLinks(t, s, c)
			access := map[string]string{}
			for _, l := range links {
				access[l.Address], _ = splitLink(t, l.URL)
			}
			// The first recipient opens and downloads, through the API.
			sess := s.unlock(t, access[first], pw)
			s.download(t, sess, s.contents(t, sess).file(t, "stuk.pdf"), doc)

			b := newBrowser(t, s.base)
			b.setLang(lang, "/")
			b.open("/transfers")
			if p := b.path(); !strings.HasPrefix(p, "/send") || !strings.Contains(p, "next=%2Ftransfers") {
				t.Fatalf("not logged in: /transfers went to %s, want the verification page", p)
			}

			// Log in from the page: the cookies are then the browser's own.
			before := len(mailsTo(mp.all(t), "sender@example.nl"))
			if st := b.await(`fetch("/api/v1/verify", {method: "POST", headers: {"Content-Type": "application/json"},
				body: JSON.stringify({email: "sender@example.nl", name: "Sender", lang: "` + lang + `"})}).then(r => String(r.status))`); st != "202" {
				t.Fatalf("verify: %s", st)
			}
			msgs := mp.waitMail(t, 15*time.Second, "the verification code", func(ms []*mpMessage) bool {
				got := mailsTo(ms, "sender@example.nl")
				return len(got) > before && codeRE.MatchString(got[len(got)-1].Text)
			})
			got := mailsTo(msgs, "sender@example.nl")
			code := codeRE.FindStringSubmatch(got[len(got)-1].Text)[1]
			if st := b.await(`fetch("/api/v1/verify/confirm", {method: "POST", headers: {"Content-Type": "application/json"},
				body: JSON.stringify({code: "` + code + `"})}).then(r => String(r.status))`); st != "200" {
				t.Fatalf("confirm: %s", st)
			}

			b.open("/transfers")
			if !strings.Contains(b.text("h1"), w["mine"]) || !strings.Contains(b.text("main"), "Stukken "+lang) {
				t.Fatalf("list: %q", b.text("main"))
			}
			b.check("list")
			b.phones("list")
			b.submit(`main a[href="/transfers/` + c.ID + `"]`)
			main := b.text("main")
			for _, want := range []string{first, second, w["opened"], w["downloaded"]} {
				if !strings.Contains(main, want) {
					t.Errorf("detail lacks %q: %q", want, main)
				}
			}
			b.check("detail")
			b.phones("detail")

			// Revoke the first recipient, with the confirmation step.
			b.submit(`main form:has(input[name=recipient]) button`)
			if !strings.Contains(b.text("h1"), w["sure"]) || !strings.Contains(b.text("main"), first) {
				t.Fatalf("no confirmation step: %q", b.text("main"))
			}
			b.check("revoke-confirm")
			b.phones("revoke-confirm")
			b.submit("main form button[type=submit]")
			if !strings.Contains(b.text("main"), w["revoked_one"]) {
				t.Errorf("after revoking one recipient: %q", b.text("main"))
			}
			b.check("revoked-one")
			b.phones("revoked-one")

			// That recipient's link now says so, with the date.
			rb := newBrowser(t, s.base, "-recipient")
			rb.setLang(lang, "/")
			rb.open("/r/" + access[first])
			if got := rb.text("main"); !strings.Contains(got, w["gone"]) || !strings.Contains(got, time.Now().In(ams).Format("2006")) {
				t.Errorf("revoked link: %q", got)
			}
			rb.check("link-revoked")
			rb.phones("link-revoked")
			// The other recipient still gets the password page.
			rb.open("/r/" + access[second])
			if rb.eval(`String(!!document.getElementById("password"))`) != "true" {
				t.Errorf("the second recipient's link no longer works: %q", rb.text("main"))
			}

			// Extend: too late first, then a good date.
			b.eval(`document.getElementById("expires").value = "2999-12-31"`)
			b.submit(`main form[action$="/extend"] button`)
			if !strings.Contains(b.text("[data-error-summary]"), w["too_late"]) {
				t.Errorf("no error for a date past the limit: %q", b.text("main"))
			}
			b.check("extend-error")
			b.phones("extend-error")
			day := time.Now().In(ams).AddDate(0, 0, 12).Format("2006-01-02")
			b.eval(`document.getElementById("expires").value = "` + day + `"`)
			b.submit(`main form[action$="/extend"] button`)
			if !strings.Contains(b.text("main"), w["extended"]) {
				t.Errorf("extend: %q", b.text("main"))
			}
			if got := b.eval(`document.getElementById("expires").value`); got != day {
				t.Errorf("the date field shows %s after extending to %s", got, day)
			}
			b.check("extended")
			b.phones("extended")

			// Log out: a page confirms it, and My transfers asks for
			// verification again.
			b.submit(`form[action="/logout"] button`)
			if p := b.path(); p != "/logout" {
				t.Errorf("after logout at %s, want the confirmation page /logout", p)
			}
			b.check("logged-out")
			b.phones("logged-out")
			b.open("/transfers")
			if p := b.path(); !strings.HasPrefix(p, "/send") {
				t.Errorf("after logout /transfers went to %s", p)
			}
		})
	}
}

// await evaluates a promise-valued expression and returns its string.
func (b *tab) await(js string) string {
	b.t.Helper()
	v, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](js, chromedp.EvalAwaitPromise))
	if err != nil {
		b.t.Fatalf("evaluate %q: %v", js, err)
	}
	return v
}
