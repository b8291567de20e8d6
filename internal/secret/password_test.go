package secret

import (
	"errors"
	"strings"
	"testing"

	"github.com/kluis-nl/kluis"
)

func TestCheckPassword(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		pw       string
		ok       bool
		wantText string // in the message when rejected
	}{
		{"empty", "", false, "at least 8"},
		{"7 characters", "kq7wmzt", false, "at least 8"},
		{"8 characters", "kq7wmztr", true, ""},
		{"64 characters", strings.Repeat("kq7wmztr", 8), true, ""},
		{"256 characters", strings.Repeat("kq7wmztr", 32), true, ""},
		{"257 characters", strings.Repeat("kq7wmztr", 32) + "x", false, "at most 256"},
		{"8 multibyte runes", "ĳsberg€€", true, ""},
		{"7 multibyte runes is 14 bytes", "ééééééé", false, "at least 8"},
		{"256 emoji runes", strings.Repeat("🔐", 256), true, ""},
		{"257 emoji runes", strings.Repeat("🔐", 257), false, "at most 256"},
		{"only spaces", "          ", false, "spaces"},
		{"only whitespace mix", " \t\n \u00a0  \u3000 ", false, "spaces"},
		{"spaces inside are fine", "zeven oude kastanjes", true, ""},
		{"no character classes needed", "paardenbloemzaadjes", true, ""},
		{"invalid UTF-8", "abcdefgh\xff", false, "not valid text"},
		{"common", "password123", false, "commonly used"},
		{"common uppercase", "PASSWORD123", false, "commonly used"},
		{"common with spaces", " password123 ", false, "commonly used"},
		{"common Dutch", "Welkom01", false, "commonly used"},
		{"common Dutch 2", "wachtwoord", false, "commonly used"},
		{"common list entry", "baseball", false, "commonly used"},
		{"generated", GeneratePassword(), true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := CheckPassword(tt.pw)
			if tt.ok {
				if err != nil {
					t.Fatalf("CheckPassword: %v", err)
				}
				return
			}
			var ke *kluis.Error
			if !errors.As(err, &ke) || ke.Code != kluis.EINVALID {
				t.Fatalf("CheckPassword = %v; want a kluis EINVALID error", err)
			}
			if !strings.Contains(ke.Message, tt.wantText) {
				t.Errorf("message %q should mention %q", ke.Message, tt.wantText)
			}
			if strings.Contains(ke.Message, tt.pw) && strings.TrimSpace(tt.pw) != "" {
				t.Errorf("message echoes the password: %q", ke.Message)
			}
		})
	}
}

func TestIsCommonPassword(t *testing.T) {
	t.Parallel()
	for _, pw := range []string{"123456", "password", "Password", "qwerty", "welkom01", "WACHTWOORD"} {
		if !IsCommonPassword(pw) {
			t.Errorf("%q not on the list", pw)
		}
	}
	for _, pw := range []string{"kq7w-mztr-9xhe", "zeven oude kastanjes", ""} {
		if IsCommonPassword(pw) {
			t.Errorf("%q on the list", pw)
		}
	}
	// The list is the top 3,000 and no more, plus our own entries.
	if n, want := len(commonPasswords()), commonPasswordCount; n < want-50 || n > want+len(dutchCommonPasswords) {
		t.Errorf("blocklist has %d entries, want about %d", n, want)
	}
}

func TestGeneratePassword(t *testing.T) {
	t.Parallel()
	if bits := GeneratedPasswordBits(); bits < 80 {
		t.Fatalf("generated passwords carry %.1f bits, want ≥ 80", bits)
	}
	if strings.ContainsAny(passwordAlphabet, "0o1li") || len(passwordAlphabet) != 31 {
		t.Fatalf("alphabet %q", passwordAlphabet)
	}
	const samples = 10000
	seen := make(map[string]bool, samples)
	counts := make(map[rune]int)
	for range samples {
		pw := GeneratePassword()
		if seen[pw] {
			t.Fatalf("duplicate %q", pw)
		}
		seen[pw] = true
		if err := CheckPassword(pw); err != nil {
			t.Fatalf("%q: %v", pw, err)
		}
		groups := strings.Split(pw, "-")
		if len(groups) != 5 {
			t.Fatalf("%q: %d groups", pw, len(groups))
		}
		for _, g := range groups {
			if len(g) != 4 {
				t.Fatalf("%q: group %q", pw, g)
			}
			for _, r := range g {
				if !strings.ContainsRune(passwordAlphabet, r) {
					t.Fatalf("%q: %q outside the alphabet", pw, r)
				}
				counts[r]++
			}
		}
	}
	// Every symbol turns up, roughly evenly: 200,000 draws over 31 symbols
	// is about 6,450 each; a bias as small as modulo bias would show.
	if len(counts) != len(passwordAlphabet) {
		t.Errorf("%d of %d symbols used", len(counts), len(passwordAlphabet))
	}
	for r, n := range counts {
		if n < 5900 || n > 7000 {
			t.Errorf("symbol %q drawn %d times, expected about 6450", r, n)
		}
	}
}

func TestNormalizeGeneratedPassword(t *testing.T) {
	t.Parallel()
	pw := GeneratePassword()
	tests := []struct {
		name, in, want string
		ok             bool
	}{
		{"as generated", pw, pw, true},
		{"uppercase", strings.ToUpper(pw), pw, true},
		{"no dashes", strings.ReplaceAll(pw, "-", ""), pw, true},
		{"spaces", strings.ReplaceAll(pw, "-", " "), pw, true},
		{"too short", pw[:len(pw)-1], "", false},
		{"look-alike", "o" + pw[1:], "", false},
		{"own password", "zeven oude kastanjes", "", false},
	}
	for _, tt := range tests {
		got, ok := NormalizeGeneratedPassword(tt.in)
		if got != tt.want || ok != tt.ok {
			t.Errorf("%s: NormalizeGeneratedPassword(%q) = %q, %v", tt.name, tt.in, got, ok)
		}
	}
}
