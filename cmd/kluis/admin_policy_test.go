package main

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kluis-nl/kluis/internal/policy"
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

// SIGHUP reloads the file; a bad file is logged and the old policy stays.
func TestWatchPolicy(t *testing.T) {
	file := filepath.Join(t.TempDir(), "policy.json")
	os.WriteFile(file, []byte(`{"organisation_domains": ["gemeente.nl"]}`), 0o600)
	var logs syncLog
	log := slog.New(slog.NewTextHandler(&logs, nil))
	h, err := loadPolicy(file, log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	hup := make(chan os.Signal)
	done := make(chan struct{})
	go func() { defer close(done); watchPolicy(ctx, hup, h, file, log) }()
	good := h.Get()

	os.WriteFile(file, []byte(`{"organisation_domains": ["gemeente.nl"], "rules": [{"name": "x"}]}`), 0o600)
	hup <- nil
	waitFor(t, &logs, "policy reload failed")
	if h.Get() != good {
		t.Fatal("a bad file replaced the policy")
	}
	if !strings.Contains(logs.String(), "rules[0].action") {
		t.Errorf("the log does not say what to fix:\n%s", logs.String())
	}
	os.WriteFile(file, []byte(`{"organisation_domains": ["andere.nl"]}`), 0o600)
	hup <- nil
	waitFor(t, &logs, "policy reloaded")
	if d := h.Get().Domains(); len(d) != 1 || d[0] != "andere.nl" {
		t.Fatalf("after reload: %v", d)
	}
	cancel()
	<-done

	if _, err := loadPolicy(filepath.Join(t.TempDir(), "missing.json"), log); err == nil || !strings.Contains(err.Error(), "--policy") {
		t.Errorf("missing file at start: %v", err)
	}
	if h, err := loadPolicy("", log); err != nil || !h.Get().Demo() || h.Get() == nil {
		t.Errorf("no --policy: %v", err)
	}
	if h := policy.NewHolder(nil); !h.Get().Demo() {
		t.Error("holder without a policy is not the demo")
	}
}

type syncLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *syncLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}
func (l *syncLog) String() string { l.mu.Lock(); defer l.mu.Unlock(); return l.buf.String() }

func waitFor(t *testing.T, l *syncLog, s string) {
	t.Helper()
	for range 200 {
		if strings.Contains(l.String(), s) {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("log never said %q:\n%s", s, l.String())
}
