package cli

import (
	"fmt"
	"strings"
)

// visible returns s for a terminal: control characters other than the
// line break and the tab, which a terminal would act on (escape sequences
// clear the screen, set the window title, hide or rewrite text), are
// shown as symbols instead: C0 controls and DEL as the Unicode control
// pictures (␛, ␍, ␇, ␡), C1 controls as <U+009B>. "\r\n" is a line break.
// Text from a sender or a server goes through it before it is printed
// for a person; --json output keeps the text as it is.
func visible(s string) string {
	s = strings.ReplaceAll(s, "\r\n", "\n")
	if strings.IndexFunc(s, isHidden) < 0 {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		switch {
		case !isHidden(r):
			b.WriteRune(r)
		case r < 0x20:
			b.WriteRune(0x2400 + r)
		case r == 0x7f:
			b.WriteRune('␡')
		default:
			fmt.Fprintf(&b, "<U+%04X>", r)
		}
	}
	return b.String()
}

func isHidden(r rune) bool {
	return (r < 0x20 && r != '\n' && r != '\t') || (r >= 0x7f && r <= 0x9f)
}
