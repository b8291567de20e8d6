// Package sender verifies senders: a sender proves control of an e-mail
// address with a one-time code mailed there, and gets a session (a browser
// cookie or a token for scripts) that keeps the address verified for a
// while. Administrators can also issue API keys bound to one address.
//
// Senders are not accounts. What is stored: the address in plain (to find
// the sender's transfers), name and phone sealed under the master key, and
// only hashes of codes, session tokens and API keys.
//
// # Codes
//
// A code is 8 digits from crypto/rand, valid for CodeTTL (10 minutes), good
// for one use, only together with the pre-session token of the browser or
// client that asked for it, and for at most MaxAttempts tries; then a new
// code is needed, which can be asked for after Cooldown. The cooldown holds
// per pre-session whatever address the code is for, and each attempt is
// counted in the same statement that checks the limit, before the code is
// compared, so parallel requests cannot get more codes or more tries.
// Code mails are limited per address and per pre-session (Config.CodeMails)
// in the database's rate_limits table, so several instances enforce one
// limit and nobody can flood an address with codes. The stored hash is
// SHA-256(pre-session token || code): a copy of the database, which holds
// only the token's hash, cannot be used to test codes offline.
package sender

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"strconv"
	"strings"
	"time"

	"github.com/kluis-nl/kluis"
	"github.com/kluis-nl/kluis/internal/audit"
	"github.com/kluis-nl/kluis/internal/mail"
	"github.com/kluis-nl/kluis/internal/role"
	"github.com/kluis-nl/kluis/internal/secret"
	"github.com/kluis-nl/kluis/internal/store"
)

// CodeDigits is the length of a verification code.
const CodeDigits = 8

// Config holds the verification periods and limits.
type Config struct {
	CodeTTL     time.Duration // how long a code works
	MaxAttempts int           // wrong codes before a new one is needed
	Cooldown    time.Duration // between two codes for one pre-session
	SessionTTL  time.Duration // absolute lifetime of a verified session
	IdleTTL     time.Duration // a session unused this long ends
	// CodeMails bounds the code mails to one address, and separately
	// those asked for by one pre-session.
	CodeMails CodeMailLimit
	// SSOSessionMax is the absolute lifetime of a browser session made
	// by single sign-on; SSOTokenMax that of a CLI token made by it
	// (which re-checks the account with the provider every
	// SSOSessionMax, see sso.go).
	SSOSessionMax time.Duration
	SSOTokenMax   time.Duration
	// APIKeyMaxAge is the longest an API key may be valid (every key has
	// an expiry).
	APIKeyMaxAge time.Duration
}

// DefaultAPIKeyMaxAge is the default of Config.APIKeyMaxAge: a year.
const DefaultAPIKeyMaxAge = 365 * 24 * time.Hour

// CodeMailLimit is how many code mails may go out: Burst at once, then one
// every Every (a token bucket); to one address also no more than a second
// bucket of PerDay allows, which refills at PerDay a day (so at most
// 2*PerDay in a first day of flooding, and PerDay a day after that).
type CodeMailLimit struct {
	Burst  int
	Every  time.Duration
	PerDay int
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		CodeTTL:     10 * time.Minute,
		MaxAttempts: 5,
		Cooldown:    time.Minute,
		SessionTTL:  30 * 24 * time.Hour,
		IdleTTL:     30 * 24 * time.Hour,
		CodeMails:   CodeMailLimit{Burst: 5, Every: 10 * time.Minute, PerDay: 20},

		SSOSessionMax: 12 * time.Hour,
		SSOTokenMax:   30 * 24 * time.Hour,
		APIKeyMaxAge:  DefaultAPIKeyMaxAge,
	}
}

// Mailer queues a mail in the caller's transaction.
type Mailer interface {
	Enqueue(ctx context.Context, tx *store.Tx, m *mail.Message) (string, error)
	// Wake tells the worker that new mail was committed.
	Wake()
}

// Service verifies senders.
type Service struct {
	db     *store.DB
	keys   *secret.Keyring
	mailer Mailer
	org    mail.Org
	cfg    Config
	now    func() time.Time
	log    *slog.Logger
	audit  *audit.Recorder // nil: no audit log

	ssoRequired func(addr string) bool
	recheck     Rechecker
	unlocks     *secret.Limiter
}

// Deps are what the service is built from.
type Deps struct {
	DB   *store.DB
	Keys *secret.Keyring
	// Mailer queues the code mails (the outbox), written for Org; nil only
	// for commands that send none (API keys).
	Mailer Mailer
	Org    mail.Org
	Config Config
	// Now is the clock; nil: time.Now.
	Now func() time.Time
	// Log; nil: slog.Default().
	Log *slog.Logger
	// Audit records verifications, logouts and API keys; nil: no audit
	// log.
	Audit *audit.Recorder
	// SSORequired reports whether an address must sign in with the
	// organisation's identity provider (no mailed code); nil: none must.
	SSORequired func(addr string) bool
	// Recheck asks the identity provider whether an SSO account still
	// exists; nil: an SSO session ends when it is due for a re-check.
	Recheck Rechecker
	// Unlocks bounds concurrent inbox passphrase checks (scrypt); share
	// the transfer service's, so one bound covers all unlocks. nil: an
	// own limiter of secret.DefaultUnlockConcurrency.
	Unlocks *secret.Limiter
}

// New returns the service built from d.
func New(d Deps) *Service {
	now, log := d.Now, d.Log
	if now == nil {
		now = time.Now
	}
	if log == nil {
		log = slog.Default()
	}
	unlocks := d.Unlocks
	if unlocks == nil {
		unlocks = secret.NewLimiter(secret.DefaultUnlockConcurrency)
	}
	return &Service{db: d.DB, keys: d.Keys, mailer: d.Mailer, org: d.Org, cfg: d.Config, now: func() time.Time { return now().UTC() }, log: log, audit: d.Audit, ssoRequired: d.SSORequired, recheck: d.Recheck,
		unlocks: unlocks}
}

// Config returns the service's configuration.
func (s *Service) Config() Config { return s.cfg }

// Sender is a verified sender.
type Sender struct {
	Email string `json:"email"`
	Name  string `json:"name"`
	Phone string `json:"phone"`
	Lang  string `json:"lang"`
	// Via says how the sender proved the address: "session" or "apikey".
	Via string `json:"-"`
	// KeyID is the API key's id when Via is "apikey" (for the audit log).
	KeyID string `json:"-"`
	// Auth is "sso" for a session made by single sign-on, else "code".
	Auth string `json:"-"`
	// Roles are the staff roles of an SSO session; Withheld those its
	// groups give but its sign-in lacked the second factor for.
	Roles    role.Set `json:"-"`
	Withheld role.Set `json:"-"`
	// IDToken is the provider's ID token of an SSO session (the hint
	// for logout at the provider).
	IDToken string `json:"-"`
}

// AuditActor is the sender as an audit log actor: "apikey:<id>" for a
// script, else "sender:<address>".
func (s *Sender) AuditActor() string {
	if s.Via == "apikey" && s.KeyID != "" {
		return audit.APIKey(s.KeyID)
	}
	return audit.Sender(s.Email)
}

// AuditContext returns ctx naming s as the actor of audit entries and,
// for an SSO session with roles, the roles it acts in.
func (s *Sender) AuditContext(ctx context.Context) context.Context {
	ctx = audit.WithActor(ctx, s.AuditActor())
	if s.Auth == "sso" && len(s.Roles) > 0 {
		ctx = audit.WithRole(ctx, s.Roles.String())
	}
	return ctx
}

type details struct {
	Name  string `json:"name"`
	Phone string `json:"phone"`
	Lang  string `json:"lang"`
}

const (
	purposeVerify  = "verify.details"
	purposeSession = "sender.details"
)

// Start begins (or repeats) a verification: it mails a new code to email and
// returns the pre-session token the code is tied to. Pass the token of an
// earlier Start for the same browser to resend (after Cooldown); pass "" to
// begin anew. lang is the language of the mail.
func (s *Service) Start(ctx context.Context, preToken, email, name, phone, lang string) (string, error) {
	addr, err := kluis.ParseAddress(email)
	if err != nil {
		return "", err
	}
	if err := s.mustUseSSO(addr); err != nil {
		return "", err
	}
	if err := checkLine("name", name, 200); err != nil {
		return "", err
	}
	if err := checkLine("phone number", phone, 40); err != nil {
		return "", err
	}
	// The language of this mail and of the sender's later ones: any
	// language Kluis speaks, else Dutch.
	lang = mail.Lang(lang)
	now := s.now()
	if preToken != "" {
		// A token this server never issued, or whose verification is gone,
		// starts a new pre-session.
		if _, err := s.db.Verification(ctx, secret.HashToken(preToken)); errors.Is(err, store.ErrNotFound) {
			preToken = ""
		} else if err != nil {
			return "", err
		}
	}
	if preToken == "" {
		preToken = secret.NewToken()
	}
	code, err := newCode()
	if err != nil {
		return "", err
	}
	idHash := secret.HashToken(preToken)
	det, _ := json.Marshal(details{Name: name, Phone: phone, Lang: lang})
	v := &store.Verification{
		IDHash:        idHash,
		Email:         addr,
		DetailsSealed: s.keys.Seal(purposeVerify, fmt.Sprintf("%x", idHash), det),
		CodeHash:      codeHash(preToken, code),
		CreatedAt:     now,
		SentAt:        now,
		ExpiresAt:     now.Add(s.cfg.CodeTTL),
	}
	m, err := mail.Render(mail.KindVerifyCode, lang, s.org, addr, mail.VerifyCode{Code: code, Minutes: int(s.cfg.CodeTTL.Minutes())})
	if err != nil {
		return "", err
	}
	tx, err := s.db.BeginTx(ctx)
	if err != nil {
		return "", err
	}
	defer tx.Rollback()
	// The cooldown holds per pre-session, whatever address the earlier
	// code went to: asking for another address and back must not send
	// more mail or give a fresh count of attempts any sooner.
	if err := tx.StartVerification(ctx, v, s.cfg.Cooldown); errors.Is(err, store.ErrConflict) {
		return "", s.cooldownError(ctx, tx.Q, idHash, now)
	} else if err != nil {
		return "", err
	}
	if err := s.takeCodeMail(ctx, tx, addr, idHash, now); err != nil {
		return "", err
	}
	if _, err := s.mailer.Enqueue(ctx, tx, m); err != nil {
		return "", err
	}
	// The audit entry is the transaction's last write: it takes the chain
	// head's lock, which every transaction takes last (no lock cycle), and
	// holds it only until the commit.
	if err := s.audit.Record(ctx, tx.Q, audit.Event{Actor: audit.Sender(addr), Action: audit.VerifyStart}); err != nil {
		return "", err
	}
	if err := tx.Commit(); err != nil {
		return "", err
	}
	s.mailer.Wake()
	s.log.Info("verification code sent", "action", "verify.start")
	return preToken, nil
}

// Session is the result of a successful verification.
type Session struct {
	Token     string
	Sender    Sender
	ExpiresAt time.Time
}

// Confirm checks a code for the pre-session token. Success ends the
// verification (the code works once) and opens a sender session; kind is
// "browser" or "cli".
func (s *Service) Confirm(ctx context.Context, preToken, code, kind string) (*Session, error) {
	code = strings.Map(func(r rune) rune {
		if r == ' ' || r == '-' {
			return -1
		}
		return r
	}, strings.TrimSpace(code))
	if preToken == "" {
		return nil, kluis.Errorf(kluis.EUNAUTHORIZED, "This code was asked for in another browser or session. Ask for a new code here.")
	}
	if len(code) != CodeDigits || strings.Trim(code, "0123456789") != "" {
		return nil, kluis.Errorf(kluis.EINVALID, "The code has %d digits. Check the code in the e-mail and try again.", CodeDigits)
	}
	idHash := secret.HashToken(preToken)
	now := s.now()
	// Count the attempt before comparing, in the statement that checks the
	// limit, so parallel confirms cannot compare more than MaxAttempts
	// codes between them.
	v, err := s.db.ReserveVerificationAttempt(ctx, idHash, s.cfg.MaxAttempts, now)
	if errors.Is(err, store.ErrNotFound) {
		return nil, s.refusal(ctx, idHash, now)
	}
	if err != nil {
		return nil, err
	}
	if n := v.Attempts; !secret.Equal(codeHash(preToken, code), v.CodeHash) {
		s.log.Warn("wrong verification code", "action", "verify.confirm", "result", "wrong_code", "attempt", n)
		s.audit.Log(ctx, audit.Event{Actor: audit.Sender(v.Email), Action: audit.VerifyFailed, Result: audit.WrongCode, Detail: "attempt=" + strconv.Itoa(n)})
		if n >= s.cfg.MaxAttempts {
			return nil, errTooManyCodes()
		}
		return nil, kluis.Errorf(kluis.EWRONGSECRET, "The code is not correct. You can try %d more times.", s.cfg.MaxAttempts-n)
	}
	var d details
	if b, err := s.keys.Open(purposeVerify, fmt.Sprintf("%x", idHash), v.DetailsSealed); err == nil {
		_ = json.Unmarshal(b, &d)
	}
	token := secret.NewToken()
	sessHash := secret.HashToken(token)
	det, _ := json.Marshal(d)
	row := &store.SenderSession{
		IDHash:        sessHash,
		Email:         v.Email,
		DetailsSealed: s.keys.Seal(purposeSession, fmt.Sprintf("%x", sessHash), det),
		Kind:          kind,
		CreatedAt:     now,
		LastSeenAt:    now,
		ExpiresAt:     now.Add(s.cfg.SessionTTL),
	}
	tx, err := s.db.BeginTx(ctx)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	// The code works once: the verification goes in the same transaction
	// that opens the session. A parallel confirm with the same code (or a
	// resend in between) finds it gone.
	if err := tx.UseVerification(ctx, idHash, v.CodeHash); errors.Is(err, store.ErrNotFound) {
		return nil, errNoCode()
	} else if err != nil {
		return nil, err
	}
	if err := tx.InsertSenderSession(ctx, row); err != nil {
		return nil, err
	}
	if err := s.audit.Record(ctx, tx.Q, audit.Event{Actor: audit.Sender(v.Email), Action: audit.VerifyOK, Detail: "kind=" + kind}); err != nil {
		return nil, err
	}
	if err := tx.Commit(); err != nil {
		return nil, err
	}
	s.log.Info("sender verified", "action", "verify.confirm", "result", "ok", "kind", kind)
	return &Session{Token: token, Sender: Sender{Email: v.Email, Name: d.Name, Phone: d.Phone, Lang: d.Lang, Via: "session"}, ExpiresAt: row.ExpiresAt}, nil
}

// refusal says why no attempt could be counted for a verification.
func (s *Service) refusal(ctx context.Context, idHash []byte, now time.Time) error {
	v, err := s.db.Verification(ctx, idHash)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return errNoCode()
	case err != nil:
		return err
	case !now.Before(v.ExpiresAt):
		return kluis.Errorf(kluis.EEXPIRED, "This code has expired (a code works for %d minutes). Ask for a new code.", int(s.cfg.CodeTTL.Minutes()))
	default:
		return errTooManyCodes()
	}
}

// cooldownError is the answer to a code asked for within the cooldown of
// the pre-session's last one. It reads with q, the caller's transaction: a
// read on another connection could wait for a pool slot held by writers
// that queue behind this transaction.
func (s *Service) cooldownError(ctx context.Context, q store.Q, idHash []byte, now time.Time) error {
	wait := s.cfg.Cooldown
	if v, err := q.Verification(ctx, idHash); err == nil {
		wait = max(s.cfg.Cooldown-now.Sub(v.SentAt), time.Second)
	}
	return &kluis.Error{Code: kluis.ETOOMANYREQUESTS, Message: fmt.Sprintf("A code was sent a moment ago. You can ask for a new one in %d seconds.", int(wait.Seconds())+1), RetryAfter: wait, Err: ErrCooldown}
}

// ErrCodeLimit is wrapped by Start's rate_limited error when too many code
// mails went to the address, or were asked for by the pre-session.
var ErrCodeLimit = errors.New("sender: too many code mails")

// takeCodeMail counts one code mail against the address's buckets (a short
// one and a day one) and the pre-session's, in the shared rate_limits
// table, inside tx: so every instance on the database enforces one limit,
// and a request refused later (or rolled back) costs nothing. The buckets
// are named by keyed hashes (HMAC under a key derived from the master
// key), so the table holds no address; a row is deleted by Cleanup once
// its bucket is full again.
func (s *Service) takeCodeMail(ctx context.Context, tx *store.Tx, addr string, idHash []byte, now time.Time) error {
	lim := s.cfg.CodeMails
	if lim.Burst < 1 || lim.Every <= 0 {
		return nil
	}
	mac := func(purpose string, b []byte) string { return hex.EncodeToString(s.keys.MAC(purpose, b)[:16]) }
	addrKey := mac("sender.code_mails.address", []byte(strings.ToLower(addr)))
	type bucket struct {
		key   string
		every time.Duration
		burst int
	}
	buckets := []bucket{
		{"code:a:" + addrKey, lim.Every, lim.Burst},
		{"code:p:" + mac("sender.code_mails.presession", idHash), lim.Every, lim.Burst},
	}
	if lim.PerDay > 0 {
		buckets = append(buckets, bucket{"code:d:" + addrKey, 24 * time.Hour / time.Duration(lim.PerDay), lim.PerDay})
	}
	for _, b := range buckets {
		ok, wait, err := tx.TakeRateToken(ctx, b.key, now, b.every, b.burst)
		if err != nil {
			return err
		}
		if !ok {
			mins := int((wait + time.Minute - 1) / time.Minute)
			s.log.Warn("code mail refused: too many for the address or pre-session", "action", "verify.start", "result", "rate_limited")
			return &kluis.Error{Code: kluis.ETOOMANYREQUESTS, RetryAfter: wait, Err: ErrCodeLimit,
				Message: fmt.Sprintf("Too many codes were asked for in a short time, for this address or from this browser. You can ask for a new code in %d minutes.", mins)}
		}
	}
	return nil
}

// ErrCooldown is wrapped by Start's rate_limited error when the
// pre-session's last code was sent less than Cooldown ago; that code still
// works (see PendingAddress for where it went).
var ErrCooldown = errors.New("sender: a code was sent for this pre-session a moment ago")

// PendingAddress returns the address the pre-session's code was sent to,
// or "" if no code is waiting for it.
func (s *Service) PendingAddress(ctx context.Context, preToken string) string {
	if preToken == "" {
		return ""
	}
	v, err := s.db.Verification(ctx, secret.HashToken(preToken))
	if err != nil || !s.now().Before(v.ExpiresAt) {
		return ""
	}
	return v.Email
}

func errNoCode() error {
	return kluis.Errorf(kluis.EUNAUTHORIZED, "There is no code waiting for this browser. It may have been used already, or it was asked for elsewhere. Ask for a new code.")
}

func errTooManyCodes() error {
	return kluis.Errorf(kluis.ELOCKED, "Too many wrong codes. Ask for a new code.")
}

// APIKeyPrefix starts every API key, so a key is recognised (and found by
// secret scanners) at a glance.
const APIKeyPrefix = "kluis_ak_"

// Authenticate returns the sender of a session token or API key. Returns
// EUNAUTHORIZED for anything unknown, expired, idle too long or revoked.
func (s *Service) Authenticate(ctx context.Context, token string) (*Sender, error) {
	if token == "" {
		return nil, kluis.Errorf(kluis.EUNAUTHORIZED, "Verify your e-mail address first.")
	}
	now := s.now()
	if strings.HasPrefix(token, APIKeyPrefix) {
		k, err := s.db.APIKeyByHash(ctx, secret.HashToken(token))
		if errors.Is(err, store.ErrNotFound) || (err == nil && k.RevokedAt != nil) {
			return nil, kluis.Errorf(kluis.EUNAUTHORIZED, "This API key is not valid. Ask your administrator for a new one.")
		}
		if err != nil {
			return nil, err
		}
		if !now.Before(k.ExpiresAt) {
			return nil, kluis.Errorf(kluis.EUNAUTHORIZED, "This API key has expired. Ask your administrator for a new one.")
		}
		if k.LastUsedAt == nil || now.Sub(*k.LastUsedAt) > time.Minute {
			// To the minute: a busy script does not write on every request.
			_ = s.db.TouchAPIKey(ctx, k.ID, now)
		}
		return &Sender{Email: k.Email, Via: "apikey", KeyID: k.ID}, nil
	}
	h := secret.HashToken(token)
	sess, err := s.db.SenderSession(ctx, h)
	if errors.Is(err, store.ErrNotFound) {
		return nil, kluis.Errorf(kluis.EUNAUTHORIZED, "Your verification has ended. Verify your e-mail address again.")
	}
	if err != nil {
		return nil, err
	}
	if !now.Before(sess.ExpiresAt) || now.Sub(sess.LastSeenAt) >= s.cfg.IdleTTL {
		_ = s.db.DeleteSenderSession(ctx, h)
		return nil, kluis.Errorf(kluis.EUNAUTHORIZED, "Your verification has ended. Verify your e-mail address again.")
	}
	var d ssoDetails
	if b, err := s.keys.Open(purposeSession, fmt.Sprintf("%x", h), sess.DetailsSealed); err == nil {
		_ = json.Unmarshal(b, &d)
	}
	if sess.Auth == "sso" && (sess.CheckedAt == nil || now.Sub(*sess.CheckedAt) >= s.cfg.SSOSessionMax) {
		if err := s.recheckSSO(ctx, sess, &d, now); err != nil {
			return nil, err
		}
	}
	if now.Sub(sess.LastSeenAt) > time.Minute {
		_ = s.db.TouchSenderSession(ctx, h, now)
	}
	out := &Sender{Email: sess.Email, Name: d.Name, Phone: d.Phone, Lang: d.Lang, Via: "session", Auth: sess.Auth}
	if sess.Auth == "sso" {
		out.Roles, out.Withheld, out.IDToken = role.ParseSet(sess.Roles), role.ParseSet(d.Withheld), d.IDToken
	}
	return out, nil
}

// Logout ends a session on the server. Unknown tokens are not an error.
func (s *Service) Logout(ctx context.Context, token string) error {
	if token == "" || strings.HasPrefix(token, APIKeyPrefix) {
		return nil
	}
	h := secret.HashToken(token)
	sess, err := s.db.SenderSession(ctx, h)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := s.db.DeleteSenderSession(ctx, h); err != nil {
		return err
	}
	s.audit.Log(ctx, audit.Event{Actor: audit.Sender(sess.Email), Action: audit.SenderLogout})
	return nil
}

// Cleanup removes verifications and sessions past their end, and the
// code-mail buckets (and any other rate-limit rows) that are full again.
func (s *Service) Cleanup(ctx context.Context) error {
	now := s.now()
	if err := s.db.DeleteExpiredSenderData(ctx, now, now.Add(-s.cfg.IdleTTL)); err != nil {
		return err
	}
	_, err := s.db.PruneRateBuckets(ctx, now)
	return err
}

// MaxAPIKeyName bounds the name of an API key, in characters.
const MaxAPIKeyName = 100

// APIKeyRequest is a new API key: the sender address it sends as, what it
// is for, and until when it is valid (zero: Config.APIKeyMaxAge from now).
type APIKeyRequest struct {
	Email   string
	Name    string
	Expires time.Time
}

// CreateAPIKey issues a key for email, valid for Config.APIKeyMaxAge,
// without a name (IssueAPIKey with only the address).
func (s *Service) CreateAPIKey(ctx context.Context, email string) (id, key string, err error) {
	return s.IssueAPIKey(ctx, APIKeyRequest{Email: email})
}

// IssueAPIKey issues a key bound to one sender address, named for what it
// is for, valid until req.Expires (at most Config.APIKeyMaxAge from now).
// The key is returned once; only its hash is stored. The audit entry
// carries the actor, role and reason of ctx.
func (s *Service) IssueAPIKey(ctx context.Context, req APIKeyRequest) (id, key string, err error) {
	email, name, expires := req.Email, req.Name, req.Expires
	addr, err := kluis.ParseAddress(email)
	if err != nil {
		return "", "", err
	}
	name = strings.TrimSpace(name)
	if err := checkLine("name", name, MaxAPIKeyName); err != nil {
		return "", "", err
	}
	now := s.now()
	maxAge := s.APIKeyMaxAge()
	if expires.IsZero() {
		expires = now.Add(maxAge)
	}
	switch {
	case !expires.After(now):
		return "", "", kluis.Errorf(kluis.EINVALID, "The expiry date of the key must be in the future.")
	case expires.After(now.Add(maxAge)):
		return "", "", kluis.Errorf(kluis.EINVALID, "A key can be valid for at most %d days.", int(maxAge.Hours()/24))
	}
	id = secret.NewID()[:10]
	key = APIKeyPrefix + secret.NewToken()
	tx, err := s.db.BeginTx(ctx)
	if err != nil {
		return "", "", err
	}
	defer tx.Rollback()
	if err := tx.InsertAPIKey(ctx, &store.APIKey{ID: id, KeyHash: secret.HashToken(key), Email: addr, Name: name, CreatedAt: now, ExpiresAt: expires}); err != nil {
		return "", "", err
	}
	if err := s.audit.Record(ctx, tx.Q, audit.Event{Actor: actorOr(ctx, audit.Admin), Action: audit.APIKeyCreate, Object: id,
		Detail: "sender=" + addr + " expires_at=" + expires.UTC().Format(time.RFC3339)}); err != nil {
		return "", "", err
	}
	if err := tx.Commit(); err != nil {
		return "", "", err
	}
	s.log.Info("api key created", "action", "apikey.create", "key_id", id)
	return id, key, nil
}

// APIKeyMaxAge is the longest an API key may be valid.
func (s *Service) APIKeyMaxAge() time.Duration {
	if s.cfg.APIKeyMaxAge <= 0 {
		return DefaultAPIKeyMaxAge
	}
	return s.cfg.APIKeyMaxAge
}

// RevokeAPIKey revokes a key by its id.
func (s *Service) RevokeAPIKey(ctx context.Context, id string) error {
	return s.endAPIKey(ctx, id, audit.APIKeyRevoke, func(tx *store.Tx, now time.Time) error { return tx.RevokeAPIKey(ctx, id, now) })
}

// ExpireAPIKey ends a key now, as if its expiry had come.
func (s *Service) ExpireAPIKey(ctx context.Context, id string) error {
	return s.endAPIKey(ctx, id, audit.APIKeyExpire, func(tx *store.Tx, now time.Time) error { return tx.ExpireAPIKey(ctx, id, now) })
}

// endAPIKey makes the change end and its audit entry action in one
// transaction.
func (s *Service) endAPIKey(ctx context.Context, id, action string, end func(*store.Tx, time.Time) error) error {
	tx, err := s.db.BeginTx(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	err = end(tx, s.now())
	if errors.Is(err, store.ErrNotFound) {
		return kluis.Errorf(kluis.ENOTFOUND, "There is no active API key with id %q.", id)
	}
	if err != nil {
		return err
	}
	if err := s.audit.Record(ctx, tx.Q, audit.Event{Actor: actorOr(ctx, audit.Admin), Action: action, Object: id}); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	s.log.Info("api key ended", "action", action, "key_id", id)
	return nil
}

// APIKeys lists the issued keys (without their secrets).
func (s *Service) APIKeys(ctx context.Context) ([]*store.APIKey, error) { return s.db.APIKeys(ctx) }

// APIKey returns one key (without its secret). Returns ENOTFOUND if
// there is none.
func (s *Service) APIKey(ctx context.Context, id string) (*store.APIKey, error) {
	k, err := s.db.APIKey(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, kluis.Errorf(kluis.ENOTFOUND, "There is no API key with id %q.", id)
	}
	return k, err
}

func newCode() (string, error) {
	max := big.NewInt(1)
	for range CodeDigits {
		max.Mul(max, big.NewInt(10))
	}
	n, err := rand.Int(rand.Reader, max)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%0*d", CodeDigits, n), nil
}

func codeHash(preToken, code string) []byte {
	h := sha256.New()
	h.Write([]byte(preToken))
	h.Write([]byte{0})
	h.Write([]byte(code))
	return h.Sum(nil)
}

func checkLine(what, v string, max int) error {
	if len(v) > max {
		return kluis.Errorf(kluis.EINVALID, "The %s is too long: at most %d characters.", what, max)
	}
	if strings.ContainsAny(v, "\r\n\x00") {
		return kluis.Errorf(kluis.EINVALID, "The %s must be one line.", what)
	}
	return nil
}

// actorOr is the request's actor, else fallback.
func actorOr(ctx context.Context, fallback string) string {
	if a := audit.Actor(ctx); a != "" {
		return a
	}
	return fallback
}

// KnownLang returns the language of the pages of the sender's session last
// used (the language they chose, or their browser asked for, when they
// verified), for mails to a sender who is not on a page now (the mail
// gateway's). Returns "" when the sender has no session.
func (s *Service) KnownLang(ctx context.Context, email string) (string, error) {
	sess, err := s.db.LatestSenderSession(ctx, email, s.now())
	if errors.Is(err, store.ErrNotFound) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	var d details
	b, err := s.keys.Open(purposeSession, fmt.Sprintf("%x", sess.IDHash), sess.DetailsSealed)
	if err != nil {
		return "", err
	}
	if err := json.Unmarshal(b, &d); err != nil {
		return "", err
	}
	return d.Lang, nil
}
