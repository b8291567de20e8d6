package transfer

// The second factor by a login with an OpenID provider (issue 15, item 3).
// As with the SMS code the transfer password stays the key: the right
// password makes a pending session (sms.go) that opens nothing until the
// recipient has logged in with the provider the sender chose, and the
// provider's verified ID token shows the claim value the sender gave.
//
// The login is the authorization code flow of package oidc (PKCE S256,
// state, nonce; the ID token's signature, issuer, audience, expiry and
// nonce checked). The flow is kept in login_flows, found by the hash of
// its state, sealed under the master key, bound to the pending session
// and to a random binding token the browser keeps in a cookie, and used
// once. A login that does not match (another account, a too weak acr) is
// a try in the one lock-out (Attempt, kind AttemptLogin), with the
// password and code tries.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/kluis-nl/kluis"
	"github.com/kluis-nl/kluis/internal/audit"
	"github.com/kluis-nl/kluis/internal/oidc"
	"github.com/kluis-nl/kluis/internal/policy"
	"github.com/kluis-nl/kluis/internal/secret"
	"github.com/kluis-nl/kluis/internal/store"
)

const (
	purposeLogin     = "recipient.login"
	purposeLoginFlow = "recipient.loginflow"
)

// LoginCallbackPath is where providers send recipients back; register
// BaseURL + LoginCallbackPath as the redirect URI at every provider.
const LoginCallbackPath = "/r/login/callback"

// loginTTL is how long a recipient may take at the provider.
const loginTTL = 10 * time.Minute

// sealLogin seals the claim value a recipient's login must show.
func (s *Service) sealLogin(recipientID int64, value string) []byte {
	return s.keys.Seal(purposeLogin, strconv.FormatInt(recipientID, 10), []byte(value))
}

func (s *Service) loginValue(r *store.RecipientRow) (string, error) {
	if r.LoginSealed == nil {
		return "", &kluis.Error{Code: kluis.EINTEGRITY, Message: "This recipient has no login to check."}
	}
	v, err := s.keys.Open(purposeLogin, strconv.FormatInt(r.ID, 10), r.LoginSealed)
	if err != nil {
		return "", &kluis.Error{Code: kluis.EINTEGRITY, Message: "Stored data failed verification.", Err: err}
	}
	return string(v), nil
}

// maskedLogin is what views show of the claim value: its first and last
// two characters.
func (s *Service) maskedLogin(r *store.RecipientRow) string {
	if r.LoginSealed == nil {
		return ""
	}
	v, err := s.loginValue(r)
	if err != nil {
		return ""
	}
	return MaskLoginValue(v)
}

// MaskLoginValue shows a claim value's first and last two characters.
func MaskLoginValue(v string) string {
	rs := []rune(v)
	if len(rs) < 8 {
		return "•••"
	}
	return string(rs[:2]) + "•••" + string(rs[len(rs)-2:])
}

// loginRPs keeps one discovered relying party per provider
// configuration, so discovery runs once and a policy reload that changes
// a provider makes a new one.
type loginRPs struct {
	mu  sync.Mutex
	rps map[string]*oidc.Provider
}

func (s *Service) loginRP(ctx context.Context, lp policy.LoginProvider) (*oidc.Provider, error) {
	h := sha256.Sum256([]byte(strings.Join(append([]string{lp.Issuer, lp.ClientID, lp.ClientSecret}, lp.Scopes...), "\x00")))
	key := lp.Name + "/" + hex.EncodeToString(h[:])
	s.logins.mu.Lock()
	defer s.logins.mu.Unlock()
	if rp := s.logins.rps[key]; rp != nil {
		return rp, nil
	}
	rp, err := oidc.New(ctx, oidc.Config{
		Issuer: lp.Issuer, ClientID: lp.ClientID, ClientSecret: lp.ClientSecret,
		RedirectURL: s.cfg.BaseURL + LoginCallbackPath, Scopes: lp.Scopes, EmailOptional: true,
	})
	if err != nil {
		s.log.Error("login provider unavailable", "provider", lp.Name, "err", err)
		return nil, &kluis.Error{Code: kluis.EUNAVAILABLE, Message: "The login service cannot be reached. Try again in a moment.", Err: err}
	}
	if s.logins.rps == nil {
		s.logins.rps = map[string]*oidc.Provider{}
	}
	s.logins.rps[key] = rp
	return rp, nil
}

// LoginProvider returns the provider a pending session's recipient must
// log in with; ENOTFOUND when the recipient has none or the policy no
// longer lists it.
func (s *Service) LoginProvider(p *Pending) (policy.LoginProvider, error) {
	if kluis.AuthMethod(p.recipient.AuthMethod) != kluis.AuthPasswordLogin || p.recipient.LoginProvider == "" {
		return policy.LoginProvider{}, kluis.Errorf(kluis.ENOTFOUND, "This recipient does not log in with a provider.")
	}
	lp, ok := s.Policy().LoginProvider(p.recipient.LoginProvider)
	if !ok {
		s.log.Error("login provider not in the policy", "provider", p.recipient.LoginProvider, "transfer", p.transfer.ID)
		return policy.LoginProvider{}, kluis.Errorf(kluis.EUNAVAILABLE, "The login service for this transfer is not available. Contact the sender.")
	}
	return lp, nil
}

// Method is the pending recipient's verification method.
func (p *Pending) Method() kluis.AuthMethod { return kluis.AuthMethod(p.recipient.AuthMethod) }

type loginFlow struct {
	oidc.Flow
	Binding   []byte `json:"binding"` // hash of the browser's binding token
	Recipient int64  `json:"recipient"`
}

// BeginLogin starts the login of a pending session's recipient: it keeps
// the flow, bound to the session and to binding (a random token the
// caller gives the browser in a cookie), and returns the provider's
// authorization URL.
func (s *Service) BeginLogin(ctx context.Context, p *Pending, binding string) (string, error) {
	if binding == "" {
		return "", errors.New("begin login: no binding token")
	}
	lp, err := s.LoginProvider(p)
	if err != nil {
		return "", err
	}
	rp, err := s.loginRP(ctx, lp)
	if err != nil {
		return "", err
	}
	authURL, f := rp.Begin()
	h := secret.HashToken(f.State)
	sealed, err := s.sealJSON(purposeLoginFlow, hex.EncodeToString(h), loginFlow{Flow: f, Binding: secret.HashToken(binding), Recipient: p.recipient.ID})
	if err != nil {
		return "", err
	}
	expires := s.now().Add(loginTTL)
	if expires.After(p.row.ExpiresAt) {
		expires = p.row.ExpiresAt
	}
	if err := s.db.InsertLoginFlow(ctx, &store.LoginFlow{StateHash: h, SessionHash: p.idHash, FlowSealed: sealed, ExpiresAt: expires}); err != nil {
		return "", err
	}
	s.log.Info("recipient login begun", "transfer", p.transfer.ID, "recipient", p.recipient.ID, "provider", lp.Name)
	return authURL, nil
}

// LoginResult is a finished login: whose, and with which provider.
type LoginResult struct {
	TransferID  string
	RecipientID int64
	Provider    string
}

// ErrLoginFailed is wrapped by FinishLogin's EUNAUTHORIZED when the login
// itself failed (state unknown, used, expired or from another browser; the
// provider refused the code), so the recipient may simply log in again.
var ErrLoginFailed = errors.New("login failed")

func errLoginFlow() error {
	return &kluis.Error{Code: kluis.EUNAUTHORIZED, Message: "This login is not valid any more (it was used, took too long, or began in another browser). Log in again.", Err: ErrLoginFailed}
}

// FinishLogin takes the provider's answer (state and code) in the browser
// that holds binding. It redeems the code, verifies the ID token and
// compares its claim with the sender's value. A match ends the pending
// state of the session the login began in, and the transfer is open. A
// mismatch is a wrong try (EWRONGSECRET, or ELOCKED when it locked the
// access). A state that is unknown, used, expired or from another
// browser gives EUNAUTHORIZED and counts nothing (no try was made).
func (s *Service) FinishLogin(ctx context.Context, binding, state, code string) (*LoginResult, error) {
	if state == "" || binding == "" {
		return nil, errLoginFlow()
	}
	h := secret.HashToken(state)
	row, err := s.db.TakeLoginFlow(ctx, h)
	if errors.Is(err, store.ErrNotFound) {
		return nil, errLoginFlow()
	}
	if err != nil {
		return nil, err
	}
	var f loginFlow
	if err := s.openJSON(purposeLoginFlow, hex.EncodeToString(h), row.FlowSealed, &f); err != nil {
		return nil, err
	}
	if !s.now().Before(row.ExpiresAt) || !secret.Equal(f.Binding, secret.HashToken(binding)) {
		return nil, errLoginFlow()
	}
	sess, err := s.db.Session(ctx, row.SessionHash)
	if errors.Is(err, store.ErrNotFound) || (err == nil && (!sess.Pending || sess.RecipientID != f.Recipient || !s.now().Before(sess.ExpiresAt))) {
		return nil, errSessionEnded()
	}
	if err != nil {
		return nil, err
	}
	r, err := s.db.Recipient(ctx, sess.RecipientID)
	if err != nil {
		return nil, errSessionEnded()
	}
	t, err := s.db.Transfer(ctx, r.TransferID)
	if err != nil {
		return nil, err
	}
	if err := s.openable(t, r); err != nil {
		return nil, err
	}
	p := &Pending{transfer: t, recipient: r, row: sess, idHash: row.SessionHash}
	lp, err := s.LoginProvider(p)
	if err != nil {
		return nil, err
	}
	rp, err := s.loginRP(ctx, lp)
	if err != nil {
		return nil, err
	}
	a, err := s.reserve(ctx, t, r, AttemptLogin)
	if err != nil {
		return nil, err
	}
	id, err := rp.Finish(ctx, code, f.Flow)
	if err != nil {
		// The provider refused the code or sent a token that does not
		// verify: no login was made, so nothing to count; the
		// recipient can start again.
		if uerr := a.Succeed(ctx); uerr != nil {
			return nil, uerr
		}
		s.log.Warn("recipient login failed at the provider", "transfer", t.ID, "recipient", r.ID, "provider", lp.Name, "err", err)
		s.audit.Log(ctx, audit.Event{Actor: audit.Recipient(r.ID), Action: audit.RecipientUnlock, Object: t.ID, Result: audit.Refused,
			Detail: "method=" + string(kluis.AuthPasswordLogin) + " provider=" + lp.Name + " step=provider"})
		return nil, &kluis.Error{Code: kluis.EUNAUTHORIZED, Message: "The login did not complete. Log in again.", Err: fmt.Errorf("%w: %w", ErrLoginFailed, err)}
	}
	want, err := s.loginValue(r)
	if err != nil {
		return nil, err
	}
	if ok, why := lp.Match(id.Claims, want); !ok {
		s.log.Warn("recipient login does not match", "transfer", t.ID, "recipient", r.ID, "provider", lp.Name, "check", why)
		return nil, a.Fail(ctx)
	}
	now := s.now()
	expires := now.Add(s.cfg.SessionTTL)
	if expires.After(t.ExpiresAt) {
		expires = t.ExpiresAt
	}
	if err := s.db.VerifyLoginSession(ctx, row.SessionHash, now, expires); errors.Is(err, store.ErrNotFound) {
		return nil, errSessionEnded()
	} else if err != nil {
		return nil, err
	}
	if err := s.db.MarkOpened(ctx, r.ID, now); err != nil {
		return nil, err
	}
	if err := s.db.MarkVerified(ctx, r.ID, now); err != nil {
		return nil, err
	}
	s.audit.Log(ctx, audit.Event{Actor: audit.Recipient(r.ID), Action: audit.RecipientUnlock, Object: t.ID,
		Detail: "method=" + string(kluis.AuthPasswordLogin) + " provider=" + lp.Name})
	s.log.Info("transfer unlocked", "transfer", t.ID, "recipient", r.ID, "method", string(kluis.AuthPasswordLogin), "provider", lp.Name)
	s.met().Unlock(UnlockOK)
	return &LoginResult{TransferID: t.ID, RecipientID: r.ID, Provider: lp.Name}, nil
}
