package server

import (
	"errors"
	"io"
	"net/http"
	"os"
	"sync"
	"time"
)

// Timeouts bound how long a client may keep a connection busy while
// sending nothing or next to nothing (slow-loris). There is deliberately no
// bound on a whole request: a multi-GB upload or download may take hours as
// long as its bytes keep flowing.
type Timeouts struct {
	// Header bounds the TLS handshake and the request line and headers
	// (over HTTP/2 an incomplete header block is bounded by Idle).
	Header time.Duration
	// Body is the longest Kluis waits for the next bytes of a request body,
	// and the window MinBodyRate is measured over.
	Body time.Duration
	// MinBodyRate is the bytes per second a request body must arrive at,
	// averaged over each Body window of time spent waiting for the client;
	// 0: only the Body gap applies.
	MinBodyRate int64
	// Drain bounds reading what is left of a body the handler did not read
	// (net/http reads up to 256 KiB of it so the connection can be reused).
	Drain time.Duration
	// Idle bounds a kept-alive connection between requests. Keep it longer
	// than a reverse proxy's upstream keep-alive (nginx: 60 s), or the proxy
	// may send a request on a connection Kluis is just closing.
	Idle time.Duration
}

// DefaultTimeouts returns the default limits (docs/security.md explains
// them; kluis serve's --body-timeout and --min-body-rate change two).
func DefaultTimeouts() Timeouts {
	return Timeouts{Header: 10 * time.Second, Body: 30 * time.Second, MinBodyRate: 1000,
		Drain: 5 * time.Second, Idle: 120 * time.Second}
}

// orDefaults fills the zero durations (there is no "no limit").
func (t Timeouts) orDefaults() Timeouts {
	d := DefaultTimeouts()
	if t.Header <= 0 {
		t.Header = d.Header
	}
	if t.Body <= 0 {
		t.Body = d.Body
	}
	if t.MinBodyRate < 0 {
		t.MinBodyRate = 0
	}
	if t.Drain <= 0 {
		t.Drain = d.Drain
	}
	if t.Idle <= 0 {
		t.Idle = d.Idle
	}
	return t
}

// errSlowBody is the error a handler's body read returns when the client
// sent too slowly. It is a timeout (tusd answers it as a read timeout and
// keeps what arrived).
var errSlowBody error = slowBodyError{}

type slowBodyError struct{}

func (slowBodyError) Error() string {
	return "request body: the client sent too slowly (see --body-timeout and --min-body-rate)"
}
func (slowBodyError) Timeout() bool        { return true }
func (slowBodyError) Temporary() bool      { return true }
func (slowBodyError) Is(target error) bool { return target == os.ErrDeadlineExceeded }

// limitBodies puts t's body limits on every request with a body, through
// read deadlines on the connection (http.ResponseController), so a stalled
// read ends however deep in a handler it blocks:
//
//   - before each read of the body the deadline is set to what is left of
//     the current window of t.Body (counting only time spent waiting for the
//     client, not time the handler spends elsewhere, such as committing a
//     segment); a window ends early once MinBodyRate × Body bytes arrived,
//     and the next one starts. tusd sets its own deadline after each read;
//     this one is set again just before the next, so it is the one a
//     blocked read meets;
//   - on HTTP/1, until the handler's first read and again once it returns
//     with the body unread, the deadline is t.Drain away: net/http reads
//     the rest of such a body before it answers or reuses the connection,
//     and a client that announced a body and never sends it must not hold
//     the answer or the connection.
//
// Requests without a body are left alone: net/http is already waiting on
// their connection for the client to go away, and a deadline there would
// cancel a long download.
func (t Timeouts) limitBodies(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
			next.ServeHTTP(w, r)
			return
		}
		rc := http.NewResponseController(w)
		b := &timedBody{body: r.Body, rc: rc, window: t.Body, quota: int64(float64(t.MinBodyRate) * t.Body.Seconds())}
		http1 := r.ProtoMajor == 1
		if http1 {
			rc.SetReadDeadline(time.Now().Add(t.Drain))
		}
		// A shallow copy, as r.WithContext makes: net/http keeps the
		// original body for its own draining.
		r2 := new(http.Request)
		*r2 = *r
		r2.Body = b
		next.ServeHTTP(w, r2)
		if http1 && !b.done() {
			rc.SetReadDeadline(time.Now().Add(t.Drain))
		}
	})
}

// timedBody is a request body whose reads meet the deadlines of
// limitBodies.
type timedBody struct {
	body   io.ReadCloser
	rc     *http.ResponseController
	window time.Duration
	quota  int64 // bytes that end a window early

	mu      sync.Mutex
	reading bool
	closed  bool
	eof     bool
	waited  time.Duration // time spent blocked in reads in this window
	got     int64         // bytes received in this window
}

func (b *timedBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	switch {
	case b.closed:
		b.mu.Unlock()
		return 0, http.ErrBodyReadAfterClose
	case b.eof:
		b.mu.Unlock()
		return 0, io.EOF
	}
	left := b.window - b.waited
	if left <= 0 {
		b.mu.Unlock()
		return 0, errSlowBody
	}
	start := time.Now()
	// Set under the lock that Close takes, so a Close (tusd stopping an
	// upload) either sees this read in flight and interrupts it, or
	// happened before and the read is refused above.
	b.rc.SetReadDeadline(start.Add(left))
	b.reading = true
	b.mu.Unlock()

	n, err := b.body.Read(p)

	b.mu.Lock()
	defer b.mu.Unlock()
	b.reading = false
	b.waited += time.Since(start)
	b.got += int64(n)
	if n > 0 && b.got >= b.quota {
		b.waited, b.got = 0, 0
	}
	switch {
	case err == io.EOF:
		b.eof = true
	case err != nil && errors.Is(err, os.ErrDeadlineExceeded) && !b.closed:
		err = errSlowBody
	}
	return n, err
}

// Close ends the body; a read in flight is interrupted.
func (b *timedBody) Close() error {
	b.mu.Lock()
	b.closed = true
	if b.reading {
		b.rc.SetReadDeadline(time.Now())
	}
	b.mu.Unlock()
	return b.body.Close()
}

// done reports whether the body was read to its end.
func (b *timedBody) done() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.eof
}
