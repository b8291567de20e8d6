// Package audit keeps Kluis's audit log: one row per security-relevant
// event, with who did it (actor), what (action), to which object, with
// what result, from which IP address, and when (UTC, millisecond).
//
// # What an entry holds
//
// Actors are "sender:<address>", "apikey:<key id>", "upload_token" (the
// holder of a transfer's upload token), "recipient:<recipient id>",
// "break-glass:<os user>@<host>" (kluis admin on the server), "admin"
// (entries from before the break-glass actor) or "system". Role says in
// which role the actor acted ("break-glass-admin"; the SSO roles set it
// with WithRole, like WithActor) and Reason why (kluis admin --reason,
// WithReason). Objects are ids: a transfer id, an API key id. The
// detail is short and made by the code, never from free user text. No
// entry ever holds a secret, code, password, link secret, access id,
// token, URL or file name; recipient addresses are referred to by their
// recipient id only.
//
// Values are cleaned before they are stored: control characters (CR, LF,
// …) are replaced by U+FFFD and lengths are bounded, so user input cannot
// forge an entry or a line in an export.
//
// # Transactions
//
// Record takes the store.Q to write with: pass tx.Q to write the entry in
// the same transaction as the change it records (both commit or neither),
// or db.Q for events that change nothing else (a wrong password).
//
// # Export
//
// Export writes the entries since a time as CSV (RFC 4180, a header row,
// values that start with = + - @ TAB or CR prefixed with ' against CSV
// injection in spreadsheets) or as JSON Lines (one JSON object per line,
// so an export of any size streams and each line parses on its own).
//
// # Chain
//
// The entries form one SHA-256 hash chain (store.AuditHash): changing,
// deleting, inserting or reordering an entry in the database breaks it,
// and Verify (kluis admin audit verify) names the first broken entry.
//
// # Retention
//
// Prune removes the oldest entries once they are older than the
// configured retention (default one year), behind a checkpoint that keeps
// the rest verifiable; the engine's purge round calls it. Nothing else
// deletes entries, and the database refuses it (triggers).
package audit

import (
	"context"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/kluis-nl/kluis/internal/clientip"
	"github.com/kluis-nl/kluis/internal/store"
)

// DefaultRetention is how long entries are kept by default.
const DefaultRetention = 365 * 24 * time.Hour

// Actions. Keep the list in docs/security.md in step.
const (
	TransferCreate      = "transfer.create"
	TransferFinish      = "transfer.finish"
	TransferRevoke      = "transfer.revoke"
	TransferExtend      = "transfer.extend"
	TransferReply       = "transfer.reply" // a recipient answered a transfer
	TransferPurge       = "transfer.purge"
	TransferRetire      = "transfer.retire" // minimal records deleted after retention
	TransferErase       = "transfer.erase"
	FileComplete        = "upload.file_complete"
	FileScan            = "upload.file_scan" // a file's malware scan ended (ok) or refused the file
	RecipientUnlock     = "recipient.unlock"
	RecipientUnlockFail = "recipient.unlock_failed"
	RecipientLocked     = "recipient.locked"
	RecipientLockLifted = "recipient.lock_lifted" // the sender unblocked a recipient's access
	RecipientSMS        = "recipient.sms_code"    // a code was sent by SMS (or refused by a cap)
	FileDownload        = "file.download"
	ZipDownload         = "zip.download"
	VerifyStart         = "sender.verify_start"
	VerifyOK            = "sender.verify_ok"
	VerifyFailed        = "sender.verify_failed"
	SenderLogout        = "sender.logout"
	InboxCreate         = "inbox.create"     // a sender set an inbox passphrase (a new inbox key)
	InboxUnlock         = "inbox.unlock"     // a session unlocked (or failed to unlock) the sender's inbox
	InboxPassphrase     = "inbox.passphrase" // a sender changed their inbox passphrase (the same inbox key, wrapped anew)
	RequestCreate       = "request.create"   // a staff member asked someone for files (or was refused by the daily limit)
	RequestRevoke       = "request.revoke"   // the requester withdrew a file request
	RequestOpen         = "request.open"     // the requester opened what was sent with their unlocked inbox
	TeamAdd             = "team.add"         // an administrator added a member to a drop-off team
	TeamRemove          = "team.remove"      // an administrator removed a member (the team key is renewed)
	TeamRekey           = "team.rekey"       // a new team key: new uploads are encrypted to it
	TeamWrap            = "team.wrap"        // a member's session wrapped the team key for a member who was waiting
	DropoffOpen         = "dropoff.open"     // a team member opened what a citizen sent to a drop-off point
	APIKeyCreate        = "apikey.create"
	APIKeyRevoke        = "apikey.revoke"
	APIKeyExpire        = "apikey.expire"
	MasterKeyRotate     = "admin.rotate_master_key"
	IdentityExport      = "admin.export_identity" // a transfer's age identity unwrapped for recovery
	AuditExport         = "admin.audit_export"
)

// Results.
const (
	OK            = "ok"
	Refused       = "refused"
	WrongPassword = "wrong_password"
	WrongCode     = "wrong_code"
	Locked        = "locked"
	Aborted       = "aborted" // a download answer that broke off
	Pending       = "pending" // the password was right; the second factor is due
)

// Actors that are not a person.
const (
	Admin       = "admin"
	System      = "system"
	UploadToken = "upload_token"
)

// Sender is the actor of a verified sender.
func Sender(email string) string { return "sender:" + email }

// APIKey is the actor of a script using an API key.
func APIKey(id string) string { return "apikey:" + id }

// Recipient is the actor of a recipient (by id, not address).
func Recipient(id int64) string { return "recipient:" + strconv.FormatInt(id, 10) }

// Event is one audit entry.
type Event struct {
	Actor  string // empty: the actor in the context (WithActor), else "system"
	Action string
	Object string
	Result string // empty: "ok"
	IP     string // empty: the client address in the context (clientip)
	Detail string // short, made by the code; never secret
	Role   string // empty: the role in the context (WithRole)
	Reason string // empty: the reason in the context (WithReason)
	At     time.Time
}

type (
	actorKey  struct{}
	roleKey   struct{}
	reasonKey struct{}
)

// Roles of an actor that are not a sender's. SSO roles (administrator,
// auditor, helpdesk) are set with WithRole the same way.
const BreakGlassRole = "break-glass-admin"

// BreakGlass is the actor of the local administrator: kluis admin run on
// the server by an operating system user, outside any sign-in.
func BreakGlass(osUser, host string) string { return "break-glass:" + osUser + "@" + host }

// WithRole returns ctx carrying the role the actor acts in.
func WithRole(ctx context.Context, role string) context.Context {
	return context.WithValue(ctx, roleKey{}, role)
}

// WithReason returns ctx carrying why an administrator acts (kluis admin
// --reason).
func WithReason(ctx context.Context, reason string) context.Context {
	return context.WithValue(ctx, reasonKey{}, reason)
}

// Reason returns the reason carried by ctx (WithReason), or "".
func Reason(ctx context.Context) string {
	r, _ := ctx.Value(reasonKey{}).(string)
	return r
}

// WithActor returns ctx carrying the authenticated actor of a request.
func WithActor(ctx context.Context, actor string) context.Context {
	return context.WithValue(ctx, actorKey{}, actor)
}

// Actor returns the actor carried by ctx, or "".
func Actor(ctx context.Context) string {
	a, _ := ctx.Value(actorKey{}).(string)
	return a
}

// Recorder writes and exports the audit log. A nil *Recorder records
// nothing, so services can leave it unset.
type Recorder struct {
	db        *store.DB
	retention time.Duration
	now       func() time.Time
	log       *slog.Logger
}

// New returns a recorder. retention <= 0 means DefaultRetention; now and
// log may be nil.
func New(db *store.DB, retention time.Duration, now func() time.Time, log *slog.Logger) *Recorder {
	if retention <= 0 {
		retention = DefaultRetention
	}
	if now == nil {
		now = time.Now
	}
	if log == nil {
		log = slog.Default()
	}
	return &Recorder{db: db, retention: retention, now: now, log: log}
}

// Retention returns how long entries are kept.
func (r *Recorder) Retention() time.Duration {
	if r == nil {
		return 0
	}
	return r.retention
}

// Field limits, in bytes.
const (
	maxActor  = 300
	maxShort  = 64
	maxObject = 128
	maxDetail = 300
)

// Record writes e with q. Pass tx.Q to write in the caller's transaction.
// A nil recorder does nothing.
func (r *Recorder) Record(ctx context.Context, q store.Q, e Event) error {
	if r == nil {
		return nil
	}
	row := r.row(ctx, e)
	if row.Action == "" {
		return errors.New("audit: event without action")
	}
	return q.InsertAudit(ctx, row)
}

// RecordAll is Record for many events, written in a few statements (the
// purge's one entry per transfer).
func (r *Recorder) RecordAll(ctx context.Context, q store.Q, es []Event) error {
	if r == nil {
		return nil
	}
	rows := make([]*store.AuditRow, len(es))
	for i, e := range es {
		rows[i] = r.row(ctx, e)
		if rows[i].Action == "" {
			return errors.New("audit: event without action")
		}
	}
	return q.InsertAudits(ctx, rows)
}

// Log writes e outside any transaction (db.Q); a failure is logged, not
// returned, for events whose request must not fail because of it.
func (r *Recorder) Log(ctx context.Context, e Event) {
	if r == nil {
		return
	}
	if err := r.Record(context.WithoutCancel(ctx), r.db.Q, e); err != nil {
		r.log.Error("audit entry not written", "action", clean(e.Action, maxShort), "err", err)
	}
}

func (r *Recorder) row(ctx context.Context, e Event) *store.AuditRow {
	if e.At.IsZero() {
		e.At = r.now()
	}
	if e.Actor == "" {
		e.Actor = Actor(ctx)
	}
	if e.Actor == "" {
		e.Actor = System
	}
	if ip, ok := clientip.FromContext(ctx); ok && e.IP == "" {
		e.IP = ip.String()
	}
	if e.Result == "" {
		e.Result = OK
	}
	if e.Role == "" {
		e.Role, _ = ctx.Value(roleKey{}).(string)
	}
	if e.Reason == "" {
		e.Reason, _ = ctx.Value(reasonKey{}).(string)
	}
	return &store.AuditRow{
		At:     e.At.UTC(),
		Actor:  clean(e.Actor, maxActor),
		Action: clean(e.Action, maxShort),
		Object: clean(e.Object, maxObject),
		Result: clean(e.Result, maxShort),
		IP:     clean(e.IP, maxShort),
		Detail: clean(e.Detail, maxDetail),
		Role:   clean(e.Role, maxShort),
		Reason: clean(e.Reason, maxDetail),
	}
}

// clean makes v valid UTF-8 without control characters (each becomes
// U+FFFD) and at most max bytes.
func clean(v string, max int) string {
	v = strings.ToValidUTF8(v, "\uFFFD")
	v = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' {
			return '\uFFFD'
		}
		return r
	}, v)
	for len(v) > max {
		_, size := utf8.DecodeLastRuneInString(v)
		v = v[:len(v)-size]
	}
	return v
}

// Prune deletes entries older than the retention, counted back from now.
// Returns how many it deleted.
func (r *Recorder) Prune(ctx context.Context, now time.Time) (int64, error) {
	if r == nil {
		return 0, nil
	}
	return r.db.PruneAudit(ctx, now.Add(-r.retention))
}

// Verify walks the chain (see store.VerifyAudit).
func (r *Recorder) Verify(ctx context.Context) (*store.AuditVerdict, error) {
	if r == nil {
		return nil, errors.New("audit: no audit log")
	}
	return r.db.VerifyAudit(ctx)
}

// Formats of Export.
const (
	CSV  = "csv"
	JSON = "json"
)

// Header is the CSV header row, and the JSON field names.
var Header = []string{"id", "at", "actor", "action", "object", "result", "ip", "detail", "role", "reason", "prev_hash", "hash"}

// Entry is one exported entry (the JSON Lines form).
type Entry struct {
	ID     int64     `json:"id"`
	At     time.Time `json:"at"`
	Actor  string    `json:"actor"`
	Action string    `json:"action"`
	Object string    `json:"object"`
	Result string    `json:"result"`
	IP     string    `json:"ip"`
	Detail string    `json:"detail"`
	Role   string    `json:"role"`
	Reason string    `json:"reason"`
	// The chain (hex SHA-256; see store.AuditHash and kluis admin audit verify).
	PrevHash string `json:"prev_hash"`
	Hash     string `json:"hash"`
}

// Export writes every entry at or after since, oldest first, in format
// "csv" or "json" (JSON Lines). Times are UTC, RFC 3339 with milliseconds.
func (r *Recorder) Export(ctx context.Context, since time.Time, format string, w io.Writer) error {
	if r == nil {
		return errors.New("audit: no audit log")
	}
	write, flush, err := entryWriter(format, w)
	if err != nil {
		return err
	}
	if err := r.db.AuditSince(ctx, since, write); err != nil {
		return err
	}
	return flush()
}

// exportBatch is the entries ExportFiltered reads at a time.
const exportBatch = 500

// ExportFiltered writes the entries matching f (the admin console's
// filters), newest first, in format "csv" or "json", as Export does. It
// reads them in batches through the same indexes as the console's list.
func (r *Recorder) ExportFiltered(ctx context.Context, f store.AuditFilter, format string, w io.Writer) error {
	if r == nil {
		return errors.New("audit: no audit log")
	}
	write, flush, err := entryWriter(format, w)
	if err != nil {
		return err
	}
	for {
		rows, err := r.db.SearchAudit(ctx, f, exportBatch)
		if err != nil {
			return err
		}
		for _, a := range rows {
			if err := write(a); err != nil {
				return err
			}
		}
		if len(rows) < exportBatch {
			return flush()
		}
		f.BeforeID = rows[len(rows)-1].ID
	}
}

// entryWriter returns what writes one entry in format, and what ends the
// file.
func entryWriter(format string, w io.Writer) (func(*store.AuditRow) error, func() error, error) {
	switch format {
	case CSV:
		cw := csv.NewWriter(w)
		if err := cw.Write(Header); err != nil {
			return nil, nil, err
		}
		return func(a *store.AuditRow) error {
				return cw.Write([]string{
					strconv.FormatInt(a.ID, 10), formatTime(a.At),
					CSVSafe(a.Actor), CSVSafe(a.Action), CSVSafe(a.Object), CSVSafe(a.Result), CSVSafe(a.IP), CSVSafe(a.Detail),
					CSVSafe(a.Role), CSVSafe(a.Reason), hex.EncodeToString(a.PrevHash), hex.EncodeToString(a.Hash),
				})
			}, func() error {
				cw.Flush()
				return cw.Error()
			}, nil
	case JSON:
		enc := json.NewEncoder(w)
		return func(a *store.AuditRow) error {
			return enc.Encode(Entry{ID: a.ID, At: a.At.UTC().Truncate(time.Millisecond), Actor: a.Actor, Action: a.Action,
				Object: a.Object, Result: a.Result, IP: a.IP, Detail: a.Detail, Role: a.Role, Reason: a.Reason,
				PrevHash: hex.EncodeToString(a.PrevHash), Hash: hex.EncodeToString(a.Hash)})
		}, func() error { return nil }, nil
	}
	return nil, nil, fmt.Errorf("audit: unknown export format %q: choose csv or json", format)
}

func formatTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z07:00") }

// CSVSafe defuses a value a spreadsheet would take for a formula: one that
// starts with = + - @, a tab or a carriage return gets a leading '.
func CSVSafe(v string) string {
	if v != "" && strings.ContainsRune("=+-@\t\r", rune(v[0])) {
		return "'" + v
	}
	return v
}
