package api

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/kluis-nl/kluis"
	"github.com/kluis-nl/kluis/internal/sender"
)

// Cookie names. __Host- cookies are Secure, host-only and Path=/, so no
// other site or subdomain can set or read them.
const (
	verifyCookie  = "__Host-kluis-verify"
	sessionCookie = "__Host-kluis-session"
)

type verifyRequest struct {
	Email        string `json:"email"`
	Name         string `json:"name"`
	Phone        string `json:"phone"`
	Lang         string `json:"lang"`
	Verification string `json:"verification"`
}

type verifyResponse struct {
	Verification string    `json:"verification"`
	ExpiresAt    time.Time `json:"expires_at"`
	CodeDigits   int       `json:"code_digits"`
}

// startVerification mails a code. The pre-session token the code is tied to
// is set as a cookie for browsers and returned for scripts.
func (a *API) startVerification(w http.ResponseWriter, r *http.Request) {
	var req verifyRequest
	if err := decode(w, r, &req); err != nil {
		a.Error(w, r, err)
		return
	}
	pre := preSession(r, req.Verification)
	tok, err := a.senders.Start(r.Context(), pre, req.Email, req.Name, req.Phone, req.Lang)
	if errors.Is(err, sender.ErrSSORequired) {
		// Through the API (the command line, a script) the way is kluis
		// login --sso, not the browser's button: say so, with a field
		// code a client can act on.
		domain := req.Email[strings.LastIndexByte(req.Email, '@')+1:]
		err = &kluis.Error{Code: kluis.EPOLICY, Err: err, Message: kluis.ErrorMessage(err),
			Fields: []kluis.FieldError{{Field: "email", Code: "sso_required", Key: "validate.sso_required", Args: []any{domain}}}}
	}
	if err != nil {
		a.Error(w, r, err)
		return
	}
	ttl := a.senders.Config().CodeTTL
	http.SetCookie(w, &http.Cookie{Name: verifyCookie, Value: tok, Path: "/", MaxAge: int(ttl.Seconds()), Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode})
	writeJSON(w, http.StatusAccepted, verifyResponse{Verification: tok, ExpiresAt: a.svc.Now().Add(ttl), CodeDigits: sender.CodeDigits})
}

type confirmRequest struct {
	Code         string `json:"code"`
	Verification string `json:"verification"`
	// Client "cli" gets the session token in the response body; browsers
	// get it only as an HttpOnly cookie.
	Client string `json:"client"`
}

type confirmResponse struct {
	Token     string         `json:"token,omitempty"`
	ExpiresAt time.Time      `json:"expires_at"`
	Sender    *sender.Sender `json:"sender"`
}

func (a *API) confirmVerification(w http.ResponseWriter, r *http.Request) {
	var req confirmRequest
	if err := decode(w, r, &req); err != nil {
		a.Error(w, r, err)
		return
	}
	pre := preSession(r, req.Verification)
	kind := "browser"
	if req.Client == "cli" {
		kind = "cli"
	}
	s, err := a.senders.Confirm(r.Context(), pre, req.Code, kind)
	if err != nil {
		a.Error(w, r, err)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: verifyCookie, Value: "", Path: "/", MaxAge: -1, Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode})
	out := confirmResponse{ExpiresAt: s.ExpiresAt, Sender: &s.Sender}
	if kind == "cli" {
		out.Token = s.Token
	} else {
		http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: s.Token, Path: "/", MaxAge: int(time.Until(s.ExpiresAt).Seconds()), Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode})
	}
	writeJSON(w, http.StatusOK, out)
}

func (a *API) logout(w http.ResponseWriter, r *http.Request) {
	if err := a.senders.Logout(r.Context(), senderToken(r)); err != nil {
		a.Error(w, r, err)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", MaxAge: -1, Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode})
	w.WriteHeader(http.StatusNoContent)
}

func (a *API) me(w http.ResponseWriter, r *http.Request) {
	s, err := a.senders.Authenticate(r.Context(), senderToken(r))
	if err != nil {
		a.Error(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, s)
}

// senderToken is the sender's session token or API key: the Bearer header
// for scripts, else the session cookie.
func senderToken(r *http.Request) string {
	if t := bearer(r); t != "" {
		return t
	}
	if c, err := r.Cookie(sessionCookie); err == nil {
		return c.Value
	}
	return ""
}

type senderKey struct{}

// verified lets only a verified sender (session or API key) through.
func (a *API) verified(next func(http.ResponseWriter, *http.Request, *sender.Sender)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s, err := a.senders.Authenticate(r.Context(), senderToken(r))
		if err != nil {
			a.Error(w, r, err)
			return
		}
		ctx := s.AuditContext(context.WithValue(r.Context(), senderKey{}, s))
		next(w, r.WithContext(ctx), s)
	}
}

func (a *API) listTransfers(w http.ResponseWriter, r *http.Request, s *sender.Sender) {
	ts, err := a.svc.SenderTransfers(r.Context(), s.Email)
	if err != nil {
		a.Error(w, r, err)
		return
	}
	out := []transferJSON{}
	for _, t := range ts {
		out = append(out, transferView(t, a.svc.Now()))
	}
	writeJSON(w, http.StatusOK, map[string]any{"transfers": out})
}

// preSession is the pre-session token a code is tied to: from the request
// body (scripts), else the browser's cookie.
func preSession(r *http.Request, fromBody string) string {
	if fromBody != "" {
		return fromBody
	}
	if c, err := r.Cookie(verifyCookie); err == nil {
		return c.Value
	}
	return ""
}
