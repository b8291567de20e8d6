package cli

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestHealthcheck: 200 is healthy (exit 0), anything else or no answer
// is exit 4; --ready asks /readyz.
func TestHealthcheck(t *testing.T) {
	ready := false
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/healthz":
			w.Write([]byte("ok\n"))
		case r.URL.Path == "/readyz" && ready:
			w.Write([]byte("ready\n"))
		case r.URL.Path == "/readyz":
			http.Error(w, "not ready", http.StatusServiceUnavailable)
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	ctx := context.Background()
	var out bytes.Buffer
	if err := run(ctx, []string{"healthcheck", "--url", srv.URL}, noEnv, &out, &out); err != nil {
		t.Fatalf("healthy server: %v", err)
	}
	err := run(ctx, []string{"healthcheck", "--ready", "--url", srv.URL}, noEnv, &out, &out)
	if err == nil || exitCode(err) != exitNetwork || !strings.Contains(err.Error(), "503") {
		t.Fatalf("not ready: %v (exit %d)", err, exitCode(err))
	}
	ready = true
	if err := run(ctx, []string{"healthcheck", "--ready", "--url", srv.URL}, noEnv, &out, &out); err != nil {
		t.Fatalf("ready: %v", err)
	}
	// Default address from KLUIS_ADDR.
	addr := strings.TrimPrefix(srv.URL, "http://")
	if err := run(ctx, []string{"healthcheck"}, func(k string) string {
		if k == "KLUIS_ADDR" {
			return addr
		}
		return ""
	}, &out, &out); err != nil {
		t.Fatalf("from KLUIS_ADDR: %v", err)
	}
	srv.Close()
	if err := run(ctx, []string{"healthcheck", "--url", srv.URL, "--timeout", "1s"}, noEnv, &out, &out); exitCode(err) != exitNetwork {
		t.Fatalf("no server: %v (exit %d)", err, exitCode(err))
	}
	if err := run(ctx, []string{"healthcheck", "--url", "ftp://x"}, noEnv, &out, &out); exitCode(err) != exitUsage {
		t.Fatalf("bad URL: %v", err)
	}
}
