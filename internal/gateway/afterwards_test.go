package gateway_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/kluis-nl/kluis"
	"github.com/kluis-nl/kluis/internal/scan/scantest"
	"github.com/kluis-nl/kluis/internal/secret"
)

type mpEntry struct {
	ID      string
	Subject string
	To      []struct{ Address string }
}

// mailpitTo returns the messages Mailpit holds for addr.
func mailpitTo(t *testing.T, api, addr string) []mpEntry {
	t.Helper()
	resp, err := http.Get(api + "/api/v1/search?query=" + url.QueryEscape("to:"+addr))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var list struct{ Messages []mpEntry }
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
		t.Fatal(err)
	}
	return list.Messages
}

// mailpitMessage returns the subject, text and HTML Mailpit holds for id.
func mailpitMessage(t *testing.T, api, id string) (subject, text, html string) {
	t.Helper()
	resp, err := http.Get(api + "/api/v1/message/" + id)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m struct{ Subject, Text, HTML string }
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		t.Fatal(err)
	}
	return m.Subject, m.Text, m.HTML
}

// mailpitBody returns the text part Mailpit holds for id.
func mailpitBody(t *testing.T, api, id string) string {
	t.Helper()
	_, text, _ := mailpitMessage(t, api, id)
	return text
}

// TestRefusedAfterAcceptance: the one refusal that can come after the 250
// is the malware scan when clamd could not be reached at the time (the
// policy is fail-closed): the mail is accepted, the transfer waits for its
// scan, and when clamd finds malware the sender gets Kluis's own
// non-delivery report, in their language (here from Content-Language, or
// Dutch without one), delivered through a real SMTP server (Mailpit). It
// quotes the subject and lists the recipients; no canary of the text,
// the attachments or their names is in it, and the recipients get
// nothing. The subject kept for the report is erased with it.
func TestRefusedAfterAcceptance(t *testing.T) {
	smtpURL, api := os.Getenv("KLUIS_TEST_SMTP_URL"), os.Getenv("KLUIS_TEST_MAILPIT_API")
	if smtpURL == "" || api == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("KLUIS_TEST_SMTP_URL and KLUIS_TEST_MAILPIT_API are required in CI")
		}
		t.Skip("no Mailpit (KLUIS_TEST_SMTP_URL, KLUIS_TEST_MAILPIT_API)")
	}
	d := scantest.Start(t, scantest.Options{})
	e := start(t, setup{args: []string{"--clamd", d.Unix(), "--scan-wait", "1h", "--smtp", smtpURL}})
	cases := []struct {
		contentLang string
		subject     string // the report's subject
		texts       []string
	}{
		{"en-GB", "Not delivered: Stukken voor de zitting", []string{"Your e-mail was not delivered", "It found malware in this attachment: attachment 2 of 2.",
			"Subject: Stukken voor de zitting", "To: alice-", "Do not open this attachment on your computer."}},
		{"", "Niet bezorgd: Stukken voor de zitting", []string{"Uw e-mail is niet bezorgd", "In deze bijlage zit malware: bijlage 2 van 2.",
			"Onderwerp: Stukken voor de zitting", "Aan: alice-", "Verstuur uw e-mail opnieuw zonder deze bijlage."}},
		{"uk", "Не доставлено: Stukken voor de zitting", []string{"Ваш лист не доставлено", "вкладення 2 з 2", "Тема: Stukken voor de zitting", "Кому: alice-"}},
	}
	type sent struct{ from, to string }
	var mails []sent
	d.Stop(t)
	for _, c := range cases {
		id := strings.ToLower(secret.NewToken()[:10])
		from, to := "jan-"+id+"@gemeente.nl", "alice-"+id+"@example.org"
		msg := "From: " + from + "\nTo: " + to + ", bob-" + id + "@example.org\nSubject: [secure] Stukken voor de zitting\nMessage-ID: <" + id + "@gemeente.nl>\n"
		if c.contentLang != "" {
			msg += "Content-Language: " + c.contentLang + "\n"
		}
		msg += "Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/plain\n\nSee attached. " + canary + "-text\n--b\n" +
			"Content-Type: application/pdf\nContent-Disposition: attachment; filename=" + canary + "-besluit.pdf\nContent-Transfer-Encoding: base64\n\n" +
			b64([]byte("%PDF-1.4 "+canary+"-content")) + "\n--b\n" +
			"Content-Type: application/octet-stream\nContent-Disposition: attachment; filename=" + canary + "-factuur.com\nContent-Transfer-Encoding: base64\n\n" +
			b64([]byte(scantest.EICAR)) + "\n--b--\n"
		if err := e.send(t, submission{from: from, rcpts: []string{to, "bob-" + id + "@example.org"}, msg: msg}); err != nil {
			t.Fatalf("with clamd away the mail is accepted to wait for its scan: %v", err)
		}
		ts := transfersOf(t, e, from)
		if len(ts) != 1 || ts[0].State != kluis.StateScanning {
			t.Fatalf("transfers: %+v", ts)
		}
		mails = append(mails, sent{from, to})
	}
	// The cleanup keeps the subjects of transfers that can still be refused.
	if err := e.gw.Cleanup(t.Context()); err != nil {
		t.Fatal(err)
	}
	if n := countRows(t, e.app, "mail_origins"); n != len(cases) {
		t.Errorf("%d subjects kept for a report, want %d (one per waiting transfer)", n, len(cases))
	}
	d.Start(t)
	e.app.Clock.Advance(time.Minute)
	if _, err := e.app.Transfers.RetryScans(t.Context()); err != nil {
		t.Fatal(err)
	}
	for i, c := range cases {
		from, to := mails[i].from, mails[i].to
		var got []mpEntry
		for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
			if got = mailpitTo(t, api, from); len(got) > 0 {
				break
			}
		}
		if len(got) != 1 {
			t.Fatalf("%s: %d mails to the sender, want the one report", c.contentLang, len(got))
		}
		subject, text, html := mailpitMessage(t, api, got[0].ID)
		if subject != c.subject {
			t.Errorf("%q: subject %q, want %q", c.contentLang, subject, c.subject)
		}
		for _, want := range c.texts {
			if !strings.Contains(text, want) {
				t.Errorf("%q: the report does not say %q:\n%s", c.contentLang, want, text)
			}
		}
		if !strings.Contains(text, to) || !strings.Contains(html, to) {
			t.Errorf("%q: the report does not name the recipient %s", c.contentLang, to)
		}
		if strings.Contains(subject+text+html, canary) || strings.Contains(text+html, "factuur") || strings.Contains(text+html, "/transfers/") {
			t.Errorf("%q: the report shows the text, an attachment, its name or a link:\n%s", c.contentLang, text)
		}
		for _, r := range []string{to, strings.Replace(to, "alice", "bob", 1)} {
			if n := len(mailpitTo(t, api, r)); n != 0 {
				t.Errorf("%d mails to the recipient %s of a refused mail", n, r)
			}
		}
	}
	if n := countRows(t, e.app, "mail_origins"); n != 0 {
		t.Errorf("%d subjects left after the reports", n)
	}
}

// mailpitSettled waits until the outbox has sent what it can (mails held
// for a scan are not pending) and returns what Mailpit holds for addr.
func mailpitSettled(t *testing.T, e *env, api, addr string) []mpEntry {
	t.Helper()
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		pending, _, err := e.app.DB.OutboxDepth(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if pending == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d mails still queued after 15 s", pending)
		}
	}
	// Mailpit stores what it was handed a moment after the 250.
	time.Sleep(300 * time.Millisecond)
	return mailpitTo(t, api, addr)
}

func mailpitEnv(t *testing.T) (smtpURL, api string) {
	t.Helper()
	smtpURL, api = os.Getenv("KLUIS_TEST_SMTP_URL"), os.Getenv("KLUIS_TEST_MAILPIT_API")
	if smtpURL == "" || api == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("KLUIS_TEST_SMTP_URL and KLUIS_TEST_MAILPIT_API are required in CI")
		}
		t.Skip("no Mailpit (KLUIS_TEST_SMTP_URL, KLUIS_TEST_MAILPIT_API)")
	}
	return smtpURL, api
}

// TestInfectedNoConfirmation: the sender's password confirmation (the mail
// with the one-time link) goes out only once the transfer is ready. A mail
// refused for malware at once (554) leaves no confirmation in Mailpit and
// no sealed password; one that waited for clamd and was then refused
// leaves the sender only Kluis's non-delivery report, and its sealed
// password is erased; one that waited and passed gets its confirmation
// when it is sent. Through kluis serve, so the real Confirmer runs.
func TestInfectedNoConfirmation(t *testing.T) {
	smtpURL, api := mailpitEnv(t)
	d := scantest.Start(t, scantest.Options{})
	a, e := startServe(t, "--clamd", d.Unix(), "--scan-wait", "1h", "--smtp", smtpURL)
	mailFrom := func(from, to, attachment string) string {
		return "From: " + from + "\nTo: " + to + "\nSubject: [secure] stukken\nMessage-ID: <" + secret.NewToken()[:12] + "@gemeente.nl>\n" +
			"Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/plain\n\nHierbij.\n--b\n" +
			"Content-Type: application/octet-stream\nContent-Disposition: attachment; filename=stuk.com\nContent-Transfer-Encoding: base64\n\n" +
			b64([]byte(attachment)) + "\n--b--\n"
	}
	addrs := func() (string, string) {
		id := strings.ToLower(secret.NewToken()[:10])
		return "jan-" + id + "@gemeente.nl", "alice-" + id + "@example.org"
	}

	// Refused at once.
	from, to := addrs()
	err := e.send(t, submission{from: from, rcpts: []string{to}, msg: mailFrom(from, to, scantest.EICAR)})
	if got := code(t, err); got != 554 {
		t.Fatalf("infected attachment: %v, want 554", err)
	}
	if got := mailpitSettled(t, e, api, from); len(got) != 0 {
		t.Errorf("the sender of a refused mail got %d mails (%q), want none", len(got), got[0].Subject)
	}
	if n := waiting(t, a); n != 0 {
		t.Errorf("%d sealed passwords left for a refused mail", n)
	}

	// Waited for clamd, then refused: only the notice.
	from, to = addrs()
	d.Stop(t)
	if err := e.send(t, submission{from: from, rcpts: []string{to}, msg: mailFrom(from, to, scantest.EICAR)}); err != nil {
		t.Fatalf("with clamd away the mail waits for its scan: %v", err)
	}
	if got := mailpitSettled(t, e, api, from); len(got) != 0 {
		t.Errorf("the sender got %d mails (%q) while the scan waits, want none", len(got), got[0].Subject)
	}
	d.Start(t)
	a.Clock.Advance(time.Minute)
	if _, err := a.Transfers.RetryScans(t.Context()); err != nil {
		t.Fatal(err)
	}
	if n := waiting(t, a); n != 0 {
		t.Errorf("%d sealed passwords left after the scan refused the mail", n)
	}
	if _, err := a.Transfers.Purge(t.Context()); err != nil {
		t.Fatal(err)
	}
	got := mailpitSettled(t, e, api, from)
	if len(got) != 1 || got[0].Subject != "Niet bezorgd: stukken" { // Kluis's non-delivery report
		var subjects []string
		for _, m := range got {
			subjects = append(subjects, m.Subject)
		}
		t.Errorf("the sender got %q, want only the non-delivery report", subjects)
	}
	if n := len(mailpitTo(t, api, to)); n != 0 {
		t.Errorf("%d mails to the recipient of a refused mail", n)
	}

	// Waited, then clean: the confirmation comes with the notification.
	from, to = addrs()
	d.Stop(t)
	if err := e.send(t, submission{from: from, rcpts: []string{to}, msg: mailFrom(from, to, "schoon")}); err != nil {
		t.Fatal(err)
	}
	if got := mailpitSettled(t, e, api, from); len(got) != 0 {
		t.Errorf("the sender got %d mails while the scan waits, want none", len(got))
	}
	d.Start(t)
	a.Clock.Advance(time.Minute)
	if _, err := a.Transfers.RetryScans(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := mailpitSettled(t, e, api, from); len(got) != 1 || !pwLinkRE.MatchString(mailpitBody(t, api, got[0].ID)) {
		t.Errorf("after the scan passed the sender got %d mails, want the confirmation with its link", len(got))
	}
	if n := len(mailpitTo(t, api, to)); n != 1 {
		t.Errorf("%d notifications after the scan passed, want 1", n)
	}
	if n := waiting(t, a); n != 1 {
		t.Errorf("%d sealed passwords, want the one of the sent transfer", n)
	}
}
