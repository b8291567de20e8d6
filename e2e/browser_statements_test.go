package e2e

import (
	"strings"
	"testing"
)

// Issue 13 item 7 in a real browser: the statements of a configured
// organisation, in Dutch and English, with no axe violation and no
// sideways scrolling at 320 and 390 px (long addresses and URLs wrap).
func TestBrowserStatements(t *testing.T) {
	s := startBrowserServer(t,
		"--org-name", "Gemeente Voorbeeldstad-aan-de-Lange-Rivier",
		"--org-email", "klantcontactcentrum.informatievoorziening@gemeente-voorbeeldstad.example.nl",
		"--org-phone", "+31 58 123 4567", "--org-url", "https://www.gemeente-voorbeeldstad.example.nl/contact/klantcontactcentrum",
		"--controller", "College van burgemeester en wethouders van Voorbeeldstad",
		"--dpo-email", "functionaris.gegevensbescherming@gemeente-voorbeeldstad.example.nl",
		"--accessibility-status", "C", "--accessibility-statement-date", "2026-04-15", "--accessibility-audit-date", "2026-01-20",
		"--retention", "45d", "--audit-retention", "200d")
	b := newBrowser(t, s.base)
	want := map[string]map[string][]string{
		"nl": {
			"/privacy":       {"College van burgemeester en wethouders van Voorbeeldstad", "functionaris.gegevensbescherming@", "nog 45 dagen", "200 dagen", "Autoriteit Persoonsgegevens", "Onthoud mijn gegevens op dit apparaat"},
			"/accessibility": {"Status C", "15 april 2026", "20 januari 2026", "klantcontactcentrum.informatievoorziening@", "Nationale ombudsman", "zonder JavaScript"},
		},
		"en": {
			"/privacy":       {"College van burgemeester en wethouders van Voorbeeldstad", "functionaris.gegevensbescherming@", "for 45 days", "200 days", "Autoriteit Persoonsgegevens", "Remember my details on this device"},
			"/accessibility": {"Status C", "15 April 2026", "20 January 2026", "klantcontactcentrum.informatievoorziening@", "National Ombudsman", "without JavaScript"},
		},
	}
	for _, lang := range []string{"nl", "en"} {
		b.setLang(lang, "/")
		for _, p := range []string{"/privacy", "/accessibility"} {
			b.viewport(1280, 900)
			b.open(p)
			main := b.text("main")
			for _, w := range want[lang][p] {
				if !strings.Contains(main, w) {
					t.Errorf("%s (%s) does not say %q", p, lang, w)
				}
			}
			b.check("statement" + strings.ReplaceAll(p, "/", "-") + "-" + lang)
			for _, w := range []int64{390, 320} {
				b.viewport(w, 800)
				b.noSideways(p + " (" + lang + ") at " + itoa(w))
			}
			b.check("statement" + strings.ReplaceAll(p, "/", "-") + "-" + lang + "-320")
		}
	}
}
