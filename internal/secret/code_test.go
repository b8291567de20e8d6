package secret

import (
	"math"
	"strings"
	"testing"
)

func TestReceiveCode(t *testing.T) {
	t.Parallel()
	seen := make(map[string]bool)
	counts := make(map[rune]int)
	const n = 4000
	for range n {
		c := NewReceiveCode()
		if len(c) != ReceiveCodeLength {
			t.Fatalf("%q: length %d, want %d", c, len(c), ReceiveCodeLength)
		}
		for _, r := range c {
			if !strings.ContainsRune(codeAlphabet, r) {
				t.Fatalf("%q: %q outside the alphabet", c, r)
			}
			counts[r]++
		}
		if seen[c] {
			t.Fatalf("duplicate %q", c)
		}
		seen[c] = true
		b, err := codeEncoding.DecodeString(c)
		if err != nil || len(b) != codeBytes {
			t.Fatalf("%q decodes to %d bytes, %v", c, len(b), err)
		}
	}
	// Every symbol is used about equally often (chi-squared over 31
	// degrees of freedom; 70 is far beyond the 0.01% tail), so each of
	// the 16 symbols carries its full 5 bits.
	want := float64(n*ReceiveCodeLength) / 32
	chi := 0.0
	for _, r := range codeAlphabet {
		d := float64(counts[r]) - want
		chi += d * d / want
	}
	if chi > 70 {
		t.Errorf("symbol counts are skewed: chi² = %.1f", chi)
	}
	if bits := float64(ReceiveCodeLength) * math.Log2(float64(len(codeAlphabet))); bits != ReceiveCodeBits || bits < 80 {
		t.Errorf("a code carries %.0f bits, want %d (at least 80)", bits, ReceiveCodeBits)
	}
	if strings.ContainsAny(codeAlphabet, "ILOU") {
		t.Error("the alphabet has a look-alike symbol")
	}
}

func TestNormalizeReceiveCode(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"K7QM-3XPT-9HRW-D2FA", "K7QM3XPT9HRWD2FA", true},
		{"k7qm 3xpt 9hrw d2fa", "K7QM3XPT9HRWD2FA", true},
		{" k7qm3xpt9hrwd2fa\n", "K7QM3XPT9HRWD2FA", true},
		{"OIL0-0000-0000-0000", "0110000000000000", true}, // misread symbols
		{"K7QM-3XPT-9HRW-D2F", "", false},                 // short
		{"K7QM-3XPT-9HRW-D2FAA", "", false},               // long
		{"K7QM-3XPT-9HRW-D2FU", "", false},                // U is not in the alphabet
		{"K7QM-3XPT-9HRW-D2F!", "", false},
		{"K7QM-3XPT-9HRW-D2FÄ", "", false},
		{strings.Repeat("A", 1000), "", false},
	}
	for _, tt := range tests {
		got, ok := NormalizeReceiveCode(tt.in)
		if got != tt.want || ok != tt.ok {
			t.Errorf("NormalizeReceiveCode(%q) = %q, %v; want %q, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
	for range 100 {
		c := NewReceiveCode()
		f := FormatReceiveCode(c)
		if len(f) != 19 || strings.Count(f, "-") != 3 {
			t.Fatalf("FormatReceiveCode(%q) = %q", c, f)
		}
		if got, ok := NormalizeReceiveCode(strings.ToLower(f)); !ok || got != c {
			t.Fatalf("round trip of %q: %q, %v", f, got, ok)
		}
	}
}
