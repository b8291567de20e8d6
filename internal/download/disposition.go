package download

import (
	"fmt"
	"strings"
	"time"

	"github.com/kluis-nl/kluis"
)

// ContentDisposition returns an attachment header for name per RFC 6266:
// an ASCII fallback in filename= and the UTF-8 name in filename*=. The
// name is cleaned first (kluis.CleanFileName), whoever the caller.
func ContentDisposition(name string) string {
	name = kluis.CleanFileName(name)
	var ascii strings.Builder
	for _, r := range name {
		switch {
		case r < 0x20 || r == 0x7f || r == '"' || r == '\\' || r == '%' || r == '/':
			ascii.WriteByte('_')
		case r < 0x80:
			ascii.WriteRune(r)
		default:
			ascii.WriteByte('_')
		}
	}
	fallback := ascii.String()
	if strings.Trim(fallback, "_. ") == "" {
		fallback = "download"
	}
	return fmt.Sprintf(`attachment; filename="%s"; filename*=UTF-8''%s`, fallback, rfc5987(name))
}

// rfc5987 percent-encodes everything but attr-char (RFC 8187 section 3.2.1).
func rfc5987(s string) string {
	const attr = "!#$&+-.^_`|~"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z') || ('0' <= c && c <= '9') || strings.IndexByte(attr, c) >= 0 {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// zipNameRunes bounds the subject part of a ZIP's name: long enough to
// recognise, short enough for every file system's name limit.
const zipNameRunes = 80

// amsterdam is the time zone of the dates in mails and pages.
var amsterdam = func() *time.Location {
	if loc, err := time.LoadLocation("Europe/Amsterdam"); err == nil {
		return loc
	}
	return time.FixedZone("CET", 3600)
}()

// ZipName is the name of a transfer's ZIP as people look for it in their
// downloads: the mail's subject, cleaned of what file systems refuse, or
// else the day it was sent ("kluis-2026-12-05.zip"). Never an id, which
// tells a person nothing.
func ZipName(subject string, sent time.Time) string {
	name := ""
	if strings.TrimSpace(subject) != "" {
		// Separators first: CleanFileName would keep only a path's base.
		name = kluis.CleanFileName(strings.Map(func(r rune) rune {
			if strings.ContainsRune(`<>:"/\|?*`, r) {
				return '-'
			}
			return r
		}, subject))
	}
	name = strings.Trim(name, " .-")
	if r := []rune(name); len(r) > zipNameRunes {
		name = strings.TrimRight(string(r[:zipNameRunes]), " .-")
	}
	if name == "" {
		return "kluis-" + sent.In(amsterdam).Format("2006-01-02") + ".zip"
	}
	return name + ".zip"
}
