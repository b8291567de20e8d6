package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

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
