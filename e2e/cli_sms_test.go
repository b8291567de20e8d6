package e2e

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/kluis-nl/kluis/internal/kluistest"
)

// TestCLIRecipientPhone: kluis send --recipient-phone ADDR=NUMBER
// --special-data makes a transfer whose recipient gets an SMS code after
// the password; kluis status shows the method with the number masked; a
// badly written number is refused by the server with what to fix; the
// whole number appears in no output.
func TestCLIRecipientPhone(t *testing.T) {
	g := kluistest.NewSMSGateway(t)
	s := startServer(t, t.TempDir(), g.Args()...)
	key := s.senderKey(t)
	file := filepath.Join(t.TempDir(), "rapport.txt")
	if err := os.WriteFile(file, []byte("vertrouwelijk"), 0o600); err != nil {
		t.Fatal(err)
	}
	kluis := func(args ...string) (string, error) {
		cmd := exec.Command(kluisBin, args...)
		cmd.Env = []string{"KLUIS_API_KEY=" + key, "KLUIS_LANG=en", "HOME=" + t.TempDir(), "XDG_CACHE_HOME=" + t.TempDir()}
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	out, err := kluis("send", "--server", s.base, "--to", "burger@example.nl", "--recipient-phone", "burger@example.nl=+31 6 9988 7766",
		"--special-data", "--password-generate", "--json", file)
	if err != nil {
		t.Fatalf("kluis send: %v\n%s", err, out)
	}
	var sent struct{ ID string }
	if err := json.Unmarshal([]byte(out[strings.Index(out, "{"):]), &sent); err != nil || sent.ID == "" {
		t.Fatalf("kluis send --json printed %q: %v", out, err)
	}
	status, err := kluis("status", "--server", s.base, sent.ID)
	if err != nil {
		t.Fatalf("kluis status: %v\n%s", err, status)
	}
	if !strings.Contains(status, "VERIFICATION") || !strings.Contains(status, "SMS code to +31 6 •••• ••66, not verified yet") {
		t.Errorf("kluis status:\n%s", status)
	}
	if strings.Contains(out+status, "9988") {
		t.Error("the whole number in the output")
	}
	out, err = kluis("send", "--server", s.base, "--to", "burger@example.nl", "--recipient-phone", "burger@example.nl=0612345678", "--password-generate", file)
	if err == nil || !strings.Contains(out, "country code") {
		t.Errorf("a number without country code: %v\n%s", err, out)
	}
	// Special personal data without a number: the policy's default
	// special minimum is the SMS code.
	out, err = kluis("send", "--server", s.base, "--to", "burger@example.nl", "--special-data", "--password-generate", file)
	if err == nil || !strings.Contains(out, "burger@example.nl") {
		t.Errorf("special personal data without a number: %v\n%s", err, out)
	}
}

// TestCLIRequestMobile: kluis request --to ADDR --mobile NUMBER asks a
// person for files; they get the link by SMS (through the test's SMS
// gateway) as well as by mail, the same link; kluis request status shows
// the SMS sent with the number masked. A number without address on a
// request to two people is refused, naming what to fix, and nothing is
// sent. The whole number appears in no output.
func TestCLIRequestMobile(t *testing.T) {
	g := kluistest.NewSMSGateway(t)
	mp := startMailpit(t)
	s := startServer(t, t.TempDir(), append([]string{"--smtp", mp.smtpURL(), "--mail-from", "Kluis Test <kluis@example.nl>"}, g.Args()...)...)
	key := s.senderKey(t) // sender@example.nl
	// The inbox passphrase needs a sender session: verify by the API.
	call := func(path, token string, body any, want int) map[string]any {
		t.Helper()
		b, _ := json.Marshal(body)
		req, _ := http.NewRequest("POST", s.base+path, bytes.NewReader(b))
		req.Header.Set("Content-Type", "application/json")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&out)
		if resp.StatusCode != want {
			t.Fatalf("POST %s: %d %v", path, resp.StatusCode, out)
		}
		return out
	}
	v := call("/api/v1/verify", "", map[string]string{"email": "sender@example.nl", "name": "Sam Staf", "lang": "en"}, 202)
	codeRE := regexp.MustCompile(`(?m)^\s*(\d{8})\s*$`)
	msgs := mp.waitMail(t, 15*time.Second, "the verification code", func(ms []*mpMessage) bool {
		got := mailsTo(ms, "sender@example.nl")
		return len(got) > 0 && codeRE.MatchString(got[len(got)-1].Text)
	})
	got := mailsTo(msgs, "sender@example.nl")
	code := codeRE.FindStringSubmatch(got[len(got)-1].Text)[1]
	c := call("/api/v1/verify/confirm", "", map[string]any{"code": code, "verification": v["verification"], "client": "cli"}, 200)
	call("/api/v1/inbox", c["token"].(string), map[string]string{"passphrase": "Zeven-Lange-Inbox-Woorden"}, 200)

	kluis := func(args ...string) (string, error) {
		cmd := exec.Command(kluisBin, args...)
		cmd.Env = []string{"KLUIS_API_KEY=" + key, "KLUIS_LANG=en", "HOME=" + t.TempDir(), "XDG_CACHE_HOME=" + t.TempDir()}
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	out, err := kluis("request", "--server", s.base, "--to", "burger@example.org; partner@example.org", "--message", "Your pay slip", "--mobile", "+31 6 9988 7766")
	if err == nil || !strings.Contains(out, "address=number") {
		t.Errorf("a number without address for two people: %v\n%s", err, out)
	}
	out, err = kluis("request", "--server", s.base, "--to", "burger@example.org", "--message", "Your pay slip", "--mobile", "+31 6 9988 7766", "--json")
	if err != nil {
		t.Fatalf("kluis request: %v\n%s", err, out)
	}
	var made struct {
		Requests []struct{ ID string } `json:"requests"`
	}
	if err := json.Unmarshal([]byte(out[strings.Index(out, "{"):]), &made); err != nil || len(made.Requests) != 1 {
		t.Fatalf("kluis request --json printed %q: %v", out, err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for len(g.Sent()) == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	sent := g.Sent()
	if len(sent) != 1 || sent[0].To != "+31699887766" {
		t.Fatalf("SMS: %+v", sent)
	}
	msgs = mp.waitMail(t, 15*time.Second, "the request mail", func(ms []*mpMessage) bool { return len(mailsTo(ms, "burger@example.org")) > 0 })
	mailLink := regexp.MustCompile(`https?://\S+/q/[a-z0-9]+`).FindString(mailsTo(msgs, "burger@example.org")[0].Text)
	if mailLink == "" || !strings.HasSuffix(sent[0].Text, mailLink) {
		t.Errorf("SMS %q does not end with the mail's link %q", sent[0].Text, mailLink)
	}
	var status string
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if status, err = kluis("request", "status", "--server", s.base, made.Requests[0].ID); err != nil {
			t.Fatalf("kluis request status: %v\n%s", err, status)
		}
		if strings.Contains(status, "+31 6 •••• ••66, sent") {
			break
		}
	}
	if !strings.Contains(status, "SMS with the link") || !strings.Contains(status, "+31 6 •••• ••66, sent") {
		t.Errorf("kluis request status:\n%s", status)
	}
	if strings.Contains(out+status, "9988") {
		t.Error("the whole number in the output")
	}
}
