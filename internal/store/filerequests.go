package store

import (
	"context"
	"database/sql"
	"errors"
	"time"
)

// FileRequest is a file_requests row (migration 0026): a signed-in staff
// member's request for files from one address. Sealed fields are opaque
// bytes here.
type FileRequest struct {
	ID             string
	RequesterEmail string
	Address        string
	Lang           string
	AccessHash     []byte
	InboxSealed    []byte
	DetailsSealed  []byte
	MaxSize        int64
	MaxFiles       int
	CreatedAt      time.Time
	ExpiresAt      time.Time
	DoneAt         *time.Time
	RevokedAt      *time.Time
	PurgedAt       *time.Time
	// TransferID is the transfer holding the upload, or "" before the
	// first upload.
	TransferID string
	// PhoneSealed is the person's mobile number (migration 0042), nil
	// without one. SMSState is what became of the SMS with the link
	// (SMSQueued, SMSSent, SMSFailed; "" without a number) and SMSAt when
	// it changed.
	PhoneSealed []byte
	SMSState    string
	SMSAt       *time.Time
}

// States of a file request's SMS.
const (
	SMSQueued = "queued"
	SMSSent   = "sent"
	SMSFailed = "failed"
)

const fileRequestCols = `id, requester_email, address, lang, access_hash, inbox_sealed, details_sealed,
	max_size, max_files, created_at, expires_at, done_at, revoked_at, purged_at, transfer_id,
	phone_sealed, sms_state, sms_at`

func scanFileRequest(row interface{ Scan(...any) error }) (*FileRequest, error) {
	var f FileRequest
	var created, expires int64
	var done, revoked, purged, smsAt sql.NullInt64
	var tid, smsState sql.NullString
	err := row.Scan(&f.ID, &f.RequesterEmail, &f.Address, &f.Lang, &f.AccessHash, &f.InboxSealed, &f.DetailsSealed,
		&f.MaxSize, &f.MaxFiles, &created, &expires, &done, &revoked, &purged, &tid,
		&f.PhoneSealed, &smsState, &smsAt)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	f.CreatedAt, f.ExpiresAt, f.TransferID = fromMS(created), fromMS(expires), tid.String
	f.DoneAt, f.RevokedAt, f.PurgedAt = fromNullMS(done), fromNullMS(revoked), fromNullMS(purged)
	f.SMSState, f.SMSAt = smsState.String, fromNullMS(smsAt)
	return &f, nil
}

// InsertFileRequest stores a new file request.
func (q Q) InsertFileRequest(ctx context.Context, f *FileRequest) error {
	_, err := q.q.ExecContext(ctx, `INSERT INTO file_requests (`+fileRequestCols+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		f.ID, f.RequesterEmail, f.Address, f.Lang, f.AccessHash, f.InboxSealed, f.DetailsSealed,
		f.MaxSize, f.MaxFiles, ms(f.CreatedAt), ms(f.ExpiresAt), msPtr(f.DoneAt), msPtr(f.RevokedAt), msPtr(f.PurgedAt),
		nullString(f.TransferID), f.PhoneSealed, nullString(f.SMSState), msPtr(f.SMSAt))
	return err
}

// FileRequest returns a file request by id. Returns ErrNotFound if there
// is none.
func (q Q) FileRequest(ctx context.Context, id string) (*FileRequest, error) {
	return scanFileRequest(q.q.QueryRowContext(ctx, `SELECT `+fileRequestCols+` FROM file_requests WHERE id = ?`, id))
}

// FileRequestForUpdate is FileRequest with the row locked until the
// transaction ends (FOR UPDATE; on SQLite the transaction holds the write
// lock already).
func (tx *Tx) FileRequestForUpdate(ctx context.Context, id string) (*FileRequest, error) {
	q := `SELECT ` + fileRequestCols + ` FROM file_requests WHERE id = ?`
	if tx.pg {
		q += ` FOR UPDATE`
	}
	return scanFileRequest(tx.q.QueryRowContext(ctx, q, id))
}

// FileRequestByAccess returns the file request whose link secret hashes
// to accessHash. Returns ErrNotFound if there is none (never issued, or
// purged).
func (q Q) FileRequestByAccess(ctx context.Context, accessHash []byte) (*FileRequest, error) {
	return scanFileRequest(q.q.QueryRowContext(ctx, `SELECT `+fileRequestCols+` FROM file_requests WHERE access_hash = ?`, accessHash))
}

// FileRequestByTransfer returns the file request whose upload transfer
// is transferID. Returns ErrNotFound if there is none.
func (q Q) FileRequestByTransfer(ctx context.Context, transferID string) (*FileRequest, error) {
	return scanFileRequest(q.q.QueryRowContext(ctx, `SELECT `+fileRequestCols+` FROM file_requests WHERE transfer_id = ?`, transferID))
}

// FileRequestsByRequester lists a requester's file requests, newest first.
func (q Q) FileRequestsByRequester(ctx context.Context, email string) ([]*FileRequest, error) {
	return scanAll(scanFileRequest)(q.q.QueryContext(ctx, `SELECT `+fileRequestCols+` FROM file_requests
		WHERE requester_email = ? ORDER BY created_at DESC, id`, email))
}

// CountFileRequestsSince counts the file requests a requester made at or
// after since (a rate limit).
func (q Q) CountFileRequestsSince(ctx context.Context, email string, since time.Time) (int, error) {
	var n int
	err := q.q.QueryRowContext(ctx, `SELECT count(*) FROM file_requests WHERE requester_email = ? AND created_at >= ?`, email, ms(since)).Scan(&n)
	return n, err
}

// SetFileRequestTransfer records the transfer that holds a request's
// upload. Returns ErrConflict if the request has one already.
func (q Q) SetFileRequestTransfer(ctx context.Context, id, transferID string) error {
	res, err := q.q.ExecContext(ctx, `UPDATE file_requests SET transfer_id = ? WHERE id = ? AND transfer_id IS NULL`, transferID, id)
	return affected(res, err, ErrConflict)
}

// SetFileRequestSMS records what became of a request's SMS: state (SMSSent
// or SMSFailed) at at. Only a queued SMS changes, so a late report cannot
// undo a final one. Returns ErrNotFound if the request has no queued SMS.
func (q Q) SetFileRequestSMS(ctx context.Context, id, state string, at time.Time) error {
	res, err := q.q.ExecContext(ctx, `UPDATE file_requests SET sms_state = ?, sms_at = ? WHERE id = ? AND sms_state = ?`,
		state, ms(at), id, SMSQueued)
	return affected(res, err, ErrNotFound)
}

// FileRequestDone marks an open request done (its upload was sent).
// Returns ErrConflict if it is done, revoked or purged already.
func (q Q) FileRequestDone(ctx context.Context, id string, now time.Time) error {
	res, err := q.q.ExecContext(ctx, `UPDATE file_requests SET done_at = ?
		WHERE id = ? AND done_at IS NULL AND revoked_at IS NULL AND purged_at IS NULL`, ms(now), id)
	return affected(res, err, ErrConflict)
}

// DeadlineDue is a request whose deadline passed while its upload was
// never sent: the request and the draft transfer that holds the upload.
type DeadlineDue struct {
	RequestID, TransferID string
}

// FileRequestsDueAtDeadline lists up to limit requests whose deadline is
// at or before now, that are neither done, revoked nor purged, and whose
// upload is a draft that is neither revoked nor purged: Finish sends them
// at the deadline. Those whose deadline passed longest ago come first.
func (q Q) FileRequestsDueAtDeadline(ctx context.Context, now time.Time, limit int) ([]DeadlineDue, error) {
	rows, err := q.q.QueryContext(ctx, `SELECT r.id, r.transfer_id FROM file_requests r JOIN transfers t ON t.id = r.transfer_id
		WHERE r.expires_at <= ? AND r.done_at IS NULL AND r.revoked_at IS NULL AND r.purged_at IS NULL
		AND t.state IN ('draft', 'uploading') AND t.revoked_at IS NULL AND t.purged_at IS NULL
		ORDER BY r.expires_at, r.id LIMIT ?`, ms(now), limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []DeadlineDue
	for rows.Next() {
		var d DeadlineDue
		if err := rows.Scan(&d.RequestID, &d.TransferID); err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

// RevokeFileRequest marks a request revoked and forgets its link and
// message at once. Returns ErrConflict if it is revoked or purged already.
func (q Q) RevokeFileRequest(ctx context.Context, id string, now time.Time) error {
	res, err := q.q.ExecContext(ctx, `UPDATE file_requests SET revoked_at = ?, access_hash = NULL, details_sealed = NULL
		WHERE id = ? AND revoked_at IS NULL AND purged_at IS NULL`, ms(now), id)
	return affected(res, err, ErrConflict)
}

// PurgeFileRequests empties the message and inbox recipient of every
// request that expired at now or was revoked, and marks it purged; the
// minimal record (ids, addresses, dates, what became of the SMS) stays;
// the mobile number goes. The link's hash goes too,
// except for a request that was sent (and not revoked): its link keeps
// showing the person that their files were sent, until the retention
// deletes the record. Returns how many it purged.
func (q Q) PurgeFileRequests(ctx context.Context, now time.Time) (int64, error) {
	res, err := q.q.ExecContext(ctx, `UPDATE file_requests SET
		access_hash = CASE WHEN done_at IS NOT NULL AND revoked_at IS NULL THEN access_hash ELSE NULL END,
		details_sealed = NULL, inbox_sealed = NULL, phone_sealed = NULL, purged_at = ?
		WHERE purged_at IS NULL AND (expires_at <= ? OR revoked_at IS NOT NULL)`, ms(now), ms(now))
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// DeleteRetiredFileRequests deletes the minimal records of requests that
// expired before before. Returns how many.
func (q Q) DeleteRetiredFileRequests(ctx context.Context, before time.Time) (int64, error) {
	res, err := q.q.ExecContext(ctx, `DELETE FROM file_requests WHERE purged_at IS NOT NULL AND expires_at < ?`, ms(before))
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// SetTransferPrivate replaces the options and the sealed private part (the
// message) of a transfer that is not finished yet. Returns ErrConflict if
// it is finished, revoked or purged.
func (q Q) SetTransferPrivate(ctx context.Context, id, options string, privateSealed []byte) error {
	res, err := q.q.ExecContext(ctx, `UPDATE transfers SET options = ?, private_sealed = ?
		WHERE id = ? AND state IN ('draft', 'uploading')`, options, privateSealed, id)
	return affected(res, err, ErrConflict)
}
