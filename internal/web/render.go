package web

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"strings"
	"time"

	"github.com/kluis-nl/kluis/internal/locale"
	"github.com/kluis-nl/kluis/internal/mail"
)

//go:embed templates
var templateFS embed.FS

type pageTemplate struct{ t *template.Template }

// parseTemplates parses every page with the layout, once per language, so
// that {{ t "key" }} needs no request state.
func parseTemplates(st *assets) (map[string]map[string]*pageTemplate, error) {
	pages, err := fs.Glob(templateFS, "templates/pages/*.html")
	if err != nil {
		return nil, err
	}
	out := map[string]map[string]*pageTemplate{}
	for _, lang := range languages {
		out[lang] = map[string]*pageTemplate{}
		for _, p := range pages {
			name := strings.TrimSuffix(strings.TrimPrefix(p, "templates/pages/"), ".html")
			t, err := template.New("").Funcs(funcs(lang, st)).ParseFS(templateFS, "templates/layout.html", "templates/partials/*.html", p)
			if err != nil {
				return nil, fmt.Errorf("web: template %s: %w", name, err)
			}
			out[lang][name] = &pageTemplate{t: t}
		}
	}
	return out, nil
}

func funcs(lang string, st *assets) template.FuncMap {
	return template.FuncMap{
		"t":      func(key string, args ...any) string { return translate(lang, key, args...) },
		"static": st.url,
		"date":   locale.For(locale.Lang(lang)).Date,
		"size":   locale.For(locale.Lang(lang)).Size,
		"code":   mail.GroupCode,
		"list":   func(xs ...string) []string { return xs },
		"field": func(v *view, id, typ, label, hint, autocomplete string, value any) fieldView {
			s, _ := value.(string)
			return fieldView{ID: id, Type: typ, Label: label, Hint: hint, Autocomplete: autocomplete, Value: s, Error: v.ErrorFor(id), Required: true}
		},
		"days": func(d time.Duration) string {
			n := int((d + 12*time.Hour) / (24 * time.Hour))
			if d < 24*time.Hour {
				if hours := int(max(d.Round(time.Hour), time.Hour) / time.Hour); hours > 1 {
					return translate(lang, "unit.hours", hours)
				}
				return translate(lang, "unit.hour")
			}
			if n == 1 {
				return translate(lang, "unit.day")
			}
			return translate(lang, "unit.days", n)
		},
	}
}

// view is what every page template gets.
type view struct {
	Lang    string
	Org     org
	Mailbox bool
	// Here is the page a language switch returns to (a local path).
	Here   string
	Errors []fieldError
	Policy policy
	// Demo is true when no organisation domains are configured: anyone
	// may send to anyone, and the start page says so.
	Demo bool
	D    any // the page's own data
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

func (h *Web) newView(r *http.Request, d any) *view {
	v := &view{Lang: language(r), Org: h.org, Mailbox: h.mailbox, Policy: h.policy, Demo: h.svc.Policy().Demo(), D: d}
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
	hd.Set("Content-Language", v.Lang)
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}
