package server_test

import (
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/kluis-nl/kluis/internal/ratelimit"
	"github.com/kluis-nl/kluis/internal/server"
)

const crossOriginMessage = "This request came from another website and was refused."

// unsafeRoutes are the registered state-changing routes with a concrete
// path for each.
func unsafeRoutes(t *testing.T, e *env, fx *fixture) map[string]string {
	t.Helper()
	fx.open()
	fx.tus()
	fx.ready()
	repl := strings.NewReplacer("{id}", fx.openID, "{fid}", fx.tusID, "{access}", fx.access)
	out := map[string]string{}
	for _, p := range routesOf(t, e) {
		method, path, _ := strings.Cut(p, " ")
		switch method {
		case "GET", "HEAD", "OPTIONS":
			continue
		}
		out[p] = repl.Replace(path)
	}
	if len(out) < 10 {
		t.Fatalf("only %d state-changing routes: %v", len(out), out)
	}
	return out
}

// TestCrossOriginRefused: every state-changing route refuses a request a
// browser marks as cross-site, or whose Origin is another site; same-origin
// requests and requests without browser headers (CLI, scripts) pass. (That
// a real Chromium's same-origin form post passes is for the web UI's
// browser test: under Referrer-Policy no-referrer it sends Origin: null
// with Sec-Fetch-Site: same-origin, which the check accepts.)
func TestCrossOriginRefused(t *testing.T) {
	e := newEnv(t, envOptions{})
	fx := e.fixture(t)
	for p, path := range unsafeRoutes(t, e, fx) {
		method, _, _ := strings.Cut(p, " ")
		refused := []map[string]string{
			{"Sec-Fetch-Site": "cross-site"},
			{"Sec-Fetch-Site": "same-site"},
			{"Origin": "https://evil.example"},
			{"Origin": "null", "Sec-Fetch-Site": "cross-site"},
		}
		for _, hdr := range refused {
			resp, b := e.do(method, path, "", hdr, "{}")
			if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(b), crossOriginMessage) || errCode(b) != "forbidden" {
				t.Errorf("%s with %v: %d %s, want 403 cross-origin refusal", p, hdr, resp.StatusCode, b)
			}
			checkHeaders(t, p+" (cross-origin)", resp, false)
		}
		allowed := []map[string]string{
			nil,
			{"Sec-Fetch-Site": "same-origin"},
			{"Sec-Fetch-Site": "same-origin", "Origin": "null"},
			{"Sec-Fetch-Site": "none"},
			{"Origin": e.url},
		}
		for _, hdr := range allowed {
			resp, b := e.do(method, path, "", hdr, "{}")
			if strings.Contains(string(b), crossOriginMessage) {
				t.Errorf("%s with %v: refused as cross-origin: %d", p, hdr, resp.StatusCode)
			}
		}
	}
}

// TestHeadersOnErrorPages: unknown paths, wrong methods and TRACE carry the
// same headers as every route (the route table checks those).
func TestHeadersOnErrorPages(t *testing.T) {
	e := newEnv(t, envOptions{})
	for _, c := range []struct {
		method, path string
		status       int
	}{
		{"GET", "/bestaat-niet", 404},
		{"GET", "/api/v1/bestaat-niet", 404},
		{"GET", "/api/v1/links/", 404},
		{"POST", "/healthz", 405},
		{"DELETE", "/api/v1/me", 405},
		{"TRACE", "/", 405},
		{"TRACE", "/api/v1/me", 405},
	} {
		resp, b := e.do(c.method, c.path, "", nil, nil)
		if resp.StatusCode != c.status {
			t.Errorf("%s %s: %d, want %d", c.method, c.path, resp.StatusCode, c.status)
		}
		if c.method == "TRACE" && strings.Contains(string(b), "Authorization") {
			t.Errorf("TRACE echoed the request")
		}
		checkHeaders(t, c.method+" "+c.path, resp, false)
	}
}

// TestRateLimitedRoutesExist: every route the limiter guards is registered
// (a renamed route would otherwise silently lose its limit), and a limited
// route answers 429 with Retry-After and the JSON error.
func TestRateLimitedRoutesExist(t *testing.T) {
	e := newEnv(t, envOptions{limiter: ratelimit.New(ratelimit.Config{PerMinute: 60, Burst: 3})})
	reg := map[string]bool{}
	for _, p := range routesOf(t, e) {
		reg[p] = true
	}
	for p := range server.RateLimited {
		if !reg[p] {
			t.Errorf("rate-limited route %q is not registered", p)
		}
	}
	fx := e.fixture(t)
	fx.unlock() // one request of the burst of 3
	_, key, err := e.senders.CreateAPIKey(e.ctx, ownerEmail)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		e.must(http.StatusOK, "GET", "/api/v1/links/"+fx.access, "", nil, nil, nil)
	}
	resp, b := e.do("GET", "/api/v1/links/"+fx.access, "", nil, nil)
	if resp.StatusCode != http.StatusTooManyRequests || errCode(b) != "rate_limited" {
		t.Fatalf("4th request: %d %s", resp.StatusCode, b)
	}
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || s < 1 {
		t.Errorf("Retry-After %q", resp.Header.Get("Retry-After"))
	}
	checkHeaders(t, "429", resp, false)
	// The web pages share the client's bucket.
	resp, _ = e.do("GET", "/r/"+fx.access, "", nil, nil)
	if resp.StatusCode != http.StatusTooManyRequests {
		t.Errorf("link page after the limit: %d", resp.StatusCode)
	}
	// Requests inside a download session and a verified sender's are not
	// counted.
	for i := 0; i < 20; i++ {
		e.must(http.StatusOK, "GET", "/api/v1/session", fx.session, nil, nil, nil)
		e.must(http.StatusOK, "GET", "/api/v1/session/files/"+fx.fileID, fx.session, nil, nil, nil)
		e.must(http.StatusOK, "GET", "/api/v1/transfers", key, nil, nil, nil)
	}
}
