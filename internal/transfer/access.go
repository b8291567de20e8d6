package transfer

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	"filippo.io/age"

	"github.com/kluis-nl/kluis"
	"github.com/kluis-nl/kluis/internal/audit"
	"github.com/kluis-nl/kluis/internal/secret"
	"github.com/kluis-nl/kluis/internal/segment"
	"github.com/kluis-nl/kluis/internal/store"
)

// live refuses a transfer that is over: revoked, expired (by the clock,
// before the purge has run) or purged. The error carries the date.
func (s *Service) live(t *store.TransferRow) error {
	if t.RevokedAt != nil {
		return &kluis.Error{Code: kluis.EREVOKED, Message: "The sender has revoked this transfer. Its files have been deleted.", At: t.RevokedAt}
	}
	if !s.now().Before(t.ExpiresAt) || t.PurgedAt != nil {
		at := t.ExpiresAt
		return &kluis.Error{Code: kluis.EEXPIRED, Message: "This transfer has expired. Its files have been deleted.", At: &at}
	}
	return nil
}

// ErrAccessRevoked is wrapped in the EREVOKED error of a recipient whose
// own access was revoked while the transfer stays live for the others,
// so pages do not tell them the files were deleted.
var ErrAccessRevoked = errors.New("transfer: access revoked for this recipient")

// openable adds the recipient's own state to live.
func (s *Service) openable(t *store.TransferRow, r *store.RecipientRow) error {
	if err := s.live(t); err != nil {
		return err
	}
	if r.RevokedAt != nil {
		return &kluis.Error{Code: kluis.EREVOKED, Message: "The sender has revoked your access to this transfer.", At: r.RevokedAt, Err: ErrAccessRevoked}
	}
	if t.State != string(kluis.StateReady) {
		return notFound()
	}
	return nil
}

func notFound() error {
	return kluis.Errorf(kluis.ENOTFOUND, "There is no transfer at this link. Check that you copied the whole link.")
}

// purposeCode names the keyed hash of a receive code (store code_hash).
const purposeCode = "recipient.code"

// codeHash is what the database keeps of a receive code: an HMAC under a
// key derived from the master key, because 80 bits are too few to leave
// to a plain hash in a stolen database.
func (s *Service) codeHash(code string) []byte {
	return s.keys.MAC(purposeCode, []byte(code))
}

// recipientByAccess finds a recipient by its access id (the link) or by
// its receive code (the short code in the mail, typed at /receive): both
// name the same recipient and lead to the same password form.
func (s *Service) recipientByAccess(ctx context.Context, q store.Q, accessID string) (*store.RecipientRow, *store.TransferRow, error) {
	var r *store.RecipientRow
	var err error
	if id, ok := secret.NormalizeAccessID(accessID); ok {
		r, err = q.RecipientByAccess(ctx, secret.HashToken(id))
	} else if code, ok := secret.NormalizeReceiveCode(accessID); ok {
		r, err = q.RecipientByCode(ctx, s.codeHash(code))
	} else {
		return nil, nil, notFound()
	}
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil, notFound()
	}
	if err != nil {
		return nil, nil, err
	}
	t, err := q.Transfer(ctx, r.TransferID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil, notFound()
	}
	if err != nil {
		return nil, nil, err
	}
	return r, t, nil
}

// LinkLang returns the recipients' language of the transfer an access id
// belongs to, in any state while its record is kept (so that the expired
// and revoked pages speak it too), or "" for an id never issued, past
// retention, or when the database cannot say. It tells nothing to whoever
// does not hold the 128-bit access id.
func (s *Service) LinkLang(ctx context.Context, accessID string) string {
	_, t, err := s.recipientByAccess(ctx, s.db.Q, accessID)
	if err != nil {
		return ""
	}
	return t.Lang
}

// MessageOnly reports whether the transfer an access id (or receive code)
// belongs to holds a message and no files, so that the recipient's pages
// before the unlock and after the end (password form, expired, revoked)
// speak of a message rather than of files. It reads the transfer's label,
// sealed when the transfer was finished and kept until the minimal
// record's retention ends, so it still answers after the purge; false for
// an unknown id or when the label cannot say. Like LinkLang it tells
// nothing to whoever does not hold the access id, and the mail already
// told the recipient what was sent.
func (s *Service) MessageOnly(ctx context.Context, accessID string) bool {
	_, t, err := s.recipientByAccess(ctx, s.db.Q, accessID)
	if err != nil || !parseOptions(t.Options).HasMessage {
		return false
	}
	labels, err := s.db.TransferLabels(ctx, []string{t.ID})
	b, ok := labels[t.ID]
	if err != nil || !ok {
		return false
	}
	var l label
	if err := s.openJSON(purposeLabel, t.ID, b, &l); err != nil {
		return false
	}
	return l.Files == 0
}

// Link is what a recipient's link shows before the unlock.
type Link struct {
	TransferID string
	// RecipientID is whose access id this is: a download session must be
	// this recipient's own, so opening, downloads and revocation stay per
	// recipient.
	RecipientID      int64
	PasswordRequired bool
	ExpiresAt        time.Time
	// While the access is locked: until when, or Held (until the sender
	// unblocks it), and who the sender is, so the locked page can say
	// whom to contact (the recipient knows both from the mail).
	LockedUntil             *time.Time
	Held                    bool
	SenderName, SenderEmail string
	// Reply says the transfer is a recipient's answer: its only
	// recipient is the sender of the original, who opens it with the
	// password of their own transfer, and the pages speak to them so.
	Reply bool
}

// Lookup checks a recipient's access id. Returns ENOTFOUND, EEXPIRED or
// EREVOKED (with the date) or ELOCKED (with the Link filled in).
func (s *Service) Lookup(ctx context.Context, accessID string) (*Link, error) {
	r, t, err := s.recipientByAccess(ctx, s.db.Q, accessID)
	if err != nil {
		return nil, err
	}
	return s.lookup(t, r)
}

// lookup is Lookup for a recipient found by its link or by its sender's
// own pages (ReplyLink).
func (s *Service) lookup(t *store.TransferRow, r *store.RecipientRow) (*Link, error) {
	if err := s.openable(t, r); err != nil {
		return nil, err
	}
	l := &Link{TransferID: t.ID, RecipientID: r.ID, PasswordRequired: t.PasswordMode != string(kluis.PasswordNone), ExpiresAt: t.ExpiresAt,
		Reply: t.ReplyTo != ""}
	if locked(r, s.now()) {
		l.LockedUntil, l.Held = r.LockedUntil, r.HeldAt != nil
		var d details
		_ = s.openJSON(purposeDetails, t.ID, t.DetailsSealed, &d)
		l.SenderName, l.SenderEmail = d.SenderName, t.SenderEmail
		return l, s.lockedError(r)
	}
	return l, nil
}

// unwrap opens a transfer's identity with its secret. Wrong secret gives
// EWRONGSECRET; nothing else about the transfer is revealed.
func (s *Service) unwrap(t *store.TransferRow, transferSecret string) (*age.X25519Identity, error) {
	if t.IdentitySealed == nil {
		return nil, s.live(t)
	}
	if t.PasswordMode == string(kluis.PasswordInbox) {
		// No password opens it: only the inbox key it was sent to.
		return nil, kluis.Errorf(kluis.EFORBIDDEN, "This was sent to an inbox. Its owner opens it from their file requests.")
	}
	wrapped, err := s.keys.Open(purposeIdentity, t.ID, t.IdentitySealed)
	if err != nil {
		return nil, &kluis.Error{Code: kluis.EINTEGRITY, Message: "Stored data failed verification.", Err: err}
	}
	maxLogN := s.cfg.PasswordLogN
	if t.PasswordMode == string(kluis.PasswordNone) {
		maxLogN = secret.LinkSecretLogN
	}
	id, err := secret.UnwrapIdentity(wrapped, transferSecret, maxLogN)
	if errors.Is(err, secret.ErrWrongSecret) {
		return nil, kluis.Errorf(kluis.EWRONGSECRET, "The password is not correct.")
	}
	if err != nil {
		return nil, &kluis.Error{Code: kluis.EINTEGRITY, Message: "Stored data failed verification.", Err: err}
	}
	return id, nil
}

// Session is an unlocked recipient access.
type Session struct {
	Token     string // for the client only; never stored
	ExpiresAt time.Time

	transfer  *store.TransferRow
	recipient *store.RecipientRow
	identity  *age.X25519Identity
	keys      *secret.Keyring // for ForAccess with a receive code
	// secret is the password the recipient unlocked with (password
	// transfers only; "" for a no-password transfer or an older session).
	// A reply is protected by it. It lives only in memory and, sealed
	// under the key in the client's token, in the session row.
	secret string
	// pending: made by the right password of a recipient with a second
	// factor; it opens nothing until VerifyCode.
	pending bool
}

// Pending reports whether the session still waits for the second factor
// (see OpenPending, SendCode, VerifyCode).
func (a *Session) Pending() bool { return a.pending }

// TransferID returns the id of the unlocked transfer.
func (a *Session) TransferID() string { return a.transfer.ID }

// RecipientID returns the id of the recipient whose access this is.
func (a *Session) RecipientID() int64 { return a.recipient.ID }

// ForAccess reports whether accessID is the link or the receive code of
// this session's own recipient (compared by hash, in constant time).
func (a *Session) ForAccess(accessID string) bool {
	if id, ok := secret.NormalizeAccessID(accessID); ok {
		return a.recipient.AccessHash != nil && secret.Equal(secret.HashToken(id), a.recipient.AccessHash)
	}
	code, ok := secret.NormalizeReceiveCode(accessID)
	return ok && a.keys != nil && a.recipient.CodeHash != nil && secret.Equal(a.keys.MAC(purposeCode, []byte(code)), a.recipient.CodeHash)
}

// normalizeSecret is the form of what a recipient typed that the identity
// was wrapped with: a generated password may come back read out over the
// phone, in capitals, with spaces for dashes or none at all.
func normalizeSecret(t *store.TransferRow, typed string) string {
	if t.PasswordMode != string(kluis.PasswordGenerate) {
		return typed
	}
	if parseOptions(t.Options).WordPassword {
		return secret.NormalizeWordPassword(typed)
	}
	if norm, ok := secret.NormalizeGeneratedPassword(typed); ok {
		return norm
	}
	return typed
}

// Unlock checks the transfer secret for a recipient's access id and opens a
// download session. The try counts in the recipient's lock-out (see
// lockout.go): reserved before the check, and the whole count cleared when
// the secret is right.
func (s *Service) Unlock(ctx context.Context, accessID, transferSecret string) (*Session, error) {
	r, t, err := s.recipientByAccess(ctx, s.db.Q, accessID)
	if err != nil {
		return nil, err
	}
	return s.unlock(ctx, t, r, transferSecret)
}

// unlock is Unlock for a recipient found by its link or by its sender's
// own pages (UnlockReply): the same lock-out counts every try.
func (s *Service) unlock(ctx context.Context, t *store.TransferRow, r *store.RecipientRow, transferSecret string) (*Session, error) {
	if err := s.openable(t, r); err != nil {
		return nil, err
	}
	now := s.now()
	transferSecret = normalizeSecret(t, transferSecret)
	if len(transferSecret) > 4*secret.MaxPasswordLength {
		transferSecret = transferSecret[:4*secret.MaxPasswordLength] // wrong anyway; bounds the KDF input
	}
	// Each unlock costs tens of MiB for scrypt; wait a little for a slot,
	// then tell the client to come back rather than queueing without end.
	waitCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	err := s.unlocks.Acquire(waitCtx)
	cancel()
	if err != nil {
		return nil, kluis.Errorf(kluis.EUNAVAILABLE, "The server is busy. Please try again in a moment.")
	}
	// Reserve the attempt before checking, in one statement, so parallel
	// guesses cannot get more than MaxFailures checks past the lock.
	a, err := s.reserve(ctx, t, r, AttemptPassword)
	if err != nil {
		s.unlocks.Release()
		return nil, err
	}
	id, err := s.unwrap(t, transferSecret)
	s.unlocks.Release()
	if kluis.ErrorCode(err) == kluis.EWRONGSECRET {
		return nil, s.failure(ctx, a, err)
	}
	if err != nil {
		return nil, err
	}
	if m := kluis.AuthMethod(r.AuthMethod); m == kluis.AuthPasswordSMS || m == kluis.AuthPasswordLogin {
		// The password is right, but opens nothing yet: this try no
		// longer counts, the rest of the count stays until the code is
		// right too, so re-entering the password gives no fresh code
		// tries.
		if err := a.Succeed(ctx); err != nil {
			return nil, err
		}
		sess, err := s.newSession(ctx, t, r, id, transferSecret, true)
		if err != nil {
			return nil, err
		}
		s.audit.Log(ctx, audit.Event{Actor: audit.Recipient(r.ID), Action: audit.RecipientUnlock, Object: t.ID, Result: audit.Pending,
			Detail: "method=" + r.AuthMethod + " step=password"})
		s.log.Info("transfer password right, second factor due", "transfer", t.ID, "recipient", r.ID, "method", r.AuthMethod)
		return sess, nil
	}
	if err := s.db.MarkOpened(ctx, r.ID, now); err != nil {
		return nil, err
	}
	sess, err := s.newSession(ctx, t, r, id, transferSecret, false)
	if err != nil {
		return nil, err
	}
	s.audit.Log(ctx, audit.Event{Actor: audit.Recipient(r.ID), Action: audit.RecipientUnlock, Object: t.ID, Detail: "method=" + string(kluis.AuthPassword)})
	s.log.Info("transfer unlocked", "transfer", t.ID, "recipient", r.ID)
	s.met().Unlock(UnlockOK)
	return sess, nil
}

// sessionToken = base64url(16-byte id || 32-byte key). The database keeps
// SHA-256(id) and the identity sealed under key, so a copy of the database
// cannot use a session. For a password transfer the password is sealed
// with it ("identity\npassword"), so the recipient can reply under the
// same password; a no-password transfer's link secret is not kept.
//
// A pending session (the password of a recipient with a second factor)
// lasts pendingTTL and opens nothing until VerifyCode.
func (s *Service) newSession(ctx context.Context, t *store.TransferRow, r *store.RecipientRow, id *age.X25519Identity, transferSecret string, pending bool) (*Session, error) {
	raw := make([]byte, 48)
	if _, err := randRead(raw); err != nil {
		return nil, err
	}
	sid, key := raw[:16], raw[16:]
	idHash := secret.HashToken(string(sid))
	expires := s.now().Add(s.cfg.SessionTTL)
	if pending {
		expires = s.now().Add(pendingTTL)
	}
	if expires.After(t.ExpiresAt) {
		expires = t.ExpiresAt
	}
	row := &store.SessionRow{
		IDHash:      idHash,
		RecipientID: r.ID,
		ExpiresAt:   expires,
		Pending:     pending,
	}
	plain := id.String()
	if t.PasswordMode == string(kluis.PasswordNone) || t.PasswordMode == string(kluis.PasswordInbox) {
		transferSecret = ""
	} else {
		plain += "\n" + transferSecret
	}
	row.IdentitySealed = secret.SealWithKey(key, append([]byte(purposeSession), idHash...), []byte(plain))
	if err := s.db.InsertSession(ctx, row); err != nil {
		return nil, err
	}
	return &Session{Token: base64.RawURLEncoding.EncodeToString(raw), ExpiresAt: expires, transfer: t, recipient: r, identity: id, keys: s.keys, secret: transferSecret,
		pending: pending}, nil
}

// OpenSession checks a download session token. Every call checks the
// transfer and the recipient again, so expiry and revocation apply at once.
//
// A pending session (password right, code still due) is refused with
// EUNAUTHORIZED: it opens nothing.
func (s *Service) OpenSession(ctx context.Context, token string) (*Session, error) {
	row, idHash, key, err := s.sessionRow(ctx, token)
	if err != nil {
		return nil, err
	}
	if row.Pending {
		return nil, kluis.Errorf(kluis.EUNAUTHORIZED, "Enter the code we sent you by SMS first.")
	}
	r, err := s.db.Recipient(ctx, row.RecipientID)
	if err != nil {
		return nil, kluis.Errorf(kluis.EUNAUTHORIZED, "Your download session has ended. Open the link from your mail again.")
	}
	t, err := s.db.Transfer(ctx, r.TransferID)
	if err != nil {
		return nil, err
	}
	if err := s.openable(t, r); err != nil {
		return nil, err
	}
	plain, err := secret.OpenWithKey(key, append([]byte(purposeSession), idHash...), row.IdentitySealed)
	if err != nil {
		return nil, kluis.Errorf(kluis.EUNAUTHORIZED, "Your download session is not valid. Open the link from your mail again.")
	}
	idText, pw, _ := strings.Cut(string(plain), "\n")
	id, err := age.ParseX25519Identity(idText)
	if err != nil {
		return nil, fmt.Errorf("session identity: %w", err)
	}
	return &Session{Token: token, ExpiresAt: row.ExpiresAt, transfer: t, recipient: r, identity: id, keys: s.keys, secret: pw}, nil
}

// sessionRow decodes a session token and loads its row, if it has not
// expired. It returns the row, the hash of the session id and the key
// only the token carries.
func (s *Service) sessionRow(ctx context.Context, token string) (*store.SessionRow, []byte, []byte, error) {
	raw, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil || len(raw) != 48 {
		return nil, nil, nil, kluis.Errorf(kluis.EUNAUTHORIZED, "Your download session is not valid. Open the link from your mail again.")
	}
	sid, key := raw[:16], raw[16:]
	idHash := secret.HashToken(string(sid))
	row, err := s.db.Session(ctx, idHash)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil, nil, errSessionEnded()
	}
	if err != nil {
		return nil, nil, nil, err
	}
	if !s.now().Before(row.ExpiresAt) {
		return nil, nil, nil, errSessionEnded()
	}
	return row, idHash, key, nil
}

// Contents is what an unlocked recipient sees.
type Contents struct {
	Transfer *kluis.Transfer
	Message  string
	Files    []kluis.File
	// Subject is the subject of the recipient's mail (not confidential:
	// the mail carried it), or "" when the sender gave none.
	Subject string
}

// Contents opens the message and the file list of an unlocked transfer. The
// recipient list is trimmed to what this recipient may see: To and Cc, and
// themselves.
func (s *Service) Contents(ctx context.Context, a *Session) (*Contents, error) {
	rs, err := s.db.Recipients(ctx, a.transfer.ID)
	if err != nil {
		return nil, err
	}
	var visible []*store.RecipientRow
	for _, r := range rs {
		if r.Kind != string(kluis.KindBcc) || r.ID == a.recipient.ID {
			visible = append(visible, r)
		}
	}
	out := &Contents{Transfer: s.view(a.transfer, visible)}
	// A recipient sees who else was addressed, not what they did.
	for i := range out.Transfer.Recipients {
		r := &out.Transfer.Recipients[i]
		*r = kluis.Recipient{Kind: r.Kind, Address: r.Address}
	}
	var p private
	if err := s.openPrivate(a.identity, purposePrivate, a.transfer.ID, a.transfer.PrivateSealed, &p); err != nil {
		return nil, err
	}
	out.Message = p.Message
	var d details
	if err := s.openJSON(purposeDetails, a.transfer.ID, a.transfer.DetailsSealed, &d); err == nil {
		out.Subject = d.Subject
	}
	files, err := s.db.Files(ctx, a.transfer.ID)
	if err != nil {
		return nil, err
	}
	for _, f := range files {
		kf, err := s.fileView(a, f)
		if err != nil {
			return nil, err
		}
		out.Files = append(out.Files, *kf)
	}
	return out, nil
}

func (s *Service) fileView(a *Session, f *store.FileRow) (*kluis.File, error) {
	var fp filePrivate
	if err := s.openPrivate(a.identity, purposeFilePriv, f.ID, f.PrivateSealed, &fp); err != nil {
		return nil, err
	}
	var sum string
	if err := s.openPrivate(a.identity, purposeFileSum, f.ID, f.SumSealed, &sum); err != nil {
		return nil, err
	}
	var m fileMeta
	if err := s.openJSON(purposeFileMeta, f.ID, f.MetaSealed, &m); err != nil {
		return nil, err
	}
	return &kluis.File{ID: f.ID, Index: f.Index, Name: fp.Name, ContentType: fp.ContentType, Size: m.Size, SHA256: sum, Complete: f.Complete}, nil
}

// OpenFile returns a file's metadata and a verifying reader of its
// plaintext. Close the reader.
func (s *Service) OpenFile(ctx context.Context, a *Session, fileID string) (*kluis.File, *segment.FileReader, error) {
	f, err := s.db.File(ctx, fileID)
	if errors.Is(err, store.ErrNotFound) || (err == nil && f.TransferID != a.transfer.ID) {
		return nil, nil, kluis.Errorf(kluis.ENOTFOUND, "This file does not exist.")
	}
	if err != nil {
		return nil, nil, err
	}
	kf, err := s.fileView(a, f)
	if err != nil {
		return nil, nil, err
	}
	man, err := s.manifest(ctx, s.db.Q, f)
	if err != nil {
		return nil, nil, err
	}
	if man.Size() != kf.Size {
		return nil, nil, kluis.Errorf(kluis.EINTEGRITY, "Stored data failed verification.")
	}
	return kf, segment.NewFileReader(ctx, man, s.blobs.Open, a.identity), nil
}
