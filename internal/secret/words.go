package secret

import (
	"crypto/rand"
	"embed"
	"math"
	"math/big"
	"strings"
	"sync"
	"unicode"
)

// wordFiles are the word lists of generated passwords, one per sender
// language; words/SOURCES.md says where they come from and under which
// licence.
//
//go:embed words/en.txt words/nl.txt
var wordFiles embed.FS

// PasswordWords is the number of words in a generated password.
const PasswordWords = 7

// wordLists holds each list once read; every list has 7,776 distinct
// words of small letters a-z (TestWordLists).
var wordLists = sync.OnceValue(func() map[string][]string {
	m := make(map[string][]string)
	for _, lang := range []string{"en", "nl"} {
		b, err := wordFiles.ReadFile("words/" + lang + ".txt")
		if err != nil {
			panic("secret: " + err.Error())
		}
		m[lang] = strings.Fields(string(b))
	}
	return m
})

// words returns the list for a language: Dutch for "nl", English for any
// other (the sender pages exist in these two).
func words(lang string) []string {
	if strings.HasPrefix(strings.ToLower(lang), "nl") {
		return wordLists()["nl"]
	}
	return wordLists()["en"]
}

// GenerateWordPassword returns a password of seven words drawn uniformly
// and independently from the list of the sender's language, joined by
// dashes ("tulp-kompas-vijver-hagel-molen-beker-fiets"): easy to read out
// over the phone, with 7·log2(7776) ≈ 90.5 bits ([WordPasswordBits]; the
// security requirements ask at least 80 of a generated password). Wrap the
// identity with [NormalizeWordPassword] of it, and normalise what the
// recipient types the same way, so case, spaces and dashes do not matter.
func GenerateWordPassword(lang string) string {
	list := words(lang)
	limit := big.NewInt(int64(len(list)))
	parts := make([]string, PasswordWords)
	for i := range parts {
		// rand.Int is uniform (no modulo bias) and cannot fail with
		// crypto/rand's reader since Go 1.24.
		n, err := rand.Int(rand.Reader, limit)
		if err != nil {
			panic("secret: crypto/rand failed: " + err.Error())
		}
		parts[i] = list[n.Int64()]
	}
	return strings.Join(parts, "-")
}

// WordPasswordBits is the entropy of a [GenerateWordPassword] result, for
// the smaller of the two lists.
func WordPasswordBits() float64 {
	n := min(len(wordLists()["en"]), len(wordLists()["nl"]))
	return PasswordWords * math.Log2(float64(n))
}

// NormalizeWordPassword is the form of a word password that wraps the
// transfer's identity: small letters, without the spaces, dashes and other
// white space between the words, so "Tulp Kompas vijver-hagel molen" opens
// what "tulp-kompas-vijver-hagel-molen" locked. Dropping the word
// boundaries lets a few different word sequences share one form (such as
// "in-to" and "into"), which costs a negligible part of a bit.
func NormalizeWordPassword(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range s {
		if r == '-' || unicode.IsSpace(r) {
			continue
		}
		b.WriteRune(unicode.ToLower(r))
	}
	return b.String()
}
