package kluis

import (
	"path"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxFileNameLength is the longest file name kept, in bytes of UTF-8.
const MaxFileNameLength = 255

// maxExtLength is the longest extension that CleanFileName keeps when it
// shortens a name; a longer "extension" is just part of the name.
const maxExtLength = 16

// CleanFileName returns what Kluis keeps and shows of a file name from a
// client: the last path element ("/" and "\" both separate), valid UTF-8,
// without characters that are invisible or change how the rest reads, with
// runs of white space as one space, at most MaxFileNameLength bytes (the
// extension kept), and never empty, "." or ".." ("file" instead).
//
// Dropped are control characters (Cc), format characters (Cf: among them
// the bidirectional controls U+202A–U+202E and U+2066–U+2069, the marks
// U+200E, U+200F and U+061C, zero-width characters and U+FEFF), line and
// paragraph separators, Unicode's other default-ignorable code points
// (Hangul fillers, U+034F, tags, …), noncharacters, and variation
// selectors except one right after a visible character (an emoji's
// presentation). White space (tab and line breaks too, U+00A0, U+3000, the
// blank Braille pattern U+2800, …) becomes a space. With U+202E, "factuur\u202efdp.exe" would read as
// "factuurexe.pdf"; cleaned it reads as it is: "factuurfdp.exe".
//
// The same function runs where a name is stored and wherever one leaves
// Kluis (pages, JSON, Content-Disposition, ZIP entries, mails, the
// command-line client's local name), so names stored before a rule was
// added show clean too. It is idempotent.
func CleanFileName(name string) string {
	name = strings.ToValidUTF8(name, "")
	name = strings.ReplaceAll(name, "\\", "/")
	name = path.Base("/" + name)

	var b strings.Builder
	b.Grow(len(name))
	space, prevVisible := false, false
	for _, r := range name {
		switch {
		case isBlank(r):
			space, prevVisible = true, false
			continue
		case isInvisible(r):
			continue
		case unicode.Is(unicode.Variation_Selector, r):
			if !prevVisible {
				continue
			}
			b.WriteRune(r)
			prevVisible = false // at most one per character
			continue
		}
		if space && b.Len() > 0 {
			b.WriteByte(' ')
		}
		space = false
		b.WriteRune(r)
		prevVisible = true
	}
	name = b.String()
	if name == "." || name == ".." || name == "/" { // path.Base of "/", "//", …
		name = ""
	}
	name = shorten(name, MaxFileNameLength)
	if name == "" {
		return "file"
	}
	return name
}

// isBlank reports whether r shows as empty space: Unicode white space
// (tab and line breaks included) and the blank Braille pattern.
func isBlank(r rune) bool {
	return unicode.IsSpace(r) || r == '\u2800'
}

// isInvisible reports whether r is dropped from names: it shows nothing
// by itself, or it changes how the characters around it show.
func isInvisible(r rune) bool {
	return unicode.In(r, unicode.Cc, unicode.Cf, unicode.Zl, unicode.Zp,
		unicode.Other_Default_Ignorable_Code_Point, unicode.Noncharacter_Code_Point)
}

// shorten cuts name to at most max bytes at a character boundary, keeping a
// short extension, and trims the space a cut may leave at an end.
func shorten(name string, max int) string {
	if len(name) <= max {
		return name
	}
	ext := path.Ext(name)
	if len(ext) > maxExtLength || len(ext) == len(name) {
		ext = ""
	}
	stem := name[:len(name)-len(ext)]
	for len(stem)+len(ext) > max {
		_, size := utf8.DecodeLastRuneInString(stem)
		stem = stem[:len(stem)-size]
	}
	return strings.TrimRight(stem, " ") + ext
}
