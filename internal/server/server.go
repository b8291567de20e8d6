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
	"time"

	tusd "github.com/tus/tusd/v2/pkg/handler"

	"github.com/kluis-nl/kluis/internal/api"
	"github.com/kluis-nl/kluis/internal/sender"
	"github.com/kluis-nl/kluis/internal/transfer"
)

// Deps are what the handler needs.
type Deps struct {
	Transfers *transfer.Service
	Senders   *sender.Service
	// Mailbox is the development mailbox's handler, or nil when mail goes
	// out over SMTP.
	Mailbox http.Handler
	Log     *slog.Logger
}

// New returns the whole HTTP handler.
func New(d Deps) (http.Handler, error) {
	if d.Transfers == nil || d.Senders == nil || d.Log == nil {
		return nil, errors.New("server: Transfers, Senders and Log are required")
	}
	mux := http.NewServeMux()
	a, err := api.New(d.Transfers, d.Senders, d.Log)
	if err != nil {
		return nil, err
	}
	a.Register(mux)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write([]byte("ok\n"))
	})
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
	var h http.Handler = mux
	// Cookie-authenticated requests must come from our own pages: refuse
	// cross-site state changes (Sec-Fetch-Site, else Origin vs Host).
	h = http.NewCrossOriginProtection().Handler(h)
	h = securityHeaders(h)
	h = accessLog(d.Log, h)
	return h, nil
}

// securityHeaders sets the headers every response carries. Downloads set
// their own stricter CSP (sandbox).
func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		h.Set("Content-Security-Policy", "default-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'")
		if r.TLS != nil {
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
// access id), status, size and duration.
func accessLog(log *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		defer func() {
			if v := recover(); v != nil {
				if v != http.ErrAbortHandler {
					log.Error("panic in handler", "route", r.Pattern, "panic", v)
				}
				log.Info("request aborted", "method", r.Method, "route", r.Pattern, "duration_ms", time.Since(start).Milliseconds())
				panic(http.ErrAbortHandler)
			}
			log.Info("request", "method", r.Method, "route", r.Pattern, "status", sw.status, "bytes", sw.bytes, "duration_ms", time.Since(start).Milliseconds())
		}()
		next.ServeHTTP(sw, r)
	})
}

// Serve runs h on ln until ctx ends. Then it stops accepting, cancels the
// requests in flight with tusd's shutdown cause (uploads commit what they
// have and answer 503, so they resume later), waits up to timeout for them,
// and returns.
func Serve(ctx context.Context, ln net.Listener, h http.Handler, timeout time.Duration, log *slog.Logger) error {
	base, cancelBase := context.WithCancelCause(context.Background())
	defer cancelBase(nil)
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
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
