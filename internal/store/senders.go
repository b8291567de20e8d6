package store

import (
	"context"
	"database/sql"
	"errors"
	"time"
)

// Verification is a pending sender verification.
type Verification struct {
	IDHash        []byte
	Email         string
	DetailsSealed []byte
	CodeHash      []byte
	CreatedAt     time.Time
	SentAt        time.Time
	ExpiresAt     time.Time
	Attempts      int
}

// StartVerification stores a verification, or replaces the one with the
// same id (a resend: a new code, and a fresh count of attempts for it), in
// one statement. A replacement happens only if the earlier code was sent
// at least cooldown before v.SentAt, whatever address it went to;
// otherwise nothing changes and it returns ErrConflict. One statement, so
// parallel requests on one pre-session send one code per cooldown.
func (q Q) StartVerification(ctx context.Context, v *Verification, cooldown time.Duration) error {
	res, err := q.q.ExecContext(ctx, `INSERT INTO verifications (id_hash, email, details_sealed, code_hash, created_at, sent_at, expires_at, attempts)
		VALUES (?, ?, ?, ?, ?, ?, ?, 0)
		ON CONFLICT (id_hash) DO UPDATE SET email = excluded.email, details_sealed = excluded.details_sealed,
			code_hash = excluded.code_hash, sent_at = excluded.sent_at, expires_at = excluded.expires_at, attempts = 0
		WHERE verifications.sent_at <= ?`,
		v.IDHash, v.Email, v.DetailsSealed, v.CodeHash, ms(v.CreatedAt), ms(v.SentAt), ms(v.ExpiresAt), ms(v.SentAt.Add(-cooldown)))
	return affected(res, err, ErrConflict)
}

// Verification returns a pending verification. Returns ErrNotFound if
// there is none.
func (q Q) Verification(ctx context.Context, idHash []byte) (*Verification, error) {
	var v Verification
	var created, sent, expires int64
	err := q.q.QueryRowContext(ctx, `SELECT id_hash, email, details_sealed, code_hash, created_at, sent_at, expires_at, attempts
		FROM verifications WHERE id_hash = ?`, idHash).
		Scan(&v.IDHash, &v.Email, &v.DetailsSealed, &v.CodeHash, &created, &sent, &expires, &v.Attempts)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	v.CreatedAt, v.SentAt, v.ExpiresAt = fromMS(created), fromMS(sent), fromMS(expires)
	return &v, nil
}

// ReserveVerificationAttempt counts one code attempt before the code is
// compared, in one statement that also checks the limit: it succeeds only
// while fewer than max attempts were counted, the code has not expired at
// now and there is a code. It returns the verification as counted (with
// the code hash to compare against, and Attempts the number of this
// attempt). Otherwise it changes nothing and returns ErrNotFound; read the
// row to tell why. So parallel confirms can never compare more than max
// codes.
func (q Q) ReserveVerificationAttempt(ctx context.Context, idHash []byte, max int, now time.Time) (*Verification, error) {
	var v Verification
	var created, sent, expires int64
	err := q.q.QueryRowContext(ctx, `UPDATE verifications SET attempts = attempts + 1
		WHERE id_hash = ? AND attempts < ? AND expires_at > ? AND code_hash IS NOT NULL
		RETURNING id_hash, email, details_sealed, code_hash, created_at, sent_at, expires_at, attempts`, idHash, max, ms(now)).
		Scan(&v.IDHash, &v.Email, &v.DetailsSealed, &v.CodeHash, &created, &sent, &expires, &v.Attempts)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	v.CreatedAt, v.SentAt, v.ExpiresAt = fromMS(created), fromMS(sent), fromMS(expires)
	return &v, nil
}

// UseVerification deletes a verification whose code was right, if it
// still holds that code (codeHash). Returns ErrNotFound if another request
// used it first or a resend replaced the code: the code works once.
func (q Q) UseVerification(ctx context.Context, idHash, codeHash []byte) error {
	res, err := q.q.ExecContext(ctx, `DELETE FROM verifications WHERE id_hash = ? AND code_hash = ?`, idHash, codeHash)
	return affected(res, err, ErrNotFound)
}

// SenderSession is a verified sender's session.
type SenderSession struct {
	IDHash        []byte
	Email         string
	DetailsSealed []byte
	Kind          string
	CreatedAt     time.Time
	LastSeenAt    time.Time
	ExpiresAt     time.Time
	// Auth is how the address was proved: "code" (mailed code) or "sso".
	Auth string
	// Roles are the staff roles granted at sign-in ("admin,helpdesk").
	Roles string
	// CheckedAt is when the identity provider last confirmed the
	// account (sso only).
	CheckedAt *time.Time
}

// InsertSenderSession stores a new sender session.
func (q Q) InsertSenderSession(ctx context.Context, s *SenderSession) error {
	_, err := q.q.ExecContext(ctx, `INSERT INTO sender_sessions (id_hash, email, details_sealed, kind, created_at, last_seen_at, expires_at, auth, roles, checked_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, s.IDHash, s.Email, s.DetailsSealed, s.Kind, ms(s.CreatedAt), ms(s.LastSeenAt), ms(s.ExpiresAt),
		authOr(s.Auth), s.Roles, msPtr(s.CheckedAt))
	return err
}

// RecheckSenderSession records that the identity provider confirmed an
// SSO session's account at at, with the details (a new refresh token)
// and roles it answered with.
func (q Q) RecheckSenderSession(ctx context.Context, idHash []byte, at time.Time, detailsSealed []byte, roles string) error {
	res, err := q.q.ExecContext(ctx, `UPDATE sender_sessions SET checked_at = ?, details_sealed = ?, roles = ? WHERE id_hash = ?`, ms(at), detailsSealed, roles, idHash)
	return affected(res, err, ErrNotFound)
}

// SenderSession returns a sender session. Returns ErrNotFound if there is
// none.
func (q Q) SenderSession(ctx context.Context, idHash []byte) (*SenderSession, error) {
	var s SenderSession
	var created, seen, expires int64
	var checked sql.NullInt64
	err := q.q.QueryRowContext(ctx, `SELECT id_hash, email, details_sealed, kind, created_at, last_seen_at, expires_at, auth, roles, checked_at
		FROM sender_sessions WHERE id_hash = ?`, idHash).
		Scan(&s.IDHash, &s.Email, &s.DetailsSealed, &s.Kind, &created, &seen, &expires, &s.Auth, &s.Roles, &checked)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	s.CreatedAt, s.LastSeenAt, s.ExpiresAt, s.CheckedAt = fromMS(created), fromMS(seen), fromMS(expires), fromNullMS(checked)
	return &s, nil
}

// TouchSenderSession records use of a session (for the idle timeout).
func (q Q) TouchSenderSession(ctx context.Context, idHash []byte, at time.Time) error {
	_, err := q.q.ExecContext(ctx, `UPDATE sender_sessions SET last_seen_at = ? WHERE id_hash = ?`, ms(at), idHash)
	return err
}

// DeleteSenderSession ends a session on the server.
func (q Q) DeleteSenderSession(ctx context.Context, idHash []byte) error {
	_, err := q.q.ExecContext(ctx, `DELETE FROM sender_sessions WHERE id_hash = ?`, idHash)
	return err
}

// DeleteExpiredSenderData removes verifications and sender sessions past
// their end.
func (q Q) DeleteExpiredSenderData(ctx context.Context, now time.Time, idleBefore time.Time) error {
	if _, err := q.q.ExecContext(ctx, `DELETE FROM verifications WHERE expires_at <= ?`, ms(now)); err != nil {
		return err
	}
	if _, err := q.q.ExecContext(ctx, `DELETE FROM oidc_flows WHERE expires_at <= ?`, ms(now)); err != nil {
		return err
	}
	_, err := q.q.ExecContext(ctx, `DELETE FROM sender_sessions WHERE expires_at <= ? OR last_seen_at < ?`, ms(now), ms(idleBefore))
	return err
}

// OIDCFlow is a single sign-on in progress (see migration 0014).
type OIDCFlow struct {
	StateHash   []byte
	BindingHash []byte
	FlowSealed  []byte
	ExpiresAt   time.Time
}

// InsertOIDCFlow stores a sign-in in progress.
func (q Q) InsertOIDCFlow(ctx context.Context, f *OIDCFlow) error {
	_, err := q.q.ExecContext(ctx, `INSERT INTO oidc_flows (state_hash, binding_hash, flow_sealed, expires_at) VALUES (?, ?, ?, ?)`,
		f.StateHash, f.BindingHash, f.FlowSealed, ms(f.ExpiresAt))
	return err
}

// TakeOIDCFlow deletes the sign-in in progress with the state's hash and
// returns it, in one statement: a state works once, even for parallel
// callbacks. Returns ErrNotFound if there is none (never issued, used, or
// removed after it expired); the caller checks ExpiresAt and the binding.
func (q Q) TakeOIDCFlow(ctx context.Context, stateHash []byte) (*OIDCFlow, error) {
	var f OIDCFlow
	var expires int64
	err := q.q.QueryRowContext(ctx, `DELETE FROM oidc_flows WHERE state_hash = ? RETURNING state_hash, binding_hash, flow_sealed, expires_at`, stateHash).
		Scan(&f.StateHash, &f.BindingHash, &f.FlowSealed, &expires)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	f.ExpiresAt = fromMS(expires)
	return &f, nil
}

// APIKey is an administrator-issued key bound to one sender address.
type APIKey struct {
	ID         string
	KeyHash    []byte
	Email      string
	Name       string // what the key is for, as the administrator wrote it
	CreatedAt  time.Time
	ExpiresAt  time.Time // every key has one
	RevokedAt  *time.Time
	LastUsedAt *time.Time // to the minute (TouchAPIKey)
}

const apiKeyColumns = `id, key_hash, email, name, created_at, expires_at, revoked_at, last_used_at`

func scanAPIKey(row interface{ Scan(...any) error }) (*APIKey, error) {
	var k APIKey
	var created, expires int64
	var revoked, used sql.NullInt64
	if err := row.Scan(&k.ID, &k.KeyHash, &k.Email, &k.Name, &created, &expires, &revoked, &used); err != nil {
		return nil, err
	}
	k.CreatedAt, k.ExpiresAt, k.RevokedAt, k.LastUsedAt = fromMS(created), fromMS(expires), fromNullMS(revoked), fromNullMS(used)
	return &k, nil
}

// InsertAPIKey stores a new API key.
func (q Q) InsertAPIKey(ctx context.Context, k *APIKey) error {
	_, err := q.q.ExecContext(ctx, `INSERT INTO api_keys (id, key_hash, email, name, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)`,
		k.ID, k.KeyHash, k.Email, k.Name, ms(k.CreatedAt), ms(k.ExpiresAt))
	return err
}

// APIKeyByHash returns a key by the hash of its secret. Returns ErrNotFound
// if there is none.
func (q Q) APIKeyByHash(ctx context.Context, hash []byte) (*APIKey, error) {
	k, err := scanAPIKey(q.q.QueryRowContext(ctx, `SELECT `+apiKeyColumns+` FROM api_keys WHERE key_hash = ?`, hash))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	return k, err
}

// APIKey returns a key by its id. Returns ErrNotFound if there is none.
func (q Q) APIKey(ctx context.Context, id string) (*APIKey, error) {
	k, err := scanAPIKey(q.q.QueryRowContext(ctx, `SELECT `+apiKeyColumns+` FROM api_keys WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	return k, err
}

// APIKeys lists all keys, newest first.
func (q Q) APIKeys(ctx context.Context) ([]*APIKey, error) {
	rows, err := q.q.QueryContext(ctx, `SELECT `+apiKeyColumns+` FROM api_keys ORDER BY created_at DESC, id`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*APIKey
	for rows.Next() {
		k, err := scanAPIKey(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, k)
	}
	return out, rows.Err()
}

// RevokeAPIKey revokes a key. Returns ErrNotFound if no unrevoked key has
// that id.
func (q Q) RevokeAPIKey(ctx context.Context, id string, at time.Time) error {
	res, err := q.q.ExecContext(ctx, `UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL`, ms(at), id)
	return affected(res, err, ErrNotFound)
}

// ExpireAPIKey moves a key's expiry to at. Returns ErrNotFound if no
// unrevoked key with that id expires after at.
func (q Q) ExpireAPIKey(ctx context.Context, id string, at time.Time) error {
	res, err := q.q.ExecContext(ctx, `UPDATE api_keys SET expires_at = ? WHERE id = ? AND revoked_at IS NULL AND expires_at > ?`, ms(at), id, ms(at))
	return affected(res, err, ErrNotFound)
}

// TouchAPIKey records that a key was used at at.
func (q Q) TouchAPIKey(ctx context.Context, id string, at time.Time) error {
	_, err := q.q.ExecContext(ctx, `UPDATE api_keys SET last_used_at = ? WHERE id = ?`, ms(at), id)
	return err
}

// authOr is a session's auth, "code" for rows made before single sign-on.
func authOr(a string) string {
	if a == "" {
		return "code"
	}
	return a
}

// LatestSenderSession returns the sender session of email last used, of
// those not expired at now. Returns ErrNotFound if there is none.
func (q Q) LatestSenderSession(ctx context.Context, email string, now time.Time) (*SenderSession, error) {
	var idHash []byte
	err := q.q.QueryRowContext(ctx, `SELECT id_hash FROM sender_sessions WHERE lower(email) = lower(?) AND expires_at > ?
		ORDER BY last_seen_at DESC LIMIT 1`, email, ms(now)).Scan(&idHash)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	return q.SenderSession(ctx, idHash)
}
