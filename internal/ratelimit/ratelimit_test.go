package ratelimit

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/kluis-nl/kluis/internal/clientip"
	"github.com/kluis-nl/kluis/internal/kluistest"
)

func mustPrefixes(t *testing.T, s string) []netip.Prefix {
	t.Helper()
	p, err := clientip.ParsePrefixes(s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// at returns a clock set to a fixed moment.
func at(unix int64) *kluistest.Clock {
	c := kluistest.NewClock()
	c.Set(time.Unix(unix, 0))
	return c
}

func TestPerIPLimit(t *testing.T) {
	clk := at(1_700_000_000)
	l := New(Config{PerMinute: 60, Burst: 5, GlobalPerMinute: 100000, Now: clk.Now})
	a := netip.MustParseAddr("198.51.100.1")
	b := netip.MustParseAddr("198.51.100.2")
	for i := 0; i < 5; i++ {
		if ok, _ := l.Allow(context.Background(), a); !ok {
			t.Fatalf("request %d refused within the burst", i)
		}
	}
	ok, wait := l.Allow(context.Background(), a)
	if ok || wait <= 0 || wait > time.Second {
		t.Fatalf("6th request: ok=%v wait=%s; want refused with wait ≤ 1s", ok, wait)
	}
	// Refused requests take no token: after one second exactly one more.
	for i := 0; i < 10; i++ {
		l.Allow(context.Background(), a)
	}
	clk.Advance(time.Second)
	if ok, _ := l.Allow(context.Background(), a); !ok {
		t.Fatal("refused after refill")
	}
	if ok, _ := l.Allow(context.Background(), a); ok {
		t.Fatal("second request after one second's refill allowed")
	}
	if ok, _ := l.Allow(context.Background(), b); !ok {
		t.Fatal("another client is limited too")
	}
}

func TestIPv6SlashSixtyFourIsOneClient(t *testing.T) {
	l := New(Config{PerMinute: 60, Burst: 3, GlobalPerMinute: 100000})
	for i := 0; i < 3; i++ {
		if ok, _ := l.Allow(context.Background(), netip.MustParseAddr(fmt.Sprintf("2001:db8:1:2::%x", i+1))); !ok {
			t.Fatal("refused within the burst")
		}
	}
	if ok, _ := l.Allow(context.Background(), netip.MustParseAddr("2001:db8:1:2:ffff::1")); ok {
		t.Fatal("a new address in the same /64 got a fresh bucket")
	}
	if ok, _ := l.Allow(context.Background(), netip.MustParseAddr("2001:db8:1:3::1")); !ok {
		t.Fatal("another /64 is limited")
	}
}

func TestGlobalLimit(t *testing.T) {
	clk := at(1_700_000_000)
	l := New(Config{PerMinute: 5, Burst: 5, GlobalPerMinute: 600, GlobalBurst: 10, Now: clk.Now})
	allowed := 0
	for i := 0; i < 100; i++ {
		if ok, _ := l.Allow(context.Background(), netip.AddrFrom4([4]byte{198, 51, 100, byte(i)})); ok {
			allowed++
		}
	}
	if allowed != 10 {
		t.Fatalf("%d allowed across clients, want the global burst 10", allowed)
	}
	// A client refused for the global limit keeps its own tokens.
	c := netip.MustParseAddr("203.0.113.1")
	for i := 0; i < 5; i++ {
		if ok, wait := l.Allow(context.Background(), c); ok || wait <= 0 {
			t.Fatal("allowed while the global bucket is empty")
		}
	}
	clk.Advance(time.Second) // 10 global tokens; the client gains 1/12 of one
	for i := 0; i < 5; i++ {
		if ok, _ := l.Allow(context.Background(), c); !ok {
			t.Fatalf("client refused at %d: globally refused requests drained its bucket", i)
		}
	}
	if ok, _ := l.Allow(context.Background(), c); ok {
		t.Fatal("client allowed past its burst")
	}
}

func TestBoundedClients(t *testing.T) {
	clk := at(1_700_000_000)
	l := New(Config{PerMinute: 60, Burst: 10, GlobalPerMinute: 1 << 30, MaxClients: 1000, Now: clk.Now})
	for i := 0; i < 50_000; i++ {
		ip := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		l.Allow(context.Background(), ip)
		if i%1000 == 0 {
			clk.Advance(time.Second)
		}
		if n := l.Clients(); n > 1000 {
			t.Fatalf("%d clients kept, bound is 1000", n)
		}
	}
	// Idle buckets (full again) are dropped first: the active client keeps
	// its state.
	l2 := New(Config{PerMinute: 60, Burst: 2, GlobalPerMinute: 1 << 30, MaxClients: 10, Now: clk.Now})
	hot := netip.MustParseAddr("203.0.113.1")
	l2.Allow(context.Background(), hot)
	l2.Allow(context.Background(), hot)
	for i := 0; i < 9; i++ {
		l2.Allow(context.Background(), netip.AddrFrom4([4]byte{10, 0, 0, byte(i)}))
	}
	clk.Advance(3 * time.Second) // all are full again; hot drains its bucket below
	l2.Allow(context.Background(), hot)
	l2.Allow(context.Background(), hot)
	l2.Allow(context.Background(), netip.MustParseAddr("10.9.9.9")) // table full: the idle ones go
	if ok, _ := l2.Allow(context.Background(), hot); ok {
		t.Fatal("eviction reset the active client's bucket")
	}
	if n := l2.Clients(); n != 2 {
		t.Fatalf("%d clients after eviction, want 2 (hot and the new one)", n)
	}
}

func TestMiddleware(t *testing.T) {
	l := New(Config{PerMinute: 60, Burst: 2, GlobalPerMinute: 100000})
	h := l.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ip, ok := clientip.FromContext(r.Context())
		if !ok {
			t.Error("no IP in the context")
		}
		w.Header().Set("X-IP", ip.String())
		w.WriteHeader(http.StatusNoContent)
	}))
	do := func(xff string) *httptest.ResponseRecorder {
		r := httptest.NewRequest("POST", "/", nil)
		r.RemoteAddr = "127.0.0.1:1234"
		r.Header.Set("X-Forwarded-For", xff)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}
	for i := 0; i < 2; i++ {
		if w := do(fmt.Sprintf("203.0.113.%d", i)); w.Code != http.StatusNoContent || w.Header().Get("X-IP") != "127.0.0.1" {
			t.Fatalf("status %d ip %s", w.Code, w.Header().Get("X-IP"))
		}
	}
	// A forged X-Forwarded-For (no trusted proxy) does not make a new client.
	w := do("203.0.113.77")
	if w.Code != http.StatusTooManyRequests {
		t.Fatalf("status %d, want 429", w.Code)
	}
	secs, err := strconv.Atoi(w.Header().Get("Retry-After"))
	if err != nil || secs < 1 || secs > 60 {
		t.Errorf("Retry-After %q", w.Header().Get("Retry-After"))
	}
	var body struct {
		Error struct{ Code, Message string }
	}
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || body.Error.Code != "rate_limited" || body.Error.Message == "" {
		t.Errorf("body %s", w.Body)
	}
	if w.Header().Get("Cache-Control") != "no-store" {
		t.Error("429 without Cache-Control: no-store")
	}

	// Behind a trusted proxy each forwarded client has its own bucket.
	lt := New(Config{PerMinute: 60, Burst: 2, GlobalPerMinute: 100000, Trusted: mustPrefixes(t, "127.0.0.0/8")})
	ht := clientip.Middleware(lt.Config().Trusted, lt.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})))
	for i := 0; i < 20; i++ {
		r := httptest.NewRequest("POST", "/", nil)
		r.RemoteAddr = "127.0.0.1:1234"
		r.Header.Set("X-Forwarded-For", fmt.Sprintf("203.0.113.%d", i))
		w := httptest.NewRecorder()
		ht.ServeHTTP(w, r)
		if w.Code != http.StatusOK {
			t.Fatalf("forwarded client %d: %d", i, w.Code)
		}
	}
}

func TestConcurrent(t *testing.T) {
	l := New(Config{PerMinute: 60, Burst: 20, GlobalPerMinute: 1 << 20, MaxClients: 50})
	var wg sync.WaitGroup
	var mu sync.Mutex
	allowed := map[int]int{}
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 2000; i++ {
				ip := netip.AddrFrom4([4]byte{10, 0, byte(i % 200), 1})
				if ok, _ := l.Allow(context.Background(), ip); ok && i%200 == 0 {
					mu.Lock()
					allowed[g]++
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	if l.Clients() > 50 {
		t.Fatalf("%d clients", l.Clients())
	}
}

// TestGuardMarksFailures: an answer that says the client failed (a wrong
// password, an unknown link, a refusal) marks the client; success does
// not. An exempt request is neither counted nor refused.
func TestGuardMarksFailures(t *testing.T) {
	clk := at(1_700_000_000)
	l := New(Config{PerMinute: 600, Burst: 100, GlobalPerMinute: 60, GlobalBurst: 4, Reserve: 2, Now: clk.Now})
	status := http.StatusOK
	h := l.Guard(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(status) }),
		GuardOptions{Exempt: func(r *http.Request) bool { return r.Header.Get("X-Exempt") != "" }})
	do := func(ip string, exempt bool) int {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = ip + ":1234"
		if exempt {
			r.Header.Set("X-Exempt", "1")
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w.Code
	}
	for range 10 {
		if c := do("203.0.113.1", true); c != http.StatusOK {
			t.Fatalf("exempt request: %d", c)
		}
	}
	if c := do("203.0.113.1", false); c != http.StatusOK {
		t.Fatalf("first counted request: %d (exempt ones were counted)", c)
	}
	status = http.StatusUnauthorized
	if c := do("203.0.113.2", false); c != http.StatusUnauthorized {
		t.Fatal(c)
	}
	// 2 global tokens left, the reserve: the failed client is refused, the
	// other one is not.
	status = http.StatusOK
	if c := do("203.0.113.2", false); c != http.StatusTooManyRequests {
		t.Errorf("after a 401: %d, want 429 (the reserve is not for failing clients)", c)
	}
	if c := do("203.0.113.1", false); c != http.StatusOK {
		t.Errorf("client without failures: %d, want 200", c)
	}
}
