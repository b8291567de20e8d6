package web

// The sender of a mail that the SMTP gateway made a transfer of sees its
// generated password here, once: the link of the confirmation mail shows
// a confirmation first (mail scanners open links; only the POST shows and
// erases the password), and both need the sender's own session cookie, so
// a forwarded or leaked mail alone shows nothing.

import (
	"context"
	"net/http"
	"net/url"

	"github.com/kluis-nl/kluis"
)

// GatewayPasswords holds the waiting passwords of the mail gateway
// (*gateway.Passwords).
type GatewayPasswords interface {
	// Waiting reports whether the link still works (ENOTFOUND if not).
	Waiting(ctx context.Context, transferID, token, email string) error
	// Reveal returns the password once and erases it.
	Reveal(ctx context.Context, transferID, token, email string) (string, error)
}

// gatewayPasswordPage is the confirmation (Password empty) or the
// password itself.
type gatewayPasswordPage struct {
	ID, Token, Password string
}

func (h *Web) gatewayPasswordLink(w http.ResponseWriter, r *http.Request) {
	id, token := r.PathValue("id"), r.PathValue("token")
	s := h.verifiedSender(w, r, "/transfers/"+url.PathEscape(id)+"/password/"+url.PathEscape(token))
	if s == nil {
		return
	}
	o, err := h.svc.AuthorizeSender(r.Context(), id, s.Email)
	if err != nil {
		h.ownedError(w, r, err)
		return
	}
	if h.passwords == nil {
		h.gatewayLinkUsed(w, r, o.TransferID)
		return
	}
	if err := h.passwords.Waiting(r.Context(), o.TransferID, token, s.Email); kluis.ErrorCode(err) == kluis.ENOTFOUND {
		h.gatewayLinkUsed(w, r, o.TransferID)
		return
	} else if err != nil {
		h.linkError(w, r, "", err)
		return
	}
	v := h.newView(r, gatewayPasswordPage{ID: o.TransferID, Token: token})
	v.Here = "/transfers/" + url.PathEscape(o.TransferID)
	h.render(w, r, http.StatusOK, "gateway_password", v)
}

func (h *Web) gatewayPasswordShow(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	s, o, ok := h.owned(w, r)
	if !ok {
		return
	}
	if h.passwords == nil {
		h.gatewayLinkUsed(w, r, o.TransferID)
		return
	}
	pw, err := h.passwords.Reveal(r.Context(), o.TransferID, r.PostFormValue("token"), s.Email)
	if kluis.ErrorCode(err) == kluis.ENOTFOUND {
		h.gatewayLinkUsed(w, r, o.TransferID)
		return
	} else if err != nil {
		h.linkError(w, r, "", err)
		return
	}
	v := h.newView(r, gatewayPasswordPage{ID: o.TransferID, Password: pw})
	v.Here = "/transfers/" + url.PathEscape(o.TransferID)
	h.render(w, r, http.StatusOK, "gateway_password", v)
}

func (h *Web) gatewayLinkUsed(w http.ResponseWriter, r *http.Request, id string) {
	h.render(w, r, http.StatusNotFound, "problem", h.newView(r, problemPage{Title: "mine.gwpw_used_title", Text: "mine.gwpw_used_text",
		Back: "/transfers/" + url.PathEscape(id), BackText: "mine.back_detail"}))
}
