package server_test

import (
	"strings"
	"testing"
)

// TestHSTSFromBaseURL (issue 11 item 5): behind a reverse proxy that
// terminates TLS the request reaching Kluis is plain HTTP, yet the public
// address is https: every answer, on every route and error page, carries
// HSTS. With an http base URL (development) none does.
func TestHSTSFromBaseURL(t *testing.T) {
	t.Run("https base URL", func(t *testing.T) { checkHSTS(t, "https://kluis.example.nl", true) })
	t.Run("http base URL", func(t *testing.T) { checkHSTS(t, "", false) })
}

// checkHSTS requests every route of a handler with the given base URL over
// plain HTTP and checks the headers, HSTS included when hsts is set.
func checkHSTS(t *testing.T, base string, hsts bool) {
	e := newEnv(t, envOptions{baseURL: base})
	fx := e.fixture(t)
	fx.ready()
	fx.tus()
	repl := strings.NewReplacer("{id}", fx.readyID, "{fid}", fx.tusID, "{access}", fx.access, "{file}", "1.txt",
		"{sum}", "x", "{name...}", "x", "{$}", "")
	routes := routesOf(t, e)
	for _, p := range routes {
		method, path, _ := strings.Cut(p, " ")
		resp, _ := e.do(method, repl.Replace(path), "", nil, nil)
		checkHeaders(t, p, resp, hsts)
	}
	for _, x := range []struct {
		method, path string
		hdr          map[string]string
	}{
		{"GET", "/bestaat-niet", nil},
		{"TRACE", "/", nil},
		{"POST", "/api/v1/verify", map[string]string{"Sec-Fetch-Site": "cross-site"}},
	} {
		resp, _ := e.do(x.method, x.path, "", x.hdr, nil)
		checkHeaders(t, x.method+" "+x.path, resp, hsts)
	}
	resp, _ := e.do("GET", "/healthz", "", nil, nil)
	if got := resp.Header.Get("Strict-Transport-Security"); hsts && got != "max-age=31536000; includeSubDomains" {
		t.Errorf("HSTS %q", got)
	}
}
