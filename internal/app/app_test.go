package app_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/kluis-nl/kluis/internal/app/apptest"
)

// TestRunServesAndStops: Run serves on the listener New opened, says where
// (and where mail goes), and returns nil once its context ends, after the
// server and every background loop have stopped.
func TestRunServesAndStops(t *testing.T) {
	a := apptest.Start(t, apptest.Options{})
	resp, err := http.Get(a.URL() + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/readyz: %d", resp.StatusCode)
	}
	out := a.Stdout()
	if !strings.Contains(out, "Kluis is running at "+a.URL()+"/") || !strings.Contains(out, a.URL()+"/dev/mailbox") {
		t.Errorf("stdout:\n%s", out)
	}
	if err := a.Stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if n := a.Logs.Count("kluis stopped"); n != 1 {
		t.Errorf("%d stop messages", n)
	}
	if _, err := http.Get(a.URL() + "/healthz"); err == nil {
		t.Error("still serving after Run returned")
	}
}
