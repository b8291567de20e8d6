// Package ratelimit limits how fast clients may call the endpoints that can
// be used to guess (verification codes, link ids, transfer passwords): a
// token bucket per client IP plus one global bucket.
//
// The per-object lock-out (a recipient's attempts, a verification's
// attempts) lives in the engine; this package only slows guessing down
// across objects and keeps one client from using up the service. The
// client's address comes from package clientip.
//
// # Fairness
//
// A flood from some clients must not deny service to the others. So a
// client's own bucket is checked first (a client over its limit never
// touches the global bucket); the global ceiling is at least 20 times one
// client's (Config validation in kluis serve; the defaults are 60 and
// 1,200 a minute); and part of the global bucket (Config.Reserve, a
// quarter by default) is kept for clients that have not failed lately: a
// client whose request was answered with a failure (401, 404, 422, 423 or
// 429: a wrong password or code, an unknown link, a lock-out, a refusal)
// may only take from the global bucket while more than the reserve is
// left, for Config.FailMemory (an hour) after its last failure. Clients
// that have never failed are thus served before the others.
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
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/kluis-nl/kluis/internal/clientip"
)

// Config sets the limits. Zero fields take the defaults.
type Config struct {
	// PerMinute is the sustained rate per client IP (default 60); Burst is
	// how many requests an idle client may send at once (default 20, at
	// most PerMinute).
	PerMinute int
	Burst     int
	// GlobalPerMinute is the sustained rate over all clients together
	// (default 1,200, 20 times PerMinute's default); GlobalBurst defaults
	// to 20 times Burst (at most GlobalPerMinute).
	GlobalPerMinute int
	GlobalBurst     int
	// Reserve is how many of the global bucket's tokens only clients
	// without a recent failure may take (default GlobalBurst/4).
	Reserve int
	// FailMemory is how long a failed request marks its client
	// (default an hour).
	FailMemory time.Duration
	// MaxClients bounds how many client buckets are kept (default 100,000,
	// about 10 MB). Buckets idle long enough to be full again are dropped
	// first (that loses nothing); if the table is still full, arbitrary
	// buckets are dropped.
	MaxClients int
	// Trusted lists the reverse proxies whose X-Forwarded-For is believed.
	// Used only when the request's context has no address
	// (clientip.Middleware).
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
	// MarkRateKey records key until a time (kept at least that long).
	MarkRateKey(ctx context.Context, key string, until time.Time) error
	// RateKeyUntil returns until when key was marked (the zero time if
	// it was not).
	RateKeyUntil(ctx context.Context, key string) (time.Time, error)
}

// Defaults.
const (
	DefaultPerMinute       = 60
	DefaultBurst           = 20
	DefaultGlobalPerMinute = 20 * DefaultPerMinute
	DefaultMaxClients      = 100_000
	DefaultFailMemory      = time.Hour
	// GlobalFactor is how many clients' worth the global limit must hold
	// at least, so a few clients cannot use it up (kluis serve refuses a
	// smaller --rate-limit-global).
	GlobalFactor = 20
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
	lim        *rate.Limiter
	last       time.Time
	failedTill time.Time // marked as failing until then
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
		cfg.GlobalBurst = GlobalFactor * cfg.Burst
	}
	cfg.GlobalBurst = min(cfg.GlobalBurst, cfg.GlobalPerMinute)
	if cfg.Reserve <= 0 {
		cfg.Reserve = cfg.GlobalBurst / 4
	}
	cfg.Reserve = min(cfg.Reserve, cfg.GlobalBurst-1)
	if cfg.FailMemory <= 0 {
		cfg.FailMemory = DefaultFailMemory
	}
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
// is empty nothing is taken and it returns false with how long to wait. A
// client marked as failing (Failed) gets a global token only while more
// than Config.Reserve are left.
//
// ctx is the request's. A request that has ended, or ends while the shared
// buckets are asked (another instance may hold a bucket's row), is refused
// with no wait: nobody is left to answer, so it is neither let through by
// this instance's own buckets nor counted as a database failure.
func (l *Limiter) Allow(ctx context.Context, ip netip.Addr) (bool, time.Duration) {
	if ctx.Err() != nil {
		return false, 0
	}
	now := l.cfg.Now()
	k := key(ip)
	if l.cfg.Shared != nil {
		ok, wait, err := l.allowShared(ctx, k, now)
		if err == nil {
			return ok, wait
		}
		if ctx.Err() != nil {
			return false, 0
		}
		l.sharedFailed(now, err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	c := l.client(k, now)
	// Check both before taking from either: a refused request costs
	// nothing (no reservations to cancel, whose float arithmetic drifts).
	if wait := waitFor(c.lim, now, 0); wait > 0 {
		return false, wait
	}
	reserve := 0
	if now.Before(c.failedTill) {
		reserve = l.cfg.Reserve
	}
	if wait := waitFor(l.global, now, reserve); wait > 0 {
		return false, wait
	}
	c.lim.AllowN(now, 1)
	l.global.AllowN(now, 1)
	return true, 0
}

// Failed marks ip's client as failing for Config.FailMemory: its requests
// no longer get the global bucket's reserve. The shared mark is written
// even when ctx (the request's) has ended: a client must not escape the
// mark by hanging up as soon as it has its answer.
func (l *Limiter) Failed(ctx context.Context, ip netip.Addr) {
	now := l.cfg.Now()
	k := key(ip)
	until := now.Add(l.cfg.FailMemory)
	l.mu.Lock()
	c := l.client(k, now)
	// The shared mark is refreshed at most every half FailMemory from this
	// instance, so a flood of refused requests costs no write each.
	fresh := now.Before(c.failedTill.Add(-l.cfg.FailMemory / 2))
	c.failedTill = until
	l.mu.Unlock()
	if l.cfg.Shared != nil && !fresh {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), sharedTimeout)
		err := l.cfg.Shared.MarkRateKey(ctx, l.sharedKey("fail", k), until)
		cancel()
		if err != nil {
			l.sharedFailed(now, err)
		}
	}
}

// client returns k's in-memory bucket, made if needed; l.mu is held.
func (l *Limiter) client(k netip.Addr, now time.Time) *client {
	c := l.clients[k]
	if c == nil {
		if len(l.clients) >= l.cfg.MaxClients {
			l.evict(now)
		}
		c = &client{lim: rate.NewLimiter(l.every, l.cfg.Burst)}
		l.clients[k] = c
	}
	c.last = now
	return c
}

// sharedFailed logs a failure of the shared buckets, at most once a
// minute.
func (l *Limiter) sharedFailed(now time.Time, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.lastError) > time.Minute {
		l.lastError = now
		l.cfg.Log.Error("shared rate limit failed; this instance's own limits apply", "err", err)
	}
}

// sharedKey names a client's row in the shared table: kind ("ip" for its
// bucket, "fail" for its failure mark) and its address, or with KeyHash a
// keyed hash of it ("iph", "failh").
func (l *Limiter) sharedKey(kind string, k netip.Addr) string {
	if l.cfg.KeyHash != nil {
		return kind + "h:" + l.cfg.KeyHash(k.String())
	}
	return kind + ":" + k.String()
}

// sharedTimeout bounds each visit to the shared buckets: a slower database
// counts as failed, and this instance's own buckets decide.
const sharedTimeout = 2 * time.Second

// allowShared is Allow on the shared buckets: the client's, then the
// global one; a refusal by the global bucket, or a request that ended
// before the global bucket answered, gives the client's token back.
func (l *Limiter) allowShared(ctx context.Context, k netip.Addr, now time.Time) (bool, time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, sharedTimeout)
	defer cancel()
	// Giving a token back must not fail because the request ended.
	giveBack := func(key string, every time.Duration) error {
		gctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), sharedTimeout)
		defer cancel()
		return l.cfg.Shared.ReturnRateToken(gctx, key, every)
	}
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
	ipKey := l.sharedKey("ip", k)
	ipEvery, ipOn := interval(l.cfg.PerMinute)
	if ipOn {
		ok, wait, err := l.cfg.Shared.TakeRateToken(ctx, ipKey, now, ipEvery, l.cfg.Burst)
		if err != nil || !ok {
			return false, wait, err
		}
	}
	if gEvery, on := interval(l.cfg.GlobalPerMinute); on {
		// A failing client sees a global bucket smaller by the reserve:
		// it gets a token only while more than the reserve is left.
		burst := l.cfg.GlobalBurst
		until, err := l.cfg.Shared.RateKeyUntil(ctx, l.sharedKey("fail", k))
		if err != nil {
			if ipOn {
				_ = giveBack(ipKey, ipEvery)
			}
			return false, 0, err
		}
		if now.Before(until) {
			burst -= l.cfg.Reserve
		}
		ok, wait, err := l.cfg.Shared.TakeRateToken(ctx, "global", now, gEvery, burst)
		if err != nil || !ok {
			if ipOn {
				if rerr := giveBack(ipKey, ipEvery); rerr != nil && err == nil {
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

// waitFor is how long until lim has a whole token more than reserve; 0 if
// it has now.
func waitFor(lim *rate.Limiter, now time.Time, reserve int) time.Duration {
	need := 1 + float64(reserve)
	tok := lim.TokensAt(now)
	if tok >= need {
		return 0
	}
	return time.Duration((need - tok) / float64(lim.Limit()) * float64(time.Second))
}

// evict makes room in the client table; l.mu is held.
func (l *Limiter) evict(now time.Time) {
	// A bucket refills completely in Burst/rate; one idle at least that
	// long is the same as a new one.
	full := time.Duration(float64(l.cfg.Burst) / float64(l.every) * float64(time.Second))
	for k, c := range l.clients {
		if now.Sub(c.last) >= full && !now.Before(c.failedTill) {
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
// Retry-After header and the API's JSON error body: Guard with no options.
func (l *Limiter) Middleware(next http.Handler) http.Handler {
	return l.Guard(next, GuardOptions{})
}

// GuardOptions adapt Guard to a route.
type GuardOptions struct {
	// Refuse writes the 429 answer, with Retry-After; nil: TooMany (the
	// API's JSON).
	Refuse func(w http.ResponseWriter, r *http.Request, wait time.Duration)
	// Exempt, if set, lets a request through without counting it when it
	// returns true. It runs before the limit, so it must cost little and
	// must not tell a caller anything it could use to guess (for example:
	// the request holds a valid session for exactly this object).
	Exempt func(r *http.Request) bool
}

// Guard limits next: requests over the limit are refused (o.Refuse); an
// answer that says the client failed (see failing) marks it (Failed). The
// client IP comes from the request context (clientip.Middleware), else from
// clientip.Of with Config.Trusted.
func (l *Limiter) Guard(next http.Handler, o GuardOptions) http.Handler {
	refuse := o.Refuse
	if refuse == nil {
		refuse = func(w http.ResponseWriter, _ *http.Request, wait time.Duration) { TooMany(w, wait) }
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ip, ok := clientip.FromContext(r.Context())
		if !ok {
			ip = clientip.Of(r, l.cfg.Trusted)
			r = r.WithContext(clientip.NewContext(r.Context(), ip))
		}
		if o.Exempt != nil && o.Exempt(r) {
			next.ServeHTTP(w, r)
			return
		}
		if ok, wait := l.Allow(r.Context(), ip); !ok {
			if r.Context().Err() != nil {
				return // the client hung up: nobody to answer or to mark
			}
			l.Failed(r.Context(), ip)
			refuse(w, r, wait)
			return
		}
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r)
		if failing(sw.status) {
			l.Failed(r.Context(), ip)
		}
	})
}

// failing reports whether an answer means the client failed: a wrong
// password or code (401, or 422 from a web form), an unknown link (404), a
// lock-out (423) or a refusal (429).
func failing(status int) bool {
	switch status {
	case http.StatusUnauthorized, http.StatusNotFound, http.StatusUnprocessableEntity, http.StatusLocked, http.StatusTooManyRequests:
		return true
	}
	return false
}

// statusWriter notes the status of an answer.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (s *statusWriter) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(p []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(p)
}

// Unwrap lets http.ResponseController reach the connection (flushes and
// deadlines of downloads).
func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// RetryAfter is the Retry-After value (whole seconds, at least 1) for wait.
func RetryAfter(wait time.Duration) int {
	return max(int(math.Ceil(wait.Seconds())), 1)
}

// TooMany writes the 429 answer.
func TooMany(w http.ResponseWriter, wait time.Duration) {
	secs := RetryAfter(wait)
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
