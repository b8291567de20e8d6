package web

// Staff single sign-on in the browser: /sso/start sends the browser to the
// organisation's identity provider, /sso/callback comes back with a code
// and opens the usual sender session (auth=sso, with the roles the
// sign-in earned). The flow's state is single use and bound to this
// browser twice: the database row (sender.SaveFlow) is found by the
// state's hash and holds the hash of a random binding token that only the
// short-lived cookie below carries, so a callback URL replayed, or opened
// in another browser, is refused.

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/kluis-nl/kluis"
	"github.com/kluis-nl/kluis/internal/oidc"
	"github.com/kluis-nl/kluis/internal/secret"
	"github.com/kluis-nl/kluis/internal/sender"
)

// ssoCookie carries the binding token of a sign-in in progress. SameSite
// Lax, because the provider's redirect back is a cross-site top-level GET.
const ssoCookie = "__Host-kluis-sso"

// ssoFlowTTL is how long a sign-in at the provider may take.
const ssoFlowTTL = 10 * time.Minute

// ssoFlow is what the server keeps (sealed) between start and callback.
type ssoFlow struct {
	oidc.Flow
	Next string `json:"next"`
	Lang string `json:"lang"`
}

// ssoStart begins a sign-in at the provider; ?next= is where to go after.
func (h *Web) ssoStart(w http.ResponseWriter, r *http.Request) {
	if h.sso == nil {
		h.problem(w, r, http.StatusNotFound, "sso.off", "")
		return
	}
	authURL, f := h.sso.Begin()
	binding := secret.NewToken()
	payload, _ := json.Marshal(ssoFlow{Flow: f, Next: nextPath(r.URL.Query().Get("next")), Lang: string(h.pageLang(r, false))})
	if err := h.senders.SaveFlow(r.Context(), binding, f.State, payload, ssoFlowTTL); err != nil {
		h.errorPage(w, r, err)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: ssoCookie, Value: binding, Path: "/", MaxAge: int(ssoFlowTTL.Seconds()), Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode})
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, authURL, http.StatusSeeOther)
}

// ssoCallback finishes a sign-in: the flow is taken (single use), the code
// redeemed and the ID token checked, the roles mapped, and the session
// opened.
func (h *Web) ssoCallback(w http.ResponseWriter, r *http.Request) {
	if h.sso == nil {
		h.problem(w, r, http.StatusNotFound, "sso.off", "")
		return
	}
	http.SetCookie(w, &http.Cookie{Name: ssoCookie, Value: "", Path: "/", MaxAge: -1, Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode})
	fail := func(status int, key string) {
		h.render(w, r, status, "problem", h.newView(r, problemPage{Title: "sso.failed_title", Text: key, Back: "/sso/start", BackText: "sso.again"}))
	}
	binding := ""
	if c, err := r.Cookie(ssoCookie); err == nil {
		binding = c.Value
	}
	q := r.URL.Query()
	payload, err := h.senders.TakeFlow(r.Context(), binding, q.Get("state"))
	if err != nil {
		if kluis.ErrorCode(err) != kluis.EUNAUTHORIZED {
			h.errorPage(w, r, err)
			return
		}
		h.log.Warn("sso callback refused: unknown, used, expired or other browser's state", "action", "sso.callback", "result", "refused")
		fail(http.StatusUnauthorized, "sso.failed_flow")
		return
	}
	var f ssoFlow
	if err := json.Unmarshal(payload, &f); err != nil {
		h.errorPage(w, r, err)
		return
	}
	if e := q.Get("error"); e != "" {
		// The provider's own words go only to the log: they are not in
		// the user's language and may say more than the user needs.
		h.log.Warn("sso sign-in refused by the provider", "action", "sso.callback", "result", "provider_error", "error", e)
		fail(http.StatusUnauthorized, "sso.failed_provider")
		return
	}
	id, err := h.sso.Finish(r.Context(), q.Get("code"), f.Flow)
	if err != nil {
		h.log.Warn("sso sign-in failed", "action", "sso.callback", "result", "refused", "error", err)
		fail(http.StatusUnauthorized, "sso.failed_token")
		return
	}
	granted, withheld := h.ssoRoles.Roles(id)
	if advice := h.ssoRoles.Advice(id); advice != "" {
		// Entra's group overage, or group ids where names are mapped:
		// the administrator reads here what to configure.
		h.log.Warn("sso sign-in without roles: "+advice, "action", "sso.callback", "result", "no_roles")
	}
	s, err := h.senders.OpenSSOSession(r.Context(), sender.SSOLogin{
		Email: id.Email, Name: id.Name, Subject: id.Subject, Roles: granted, Withheld: withheld,
		IDToken: id.IDToken, RefreshToken: id.RefreshToken, Kind: "browser", Lang: f.Lang,
	})
	if err != nil {
		if kluis.ErrorCode(err) == kluis.EINVALID {
			h.log.Warn("sso sign-in refused: unusable e-mail or name claim", "action", "sso.callback", "result", "refused", "error", err)
			fail(http.StatusUnprocessableEntity, "sso.failed_claims")
			return
		}
		h.errorPage(w, r, err)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: senderSessionCookie, Value: s.Token, Path: "/", MaxAge: int(time.Until(s.ExpiresAt).Seconds()), Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode})
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, f.Next, http.StatusSeeOther)
}

// ssoLogoutURL is where the browser goes after the server session of s
// ended: the provider's end-session endpoint for an SSO session (so the
// provider's session ends too, and the next sign-in asks again), coming
// back to the start page; "" otherwise.
func (h *Web) ssoLogoutURL(s *sender.Sender) string {
	if h.sso == nil || s == nil || s.Auth != "sso" {
		return ""
	}
	back := "/"
	if h.baseURL != "" {
		back = h.baseURL + "/"
	}
	return h.sso.LogoutURL(s.IDToken, back)
}
