package secret

import (
	"encoding/base64"
	"encoding/hex"
	"strings"
	"testing"
)

func TestIDFormats(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		gen      func() string
		length   int
		alphabet string
	}{
		{"NewID", NewID, 26, idAlphabet},
		{"NewAccessID", NewAccessID, 26, idAlphabet},
		{"NewLinkSecret", NewLinkSecret, 22, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"},
		{"NewToken", NewToken, 43, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			seen := make(map[string]bool)
			for range 1000 {
				s := tt.gen()
				if len(s) != tt.length {
					t.Fatalf("%q: length %d, want %d", s, len(s), tt.length)
				}
				if i := strings.IndexFunc(s, func(r rune) bool { return !strings.ContainsRune(tt.alphabet, r) }); i >= 0 {
					t.Fatalf("%q: character %q outside the alphabet", s, s[i])
				}
				if seen[s] {
					t.Fatalf("duplicate %q", s)
				}
				seen[s] = true
			}
		})
	}
}

func TestIDCarries128Bits(t *testing.T) {
	t.Parallel()
	b, err := idEncoding.DecodeString(NewID())
	if err != nil || len(b) != 16 {
		t.Fatalf("decode: %d bytes, %v", len(b), err)
	}
	b, err = base64.RawURLEncoding.DecodeString(NewLinkSecret())
	if err != nil || len(b) != 16 {
		t.Fatalf("link secret: %d bytes, %v", len(b), err)
	}
	b, err = base64.RawURLEncoding.DecodeString(NewToken())
	if err != nil || len(b) != 32 {
		t.Fatalf("token: %d bytes, %v", len(b), err)
	}
}

func TestFormatAccessID(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"abcdefghijklmnopqrstuvwxyz", "abcde-fghij-klmno-pqrst-uvwxy-z"},
		{"abcde", "abcde"},
		{"abcdef", "abcde-f"},
		{"", ""},
	}
	for _, tt := range tests {
		if got := FormatAccessID(tt.in); got != tt.want {
			t.Errorf("FormatAccessID(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestNormalizeAccessID(t *testing.T) {
	t.Parallel()
	id := NewAccessID()
	tests := []struct {
		name, in string
		want     string
		ok       bool
	}{
		{"canonical", id, id, true},
		{"grouped", FormatAccessID(id), id, true},
		{"uppercase grouped", strings.ToUpper(FormatAccessID(id)), id, true},
		{"spaces", strings.ReplaceAll(FormatAccessID(id), "-", " "), id, true},
		{"pasted with newline", " " + FormatAccessID(id) + "\n", id, true},
		{"fixed", "ABCDE-fghij klmno-pqrst-uvwxy-z", "abcdefghijklmnopqrstuvwxyz", true},
		{"too short", id[:25], "", false},
		{"too long", id + "a", "", false},
		{"zero is not base32", "0" + id[1:], "", false},
		{"one is not base32", "1" + id[1:], "", false},
		{"padding", id[:24] + "==", "", false},
		{"non-ASCII", "é" + id[1:], "", false},
		{"empty", "", "", false},
		{"huge", strings.Repeat("a", 10000), "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, ok := NormalizeAccessID(tt.in)
			if got != tt.want || ok != tt.ok {
				t.Errorf("NormalizeAccessID(%q) = %q, %v; want %q, %v", tt.in, got, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestHashTokenAndEqual(t *testing.T) {
	t.Parallel()
	tok := NewToken()
	h := HashToken(tok)
	if len(h) != 32 {
		t.Fatalf("hash length %d", len(h))
	}
	if !Equal(h, HashToken(tok)) {
		t.Error("same token, different hash")
	}
	if Equal(h, HashToken(NewToken())) {
		t.Error("different tokens, equal hash")
	}
	if Equal(h, h[:31]) {
		t.Error("prefix compares equal")
	}
	// A known vector, so a silent change of hash or encoding is caught:
	// stored hashes would stop matching.
	const wantHex = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08" // SHA-256("test")
	if got := hex.EncodeToString(HashToken("test")); got != wantHex {
		t.Errorf("HashToken(\"test\") = %s", got)
	}
}
