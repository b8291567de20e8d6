package locale

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"golang.org/x/text/feature/plural"
)

// Printer writes texts, dates and sizes in one language. It is cheap to
// make and safe for concurrent use.
type Printer struct {
	lang Lang
	cat  *catalog
	// fall are the catalogs tried, in order, for a key this catalog lacks:
	// English, then Dutch. The tests make sure that never happens for a
	// key in the catalog's scope.
	fall []*catalog
}

// For returns the printer of l; of Default when l has no catalog.
func For(l Lang) *Printer {
	cs := load()
	c, ok := cs[l]
	if !ok {
		l, c = Default, cs[Default]
	}
	p := &Printer{lang: l, cat: c}
	for _, f := range []Lang{EN, NL} {
		if f != l {
			p.fall = append(p.fall, cs[f])
		}
	}
	return p
}

// Lang returns the printer's language.
func (p *Printer) Lang() Lang { return p.lang }

func (p *Printer) lookup(key string) (entry, *catalog, bool) {
	if e, ok := p.cat.entries[key]; ok {
		return e, p.cat, true
	}
	for _, c := range p.fall {
		if e, ok := c.entries[key]; ok {
			return e, c, true
		}
	}
	return entry{}, nil, false
}

// Has reports whether the printer's own catalog has key.
func (p *Printer) Has(key string) bool {
	_, ok := p.cat.entries[key]
	return ok
}

// T returns the text of key formatted with args. A key no catalog has comes
// back as the key itself, so a mistake shows instead of an empty space (the
// tests prevent it). For a plural text the first argument is the number.
func (p *Printer) T(key string, args ...any) string {
	e, c, ok := p.lookup(key)
	if !ok {
		return key
	}
	text := e.text
	if e.forms != nil {
		n := 0
		if len(args) > 0 {
			n, _ = toInt(args[0])
		}
		text = e.form(c.lang, n)
	}
	if !strings.Contains(text, "%") {
		// A plural form may leave the count out ("one day" as a word).
		return text
	}
	return fmt.Sprintf(text, args...)
}

// Format returns the text of key unformatted, verbs and all, for a script
// in the page that fills in the arguments itself. A plural text gives its
// "other" form. A key no catalog has comes back as the key itself.
func (p *Printer) Format(key string) string {
	e, _, ok := p.lookup(key)
	switch {
	case !ok:
		return key
	case e.forms != nil:
		return e.forms[otherForm]
	}
	return e.text
}

// N returns the plural text of key for the count n, formatted with n as
// the first argument and then args.
func (p *Printer) N(key string, n int, args ...any) string {
	return p.T(key, append([]any{n}, args...)...)
}

// otherForm is the plural category every language has.
const otherForm = plural.Other

func (e entry) form(l Lang, n int) string {
	if n < 0 {
		n = -n
	}
	f := plural.Cardinal.MatchPlural(l.Tag(), n, 0, 0, 0, 0)
	if s, ok := e.forms[f]; ok {
		return s
	}
	return e.forms[plural.Other]
}

func toInt(v any) (int, bool) {
	switch n := v.(type) {
	case int:
		return n, true
	case int64:
		return int(n), true
	case int32:
		return int(n), true
	case uint:
		return int(n), true
	case uint64:
		return int(n), true
	}
	return 0, false
}

// Date formats t in Amsterdam time with the day, month name, year and time
// of day, as the catalog's "format.date" says ("5 december 2026, 14:30").
func (p *Printer) Date(t time.Time) string {
	t = t.In(Amsterdam)
	return p.T("format.date", t.Day(), p.month(t.Month()), t.Year(), fmt.Sprintf("%02d:%02d", t.Hour(), t.Minute()))
}

// Day formats the date of t in Amsterdam time, without the time of day
// ("5 december 2026").
func (p *Printer) Day(t time.Time) string {
	t = t.In(Amsterdam)
	return p.T("format.day", t.Day(), p.month(t.Month()), t.Year())
}

func (p *Printer) month(m time.Month) string {
	return p.T("month." + strconv.Itoa(int(m)))
}

// Size formats a byte count in decimal units as people know them from their
// computers ("1,5 MB" in Dutch, "1.5 MB" in English); below a kilobyte it
// counts bytes with the language's plural ("1 byte", "512 bytes"). A
// negative size (unknown) gives "".
func (p *Printer) Size(n int64) string {
	var num, unit string
	switch {
	case n < 0:
		return ""
	case n >= 1_000_000_000_000:
		num, unit = strconv.FormatFloat(float64(n)/1e12, 'f', 2, 64), "TB"
	case n >= 1_000_000_000:
		num, unit = strconv.FormatFloat(float64(n)/1e9, 'f', 2, 64), "GB"
	case n >= 1_000_000:
		num, unit = strconv.FormatFloat(float64(n)/1e6, 'f', 1, 64), "MB"
	case n >= 1_000:
		num, unit = strconv.FormatFloat(float64(n)/1e3, 'f', 0, 64), "kB"
	default:
		return p.N("size.bytes", int(n))
	}
	if sep := p.T("format.decimal"); sep != "." {
		num = strings.Replace(num, ".", sep, 1)
	}
	return p.T("format.size", num, p.T("size."+unit))
}

// Duration formats a period of whole days, or hours when it is shorter
// than a day ("3 dagen", "1 uur").
func (p *Printer) Duration(d time.Duration) string {
	if d < 24*time.Hour {
		hours := int(max(d.Round(time.Hour), time.Hour) / time.Hour)
		return p.N("unit.hours", hours)
	}
	return p.N("unit.days", int((d+12*time.Hour)/(24*time.Hour)))
}
