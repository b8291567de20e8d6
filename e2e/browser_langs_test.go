package e2e

import (
	"bytes"
	"net/http"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/kluis-nl/kluis/internal/locale"
)

// sameAsEnglish are the texts a language writes as English does.
var sameAsEnglish = map[string]bool{"fy help.heading": true}

// TestBrowserRecipientLanguages walks the recipient's pages in each of the
// nine languages Kluis speaks to recipients, on a 320 px phone screen, as a
// recipient whose transfer the sender wrote in that language: the page
// follows the transfer's language without any choice by the recipient, has
// the language's texts (not the English fallback), runs right to left in
// Arabic, scrolls no page sideways and passes axe-core. Screenshots of every
// step (testout/TestBrowserRecipientLanguages_<lang>/) show the letters;
// CI installs fonts-noto-core for Arabic and Ukrainian.
func TestBrowserRecipientLanguages(t *testing.T) {
	needBrowser(t)
	s := startBrowserServer(t)
	for _, lang := range locale.All {
		t.Run(string(lang), func(t *testing.T) {
			pr := locale.For(lang)
			en := locale.For(locale.EN)
			pw := "Winter-Peer-" + string(lang) + "-58"
			var c created
			req := map[string]any{
				"sender":   map[string]string{"email": "sender@example.nl", "name": "Sanne de Vries"},
				"to":       []string{"to@example.nl"},
				"message":  "Goedemiddag,\nhierbij de stukken.",
				"password": password{Mode: "manual", Value: pw},
				"lang":     string(lang),
			}
			if st, code := call(t, "POST", s.base+"/api/v1/transfers", s.senderKey(t), req, &c); st != http.StatusCreated {
				t.Fatalf("create transfer in %s: %d %s", lang, st, code)
			}
			src := newSource(31, 25_000, "BRIEF")
			if st, code := s.plainUpload(t, &c, "brief-"+string(lang)+".pdf", src, false); st != http.StatusCreated {
				t.Fatalf("upload: %d %s", st, code)
			}
			access, _ := s.finish(t, &c)

			b := newBrowser(t, s.base)
			b.viewport(320, 640)
			page := func(name string) {
				t.Helper()
				if got := b.eval(`document.documentElement.lang`); got != string(lang) {
					t.Errorf("%s: html lang=%q, want %q", name, got, lang)
				}
				if got := b.eval(`document.documentElement.dir`); got != lang.Dir() {
					t.Errorf("%s: html dir=%q, want %q", name, got, lang.Dir())
				}
				b.noSideways(name)
				b.check(name)
			}
			text := func(name, sel, key string, args ...any) {
				t.Helper()
				want := pr.T(key, args...)
				if got := b.text(sel); !strings.Contains(got, want) {
					t.Errorf("%s: %s is %q, want %q", name, sel, got, want)
				}
				if lang != locale.EN && lang != locale.NL && want == en.T(key, args...) && !sameAsEnglish[string(lang)+" "+key] {
					t.Errorf("%s: %s is still the English text %q", name, key, want)
				}
			}

			b.open("/r/" + access)
			text("password", "h1", "unlock.heading")
			page("password")

			b.do(chromedp.SendKeys(chromedp.ID("password"), "not the password"))
			b.submit("main form button[type=submit]")
			text("wrong-password", "[data-error-summary]", "error.summary_title")
			page("wrong-password")

			b.do(chromedp.SetValue(chromedp.ID("password"), pw))
			b.submit("main form button[type=submit]")
			if p := b.path(); p != "/r/"+access+"/open" {
				t.Fatalf("after the password: at %s", p)
			}
			text("contents", "h1", "open.heading_from", "Sanne de Vries")
			page("contents")
			if got := b.download(`a[href*="/files/"]`); !bytes.Equal(got, src.bytesAt(0, src.size)) {
				t.Errorf("download: %d bytes, not the file", len(got))
			}

			b.open("/r/" + access + "/reply")
			text("reply", "h1", "reply.heading")
			page("reply")

			// Pages outside the link follow the language switch (the
			// browser itself asks for English).
			b.setLang(string(lang), "/help")
			text("help", "h1", "help.heading")
			page("help")

			b.setLang(string(lang), "/receive")
			text("receive", "h1", "receive.heading")
			page("receive")
		})
	}
}
