package mail

import (
	"embed"
	"fmt"
	htmltemplate "html/template"
	"strconv"
	"strings"
	texttemplate "text/template"
	"time"
	_ "time/tzdata" // Europe/Amsterdam also on hosts without zoneinfo
)

//go:embed templates
var templateFS embed.FS

type templateSet struct {
	text *texttemplate.Template
	html *htmltemplate.Template
}

// templates[lang][kind], parsed once at start-up; a broken template panics
// there (and in every test), never at send time.
var templates = func() map[string]map[Kind]*templateSet {
	all := map[string]map[Kind]*templateSet{}
	for _, lang := range Languages {
		all[lang] = map[Kind]*templateSet{}
		funcs := funcMap(lang)
		for _, k := range Kinds {
			t := texttemplate.Must(texttemplate.New("").Funcs(texttemplate.FuncMap(funcs)).ParseFS(templateFS,
				"templates/layout.txt", "templates/"+lang+"/common.txt", "templates/"+lang+"/"+string(k)+".txt"))
			h := htmltemplate.Must(htmltemplate.New("").Funcs(htmltemplate.FuncMap(funcs)).ParseFS(templateFS,
				"templates/layout.html", "templates/"+lang+"/common.html", "templates/"+lang+"/"+string(k)+".html"))
			for _, name := range []string{"subject", "layout", "content", "footer"} {
				if t.Lookup(name) == nil {
					panic(fmt.Sprintf("mail: %s/%s.txt: template %q missing", lang, k, name))
				}
			}
			for _, name := range []string{"layout", "content", "footer"} {
				if h.Lookup(name) == nil {
					panic(fmt.Sprintf("mail: %s/%s.html: template %q missing", lang, k, name))
				}
			}
			all[lang][k] = &templateSet{text: t, html: h}
		}
	}
	return all
}()

func trustedHTML(s string) htmltemplate.HTML { return htmltemplate.HTML(s) } // #nosec: s comes from SanitizeBody

// amsterdam is the time zone of every date in a mail.
var amsterdam = func() *time.Location {
	if loc, err := time.LoadLocation("Europe/Amsterdam"); err == nil {
		return loc
	}
	return time.FixedZone("CET", 3600)
}()

var months = map[string][12]string{
	"nl": {"januari", "februari", "maart", "april", "mei", "juni", "juli", "augustus", "september", "oktober", "november", "december"},
	"en": {"January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"},
}

// FormatDate formats t in Europe/Amsterdam time: "5 december 2026, 14:30"
// (nl) or "5 December 2026, 14:30" (en).
func FormatDate(t time.Time, lang string) string {
	t = t.In(amsterdam)
	return fmt.Sprintf("%d %s %d, %02d:%02d", t.Day(), months[Lang(lang)][t.Month()-1], t.Year(), t.Hour(), t.Minute())
}

// FormatSize formats a byte count in decimal units: "1,5 MB" (nl) or
// "1.5 MB" (en). A negative size (unknown) gives "".
func FormatSize(n int64, lang string) string {
	var s string
	switch {
	case n < 0:
		return ""
	case n >= 1_000_000_000:
		s = strconv.FormatFloat(float64(n)/1e9, 'f', 2, 64) + " GB"
	case n >= 1_000_000:
		s = strconv.FormatFloat(float64(n)/1e6, 'f', 1, 64) + " MB"
	case n >= 1_000:
		s = strconv.FormatFloat(float64(n)/1e3, 'f', 0, 64) + " kB"
	default:
		if n == 1 {
			return "1 byte"
		}
		return strconv.FormatInt(n, 10) + " bytes"
	}
	if Lang(lang) == "nl" {
		s = strings.Replace(s, ".", ",", 1)
	}
	return s
}

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

var words = map[string]map[string]string{
	"nl": {
		"file_of":   "bestand %d van %d",
		"file_n":    "bestand %d",
		"all_zip":   "alle bestanden (als zip-bestand)",
		"to":        "Aan",
		"cc":        "Cc",
		"bcc":       "Bcc",
		"lang_nl":   "Nederlands",
		"lang_en":   "Engels",
		"pw_none":   "geen wachtwoord",
		"pw_gen":    "gegenereerd",
		"pw_manual": "zelf ingevoerd",
	},
	"en": {
		"file_of":   "file %d of %d",
		"file_n":    "file %d",
		"all_zip":   "all files (as a ZIP file)",
		"to":        "To",
		"cc":        "Cc",
		"bcc":       "Bcc",
		"lang_nl":   "Dutch",
		"lang_en":   "English",
		"pw_none":   "no password",
		"pw_gen":    "generated",
		"pw_manual": "entered manually",
	},
}

// FileLabel names a file in a mail: its name when set, else its position
// ("file 2 of 3"); Index -1 means all files as a ZIP.
func FileLabel(f FileRef, lang string) string {
	w := words[Lang(lang)]
	switch {
	case f.Index == -1:
		return w["all_zip"]
	case f.Name != "":
		return f.Name
	case f.Count > 0:
		return fmt.Sprintf(w["file_of"], f.Index, f.Count)
	}
	return fmt.Sprintf(w["file_n"], f.Index)
}

func funcMap(lang string) map[string]any {
	w := words[lang]
	return map[string]any{
		"date":  func(t time.Time) string { return FormatDate(t, lang) },
		"size":  func(n int64) string { return FormatSize(n, lang) },
		"files": summarize,
		"label": func(f FileRef) string { return FileLabel(f, lang) },
		"plural": func(n int, one, many string) string {
			if n == 1 {
				return one
			}
			return many
		},
		"kind":     func(k string) string { return w[k] },
		"langname": func(l string) string { return w["lang_"+Lang(l)] },
		"pwmode": func(m string) string {
			switch m {
			case "none":
				return w["pw_none"]
			case "generate":
				return w["pw_gen"]
			}
			return w["pw_manual"]
		},
		"join":   strings.Join,
		"button": func(url, label string) buttonData { return buttonData{URL: url, Label: label} },
	}
}

type buttonData struct{ URL, Label string }
