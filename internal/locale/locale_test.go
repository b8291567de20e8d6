package locale

import (
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestCatalogsAreConsistent(t *testing.T) {
	for _, p := range Problems() {
		t.Error(p)
	}
}

func TestEveryLanguageHasACatalogAndAName(t *testing.T) {
	for _, l := range All {
		if l.Name() == "" {
			t.Errorf("%s has no name", l)
		}
		if len(Keys(l)) == 0 {
			t.Errorf("%s has an empty catalog", l)
		}
	}
	if !Complete(NL) || !Complete(EN) {
		t.Fatal("Dutch and English must be complete")
	}
	if got := CompleteLangs(); len(got) < 2 || got[0] != NL || got[1] != EN {
		t.Fatalf("CompleteLangs() = %v, want Dutch and English first", got)
	}
}

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Lang
		ok   bool
	}{
		{"nl", NL, true}, {"EN", EN, true}, {"en-GB", EN, true}, {"en_US", EN, true},
		{" fy ", FY, true}, {"fy-NL", FY, true}, {"ar-MA", AR, true}, {"uk", UK, true},
		{"tr-TR", TR, true}, {"de-AT", DE, true}, {"fr-BE", FR, true}, {"pl", PL, true},
		{"es", "", false}, {"", "", false}, {"x", "", false}, {"nl\r\n", NL, true}, {"../nl", "", false},
	} {
		got, ok := Parse(tc.in)
		if got != tc.want || ok != tc.ok {
			t.Errorf("Parse(%q) = %q, %v; want %q, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

func TestMatch(t *testing.T) {
	staff := []Lang{NL, EN}
	for _, tc := range []struct {
		accept string
		among  []Lang
		want   Lang
	}{
		{"", staff, NL},
		{"garbage;;;", staff, NL},
		{"en-US,en;q=0.9", staff, EN},
		{"de-DE,de;q=0.9,en;q=0.8", staff, EN},
		{"de-DE,de;q=0.9,en;q=0.8", All, DE},
		{"fr-CH, fr;q=0.9, en;q=0.8, de;q=0.7, *;q=0.5", All, FR},
		{"en;q=0.1, nl;q=0.9", staff, NL},
		{"ar-EG", All, AR},
		{"ar-EG", staff, NL},
		{"uk-UA,ru;q=0.5", All, UK},
		{"es-ES", All, NL},
		{"fy", All, FY},
		{"en;q=0", staff, NL},
	} {
		if got := Match(tc.accept, tc.among); got != tc.want {
			t.Errorf("Match(%q, %v) = %s, want %s", tc.accept, tc.among, got, tc.want)
		}
	}
}

func TestPluralForms(t *testing.T) {
	for _, tc := range []struct {
		lang Lang
		n    int
		want string
	}{
		{NL, 1, "1 dag"}, {NL, 2, "2 dagen"}, {NL, 0, "0 dagen"},
		{EN, 1, "1 day"}, {EN, 21, "21 days"},
		{FR, 0, "0 jour"}, {FR, 1, "1 jour"}, {FR, 2, "2 jours"},
		{PL, 1, "1 dzień"}, {PL, 2, "2 dni"}, {PL, 5, "5 dni"}, {PL, 22, "22 dni"},
		{UK, 1, "1 день"}, {UK, 3, "3 дні"}, {UK, 5, "5 днів"}, {UK, 21, "21 день"}, {UK, 11, "11 днів"},
		{AR, 1, "يوم واحد"}, {AR, 2, "يومان"}, {AR, 3, "3 أيام"}, {AR, 11, "11 يومًا"}, {AR, 100, "100 يوم"},
		{TR, 7, "7 gün"}, {DE, 1, "1 Tag"}, {DE, 30, "30 Tage"}, {FY, 1, "1 dei"}, {FY, 7, "7 dagen"},
	} {
		if got := For(tc.lang).N("unit.days", tc.n); got != tc.want {
			t.Errorf("%s: N(unit.days, %d) = %q, want %q", tc.lang, tc.n, got, tc.want)
		}
	}
}

func TestDateAndSize(t *testing.T) {
	at := time.Date(2026, 12, 5, 13, 30, 0, 0, time.UTC) // 14:30 in Amsterdam
	for _, tc := range []struct {
		lang             Lang
		date, day, sizes string
	}{
		{NL, "5 december 2026, 14:30", "5 december 2026", "1 byte|999 bytes|1 kB|1,5 MB|2,00 GB"},
		{EN, "5 December 2026, 14:30", "5 December 2026", "1 byte|999 bytes|1 kB|1.5 MB|2.00 GB"},
		{DE, "5. Dezember 2026, 14:30 Uhr", "5. Dezember 2026", "1 Byte|999 Byte|1 kB|1,5 MB|2,00 GB"},
		{FR, "5 décembre 2026 à 14:30", "5 décembre 2026", "1 octet|999 octets|1 ko|1,5 Mo|2,00 Go"},
		{PL, "5 grudnia 2026, 14:30", "5 grudnia 2026", "1 bajt|999 bajtów|1 kB|1,5 MB|2,00 GB"},
	} {
		p := For(tc.lang)
		if got := p.Date(at); got != tc.date {
			t.Errorf("%s: Date = %q, want %q", tc.lang, got, tc.date)
		}
		if got := p.Day(at); got != tc.day {
			t.Errorf("%s: Day = %q, want %q", tc.lang, got, tc.day)
		}
		var sizes []string
		for _, n := range []int64{1, 999, 1000, 1_500_000, 2_000_000_000} {
			sizes = append(sizes, p.Size(n))
		}
		if got := strings.Join(sizes, "|"); got != tc.sizes {
			t.Errorf("%s: sizes = %q, want %q", tc.lang, got, tc.sizes)
		}
		if got := p.Size(-1); got != "" {
			t.Errorf("%s: Size(-1) = %q, want empty", tc.lang, got)
		}
	}
}

func TestDuration(t *testing.T) {
	p := For(NL)
	for _, tc := range []struct {
		d    time.Duration
		want string
	}{
		{time.Minute, "1 uur"}, {3 * time.Hour, "3 uur"}, {24 * time.Hour, "1 dag"}, {7 * 24 * time.Hour, "7 dagen"},
	} {
		if got := p.Duration(tc.d); got != tc.want {
			t.Errorf("Duration(%s) = %q, want %q", tc.d, got, tc.want)
		}
	}
}

func TestFallbackAndMissingKey(t *testing.T) {
	if got := For("xx").Lang(); got != Default {
		t.Errorf("For(unknown) speaks %s, want %s", got, Default)
	}
	if got := For(NL).T("no.such.key"); got != "no.such.key" {
		t.Errorf("a missing key shows as %q, want the key", got)
	}
}

func TestDir(t *testing.T) {
	for _, l := range All {
		want := "ltr"
		if l == AR {
			want = "rtl"
		}
		if got := l.Dir(); got != want {
			t.Errorf("%s.Dir() = %s, want %s", l, got, want)
		}
	}
}

func TestPlaceholders(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []placeholder
		err  bool
	}{
		{"no verbs", nil, false},
		{"100%% sure", nil, false},
		{"%s and %d", []placeholder{{1, 's'}, {2, 'd'}}, false},
		{"%[2]s before %[1]d", []placeholder{{1, 'd'}, {2, 's'}}, false},
		{"%02d:%-5.2f", []placeholder{{1, 'd'}, {2, 'f'}}, false},
		{"%[1]s twice %[1]s", []placeholder{{1, 's'}}, false},
		{"trailing %", nil, true},
		{"%[x]s", nil, true},
		{"%[1", nil, true},
	} {
		got, err := placeholders(tc.in)
		if (err != nil) != tc.err {
			t.Errorf("placeholders(%q) error = %v, want error %v", tc.in, err, tc.err)
			continue
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("placeholders(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

// A catalog that breaks the rules is found by the same checks the real
// ones pass.
func TestProblemsFindsMistakes(t *testing.T) {
	bad := map[string]string{
		"nl.json": `{"_meta":{"made":"x"},"a":"%s van %d","b":{"one":"%d dag","other":"%d dagen"},"c":"tekst"}`,
		"en.json": `{"_meta":{"made":"x"},"a":"%d of %s","b":"days","x":"extra"}`,
	}
	nl, err := parseCatalog(NL, []byte(bad["nl.json"]))
	if err != nil {
		t.Fatal(err)
	}
	en, err := parseCatalog(EN, []byte(bad["en.json"]))
	if err != nil {
		t.Fatal(err)
	}
	saved := catalogs
	loadOnce.Do(func() {})
	catalogs = map[Lang]*catalog{}
	for _, l := range All {
		catalogs[l] = &catalog{lang: l, meta: Meta{Made: "x"}, entries: map[string]entry{}}
	}
	catalogs[NL], catalogs[EN] = nl, en
	defer func() { catalogs = saved }()
	got := strings.Join(Problems(), "\n")
	for _, want := range []string{
		"en: a: placeholders",         // verbs swapped without indexes
		"en: b: the source is plural", // plain where the source is plural
		"en: c is missing",            // English must be complete
		"en: x is not in the source",  // a key the source lacks
	} {
		if !strings.Contains(got, want) {
			t.Errorf("Problems() does not report %q; got:\n%s", want, got)
		}
	}
	if strings.Contains(got, "de: c is missing") {
		t.Errorf("a key outside the recipient scope is required of German:\n%s", got)
	}
}

func TestParseCatalogRejects(t *testing.T) {
	for _, in := range []string{
		`not json`,
		`{"k": 3}`,
		`{"k": {"one": "a"}}`,
		`{"k": {"several": "a", "other": "b"}}`,
		`{"_meta": "text"}`,
	} {
		if _, err := parseCatalog(NL, []byte(in)); err == nil {
			t.Errorf("parseCatalog(%s) accepted it", in)
		}
	}
}

// Every catalog records how it was made and which glossary it follows, so a
// reader of the catalog (and of docs/i18n) knows whether a native speaker
// has reviewed it. Only nl and en are the team's own texts.
func TestEveryCatalogSaysHowItWasMade(t *testing.T) {
	for _, l := range All {
		m := MetaOf(l)
		if strings.TrimSpace(m.Made) == "" {
			t.Errorf("%s: _meta.made is empty", l)
		}
		if m.Glossary != "glossary/"+string(l)+".md" {
			t.Errorf("%s: _meta.glossary = %q, want glossary/%s.md", l, m.Glossary, l)
		}
		if _, err := os.Stat(m.Glossary); err != nil {
			t.Errorf("%s: glossary: %v", l, err)
		}
		if (l == NL || l == EN) && !m.Reviewed {
			t.Errorf("%s: the source catalogs are reviewed by the team", l)
		}
	}
	if MetaOf("xx") != (Meta{}) {
		t.Error("an unknown language has a meta")
	}
}

// The wait on the rate-limit page is counted in each language's plural
// forms: "1 seconde", not "1 seconden"; Arabic says "ثوانٍ" for 3 to 10.
func TestWaitIsCountedInPluralForms(t *testing.T) {
	for _, tc := range []struct {
		lang Lang
		key  string
		n    int
		want string
	}{
		{NL, "toomany.wait_seconds", 1, "1 seconde "},
		{NL, "toomany.wait_minutes", 2, "2 minuten "},
		{EN, "toomany.wait_minutes", 1, "1 minute."},
		{PL, "toomany.wait_seconds", 5, "5 sekund."},
		{UK, "toomany.wait_minutes", 3, "3 хвилини."},
		{AR, "toomany.wait_seconds", 5, "5 ثوانٍ"},
		{AR, "toomany.wait_minutes", 2, "دقيقتين"},
	} {
		if got := For(tc.lang).T(tc.key, tc.n); !strings.Contains(got, tc.want) {
			t.Errorf("%s %s %d: %q, want it to hold %q", tc.lang, tc.key, tc.n, got, tc.want)
		}
	}
}
