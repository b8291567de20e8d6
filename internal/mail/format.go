package mail

import (
	"embed"
	"fmt"
	htmltemplate "html/template"
	"strings"
	texttemplate "text/template"

	"github.com/kluis-nl/kluis/internal/locale"
)

//go:embed templates
var templateFS embed.FS

type templateSet struct {
	text *texttemplate.Template
	html *htmltemplate.Template
}

// templates[lang][kind]: one template per kind (its text and HTML part,
// each with the layout), parsed once per language at start-up so that
// {{ t "key" }} needs no state of its own; a broken template panics there
// (and in every test), never at send time.
var templates = func() map[locale.Lang]map[Kind]*templateSet {
	all := map[locale.Lang]map[Kind]*templateSet{}
	for _, lang := range locale.All {
		all[lang] = map[Kind]*templateSet{}
		p := locale.For(lang)
		for _, k := range Kinds {
			t := texttemplate.Must(texttemplate.New("").Funcs(texttemplate.FuncMap(funcMap(p))).ParseFS(templateFS,
				"templates/layout.txt", "templates/"+string(k)+".txt"))
			h := htmltemplate.Must(htmltemplate.New("").Funcs(htmlFuncs(p)).ParseFS(templateFS,
				"templates/layout.html", "templates/"+string(k)+".html"))
			for _, name := range []string{"subject", "layout", "content", "footer"} {
				if t.Lookup(name) == nil {
					panic(fmt.Sprintf("mail: %s.txt: template %q missing", k, name))
				}
			}
			for _, name := range []string{"layout", "content", "footer"} {
				if h.Lookup(name) == nil {
					panic(fmt.Sprintf("mail: %s.html: template %q missing", k, name))
				}
			}
			all[lang][k] = &templateSet{text: t, html: h}
		}
	}
	return all
}()

func trustedHTML(s string) htmltemplate.HTML { return htmltemplate.HTML(s) } // #nosec: s comes from SanitizeBody

// fileSummary is what a mail says about a transfer's files.
type fileSummary struct {
	Named bool      // every file has a name: list them
	Files []FileRef // the files
	Count int
	Total int64 // sum of sizes; -1 if one is unknown
}

func summarize(files []FileRef) fileSummary {
	s := fileSummary{Files: files, Count: len(files), Named: len(files) > 0}
	for _, f := range files {
		if f.Name == "" {
			s.Named = false
		}
		if f.Size < 0 || s.Total < 0 {
			s.Total = -1
		} else {
			s.Total += f.Size
		}
	}
	return s
}

// fileLabel names a file in a mail: its name when set, else its position
// ("file 2 of 3"); Index -1 means all files as a ZIP.
func fileLabel(p *locale.Printer, f FileRef) string {
	switch {
	case f.Index == -1:
		return p.T("mail.common.all_zip")
	case f.Name != "":
		return f.Name
	case f.Count > 0:
		return p.T("mail.common.file_of", f.Index, f.Count)
	}
	return p.T("mail.common.file_n", f.Index)
}

// funcMap holds the functions both parts use, writing in p's language. In
// the HTML part their results are escaped like any other value.
func funcMap(p *locale.Printer) map[string]any {
	return map[string]any{
		"t":     p.T,
		"n":     p.N,
		"date":  p.Date,
		"size":  p.Size,
		"files": summarize,
		"label": func(f FileRef) string { return fileLabel(p, f) },
		"join":  strings.Join,
		"button": func(url, label string) buttonData {
			return buttonData{URL: url, Label: label}
		},
	}
}

// htmlFuncs adds what only the HTML part needs: th, a catalog text with
// markup in its arguments (a bold date, a link), and the makers of that
// markup. th is for element content only, never in an attribute.
func htmlFuncs(p *locale.Printer) htmltemplate.FuncMap {
	f := htmltemplate.FuncMap(funcMap(p))
	f["th"] = func(key string, args ...any) htmltemplate.HTML {
		// Each text argument stands in as a token while the catalog text
		// is escaped, then becomes itself: escaped, or as it is when it
		// is markup made here.
		var subst []string
		for i, a := range args {
			var s string
			switch a := a.(type) {
			case htmltemplate.HTML:
				s = string(a)
			case string:
				s = htmltemplate.HTMLEscapeString(a)
			default:
				continue
			}
			args[i] = fmt.Sprintf("\ue000%d\ue001", i)
			subst = append(subst, args[i].(string), s)
		}
		return htmltemplate.HTML(strings.NewReplacer(subst...).Replace(htmltemplate.HTMLEscapeString(p.T(key, args...))))
	}
	f["strong"] = func(s string) htmltemplate.HTML {
		return htmltemplate.HTML("<strong>" + htmltemplate.HTMLEscapeString(s) + "</strong>")
	}
	// link makes a link that shows its own address; url is one the
	// caller checked with isWebURL.
	f["link"] = func(url string) htmltemplate.HTML {
		u := htmltemplate.HTMLEscapeString(url)
		return htmltemplate.HTML(`<a href="` + u + `" style="color:#154273;">` + u + `</a>`)
	}
	return f
}

type buttonData struct{ URL, Label string }
