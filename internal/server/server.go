// Package server wires Kluis's HTTP handlers into one http.Handler with the
// middleware every request passes (security headers, panic recovery, an
// access log that never holds a URL), and runs it with graceful shutdown.
package server

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync/atomic"
	"time"

	tusd "github.com/tus/tusd/v2/pkg/handler"

	"github.com/kluis-nl/kluis/internal/api"
	"github.com/kluis-nl/kluis/internal/clientip"
	"github.com/kluis-nl/kluis/internal/metrics"
	"github.com/kluis-nl/kluis/internal/oidc"
	"github.com/kluis-nl/kluis/internal/ratelimit"
	"github.com/kluis-nl/kluis/internal/sender"
	"github.com/kluis-nl/kluis/internal/transfer"
	"github.com/kluis-nl/kluis/internal/web"
)

// Deps are what the handler needs.
type Deps struct {
	Transfers *transfer.Service
	Senders   *sender.Service
	// Mailbox is the development mailbox's handler, or nil when mail goes
	// out over SMTP.
	Mailbox http.Handler
	// Web is the pages for people (start page, receive flow), or nil.
	Web *web.Web
	Log *slog.Logger
	// Limiter limits, per client IP and globally, the routes in
	// rateLimited (those open to anyone that can be used for guessing).
	// Nil: no limit (tests only; kluis serve always sets one).
	Limiter *ratelimit.Limiter
	// TrustedProxies are the reverse proxies whose X-Forwarded-For names
	// the client. Empty: the peer address is the client.
	TrustedProxies []netip.Prefix
	// SecurityTxt fills /.well-known/security.txt; see SecurityTxt.
	SecurityTxt SecurityTxt
	// Metrics, if set, is served at GET /metrics and gives /healthz its
	// details (?details=1); see metricsAccess for who may read them.
	Metrics *metrics.Metrics
	// MetricsToken is the bearer token for /metrics and the /healthz
	// details; empty: loopback clients only.
	MetricsToken string
	// SSO is the organisation's OpenID provider for staff sign-in (the
	// command line's kluis login --sso), or nil; SSORoles maps its groups.
	SSO      *oidc.Provider
	SSORoles oidc.Mapping
	// StaticLog says which successful static-file requests get an
	// access-log line (zero: all).
	StaticLog StaticLog
}

// rateLimited are the routes that anyone may call and that can be used to
// guess (verification codes, access ids, transfer passwords). Besides
// these, every route whose path takes an access id ({access}) is limited
// (see limitedRoute), except a web request that holds a valid download
// session for exactly that link (the recipient reading and downloading).
// Sender requests with a valid session or key and API requests inside a
// download session (no access id) are never limited. A route listed here
// that is not registered fails TestRateLimitedRoutesExist;
// TestEveryAccessRouteLimited walks the route table.
var rateLimited = map[string]bool{
	"POST /api/v1/verify":                true,
	"POST /api/v1/verify/confirm":        true,
	"POST /api/v1/sso/start":             true, // staff sign-in for the command line
	"POST /api/v1/sso/finish":            true,
	"GET /api/v1/links/{access}":         true,
	"POST /api/v1/links/{access}/unlock": true,
	"POST /receive":                      true,
	"GET /r/{access}":                    true,
	"POST /r/{access}/unlock":            true,
	"POST /r/{access}/code":              true, // the SMS code
	// The send page's verification: the same mails and codes as the API's.
	"POST /send/verify":  true,
	"POST /send/confirm": true,
}

// New returns the whole HTTP handler.
func New(d Deps) (http.Handler, error) {
	if d.Transfers == nil || d.Senders == nil || d.Log == nil {
		return nil, errors.New("server: Transfers, Senders and Log are required")
	}
	// mux records every pattern (for the route table test) and wraps the
	// rate-limited routes in the limiter.
	mux := &routeMux{ServeMux: http.NewServeMux(), limiter: d.Limiter, web: d.Web}
	a, err := api.New(d.Transfers, d.Senders, d.Log)
	if err != nil {
		return nil, err
	}
	a.UseSSO(d.SSO, d.SSORoles)
	a.Register(mux)
	if d.Web != nil {
		d.Web.Register(mux)
	}
	mux.HandleFunc("GET /healthz", healthz(d))
	if d.Metrics != nil {
		mux.Handle("GET /metrics", metricsHandler(d.Metrics, d.MetricsToken))
	}
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
		defer cancel()
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if err := d.Transfers.Ready(ctx); err != nil {
			d.Log.Error("not ready", "err", err)
			w.WriteHeader(http.StatusServiceUnavailable)
			w.Write([]byte("not ready\n"))
			return
		}
		w.Write([]byte("ready\n"))
	})
	if d.Mailbox != nil {
		mux.Handle("GET /dev/mailbox", d.Mailbox)
		mux.Handle("GET /dev/mailbox.json", d.Mailbox)
		mux.Handle("GET /dev/mailbox/{file}", d.Mailbox)
	}
	mux.Handle("GET /.well-known/security.txt", d.SecurityTxt.handler(d.Transfers.Config().BaseURL))
	var h http.Handler = mux
	if d.Metrics != nil {
		h = countTraffic(d.Metrics, h)
	}
	// Cookie-authenticated requests must come from our own pages: refuse
	// cross-site state changes (Sec-Fetch-Site, else Origin vs Host).
	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(http.HandlerFunc(crossOriginDenied))
	h = cop.Handler(h)
	var formAction []string
	if d.SSO != nil {
		if o := d.SSO.EndSessionOrigin(); o != "" {
			formAction = append(formAction, o)
		}
	}
	h = securityHeaders(isHTTPS(d.Transfers.Config().BaseURL), formAction, h)
	h = accessLog(d.Log, d.StaticLog, h)
	// Outermost: the client IP (trusted proxies only) for the limiter, the
	// audit log and the pages.
	h = clientip.Middleware(d.TrustedProxies, h)
	return &routed{Handler: h, patterns: mux.patterns}, nil
}

// isHTTPS reports whether the public address (validated by the
// configuration as an absolute http or https URL) is https.
func isHTTPS(baseURL string) bool {
	return len(baseURL) > 8 && strings.EqualFold(baseURL[:8], "https://")
}

// routeMux is a ServeMux that remembers its patterns and puts the limiter
// in front of the rate-limited routes.
type routeMux struct {
	*http.ServeMux
	limiter  *ratelimit.Limiter
	web      *web.Web // nil: no pages
	patterns []string
}

func (m *routeMux) Handle(pattern string, h http.Handler) {
	m.patterns = append(m.patterns, pattern)
	if m.limiter != nil {
		if o, ok := m.limitFor(pattern); ok {
			h = m.limiter.Guard(h, o)
		}
	}
	m.ServeMux.Handle(pattern, noteRoute(pattern, h))
}

// limitedRoute reports whether a route is rate-limited: it is listed in
// rateLimited, or its path takes an access id, which could be guessed.
func limitedRoute(pattern string) bool {
	return rateLimited[pattern] || strings.Contains(pattern, "{access}")
}

// limitFor is how a limited route is guarded. A refused page request gets
// a page in the visitor's language, an API request the JSON error. A page
// that takes an access id and is not in rateLimited lets a request with
// that link's own download session through uncounted.
func (m *routeMux) limitFor(pattern string) (ratelimit.GuardOptions, bool) {
	var o ratelimit.GuardOptions
	if !limitedRoute(pattern) {
		return o, false
	}
	_, path, _ := strings.Cut(pattern, " ")
	if m.web != nil && !strings.HasPrefix(path, "/api/") {
		o.Refuse = m.web.TooManyRequests
		if !rateLimited[pattern] {
			o.Exempt = m.web.HoldsSession
		}
	}
	return o, true
}

func (m *routeMux) HandleFunc(pattern string, h func(http.ResponseWriter, *http.Request)) {
	m.Handle(pattern, http.HandlerFunc(h))
}

// routed is the handler New returns; Routes lists every registered pattern.
type routed struct {
	http.Handler
	patterns []string
}

// Routes returns the patterns registered on the mux, in order.
func (r *routed) Routes() []string { return append([]string(nil), r.patterns...) }

// crossOriginDenied answers a refused cross-origin request in the API's
// error format.
func crossOriginDenied(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusForbidden)
	w.Write([]byte(`{"error":{"code":"forbidden","message":"This request came from another website and was refused."}}` + "\n"))
}

// securityHeaders sets the headers every response carries. Downloads set
// their own stricter CSP (sandbox). HSTS goes on every answer when the
// public address is https (publicTLS), also when a reverse proxy terminates
// TLS and the request reaching Kluis is plain HTTP; browsers ignore it on
// an http page, so it cannot pin a plain development setup.
//
// formAction are origins besides our own that a form may lead to through
// its redirects: the identity provider's end-session endpoint, where the
// logout form of a staff session continues (Chromium applies form-action
// to the whole redirect chain).
func securityHeaders(publicTLS bool, formAction []string, next http.Handler) http.Handler {
	csp := "default-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
	for _, o := range formAction {
		csp += " " + o
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		// Nothing is cached unless a handler says otherwise (static
		// assets may): API answers, transfer pages and downloads hold
		// personal data.
		h.Set("Cache-Control", "no-store")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		h.Set("Content-Security-Policy", csp)
		if publicTLS || r.TLS != nil {
			h.Set("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
		}
		if r.Method == http.MethodTrace {
			w.WriteHeader(http.StatusMethodNotAllowed)
			return
		}
		next.ServeHTTP(w, r)
	})
}

type statusWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
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
	n, err := s.ResponseWriter.Write(p)
	s.bytes += int64(n)
	return n, err
}

func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// accessLog logs method, route pattern (never the path: it may hold an
// access id), status, bytes sent and received, and duration; successful
// static-file requests as static says.
func accessLog(log *slog.Logger, static StaticLog, next http.Handler) http.Handler {
	var staticSeen atomic.Uint64
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		r, route := withRouteSlot(r)
		var in *countingBody
		if r.Body != nil && r.Body != http.NoBody {
			in = &countingBody{ReadCloser: r.Body}
			r.Body = in
		}
		attrs := func(status int) []slog.Attr {
			var got int64
			if in != nil {
				got = in.n.Load()
			}
			return []slog.Attr{slog.String("method", r.Method), slog.String("route", route.pattern), slog.Int("status", status),
				slog.Int64("bytes", sw.bytes), slog.Int64("bytes_in", got),
				// Microseconds as a fraction: at load most answers take
				// less than a millisecond.
				slog.Float64("duration_ms", float64(time.Since(start).Microseconds())/1000)}
		}
		defer func() {
			if v := recover(); v != nil {
				if v != http.ErrAbortHandler {
					log.Error("panic in handler", "route", route.pattern, "panic", v)
				}
				log.LogAttrs(r.Context(), slog.LevelInfo, "request aborted", attrs(sw.status)...)
				panic(http.ErrAbortHandler)
			}
			status := sw.status
			if status == 0 {
				status = http.StatusOK // a handler that wrote nothing
			}
			if route.pattern == staticRoute && status < 400 && !static.keep(&staticSeen) {
				return
			}
			log.LogAttrs(r.Context(), slog.LevelInfo, "request", attrs(status)...)
		}()
		next.ServeHTTP(sw, r)
	})
}

// ServeOptions are the settings of [Serve].
type ServeOptions struct {
	// ShutdownTimeout is how long Serve waits for requests in flight once
	// ctx ends.
	ShutdownTimeout time.Duration
	// Timeouts bound slow clients; zero durations take the defaults.
	Timeouts Timeouts
	Log      *slog.Logger
}

// Serve runs h on ln until ctx ends. Then it stops accepting, cancels the
// requests in flight with tusd's shutdown cause (uploads commit what they
// have and answer 503, so they resume later), waits up to
// o.ShutdownTimeout for them, and returns.
func Serve(ctx context.Context, ln net.Listener, h http.Handler, o ServeOptions) error {
	log, timeout, to := o.Log, o.ShutdownTimeout, o.Timeouts.orDefaults()
	base, cancelBase := context.WithCancelCause(context.Background())
	defer cancelBase(nil)
	srv := &http.Server{
		Handler: to.limitBodies(h),
		// No ReadTimeout or WriteTimeout: they bound the whole request,
		// and multi-GB uploads and downloads take long. Bodies get a
		// deadline per read and a minimum rate instead (limitBodies).
		// ReadHeaderTimeout also bounds the TLS handshake.
		ReadHeaderTimeout: to.Header,
		IdleTimeout:       to.Idle,
		MaxHeaderBytes:    64 << 10,
		BaseContext:       func(net.Listener) context.Context { return base },
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down: no new requests; uploads in flight are saved and can resume")
	shutCtx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- srv.Shutdown(shutCtx) }()
	cancelBase(tusd.ErrServerShutdown)
	err := <-done
	if errors.Is(err, context.DeadlineExceeded) {
		log.Warn("requests did not end in time; closing connections")
		srv.Close()
	}
	if e := <-errc; e != nil && !errors.Is(e, http.ErrServerClosed) {
		return e
	}
	return nil
}
