package web

import (
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/kluis-nl/kluis"
	"github.com/kluis-nl/kluis/internal/secret"
	"github.com/kluis-nl/kluis/internal/transfer"
)

// loginCookie binds a recipient's login at an OpenID provider to this
// browser: a random token (its hash is in the sealed flow) and the access
// id to come back to. SameSite=Lax, because the provider sends the browser
// back with a cross-site navigation, in which the Strict session cookie is
// not sent; the flow itself names the pending session.
const loginCookie = "__Host-kluis-login"

// loginPage asks a recipient whose password was right to log in.
type loginPage struct {
	Access   string
	Provider string // the label recipients read
	// Mismatch: the last login was not the one the sender chose;
	// Failed: it did not complete (refused, too slow, another browser).
	Mismatch, Failed bool
	// MessageOnly: the transfer holds a message and no files.
	MessageOnly bool
}

// pendingFor returns the browser's pending session for the link, or
// answers: to the files when the session is open already, else to the
// link's page.
func (h *Web) pendingFor(w http.ResponseWriter, r *http.Request) (*transfer.Pending, bool) {
	access := r.PathValue("access")
	l, err := h.svc.Lookup(r.Context(), access)
	if err != nil {
		h.linkError(w, r, access, err)
		return nil, false
	}
	w.Header().Set("Cache-Control", "no-store")
	c, err := r.Cookie(sessionCookie)
	if err != nil || c.Value == "" {
		http.Redirect(w, r, "/r/"+access, http.StatusSeeOther)
		return nil, false
	}
	p, err := h.svc.OpenPending(r.Context(), c.Value)
	if err != nil || p.TransferID() != l.TransferID || p.RecipientID() != l.RecipientID {
		if h.session(r, l) != nil {
			http.Redirect(w, r, "/r/"+access+"/open", http.StatusSeeOther)
		} else {
			http.Redirect(w, r, "/r/"+access, http.StatusSeeOther)
		}
		return nil, false
	}
	return p, true
}

// login shows the "Log in with …" step.
func (h *Web) login(w http.ResponseWriter, r *http.Request) {
	p, ok := h.pendingFor(w, r)
	if !ok {
		return
	}
	lp, err := h.svc.LoginProvider(p)
	if err != nil {
		h.linkError(w, r, r.PathValue("access"), err)
		return
	}
	access := r.PathValue("access")
	h.render(w, r, http.StatusOK, "login", h.newView(r, loginPage{Access: access, Provider: lp.Label, MessageOnly: h.svc.MessageOnly(r.Context(), access)}))
}

// loginStart sends the browser to the provider. It is a GET (a link):
// the CSP's form-action 'self' would stop a form's redirect to the
// provider, and beginning a login changes nothing but a short-lived flow.
func (h *Web) loginStart(w http.ResponseWriter, r *http.Request) {
	p, ok := h.pendingFor(w, r)
	if !ok {
		return
	}
	access := r.PathValue("access")
	binding := secret.NewToken()
	authURL, err := h.svc.BeginLogin(r.Context(), p, binding)
	if err != nil {
		h.linkError(w, r, access, err)
		return
	}
	http.SetCookie(w, &http.Cookie{
		Name: loginCookie, Value: binding + "." + access, Path: "/", MaxAge: int((10 * time.Minute).Seconds()),
		HttpOnly: true, Secure: true, SameSite: http.SameSiteLaxMode,
	})
	http.Redirect(w, r, authURL, http.StatusSeeOther)
}

// loginCallback takes the provider's answer. On a match it shows a page
// that leads on to the files: a same-site navigation from there carries
// the Strict session cookie, which a redirect in the provider's chain
// would not.
func (h *Web) loginCallback(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	var binding, access string
	if c, err := r.Cookie(loginCookie); err == nil {
		binding, access, _ = strings.Cut(c.Value, ".")
	}
	http.SetCookie(w, &http.Cookie{Name: loginCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, Secure: true, SameSite: http.SameSiteLaxMode})
	if access == "" {
		h.problem(w, r, http.StatusUnauthorized, "problem.session", "")
		return
	}
	r.SetPathValue("access", access)
	q := r.URL.Query()
	_, err := h.svc.FinishLogin(r.Context(), binding, q.Get("state"), q.Get("code"))
	if err == nil {
		h.render(w, r, http.StatusOK, "login_done", h.newView(r, loginPage{Access: access}))
		return
	}
	page := loginPage{Access: access, MessageOnly: h.svc.MessageOnly(r.Context(), access)}
	if l, lerr := h.svc.Lookup(r.Context(), access); lerr == nil {
		if c, cerr := r.Cookie(sessionCookie); cerr == nil {
			if p, perr := h.svc.OpenPending(r.Context(), c.Value); perr == nil && p.RecipientID() == l.RecipientID {
				if lp, e := h.svc.LoginProvider(p); e == nil {
					page.Provider = lp.Label
				}
			}
		}
	}
	switch kluis.ErrorCode(err) {
	case kluis.EWRONGSECRET:
		page.Mismatch = true
		h.render(w, r, http.StatusForbidden, "login", h.newView(r, page))
	case kluis.EUNAUTHORIZED:
		if !errors.Is(err, transfer.ErrLoginFailed) {
			h.linkError(w, r, access, err) // the session ended
			return
		}
		page.Failed = true
		h.render(w, r, http.StatusUnauthorized, "login", h.newView(r, page))
	default:
		h.linkError(w, r, access, err)
	}
}
