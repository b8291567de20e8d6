package server

import (
	"context"
	"io"
	"net/http"
	"sync/atomic"
)

// The access log at load (issue 21 item 6): one line per request with the
// route pattern, status, bytes each way and duration, and a setting for
// the lines of static files, which a busy installation serves far more
// often than anything else and which rarely tell anything.

// StaticLog says which successful static-file requests (GET
// /static/{sum}/{name...} answered below 400) get an access-log line:
// 0 every one, a negative value none, N > 1 one in N (--log-static).
// Failed ones are always logged.
type StaticLog int

// staticRoute is the pattern of the static files.
const staticRoute = "GET /static/{sum}/{name...}"

// keep reports whether this successful static-file request gets a line;
// seen counts them.
func (s StaticLog) keep(seen *atomic.Uint64) bool {
	switch {
	case s == 0:
		return true
	case s < 0:
		return false
	}
	return seen.Add(1)%uint64(s) == 1%uint64(s)
}

// routeSlot carries the matched route pattern from the mux back out to the
// access log: a middleware in between may replace the request (WithContext),
// and then the mux sets Pattern on a copy the log never sees.
type routeSlot struct{ pattern string }

type routeSlotKey struct{}

func withRouteSlot(r *http.Request) (*http.Request, *routeSlot) {
	s := &routeSlot{}
	return r.WithContext(context.WithValue(r.Context(), routeSlotKey{}, s)), s
}

// noteRoute wraps a route's handler so that it records its pattern.
func noteRoute(pattern string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s, ok := r.Context().Value(routeSlotKey{}).(*routeSlot); ok {
			s.pattern = pattern
		}
		h.ServeHTTP(w, r)
	})
}

// countingBody counts the bytes of a request body the handlers read.
type countingBody struct {
	io.ReadCloser
	n atomic.Int64
}

func (c *countingBody) Read(p []byte) (int, error) {
	n, err := c.ReadCloser.Read(p)
	c.n.Add(int64(n))
	return n, err
}
