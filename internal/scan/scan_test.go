package scan_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/kluis-nl/kluis/internal/scan"
	"github.com/kluis-nl/kluis/internal/scan/scantest"
)

func TestParse(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"unix:/run/clamav/clamd.ctl", "unix:/run/clamav/clamd.ctl", true},
		{"unix:///run/clamav/clamd.ctl", "unix:/run/clamav/clamd.ctl", true},
		{"tcp://127.0.0.1:3310", "tcp://127.0.0.1:3310", true},
		{"tcp://clamav", "tcp://clamav:3310", true},
		{"tcp://[::1]:3311", "tcp://[::1]:3311", true},
		{"unix:clamd.ctl", "", false},
		{"tcp://", "", false},
		{"tcp://host:3310/path", "", false},
		{"127.0.0.1:3310", "", false},
		{"http://127.0.0.1:3310", "", false},
		{"", "", false},
	}
	for _, tt := range tests {
		c, err := scan.Parse(tt.in)
		if (err == nil) != tt.ok {
			t.Errorf("Parse(%q) error = %v, want ok=%v", tt.in, err, tt.ok)
			continue
		}
		if err == nil && c.String() != tt.want {
			t.Errorf("Parse(%q) = %s, want %s", tt.in, c, tt.want)
		}
	}
}

func TestScanRealClamd(t *testing.T) {
	d := scantest.Start(t, scantest.Options{StreamMaxLength: "2M"})
	for _, addr := range []string{d.Unix(), d.TCP()} {
		c, err := scan.Parse(addr)
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		if err := c.Ping(ctx); err != nil {
			t.Fatalf("%s: ping: %v", addr, err)
		}
		if v, err := c.Version(ctx); err != nil || !strings.HasPrefix(v, "ClamAV ") {
			t.Fatalf("%s: version = %q, %v", addr, v, err)
		}
		big := bytes.Repeat([]byte("clean text "), 100_000) // 1.1 MB: several chunks
		tests := []struct {
			name    string
			content []byte
			sig     string // "" for clean
		}{
			{"empty", nil, ""},
			{"clean", []byte("hello"), ""},
			{"clean several chunks", big, ""},
			{"eicar", []byte(scantest.EICAR), "Kluis-Test-EICAR"},
			{"marker deep inside", append(append(bytes.Clone(big), scantest.Marker...), "tail"...), "Kluis-Test-Marker"},
		}
		for _, tt := range tests {
			got, err := c.Scan(ctx, bytes.NewReader(tt.content))
			if err != nil {
				t.Fatalf("%s %s: %v", addr, tt.name, err)
			}
			if got.Infected != (tt.sig != "") || !strings.HasPrefix(got.Signature, tt.sig) {
				t.Errorf("%s %s: got %+v, want signature %q", addr, tt.name, got, tt.sig)
			}
		}
		// Beyond StreamMaxLength clamd gives no verdict.
		_, err = c.Scan(ctx, io.LimitReader(zeros{}, 5<<20))
		if !errors.Is(err, scan.ErrTooLarge) {
			t.Errorf("%s: 5 MB over a 2 MB limit: err = %v, want ErrTooLarge", addr, err)
		}
	}
}

func TestScanUnavailable(t *testing.T) {
	d := scantest.Start(t, scantest.Options{})
	c, err := scan.Parse(d.TCP())
	if err != nil {
		t.Fatal(err)
	}
	d.Stop(t)
	if _, err := c.Scan(context.Background(), strings.NewReader("x")); !errors.Is(err, scan.ErrUnavailable) {
		t.Fatalf("stopped clamd: err = %v, want ErrUnavailable", err)
	}
	if err := c.Ping(context.Background()); !errors.Is(err, scan.ErrUnavailable) {
		t.Fatalf("stopped clamd: ping err = %v, want ErrUnavailable", err)
	}
	d.Start(t)
	if res, err := c.Scan(context.Background(), strings.NewReader(scantest.EICAR)); err != nil || !res.Infected {
		t.Fatalf("after restart: %+v, %v", res, err)
	}
}

// A read error of the content is not an unavailable clamd: the caller must
// not retry the scan as if clamd were down, nor pass the file.
func TestScanReadError(t *testing.T) {
	d := scantest.Start(t, scantest.Options{})
	c, _ := scan.Parse(d.Unix())
	boom := errors.New("integrity")
	_, err := c.Scan(context.Background(), io.MultiReader(strings.NewReader("abc"), errReader{boom}))
	if !errors.Is(err, boom) || errors.Is(err, scan.ErrUnavailable) {
		t.Fatalf("err = %v, want the read error and not ErrUnavailable", err)
	}
}

// A clamd that accepts but never answers times out instead of hanging.
func TestScanTimeout(t *testing.T) {
	ln := listenSilent(t)
	c, _ := scan.Parse("tcp://" + ln)
	c.Timeout, c.ReplyTimeout = 200*time.Millisecond, 200*time.Millisecond
	start := time.Now()
	_, err := c.Scan(context.Background(), strings.NewReader("x"))
	if !errors.Is(err, scan.ErrUnavailable) {
		t.Fatalf("err = %v, want ErrUnavailable", err)
	}
	if time.Since(start) > 10*time.Second {
		t.Fatalf("took %v", time.Since(start))
	}
	ctx, cancel := context.WithCancel(context.Background())
	c.ReplyTimeout = time.Hour
	time.AfterFunc(100*time.Millisecond, cancel)
	if _, err := c.Scan(ctx, strings.NewReader("x")); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: err = %v", err)
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }
