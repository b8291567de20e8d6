package unit_test

import (
	"testing"
	"time"

	"github.com/kluis-nl/kluis/internal/unit"
)

func TestParseSize(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]int64{
		"2GB": 2e9, "500MB": 5e8, "1GiB": 1 << 30, "10": 10, "1.5 KB": 1500,
		"2kib": 2048, "7B": 7, " 3 TB ": 3e12, "1TiB": 1 << 40, "0": 0,
	} {
		if got, err := unit.ParseSize(in); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "-1MB", "2XB", "GB", "1e30GB", "abc"} {
		if got, err := unit.ParseSize(in); err == nil {
			t.Errorf("ParseSize(%q) = %d, want an error", in, got)
		}
	}
}

func TestParseDuration(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]time.Duration{
		"7d": 7 * 24 * time.Hour, "36h": 36 * time.Hour, "90m": 90 * time.Minute, "0.5d": 12 * time.Hour, " 1h30m ": 90 * time.Minute,
	} {
		if got, err := unit.ParseDuration(in); err != nil || got != want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "-1h", "-2d", "36501d", "7 days", "d"} {
		if got, err := unit.ParseDuration(in); err == nil {
			t.Errorf("ParseDuration(%q) = %v, want an error", in, got)
		}
	}
}

// TestFormatDurationRoundTrip: what FormatDuration writes, ParseDuration
// reads back (policy descriptions and error messages quote limits this way).
func TestFormatDurationRoundTrip(t *testing.T) {
	t.Parallel()
	for d, want := range map[time.Duration]string{
		7 * 24 * time.Hour: "7d", 0: "0d", 36 * time.Hour: "36h0m0s", 90 * time.Minute: "1h30m0s",
	} {
		got := unit.FormatDuration(d)
		if got != want {
			t.Errorf("FormatDuration(%v) = %q, want %q", d, got, want)
		}
		if back, err := unit.ParseDuration(got); err != nil || back != d {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", got, back, err, d)
		}
	}
}
