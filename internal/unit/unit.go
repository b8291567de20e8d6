// Package unit reads and writes the sizes and durations that people type
// into Kluis's flags and policy files: "2GB", "1GiB", "7d", "36h".
//
// It imports no other Kluis package, so configuration, policy and the
// admin commands can share one notation.
package unit

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// day is the unit "d", which Go's time.ParseDuration does not know.
const day = 24 * time.Hour

// ParseDuration accepts Go durations plus a "d" suffix for days ("7d",
// "0.5d"), up to 100 years. Negative durations are refused.
func ParseDuration(v string) (time.Duration, error) {
	v = strings.TrimSpace(v)
	if strings.HasSuffix(v, "d") {
		n, err := strconv.ParseFloat(strings.TrimSuffix(v, "d"), 64)
		if err != nil || n < 0 || n > 36500 {
			return 0, fmt.Errorf("%q is not a duration; write for example 7d, 36h or 90m", v)
		}
		return time.Duration(n * float64(day)), nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("%q is not a duration; write for example 7d, 36h or 90m", v)
	}
	return d, nil
}

// FormatDuration writes whole days as "7d", else Go's form, so that
// ParseDuration reads it back.
func FormatDuration(d time.Duration) string {
	if d%day == 0 {
		return strconv.FormatInt(int64(d/day), 10) + "d"
	}
	return d.String()
}

// ParseSize accepts a byte count with an optional unit: B, KB, MB, GB, TB
// (powers of 1000) or KiB, MiB, GiB, TiB (powers of 1024), in any case and
// with or without a space before the unit. Negative sizes and sizes above
// 2^62 bytes are refused.
func ParseSize(v string) (int64, error) {
	s := strings.TrimSpace(v)
	units := []struct {
		suffix string
		mult   float64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12}, {"B", 1}}
	mult := 1.0
	for _, u := range units {
		if strings.HasSuffix(strings.ToUpper(s), strings.ToUpper(u.suffix)) && (len(u.suffix) == 3 || !strings.HasSuffix(strings.ToUpper(s), "IB")) {
			s = strings.TrimSpace(s[:len(s)-len(u.suffix)])
			mult = u.mult
			break
		}
	}
	n, err := strconv.ParseFloat(s, 64)
	if err != nil || n < 0 || n*mult > 1<<62 {
		return 0, fmt.Errorf("%q is not a size; write for example 2GB, 500MB or 1GiB", v)
	}
	return int64(n * mult), nil
}
