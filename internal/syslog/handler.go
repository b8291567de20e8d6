package syslog

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"
)

// queueLen bounds the application log lines waiting for the receiver.
const queueLen = 4096

// Handler is a slog.Handler that sends each record, as the JSON line
// slog.JSONHandler writes, to a syslog receiver. Handle never waits for
// the network: lines wait in a bounded queue that Run empties, and a line
// that finds the queue full is dropped and counted. Combine it with the
// console handler (slog.NewMultiHandler) so nothing is lost locally.
type Handler struct {
	slog.Handler
	q *queue
}

type queue struct {
	w       *Writer
	lines   chan Message
	dropped atomic.Int64
}

// NewHandler returns a handler sending records at or above level through
// w. Call Run to send.
func NewHandler(w *Writer, level slog.Leveler) *Handler {
	q := &queue{w: w, lines: make(chan Message, queueLen)}
	return &Handler{Handler: slog.NewJSONHandler(q, &slog.HandlerOptions{Level: level}), q: q}
}

// WithAttrs and WithGroup keep the queue.
func (h *Handler) WithAttrs(as []slog.Attr) slog.Handler {
	return &Handler{Handler: h.Handler.WithAttrs(as), q: h.q}
}

func (h *Handler) WithGroup(name string) slog.Handler {
	return &Handler{Handler: h.Handler.WithGroup(name), q: h.q}
}

// Dropped is how many lines were dropped since the start.
func (h *Handler) Dropped() int64 { return h.q.dropped.Load() }

// Write receives one JSON line from slog.JSONHandler (it writes each
// record with one call).
func (q *queue) Write(p []byte) (int, error) {
	m := Message{Facility: q.w.facility, Severity: severity(p), Time: time.Now(), MsgID: "log", Body: bytes.Clone(p)}
	select {
	case q.lines <- m:
	default:
		q.dropped.Add(1)
	}
	return len(p), nil
}

// severity reads the "level" JSONHandler writes (DEBUG, INFO, WARN, ERROR,
// possibly with an offset such as INFO+2).
func severity(line []byte) Severity {
	_, after, ok := bytes.Cut(line, []byte(`"level":"`))
	if !ok {
		return Info
	}
	switch {
	case bytes.HasPrefix(after, []byte("ERROR")):
		return Error
	case bytes.HasPrefix(after, []byte("WARN")):
		return Warning
	case bytes.HasPrefix(after, []byte("DEBUG")):
		return Debug
	}
	return Info
}

// Run sends queued lines until ctx ends, then tries for up to a second
// to send what is left. While the receiver cannot be reached it retries
// with a growing pause (lines keep queueing, and are dropped when the
// queue is full); once it is back, a warning says how many were dropped.
func (h *Handler) Run(ctx context.Context) {
	q := h.q
	// Sends are bounded by the writer's timeout, not by ctx: a line taken
	// from the queue when ctx ends still goes out in the flush.
	send := context.WithoutCancel(ctx)
	var reported int64
	pause := time.Second
	for {
		var m Message
		select {
		case m = <-q.lines:
		case <-ctx.Done():
			h.flush(nil)
			return
		}
		for {
			err := q.w.Send(send, m)
			if err == nil {
				pause = time.Second
				break
			}
			select {
			case <-ctx.Done():
				h.flush(&m)
				return
			case <-time.After(pause):
			}
			pause = min(2*pause, 30*time.Second)
		}
		if d := q.dropped.Load(); d > reported {
			body := fmt.Appendf(nil, `{"time":%q,"level":"WARN","msg":"syslog: log lines dropped while the receiver could not keep up or be reached","dropped":%d}`,
				time.Now().UTC().Format(time.RFC3339Nano), d-reported)
			if q.w.Send(send, Message{Facility: q.w.facility, Severity: Warning, MsgID: "log", Body: body}) == nil {
				reported = d
			}
		}
	}
}

// flush sends pending (if any) and what is queued, giving up after a
// second.
func (h *Handler) flush(pending *Message) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if pending != nil && h.q.w.Send(ctx, *pending) != nil {
		return
	}
	for {
		select {
		case m := <-h.q.lines:
			if h.q.w.Send(ctx, m) != nil {
				return
			}
		default:
			return
		}
	}
}
