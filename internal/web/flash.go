package web

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/kluis-nl/kluis"
	"github.com/kluis-nl/kluis/internal/secret"
)

// A flash carries what a post made to the page its redirect shows, once
// (Post/Redirect/Get), when that is too secret for the address: a new API
// key's secret. It is kept sealed in the table of sign-ins in progress
// (oidc_flows, through sender.Service.SaveFlow and TakeFlow, so the
// master key rotation re-seals it like those), under the hash of a
// random token that only a cookie of the browser carries, bound to the
// session that made it, for a few minutes. Taking it deletes it, so a
// reload, a second tab or another session finds nothing.

// flashTTL is how long a flash waits for the page after the redirect.
const flashTTL = 5 * time.Minute

// flashBinding ties a flash to the sender session of the request; the
// prefix keeps it apart from the bindings of sign-ins in progress.
func flashBinding(r *http.Request) string {
	c, err := r.Cookie(senderSessionCookie)
	if err != nil || c.Value == "" {
		return ""
	}
	return "flash:" + c.Value
}

// flashState is what the flash is stored under for its kind: a token for
// one kind does not open another's.
func flashState(kind, token string) string { return "flash:" + kind + ":" + token }

// putFlash keeps v for the next page of this session that takes a flash
// of kind, and sets the cookie (cookie) that points to it.
func (h *Web) putFlash(w http.ResponseWriter, r *http.Request, cookie, kind string, v any) error {
	binding := flashBinding(r)
	if binding == "" {
		return kluis.Errorf(kluis.EUNAUTHORIZED, "no session")
	}
	payload, err := json.Marshal(v)
	if err != nil {
		return err
	}
	token := secret.NewToken()
	if err := h.senders.SaveFlow(r.Context(), binding, flashState(kind, token), payload, flashTTL); err != nil {
		return err
	}
	http.SetCookie(w, &http.Cookie{Name: cookie, Value: token, Path: "/", MaxAge: int(flashTTL.Seconds()), Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode})
	return nil
}

// takeFlash fills v from the flash of kind that cookie points to, and
// ends both. It reports false, without an error, when there is none: no
// cookie, taken already, too old, or made in another session.
func (h *Web) takeFlash(w http.ResponseWriter, r *http.Request, cookie, kind string, v any) (bool, error) {
	c, err := r.Cookie(cookie)
	if err != nil || c.Value == "" {
		return false, nil
	}
	http.SetCookie(w, &http.Cookie{Name: cookie, Value: "", Path: "/", MaxAge: -1, Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode})
	binding := flashBinding(r)
	if binding == "" {
		return false, nil
	}
	payload, err := h.senders.TakeFlow(r.Context(), binding, flashState(kind, c.Value))
	if kluis.ErrorCode(err) == kluis.EUNAUTHORIZED {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return true, json.Unmarshal(payload, v)
}
