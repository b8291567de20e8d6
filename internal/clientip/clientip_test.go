package clientip_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"

	"github.com/kluis-nl/kluis/internal/clientip"
)

func mustPrefixes(t *testing.T, s string) []netip.Prefix {
	t.Helper()
	p, err := clientip.ParsePrefixes(s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestOf(t *testing.T) {
	t.Parallel()
	trusted := mustPrefixes(t, "10.0.0.0/8, 192.0.2.7, ::1")
	cases := []struct {
		name, remote string
		xff          []string
		trusted      []netip.Prefix
		want         string
	}{
		{"no proxy configured: XFF ignored", "198.51.100.1:5000", []string{"203.0.113.9"}, nil, "198.51.100.1"},
		{"untrusted peer: XFF ignored", "198.51.100.1:5000", []string{"203.0.113.9"}, trusted, "198.51.100.1"},
		{"trusted peer: rightmost untrusted", "10.1.2.3:5000", []string{"203.0.113.9"}, trusted, "203.0.113.9"},
		{"forged left entries skipped", "10.1.2.3:5000", []string{"1.1.1.1, 203.0.113.9"}, trusted, "203.0.113.9"},
		{"chain of proxies", "10.1.2.3:5000", []string{"1.1.1.1, 203.0.113.9, 192.0.2.7, 10.9.9.9"}, trusted, "203.0.113.9"},
		{"several headers are one list", "10.1.2.3:5000", []string{"1.1.1.1", "203.0.113.9"}, trusted, "203.0.113.9"},
		{"garbage stops the walk", "10.1.2.3:5000", []string{"203.0.113.9, garbage"}, trusted, "10.1.2.3"},
		{"garbage behind a trusted hop", "10.1.2.3:5000", []string{"garbage, 192.0.2.7"}, trusted, "192.0.2.7"},
		{"all trusted: leftmost", "10.1.2.3:5000", []string{"10.0.0.1, 10.0.0.2"}, trusted, "10.0.0.1"},
		{"no header", "10.1.2.3:5000", nil, trusted, "10.1.2.3"},
		{"v6 peer", "[::1]:5000", []string{"2001:db8::1"}, trusted, "2001:db8::1"},
		{"v6 with port in XFF", "[::1]:5000", []string{"[2001:db8::2]:443"}, trusted, "2001:db8::2"},
		{"mapped v4 unmapped", "[::ffff:10.1.2.3]:5000", []string{"203.0.113.9"}, trusted, "203.0.113.9"},
		{"unparsable peer", "somewhere", []string{"203.0.113.9"}, trusted, "invalid IP"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			r.RemoteAddr = c.remote
			for _, v := range c.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			if got := clientip.Of(r, c.trusted); got.String() != c.want {
				t.Errorf("Of = %s, want %s", got, c.want)
			}
		})
	}
}

func TestParsePrefixes(t *testing.T) {
	t.Parallel()
	p := mustPrefixes(t, "10.0.0.0/8,192.0.2.7 2001:db8::/32 ::ffff:172.16.0.0/108")
	want := []string{"10.0.0.0/8", "192.0.2.7/32", "2001:db8::/32", "172.16.0.0/12"}
	if len(p) != len(want) {
		t.Fatalf("got %v", p)
	}
	for i := range want {
		if p[i].String() != want[i] {
			t.Errorf("%d: %s, want %s", i, p[i], want[i])
		}
	}
	for _, bad := range []string{"10.0.0.0/33", "nonsense", "10.0.0.1/8/2"} {
		if _, err := clientip.ParsePrefixes(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// TestMiddleware: the address the handlers see is the one Of works out,
// with the middleware's trusted proxies.
func TestMiddleware(t *testing.T) {
	t.Parallel()
	var got netip.Addr
	var ok bool
	h := clientip.Middleware(mustPrefixes(t, "127.0.0.0/8"), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, ok = clientip.FromContext(r.Context())
	}))
	r := httptest.NewRequest("GET", "/", nil)
	r.RemoteAddr = "127.0.0.1:5000"
	r.Header.Set("X-Forwarded-For", "198.51.100.1, 203.0.113.9")
	h.ServeHTTP(httptest.NewRecorder(), r)
	if !ok || got.String() != "203.0.113.9" {
		t.Errorf("FromContext = %s, %v; want 203.0.113.9", got, ok)
	}
	if _, ok := clientip.FromContext(context.Background()); ok {
		t.Error("FromContext of a bare context reports an address")
	}
	if _, ok := clientip.FromContext(clientip.NewContext(context.Background(), netip.Addr{})); ok {
		t.Error("FromContext reports the zero address")
	}
}

// TestLocalRequest is the one rule for the views that only the machine
// itself may see (the development mailbox, /metrics and the /healthz
// details without a token).
func TestLocalRequest(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name   string
		change func(r *http.Request)
		want   bool
	}{
		{"loopback", func(r *http.Request) {}, true},
		{"IPv6 loopback", func(r *http.Request) { r.RemoteAddr = "[::1]:50000"; r.Host = "[::1]:8080" }, true},
		{"mapped IPv4 loopback", func(r *http.Request) { r.RemoteAddr = "[::ffff:127.0.0.1]:50000" }, true},
		{"localhost", func(r *http.Request) { r.Host = "localhost:8080" }, true},
		{"LOCALHOST", func(r *http.Request) { r.Host = "LOCALHOST" }, true},
		{"name under .localhost", func(r *http.Request) { r.Host = "kluis.localhost:8080" }, true},
		{"host without port", func(r *http.Request) { r.Host = "127.0.0.1" }, true},
		{"remote peer", func(r *http.Request) { r.RemoteAddr = "203.0.113.9:50000" }, false},
		{"private peer", func(r *http.Request) { r.RemoteAddr = "192.168.1.5:50000" }, false},
		{"no peer", func(r *http.Request) { r.RemoteAddr = "" }, false},
		{"peer without port", func(r *http.Request) { r.RemoteAddr = "127.0.0.1" }, false},
		{"X-Forwarded-For", func(r *http.Request) { r.Header.Set("X-Forwarded-For", "203.0.113.9") }, false},
		{"X-Forwarded-For 127.0.0.1", func(r *http.Request) { r.Header.Set("X-Forwarded-For", "127.0.0.1") }, false},
		{"empty X-Forwarded-For", func(r *http.Request) { r.Header["X-Forwarded-For"] = []string{""} }, false},
		{"Forwarded", func(r *http.Request) { r.Header.Set("Forwarded", "for=203.0.113.9") }, false},
		{"X-Real-Ip", func(r *http.Request) { r.Header.Set("X-Real-Ip", "203.0.113.9") }, false},
		{"X-Forwarded-Host", func(r *http.Request) { r.Header.Set("X-Forwarded-Host", "kluis.example.nl") }, false},
		{"X-Forwarded-Proto", func(r *http.Request) { r.Header.Set("X-Forwarded-Proto", "https") }, false},
		{"Via", func(r *http.Request) { r.Header.Set("Via", "1.1 proxy") }, false},
		{"rebinding host", func(r *http.Request) { r.Host = "attacker.example" }, false},
		{"rebinding host with port", func(r *http.Request) { r.Host = "attacker.example:8080" }, false},
		{"localhost suffix trick", func(r *http.Request) { r.Host = "localhost.attacker.example" }, false},
		{"no host", func(r *http.Request) { r.Host = "" }, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "http://127.0.0.1:8080/metrics", nil)
			r.RemoteAddr = "127.0.0.1:50000"
			c.change(r)
			if got := clientip.LocalRequest(r); got != c.want {
				t.Errorf("LocalRequest = %v, want %v", got, c.want)
			}
		})
	}
}

func TestLoopbackHost(t *testing.T) {
	t.Parallel()
	for host, want := range map[string]bool{
		"localhost": true, "LocalHost": true, "127.0.0.1": true, "127.8.9.10": true, "::1": true, "::1%lo": true,
		"": false, "0.0.0.0": false, "::": false, "10.0.0.1": false, "kluis.example.nl": false, "localhost.example": false,
	} {
		if got := clientip.LoopbackHost(host); got != want {
			t.Errorf("LoopbackHost(%q) = %v, want %v", host, got, want)
		}
	}
}
