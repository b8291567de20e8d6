package app_test

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kluis-nl/kluis/internal/app"
	"github.com/kluis-nl/kluis/internal/app/apptest"
	"github.com/kluis-nl/kluis/internal/config"
)

// waitLog waits until a has logged msg n times.
func waitLog(t *testing.T, a *apptest.App, msg string, n int) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); a.Logs.Count(msg) < n; {
		if time.Now().After(deadline) {
			t.Fatalf("the log never said %q %d times:\n%s", msg, n, a.Logs)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestPolicyReload: SIGHUP reloads the policy file; a bad file is logged
// with what to fix and the old policy stays in force.
func TestPolicyReload(t *testing.T) {
	a := apptest.Start(t, apptest.Options{Policy: `{"organisation_domains": ["gemeente.nl"]}`})
	file := a.PolicyFile()
	good := a.Policy.Get()
	if d := good.Domains(); len(d) != 1 || d[0] != "gemeente.nl" {
		t.Fatalf("at start: %v", d)
	}

	os.WriteFile(file, []byte(`{"organisation_domains": ["gemeente.nl"], "rules": [{"name": "x"}]}`), 0o600)
	a.Reload <- syscall.SIGHUP
	waitLog(t, a, "policy reload failed; the previous policy stays in force", 1)
	if a.Policy.Get() != good {
		t.Fatal("a bad file replaced the policy")
	}
	if !a.Logs.Contains("rules[0].action") {
		t.Errorf("the log does not say what to fix:\n%s", a.Logs)
	}
	os.WriteFile(file, []byte(`{"organisation_domains": ["andere.nl"]}`), 0o600)
	a.Reload <- syscall.SIGHUP
	waitLog(t, a, "policy reloaded", 1)
	if d := a.Policy.Get().Domains(); len(d) != 1 || d[0] != "andere.nl" {
		t.Fatalf("after reload: %v", d)
	}
}

// TestPolicyAtStart: without --policy the demo policy is in force; a
// missing file stops the start with an error naming --policy.
func TestPolicyAtStart(t *testing.T) {
	if a := apptest.New(t, apptest.Options{}); !a.Policy.Get().Demo() {
		t.Error("no --policy: not the demo policy")
	}
	dir := t.TempDir()
	cfg, err := config.ParseServe([]string{"--data", dir, "--addr", "127.0.0.1:0", "--policy", filepath.Join(dir, "missing.json")},
		func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if a, err := app.New(context.Background(), cfg, app.Options{}); err == nil || !strings.Contains(err.Error(), "--policy") {
		if a != nil {
			a.Close()
		}
		t.Errorf("missing policy file at start: %v", err)
	}
}
