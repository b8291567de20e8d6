package api

// Staff single sign-on for the command line (kluis login --sso). The
// server is the client at the identity provider (it holds the client
// secret, redeems codes and keeps the refresh token, sealed, for the
// re-checks of package sender); the command line only shows the user where
// to sign in and passes back what it received. Two ways, as the provider
// allows:
//
//   - the device authorization grant (RFC 8628) when the provider's
//     discovery document has a device_authorization_endpoint: the user
//     opens the verification address on any device and types the code; the
//     command line polls POST /api/v1/sso/finish, and the server polls the
//     provider for at most ssoPollWait per request;
//   - otherwise the authorization-code flow with PKCE on a loopback
//     redirect (RFC 8252): the command line listens on 127.0.0.1, opens the
//     browser at auth_url, and hands the code and state it received back.
//
// Either way no password is typed into the command line, and the token it
// gets is an SSO session of kind cli: it lasts at most SSOTokenMax (30
// days) and re-checks the account at the provider once per SSO cap.

import (
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"golang.org/x/oauth2"

	"github.com/kluis-nl/kluis"
	"github.com/kluis-nl/kluis/internal/oidc"
	"github.com/kluis-nl/kluis/internal/secret"
	"github.com/kluis-nl/kluis/internal/sender"
)

// ssoPollWait is how long one POST /api/v1/sso/finish of a device sign-in
// waits for the user's approval before it answers pending.
const ssoPollWait = 20 * time.Second

// ssoLoopbackTTL is how long a loopback sign-in may take.
const ssoLoopbackTTL = 10 * time.Minute

// UseSSO lets the command line sign staff in at p (nil: no single
// sign-on; the routes answer not_found), with m mapping groups to roles.
func (a *API) UseSSO(p *oidc.Provider, m oidc.Mapping) {
	a.sso, a.ssoRoles = p, m
}

type ssoStartRequest struct {
	// RedirectURI is the command line's loopback listener, for a provider
	// without the device grant (or Method "browser").
	RedirectURI string `json:"redirect_uri"`
	// Method "browser" asks for the loopback flow even where the device
	// grant is offered; "" lets the server choose.
	Method string `json:"method"`
	Lang   string `json:"lang"`
}

type ssoStartResponse struct {
	Method    string    `json:"method"` // device or browser
	Handle    string    `json:"handle"`
	ExpiresAt time.Time `json:"expires_at"`
	// Device grant: where to go and which code to type.
	VerificationURI         string `json:"verification_uri,omitempty"`
	VerificationURIComplete string `json:"verification_uri_complete,omitempty"`
	UserCode                string `json:"user_code,omitempty"`
	Interval                int64  `json:"interval,omitempty"`
	// Browser: the provider's authorization address to open.
	AuthURL string `json:"auth_url,omitempty"`
}

// cliFlow is what the server keeps (sealed, single use) between the
// requests of a command-line sign-in.
type cliFlow struct {
	Kind   string    `json:"kind"` // always "cli": a browser's flow is never taken here
	Method string    `json:"method"`
	Flow   oidc.Flow `json:"flow"`
	Device struct {
		DeviceCode string    `json:"device_code"`
		UserCode   string    `json:"user_code"`
		URI        string    `json:"uri"`
		Interval   int64     `json:"interval"`
		Expiry     time.Time `json:"expiry"`
	} `json:"device"`
	Lang string `json:"lang"`
}

func (a *API) ssoOff() error {
	return kluis.Errorf(kluis.ENOTFOUND, "This server has no single sign-on. Sign in with a mailed code: kluis login --email ADDRESS.")
}

// ssoStart begins a command-line sign-in at the provider.
func (a *API) ssoStart(w http.ResponseWriter, r *http.Request) {
	if a.sso == nil {
		a.Error(w, r, a.ssoOff())
		return
	}
	var req ssoStartRequest
	if err := decode(w, r, &req); err != nil {
		a.Error(w, r, err)
		return
	}
	if req.Method != "" && req.Method != "browser" && req.Method != "device" {
		a.Error(w, r, kluis.Errorf(kluis.EINVALID, "method must be device, browser or empty (the server chooses)."))
		return
	}
	f := cliFlow{Kind: "cli", Lang: req.Lang}
	handle := secret.NewToken()
	out := ssoStartResponse{Handle: handle}
	var da *oauth2.DeviceAuthResponse
	if req.Method != "browser" {
		var err error
		da, err = a.sso.DeviceStart(r.Context())
		switch {
		case errors.Is(err, oidc.ErrNoDeviceGrant) && req.Method == "":
			da = nil // the loopback flow below
		case errors.Is(err, oidc.ErrNoDeviceGrant):
			a.Error(w, r, kluis.Errorf(kluis.EINVALID, "The organisation's identity provider does not offer the device sign-in. Use the browser: kluis login --sso --browser."))
			return
		case err != nil:
			a.log.Warn("sso device authorization failed", "action", "sso.cli_start", "result", "provider_error", "error", err)
			a.Error(w, r, kluis.Errorf(kluis.EUNAVAILABLE, "The organisation's identity provider did not answer. Try again later."))
			return
		}
	}
	if da != nil {
		f.Method, out.Method = "device", "device"
		f.Device.DeviceCode, f.Device.UserCode, f.Device.URI, f.Device.Interval, f.Device.Expiry = da.DeviceCode, da.UserCode, da.VerificationURI, da.Interval, da.Expiry.UTC()
		if f.Device.Expiry.IsZero() {
			f.Device.Expiry = a.svc.Now().Add(ssoLoopbackTTL)
		}
		out.VerificationURI, out.VerificationURIComplete, out.UserCode, out.Interval = da.VerificationURI, da.VerificationURIComplete, da.UserCode, da.Interval
		out.ExpiresAt = f.Device.Expiry
		f.Flow.State = handle
	} else {
		if req.RedirectURI == "" {
			a.Error(w, r, kluis.Errorf(kluis.EINVALID, "The organisation's identity provider does not offer the device sign-in: give redirect_uri, a loopback address such as http://127.0.0.1:PORT/callback, and open auth_url in a browser."))
			return
		}
		authURL, flow, err := a.sso.BeginLoopback(req.RedirectURI)
		if err != nil {
			a.Error(w, r, kluis.Errorf(kluis.EINVALID, "redirect_uri must be a loopback address: http://127.0.0.1:PORT/path or http://[::1]:PORT/path."))
			return
		}
		f.Method, out.Method, out.AuthURL, f.Flow = "browser", "browser", authURL, flow
		out.ExpiresAt = a.svc.Now().Add(ssoLoopbackTTL).UTC()
	}
	payload, _ := json.Marshal(f)
	if err := a.senders.SaveFlow(r.Context(), handle, f.Flow.State, payload, out.ExpiresAt.Sub(a.svc.Now())); err != nil {
		a.Error(w, r, err)
		return
	}
	a.log.Info("sso sign-in for the command line begun", "action", "sso.cli_start", "method", f.Method)
	writeJSON(w, http.StatusOK, out)
}

type ssoFinishRequest struct {
	Handle string `json:"handle"`
	// State, Code and Error are what the loopback listener received from
	// the provider (browser only).
	State string `json:"state"`
	Code  string `json:"code"`
	Error string `json:"error"`
}

// ssoFinish ends a command-line sign-in: for the device grant it polls the
// provider (202 while the user has not approved), for the browser it
// redeems the code; then it opens a sender session of kind cli and returns
// its token.
func (a *API) ssoFinish(w http.ResponseWriter, r *http.Request) {
	if a.sso == nil {
		a.Error(w, r, a.ssoOff())
		return
	}
	var req ssoFinishRequest
	if err := decode(w, r, &req); err != nil {
		a.Error(w, r, err)
		return
	}
	state := req.State
	if state == "" {
		state = req.Handle // the device grant's flow is kept under its handle
	}
	payload, err := a.senders.TakeFlow(r.Context(), req.Handle, state)
	if err != nil {
		a.Error(w, r, err)
		return
	}
	var f cliFlow
	if err := json.Unmarshal(payload, &f); err != nil || f.Kind != "cli" {
		a.Error(w, r, kluis.Errorf(kluis.EUNAUTHORIZED, "This sign-in is not valid any more. Run kluis login --sso again."))
		return
	}
	refused := kluis.Errorf(kluis.EUNAUTHORIZED, "The organisation's identity provider did not confirm the sign-in (it was refused, took too long, or the account is disabled). Run kluis login --sso again.")
	var id *oidc.Identity
	switch f.Method {
	case "device":
		da := &oauth2.DeviceAuthResponse{DeviceCode: f.Device.DeviceCode, UserCode: f.Device.UserCode, VerificationURI: f.Device.URI, Interval: f.Device.Interval, Expiry: f.Device.Expiry}
		id, err = a.sso.DevicePoll(r.Context(), da, ssoPollWait)
		if errors.Is(err, oidc.ErrPending) {
			// Keep the flow for the next poll, until the device code expires.
			if err := a.senders.SaveFlow(r.Context(), req.Handle, state, payload, f.Device.Expiry.Sub(a.svc.Now())); err != nil {
				a.Error(w, r, err)
				return
			}
			writeJSON(w, http.StatusAccepted, map[string]any{"status": "pending", "interval": f.Device.Interval})
			return
		}
	default:
		if req.Error != "" || req.Code == "" {
			a.log.Warn("sso sign-in for the command line refused by the provider", "action", "sso.cli_finish", "result", "provider_error", "error", req.Error)
			a.Error(w, r, refused)
			return
		}
		id, err = a.sso.Finish(r.Context(), req.Code, f.Flow)
	}
	if err != nil {
		a.log.Warn("sso sign-in for the command line failed", "action", "sso.cli_finish", "result", "refused", "method", f.Method, "error", err)
		a.Error(w, r, refused)
		return
	}
	granted, withheld := a.ssoRoles.Roles(id)
	if advice := a.ssoRoles.Advice(id); advice != "" {
		a.log.Warn("sso sign-in without roles: "+advice, "action", "sso.cli_finish", "result", "no_roles")
	}
	s, err := a.senders.OpenSSOSession(r.Context(), sender.SSOLogin{
		Email: id.Email, Name: id.Name, Subject: id.Subject, Roles: granted, Withheld: withheld,
		IDToken: id.IDToken, RefreshToken: id.RefreshToken, Kind: "cli", Lang: f.Lang,
	})
	if err != nil {
		a.Error(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, confirmResponse{Token: s.Token, ExpiresAt: s.ExpiresAt, Sender: &s.Sender})
}
