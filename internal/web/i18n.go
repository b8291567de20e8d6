package web

// The language of a page. Every text comes from package locale; this file
// only decides which language a page is shown in (see chooseLang).

import (
	"net/http"
	"slices"
	"strings"

	"github.com/kluis-nl/kluis/internal/locale"
)

// langCookie holds the language a visitor chose with the language switch.
const langCookie = "kluis-lang"

// recipientPath reports whether path is a recipient page: the code form,
// everything under a link (/r/{access}/…, its error pages included) and the
// help for recipients. Recipient pages speak every language of
// locale.All; every other page is a sender page, shown only in a language
// whose catalog is complete.
func recipientPath(path string) bool {
	return path == "/receive" || path == "/help" || strings.HasPrefix(path, "/r/") || strings.HasPrefix(path, "/q/") ||
		strings.HasPrefix(path, "/to/")
}

// chooseLang is the rule for a page's language.
//
// A recipient page is in the language the visitor chose with the
// language switch (the cookie), else in the transfer's language (the one
// the sender chose for the recipients; transferLang is asked only then, and
// gives "" when the page has no known link), else the best match of the
// browser's Accept-Language among all languages, else Dutch.
//
// A sender page is in the chosen language if its catalog is complete,
// else in the complete language that best matches the chosen one and then
// the browser's Accept-Language (a Frisian visitor whose browser also asks
// for Dutch gets Dutch), else Dutch.
func chooseLang(recipient bool, cookie string, transferLang func() string, acceptLanguage string) locale.Lang {
	chosen, ok := locale.Parse(cookie)
	if recipient {
		if ok {
			return chosen
		}
		if l, ok := locale.Parse(transferLang()); ok {
			return l
		}
		return locale.Match(acceptLanguage, locale.All)
	}
	complete := locale.CompleteLangs()
	if !ok {
		return locale.Match(acceptLanguage, complete)
	}
	if slices.Contains(complete, chosen) {
		return chosen
	}
	wish := string(chosen)
	if strings.TrimSpace(acceptLanguage) != "" {
		wish += "," + acceptLanguage
	}
	return locale.Match(wish, complete)
}

// pageLang is the language of the page r asks for (chooseLang). lookup
// allows asking the engine for the transfer's language; the rate-limit
// page does not, so that a flood costs no database work.
func (h *Web) pageLang(r *http.Request, lookup bool) locale.Lang {
	cookie := ""
	if c, err := r.Cookie(langCookie); err == nil {
		cookie = c.Value
	}
	transferLang := func() string {
		access := r.PathValue("access")
		if !lookup || access == "" {
			return ""
		}
		if strings.HasPrefix(r.URL.Path, "/q/") {
			return h.svc.FileRequestLang(r.Context(), access)
		}
		return h.svc.LinkLang(r.Context(), access)
	}
	return chooseLang(recipientPath(r.URL.Path), cookie, transferLang, r.Header.Get("Accept-Language"))
}

// switchLangs are the languages the language switch offers on a page.
func switchLangs(recipient bool) []locale.Lang {
	if recipient {
		return locale.All
	}
	return locale.CompleteLangs()
}
