// Package ratelimit limits how fast clients may call the endpoints that can
// be used to guess (verification codes, link ids, transfer passwords): a
// token bucket per client IP plus one global bucket. It also works out the
// client IP, trusting X-Forwarded-For only from configured proxies.
//
// The per-object lock-out (a recipient's attempts, a verification's
// attempts) lives in the engine; this package only slows guessing down
// across objects and keeps one client from using up the service.
//
// With Config.Shared (several instances on one PostgreSQL database) the
// buckets live in the database instead of in memory, so the instances
// enforce one limit together; the arithmetic is the same (a token bucket,
// kept as GCRA's theoretical arrival time, see store.TakeRateToken).
package ratelimit

import (
	"context"
	"encoding/json"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// ClientIP returns the address of the client that sent r. RemoteAddr is the
// peer; only when the peer is in trusted is X-Forwarded-For read, from the
// right, skipping addresses that are themselves trusted proxies. The first
// untrusted address found is the client. A malformed entry stops the walk:
// the last address known good (a trusted proxy) is returned, so a client can
// never choose its own address. IPv4-mapped IPv6 addresses are unmapped.
// Returns the zero Addr only if RemoteAddr cannot be parsed.
func ClientIP(r *http.Request, trusted []netip.Prefix) netip.Addr {
	ip := parseHostAddr(r.RemoteAddr)
	if !ip.IsValid() || !contains(trusted, ip) {
		return ip
	}
	// All X-Forwarded-For headers form one list, in order.
	var hops []string
	for _, v := range r.Header.Values("X-Forwarded-For") {
		for _, part := range strings.Split(v, ",") {
			hops = append(hops, strings.TrimSpace(part))
		}
	}
	for i := len(hops) - 1; i >= 0; i-- {
		hop := parseHostAddr(hops[i])
		if !hop.IsValid() {
			return ip
		}
		ip = hop
		if !contains(trusted, ip) {
			return ip
		}
	}
	return ip
}

// parseHostAddr parses "addr", "addr:port" or "[v6]:port".
func parseHostAddr(s string) netip.Addr {
	s = strings.TrimSpace(s)
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap()
	}
	if host, _, err := net.SplitHostPort(s); err == nil {
		s = host
	}
	s = strings.TrimSuffix(strings.TrimPrefix(s, "["), "]")
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap()
	}
	return netip.Addr{}
}

func contains(prefixes []netip.Prefix, ip netip.Addr) bool {
	for _, p := range prefixes {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// ParsePrefixes parses a list of CIDR prefixes or single addresses,
// separated by commas or spaces ("10.0.0.0/8, 192.0.2.7, ::1").
func ParsePrefixes(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' }) {
		if strings.Contains(f, "/") {
			p, err := netip.ParsePrefix(f)
			if err != nil {
				return nil, err
			}
			if p.Addr().Is4In6() {
				p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
			}
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(f)
		if err != nil {
			return nil, err
		}
		a = a.Unmap()
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

type ipKey struct{}

// WithIP returns ctx carrying the client IP.
func WithIP(ctx context.Context, ip netip.Addr) context.Context {
	return context.WithValue(ctx, ipKey{}, ip)
}

// IPFromContext returns the client IP that ClientIPMiddleware stored.
func IPFromContext(ctx context.Context) (netip.Addr, bool) {
	ip, ok := ctx.Value(ipKey{}).(netip.Addr)
	return ip, ok && ip.IsValid()
}

// ClientIPMiddleware stores ClientIP(r, trusted) in every request's context
// (see IPFromContext), for the limiter and the audit log.
func ClientIPMiddleware(trusted []netip.Prefix, next http.Handler) http.Handler {
	trusted = append([]netip.Prefix(nil), trusted...)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(w, r.WithContext(WithIP(r.Context(), ClientIP(r, trusted))))
	})
}

// Config sets the limits. Zero fields take the defaults.
type Config struct {
	// PerMinute is the sustained rate per client IP (default 60); Burst is
	// how many requests an idle client may send at once (default 20, at
	// most PerMinute).
	PerMinute int
	Burst     int
	// GlobalPerMinute is the sustained rate over all clients together
	// (default 600); GlobalBurst defaults to GlobalPerMinute/5.
	GlobalPerMinute int
	GlobalBurst     int
	// MaxClients bounds how many client buckets are kept (default 100,000,
	// about 10 MB). Buckets idle long enough to be full again are dropped
	// first (that loses nothing); if the table is still full, arbitrary
	// buckets are dropped.
	MaxClients int
	// Trusted lists the reverse proxies whose X-Forwarded-For is believed.
	// Used only when the request's context has no IP (ClientIPMiddleware).
	Trusted []netip.Prefix
	// Now is the clock (tests); default time.Now.
	Now func() time.Time
	// Shared, if set, keeps the buckets in a database that every instance
	// uses (PostgreSQL), instead of in this process's memory. If it fails,
	// the in-memory buckets decide (and Log hears of it), so a database
	// hiccup neither opens the gates nor blocks every client.
	Shared Shared
	// KeyHash, if set, names a client's shared bucket by a keyed hash of
	// its address (secret.Keyring.MAC), so the shared table holds no IP
	// addresses. Every instance must use the same key.
	KeyHash func(ip string) string
	// Log receives shared-bucket failures; default slog.Default().
	Log *slog.Logger
}

// Shared is a store of token buckets shared by instances (store.DB).
type Shared interface {
	// TakeRateToken takes a token from key's bucket of burst tokens that
	// refills one per interval, or returns false and the wait.
	TakeRateToken(ctx context.Context, key string, now time.Time, interval time.Duration, burst int) (bool, time.Duration, error)
	// ReturnRateToken gives back a token taken from key.
	ReturnRateToken(ctx context.Context, key string, interval time.Duration) error
	// PruneRateBuckets deletes buckets that are full again at now.
	PruneRateBuckets(ctx context.Context, now time.Time) (int64, error)
}

// Defaults.
const (
	DefaultPerMinute       = 60
	DefaultBurst           = 20
	DefaultGlobalPerMinute = 600
	DefaultMaxClients      = 100_000
)

// Limiter is a per-IP and global rate limiter. It is safe for concurrent
// use.
type Limiter struct {
	cfg    Config
	every  rate.Limit
	global *rate.Limiter

	mu        sync.Mutex
	clients   map[netip.Addr]*client
	lastPrune time.Time
	lastError time.Time
}

type client struct {
	lim  *rate.Limiter
	last time.Time
}

// New returns a limiter.
func New(cfg Config) *Limiter {
	if cfg.PerMinute <= 0 {
		cfg.PerMinute = DefaultPerMinute
	}
	if cfg.Burst <= 0 {
		cfg.Burst = DefaultBurst
	}
	cfg.Burst = min(cfg.Burst, cfg.PerMinute)
	if cfg.GlobalPerMinute <= 0 {
		cfg.GlobalPerMinute = DefaultGlobalPerMinute
	}
	if cfg.GlobalBurst <= 0 {
		cfg.GlobalBurst = max(cfg.GlobalPerMinute/5, 1)
	}
	cfg.GlobalBurst = min(cfg.GlobalBurst, cfg.GlobalPerMinute)
	if cfg.MaxClients <= 0 {
		cfg.MaxClients = DefaultMaxClients
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	cfg.Trusted = append([]netip.Prefix(nil), cfg.Trusted...)
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	return &Limiter{
		cfg:     cfg,
		every:   rate.Limit(float64(cfg.PerMinute) / 60),
		global:  rate.NewLimiter(rate.Limit(float64(cfg.GlobalPerMinute)/60), cfg.GlobalBurst),
		clients: map[netip.Addr]*client{},
	}
}

// Config returns the effective configuration.
func (l *Limiter) Config() Config { return l.cfg }

// key groups addresses that one client controls: an IPv6 client usually
// has a whole /64.
func key(ip netip.Addr) netip.Addr {
	ip = ip.Unmap()
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		return p.Addr()
	}
	return ip
}

// Allow takes one token for ip and one from the global bucket. When either
// is empty nothing is taken and it returns false with how long to wait.
func (l *Limiter) Allow(ip netip.Addr) (bool, time.Duration) {
	now := l.cfg.Now()
	k := key(ip)
	if l.cfg.Shared != nil {
		ok, wait, err := l.allowShared(k, now)
		if err == nil {
			return ok, wait
		}
		l.mu.Lock()
		if now.Sub(l.lastError) > time.Minute {
			l.lastError = now
			l.cfg.Log.Error("shared rate limit failed; this instance's own limits apply", "err", err)
		}
		l.mu.Unlock()
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	c := l.clients[k]
	if c == nil {
		if len(l.clients) >= l.cfg.MaxClients {
			l.evict(now)
		}
		c = &client{lim: rate.NewLimiter(l.every, l.cfg.Burst)}
		l.clients[k] = c
	}
	c.last = now
	// Check both before taking from either: a refused request costs
	// nothing (no reservations to cancel, whose float arithmetic drifts).
	if wait := waitFor(c.lim, now); wait > 0 {
		return false, wait
	}
	if wait := waitFor(l.global, now); wait > 0 {
		return false, wait
	}
	c.lim.AllowN(now, 1)
	l.global.AllowN(now, 1)
	return true, 0
}

// allowShared is Allow on the shared buckets: the client's, then the
// global one; a refusal by the global bucket gives the client's token back.
func (l *Limiter) allowShared(k netip.Addr, now time.Time) (bool, time.Duration, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	l.mu.Lock()
	prune := now.Sub(l.lastPrune) >= time.Minute
	if prune {
		l.lastPrune = now
	}
	l.mu.Unlock()
	if prune {
		if _, err := l.cfg.Shared.PruneRateBuckets(ctx, now); err != nil {
			return false, 0, err
		}
	}
	ipKey := "ip:" + k.String()
	if l.cfg.KeyHash != nil {
		ipKey = "iph:" + l.cfg.KeyHash(k.String())
	}
	ipEvery, ipOn := interval(l.cfg.PerMinute)
	if ipOn {
		ok, wait, err := l.cfg.Shared.TakeRateToken(ctx, ipKey, now, ipEvery, l.cfg.Burst)
		if err != nil || !ok {
			return false, wait, err
		}
	}
	if gEvery, on := interval(l.cfg.GlobalPerMinute); on {
		ok, wait, err := l.cfg.Shared.TakeRateToken(ctx, "global", now, gEvery, l.cfg.GlobalBurst)
		if err != nil || !ok {
			if ipOn {
				if rerr := l.cfg.Shared.ReturnRateToken(ctx, ipKey, ipEvery); rerr != nil && err == nil {
					err = rerr
				}
			}
			return false, wait, err
		}
	}
	return true, 0, nil
}

// interval is the time between two tokens at perMinute; a limit too high
// to count in microseconds is off.
func interval(perMinute int) (time.Duration, bool) {
	d := time.Minute / time.Duration(perMinute)
	return d, d >= time.Microsecond
}

// waitFor is how long until lim has a whole token; 0 if it has one now.
func waitFor(lim *rate.Limiter, now time.Time) time.Duration {
	tok := lim.TokensAt(now)
	if tok >= 1 {
		return 0
	}
	return time.Duration((1 - tok) / float64(lim.Limit()) * float64(time.Second))
}

// evict makes room in the client table; l.mu is held.
func (l *Limiter) evict(now time.Time) {
	// A bucket refills completely in Burst/rate; one idle at least that
	// long is the same as a new one.
	full := time.Duration(float64(l.cfg.Burst) / float64(l.every) * float64(time.Second))
	for k, c := range l.clients {
		if now.Sub(c.last) >= full {
			delete(l.clients, k)
		}
	}
	// Still full (many active clients): drop arbitrary ones down to 90%.
	target := l.cfg.MaxClients * 9 / 10
	for k := range l.clients {
		if len(l.clients) <= target {
			break
		}
		delete(l.clients, k)
	}
}

// Clients returns how many client buckets are kept (tests, metrics).
func (l *Limiter) Clients() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.clients)
}

// Middleware refuses requests over the limit with 429 Too Many Requests, a
// Retry-After header and the API's JSON error body. The client IP comes
// from the request context (ClientIPMiddleware), else from ClientIP with
// Config.Trusted.
func (l *Limiter) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ip, ok := IPFromContext(r.Context())
		if !ok {
			ip = ClientIP(r, l.cfg.Trusted)
			r = r.WithContext(WithIP(r.Context(), ip))
		}
		if ok, wait := l.Allow(ip); !ok {
			TooMany(w, wait)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// TooMany writes the 429 answer.
func TooMany(w http.ResponseWriter, wait time.Duration) {
	secs := int(math.Ceil(wait.Seconds()))
	if secs < 1 {
		secs = 1
	}
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusTooManyRequests)
	unit := "seconds"
	if secs == 1 {
		unit = "second"
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]string{
		"code":    "rate_limited",
		"message": "Too many requests. Try again in " + strconv.Itoa(secs) + " " + unit + ".",
	}})
}
