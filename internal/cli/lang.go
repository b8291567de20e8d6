package cli

import (
	"strings"
	"sync"

	"github.com/kluis-nl/kluis/internal/locale"
)

// chooseLang returns the language of the command's texts: KLUIS_LANG, else
// the first of LC_ALL, LC_MESSAGES and LANG that is set (as every POSIX
// program chooses its messages; "nl_NL.UTF-8" is Dutch), else English. A
// locale variable naming a language the client does not speak ("C",
// "de_DE") gives English; KLUIS_LANG naming one is an error, since it was
// set for kluis alone.
func chooseLang(getenv func(string) string) (locale.Lang, error) {
	if v := strings.TrimSpace(getenv("KLUIS_LANG")); v != "" {
		if l, ok := localeLang(v); ok {
			return l, nil
		}
		return locale.EN, &cliError{code: exitUsage,
			msg:  locale.For(locale.EN).T("cli.err.lang", v, strings.Join(langCodes(), ", ")),
			hint: locale.For(locale.EN).T("cli.hint.lang")}
	}
	for _, k := range []string{"LC_ALL", "LC_MESSAGES", "LANG"} {
		if v := getenv(k); v != "" {
			if l, ok := localeLang(v); ok {
				return l, nil
			}
			return locale.EN, nil
		}
	}
	return locale.EN, nil
}

// localeLang reads a language from a locale name ("nl_NL.UTF-8",
// "nl_BE@euro", "en") and reports whether the client speaks it.
func localeLang(v string) (locale.Lang, bool) {
	v, _, _ = strings.Cut(v, ".")
	v, _, _ = strings.Cut(v, "@")
	l, ok := locale.Parse(v)
	if !ok {
		return "", false
	}
	for _, s := range cliLangs() {
		if s == l {
			return l, true
		}
	}
	return "", false
}

var cliLangs = sync.OnceValue(func() []locale.Lang {
	var want []string
	for _, k := range locale.Keys(locale.Default) {
		if strings.HasPrefix(k, "cli.") {
			want = append(want, k)
		}
	}
	var out []locale.Lang
	for _, l := range locale.All {
		have := map[string]bool{}
		for _, k := range locale.Keys(l) {
			have[k] = true
		}
		complete := true
		for _, k := range want {
			complete = complete && have[k]
		}
		if complete {
			out = append(out, l)
		}
	}
	return out
})

// langCodes lists the codes of the languages the client speaks.
func langCodes() []string {
	var out []string
	for _, l := range cliLangs() {
		out = append(out, string(l))
	}
	return out
}
