package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestAdminPolicyCheck(t *testing.T) {
	ctx := context.Background()
	var out, errOut bytes.Buffer
	env := func(string) string { return "" }
	if err := run(ctx, []string{"admin", "policy", "check", "../../docs/policy.example.json"}, env, &out, &errOut); err != nil {
		t.Fatalf("example: %v", err)
	}
	for _, w := range []string{"gemeente-voorbeeld.nl", `"no private mailboxes": DENY`, "max transfer size: 500.0 MB", "\nOK\n"} {
		if !strings.Contains(out.String(), w) {
			t.Errorf("output lacks %q:\n%s", w, out.String())
		}
	}
	bad := filepath.Join(t.TempDir(), "bad.json")
	os.WriteFile(bad, []byte(`{"organisation_domains": ["gemeente.nl"], "rules": [{"name": "x", "action": "allow", "limits": {"password_modes": ["sms"]}}]}`), 0o600)
	out.Reset()
	err := run(ctx, []string{"admin", "policy", "check", bad}, env, &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), `rules[0].limits.password_modes[0]: "sms" is not a password mode`) || !strings.Contains(err.Error(), "NOT valid") {
		t.Fatalf("bad file: %v", err)
	}
	if strings.Contains(out.String(), "OK") {
		t.Errorf("a bad file printed OK: %s", out.String())
	}
	if _, usage := run(ctx, []string{"admin", "policy", "check"}, env, &out, &errOut).(usageError); !usage {
		t.Error("check without a file is not a usage error")
	}
	// An empty file is valid but a demo: the check says so loudly.
	demo := filepath.Join(t.TempDir(), "demo.json")
	os.WriteFile(demo, []byte(`{}`), 0o600)
	out.Reset()
	if err := run(ctx, []string{"admin", "policy", "check", demo}, env, &out, &errOut); err != nil || !strings.Contains(out.String(), "DEMO") {
		t.Errorf("demo: %v\n%s", err, out.String())
	}
}
