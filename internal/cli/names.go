package cli

import (
	"fmt"
	"path/filepath"
	"strings"
	"unicode/utf8"

	"github.com/kluis-nl/kluis"
)

// maxLocalName bounds a local file name in bytes, leaving room for the
// part file's ".NAME.kluis-part" within the usual 255.
const maxLocalName = 200

// safeName is the local file name for a name from the server. It starts
// from kluis.CleanFileName, as everywhere in Kluis (the last path element,
// no control, invisible or bidirectional characters; the server's own
// cleaning is not relied on: it may be older, or not Kluis), then makes the
// name safe to create on any system: characters Windows refuses become
// "_", leading dots (a hidden file) and trailing dots and spaces (which
// Windows drops) go, a reserved device name (CON, NUL, COM1, …, also with
// an extension) gets a "_" in front, and it is cut to maxLocalName bytes
// with its extension kept. Nothing left gives "file-N".
func safeName(name string, i int) string {
	name = strings.Map(func(r rune) rune {
		if strings.ContainsRune(`<>:"|?*`, r) {
			return '_'
		}
		return r
	}, kluis.CleanFileName(name))
	name = strings.TrimRight(strings.TrimLeft(name, "."), ". ")
	if len(name) > maxLocalName {
		ext := filepath.Ext(name)
		if len(ext) > 16 {
			ext = ""
		}
		stem := name[:len(name)-len(ext)]
		for len(stem)+len(ext) > maxLocalName {
			_, size := utf8.DecodeLastRuneInString(stem)
			stem = stem[:len(stem)-size]
		}
		name = strings.TrimRight(stem, ". ") + ext
	}
	if windowsReserved(name) {
		name = "_" + name
	}
	if name == "" {
		name = fmt.Sprintf("file-%d", i+1)
	}
	return name
}

// windowsReserved reports whether Windows takes name for a device: the part
// before the first dot, without trailing spaces, is CON, PRN, AUX, NUL,
// COM0–COM9, LPT0–LPT9 (also with ¹, ² or ³), CONIN$ or CONOUT$, in any
// case. Writing "nul.txt" there writes to the device, not to a file.
func windowsReserved(name string) bool {
	stem, _, _ := strings.Cut(name, ".")
	stem = strings.ToUpper(strings.TrimRight(stem, " "))
	switch stem {
	case "CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$":
		return true
	}
	if rest, ok := strings.CutPrefix(stem, "COM"); ok {
		return isPortDigit(rest)
	}
	if rest, ok := strings.CutPrefix(stem, "LPT"); ok {
		return isPortDigit(rest)
	}
	return false
}

func isPortDigit(s string) bool {
	return len(s) == 1 && s[0] >= '0' && s[0] <= '9' || s == "¹" || s == "²" || s == "³"
}

func uniqueName(name string, used map[string]bool) string {
	cand := name
	ext := filepath.Ext(name)
	stem := strings.TrimSuffix(name, ext)
	for n := 2; used[strings.ToLower(cand)]; n++ {
		cand = fmt.Sprintf("%s (%d)%s", stem, n, ext)
	}
	used[strings.ToLower(cand)] = true
	return cand
}
