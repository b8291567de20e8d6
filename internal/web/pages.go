package web

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/kluis-nl/kluis/internal/locale"
)

// homeDropoff is a drop-off point as the start page lists it.
type homeDropoff struct{ Slug, Name string }

func (h *Web) home(w http.ResponseWriter, r *http.Request) {
	v := h.newView(r, nil)
	var ds []homeDropoff
	for _, d := range h.svc.Policy().Dropoffs() {
		ds = append(ds, homeDropoff{Slug: d.Slug, Name: d.Name(string(v.Lang))})
	}
	v.D = ds
	h.render(w, r, http.StatusOK, "home", v)
}

// help is the help for recipients (a recipient page, in every language);
// sendHelp is the help for senders.
func (h *Web) help(w http.ResponseWriter, r *http.Request) {
	h.render(w, r, http.StatusOK, "help", nil)
}

func (h *Web) sendHelp(w http.ResponseWriter, r *http.Request) {
	h.render(w, r, http.StatusOK, "help_send", nil)
}

func (h *Web) accessibility(w http.ResponseWriter, r *http.Request) {
	h.render(w, r, http.StatusOK, "accessibility", nil)
}

func (h *Web) privacy(w http.ResponseWriter, r *http.Request) {
	h.render(w, r, http.StatusOK, "privacy", nil)
}

// setLang stores the chosen language (any language Kluis speaks) in a
// cookie and goes back to next, a path on this site (never another site:
// that would be an open redirect). A sender page shows the chosen language
// only when its catalog is complete (chooseLang).
func (h *Web) setLang(w http.ResponseWriter, r *http.Request) {
	if lang, ok := locale.Parse(r.URL.Query().Get("to")); ok {
		http.SetCookie(w, &http.Cookie{
			Name: langCookie, Value: string(lang), Path: "/", MaxAge: 365 * 24 * 3600,
			HttpOnly: true, Secure: h.secure && r.TLS != nil, SameSite: http.SameSiteLaxMode,
		})
	}
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, localPath(r.URL.Query().Get("next")), http.StatusSeeOther)
}

// localPath returns p if it is a path on this site, else "/".
func localPath(p string) string {
	if p == "" || p[0] != '/' || strings.HasPrefix(p, "//") || strings.ContainsAny(p, "\\\r\n\t") {
		return "/"
	}
	u, err := url.Parse(p)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil {
		return "/"
	}
	return u.EscapedPath()
}
