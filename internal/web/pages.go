package web

import (
	"net/http"
	"net/url"
	"strings"
)

func (h *Web) home(w http.ResponseWriter, r *http.Request) {
	h.render(w, r, http.StatusOK, "home", nil)
}

func (h *Web) help(w http.ResponseWriter, r *http.Request) {
	h.render(w, r, http.StatusOK, "help", nil)
}

func (h *Web) accessibility(w http.ResponseWriter, r *http.Request) {
	h.render(w, r, http.StatusOK, "accessibility", nil)
}

func (h *Web) privacy(w http.ResponseWriter, r *http.Request) {
	h.render(w, r, http.StatusOK, "privacy", nil)
}

// setLang stores the chosen language in a cookie and goes back to next,
// a path on this site (never another site: that would be an open
// redirect).
func (h *Web) setLang(w http.ResponseWriter, r *http.Request) {
	lang := known(r.URL.Query().Get("to"))
	if lang != "" {
		http.SetCookie(w, &http.Cookie{
			Name: langCookie, Value: lang, Path: "/", MaxAge: 365 * 24 * 3600,
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
