package cli

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/kluis-nl/kluis/internal/app/apptest"
	"github.com/kluis-nl/kluis/internal/client"
)

// TestReceiveMessageVisible: a sender's confidential message cannot steer
// the recipient's terminal. Escape sequences (clear the screen, set the
// window title, rewrite a line), bells and C1 controls are shown as
// symbols; line breaks and tabs stay. --json keeps the message as sent.
func TestReceiveMessageVisible(t *testing.T) {
	srv := apptest.Start(t, apptest.Options{})
	msg := "Beste,\r\n\x1b]0;Kluis: alles in orde\x07\x1b[2JUw bestanden\tstaan klaar.\x1b[1A\rVerwijderd\u009b31m\x7f"
	sent := sendNoPassword(t, srv, 1000, msg)

	out, _, err := receiveCounting(t, sent.link, "-o", t.TempDir())
	if err != nil {
		t.Fatalf("receive: %v\n%s", err, out)
	}
	if strings.ContainsFunc(out, func(r rune) bool { return isHidden(r) }) {
		t.Errorf("control characters reach the terminal:\n%q", out)
	}
	want := "Beste,\n␛]0;Kluis: alles in orde␇␛[2JUw bestanden\tstaan klaar.␛[1A␍Verwijderd<U+009B>31m␡\n"
	if !strings.HasSuffix(out, want) {
		t.Errorf("message printed as\n%q\nwant it to end in\n%q", out, want)
	}

	out, _, err = receiveCounting(t, sent.link, "-o", t.TempDir(), "--json")
	if err != nil {
		t.Fatalf("receive --json: %v\n%s", err, out)
	}
	var got receiveJSON
	if err := json.Unmarshal([]byte(out), &got); err != nil || got.Message != msg {
		t.Errorf("--json does not keep the message as sent (%v):\n%s", err, out)
	}
}

// TestReportVisible: whatever an error quotes (a server's words, a file
// name from a ZIP) reaches the terminal without its control characters.
func TestReportVisible(t *testing.T) {
	var out strings.Builder
	a, err := Program{}.newApp(english(noEnv), Stdio{In: strings.NewReader(""), Out: &out, Err: &out})
	if err != nil {
		t.Fatal(err)
	}
	code := a.report(&client.IntegrityError{Msg: "x.zip is damaged: \x1b]0;pwned\x07evil.txt: zip: checksum error\nsecond line"})
	if code != exitIntegrity {
		t.Errorf("exit %d, want %d", code, exitIntegrity)
	}
	if got := out.String(); strings.ContainsFunc(got, isHidden) || !strings.Contains(got, "␛]0;pwned␇evil.txt") || !strings.Contains(got, "\nsecond line") {
		t.Errorf("reported as %q", got)
	}
}
