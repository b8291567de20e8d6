// Package kluis holds the domain of Kluis: transfers, recipients, files and
// the application error type that every layer speaks.
//
// The adapters live under internal/ and are named after what they do or the
// technology they wrap (store, blob/local, segment, secret, api for HTTP
// and tus).
// Wiring happens in cmd/kluis.
package kluis

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// State is the lifecycle state of a transfer.
//
//	draft ──upload──▶ uploading ──finish──▶ ready ──time──▶ expired ─┐
//	  └─────────────────────┴──────revoke──────┴─────────▶ revoked ─┴─purge─▶ purged
//
// When the malware scanner cannot be reached at finish (fail-closed), the
// transfer waits in scanning ("being checked") until a retry scans it
// (ready) or a file is refused or the wait ends (failed; purged like a
// revoked transfer).
//
// expired and revoked transfers are refused on every request at once, before
// the purge has run; purged transfers keep only a minimal record until the
// retention period ends.
type State string

const (
	StateDraft     State = "draft"
	StateUploading State = "uploading"
	StateReady     State = "ready"
	StateExpired   State = "expired"
	StateRevoked   State = "revoked"
	StatePurged    State = "purged"
	StateScanning  State = "scanning"
	StateFailed    State = "failed"
)

// PasswordMode says how the transfer secret is chosen.
type PasswordMode string

const (
	PasswordNone     PasswordMode = "none"
	PasswordGenerate PasswordMode = "generate"
	PasswordManual   PasswordMode = "manual"
	// PasswordInbox: no password; the transfer's identity is encrypted
	// to its recipient's inbox key (a file request's upload, issue 17).
	// Only the server makes such transfers; Valid refuses the mode.
	PasswordInbox PasswordMode = "inbox"
)

// Valid reports whether m is one of the known modes.
func (m PasswordMode) Valid() bool {
	return m == PasswordNone || m == PasswordGenerate || m == PasswordManual
}

// AuthMethod is how a recipient proves who they are. A second factor
// always comes on top of the transfer password, which stays the key.
type AuthMethod string

const (
	AuthPassword    AuthMethod = "password"     // the password only: the lower level
	AuthPasswordSMS AuthMethod = "password+sms" // the password, then a code by SMS
	// AuthPasswordLogin: the password, then a login with an OpenID
	// provider of the policy whose claim matches what the sender gave.
	AuthPasswordLogin AuthMethod = "password+login"
)

// Valid reports whether m is one of the known methods.
func (m AuthMethod) Valid() bool {
	return m == AuthPassword || m == AuthPasswordSMS || m == AuthPasswordLogin
}

// Level orders the methods by strength: a method meets a minimum when its
// level is at least the minimum's.
func (m AuthMethod) Level() int {
	if m == AuthPasswordSMS || m == AuthPasswordLogin {
		return 2
	}
	return 1
}

// RecipientKind is To, Cc or Bcc.
type RecipientKind string

const (
	KindTo  RecipientKind = "to"
	KindCc  RecipientKind = "cc"
	KindBcc RecipientKind = "bcc"
)

// Transfer is the plaintext view of a transfer that the engine hands to
// callers. Sensitive fields (file names, sizes, message, notification text)
// are stored encrypted and only appear here after an unlock.
type Transfer struct {
	ID           string
	State        State
	CreatedAt    time.Time
	ExpiresAt    time.Time
	FinishedAt   *time.Time
	RevokedAt    *time.Time
	PurgedAt     *time.Time
	SenderEmail  string
	SenderName   string
	SenderPhone  string
	Lang         string
	PasswordMode PasswordMode
	Options      Options
	Recipients   []Recipient
}

// EffectiveState applies the clock: a ready or uploading transfer past its
// expiry is expired, whatever the stored state says (the purge may not have
// run yet).
func (t *Transfer) EffectiveState(now time.Time) State {
	switch t.State {
	case StatePurged, StateRevoked, StateExpired, StateFailed:
		return t.State
	}
	if !now.Before(t.ExpiresAt) {
		return StateExpired
	}
	return t.State
}

// Options are the sender's choices for notifications.
type Options struct {
	Confirm bool `json:"confirm"`
	// NotifyDownload asks for download notices in the default mode
	// (NotifyFirst); Notify, when set, says which mode and wins.
	NotifyDownload bool       `json:"notify_download"`
	Notify         NotifyMode `json:"notify,omitempty"`
	ShowFilenames  bool       `json:"show_filenames"`
	// RemindExpiry mails the sender a day before expiry while recipients
	// have not downloaded anything yet.
	RemindExpiry bool `json:"remind_expiry"`
	// SpecialData marks a transfer as containing special personal data
	// (AVG art. 9 and 10, BSN, medical data): the policy may then ask a
	// stronger recipient verification (policy.AuthLimits).
	SpecialData bool `json:"special_data"`
}

// NotifyMode says when the sender hears of downloads (issue 13, item 10).
type NotifyMode string

const (
	// NotifyNone sends no download notices.
	NotifyNone NotifyMode = "none"
	// NotifyFirst sends one notice per recipient, at the first file that
	// recipient has downloaded completely: the default, because one mail
	// per file flooded senders of many files.
	NotifyFirst NotifyMode = "first"
	// NotifyEach sends a notice each time a file counts as downloaded by a
	// recipient for the first time (a ZIP of every file is one notice).
	NotifyEach NotifyMode = "each"
	// NotifySummary sends no notice at downloads but one summary of every
	// recipient's downloads when the transfer expires or is revoked
	// (Cryptshare's download summary).
	NotifySummary NotifyMode = "summary"
)

// NotifyModes lists the modes in the order forms show them.
func NotifyModes() []NotifyMode {
	return []NotifyMode{NotifyNone, NotifyFirst, NotifyEach, NotifySummary}
}

// ParseNotifyMode reads a mode as a person or a form may write it ("Each",
// " summary "). ok is false for anything else.
func ParseNotifyMode(s string) (m NotifyMode, ok bool) {
	m = NotifyMode(strings.ToLower(strings.TrimSpace(s)))
	return m, slices.Contains(NotifyModes(), m)
}

// NotifyMode is the download-notice mode these options ask for: Notify when
// set, else NotifyFirst with NotifyDownload and NotifyNone without. An
// unknown Notify is returned as it is (Validate refuses it).
func (o Options) NotifyMode() NotifyMode {
	switch {
	case o.Notify != "":
		return o.Notify
	case o.NotifyDownload:
		return NotifyFirst
	}
	return NotifyNone
}

// Recipient is one addressee. Each has an own access id (only its hash is
// stored), so opening, lock-out and revocation are per recipient.
type Recipient struct {
	ID          int64
	TransferID  string
	Kind        RecipientKind
	Address     string
	NotifiedAt  *time.Time
	OpenedAt    *time.Time
	RevokedAt   *time.Time
	LockedUntil *time.Time
	// HeldAt is set while the access stays locked until the sender
	// unblocks it (too many wrong attempts in all).
	HeldAt    *time.Time
	Failures  int
	Downloads []Download
	// AuthMethod is how the recipient proves who they are; Phone the
	// masked mobile number of the SMS code (never the whole number);
	// VerifiedAt the last time the second factor was passed.
	AuthMethod AuthMethod
	Phone      string
	VerifiedAt *time.Time
	// Login is the OpenID provider of a password+login recipient and
	// LoginValue the masked claim value its login must show.
	Login, LoginValue string
}

// Download is one completed download by a recipient.
type Download struct {
	FileIndex int    // 0-based; -1 for all files as one archive
	Name      string // only when the sender chose to show file names
	At        time.Time
}

// File is the plaintext metadata of one file of a transfer.
type File struct {
	ID          string `json:"id"`
	Index       int    `json:"index"`
	Name        string `json:"name"`
	ContentType string `json:"content_type"`
	Size        int64  `json:"size"`
	SHA256      string `json:"sha256,omitempty"`
	Complete    bool   `json:"complete"`
}

// Code is a stable, machine-readable error code. The API maps each code to
// an HTTP status in one place.
type Code string

const (
	ECONFLICT        Code = "conflict"       // state does not allow this
	EINTERNAL        Code = "internal"       // our fault; details are logged, not shown
	EINVALID         Code = "invalid"        // bad input; Message says what to fix
	ENOTFOUND        Code = "not_found"      // unknown id
	EUNAUTHORIZED    Code = "unauthorized"   // missing or bad credentials
	EFORBIDDEN       Code = "forbidden"      // known caller, not allowed
	EWRONGSECRET     Code = "wrong_password" // wrong password or link secret
	ELOCKED          Code = "locked"         // too many wrong passwords
	EEXPIRED         Code = "expired"        // transfer expired
	EREVOKED         Code = "revoked"        // transfer or recipient revoked
	ETOOLARGE        Code = "too_large"      // size limit exceeded
	ENOSPACE         Code = "insufficient_storage"
	EUNAVAILABLE     Code = "unavailable"       // shutting down or busy; retry
	EINTEGRITY       Code = "integrity"         // stored data failed authentication
	ETOOMANY         Code = "too_many_segments" // client sent too many tiny requests
	ETOOMANYREQUESTS Code = "rate_limited"      // slow down; RetryAfter says how long
	EPOLICY          Code = "policy"            // refused by the organisation's policy; Message names address and rule
	EQUOTA           Code = "quota_exceeded"    // a sender's or recipient's quota is used up; RetryAfter says when, if waiting helps
	EINFECTED        Code = "infected"          // the malware scan found something in a file; that file was removed
	EUNSCANNABLE     Code = "too_large_to_scan" // a file is larger than the malware scanner takes, and policy refuses such files; it was removed
	ESCANPENDING     Code = "scan_pending"      // the malware scanner could not be reached; nothing was sent, retry after RetryAfter
)

// Error is the application error. Message is safe to show to users; the
// wrapped error (if any) is for logs only.
type Error struct {
	Code    Code
	Message string
	// At carries a date for expired/revoked errors so clients can say when.
	At *time.Time
	// RetryAfter, for rate_limited and unavailable (and quota_exceeded,
	// when waiting helps), says when to try again.
	RetryAfter time.Duration
	// Fields, for invalid and policy, are the problems field by field
	// (see Invalid); pages and the API show each in the reader's language.
	Fields []FieldError
	// File, for infected and too_large_to_scan, is the number (from 1, in
	// upload order) of the file the malware scan refused; Finding is the
	// scanner's name for what it found (infected only). Pages name the
	// file with them in the reader's language.
	File    int
	Finding string
	Err     error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.Err)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an application error with a user-facing message.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of err, EINTERNAL for any error that is not
// an *Error.
func ErrorCode(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return EINTERNAL
}

// ErrorMessage returns the user-facing message of err; internal errors get
// a generic text so their details never reach a client.
func ErrorMessage(err error) string {
	var e *Error
	if errors.As(err, &e) && e.Code != EINTERNAL {
		return e.Message
	}
	return "Something went wrong on our side. Please try again later."
}
