package web

import (
	"embed"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
)

//go:embed i18n/*.json
var catalogFS embed.FS

// languages are the page languages; the first is the default.
var languages = []string{"nl", "en"}

// catalogs[lang][key] is the text of key. Parsed at start-up; a broken
// catalog panics there and in every test.
var catalogs = func() map[string]map[string]string {
	all := map[string]map[string]string{}
	for _, lang := range languages {
		b, err := catalogFS.ReadFile("i18n/" + lang + ".json")
		if err != nil {
			panic(err)
		}
		m := map[string]string{}
		if err := json.Unmarshal(b, &m); err != nil {
			panic(fmt.Sprintf("web: i18n/%s.json: %v", lang, err))
		}
		all[lang] = m
	}
	return all
}()

// translate returns the text of key in lang, formatted with args. A
// missing key shows as the key itself (the catalog test prevents that).
func translate(lang, key string, args ...any) string {
	s, ok := catalogs[lang][key]
	if !ok {
		return key
	}
	if len(args) > 0 {
		return fmt.Sprintf(s, args...)
	}
	return s
}

const langCookie = "kluis-lang"

// language picks the page language: the cookie, then Accept-Language,
// then Dutch.
func language(r *http.Request) string {
	if c, err := r.Cookie(langCookie); err == nil {
		if l := known(c.Value); l != "" {
			return l
		}
	}
	best, bestQ := "", -1.0
	for _, part := range strings.Split(r.Header.Get("Accept-Language"), ",") {
		tag, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		q := 1.0
		if v, ok := strings.CutPrefix(strings.TrimSpace(params), "q="); ok {
			if _, err := fmt.Sscanf(v, "%g", &q); err != nil {
				q = 0
			}
		}
		base, _, _ := strings.Cut(tag, "-")
		if l := known(base); l != "" && q > bestQ && q > 0 {
			best, bestQ = l, q
		}
	}
	if best != "" {
		return best
	}
	return languages[0]
}

func known(l string) string {
	l = strings.ToLower(strings.TrimSpace(l))
	for _, k := range languages {
		if l == k {
			return k
		}
	}
	return ""
}
