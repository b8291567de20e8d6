package store

import (
	"context"
	"fmt"
	"math"
	"strings"
	"time"
)

// Searches of the admin console (issue 19). They read metadata only: no
// sealed column is returned, so nothing here can show a name, subject,
// message or file name.

// AuditFilter narrows an audit search; empty fields match anything.
type AuditFilter struct {
	// Actor matches exactly, or as a prefix when it ends in ':' (e.g.
	// "sender:" for every sender, "recipient:" for every recipient).
	Actor  string
	Action string
	Object string
	Result string
	// From and To bound the time (To exclusive); zero: unbounded.
	From, To time.Time
	// BeforeID pages: only entries with a smaller id (0: the newest).
	BeforeID int64
}

// SearchAudit returns up to limit entries matching f, newest first.
func (q Q) SearchAudit(ctx context.Context, f AuditFilter, limit int) ([]*AuditRow, error) {
	where, args := []string{"id < ?"}, []any{int64(math.MaxInt64)}
	if f.BeforeID > 0 {
		args[0] = f.BeforeID
	}
	switch {
	case strings.HasSuffix(f.Actor, ":"):
		// A range on the index instead of LIKE (whose escaping and
		// case rules differ between the databases).
		where = append(where, "actor >= ? AND actor < ?")
		args = append(args, f.Actor, f.Actor[:len(f.Actor)-1]+";")
	case f.Actor != "":
		where = append(where, "actor = ?")
		args = append(args, f.Actor)
	}
	for _, c := range []struct{ col, v string }{{"action", f.Action}, {"object", f.Object}, {"result", f.Result}} {
		if c.v != "" {
			where = append(where, c.col+" = ?")
			args = append(args, c.v)
		}
	}
	if !f.From.IsZero() {
		where = append(where, "at >= ?")
		args = append(args, ms(f.From))
	}
	if !f.To.IsZero() {
		where = append(where, "at < ?")
		args = append(args, ms(f.To))
	}
	args = append(args, limit)
	rows, err := q.q.QueryContext(ctx, `SELECT `+auditColumns+` FROM audit WHERE `+strings.Join(where, " AND ")+` ORDER BY id DESC LIMIT ?`, args...)
	if err != nil {
		return nil, fmt.Errorf("search audit: %w", err)
	}
	var out []*AuditRow
	err = eachAudit(rows, func(a *AuditRow) error { out = append(out, a); return nil })
	return out, err
}

// TransferFilter narrows the admin console's transfer search; empty
// fields match anything.
type TransferFilter struct {
	ID        string
	Sender    string // the sender's address, any case
	Recipient string // a recipient's address, any case
	State     string // draft, uploading, scanning, ready, failed; or revoked, purged
	From, To  time.Time
	// Before and BeforeID page, as TransfersBySenderPage.
	Before   time.Time
	BeforeID string
}

// AdminTransfer is a transfer's metadata as the console lists it.
type AdminTransfer struct {
	ID          string
	State       string
	Sender      string
	CreatedAt   time.Time
	ExpiresAt   time.Time
	RevokedAt   *time.Time
	PurgedAt    *time.Time
	Recipients  int
	Files       int
	IsReply     bool
	PasswordMod string
}

// SearchTransfers returns up to limit transfers matching f, newest first.
func (q Q) SearchTransfers(ctx context.Context, f TransferFilter, limit int) ([]*AdminTransfer, error) {
	at := int64(math.MaxInt64)
	if !f.Before.IsZero() {
		at = ms(f.Before)
	}
	where, args := []string{"(t.created_at, t.id) < (?, ?)"}, []any{at, f.BeforeID}
	if f.BeforeID == "" && f.Before.IsZero() {
		where[0], args = "t.created_at < ?", []any{at}
	}
	if f.ID != "" {
		where = append(where, "t.id = ?")
		args = append(args, f.ID)
	}
	if f.Sender != "" {
		where = append(where, "lower(t.sender_email) = ?")
		args = append(args, strings.ToLower(f.Sender))
	}
	if f.Recipient != "" {
		where = append(where, "t.id IN (SELECT transfer_id FROM recipients WHERE lower(address) = ?)")
		args = append(args, strings.ToLower(f.Recipient))
	}
	switch f.State {
	case "":
	case "revoked":
		where = append(where, "t.revoked_at IS NOT NULL AND t.purged_at IS NULL")
	case "purged":
		where = append(where, "t.purged_at IS NOT NULL")
	default:
		where = append(where, "t.state = ? AND t.revoked_at IS NULL AND t.purged_at IS NULL")
		args = append(args, f.State)
	}
	if !f.From.IsZero() {
		where = append(where, "t.created_at >= ?")
		args = append(args, ms(f.From))
	}
	if !f.To.IsZero() {
		where = append(where, "t.created_at < ?")
		args = append(args, ms(f.To))
	}
	args = append(args, limit)
	rows, err := q.q.QueryContext(ctx, `SELECT t.id, t.state, t.sender_email, t.created_at, t.expires_at, t.revoked_at, t.purged_at,
		t.reply_to IS NOT NULL, t.password_mode,
		(SELECT COUNT(*) FROM recipients r WHERE r.transfer_id = t.id),
		(SELECT COUNT(*) FROM files f WHERE f.transfer_id = t.id)
		FROM transfers t WHERE `+strings.Join(where, " AND ")+` ORDER BY t.created_at DESC, t.id DESC LIMIT ?`, args...)
	if err != nil {
		return nil, fmt.Errorf("search transfers: %w", err)
	}
	defer rows.Close()
	var out []*AdminTransfer
	for rows.Next() {
		var t AdminTransfer
		var created, expires int64
		var revoked, purged *int64
		if err := rows.Scan(&t.ID, &t.State, &t.Sender, &created, &expires, &revoked, &purged, &t.IsReply, &t.PasswordMod,
			&t.Recipients, &t.Files); err != nil {
			return nil, fmt.Errorf("search transfers: %w", err)
		}
		t.CreatedAt, t.ExpiresAt = fromMS(created), fromMS(expires)
		if revoked != nil {
			v := fromMS(*revoked)
			t.RevokedAt = &v
		}
		if purged != nil {
			v := fromMS(*purged)
			t.PurgedAt = &v
		}
		out = append(out, &t)
	}
	return out, rows.Err()
}
