package server_test

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/kluis-nl/kluis/internal/ratelimit"
	"github.com/kluis-nl/kluis/internal/server"
)

// TestEveryAccessRouteLimited walks the route table: every route whose
// path takes an access id is rate-limited, so a route added later cannot
// forget it (issue 11, item 11). Each route gets its own client with a
// bucket of one: the second request must be refused. A recipient's own
// download session for the link is not counted; a session for another
// link is.
func TestEveryAccessRouteLimited(t *testing.T) {
	lim := ratelimit.New(ratelimit.Config{PerMinute: 1, Burst: 1, GlobalPerMinute: 1 << 20, GlobalBurst: 1 << 20, Now: frozen})
	e := newEnv(t, envOptions{limiter: lim, trusted: loopbackProxy})
	fx := e.fixture(t)
	fx.unlock()
	repl := strings.NewReplacer("{access}", fx.access, "{fid}", fx.fileID)
	n := 0
	for _, p := range routesOf(t, e) {
		if !strings.Contains(p, "{access}") {
			continue
		}
		n++
		if !server.LimitedRoute(p) {
			t.Errorf("%s takes an access id but is not rate-limited", p)
		}
		method, path, _ := strings.Cut(p, " ")
		hdr := map[string]string{"X-Forwarded-For": fmt.Sprintf("198.51.100.%d", n)}
		e.do(method, repl.Replace(path), "", hdr, nil)
		resp, body := e.do(method, repl.Replace(path), "", hdr, nil)
		if resp.StatusCode != http.StatusTooManyRequests {
			t.Errorf("%s: second request from one client with a bucket of one: %d, want 429: %.200s", p, resp.StatusCode, body)
		}
	}
	if n < 9 {
		t.Fatalf("only %d routes take an access id", n)
	}

	// The recipient reading and downloading with the link's own session is
	// not counted.
	own := map[string]string{"X-Forwarded-For": "203.0.113.1", "Cookie": "__Host-kluis-dl=" + fx.session}
	for i := range 5 {
		if resp, _ := e.do("GET", "/r/"+fx.access+"/files/"+fx.fileID, "", own, nil); resp.StatusCode != http.StatusOK {
			t.Fatalf("download %d in the recipient's own session: %d", i+1, resp.StatusCode)
		}
	}
	// The same session on another link counts (and is no session there).
	other := e.fixture(t)
	other.ready()
	e.do("GET", "/r/"+other.access+"/open", "", own, nil)
	if resp, _ := e.do("GET", "/r/"+other.access+"/open", "", own, nil); resp.StatusCode != http.StatusTooManyRequests {
		t.Errorf("another link with this session: %d, want 429", resp.StatusCode)
	}
}

// TestRateLimitedPage: a rate-limited page request gets a page (HTML) in
// the visitor's language with Retry-After; the API keeps its JSON error
// (issue 11, item 18).
func TestRateLimitedPage(t *testing.T) {
	lim := ratelimit.New(ratelimit.Config{PerMinute: 1, Burst: 1, GlobalPerMinute: 1 << 20, GlobalBurst: 1 << 20, Now: frozen})
	e := newEnv(t, envOptions{limiter: lim, trusted: loopbackProxy})
	fx := e.fixture(t)
	fx.ready()
	for i, c := range []struct {
		method, path, lang, want string
		body                     any
	}{
		{"GET", "/r/" + fx.access, "en", "Please wait a moment", nil},
		{"GET", "/r/" + fx.access, "nl", "Even geduld", nil},
		{"POST", "/r/" + fx.access + "/unlock", "en", "Please wait a moment", "password=x"},
		{"POST", "/receive", "nl", "Even geduld", "code=" + fx.access},
		{"POST", "/send/verify", "en", "Please wait a moment", "name=A&email=a%40example.nl"},
	} {
		hdr := map[string]string{"X-Forwarded-For": fmt.Sprintf("198.51.100.%d", i+1), "Accept-Language": c.lang}
		if c.body != nil {
			hdr["Content-Type"] = "application/x-www-form-urlencoded"
		}
		e.do(c.method, c.path, "", hdr, c.body)
		resp, body := e.do(c.method, c.path, "", hdr, c.body)
		what := c.method + " " + c.path + " (" + c.lang + ")"
		if resp.StatusCode != http.StatusTooManyRequests {
			t.Errorf("%s: %d, want 429", what, resp.StatusCode)
			continue
		}
		if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") || resp.Header.Get("Content-Language") != c.lang || !strings.Contains(string(body), c.want) {
			t.Errorf("%s: %s, Content-Language %q, want a page with %q:\n%.300s", what, ct, resp.Header.Get("Content-Language"), c.want, body)
		}
		if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || s < 1 {
			t.Errorf("%s: Retry-After %q", what, resp.Header.Get("Retry-After"))
		}
		checkHeaders(t, what, resp, false)
	}
	hdr := map[string]string{"X-Forwarded-For": "198.51.100.99", "Accept-Language": "en"}
	e.do("GET", "/api/v1/links/"+fx.access, "", hdr, nil)
	resp, body := e.do("GET", "/api/v1/links/"+fx.access, "", hdr, nil)
	if resp.StatusCode != http.StatusTooManyRequests || errCode(body) != "rate_limited" || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		t.Errorf("API: %d %s %s, want the JSON error", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
}
