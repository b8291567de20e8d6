// Package locale holds every language Kluis speaks: the catalogs of the texts
// shown to people (web pages, mails and the command-line client), the choice
// of a language from a request, plural rules, and the formatting of dates and
// sizes per language.
//
// # Catalogs
//
// Each language has one catalog, the JSON files in catalog/<code>/ taken
// together (one file per area: base.json for formats and units, web.json,
// mail.json, cli.json, …; a key may be in only one of them): a flat object
// from key to text. A text is a format string for fmt (verbs such as %s and %d, with
// explicit argument indexes like %[2]s where a translation needs another word
// order). A text whose form depends on a number is an object with the CLDR
// plural categories the language uses ("one", "few", "many", "other", …); its
// first argument is the number. The key "_meta" describes the catalog: how it
// was made, whether a native speaker has reviewed it, and which glossary it
// follows.
//
// Dutch is the source: every key exists there. English is complete too.
// The other languages cover at least everything a recipient sees (see
// RecipientScope); Complete reports whether a catalog covers everything, which
// is when sender pages may use it too. The tests check that every catalog has
// every key its scope needs, with the same placeholders as the source.
//
// # Choosing a language
//
// Match picks the best of a set of languages for an Accept-Language header
// with golang.org/x/text/language, so regional variants ("de-AT") and
// fallbacks behave as the standard says. Parse accepts what a person or a
// form may write ("EN", "en_GB").
package locale

import (
	"embed"
	"encoding/json"
	"fmt"
	"io/fs"
	"sort"
	"strings"
	"sync"
	"time"
	_ "time/tzdata" // Europe/Amsterdam also on hosts without zoneinfo

	"golang.org/x/text/feature/plural"
	"golang.org/x/text/language"
)

// Lang is a language Kluis has a catalog for, as its BCP 47 base code.
type Lang string

// The languages Kluis speaks.
const (
	NL Lang = "nl" // Dutch: the source catalog and the default
	EN Lang = "en" // English
	FY Lang = "fy" // Frisian (Frysk)
	DE Lang = "de" // German
	FR Lang = "fr" // French
	PL Lang = "pl" // Polish
	TR Lang = "tr" // Turkish
	UK Lang = "uk" // Ukrainian
	AR Lang = "ar" // Arabic, written right to left
)

// All lists every language with a catalog; Dutch first, as the default.
var All = []Lang{NL, EN, FY, DE, FR, PL, TR, UK, AR}

// Codes returns the codes of All in their order, for messages that name
// the languages one may choose ("nl, en, fy, …").
func Codes() []string {
	out := make([]string, len(All))
	for i, l := range All {
		out[i] = string(l)
	}
	return out
}

// Default is the language used when nothing better is known.
const Default = NL

var names = map[Lang]string{
	NL: "Nederlands", EN: "English", FY: "Frysk", DE: "Deutsch", FR: "Français",
	PL: "Polski", TR: "Türkçe", UK: "Українська", AR: "العربية",
}

// Name returns the language's name in the language itself ("Deutsch").
func (l Lang) Name() string { return names[l] }

// Dir returns the writing direction for the HTML dir attribute: "rtl" or "ltr".
func (l Lang) Dir() string {
	if l == AR {
		return "rtl"
	}
	return "ltr"
}

// Tag returns the language as a language.Tag.
func (l Lang) Tag() language.Tag { return language.Make(string(l)) }

// String returns the code.
func (l Lang) String() string { return string(l) }

// Parse reads a language as a person or a form may write it ("EN", "en-GB",
// "en_US", " nl "). It reports false for a language Kluis has no catalog for.
func Parse(s string) (Lang, bool) {
	s = strings.TrimSpace(strings.ReplaceAll(s, "_", "-"))
	if s == "" {
		return "", false
	}
	t, err := language.Parse(s)
	if err != nil {
		return "", false
	}
	base, _ := t.Base()
	l := Lang(base.String())
	for _, k := range All {
		if k == l {
			return l, true
		}
	}
	return "", false
}

// Match returns the language of among that best fits an Accept-Language
// header; among[0] when none fits (or among is empty: Default).
func Match(acceptLanguage string, among []Lang) Lang {
	if len(among) == 0 {
		among = []Lang{Default}
	}
	tags, _, err := language.ParseAcceptLanguage(acceptLanguage)
	if err != nil || len(tags) == 0 {
		return among[0]
	}
	supported := make([]language.Tag, len(among))
	for i, l := range among {
		supported[i] = l.Tag()
	}
	_, i, conf := language.NewMatcher(supported).Match(tags...)
	if conf == language.No {
		return among[0]
	}
	return among[i]
}

// Amsterdam is the time zone of every date Kluis shows.
var Amsterdam = func() *time.Location {
	if loc, err := time.LoadLocation("Europe/Amsterdam"); err == nil {
		return loc
	}
	return time.FixedZone("CET", 3600)
}()

//go:embed catalog
var catalogFS embed.FS

// entry is one catalog text: a plain format string, or plural forms.
type entry struct {
	text  string
	forms map[plural.Form]string // nil for a plain text
}

// Meta describes how a catalog was made.
type Meta struct {
	// Made says how the translation was made and checked (for example:
	// "translated from the Dutch and English catalogs following
	// glossary/de.md, checked by translating it back").
	Made string `json:"made"`
	// Reviewed is true once a native speaker has reviewed every text.
	Reviewed bool `json:"reviewed"`
	// Glossary names the glossary file the translation follows.
	Glossary string `json:"glossary,omitempty"`
}

type catalog struct {
	lang    Lang
	meta    Meta
	entries map[string]entry
}

var (
	loadOnce sync.Once
	catalogs map[Lang]*catalog
	loadErr  error
)

// load parses every catalog once. A broken catalog is a programming error:
// it panics at start-up and in every test, never later.
func load() map[Lang]*catalog {
	loadOnce.Do(func() {
		catalogs, loadErr = parseCatalogs(catalogFS, "catalog")
	})
	if loadErr != nil {
		panic(loadErr)
	}
	return catalogs
}

func parseCatalogs(fsys fs.FS, dir string) (map[Lang]*catalog, error) {
	out := map[Lang]*catalog{}
	for _, l := range All {
		files, err := fs.Glob(fsys, dir+"/"+string(l)+"/*.json")
		if err != nil || len(files) == 0 {
			return nil, fmt.Errorf("locale: no catalog files for %s in %s", l, dir)
		}
		c := &catalog{lang: l, entries: map[string]entry{}}
		for _, name := range files {
			b, err := fs.ReadFile(fsys, name)
			if err != nil {
				return nil, fmt.Errorf("locale: catalog %s: %w", l, err)
			}
			part, err := parseCatalog(l, b)
			if err != nil {
				return nil, fmt.Errorf("%w (%s)", err, name)
			}
			if part.meta.Made != "" {
				if c.meta.Made != "" {
					return nil, fmt.Errorf("locale: catalog %s: _meta in more than one file (%s)", l, name)
				}
				c.meta = part.meta
			}
			for k, e := range part.entries {
				if _, dup := c.entries[k]; dup {
					return nil, fmt.Errorf("locale: catalog %s: key %q in more than one file (%s)", l, k, name)
				}
				c.entries[k] = e
			}
		}
		out[l] = c
	}
	return out, nil
}

var formNames = map[string]plural.Form{
	"zero": plural.Zero, "one": plural.One, "two": plural.Two,
	"few": plural.Few, "many": plural.Many, "other": plural.Other,
}

func parseCatalog(l Lang, b []byte) (*catalog, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, fmt.Errorf("locale: catalog %s: %w", l, err)
	}
	c := &catalog{lang: l, entries: make(map[string]entry, len(raw))}
	for k, v := range raw {
		if k == "_meta" {
			if err := json.Unmarshal(v, &c.meta); err != nil {
				return nil, fmt.Errorf("locale: catalog %s: _meta: %w", l, err)
			}
			continue
		}
		var s string
		if err := json.Unmarshal(v, &s); err == nil {
			c.entries[k] = entry{text: s}
			continue
		}
		var forms map[string]string
		if err := json.Unmarshal(v, &forms); err != nil {
			return nil, fmt.Errorf("locale: catalog %s: key %q: a text or an object of plural forms", l, k)
		}
		e := entry{forms: map[plural.Form]string{}}
		for name, text := range forms {
			f, ok := formNames[name]
			if !ok {
				return nil, fmt.Errorf("locale: catalog %s: key %q: unknown plural form %q", l, k, name)
			}
			e.forms[f] = text
		}
		if _, ok := e.forms[plural.Other]; !ok {
			return nil, fmt.Errorf("locale: catalog %s: key %q: plural forms need \"other\"", l, k)
		}
		c.entries[k] = e
	}
	return c, nil
}

// MetaOf returns how the catalog of l was made.
func MetaOf(l Lang) Meta {
	if c := load()[l]; c != nil {
		return c.meta
	}
	return Meta{}
}

// Keys returns every key of the catalog of l, sorted.
func Keys(l Lang) []string {
	c := load()[l]
	if c == nil {
		return nil
	}
	keys := make([]string, 0, len(c.entries))
	for k := range c.entries {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Complete reports whether the catalog of l has every key of the source
// catalog, so that every page and mail can use it.
func Complete(l Lang) bool {
	cs := load()
	src, c := cs[Default], cs[l]
	if c == nil {
		return false
	}
	for k := range src.entries {
		if _, ok := c.entries[k]; !ok {
			return false
		}
	}
	return true
}

// CompleteLangs returns the languages whose catalog is complete, in the
// order of All. Sender pages offer these.
func CompleteLangs() []Lang {
	var out []Lang
	for _, l := range All {
		if Complete(l) {
			out = append(out, l)
		}
	}
	return out
}

// RecipientScope lists the key prefixes that everything a recipient sees is
// made of. Every catalog must have every source key under them. They are, in
// groups:
//   - shared by every page and mail: the page layout (header, language
//     switch, footer links), common phrases, error-summary words, units,
//     formats, month and language names;
//   - the recipient pages, one prefix per page: the code form (receive),
//     the password and no-password forms (unlock, fragment), the contents
//     (open), expired or revoked (gone), locked, not found, problems and
//     the rate-limit page (toomany), the reply form and its confirmation
//     (reply), the page of a file request (filereq), the page of a
//     drop-off point (to), and the help for
//     recipients (help; the senders' help is
//     sendhelp);
//   - every mail, to recipients and to senders (mail).
//
// Sender pages (home, send, sendjs, mine, sendhelp, a11y, privacy) are
// outside it: they are shown only in complete catalogs.
var RecipientScope = []string{
	"layout.", "common.", "error.", "unit.", "format.", "month.", "size.", "lang.",
	"receive.", "unlock.", "fragment.", "open.", "gone.", "locked.", "notfound.",
	"problem.", "toomany.", "reply.", "help.", "filereq.", "to.",
	"mail.",
}

// InRecipientScope reports whether key is part of what recipients see.
func InRecipientScope(key string) bool {
	for _, p := range RecipientScope {
		if strings.HasPrefix(key, p) {
			return true
		}
	}
	return false
}
