package sender

// Personal inbox keys (issue 17). A signed-in sender sets an inbox
// passphrase once; from it Kluis wraps a fresh age X25519 identity with
// age's scrypt recipient at the work factor of transfer passwords, and
// seals that wrap under the master key. The public recipient is stored in
// plain, so anything sent to the inbox can be encrypted to it without a
// secret; only the passphrase opens it again, so a copy of the data folder
// and the master key cannot.
//
// The sender unlocks the inbox once per session. The unlocked identity is
// kept on the session's row, sealed under a key derived (HKDF-SHA256) from
// the session token. The database holds only SHA-256 of that token, so the
// sealed copy is useless without the client's cookie; and because it lives
// on the session row, logging out or the session's end (which delete the
// row) locks the inbox again.

import (
	"context"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"filippo.io/age"

	"github.com/kluis-nl/kluis"
	"github.com/kluis-nl/kluis/internal/audit"
	"github.com/kluis-nl/kluis/internal/mail"
	"github.com/kluis-nl/kluis/internal/secret"
	"github.com/kluis-nl/kluis/internal/store"
)

const (
	purposeInbox        = "inbox.identity"
	purposeInboxSession = "inbox.session"
	inboxSessionInfo    = "kluis inbox session key v1"
)

// InboxUnlocks bounds unlock tries of one address's inbox passphrase:
// InboxUnlockBurst at once, then one every InboxUnlockEvery. Every try
// counts (right or wrong), in the shared rate_limits table, so a stolen
// session cannot guess the passphrase faster than this on any instance.
const (
	InboxUnlockBurst = 10
	InboxUnlockEvery = 6 * time.Minute
)

// InboxState is what a sender's session knows about their inbox.
type InboxState struct {
	// Exists is true once the sender has set an inbox passphrase.
	Exists bool
	// Recipient is the inbox's public age recipient ("age1…"), or "".
	Recipient string
	// Unlocked is true when this session holds the unlocked identity.
	Unlocked bool
}

// inboxSession authenticates a browser or CLI session token for the
// inbox: an API key has no session to keep an unlocked identity on.
func (s *Service) inboxSession(ctx context.Context, token string) (*Sender, []byte, error) {
	if strings.HasPrefix(token, APIKeyPrefix) {
		return nil, nil, kluis.Errorf(kluis.EFORBIDDEN, "An API key cannot open an inbox. Sign in with your e-mail address.")
	}
	snd, err := s.Authenticate(ctx, token)
	if err != nil {
		return nil, nil, err
	}
	return snd, secret.HashToken(token), nil
}

// InboxState returns the state of the inbox of the session's sender.
func (s *Service) InboxState(ctx context.Context, token string) (*InboxState, error) {
	snd, idHash, err := s.inboxSession(ctx, token)
	if err != nil {
		return nil, err
	}
	k, err := s.db.InboxKey(ctx, snd.Email)
	if errors.Is(err, store.ErrNotFound) {
		return &InboxState{}, nil
	}
	if err != nil {
		return nil, err
	}
	sealed, err := s.db.SessionInbox(ctx, idHash)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	return &InboxState{Exists: true, Recipient: k.Recipient, Unlocked: sealed != nil}, nil
}

// CreateInbox sets the inbox passphrase of the session's sender and makes
// their inbox key; the session holds it unlocked at once. The passphrase
// follows the rules of transfer passwords (EINVALID says what to change).
// Returns ECONFLICT if the sender has an inbox key already.
func (s *Service) CreateInbox(ctx context.Context, token, passphrase string) error {
	snd, idHash, err := s.inboxSession(ctx, token)
	if err != nil {
		return err
	}
	if err := secret.CheckPassword(passphrase); err != nil {
		return err
	}
	if _, err := s.db.InboxKey(ctx, snd.Email); err == nil {
		return errInboxExists()
	} else if !errors.Is(err, store.ErrNotFound) {
		return err
	}
	id, err := secret.GenerateIdentity()
	if err != nil {
		return err
	}
	if err := s.unlocks.Acquire(ctx); err != nil {
		return err
	}
	wrapped, err := secret.WrapIdentity(id, passphrase, secret.PasswordLogN)
	s.unlocks.Release()
	if err != nil {
		return err
	}
	recipient := id.Recipient().String()
	k := &store.InboxKey{
		Email:          snd.Email,
		Recipient:      recipient,
		IdentitySealed: s.keys.Seal(purposeInbox, snd.Email, append([]byte(recipient+"\n"), wrapped...)),
		CreatedAt:      s.now(),
	}
	tx, err := s.db.BeginTx(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if err := tx.InsertInboxKey(ctx, k); errors.Is(err, store.ErrConflict) {
		return errInboxExists()
	} else if err != nil {
		return err
	}
	if err := tx.SetSessionInbox(ctx, idHash, sealInboxSession(token, idHash, id)); err != nil {
		return err
	}
	if err := s.audit.Record(ctx, tx.Q, audit.Event{Actor: snd.AuditActor(), Action: audit.InboxCreate}); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	s.log.Info("inbox key created", "action", audit.InboxCreate)
	// A team of this sender that has no key yet gets its first one now
	// (team.go). The inbox is made either way.
	if err := s.startTeamKeys(ctx, snd.Email); err != nil {
		s.log.Error("team key after new inbox key", "err", err)
	}
	return nil
}

// UnlockInbox unwraps the inbox identity of the session's sender with the
// passphrase and keeps it for this session. A wrong passphrase returns
// EWRONGSECRET; ENOTFOUND if the sender has no inbox key; ETOOMANYREQUESTS
// once the address has used up its unlock tries (InboxUnlockBurst, then one
// every InboxUnlockEvery).
func (s *Service) UnlockInbox(ctx context.Context, token, passphrase string) error {
	snd, idHash, err := s.inboxSession(ctx, token)
	if err != nil {
		return err
	}
	id, err := s.unwrapInbox(ctx, snd, passphrase)
	if err != nil {
		return err
	}
	if err := s.db.SetSessionInbox(ctx, idHash, sealInboxSession(token, idHash, id)); errors.Is(err, store.ErrNotFound) {
		return errSessionEnded()
	} else if err != nil {
		return err
	}
	s.audit.Log(ctx, audit.Event{Actor: snd.AuditActor(), Action: audit.InboxUnlock})
	s.log.Info("inbox unlocked", "action", audit.InboxUnlock)
	// Colleagues who wait for a team key this sender holds get it now
	// (team.go).
	s.shareAllTeamKeys(ctx, snd, id)
	return nil
}

// ChangeInboxPassphrase puts a new passphrase on the sender's inbox key:
// the old one must open it (the try counts against the same limit as an
// unlock, with the same errors), the new one follows the rules of
// transfer passwords (EINVALID) and differs from the old. The same
// identity is wrapped again, so everything encrypted to the inbox stays
// readable and nothing else changes; sessions that unlocked it keep it.
// The sender is mailed that it was changed. Returns ECONFLICT if another
// change came first; EFORBIDDEN for an API key (as CreateInbox).
func (s *Service) ChangeInboxPassphrase(ctx context.Context, token, oldPass, newPass string) error {
	snd, _, err := s.inboxSession(ctx, token)
	if err != nil {
		return err
	}
	if err := secret.CheckPassword(newPass); err != nil {
		return err
	}
	if newPass == oldPass {
		return kluis.Errorf(kluis.EINVALID, "The new inbox passphrase is the same as the old one. Choose another.")
	}
	k, err := s.db.InboxKey(ctx, snd.Email)
	if errors.Is(err, store.ErrNotFound) {
		return kluis.Errorf(kluis.ENOTFOUND, "You have no inbox yet. Set an inbox passphrase first.")
	} else if err != nil {
		return err
	}
	id, err := s.unwrapInbox(ctx, snd, oldPass)
	if err != nil {
		return err
	}
	if err := s.unlocks.Acquire(ctx); err != nil {
		return err
	}
	wrapped, err := secret.WrapIdentity(id, newPass, secret.PasswordLogN)
	s.unlocks.Release()
	if err != nil {
		return err
	}
	sealed := s.keys.Seal(purposeInbox, k.Email, append([]byte(k.Recipient+"\n"), wrapped...))
	now := s.now()
	m, err := mail.Render(mail.KindInboxPassphrase, mail.Lang(snd.Lang), s.org, k.Email, mail.InboxPassphrase{At: now})
	if err != nil {
		return err
	}
	tx, err := s.db.BeginTx(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if err := tx.ReplaceInboxWrap(ctx, k.Email, k.IdentitySealed, sealed); errors.Is(err, store.ErrConflict) {
		return kluis.Errorf(kluis.ECONFLICT, "Your inbox passphrase was changed at the same moment. Use the new one.")
	} else if err != nil {
		return err
	}
	if _, err := s.mailer.Enqueue(ctx, tx, m); err != nil {
		return err
	}
	if err := s.audit.Record(ctx, tx.Q, audit.Event{Actor: snd.AuditActor(), Action: audit.InboxPassphrase}); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	s.mailer.Wake()
	s.log.Info("inbox passphrase changed", "action", audit.InboxPassphrase)
	return nil
}

// OpenInbox unwraps the inbox identity of an authenticated sender (a
// session or an API key) with the passphrase for one use, and keeps it
// nowhere: the API opens a request's result with it. The tries count as
// UnlockInbox's do, with the same errors.
func (s *Service) OpenInbox(ctx context.Context, snd *Sender, passphrase string) (*age.X25519Identity, error) {
	id, err := s.unwrapInbox(ctx, snd, passphrase)
	if err != nil {
		return nil, err
	}
	s.audit.Log(ctx, audit.Event{Actor: snd.AuditActor(), Action: audit.InboxUnlock, Detail: "once"})
	s.shareAllTeamKeys(ctx, snd, id)
	return id, nil
}

// unwrapInbox checks one unlock try of the sender's inbox and unwraps its
// identity with the passphrase.
func (s *Service) unwrapInbox(ctx context.Context, snd *Sender, passphrase string) (*age.X25519Identity, error) {
	k, wrapped, err := s.inboxKey(ctx, snd.Email)
	if err != nil {
		return nil, err
	}
	if err := s.takeInboxTry(ctx, k.Email); err != nil {
		return nil, err
	}
	if err := s.unlocks.Acquire(ctx); err != nil {
		return nil, err
	}
	id, err := secret.UnwrapIdentity(wrapped, passphrase, secret.PasswordLogN)
	s.unlocks.Release()
	if errors.Is(err, secret.ErrWrongSecret) {
		s.log.Warn("wrong inbox passphrase", "action", audit.InboxUnlock, "result", audit.WrongPassword)
		s.audit.Log(ctx, audit.Event{Actor: snd.AuditActor(), Action: audit.InboxUnlock, Result: audit.WrongPassword})
		return nil, kluis.Errorf(kluis.EWRONGSECRET, "The inbox passphrase is not correct.")
	}
	if err != nil {
		return nil, &kluis.Error{Code: kluis.EINTEGRITY, Message: "Your inbox key is damaged. Contact your administrator.", Err: err}
	}
	if id.Recipient().String() != k.Recipient {
		return nil, kluis.Errorf(kluis.EINTEGRITY, "Your inbox key is damaged. Contact your administrator.")
	}
	return id, nil
}

// LockInbox forgets the session's unlocked inbox identity.
func (s *Service) LockInbox(ctx context.Context, token string) error {
	_, idHash, err := s.inboxSession(ctx, token)
	if err != nil {
		return err
	}
	if err := s.db.SetSessionInbox(ctx, idHash, nil); err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	return nil
}

// InboxIdentity returns the inbox identity the session unlocked. Returns
// ELOCKED when the session has not unlocked the inbox (or the sender has
// none), EUNAUTHORIZED when the session has ended.
func (s *Service) InboxIdentity(ctx context.Context, token string) (*age.X25519Identity, error) {
	_, idHash, err := s.inboxSession(ctx, token)
	if err != nil {
		return nil, err
	}
	sealed, err := s.db.SessionInbox(ctx, idHash)
	if errors.Is(err, store.ErrNotFound) {
		return nil, errSessionEnded()
	}
	if err != nil {
		return nil, err
	}
	if sealed == nil {
		return nil, kluis.Errorf(kluis.ELOCKED, "Your inbox is locked. Unlock it with your inbox passphrase first.")
	}
	plain, err := secret.OpenWithKey(inboxSessionKey(token), inboxSessionAD(idHash), sealed)
	if err != nil {
		return nil, kluis.Errorf(kluis.ELOCKED, "Your inbox is locked. Unlock it with your inbox passphrase first.")
	}
	id, err := age.ParseX25519Identity(string(plain))
	if err != nil {
		return nil, fmt.Errorf("sender: session inbox identity: %w", secret.ErrCorrupt)
	}
	return id, nil
}

// InboxRecipient returns the public recipient of an address's inbox, for
// encrypting to it without any secret. The plain column is checked against
// the copy sealed with the wrap, so a database writer without the master
// key cannot swap in a recipient of their own. Returns ENOTFOUND if the
// address has no inbox key.
func (s *Service) InboxRecipient(ctx context.Context, email string) (*age.X25519Recipient, error) {
	k, _, err := s.inboxKey(ctx, email)
	if err != nil {
		return nil, err
	}
	return parseInboxRecipient(k)
}

// inboxRecipient is InboxRecipient read with q, the address compared
// without regard to case (for team members).
func (s *Service) inboxRecipient(ctx context.Context, q store.Q, email string) (*age.X25519Recipient, error) {
	k, err := q.InboxKeyFold(ctx, email)
	if errors.Is(err, store.ErrNotFound) {
		return nil, kluis.Errorf(kluis.ENOTFOUND, "%s has no inbox yet.", email)
	}
	if err != nil {
		return nil, err
	}
	if _, err := s.openInboxKey(k); err != nil {
		return nil, err
	}
	return parseInboxRecipient(k)
}

func parseInboxRecipient(k *store.InboxKey) (*age.X25519Recipient, error) {
	r, err := age.ParseX25519Recipient(k.Recipient)
	if err != nil {
		return nil, &kluis.Error{Code: kluis.EINTEGRITY, Message: "This inbox key is damaged.", Err: err}
	}
	return r, nil
}

// inboxKey loads an address's inbox key and opens its master-key seal,
// returning the scrypt wrap of the identity.
func (s *Service) inboxKey(ctx context.Context, email string) (*store.InboxKey, []byte, error) {
	k, err := s.db.InboxKey(ctx, email)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil, kluis.Errorf(kluis.ENOTFOUND, "You have no inbox yet. Set an inbox passphrase first.")
	}
	if err != nil {
		return nil, nil, err
	}
	wrapped, err := s.openInboxKey(k)
	if err != nil {
		return nil, nil, err
	}
	return k, wrapped, nil
}

// openInboxKey opens the master-key seal of an inbox key, checks the
// plain recipient against the sealed copy, and returns the scrypt wrap.
func (s *Service) openInboxKey(k *store.InboxKey) ([]byte, error) {
	plain, err := s.keys.Open(purposeInbox, k.Email, k.IdentitySealed)
	if err != nil {
		return nil, &kluis.Error{Code: kluis.EINTEGRITY, Message: "This inbox key is damaged.", Err: err}
	}
	recipient, wrapped, ok := strings.Cut(string(plain), "\n")
	if !ok || recipient != k.Recipient {
		return nil, kluis.Errorf(kluis.EINTEGRITY, "This inbox key is damaged.")
	}
	return []byte(wrapped), nil
}

// takeInboxTry counts one unlock try of the address's inbox in the shared
// rate_limits table (named by a keyed hash, so the table holds no address).
func (s *Service) takeInboxTry(ctx context.Context, email string) error {
	key := "inbox:" + hex.EncodeToString(s.keys.MAC("sender.inbox_unlock", []byte(strings.ToLower(email)))[:16])
	ok, wait, err := s.db.TakeRateToken(ctx, key, s.now(), InboxUnlockEvery, InboxUnlockBurst)
	if err != nil {
		return err
	}
	if !ok {
		mins := int((wait + time.Minute - 1) / time.Minute)
		s.log.Warn("inbox unlock refused: too many tries", "action", audit.InboxUnlock, "result", "rate_limited")
		s.audit.Log(ctx, audit.Event{Actor: audit.Sender(email), Action: audit.InboxUnlock, Result: audit.Locked})
		return &kluis.Error{Code: kluis.ETOOMANYREQUESTS, RetryAfter: wait,
			Message: fmt.Sprintf("Too many tries to unlock this inbox. You can try again in %d minutes.", mins)}
	}
	return nil
}

// inboxSessionKey derives the key that seals a session's unlocked inbox
// identity from the session token. The database keeps SHA-256 of the
// token, from which this key cannot be computed.
func inboxSessionKey(token string) []byte {
	key, err := hkdf.Key(sha256.New, []byte(token), nil, inboxSessionInfo, secret.KeySize)
	if err != nil {
		// Only an impossible length makes hkdf.Key fail.
		panic("sender: inbox session key: " + err.Error())
	}
	return key
}

func inboxSessionAD(idHash []byte) []byte {
	return append([]byte(purposeInboxSession+"\x00"), idHash...)
}

func sealInboxSession(token string, idHash []byte, id *age.X25519Identity) []byte {
	return secret.SealWithKey(inboxSessionKey(token), inboxSessionAD(idHash), []byte(id.String()))
}

func errInboxExists() error {
	return kluis.Errorf(kluis.ECONFLICT, "You already have an inbox passphrase. Unlock your inbox with it.")
}

func errSessionEnded() error {
	return kluis.Errorf(kluis.EUNAUTHORIZED, "Your verification has ended. Verify your e-mail address again.")
}
