package web

import (
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/kluis-nl/kluis"
	"github.com/kluis-nl/kluis/internal/transfer"
)

// The SMS code page (issue 15): a recipient whose sender asked for a code
// by SMS gets, after the right password, a pending session (its cookie is
// the same as a full session's) and this page. The engine sends the code,
// counts wrong codes in the one lock-out with the password tries, and
// turns the session into a full one when the code is right.

// codePage is the data of the code page.
type codePage struct {
	Access string
	Phone  string // masked
	Code   string // what was typed, shown again with an error
	// Sent: a code went out; NextSendAt: when another may be asked for.
	Sent       bool
	NextSendAt time.Time
	// LockedUntil is set when the last try locked the access.
	LockedUntil *time.Time
	// Resent: a new code went out just now.
	Resent bool
}

// setSessionCookie gives the browser the session token until expires.
func setSessionCookie(w http.ResponseWriter, token string, expires time.Time) {
	http.SetCookie(w, &http.Cookie{
		Name: sessionCookie, Value: token, Path: "/",
		Expires: expires, MaxAge: int(time.Until(expires).Seconds()),
		HttpOnly: true, Secure: true, SameSite: http.SameSiteStrictMode,
	})
	w.Header().Set("Cache-Control", "no-store")
}

// pending returns the browser's pending session if it belongs to the
// recipient of l, else nil.
func (h *Web) pending(r *http.Request, l *transfer.Link) *transfer.Pending {
	c, err := r.Cookie(sessionCookie)
	if err != nil || c.Value == "" {
		return nil
	}
	p, err := h.svc.OpenPending(r.Context(), c.Value)
	if err != nil || p.TransferID() != l.TransferID || p.RecipientID() != l.RecipientID {
		return nil
	}
	return p
}

// startCode follows the right password of a recipient with an SMS code:
// it sends the first code and shows the code page.
func (h *Web) startCode(w http.ResponseWriter, r *http.Request, access string, s *transfer.Session) {
	setSessionCookie(w, s.Token, s.ExpiresAt)
	p, err := h.svc.OpenPending(r.Context(), s.Token)
	if err != nil {
		h.linkError(w, r, access, err)
		return
	}
	if err := h.svc.SendCode(r.Context(), p); err != nil {
		h.renderCode(w, r, access, p, "", codeSendError(err), formStatus(err), nil)
		return
	}
	http.Redirect(w, r, "/r/"+access+"/code", http.StatusSeeOther)
}

// codeSendError is the message key for a code that could not be sent.
func codeSendError(err error) string {
	switch kluis.ErrorCode(err) {
	case kluis.ETOOMANYREQUESTS:
		return "unlock.code_error_wait"
	case kluis.EQUOTA:
		return "unlock.code_error_quota"
	}
	return "unlock.code_error_send"
}

func (h *Web) renderCode(w http.ResponseWriter, r *http.Request, access string, p *transfer.Pending, typed, errKey string, status int, locked *time.Time) {
	d := codePage{Access: access, Phone: p.Phone, Code: typed, Sent: p.CodeSentAt != nil, NextSendAt: p.NextSendAt, LockedUntil: locked}
	v := h.newView(r, d)
	v.Here = "/r/" + access + "/code"
	if errKey != "" {
		v.Errors = []fieldError{{Field: "code", Key: errKey}}
	}
	h.render(w, r, status, "code", v)
}

// codeForm shows the code page of the browser's pending session; without
// one, the link's own page (password, or the files when already open).
func (h *Web) codeForm(w http.ResponseWriter, r *http.Request) {
	access := r.PathValue("access")
	l, err := h.svc.Lookup(r.Context(), access)
	if err != nil {
		h.linkError(w, r, access, err)
		return
	}
	p := h.pending(r, l)
	if p == nil {
		w.Header().Set("Cache-Control", "no-store")
		http.Redirect(w, r, "/r/"+access, http.StatusSeeOther)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	d := codePage{Access: access, Phone: p.Phone, Sent: p.CodeSentAt != nil, NextSendAt: p.NextSendAt, Resent: r.URL.Query().Has("resent")}
	v := h.newView(r, d)
	v.Here = "/r/" + access + "/code"
	h.render(w, r, http.StatusOK, "code", v)
}

// code takes a typed code (or, with resend, asks for a new one). Errors
// come back on the page with what was typed.
func (h *Web) code(w http.ResponseWriter, r *http.Request) {
	access := r.PathValue("access")
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
		return
	}
	l, err := h.svc.Lookup(r.Context(), access)
	if err != nil {
		h.linkError(w, r, access, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	p := h.pending(r, l)
	if p == nil {
		// Verified already (a second tab, a double click): the files;
		// else the session ended and the password comes first again.
		http.Redirect(w, r, "/r/"+access, http.StatusSeeOther)
		return
	}
	typed := strings.TrimSpace(r.PostForm.Get("code"))
	if len(typed) > 64 {
		typed = typed[:64]
	}
	if r.PostForm.Has("resend") {
		if err := h.svc.SendCode(r.Context(), p); err != nil {
			h.renderCode(w, r, access, p, typed, codeSendError(err), formStatus(err), nil)
			return
		}
		http.Redirect(w, r, "/r/"+access+"/code?resent", http.StatusSeeOther)
		return
	}
	if typed == "" {
		h.renderCode(w, r, access, p, "", "unlock.code_error_empty", http.StatusUnprocessableEntity, nil)
		return
	}
	s, err := h.svc.VerifyCode(r.Context(), p, typed)
	if err == nil {
		setSessionCookie(w, s.Token, s.ExpiresAt)
		http.Redirect(w, r, "/r/"+access+"/open", http.StatusSeeOther)
		return
	}
	switch kluis.ErrorCode(err) {
	case kluis.EWRONGSECRET:
		key := "unlock.code_error_wrong"
		if p.CodeExpiresAt != nil && !h.svc.Now().Before(*p.CodeExpiresAt) {
			key = "unlock.code_error_expired"
		}
		h.renderCode(w, r, access, p, typed, key, http.StatusUnprocessableEntity, nil)
	case kluis.ELOCKED:
		var until *time.Time
		if ke := (*kluis.Error)(nil); errors.As(err, &ke) {
			until = ke.At
		}
		h.renderCode(w, r, access, p, typed, "unlock.code_error_locked", statusOf(err), until)
	default:
		h.linkError(w, r, access, err)
	}
}
