package secret

import (
	"math"
	"strings"
	"testing"
)

func TestWordLists(t *testing.T) {
	t.Parallel()
	for lang, list := range wordLists() {
		if len(list) < 7776 {
			t.Errorf("%s: %d words, want at least 7,776", lang, len(list))
		}
		seen := make(map[string]bool, len(list))
		for _, w := range list {
			if w == "" || strings.IndexFunc(w, func(r rune) bool { return r < 'a' || r > 'z' }) >= 0 {
				t.Errorf("%s: %q is not small letters a-z only", lang, w)
			}
			if seen[w] {
				t.Errorf("%s: %q twice", lang, w)
			}
			seen[w] = true
		}
	}
	if words("nl-NL")[0] != wordLists()["nl"][0] || words("de")[0] != wordLists()["en"][0] {
		t.Error("the list is not chosen by the sender's language")
	}
}

func TestGenerateWordPassword(t *testing.T) {
	t.Parallel()
	if bits := WordPasswordBits(); bits < 80 {
		t.Errorf("a word password carries %.1f bits, want at least 80 (security requirement 8)", bits)
	}
	for _, lang := range []string{"nl", "en"} {
		in := make(map[string]bool)
		for _, w := range words(lang) {
			in[w] = true
		}
		seen := make(map[string]bool)
		counts := make(map[string]int)
		const n = 2000
		for range n {
			pw := GenerateWordPassword(lang)
			parts := strings.Split(pw, "-")
			if len(parts) != PasswordWords {
				t.Fatalf("%s: %q has %d words", lang, pw, len(parts))
			}
			for _, p := range parts {
				if !in[p] {
					t.Fatalf("%s: %q is not from the list", lang, p)
				}
				counts[p]++
			}
			if seen[pw] {
				t.Fatalf("%s: %q twice", lang, pw)
			}
			seen[pw] = true
			if CheckPassword(pw) != nil {
				t.Errorf("%s: %q fails the password check", lang, pw)
			}
		}
		// 10,000 draws from 7,776 words: about 2,150 words are never drawn
		// if the draw is uniform (7776·e^(-10000/7776)); a generator that
		// favoured part of the list would leave far more out.
		unused := len(words(lang)) - len(counts)
		want := float64(len(words(lang))) * math.Exp(-float64(n*PasswordWords)/float64(len(words(lang))))
		if math.Abs(float64(unused)-want) > 150 {
			t.Errorf("%s: %d words never drawn, want about %.0f", lang, unused, want)
		}
	}
}

func TestNormalizeWordPassword(t *testing.T) {
	t.Parallel()
	want := "tulpkompasvijverhagelmolen"
	for _, typed := range []string{
		"tulp-kompas-vijver-hagel-molen",
		"Tulp Kompas Vijver Hagel Molen",
		"  TULP  kompas\tvijver-hagel molen\n",
		"tulpkompasvijverhagelmolen",
	} {
		if got := NormalizeWordPassword(typed); got != want {
			t.Errorf("NormalizeWordPassword(%q) = %q, want %q", typed, got, want)
		}
	}
	if NormalizeWordPassword("tulp-kompas-vijver-hagel-molens") == want {
		t.Error("a different word normalises to the same password")
	}
}
