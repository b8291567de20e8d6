package kluistest_test

import (
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kluis-nl/kluis/internal/kluistest"
)

func TestClock(t *testing.T) {
	t.Parallel()
	c := kluistest.NewClock()
	if d := time.Since(c.Now()); d < 0 || d > time.Minute || c.Now().Location() != time.UTC || c.Now().Nanosecond()%int(time.Millisecond) != 0 {
		t.Fatalf("NewClock: %v", c.Now())
	}
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	c.Set(at)
	c.Advance(90 * time.Minute)
	if got, want := c.Now(), at.Add(90*time.Minute); !got.Equal(want) {
		t.Errorf("Now = %v, want %v", got, want)
	}
}

// TestLogs: every record is kept, at every level and from many goroutines,
// as a record (with the attributes of Logger.With) and as one JSON line.
func TestLogs(t *testing.T) {
	t.Parallel()
	l := kluistest.NewLogs()
	log := l.Logger()
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() { log.Debug("debug line", "i", i) })
	}
	wg.Wait()
	log.With("transfer", "t1").WithGroup("g").Error("failed", "err", "boom\r\nforged")
	if n := l.Count("debug line"); n != 20 {
		t.Errorf("%d debug records, want 20", n)
	}
	recs := l.Records()
	last := recs[len(recs)-1]
	if last.Level != slog.LevelError || last.Message != "failed" {
		t.Fatalf("last record %v %q", last.Level, last.Message)
	}
	attrs := map[string]string{}
	last.Attrs(func(a slog.Attr) bool { attrs[a.Key] = a.Value.String(); return true })
	if attrs["transfer"] != "t1" || attrs["err"] != "boom\r\nforged" {
		t.Errorf("attributes %v", attrs)
	}
	lines := strings.Split(strings.TrimSpace(l.String()), "\n")
	if len(lines) != 21 {
		t.Fatalf("%d JSON lines, want 21:\n%s", len(lines), l)
	}
	var v struct {
		Level    string
		Msg      string
		Transfer string
		G        struct{ Err string }
	}
	if err := json.Unmarshal([]byte(lines[20]), &v); err != nil || v.Level != "ERROR" || v.Transfer != "t1" || v.G.Err != "boom\r\nforged" {
		t.Errorf("JSON line %s: %+v %v", lines[20], v, err)
	}
	if !l.Contains(`"msg":"failed"`) || l.Contains("nothing like this") {
		t.Error("Contains")
	}
}

func TestBuffer(t *testing.T) {
	t.Parallel()
	var b kluistest.Buffer
	var wg sync.WaitGroup
	for range 10 {
		wg.Go(func() { b.Write([]byte("ab")) })
	}
	wg.Wait()
	if got := b.String(); got != strings.Repeat("ab", 10) || string(b.Bytes()) != got {
		t.Errorf("%q", got)
	}
}
