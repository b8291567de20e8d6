package web

import (
	"net/http"

	"github.com/kluis-nl/kluis/internal/sender"
)

// Cookie names shared with the JSON API (internal/api/senders.go): the
// verification in progress and the verified sender's session.
const (
	verifyCookie        = "__Host-kluis-verify"
	senderSessionCookie = "__Host-kluis-session"
)

// sender returns the verified sender of r's session cookie, or nil when
// there is none (no cookie, expired, logged out, or no sender service).
// API keys are not accepted here: pages are for people.
func (h *Web) sender(r *http.Request) *sender.Sender {
	if h.senders == nil {
		return nil
	}
	c, err := r.Cookie(senderSessionCookie)
	if err != nil || c.Value == "" {
		return nil
	}
	s, err := h.senders.Authenticate(r.Context(), c.Value)
	if err != nil || s.Via != "session" {
		return nil
	}
	return s
}
