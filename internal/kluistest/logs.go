package kluistest

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
)

// Logs is a slog.Handler that keeps every record, at every level, for tests
// to search: for a secret that must never be logged (the canary tests), or
// for a message that must be. Bytes gives the records as the JSON lines
// kluis serve writes. It is safe for concurrent use.
type Logs struct {
	s    *logState
	json slog.Handler // writes into s.buf; carries WithAttrs and WithGroup
	with []slog.Attr  // attributes added with WithAttrs, for Records
}

type logState struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	records []slog.Record
}

// NewLogs returns an empty log.
func NewLogs() *Logs {
	s := &logState{}
	return &Logs{s: s, json: slog.NewJSONHandler(lockedWriter{s}, &slog.HandlerOptions{Level: slog.LevelDebug})}
}

// Logger returns a logger that writes to l.
func (l *Logs) Logger() *slog.Logger { return slog.New(l) }

// lockedWriter appends to the buffer under the state's lock; the JSON
// handler writes one whole line per call.
type lockedWriter struct{ s *logState }

func (w lockedWriter) Write(p []byte) (int, error) {
	w.s.mu.Lock()
	defer w.s.mu.Unlock()
	return w.s.buf.Write(p)
}

// Enabled reports true: tests see debug records too.
func (l *Logs) Enabled(context.Context, slog.Level) bool { return true }

// Handle keeps r.
func (l *Logs) Handle(ctx context.Context, r slog.Record) error {
	c := r.Clone()
	c.AddAttrs(l.with...)
	l.s.mu.Lock()
	l.s.records = append(l.s.records, c)
	l.s.mu.Unlock()
	return l.json.Handle(ctx, r)
}

// WithAttrs returns a handler that adds attrs to every record.
func (l *Logs) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &Logs{s: l.s, json: l.json.WithAttrs(attrs), with: append(append([]slog.Attr(nil), l.with...), attrs...)}
}

// WithGroup returns a handler that puts later attributes in a group (in
// Bytes; Records keeps them ungrouped).
func (l *Logs) WithGroup(name string) slog.Handler {
	return &Logs{s: l.s, json: l.json.WithGroup(name), with: l.with}
}

// Bytes returns everything logged so far, one JSON object per line.
func (l *Logs) Bytes() []byte {
	l.s.mu.Lock()
	defer l.s.mu.Unlock()
	return bytes.Clone(l.s.buf.Bytes())
}

// String is Bytes as a string.
func (l *Logs) String() string { return string(l.Bytes()) }

// Records returns the records logged so far, in order.
func (l *Logs) Records() []slog.Record {
	l.s.mu.Lock()
	defer l.s.mu.Unlock()
	out := make([]slog.Record, len(l.s.records))
	for i, r := range l.s.records {
		out[i] = r.Clone()
	}
	return out
}

// Count returns how many records have the message msg.
func (l *Logs) Count(msg string) int {
	n := 0
	for _, r := range l.Records() {
		if r.Message == msg {
			n++
		}
	}
	return n
}

// Contains reports whether s occurs anywhere in the log (messages,
// attribute names and values, as JSON).
func (l *Logs) Contains(s string) bool { return strings.Contains(l.String(), s) }
