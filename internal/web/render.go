package web

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"strings"

	"github.com/kluis-nl/kluis/internal/locale"
	"github.com/kluis-nl/kluis/internal/mail"
)

//go:embed templates
var templateFS embed.FS

type pageTemplate struct{ t *template.Template }

// parseTemplates parses every page with the layout, once per language of
// package locale, so that {{ t "key" }} needs no request state.
func parseTemplates(st *assets) (map[locale.Lang]map[string]*pageTemplate, error) {
	pages, err := fs.Glob(templateFS, "templates/pages/*.html")
	if err != nil {
		return nil, err
	}
	out := map[locale.Lang]map[string]*pageTemplate{}
	for _, lang := range locale.All {
		out[lang] = map[string]*pageTemplate{}
		for _, p := range pages {
			name := strings.TrimSuffix(strings.TrimPrefix(p, "templates/pages/"), ".html")
			t, err := template.New("").Funcs(funcs(locale.For(lang), st)).ParseFS(templateFS, "templates/layout.html", "templates/partials/*.html", p)
			if err != nil {
				return nil, fmt.Errorf("web: template %s: %w", name, err)
			}
			out[lang][name] = &pageTemplate{t: t}
		}
	}
	return out, nil
}

func funcs(p *locale.Printer, st *assets) template.FuncMap {
	return template.FuncMap{
		"t":      p.T,
		"static": st.url,
		"date":   p.Date,
		"day":    p.Day,
		"size":   p.Size,
		"days":   p.Duration,
		"code":   mail.GroupCode,
		"list":   func(xs ...string) []string { return xs },
		"dec":    func(n int) int { return n - 1 },
		// sfield is an optional search field (the admin console's).
		"sfield": func(id, typ, label, hint, value string) fieldView {
			return fieldView{ID: id, Type: typ, Label: label, Hint: hint, Value: value}
		},
		"field": func(v *view, id, typ, label, hint, autocomplete string, value any) fieldView {
			s, _ := value.(string)
			return fieldView{ID: id, Type: typ, Label: label, Hint: hint, Autocomplete: autocomplete, Value: s, Error: v.ErrorFor(id), Required: true}
		},
	}
}

// view is what every page template gets.
type view struct {
	Lang locale.Lang // the page's language; its Dir is the page's direction
	// Langs are what the language switch offers: every language on a
	// recipient page, the complete ones on a sender page.
	Langs   []locale.Lang
	Org     org
	Mailbox bool
	// Here is the page a language switch returns to (a local path).
	Here   string
	Errors []fieldError
	Policy policy
	// Demo is true when no organisation domains are configured: anyone
	// may send to anyone, and the start page says so.
	Demo bool
	// SSO offers "Sign in with <organisation>" (staff single sign-on).
	SSO bool
	D   any // the page's own data
}

// fieldView is what the "field" partial gets: catalog keys for the texts.
type fieldView struct {
	ID, Type, Label, Hint, Autocomplete, Value, Error string
	Required                                          bool
}

// fieldError is one entry of an error summary: the field's id and the
// catalog key of its message.
type fieldError struct {
	Field string
	Key   string
}

// ErrorFor returns the message key for a field, or "".
func (v *view) ErrorFor(field string) string {
	for _, e := range v.Errors {
		if e.Field == field {
			return e.Key
		}
	}
	return ""
}

func (h *Web) newView(r *http.Request, d any) *view { return h.viewFor(r, d, true) }

// viewFor is newView; lookup is pageLang's.
func (h *Web) viewFor(r *http.Request, d any, lookup bool) *view {
	v := &view{Lang: h.pageLang(r, lookup), Langs: switchLangs(recipientPath(r.URL.Path)),
		Org: h.org, Mailbox: h.mailbox, Policy: h.policy, Demo: h.svc.Policy().Demo(), SSO: h.sso != nil, D: d}
	if r.Method == http.MethodGet {
		v.Here = r.URL.Path
	}
	return v
}

// render writes a page. Pages are never stored by caches: some show
// personal data, and none is worth the risk.
func (h *Web) render(w http.ResponseWriter, r *http.Request, status int, page string, v *view) {
	if v == nil {
		v = h.newView(r, nil)
	}
	if v.Here == "" {
		v.Here = "/"
	}
	pt, ok := h.tmpl[v.Lang][page]
	if !ok {
		h.log.Error("web: no such page template", "page", page)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	var buf bytes.Buffer
	if err := pt.t.ExecuteTemplate(&buf, "layout", v); err != nil {
		h.log.Error("web: render", "page", page, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	hd := w.Header()
	hd.Set("Content-Type", "text/html; charset=utf-8")
	hd.Set("Cache-Control", "no-store")
	hd.Set("Content-Language", string(v.Lang))
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}
