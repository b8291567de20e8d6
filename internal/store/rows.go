package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// TransferRow is a transfers row. Sealed fields are opaque bytes here.
type TransferRow struct {
	ID              string
	State           string
	CreatedAt       time.Time
	ExpiresAt       time.Time
	FinishedAt      *time.Time
	RevokedAt       *time.Time
	PurgedAt        *time.Time
	SenderEmail     string
	Lang            string
	PasswordMode    string
	Options         string
	UploadTokenHash []byte
	RecipientSealed []byte
	IdentitySealed  []byte
	DetailsSealed   []byte
	PrivateSealed   []byte
	// ReplyTo is the id of the transfer this one answers (a recipient's
	// reply), or "".
	ReplyTo string
}

const transferCols = `id, state, created_at, expires_at, finished_at, revoked_at, purged_at,
	sender_email, lang, password_mode, options, upload_token_hash,
	recipient_sealed, identity_sealed, details_sealed, private_sealed, reply_to`

func scanTransfer(row interface{ Scan(...any) error }) (*TransferRow, error) {
	var t TransferRow
	var created, expires int64
	var finished, revoked, purged sql.NullInt64
	var replyTo sql.NullString
	err := row.Scan(&t.ID, &t.State, &created, &expires, &finished, &revoked, &purged,
		&t.SenderEmail, &t.Lang, &t.PasswordMode, &t.Options, &t.UploadTokenHash,
		&t.RecipientSealed, &t.IdentitySealed, &t.DetailsSealed, &t.PrivateSealed, &replyTo)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	t.CreatedAt, t.ExpiresAt, t.ReplyTo = fromMS(created), fromMS(expires), replyTo.String
	t.FinishedAt, t.RevokedAt, t.PurgedAt = fromNullMS(finished), fromNullMS(revoked), fromNullMS(purged)
	return &t, nil
}

// InsertTransfer inserts a new transfer.
func (q Q) InsertTransfer(ctx context.Context, t *TransferRow) error {
	_, err := q.q.ExecContext(ctx, `INSERT INTO transfers (`+transferCols+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		t.ID, t.State, ms(t.CreatedAt), ms(t.ExpiresAt), msPtr(t.FinishedAt), msPtr(t.RevokedAt), msPtr(t.PurgedAt),
		t.SenderEmail, t.Lang, t.PasswordMode, t.Options, t.UploadTokenHash,
		t.RecipientSealed, t.IdentitySealed, t.DetailsSealed, t.PrivateSealed, nullString(t.ReplyTo))
	if err != nil {
		return fmt.Errorf("insert transfer: %w", err)
	}
	return nil
}

// Transfer returns a transfer. Returns ErrNotFound if there is none.
func (q Q) Transfer(ctx context.Context, id string) (*TransferRow, error) {
	return scanTransfer(q.q.QueryRowContext(ctx, `SELECT `+transferCols+` FROM transfers WHERE id = ?`, id))
}

// TransfersBySender lists a sender's transfers, newest first.
func (q Q) TransfersBySender(ctx context.Context, email string) ([]*TransferRow, error) {
	return scanAll(scanTransfer)(q.q.QueryContext(ctx, `SELECT `+transferCols+` FROM transfers WHERE sender_email = ? ORDER BY created_at DESC`, email))
}

// SetTransferState moves a transfer from one of the states in from to to.
// Returns ErrConflict if the transfer is in none of them.
func (q Q) SetTransferState(ctx context.Context, id string, to string, from ...string) error {
	args := []any{to, id}
	in := ""
	for i, f := range from {
		if i > 0 {
			in += ", "
		}
		in += "?"
		args = append(args, f)
	}
	res, err := q.q.ExecContext(ctx, `UPDATE transfers SET state = ? WHERE id = ? AND state IN (`+in+`)`, args...)
	return affected(res, err, ErrConflict)
}

// FinishTransfer marks an uploading (or draft) transfer ready.
func (q Q) FinishTransfer(ctx context.Context, id string, now time.Time) error {
	res, err := q.q.ExecContext(ctx, `UPDATE transfers SET state = 'ready', finished_at = ?
		WHERE id = ? AND state IN ('draft', 'uploading')`, ms(now), id)
	return affected(res, err, ErrConflict)
}

// RevokeTransfer marks a transfer revoked, unless it is already revoked or purged.
func (q Q) RevokeTransfer(ctx context.Context, id string, now time.Time) error {
	res, err := q.q.ExecContext(ctx, `UPDATE transfers SET state = 'revoked', revoked_at = ?
		WHERE id = ? AND revoked_at IS NULL AND purged_at IS NULL`, ms(now), id)
	return affected(res, err, ErrConflict)
}

// ExtendTransfer sets a new expiry on a transfer that is not over.
func (q Q) ExtendTransfer(ctx context.Context, id string, expires time.Time) error {
	res, err := q.q.ExecContext(ctx, `UPDATE transfers SET expires_at = ?
		WHERE id = ? AND revoked_at IS NULL AND purged_at IS NULL`, ms(expires), id)
	return affected(res, err, ErrConflict)
}

// DueForPurge returns ids of transfers whose content must go: revoked or
// expired, and not yet purged; the revoked first, then the expired, those
// that expired longest ago first. Two queries, each served by its own
// index (transfers_revoked_due, transfers_due), so neither reads the live
// transfers.
func (q Q) DueForPurge(ctx context.Context, now time.Time, limit int) ([]string, error) {
	ids, err := scanStrings(q.q.QueryContext(ctx, qDueRevoked, limit))
	if err != nil || len(ids) >= limit {
		return ids, err
	}
	more, err := scanStrings(q.q.QueryContext(ctx, qDueExpired, ms(now), limit-len(ids)))
	if err != nil {
		return nil, err
	}
	seen := make(map[string]bool, len(ids))
	for _, id := range ids {
		seen[id] = true
	}
	for _, id := range more {
		if !seen[id] {
			ids = append(ids, id)
		}
	}
	return ids, nil
}

const (
	qDueRevoked = `SELECT id FROM transfers WHERE purged_at IS NULL AND revoked_at IS NOT NULL ORDER BY revoked_at LIMIT ?`
	qDueExpired = `SELECT id FROM transfers WHERE purged_at IS NULL AND expires_at <= ? ORDER BY expires_at LIMIT ?`
)

// ClaimForPurge returns those of ids that are still due for the purge at
// now (revoked or expired, not purged), locked until the transaction ends.
// On PostgreSQL it waits for a transaction that holds one of them (a
// download being recorded, the purge of another instance) and reads it
// again after that one ended; the rows are locked in id order, so two
// purges never wait for each other in a circle.
func (tx *Tx) ClaimForPurge(ctx context.Context, ids []string, now time.Time) ([]string, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	in, args := inList(ids)
	query := `SELECT id FROM transfers WHERE id IN (` + in + `) AND purged_at IS NULL AND (revoked_at IS NOT NULL OR expires_at <= ?) ORDER BY id`
	if tx.pg {
		query += ` FOR NO KEY UPDATE`
	}
	return scanStrings(tx.q.QueryContext(ctx, query, append(args, ms(now))...))
}

// PurgeTransfer erases every encrypted field of a transfer and its files
// and sessions, keeping the minimal record (ids, dates, state, addresses).
// The upload token's hash is emptied too, so the token is as unknown as one
// never issued: the sender keeps access to the minimal record by verifying
// their address. The served byte ranges go as well; the downloads rows stay.
func (q Q) PurgeTransfer(ctx context.Context, id string, now time.Time) error {
	return q.PurgeTransfers(ctx, []string{id}, now)
}

// PurgeTransfers is PurgeTransfer for many transfers at once, in seven
// statements.
func (q Q) PurgeTransfers(ctx context.Context, ids []string, now time.Time) error {
	if len(ids) == 0 {
		return nil
	}
	in, args := inList(ids)
	// Sessions lose their sealed identity but stay until they expire, so a
	// client still gets "revoked" or "expired" (with the date) rather than
	// "session ended".
	if _, err := q.q.ExecContext(ctx, `UPDATE sessions SET identity_sealed = ? WHERE recipient_id IN (SELECT id FROM recipients WHERE transfer_id IN (`+in+`))`,
		append([]any{[]byte{}}, args...)...); err != nil {
		return fmt.Errorf("purge sessions: %w", err)
	}
	if _, err := q.q.ExecContext(ctx, `DELETE FROM files WHERE transfer_id IN (`+in+`)`, args...); err != nil {
		return fmt.Errorf("purge files: %w", err)
	}
	// The mobile number and the login's claim value are no part of the
	// minimal record.
	if _, err := q.q.ExecContext(ctx, `UPDATE recipients SET phone_sealed = NULL, login_sealed = NULL WHERE transfer_id IN (`+in+`)`, args...); err != nil {
		return fmt.Errorf("purge phones: %w", err)
	}
	if _, err := q.q.ExecContext(ctx, `DELETE FROM served WHERE recipient_id IN (SELECT id FROM recipients WHERE transfer_id IN (`+in+`))`, args...); err != nil {
		return fmt.Errorf("purge served ranges: %w", err)
	}
	// Mails held for a transfer that was revoked or expired while it
	// waited for its malware scan (scanwait.go) are never sent.
	if _, err := q.q.ExecContext(ctx, `DELETE FROM outbox WHERE held_for IN (`+in+`)`, args...); err != nil {
		return fmt.Errorf("purge held mail: %w", err)
	}
	// A mail gateway's password still waiting for its sender opens the
	// transfer: it goes with the content.
	if _, err := q.q.ExecContext(ctx, `DELETE FROM gateway_passwords WHERE transfer_id IN (`+in+`)`, args...); err != nil {
		return fmt.Errorf("purge gateway passwords: %w", err)
	}
	// An empty hash matches no token: HashToken is never empty.
	_, err := q.q.ExecContext(ctx, `UPDATE transfers SET state = 'purged', purged_at = ?, upload_token_hash = ?,
		recipient_sealed = NULL, identity_sealed = NULL, details_sealed = NULL, private_sealed = NULL
		WHERE id IN (`+in+`)`, append([]any{ms(now), []byte{}}, args...)...)
	if err != nil {
		return fmt.Errorf("purge transfer: %w", err)
	}
	return nil
}

// inList returns "?, ?, ..." for the values and the values as arguments.
func inList[T any](vs []T) (string, []any) {
	var b strings.Builder
	args := make([]any, len(vs))
	for i, v := range vs {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteByte('?')
		args[i] = v
	}
	return b.String(), args
}

// DeleteRetired deletes the minimal records of transfers purged before the
// given time, with their recipients and download records.
func (q Q) DeleteRetired(ctx context.Context, purgedBefore time.Time) (int64, error) {
	if _, err := q.q.ExecContext(ctx, `DELETE FROM dropoff_uploads WHERE transfer_id IN
		(SELECT id FROM transfers WHERE purged_at IS NOT NULL AND purged_at < ?)`, ms(purgedBefore)); err != nil {
		return 0, err
	}
	res, err := q.q.ExecContext(ctx, `DELETE FROM transfers WHERE purged_at IS NOT NULL AND purged_at < ?`, ms(purgedBefore))
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// RecipientRow is a recipients row.
type RecipientRow struct {
	ID          int64
	TransferID  string
	Kind        string
	Address     string
	AccessHash  []byte
	NotifiedAt  *time.Time
	OpenedAt    *time.Time
	RevokedAt   *time.Time
	Failures    int
	LockedUntil *time.Time
	// The escalating lock-out (migration 0008): wrong attempts and locks
	// since the last success or the sender's unlock; HeldAt is set while
	// the access stays locked until the sender lifts it.
	FailTotal int
	Lockouts  int
	HeldAt    *time.Time
	// CodeHash is the keyed hash of the recipient's receive code
	// (migration 0013); nil before it.
	CodeHash []byte
	// AuthMethod is how the recipient proves who they are ("password",
	// "password+sms"); PhoneSealed the number for the SMS code, sealed
	// under the master key; VerifiedAt the last pass of the second factor
	// (migration 0016).
	AuthMethod  string
	PhoneSealed []byte
	VerifiedAt  *time.Time
	// LoginProvider names the policy's OpenID provider of a
	// "password+login" recipient; LoginSealed the claim value its login
	// must show, sealed under the master key (migration 0024).
	LoginProvider string
	LoginSealed   []byte
}

const recipientCols = `id, transfer_id, kind, address, access_hash, notified_at, opened_at, revoked_at, failures, locked_until, fail_total, lockouts, held_at, code_hash, auth_method, phone_sealed, verified_at, login_provider, login_sealed`

func scanRecipient(row interface{ Scan(...any) error }) (*RecipientRow, error) {
	var r RecipientRow
	var notified, opened, revoked, locked, held, verified sql.NullInt64
	var provider sql.NullString
	err := row.Scan(&r.ID, &r.TransferID, &r.Kind, &r.Address, &r.AccessHash, &notified, &opened, &revoked, &r.Failures, &locked,
		&r.FailTotal, &r.Lockouts, &held, &r.CodeHash, &r.AuthMethod, &r.PhoneSealed, &verified, &provider, &r.LoginSealed)
	r.LoginProvider = provider.String
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	r.NotifiedAt, r.OpenedAt, r.RevokedAt, r.LockedUntil = fromNullMS(notified), fromNullMS(opened), fromNullMS(revoked), fromNullMS(locked)
	r.HeldAt, r.VerifiedAt = fromNullMS(held), fromNullMS(verified)
	return &r, nil
}

// InsertRecipient inserts a recipient and sets its ID.
func (q Q) InsertRecipient(ctx context.Context, r *RecipientRow) error {
	if r.AuthMethod == "" {
		r.AuthMethod = "password"
	}
	err := q.q.QueryRowContext(ctx, `INSERT INTO recipients (transfer_id, kind, address, auth_method) VALUES (?, ?, ?, ?) RETURNING id`,
		r.TransferID, r.Kind, r.Address, r.AuthMethod).Scan(&r.ID)
	if err != nil {
		return fmt.Errorf("insert recipient: %w", err)
	}
	return nil
}

// Recipients lists a transfer's recipients in the order they were added.
func (q Q) Recipients(ctx context.Context, transferID string) ([]*RecipientRow, error) {
	return scanAll(scanRecipient)(q.q.QueryContext(ctx, `SELECT `+recipientCols+` FROM recipients WHERE transfer_id = ? ORDER BY id`, transferID))
}

// RecipientByAccess finds a recipient by the hash of its access id.
// Returns ErrNotFound if there is none.
func (q Q) RecipientByAccess(ctx context.Context, hash []byte) (*RecipientRow, error) {
	return scanRecipient(q.q.QueryRowContext(ctx, `SELECT `+recipientCols+` FROM recipients WHERE access_hash = ?`, hash))
}

// RecipientByCode finds a recipient by the keyed hash of its receive code.
// Returns ErrNotFound if there is none.
func (q Q) RecipientByCode(ctx context.Context, hash []byte) (*RecipientRow, error) {
	return scanRecipient(q.q.QueryRowContext(ctx, `SELECT `+recipientCols+` FROM recipients WHERE code_hash = ?`, hash))
}

// SetRecipientCode stores the keyed hash of a recipient's receive code.
func (q Q) SetRecipientCode(ctx context.Context, id int64, hash []byte) error {
	res, err := q.q.ExecContext(ctx, `UPDATE recipients SET code_hash = ? WHERE id = ?`, hash, id)
	return affected(res, err, ErrNotFound)
}

// SetRecipientPhone stores a recipient's sealed mobile number (sealed
// with the recipient's id, so it is written after the insert).
func (q Q) SetRecipientPhone(ctx context.Context, id int64, sealed []byte) error {
	res, err := q.q.ExecContext(ctx, `UPDATE recipients SET phone_sealed = ? WHERE id = ?`, sealed, id)
	return affected(res, err, ErrNotFound)
}

// SetRecipientLogin stores a recipient's login provider and sealed claim
// value (sealed with the recipient's id, so written after the insert).
func (q Q) SetRecipientLogin(ctx context.Context, id int64, provider string, sealed []byte) error {
	res, err := q.q.ExecContext(ctx, `UPDATE recipients SET login_provider = ?, login_sealed = ? WHERE id = ?`, provider, sealed, id)
	return affected(res, err, ErrNotFound)
}

// LoginFlow is a recipient's login in progress (migration 0024).
type LoginFlow struct {
	StateHash   []byte
	SessionHash []byte
	FlowSealed  []byte
	ExpiresAt   time.Time
}

// InsertLoginFlow stores a login in progress.
func (q Q) InsertLoginFlow(ctx context.Context, f *LoginFlow) error {
	_, err := q.q.ExecContext(ctx, `INSERT INTO login_flows (state_hash, session_hash, flow_sealed, expires_at) VALUES (?, ?, ?, ?)`,
		f.StateHash, f.SessionHash, f.FlowSealed, ms(f.ExpiresAt))
	return err
}

// TakeLoginFlow deletes the login in progress with the state's hash and
// returns it, in one statement: a state works once, even for parallel
// callbacks. Returns ErrNotFound if there is none; the caller checks
// ExpiresAt and the session.
func (q Q) TakeLoginFlow(ctx context.Context, stateHash []byte) (*LoginFlow, error) {
	var f LoginFlow
	var expires int64
	err := q.q.QueryRowContext(ctx, `DELETE FROM login_flows WHERE state_hash = ? RETURNING state_hash, session_hash, flow_sealed, expires_at`, stateHash).
		Scan(&f.StateHash, &f.SessionHash, &f.FlowSealed, &expires)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	f.ExpiresAt = fromMS(expires)
	return &f, nil
}

// VerifyLoginSession ends the pending state of a session after its login
// matched; the session then lasts until expires. Returns ErrNotFound if
// the session is not (or no longer) pending.
func (q Q) VerifyLoginSession(ctx context.Context, idHash []byte, now, expires time.Time) error {
	res, err := q.q.ExecContext(ctx, `UPDATE sessions SET pending = 0, expires_at = ? WHERE id_hash = ? AND pending = 1 AND expires_at > ?`,
		ms(expires), idHash, ms(now))
	return affected(res, err, ErrNotFound)
}

// Recipient returns one recipient by id.
func (q Q) Recipient(ctx context.Context, id int64) (*RecipientRow, error) {
	return scanRecipient(q.q.QueryRowContext(ctx, `SELECT `+recipientCols+` FROM recipients WHERE id = ?`, id))
}

// SetRecipientAccess stores the hash of a recipient's access id.
func (q Q) SetRecipientAccess(ctx context.Context, id int64, hash []byte, notified *time.Time) error {
	res, err := q.q.ExecContext(ctx, `UPDATE recipients SET access_hash = ?, notified_at = ? WHERE id = ?`, hash, msPtr(notified), id)
	return affected(res, err, ErrNotFound)
}

// MarkNotified records when a recipient's notification left.
func (q Q) MarkNotified(ctx context.Context, id int64, at time.Time) error {
	_, err := q.q.ExecContext(ctx, `UPDATE recipients SET notified_at = ? WHERE id = ?`, ms(at), id)
	return err
}

// ReserveAttempt counts one attempt of a recipient (a password, or another
// factor) before it is checked, unless the access is locked (until a time
// after now, or held for the sender), max attempts towards the next lock
// are already counted, or (hold > 0) hold attempts in all; then it changes
// nothing and returns ErrNotFound. It returns the recipient as counted:
// Failures is this attempt's number towards the next lock, FailTotal its
// number since the last success or the sender's unlock. One statement, so
// parallel attempts cannot pass the limit.
func (q Q) ReserveAttempt(ctx context.Context, id int64, max, hold int, now time.Time) (*RecipientRow, error) {
	return scanRecipient(q.q.QueryRowContext(ctx, `UPDATE recipients SET failures = failures + 1, fail_total = fail_total + 1
		WHERE id = ? AND failures < ? AND (? <= 0 OR fail_total < ?) AND held_at IS NULL
			AND (locked_until IS NULL OR locked_until <= ?)
		RETURNING `+recipientCols, id, max, hold, hold, ms(now)))
}

// Lock locks a recipient's access and starts a fresh count towards the next
// lock. A timed lock (until set) happens only if the count is still n, a
// lock held for the sender (until nil, from heldAt) only if the total is
// still total and nothing holds it yet: so of parallel attempts only the
// one that reached the limit locks. It counts the lock and stores the hash
// of the one-time unlock link of the lock-out mail. It reports whether it
// locked.
func (q Q) Lock(ctx context.Context, id int64, n, total int, until *time.Time, heldAt time.Time, unlockHash []byte) (bool, error) {
	var res sql.Result
	var err error
	if until != nil {
		res, err = q.q.ExecContext(ctx, `UPDATE recipients SET failures = 0, locked_until = ?, lockouts = lockouts + 1, unlock_hash = ?
			WHERE id = ? AND failures = ?`, ms(*until), unlockHash, id, n)
	} else {
		res, err = q.q.ExecContext(ctx, `UPDATE recipients SET failures = 0, locked_until = NULL, held_at = ?, lockouts = lockouts + 1, unlock_hash = ?
			WHERE id = ? AND fail_total = ? AND held_at IS NULL`, ms(heldAt), unlockHash, id, total)
	}
	if err != nil {
		return false, err
	}
	k, err := res.RowsAffected()
	return k == 1, err
}

// MarkOpened clears the lock-out state (a right answer) and records the
// first opening.
func (q Q) MarkOpened(ctx context.Context, id int64, at time.Time) error {
	_, err := q.q.ExecContext(ctx, `UPDATE recipients SET failures = 0, fail_total = 0, lockouts = 0, locked_until = NULL,
		held_at = NULL, unlock_hash = NULL, opened_at = COALESCE(opened_at, ?) WHERE id = ?`, ms(at), id)
	return err
}

// UncountAttempt takes back one reserved attempt that turned out right
// (a factor that does not open the transfer by itself; MarkOpened resets
// everything when the transfer opens). Counts never go below zero, and a
// lock taken in the meantime stays.
func (q Q) UncountAttempt(ctx context.Context, id int64) error {
	_, err := q.q.ExecContext(ctx, `UPDATE recipients SET failures = CASE WHEN failures > 0 THEN failures - 1 ELSE 0 END,
		fail_total = CASE WHEN fail_total > 0 THEN fail_total - 1 ELSE 0 END WHERE id = ?`, id)
	return err
}

// LiftLock is the sender's unlock: it clears the lock-out state of a
// recipient of transferID that is locked at now (held, or until a later
// time). With unlockHash it lifts only the lock whose lock-out mail held
// that one-time link. Returns the recipient's id, or ErrNotFound if no
// such locked recipient exists (never locked, lifted already, or the link
// was replaced by a later lock).
func (q Q) LiftLock(ctx context.Context, transferID string, recipientID int64, unlockHash []byte, now time.Time) (int64, error) {
	var id int64
	err := q.q.QueryRowContext(ctx, `UPDATE recipients SET failures = 0, fail_total = 0, lockouts = 0, locked_until = NULL,
		held_at = NULL, unlock_hash = NULL
		WHERE transfer_id = ? AND (held_at IS NOT NULL OR locked_until > ?)
			AND ((? > 0 AND id = ?) OR (? = 0 AND unlock_hash = ?))
		RETURNING id`, transferID, ms(now), recipientID, recipientID, recipientID, unlockHash).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, ErrNotFound
	}
	return id, err
}

// LockedByLink returns the locked recipient of transferID whose latest
// lock-out mail holds the one-time link with this hash. Returns
// ErrNotFound if there is none.
func (q Q) LockedByLink(ctx context.Context, transferID string, unlockHash []byte) (*RecipientRow, error) {
	return scanRecipient(q.q.QueryRowContext(ctx, `SELECT `+recipientCols+` FROM recipients
		WHERE transfer_id = ? AND unlock_hash = ?`, transferID, unlockHash))
}

// RevokeRecipient revokes one recipient's access.
func (q Q) RevokeRecipient(ctx context.Context, id int64, at time.Time) error {
	res, err := q.q.ExecContext(ctx, `UPDATE recipients SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL`, ms(at), id)
	if err := affected(res, err, ErrConflict); err != nil {
		return err
	}
	_, err = q.q.ExecContext(ctx, `UPDATE sessions SET identity_sealed = ? WHERE recipient_id = ?`, []byte{}, id)
	return err
}

// FileRow is a files row. A file written before migration 0009 holds its
// whole manifest in ManifestSealed (HeadSealed nil); newer files keep the
// small HeadSealed and one segments row per entry instead.
type FileRow struct {
	ID             string
	TransferID     string
	Index          int
	Complete       bool
	Rev            int64
	UpdatedAt      time.Time
	MetaSealed     []byte
	PrivateSealed  []byte
	SumSealed      []byte
	ManifestSealed []byte
	HeadSealed     []byte
	// ScanSealed is the file's scan identity, sealed under the master key,
	// while the file waits for its malware scan; nil for a file that is
	// not scanned or whose scan has finished (migration 0012).
	ScanSealed []byte
}

const fileCols = `id, transfer_id, idx, complete, rev, updated_at, meta_sealed, private_sealed, sum_sealed, manifest_sealed, head_sealed, scan_sealed`

func scanFile(row interface{ Scan(...any) error }) (*FileRow, error) {
	var f FileRow
	var updated int64
	err := row.Scan(&f.ID, &f.TransferID, &f.Index, &f.Complete, &f.Rev, &updated, &f.MetaSealed, &f.PrivateSealed, &f.SumSealed, &f.ManifestSealed, &f.HeadSealed, &f.ScanSealed)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	f.UpdatedAt = fromMS(updated)
	return &f, nil
}

// InsertFile adds a file to a transfer; its index is the next free one.
func (q Q) InsertFile(ctx context.Context, f *FileRow) error {
	err := q.q.QueryRowContext(ctx, `INSERT INTO files (id, transfer_id, idx, complete, rev, updated_at, meta_sealed, private_sealed, manifest_sealed, head_sealed, scan_sealed)
		VALUES (?, ?, (SELECT COALESCE(MAX(idx), -1) + 1 FROM files WHERE transfer_id = ?), 0, 0, ?, ?, ?, ?, ?, ?) RETURNING idx`,
		f.ID, f.TransferID, f.TransferID, ms(f.UpdatedAt), f.MetaSealed, f.PrivateSealed, f.ManifestSealed, f.HeadSealed, f.ScanSealed).Scan(&f.Index)
	if err != nil {
		return fmt.Errorf("insert file: %w", err)
	}
	return nil
}

// File returns one file. Returns ErrNotFound if there is none.
func (q Q) File(ctx context.Context, id string) (*FileRow, error) {
	return scanFile(q.q.QueryRowContext(ctx, `SELECT `+fileCols+` FROM files WHERE id = ?`, id))
}

// Files lists a transfer's files in upload order.
func (q Q) Files(ctx context.Context, transferID string) ([]*FileRow, error) {
	return scanAll(scanFile)(q.q.QueryContext(ctx, `SELECT `+fileCols+` FROM files WHERE transfer_id = ? ORDER BY idx`, transferID))
}

// EachFile calls fn for every file row (for the orphan collector).
func (q Q) EachFile(ctx context.Context, fn func(*FileRow) error) error {
	rows, err := q.q.QueryContext(ctx, `SELECT `+fileCols+` FROM files`)
	if err != nil {
		return err
	}
	defer rows.Close()
	var all []*FileRow
	for rows.Next() {
		f, err := scanFile(rows)
		if err != nil {
			return err
		}
		all = append(all, f)
	}
	if err := rows.Err(); err != nil {
		return err
	}
	for _, f := range all {
		if err := fn(f); err != nil {
			return err
		}
	}
	return nil
}

// CompleteFile marks a file complete with its final metadata.
func (q Q) CompleteFile(ctx context.Context, id string, rev int64, meta, sum []byte, now time.Time) error {
	res, err := q.q.ExecContext(ctx, `UPDATE files SET complete = 1, meta_sealed = ?, sum_sealed = ?, rev = rev + 1, updated_at = ?
		WHERE id = ? AND rev = ? AND complete = 0`, meta, sum, ms(now), id, rev)
	return affected(res, err, ErrConflict)
}

// EndScan erases a complete file's scan identity once its scan has
// finished. The caller checkpoints the WAL (DB.Checkpoint) so the erased
// value survives in neither the database file nor the WAL.
func (q Q) EndScan(ctx context.Context, id string) error {
	_, err := q.q.ExecContext(ctx, `UPDATE files SET scan_sealed = NULL WHERE id = ? AND complete = 1`, id)
	return err
}

// DeleteFile removes a file row.
func (q Q) DeleteFile(ctx context.Context, id string) error {
	_, err := q.q.ExecContext(ctx, `DELETE FROM files WHERE id = ?`, id)
	return err
}

// DeleteIncompleteFile removes a file row if it is still incomplete at
// revision rev; ErrConflict otherwise (a segment was committed, or the file
// completed, since it was read).
func (q Q) DeleteIncompleteFile(ctx context.Context, id string, rev int64) error {
	res, err := q.q.ExecContext(ctx, `DELETE FROM files WHERE id = ? AND rev = ? AND complete = 0`, id, rev)
	return affected(res, err, ErrConflict)
}

// InsertDownload records that a recipient downloaded a file (fileIdx -1,
// written by earlier versions only: all files as one archive), once: it
// reports whether this call added the row, so of parallel callers exactly
// one sees true.
func (q Q) InsertDownload(ctx context.Context, recipientID int64, fileIdx int, at time.Time) (bool, error) {
	res, err := q.q.ExecContext(ctx, `INSERT INTO downloads (recipient_id, file_idx, at) VALUES (?, ?, ?)
		ON CONFLICT (recipient_id, file_idx) DO NOTHING`, recipientID, fileIdx, ms(at))
	if err := affected(res, err, ErrConflict); errors.Is(err, ErrConflict) {
		return false, nil
	} else if err != nil {
		return false, err
	}
	return true, nil
}

// Download is one download record.
type Download struct {
	RecipientID int64
	FileIndex   int
	At          time.Time
}

// Downloads lists the downloads of a transfer's recipients.
func (q Q) Downloads(ctx context.Context, transferID string) ([]Download, error) {
	rows, err := q.q.QueryContext(ctx, `SELECT d.recipient_id, d.file_idx, d.at FROM downloads d
		JOIN recipients r ON r.id = d.recipient_id WHERE r.transfer_id = ? ORDER BY d.at`, transferID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Download
	for rows.Next() {
		var d Download
		var at int64
		if err := rows.Scan(&d.RecipientID, &d.FileIndex, &at); err != nil {
			return nil, err
		}
		d.At = fromMS(at)
		out = append(out, d)
	}
	return out, rows.Err()
}

// SessionRow is a download session: the transfer identity sealed under a
// key that only the client's token carries.
type SessionRow struct {
	IDHash         []byte
	RecipientID    int64
	IdentitySealed []byte
	ExpiresAt      time.Time
	// Pending: the password was right but the second factor is still
	// due; the session opens nothing yet (migration 0016). CodeHash,
	// CodeExpires and CodeSentAt describe the SMS code last sent for it.
	Pending     bool
	CodeHash    []byte
	CodeExpires *time.Time
	CodeSentAt  *time.Time
}

// InsertSession stores a download session.
func (q Q) InsertSession(ctx context.Context, s *SessionRow) error {
	_, err := q.q.ExecContext(ctx, `INSERT INTO sessions (id_hash, recipient_id, identity_sealed, expires_at, pending) VALUES (?, ?, ?, ?, ?)`,
		s.IDHash, s.RecipientID, s.IdentitySealed, ms(s.ExpiresAt), boolInt(s.Pending))
	return err
}

// SetSessionCode stores the keyed hash of a new SMS code of a pending
// session, replacing any earlier code, and records the send for the caps,
// unless a code was sent at or after cooldownFrom (the resend cooldown):
// then it changes nothing and returns ErrConflict.
func (q Q) SetSessionCode(ctx context.Context, idHash []byte, recipientID int64, codeHash []byte, expires, now, cooldownFrom time.Time) error {
	res, err := q.q.ExecContext(ctx, `UPDATE sessions SET code_hash = ?, code_expires = ?, code_sent_at = ?
		WHERE id_hash = ? AND pending = 1 AND (code_sent_at IS NULL OR code_sent_at < ?)`,
		codeHash, ms(expires), ms(now), idHash, ms(cooldownFrom))
	if err := affected(res, err, ErrConflict); err != nil {
		return err
	}
	_, err = q.q.ExecContext(ctx, `INSERT INTO sms_sends (recipient_id, sent_at) VALUES (?, ?)`, recipientID, ms(now))
	return err
}

// VerifySession ends the pending state of a session whose code hash is
// codeHash and not expired at now, and uses the code up: of parallel
// tries with the same code only one succeeds. The session then lasts
// until expires. Returns ErrNotFound if no such pending session exists.
func (q Q) VerifySession(ctx context.Context, idHash, codeHash []byte, now, expires time.Time) error {
	res, err := q.q.ExecContext(ctx, `UPDATE sessions SET pending = 0, code_hash = NULL, code_expires = NULL, expires_at = ?
		WHERE id_hash = ? AND pending = 1 AND code_hash = ? AND code_expires > ?`, ms(expires), idHash, codeHash, ms(now))
	return affected(res, err, ErrNotFound)
}

// MarkVerified records that a recipient passed the second factor at at.
func (q Q) MarkVerified(ctx context.Context, id int64, at time.Time) error {
	_, err := q.q.ExecContext(ctx, `UPDATE recipients SET verified_at = ? WHERE id = ?`, ms(at), id)
	return err
}

// SMSSent counts the SMS messages sent since since: to one recipient, or
// (recipientID 0) to anyone.
func (q Q) SMSSent(ctx context.Context, recipientID int64, since time.Time) (int, error) {
	var n int
	err := q.q.QueryRowContext(ctx, `SELECT count(*) FROM sms_sends WHERE (? = 0 OR recipient_id = ?) AND sent_at >= ?`,
		recipientID, recipientID, ms(since)).Scan(&n)
	return n, err
}

// DeleteSMSSends forgets the SMS messages sent before before.
func (q Q) DeleteSMSSends(ctx context.Context, before time.Time) (int64, error) {
	res, err := q.q.ExecContext(ctx, `DELETE FROM sms_sends WHERE sent_at < ?`, ms(before))
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// Session returns a session by the hash of its id. Returns ErrNotFound if
// there is none.
func (q Q) Session(ctx context.Context, idHash []byte) (*SessionRow, error) {
	var s SessionRow
	var exp int64
	var pending int
	var codeExp, sent sql.NullInt64
	err := q.q.QueryRowContext(ctx, `SELECT id_hash, recipient_id, identity_sealed, expires_at, pending, code_hash, code_expires, code_sent_at
		FROM sessions WHERE id_hash = ?`, idHash).
		Scan(&s.IDHash, &s.RecipientID, &s.IdentitySealed, &exp, &pending, &s.CodeHash, &codeExp, &sent)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	s.ExpiresAt = fromMS(exp)
	s.Pending, s.CodeExpires, s.CodeSentAt = pending != 0, fromNullMS(codeExp), fromNullMS(sent)
	return &s, nil
}

// DeleteExpiredSessions removes sessions past their expiry.
func (q Q) DeleteExpiredSessions(ctx context.Context, now time.Time) (int64, error) {
	if _, err := q.q.ExecContext(ctx, `DELETE FROM login_flows WHERE expires_at <= ?`, ms(now)); err != nil {
		return 0, err
	}
	res, err := q.q.ExecContext(ctx, `DELETE FROM sessions WHERE expires_at <= ?`, ms(now))
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

func nullString(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func affected(res sql.Result, err error, none error) error {
	if err != nil {
		return err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return none
	}
	return nil
}

// scanAll returns a function that reads every row of a query's answer
// with scan: scanAll(scanFile)(q.q.QueryContext(…)).
func scanAll[T any](scan func(interface{ Scan(...any) error }) (T, error)) func(*sql.Rows, error) ([]T, error) {
	return func(rows *sql.Rows, err error) ([]T, error) {
		if err != nil {
			return nil, err
		}
		defer rows.Close()
		var out []T
		for rows.Next() {
			v, err := scan(rows)
			if err != nil {
				return nil, err
			}
			out = append(out, v)
		}
		return out, rows.Err()
	}
}

func scanStrings(rows *sql.Rows, err error) ([]string, error) {
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// TransferByUploadToken finds the transfer whose upload token hashes to
// hash. Returns ErrNotFound if there is none.
func (q Q) TransferByUploadToken(ctx context.Context, hash []byte) (*TransferRow, error) {
	return scanTransfer(q.q.QueryRowContext(ctx, `SELECT `+transferCols+` FROM transfers WHERE upload_token_hash = ?`, hash))
}

// DueForReminder returns ids of ready transfers that expire before soon,
// are not revoked, and had no reminder yet. The caller checks the option.
func (q Q) DueForReminder(ctx context.Context, now, soon time.Time, limit int) ([]string, error) {
	rows, err := q.q.QueryContext(ctx, `SELECT id FROM transfers
		WHERE state = 'ready' AND reminded_at IS NULL AND revoked_at IS NULL AND purged_at IS NULL
		AND expires_at > ? AND expires_at <= ? ORDER BY expires_at LIMIT ?`, ms(now), ms(soon), limit)
	return scanStrings(rows, err)
}

// ClaimReminder marks a transfer reminded if it was not yet, and reports
// whether this call did: of instances handling the same transfer at once,
// one queues the reminder.
func (q Q) ClaimReminder(ctx context.Context, id string, at time.Time) (bool, error) {
	res, err := q.q.ExecContext(ctx, `UPDATE transfers SET reminded_at = ? WHERE id = ? AND reminded_at IS NULL`, ms(at), id)
	if err := affected(res, err, ErrConflict); errors.Is(err, ErrConflict) {
		return false, nil
	} else if err != nil {
		return false, err
	}
	return true, nil
}

// MarkReminded records that the reminder was queued (or is not wanted), so
// it is considered once.
func (q Q) MarkReminded(ctx context.Context, id string, at time.Time) error {
	_, err := q.q.ExecContext(ctx, `UPDATE transfers SET reminded_at = ? WHERE id = ? AND reminded_at IS NULL`, ms(at), id)
	return err
}

// SetTransferLabel stores a transfer's sealed label (what its sender
// recognises it by). A purge keeps it; DeleteRetired removes it with the
// row.
func (q Q) SetTransferLabel(ctx context.Context, id string, sealed []byte) error {
	res, err := q.q.ExecContext(ctx, `UPDATE transfers SET label_sealed = ? WHERE id = ?`, sealed, id)
	return affected(res, err, ErrNotFound)
}

// TransferOptions returns the options (JSON) of the transfers ids, by id
// (the purge's batch).
func (q Q) TransferOptions(ctx context.Context, ids []string) (map[string]string, error) {
	out := map[string]string{}
	if len(ids) == 0 {
		return out, nil
	}
	in, args := inList(ids)
	rows, err := q.q.QueryContext(ctx, `SELECT id, options FROM transfers WHERE id IN (`+in+`)`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var id, o string
		if err := rows.Scan(&id, &o); err != nil {
			return nil, err
		}
		out[id] = o
	}
	return out, rows.Err()
}

// TransferLabels returns the sealed labels of the transfers ids that have
// one, by id.
func (q Q) TransferLabels(ctx context.Context, ids []string) (map[string][]byte, error) {
	out := map[string][]byte{}
	if len(ids) == 0 {
		return out, nil
	}
	in, args := inList(ids)
	rows, err := q.q.QueryContext(ctx, `SELECT id, label_sealed FROM transfers WHERE label_sealed IS NOT NULL AND id IN (`+in+`)`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var b []byte
		if err := rows.Scan(&id, &b); err != nil {
			return nil, err
		}
		out[id] = b
	}
	return out, rows.Err()
}
