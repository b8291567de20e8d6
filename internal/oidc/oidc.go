// Package oidc is Kluis's OpenID Connect relying party: staff sign in with
// the organisation's identity provider (Entra ID, Keycloak, ADFS, …).
//
// # Flow
//
// Begin makes a fresh state, nonce and PKCE verifier (S256) and the
// provider's authorization URL; the caller keeps the three on the server,
// bound to the browser (package web does so in the database, single use,
// keyed by the state's hash, with the browser's short-lived cookie as a
// second factor). Finish redeems the code with the verifier and checks the
// ID token with go-oidc: signature against the provider's keys, issuer,
// audience, expiry, and the nonce. Claims are mapped by configurable names
// (email, name, groups).
//
// # Roles
//
// Mapping turns groups into roles (package role). A role that needs a
// second factor is granted only if the ID token's acr is one of the
// accepted values or its amr holds one of them; otherwise it is withheld
// and the caller can say why. Groups may be names or ids (Entra sends
// object ids): the mapping compares the strings as configured. When Entra
// sends its group overage marker instead of the groups (more than 200),
// Identity.GroupsOverage is set and no role is granted: Kluis does not
// call Microsoft Graph.
//
// A Provider is built from a Config, not from globals, so a second one
// (recipients signing in, issue 15) can live next to it.
package oidc

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/kluis-nl/kluis/internal/role"
)

// Config configures one relying party.
type Config struct {
	Issuer       string
	ClientID     string
	ClientSecret string
	// RedirectURL is this side's callback, e.g. https://kluis.example.nl/sso/callback.
	RedirectURL string
	// Scopes to ask for; default openid, email, profile.
	Scopes []string
	// Claim names; defaults email, name, groups.
	ClaimEmail, ClaimName, ClaimGroups string
	// HTTPClient talks to the provider; nil: a client with a 30 s timeout.
	HTTPClient *http.Client
	// EmailOptional accepts ID tokens without an e-mail claim: a
	// recipient's login matches a subject or pseudonym, not an address.
	EmailOptional bool
}

// Provider is a discovered OpenID provider and this side's client there.
type Provider struct {
	cfg        Config
	op         *gooidc.Provider
	verifier   *gooidc.IDTokenVerifier
	oauth      oauth2.Config
	endSession string
	device     string
}

// New discovers the provider at cfg.Issuer.
func New(ctx context.Context, cfg Config) (*Provider, error) {
	if cfg.Issuer == "" || cfg.ClientID == "" {
		return nil, errors.New("oidc: the issuer and the client id are required")
	}
	if len(cfg.Scopes) == 0 {
		cfg.Scopes = []string{gooidc.ScopeOpenID, "email", "profile"}
	}
	if !slices.Contains(cfg.Scopes, gooidc.ScopeOpenID) {
		cfg.Scopes = append([]string{gooidc.ScopeOpenID}, cfg.Scopes...)
	}
	cfg.ClaimEmail = cmpOr(cfg.ClaimEmail, "email")
	cfg.ClaimName = cmpOr(cfg.ClaimName, "name")
	cfg.ClaimGroups = cmpOr(cfg.ClaimGroups, "groups")
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 30 * time.Second}
	}
	ctx = gooidc.ClientContext(ctx, cfg.HTTPClient)
	op, err := gooidc.NewProvider(ctx, cfg.Issuer)
	if err != nil {
		return nil, fmt.Errorf("oidc: discovery at %s: %w", cfg.Issuer, err)
	}
	var extra struct {
		EndSession string   `json:"end_session_endpoint"`
		Device     string   `json:"device_authorization_endpoint"`
		Challenge  []string `json:"code_challenge_methods_supported"`
	}
	if err := op.Claims(&extra); err != nil {
		return nil, fmt.Errorf("oidc: discovery at %s: %w", cfg.Issuer, err)
	}
	p := &Provider{
		cfg:        cfg,
		op:         op,
		verifier:   op.Verifier(&gooidc.Config{ClientID: cfg.ClientID}),
		endSession: extra.EndSession,
		device:     extra.Device,
		oauth: oauth2.Config{
			ClientID: cfg.ClientID, ClientSecret: cfg.ClientSecret, RedirectURL: cfg.RedirectURL,
			Endpoint: op.Endpoint(), Scopes: cfg.Scopes,
		},
	}
	return p, nil
}

// Flow is what the server keeps between Begin and Finish.
type Flow struct {
	State    string `json:"state"`
	Nonce    string `json:"nonce"`
	Verifier string `json:"verifier"`
	// Redirect is a command-line client's loopback redirect
	// (BeginLoopback); "" means this server's own callback.
	Redirect string `json:"redirect,omitempty"`
}

// Begin starts a sign-in: it returns the provider's authorization URL and
// the flow to keep.
func (p *Provider) Begin() (string, Flow) {
	f := Flow{State: rand.Text(), Nonce: rand.Text(), Verifier: oauth2.GenerateVerifier()}
	return p.oauth.AuthCodeURL(f.State, oauth2.S256ChallengeOption(f.Verifier), gooidc.Nonce(f.Nonce)), f
}

// Identity is who signed in, from a verified ID token.
type Identity struct {
	Subject string
	Email   string
	Name    string
	Groups  []string
	// GroupsOverage: the provider sent a marker that the groups are too
	// many for the token (Entra's _claim_names, or hasgroups).
	GroupsOverage bool
	ACR           string
	AMR           []string
	// IDToken is the raw token, the hint for RP-initiated logout.
	IDToken      string
	RefreshToken string
	// Claims are all claims of the verified ID token, for a match on a
	// claim the fields above do not name (Entra's oid and tid).
	Claims map[string]any
}

// ErrSignIn wraps every failure of Finish and Refresh that the user can
// only answer by signing in again.
var ErrSignIn = errors.New("oidc: sign-in failed")

// Finish redeems the authorization code of flow f and verifies the ID
// token, its nonce included.
func (p *Provider) Finish(ctx context.Context, code string, f Flow) (*Identity, error) {
	ctx = gooidc.ClientContext(ctx, p.cfg.HTTPClient)
	c := p.oauth
	if f.Redirect != "" {
		if err := CheckLoopback(f.Redirect); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrSignIn, err)
		}
		c.RedirectURL = f.Redirect
	}
	tok, err := c.Exchange(ctx, code, oauth2.VerifierOption(f.Verifier))
	if err != nil {
		return nil, fmt.Errorf("%w: code exchange: %w", ErrSignIn, err)
	}
	id, err := p.identity(ctx, tok)
	if err != nil {
		return nil, err
	}
	if id.nonce != f.Nonce {
		return nil, fmt.Errorf("%w: the ID token's nonce does not match the sign-in", ErrSignIn)
	}
	return &id.Identity, nil
}

// Refresh re-checks the user with the provider through a refresh token: a
// disabled account, or a revoked grant, fails with ErrSignIn.
func (p *Provider) Refresh(ctx context.Context, refreshToken string) (*Identity, error) {
	ctx = gooidc.ClientContext(ctx, p.cfg.HTTPClient)
	tok, err := p.oauth.TokenSource(ctx, &oauth2.Token{RefreshToken: refreshToken, Expiry: time.Unix(1, 0)}).Token()
	if err != nil {
		return nil, fmt.Errorf("%w: refresh: %w", ErrSignIn, err)
	}
	id, err := p.identity(ctx, tok)
	if err != nil {
		return nil, err
	}
	return &id.Identity, nil
}

type verified struct {
	Identity
	nonce string
}

func (p *Provider) identity(ctx context.Context, tok *oauth2.Token) (*verified, error) {
	raw, ok := tok.Extra("id_token").(string)
	if !ok || raw == "" {
		return nil, fmt.Errorf("%w: the provider sent no ID token", ErrSignIn)
	}
	idt, err := p.verifier.Verify(ctx, raw)
	if err != nil {
		return nil, fmt.Errorf("%w: ID token: %w", ErrSignIn, err)
	}
	var claims map[string]any
	if err := idt.Claims(&claims); err != nil {
		return nil, fmt.Errorf("%w: ID token claims: %w", ErrSignIn, err)
	}
	v := &verified{nonce: idt.Nonce}
	v.Subject, v.IDToken, v.Claims = idt.Subject, raw, claims
	v.RefreshToken = tok.RefreshToken
	v.Email, _ = claims[p.cfg.ClaimEmail].(string)
	v.Name, _ = claims[p.cfg.ClaimName].(string)
	v.ACR, _ = claims["acr"].(string)
	v.AMR = strings_(claims["amr"])
	v.Groups = strings_(claims[p.cfg.ClaimGroups])
	if names, ok := claims["_claim_names"].(map[string]any); ok && names[p.cfg.ClaimGroups] != nil {
		v.GroupsOverage = true
	}
	if b, ok := claims["hasgroups"].(bool); ok && b {
		v.GroupsOverage = true
	}
	if v.Email == "" && !p.cfg.EmailOptional {
		return nil, fmt.Errorf("%w: the ID token has no %q claim; set the e-mail claim name or ask for the email scope", ErrSignIn, p.cfg.ClaimEmail)
	}
	return v, nil
}

// LogoutURL is the provider's end-session endpoint with the ID token as
// hint and a return to postLogout, or "" if the provider advertises no
// end_session_endpoint.
func (p *Provider) LogoutURL(idToken, postLogout string) string {
	if p.endSession == "" {
		return ""
	}
	q := url.Values{"client_id": {p.cfg.ClientID}}
	if idToken != "" {
		q.Set("id_token_hint", idToken)
	}
	if postLogout != "" {
		q.Set("post_logout_redirect_uri", postLogout)
	}
	sep := "?"
	if strings.Contains(p.endSession, "?") {
		sep = "&"
	}
	return p.endSession + sep + q.Encode()
}

// EndSessionOrigin is the origin (scheme://host[:port]) of the provider's
// end-session endpoint, for the pages' CSP form-action: the logout form
// continues there. "" if the provider advertises none, or one that is not
// a plain http(s) origin.
func (p *Provider) EndSessionOrigin() string {
	u, err := url.Parse(p.endSession)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || strings.ContainsAny(u.Host, " ;,'\"\t\r\n") {
		return ""
	}
	return u.Scheme + "://" + u.Host
}

// Mapping turns group claims into roles.
type Mapping struct {
	// Groups per role: the group names or ids (as the provider sends
	// them) whose members get the role.
	Groups map[role.Role][]string
	// MFA lists the roles that need a second factor.
	MFA []role.Role
	// ACR and AMR are the values that prove a second factor: the ID
	// token's acr equals one of ACR, or its amr holds one of AMR.
	ACR, AMR []string
}

// DefaultAMR are the amr values (RFC 8176) that mean more than a password.
var DefaultAMR = []string{"mfa", "otp", "hwk", "swk", "sms", "fpt", "face", "iris", "pin"}

// Roles returns the roles id is granted, and those its groups would give
// but its sign-in lacked the second factor for.
func (m Mapping) Roles(id *Identity) (granted, withheld role.Set) {
	if id.GroupsOverage {
		return nil, nil
	}
	mfa := slices.Contains(m.ACR, id.ACR) && id.ACR != ""
	for _, a := range id.AMR {
		mfa = mfa || slices.Contains(m.AMR, a)
	}
	for _, r := range role.All {
		if !slices.ContainsFunc(m.Groups[r], func(g string) bool { return slices.Contains(id.Groups, g) }) {
			continue
		}
		if slices.Contains(m.MFA, r) && !mfa {
			withheld = append(withheld, r)
		} else {
			granted = append(granted, r)
		}
	}
	return granted, withheld
}

func strings_(v any) []string {
	switch v := v.(type) {
	case string:
		return []string{v}
	case []any:
		out := make([]string, 0, len(v))
		for _, x := range v {
			if s, ok := x.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// Account re-checks accounts for package sender (sender.Rechecker): a
// refresh at the provider, and the roles mapped again from the answer.
type Account struct {
	Provider *Provider
	Mapping  Mapping
}

// Recheck refreshes at the provider; a disabled account fails with ErrSignIn.
func (a Account) Recheck(ctx context.Context, refreshToken string) (string, role.Set, role.Set, error) {
	id, err := a.Provider.Refresh(ctx, refreshToken)
	if err != nil {
		return "", nil, nil, err
	}
	rt := id.RefreshToken
	if rt == "" {
		rt = refreshToken // a provider that does not rotate
	}
	g, w := a.Mapping.Roles(id)
	return rt, g, w, nil
}

// ErrNoDeviceGrant: the provider advertises no device authorization
// endpoint; use a browser on a loopback redirect instead (RFC 8252).
var ErrNoDeviceGrant = errors.New("oidc: the provider does not offer the device authorization grant")

// DeviceStart begins the device authorization grant (RFC 8628) for a
// command-line sign-in: show the user VerificationURI and UserCode.
func (p *Provider) DeviceStart(ctx context.Context) (*oauth2.DeviceAuthResponse, error) {
	if p.device == "" {
		return nil, ErrNoDeviceGrant
	}
	ctx = gooidc.ClientContext(ctx, p.cfg.HTTPClient)
	c := p.oauth
	c.Endpoint.DeviceAuthURL = p.device
	da, err := c.DeviceAuth(ctx)
	if err != nil {
		return nil, fmt.Errorf("%w: device authorization: %w", ErrSignIn, err)
	}
	return da, nil
}

// DeviceFinish polls the provider until the user approved (or refused, or
// the code expired) and verifies the ID token. The device grant has no
// nonce; the ID token is still checked for signature, issuer, audience and
// expiry.
func (p *Provider) DeviceFinish(ctx context.Context, da *oauth2.DeviceAuthResponse) (*Identity, error) {
	ctx = gooidc.ClientContext(ctx, p.cfg.HTTPClient)
	tok, err := p.oauth.DeviceAccessToken(ctx, da)
	if err != nil {
		return nil, fmt.Errorf("%w: device grant: %w", ErrSignIn, err)
	}
	id, err := p.identity(ctx, tok)
	if err != nil {
		return nil, err
	}
	return &id.Identity, nil
}

// BeginLoopback starts a sign-in whose provider redirect goes to a
// command-line client's loopback listener (RFC 8252, section 7.3), not to
// this server: redirect must be http on 127.0.0.1 or [::1]. The client
// hands the code back to the server, which redeems it with the verifier
// (PKCE) and this side's client secret, as Finish does.
func (p *Provider) BeginLoopback(redirect string) (string, Flow, error) {
	if err := CheckLoopback(redirect); err != nil {
		return "", Flow{}, err
	}
	f := Flow{State: rand.Text(), Nonce: rand.Text(), Verifier: oauth2.GenerateVerifier(), Redirect: redirect}
	c := p.oauth
	c.RedirectURL = redirect
	return c.AuthCodeURL(f.State, oauth2.S256ChallengeOption(f.Verifier), gooidc.Nonce(f.Nonce)), f, nil
}

// CheckLoopback accepts only a loopback redirect of a native client:
// http://127.0.0.1:PORT/… or http://[::1]:PORT/…, no user, query or
// fragment. "localhost" is refused, as RFC 8252 advises (it may resolve
// elsewhere).
func CheckLoopback(redirect string) error {
	u, err := url.Parse(redirect)
	if err != nil || u.Scheme != "http" || u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.Port() == "" {
		return fmt.Errorf("oidc: %q is not a loopback redirect (http://127.0.0.1:PORT/path)", redirect)
	}
	if h := u.Hostname(); h != "127.0.0.1" && h != "::1" {
		return fmt.Errorf("oidc: %q is not a loopback redirect (http://127.0.0.1:PORT/path)", redirect)
	}
	return nil
}

// ErrPending: the user has not yet approved the device sign-in.
var ErrPending = errors.New("oidc: the device sign-in is not approved yet")

// DevicePoll polls the provider for up to wait (at the provider's
// interval) and verifies the ID token once the user approved. It returns
// ErrPending when wait passed first, so a server can answer a client's
// poll without holding its request for the whole grant.
func (p *Provider) DevicePoll(ctx context.Context, da *oauth2.DeviceAuthResponse, wait time.Duration) (*Identity, error) {
	pctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	id, err := p.DeviceFinish(pctx, da)
	if err != nil && pctx.Err() != nil && ctx.Err() == nil && (da.Expiry.IsZero() || time.Now().Before(da.Expiry)) {
		return nil, ErrPending
	}
	return id, err
}

// OverageAdvice is what the administrator reads in the log when the
// provider sent Entra's group overage marker instead of the groups.
const OverageAdvice = "the identity provider sent a group overage marker (_claim_names or hasgroups: the user is in more groups than fit in a token, over 200 in Entra ID) instead of the groups, so Kluis grants this sign-in no role (it does not call Microsoft Graph). " +
	"Fix it at the provider: in Entra ID, the app registration's Token configuration → groups claim → \"Groups assigned to the application\" (groupMembershipClaims: ApplicationGroup), and assign the Kluis role groups to the enterprise application; " +
	"or give the roles as app roles and set --oidc-claim-groups roles with the app roles' values in --oidc-role-*"

// Advice says, for the administrator's log, why id's groups gave no role
// although the mapping names groups: the provider sent Entra's group
// overage marker (OverageAdvice), or it sends group ids (GUIDs, as Entra
// does) where --oidc-role-* name the groups by name, or names where they
// hold ids. "" when there is nothing to say: a sign-in that got a role,
// or whose groups are simply not among the mapped ones.
func (m Mapping) Advice(id *Identity) string {
	mapped := 0
	configuredIDs := 0
	for _, gs := range m.Groups {
		for _, g := range gs {
			mapped++
			if looksLikeID(g) {
				configuredIDs++
			}
		}
	}
	if mapped == 0 {
		return ""
	}
	if id.GroupsOverage {
		return OverageAdvice
	}
	if g, w := m.Roles(id); len(g)+len(w) > 0 || len(id.Groups) == 0 {
		return ""
	}
	sentIDs := 0
	for _, g := range id.Groups {
		if looksLikeID(g) {
			sentIDs++
		}
	}
	switch {
	case sentIDs == len(id.Groups) && configuredIDs == 0:
		return fmt.Sprintf("the identity provider sends group ids (such as %s), not group names, and no role group of --oidc-role-* is an id: no role was granted. Put the groups' object ids in --oidc-role-* (in Entra ID: Groups → the group → Object ID), or let the provider send names (Entra ID: sAMAccountName or cloud group names in the groups claim)", id.Groups[0])
	case sentIDs == 0 && configuredIDs == mapped:
		return fmt.Sprintf("the identity provider sends group names (such as %q), but the role groups of --oidc-role-* are all ids: no role was granted. Put the group names in --oidc-role-*, as the provider sends them", id.Groups[0])
	}
	return ""
}

// looksLikeID reports whether a group is a GUID (Entra's object ids,
// ADFS's SIDs are not GUIDs but start with S-1-).
func looksLikeID(g string) bool {
	if strings.HasPrefix(g, "S-1-") {
		return true
	}
	if len(g) != 36 {
		return false
	}
	for i, c := range g {
		switch {
		case i == 8 || i == 13 || i == 18 || i == 23:
			if c != '-' {
				return false
			}
		case '0' <= c && c <= '9', 'a' <= c && c <= 'f', 'A' <= c && c <= 'F':
		default:
			return false
		}
	}
	return true
}
