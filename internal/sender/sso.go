package sender

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/kluis-nl/kluis"
	"github.com/kluis-nl/kluis/internal/audit"
	"github.com/kluis-nl/kluis/internal/role"
	"github.com/kluis-nl/kluis/internal/secret"
	"github.com/kluis-nl/kluis/internal/store"
)

// Single sign-on. Staff prove their address with the organisation's
// identity provider instead of a mailed code (package oidc talks to the
// provider; package web runs the browser flow). The session is the same
// sender session, marked auth=sso, with the roles granted at sign-in, and
// it lasts at most the SSO cap (Config.SSOSessionMax), however long a
// mailed-code session may last. Addresses in domains that must use SSO
// (SSORequired) get no mailed code.

// ErrSSORequired is wrapped by Start's error for an address that must sign
// in with the organisation's identity provider.
var ErrSSORequired = errors.New("sender: this address must sign in with the organisation account")

const purposeFlow = "sso.flow"

// SSOLogin is a verified sign-in at the identity provider.
type SSOLogin struct {
	Email, Name string
	// Subject is the provider's id of the user.
	Subject string
	// Roles were granted; Withheld would have been, with a second factor.
	Roles, Withheld role.Set
	// IDToken is kept (sealed) as the hint for logout at the provider;
	// RefreshToken (sealed) lets a CLI token re-check the account.
	IDToken, RefreshToken string
	// Kind is "browser" or "cli".
	Kind string
	Lang string
}

type ssoDetails struct {
	details
	Subject      string `json:"sub"`
	Withheld     string `json:"withheld,omitempty"`
	IDToken      string `json:"id_token,omitempty"`
	RefreshToken string `json:"refresh_token,omitempty"`
}

// SaveFlow keeps a sign-in in progress until ttl: payload (the flow's
// nonce and verifier, sealed) under the state's hash, bound to the
// browser's binding token (only its hash is stored).
func (s *Service) SaveFlow(ctx context.Context, binding, state string, payload []byte, ttl time.Duration) error {
	h := secret.HashToken(state)
	return s.db.InsertOIDCFlow(ctx, &store.OIDCFlow{
		StateHash:   h,
		BindingHash: secret.HashToken(binding),
		FlowSealed:  s.keys.Seal(purposeFlow, fmt.Sprintf("%x", h), payload),
		ExpiresAt:   s.now().Add(ttl),
	})
}

// TakeFlow returns the payload of the sign-in in progress for state and
// ends it: a state works once. It fails with EUNAUTHORIZED if the state is
// unknown, used, expired, or was begun in another browser (binding).
func (s *Service) TakeFlow(ctx context.Context, binding, state string) ([]byte, error) {
	refused := kluis.Errorf(kluis.EUNAUTHORIZED, "This sign-in is not valid any more (it was used, took too long, or began in another browser). Sign in again.")
	if state == "" || binding == "" {
		return nil, refused
	}
	h := secret.HashToken(state)
	f, err := s.db.TakeOIDCFlow(ctx, h)
	if errors.Is(err, store.ErrNotFound) {
		return nil, refused
	}
	if err != nil {
		return nil, err
	}
	if !s.now().Before(f.ExpiresAt) || !secret.Equal(f.BindingHash, secret.HashToken(binding)) {
		return nil, refused
	}
	return s.keys.Open(purposeFlow, fmt.Sprintf("%x", h), f.FlowSealed)
}

// OpenSSOSession opens a sender session for a verified sign-in. It lasts
// Config.SSOSessionMax for a browser and Config.SSOTokenMax for the CLI.
func (s *Service) OpenSSOSession(ctx context.Context, l SSOLogin) (*Session, error) {
	addr, err := kluis.ParseAddress(l.Email)
	if err != nil {
		return nil, kluis.Errorf(kluis.EINVALID, "The identity provider gave an e-mail address Kluis cannot use (%v). Ask your administrator to check the e-mail claim.", err)
	}
	if err := checkLine("name", l.Name, 200); err != nil {
		return nil, err
	}
	now := s.now()
	ttl := s.cfg.SSOSessionMax
	if l.Kind == "cli" {
		ttl = s.cfg.SSOTokenMax
	}
	token := secret.NewToken()
	h := secret.HashToken(token)
	det, _ := json.Marshal(ssoDetails{details: details{Name: l.Name, Lang: l.Lang}, Subject: l.Subject, Withheld: l.Withheld.String(), IDToken: l.IDToken, RefreshToken: l.RefreshToken})
	row := &store.SenderSession{
		IDHash:        h,
		Email:         addr,
		DetailsSealed: s.keys.Seal(purposeSession, fmt.Sprintf("%x", h), det),
		Kind:          l.Kind,
		CreatedAt:     now,
		LastSeenAt:    now,
		ExpiresAt:     now.Add(ttl),
		Auth:          "sso",
		Roles:         l.Roles.String(),
		CheckedAt:     &now,
	}
	tx, err := s.db.BeginTx(ctx)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	if err := tx.InsertSenderSession(ctx, row); err != nil {
		return nil, err
	}
	detail := "kind=" + l.Kind + " auth=sso roles=" + l.Roles.String()
	if len(l.Withheld) > 0 {
		detail += " withheld_no_mfa=" + l.Withheld.String()
	}
	if err := s.audit.Record(ctx, tx.Q, audit.Event{Actor: audit.Sender(addr), Action: audit.VerifyOK, Detail: detail}); err != nil {
		return nil, err
	}
	if err := tx.Commit(); err != nil {
		return nil, err
	}
	s.log.Info("sender signed in with sso", "action", "sso.signin", "result", "ok", "kind", l.Kind, "roles", l.Roles.String())
	return &Session{Token: token, Sender: Sender{Email: addr, Name: l.Name, Lang: l.Lang, Via: "session", Auth: "sso", Roles: l.Roles, Withheld: l.Withheld, IDToken: l.IDToken}, ExpiresAt: row.ExpiresAt}, nil
}

// mustUseSSO refuses the mailed code to an address that must sign in
// with the organisation's identity provider.
func (s *Service) mustUseSSO(addr string) error {
	if s.ssoRequired == nil || !s.ssoRequired(addr) {
		return nil
	}
	domain := addr[strings.LastIndexByte(addr, '@')+1:]
	return &kluis.Error{Code: kluis.EPOLICY, Err: ErrSSORequired,
		Message: fmt.Sprintf("Addresses at %s sign in with the organisation account, not with a mailed code. Choose \"Sign in with your organisation account\".", domain)}
}

// Rechecker asks the identity provider about an SSO account through its
// refresh token. It returns the rotated refresh token and the roles the
// account holds now; an error means the account (or its grant) is gone.
type Rechecker interface {
	Recheck(ctx context.Context, refreshToken string) (newRefreshToken string, roles, withheld role.Set, err error)
}

// recheckSSO re-checks an SSO session that is due (a CLI token lives up to
// SSOTokenMax, longer than the SSO cap): the provider must still know the
// account, or the session ends. So a disabled account loses a CLI token
// within SSOSessionMax, as it loses a browser session.
func (s *Service) recheckSSO(ctx context.Context, sess *store.SenderSession, d *ssoDetails, now time.Time) error {
	ended := kluis.Errorf(kluis.EUNAUTHORIZED, "Your sign-in has ended. Sign in again with your organisation account.")
	if s.recheck == nil || d.RefreshToken == "" {
		_ = s.db.DeleteSenderSession(ctx, sess.IDHash)
		return ended
	}
	rt, roles, withheld, err := s.recheck.Recheck(ctx, d.RefreshToken)
	if err != nil {
		s.log.Warn("sso account re-check failed: session ended", "action", "sso.recheck", "result", "refused", "error", err)
		_ = s.db.DeleteSenderSession(ctx, sess.IDHash)
		s.audit.Log(ctx, audit.Event{Actor: audit.Sender(sess.Email), Action: audit.SenderLogout, Result: "sso_recheck_refused"})
		return ended
	}
	d.RefreshToken, d.Withheld = rt, withheld.String()
	det, _ := json.Marshal(d)
	if err := s.db.RecheckSenderSession(ctx, sess.IDHash, now, s.keys.Seal(purposeSession, fmt.Sprintf("%x", sess.IDHash), det), roles.String()); err != nil {
		return err
	}
	sess.Roles = roles.String()
	return nil
}
