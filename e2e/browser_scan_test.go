package e2e

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/kluis-nl/kluis/internal/scan/scantest"
)

// The malware scan as a sender meets it on the send page, in Chromium
// against `kluis serve --clamd` with Debian's real clamd (a signature
// database written by scantest: the EICAR test file and a marker), SMTP
// to Mailpit: a file with malware is refused by name, nothing is sent and
// nothing can be downloaded; without that file the transfer goes out; a
// server that lets files pass when clamd is down (fail-open) warns the
// sender; a server that waits (fail-closed, the default) shows "being
// checked" and then the result. Each page at 1280 and at 320 px, with axe.

// scanWords are texts the pages must show, per language.
var scanWords = map[string]map[string]string{
	"nl": {"infected": "bevat malware", "cancelled": "Er is niets verstuurd", "checking": "controleren ze nu op virussen",
		"unscanned": "zonder viruscontrole", "waiting": "Uw bestanden worden gecontroleerd op virussen"},
	"en": {"infected": "contains malware", "cancelled": "Nothing was sent", "checking": "checking them for viruses",
		"unscanned": "without a virus check", "waiting": "Your files are being checked for viruses"},
}

// bothWidths checks the page with axe at 1280 px and at 320 px (no
// sideways scrolling there), and goes back to 1280 px.
func (b *tab) bothWidths(name string) {
	b.t.Helper()
	b.check(name)
	b.viewport(320, 800)
	b.do(chromedp.Sleep(200 * time.Millisecond))
	b.noSideways(name + "-320")
	b.check(name + "-320")
	b.viewport(1280, 900)
}

// recordSend makes the page keep, for the test, what POST /send/transfer
// answered (the transfer's id and upload token) and every text the
// progress line showed.
func (b *tab) recordSend() {
	b.t.Helper()
	b.eval(`(() => {
		window.__made = []; window.__progress = [];
		if (!window.__wrapped) {
			window.__wrapped = true;
			const f = window.fetch;
			window.fetch = async (...a) => {
				const r = await f(...a);
				if (String(a[0]).endsWith("/send/transfer") && r.ok) r.clone().json().then((j) => window.__made.push(j));
				return r;
			};
			new MutationObserver(() => window.__progress.push(document.getElementById("total-text").textContent))
				.observe(document.getElementById("total-text"), { childList: true, characterData: true, subtree: true });
		}
		return "";
	})()`)
}

func writeFile(t *testing.T, dir, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// waitOutcome waits for the summary or the error summary after Start.
func (b *tab) waitOutcome() {
	b.t.Helper()
	b.waitLong(`!document.getElementById("summary").hidden || !document.getElementById("compose-errors").hidden`, 2*time.Minute)
}

func TestBrowserScan(t *testing.T) {
	d := scantest.Start(t, scantest.Options{})
	mp := startMailpit(t)
	s := startBrowserServer(t, "--smtp", mp.smtpURL(), "--mail-from", "Kluis Test <kluis@example.nl>", "--clamd", d.Unix())
	b := newBrowser(t, s.base)
	dir := t.TempDir()
	cleanBody := []byte("Beste ontvanger, hierbij het verslag. " + uniq("schoon-"))
	cleanPath := writeFile(t, dir, "verslag.txt", cleanBody)
	badPath := writeFile(t, dir, "eicar.com", []byte(scantest.EICAR))
	verifyInBrowser(t, b, mp, "nl", uniq("afzender-")+"@example.nl")

	for _, lang := range []string{"nl", "en"} {
		t.Run(lang, func(t *testing.T) {
			b.t = t
			w := scanWords[lang]
			to := uniq("aan-") + "@example.nl"
			b.setLang(lang, "/send")
			b.waitFor(`!document.getElementById("compose").hidden`)
			b.recordSend()
			b.do(chromedp.SendKeys(chromedp.CSS("#to"), to))
			b.do(chromedp.SetUploadFiles(chromedp.CSS("#files"), []string{cleanPath, badPath}))
			b.waitFor(`document.querySelectorAll("#file-list li").length === 2`)
			b.startTransfer()
			b.waitOutcome()

			// Refused: the error names the file and the finding, links to
			// the files field, and has the focus; the files stay chosen.
			errs := b.eval(`document.getElementById("compose-errors").hidden ? "" : document.getElementById("compose-errors-list").textContent`)
			if !strings.Contains(errs, "‘eicar.com’") || !strings.Contains(errs, w["infected"]) || !strings.Contains(errs, "EICAR") || !strings.Contains(errs, w["cancelled"]) {
				t.Fatalf("after sending EICAR: errors %q, summary %q", errs, b.text("#summary-heading"))
			}
			if got := b.eval(`document.querySelector("#compose-errors-list a").getAttribute("href") + " " + document.activeElement.id`); got != "#files compose-errors" {
				t.Errorf("error link and focus: %q, want #files compose-errors", got)
			}
			if got := b.text("#files-error"); !strings.Contains(got, "eicar.com") {
				t.Errorf("the files field does not show the error: %q", got)
			}
			if got := b.eval(`String(document.querySelectorAll("#file-list li").length)`); got != "2" {
				t.Errorf("%s files left in the list, want both", got)
			}
			if got := b.eval(`window.__progress.join("|")`); !strings.Contains(got, w["checking"]) {
				t.Errorf("the page never said the files were being checked; progress lines: %q", got)
			}
			b.bothWidths("infected-" + lang)

			// Nothing can be downloaded: the transfer was cancelled (its
			// upload token no longer opens it, or it says that the malware
			// check stopped it, and which file), and
			// its recipient gets no mail (checked below, after the clean
			// transfer's mail has arrived).
			made := b.eval(`JSON.stringify(window.__made.map((m) => [m.id, m.upload_token]))`)
			var id, token string
			if parts := strings.Split(strings.Trim(made, `[]"`), `","`); len(parts) == 2 {
				id, token = parts[0], parts[1]
			} else {
				t.Fatalf("transfers made: %s", made)
			}
			var tj struct {
				State       string `json:"state"`
				ScanRefusal *struct {
					Reason string `json:"reason"`
					File   int    `json:"file"`
				} `json:"scan_refusal"`
			}
			if st, _ := call(t, "GET", s.base+"/api/v1/transfers/"+id, token, nil, &tj); st == http.StatusOK &&
				(tj.State != "failed" || tj.ScanRefusal == nil || tj.ScanRefusal.Reason != "infected" || tj.ScanRefusal.File != 2) {
				t.Errorf("the refused transfer is %q (%+v), want failed: infected, file 2", tj.State, tj.ScanRefusal)
			} else if st != http.StatusOK && st != http.StatusUnauthorized {
				t.Errorf("the refused transfer answers %d", st)
			}
			if st, _ := call(t, "POST", s.base+"/api/v1/transfers/"+id+"/finish", token, map[string]string{}, nil); st < 400 {
				t.Errorf("the refused transfer can still be finished: %d", st)
			}

			// Without that file: checked, sent.
			b.recordSend()
			b.eval(`[...document.querySelectorAll("#file-list li")].find((li) => li.querySelector(".kluis-file__name").textContent === "eicar.com").querySelector("button").click(); ""`)
			b.waitFor(`document.querySelectorAll("#file-list li").length === 1`)
			b.startTransfer()
			b.waitOutcome()
			if !strings.Contains(b.text("#summary-heading"), sendWords[lang]["summary"]) {
				t.Fatalf("no summary; errors: %q", b.eval(`document.getElementById("compose-errors-list").textContent`))
			}
			if got := b.eval(`String(document.getElementById("summary-unscanned").hidden && document.getElementById("summary-status").hidden)`); got != "true" {
				t.Error("a scanned transfer shows a scan warning or status")
			}
			password := b.text("#summary-password")
			b.bothWidths("summary-" + lang)

			mp.waitMail(t, 20*time.Second, "the notification to "+to, func(ms []*mpMessage) bool { return len(mailsTo(ms, to)) > 0 })
			time.Sleep(2 * time.Second) // a mail of the refused transfer would be here by now
			msgs := mp.all(t)
			if n := len(mailsTo(msgs, to)); n != 1 {
				t.Fatalf("%d mails to %s, want only the clean transfer's", n, to)
			}
			links := mailLinks(mailsTo(msgs, to)[0])
			if len(links) != 1 {
				t.Fatalf("links: %v", links)
			}
			access, _ := splitLink(t, links[0])
			r := newBrowser(t, s.base, "_recipient_"+lang)
			r.setLang(lang, "/r/"+access)
			r.do(chromedp.SendKeys(chromedp.CSS("#password"), password))
			r.submit("main form button[type=submit]")
			if got := r.eval(`[...document.querySelectorAll(".kluis-file__name")].map((e) => e.textContent).join(",")`); got != "verslag.txt" {
				t.Errorf("the recipient sees the files %q, want only verslag.txt", got)
			}
			if got := r.download(`a[href*="/files/"][data-name="verslag.txt"]`); string(got) != string(cleanBody) {
				t.Errorf("verslag.txt: %q", got)
			}
		})
	}
	b.t = t

	// clamd down, fail-closed (the default): the summary says "being
	// checked" with a link to the status page; when clamd is back and
	// the server's retry has run, the same summary says it was sent.
	d.Stop(t)
	to := uniq("wacht-") + "@example.nl"
	b.setLang("nl", "/send")
	b.waitFor(`!document.getElementById("compose").hidden`)
	b.do(chromedp.SendKeys(chromedp.CSS("#to"), to))
	b.do(chromedp.SetUploadFiles(chromedp.CSS("#files"), []string{cleanPath}))
	b.waitFor(`document.querySelectorAll("#file-list li").length === 1`)
	b.startTransfer()
	b.waitOutcome()
	if got := b.text("#summary-heading"); !strings.Contains(got, scanWords["nl"]["waiting"]) {
		t.Fatalf("clamd down: summary heading %q, errors %q", got, b.eval(`document.getElementById("compose-errors-list").textContent`))
	}
	link := b.eval(`document.getElementById("summary-status").hidden ? "" : document.getElementById("summary-status-link").getAttribute("href")`)
	if !strings.HasPrefix(link, "/transfers/") {
		t.Errorf("no status link on the waiting summary: %q", link)
	}
	b.bothWidths("waiting-nl")
	if n := len(mailsTo(mp.all(t), to)); n != 0 {
		t.Errorf("%d mails to %s while the transfer waits for its scan", n, to)
	}
	d.Start(t)
	// The server retries after 30 s; the page asks after 5, 10, 20, 40 s.
	b.waitLong(`document.getElementById("summary-heading").textContent === `+strconvQuote(sendWords["nl"]["summary"]), 150*time.Second)
	if got := b.text("#summary-scan-live"); !strings.Contains(got, "gecontroleerd") {
		t.Errorf("the outcome was not announced: %q", got)
	}
	b.check("waited-sent-nl")
	mp.waitMail(t, 20*time.Second, "the notification after the wait", func(ms []*mpMessage) bool { return len(mailsTo(ms, to)) == 1 })
}

// TestBrowserScanFailOpen: a server that lets files pass when clamd
// cannot be reached (--scan-unavailable open) sends them, and the summary
// names them with a warning.
func TestBrowserScanFailOpen(t *testing.T) {
	d := scantest.Start(t, scantest.Options{})
	d.Stop(t)
	mp := startMailpit(t)
	s := startBrowserServer(t, "--smtp", mp.smtpURL(), "--mail-from", "Kluis Test <kluis@example.nl>", "--clamd", d.Unix(), "--scan-unavailable", "open")
	b := newBrowser(t, s.base)
	path := writeFile(t, t.TempDir(), "notulen.txt", []byte("Notulen van de vergadering."))
	verifyInBrowser(t, b, mp, "nl", uniq("afzender-")+"@example.nl")
	for _, lang := range []string{"nl", "en"} {
		to := uniq("aan-") + "@example.nl"
		b.setLang(lang, "/send")
		b.waitFor(`!document.getElementById("compose").hidden`)
		b.do(chromedp.SendKeys(chromedp.CSS("#to"), to))
		b.do(chromedp.SetUploadFiles(chromedp.CSS("#files"), []string{path}))
		b.waitFor(`document.querySelectorAll("#file-list li").length === 1`)
		b.startTransfer()
		b.waitOutcome()
		if !strings.Contains(b.text("#summary-heading"), sendWords[lang]["summary"]) {
			t.Fatalf("%s: no summary; errors: %q", lang, b.eval(`document.getElementById("compose-errors-list").textContent`))
		}
		warn := b.eval(`document.getElementById("summary-unscanned").hidden ? "" : document.getElementById("summary-unscanned").textContent`)
		if !strings.Contains(warn, scanWords[lang]["unscanned"]) || !strings.Contains(warn, "notulen.txt") {
			t.Errorf("%s: the unscanned warning is %q", lang, warn)
		}
		b.bothWidths("unscanned-" + lang)
		mp.waitMail(t, 20*time.Second, "the notification to "+to, func(ms []*mpMessage) bool { return len(mailsTo(ms, to)) == 1 })
	}
}

// TestBrowserScanPerRecipient: "one transfer per recipient" with a file
// that has malware. The first transfer's finish is refused; the page names
// the file and the finding, and revokes every transfer of that send (the
// refused one and those not started), so nobody is mailed: Mailpit holds
// nothing for either recipient, and no transfer of the sender is left
// ready or waiting. At 1280 and 320 px, with axe, in Dutch and English.
func TestBrowserScanPerRecipient(t *testing.T) {
	d := scantest.Start(t, scantest.Options{})
	mp := startMailpit(t)
	s := startBrowserServer(t, "--smtp", mp.smtpURL(), "--mail-from", "Kluis Test <kluis@example.nl>", "--clamd", d.Unix())
	b := newBrowser(t, s.base)
	dir := t.TempDir()
	cleanPath := writeFile(t, dir, "besluit.txt", []byte("Het besluit. "+uniq("schoon-")))
	badPath := writeFile(t, dir, "eicar.com", []byte(scantest.EICAR))
	verifyInBrowser(t, b, mp, "nl", uniq("afzender-")+"@example.nl")

	for _, lang := range []string{"nl", "en"} {
		t.Run(lang, func(t *testing.T) {
			b.t = t
			w := scanWords[lang]
			// Two external addresses: the review asks whether they may see
			// each other, and offers one transfer per recipient.
			a1, a2 := uniq("burger-")+"@example.org", uniq("buur-")+"@example.com"
			b.setLang(lang, "/send")
			b.waitFor(`!document.getElementById("compose").hidden`)
			b.do(chromedp.SendKeys(chromedp.CSS("#to"), a1+"; "+a2))
			b.do(chromedp.SetUploadFiles(chromedp.CSS("#files"), []string{cleanPath, badPath}))
			b.waitFor(`document.querySelectorAll("#file-list li").length === 2`)
			b.startTransfer("separate")
			b.waitOutcome()

			errs := b.eval(`document.getElementById("compose-errors").hidden ? "" : document.getElementById("compose-errors-list").textContent`)
			if !strings.Contains(errs, "‘eicar.com’") || !strings.Contains(errs, w["infected"]) || !strings.Contains(errs, "EICAR") || !strings.Contains(errs, w["cancelled"]) {
				t.Fatalf("one transfer per recipient with EICAR: errors %q, summary %q", errs, b.text("#summary-heading"))
			}
			if got := b.text("#files-error"); !strings.Contains(got, "eicar.com") {
				t.Errorf("the files field does not show the error: %q", got)
			}
			b.bothWidths("infected-separate-" + lang)

			// No transfer of this sender is left to be sent.
			states := b.await(`fetch("/api/v1/transfers", {credentials: "same-origin"}).then(r => r.json()).then(j => (j.transfers || []).map(x => x.state).join(","))`)
			if states == "" {
				t.Fatal("no transfers listed")
			}
			for _, st := range strings.Split(states, ",") {
				if st == "ready" || st == "scanning" || st == "uploading" || st == "draft" {
					t.Errorf("a transfer of the refused send is %s (states %s), want none left to send", st, states)
				}
			}
			time.Sleep(3 * time.Second) // a notification would be in Mailpit by now
			msgs := mp.all(t)
			for _, to := range []string{a1, a2} {
				if n := len(mailsTo(msgs, to)); n != 0 {
					t.Errorf("%d mails to %s after the refused send, want none", n, to)
				}
			}
		})
	}
}
