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

func mailpitText(t *testing.T, api, id string) string {
	t.Helper()
	resp, err := http.Get(api + "/api/v1/message/" + id)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m struct{ Text string }
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		t.Fatal(err)
	}
	return m.Text
}

// TestRefusedAfterAcceptance: the one refusal that can come after the 250
// is the malware scan when clamd could not be reached at the time (the
// policy is fail-closed): the mail is accepted, the transfer waits for its
// scan, and when clamd finds malware the sender gets a mail that says so,
// in the language of their mail (Content-Language), delivered through a
// real SMTP server (Mailpit); the recipient gets nothing.
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
	id := strings.ToLower(secret.NewToken()[:10])
	from, to := "jan-"+id+"@gemeente.nl", "alice-"+id+"@example.org"
	msg := "From: " + from + "\nTo: " + to + "\nSubject: [secure] virus\nContent-Language: en-GB\nMessage-ID: <" + id + "@gemeente.nl>\n" +
		"Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/plain\n\nSee attached.\n--b\n" +
		"Content-Type: application/octet-stream\nContent-Disposition: attachment; filename=factuur.com\nContent-Transfer-Encoding: base64\n\n" +
		b64([]byte(scantest.EICAR)) + "\n--b--\n"
	d.Stop(t)
	if err := e.send(t, submission{from: from, rcpts: []string{to}, msg: msg}); err != nil {
		t.Fatalf("with clamd away the mail is accepted to wait for its scan: %v", err)
	}
	ts := transfersOf(t, e, from)
	if len(ts) != 1 || ts[0].State != kluis.StateScanning {
		t.Fatalf("transfers: %+v", ts)
	}
	d.Start(t)
	e.app.Clock.Advance(time.Minute)
	if _, err := e.app.Transfers.RetryScans(t.Context()); err != nil {
		t.Fatal(err)
	}
	var got []mpEntry
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if got = mailpitTo(t, api, from); len(got) > 0 {
			break
		}
	}
	if len(got) != 1 {
		t.Fatalf("%d mails to the sender, want the one notice", len(got))
	}
	text := mailpitText(t, api, got[0].ID)
	// File names never go into a mail; the number and the link to the
	// sender's page tell which.
	if got[0].Subject != "Your transfer was not sent" || !strings.Contains(text, "We found malware in this file: file 1 of 1.") ||
		!strings.Contains(text, "/transfers/"+ts[0].ID) || strings.Contains(text, "factuur") {
		t.Errorf("the sender's notice is not a clear English reason:\n%s\n%s", got[0].Subject, text)
	}
	if n := len(mailpitTo(t, api, to)); n != 0 {
		t.Errorf("%d mails to the recipient of a refused mail", n)
	}
}
