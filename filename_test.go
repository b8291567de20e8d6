package kluis_test

import (
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/kluis-nl/kluis"
)

func TestCleanFileName(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("é", 200) // 400 bytes
	for _, tc := range []struct{ in, want string }{
		{"rapport.pdf", "rapport.pdf"},
		{"naïve \"quote\" résumé €.txt", "naïve \"quote\" résumé €.txt"},
		{"日本語の文書.docx", "日本語の文書.docx"},
		{"عربي.pdf", "عربي.pdf"},
		{".bashrc", ".bashrc"},
		{"...", "..."},

		// Paths: the last element only.
		{"../../etc/passwd", "passwd"},
		{`C:\Users\x\brief.doc`, "brief.doc"},
		{"dir/", "dir"},
		{"/", "file"},
		{`\\server\share\`, "share"},

		// Empty, or nothing left.
		{"", "file"},
		{"..", "file"},
		{".", "file"},
		{"  ", "file"},
		{"\u202e", "file"},
		{"a/\u200b", "file"},
		{".\u200b.", "file"},

		// Control characters; white space collapses to one space.
		{"a\x00b\x1bc.txt", "abc.txt"},
		{"a\r\nb.txt", "a b.txt"},
		{"tab\there", "tab here"},
		{"  spatie.txt  ", "spatie.txt"},
		{"nbsp\u00a0\u3000\u2003 \u2800x", "nbsp x"},
		{"line\u2028para\u2029next\u0085end", "line para next end"},
		{"\x7fdel\u009fc1", "delc1"},

		// Bidirectional controls: "factuur<RLO>fdp.exe" shows as "factuurexe.pdf".
		{"factuur\u202efdp.exe", "factuurfdp.exe"},
		{"\u202a\u202b\u202c\u202d\u202ex", "x"},
		{"\u2066\u2067\u2068\u2069y", "y"},
		{"l\u200er\u200fa\u061cm", "lram"},

		// Invisible: zero-width, BOM, soft hyphen, word joiner, Hangul
		// fillers, combining grapheme joiner, tags, noncharacters.
		{"zero\u200bwidth\u200c\u200djoin\u2060\ufeff", "zerowidthjoin"},
		{"soft\u00adhyphen", "softhyphen"},
		{"h\u115f\u1160\u3164\uffa0f", "hf"},
		{"c\u034fg", "cg"},
		{"tag\U000e0001\U000e0041\U000e007f", "tag"},
		{"non\ufdd0\ufffe\U0010ffffchar", "nonchar"},
		{"interlinear\ufff9\ufffa\ufffb", "interlinear"},

		// Variation selectors: one after a visible character stays.
		{"hart\u2764\ufe0f.txt", "hart\u2764\ufe0f.txt"},
		{"\ufe0fstart", "start"},
		{"x\ufe0f\ufe0f\ufe0e\U000e0100", "x\ufe0f"},
		{"a \ufe0f", "a"},

		// Invalid UTF-8 is dropped.
		{"\xff\xfeok\xc3", "ok"},

		// Length: at most 255 bytes, at a character boundary, extension kept.
		{long, strings.Repeat("é", 127)},
		{long + ".pdf", strings.Repeat("é", 125) + ".pdf"},
		{strings.Repeat("a", 300) + "." + strings.Repeat("b", 20), strings.Repeat("a", 255)},
		{strings.Repeat("a", 250) + "     x.pdf", strings.Repeat("a", 250) + ".pdf"},
	} {
		got := kluis.CleanFileName(tc.in)
		if got != tc.want {
			t.Errorf("CleanFileName(%+q) = %+q, want %+q", tc.in, got, tc.want)
		}
		if again := kluis.CleanFileName(got); again != got {
			t.Errorf("CleanFileName is not idempotent on %+q: %+q", got, again)
		}
	}
}

// FuzzCleanFileName: whatever comes in, the result is a non-empty base name
// of valid UTF-8 within the length, without an invisible or reordering
// character, with single spaces inside only, and cleaning it again changes
// nothing. A plain name comes back as it is.
func FuzzCleanFileName(f *testing.F) {
	for _, s := range []string{
		"rapport.pdf", "../x", `a\b`, "factuur\u202efdp.exe", "a\u200b\ufeffb", "\x00", "\xff", "..",
		" . ", "x\ufe0f\ufe0f", "\u2764\ufe0f", "a\r\n\tb", strings.Repeat("é", 130) + ".pdf", "\U000e0041",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		got := kluis.CleanFileName(in)
		if got == "" || len(got) > kluis.MaxFileNameLength || !utf8.ValidString(got) {
			t.Fatalf("CleanFileName(%+q) = %+q: empty, too long or not UTF-8", in, got)
		}
		if got == "." || got == ".." || strings.ContainsAny(got, `/\`) {
			t.Fatalf("CleanFileName(%+q) = %+q: a path", in, got)
		}
		if strings.HasPrefix(got, " ") || strings.HasSuffix(got, " ") || strings.Contains(got, "  ") {
			t.Fatalf("CleanFileName(%+q) = %+q: loose spaces", in, got)
		}
		prevVisible := false
		for _, r := range got {
			switch {
			case r == ' ':
				prevVisible = false
			case unicode.IsSpace(r) || r == '\u2800':
				t.Fatalf("CleanFileName(%+q) = %+q: white space %U", in, got, r)
			case unicode.In(r, unicode.Cc, unicode.Cf, unicode.Zl, unicode.Zp, unicode.Other_Default_Ignorable_Code_Point, unicode.Noncharacter_Code_Point):
				t.Fatalf("CleanFileName(%+q) = %+q: invisible character %U", in, got, r)
			case unicode.Is(unicode.Variation_Selector, r):
				if !prevVisible {
					t.Fatalf("CleanFileName(%+q) = %+q: stray variation selector %U", in, got, r)
				}
				prevVisible = false
			default:
				prevVisible = true
			}
		}
		if again := kluis.CleanFileName(got); again != got {
			t.Fatalf("not idempotent: %+q → %+q → %+q", in, got, again)
		}
		plain := in != "" && in != "." && in != ".." && len(in) <= kluis.MaxFileNameLength &&
			!strings.ContainsFunc(in, func(r rune) bool {
				return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-' || r == '_')
			})
		if plain && got != in {
			t.Fatalf("CleanFileName(%+q) = %+q: a plain name changed", in, got)
		}
	})
}
