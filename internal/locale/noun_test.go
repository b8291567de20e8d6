package locale

import (
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// One noun for a transfer per language (issue 13, item 9): the glossary's
// word, in every page, mail and CLI text. Each language lists the nouns a
// translator or an older text reached for instead. Flag names such as
// --max-transfer-size are names, not words, and stay as they are.
var otherTransferNouns = map[Lang][]string{
	NL: {`[Tt]ransfers?`},
	EN: {`[Ss]hipments?`, `[Cc]onsignments?`},
	FY: {`[Tt]ransfers?`, `[Oo]erdracht`},
	DE: {`[Tt]ransfers?`, `Übertragung(en)?`},
	FR: {`[Tt]ransferts?`},
	PL: {`[Tt]ransfer(y|u|ów)?`},
	TR: {`[Tt]ransfer(ler)?`},
	UK: {`[Тт]рансфер\p{L}*`},
	AR: {`نقل`},
}

func TestCatalogsUseTheGlossaryNounForATransfer(t *testing.T) {
	cs := load()
	for _, l := range All {
		word := glossaryWord(t, l, "transfer")
		c := cs[l]
		for _, pat := range otherTransferNouns[l] {
			// Not part of a longer word or a --flag-name.
			re := regexp.MustCompile(`(^|[^\p{L}\p{N}_-])(` + pat + `)($|[^\p{L}\p{N}_-])`)
			var bad []string
			for k, e := range c.entries {
				texts := []string{e.text}
				for _, f := range e.forms {
					texts = append(texts, f)
				}
				for _, s := range texts {
					if m := re.FindStringSubmatch(s); m != nil {
						bad = append(bad, k+" ("+m[2]+")")
						break
					}
				}
			}
			sort.Strings(bad)
			if len(bad) > 0 {
				t.Errorf("%s: %d texts use another noun where glossary/%s.md says %q:\n  %s", l, len(bad), l, word, strings.Join(bad, "\n  "))
			}
		}
	}
}

// glossaryWord returns the word the glossary of l gives for term.
func glossaryWord(t *testing.T, l Lang, term string) string {
	t.Helper()
	b, err := os.ReadFile("glossary/" + string(l) + ".md")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		cells := strings.Split(line, "|")
		if len(cells) > 3 && strings.TrimSpace(cells[1]) == term {
			return strings.TrimSpace(cells[2])
		}
	}
	t.Fatalf("glossary/%s.md has no row for %q", l, term)
	return ""
}
