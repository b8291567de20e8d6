// Package mail renders Kluis's mails: the verification code, the notification
// to each recipient, the sender's confirmation, the download and lock-out
// notices, the revocation notice and the expiry reminder. Every mail exists in
// every language of package locale, as HTML and plain text, with the
// organisation's name and logo. Each kind has one template per part
// (templates/<kind>.html and .txt, with the layout) whose texts all come
// from the catalogs (keys mail.<kind>.… and mail.common.…); the HTML part
// carries the language and its writing direction.
//
// The package only renders; sending (SMTP, the development mailbox, the
// outbox) lives elsewhere. It is built so that a mail can only contain what
// the caller passes: the data structs have no field for a transfer password
// or the confidential message, and a file is named only when the caller sets
// FileRef.Name (that is, when the sender chose to show file names).
//
// Header safety: Render accepts only one bare address as recipient and makes
// the subject one line without control characters, whatever the sender typed.
package mail

import (
	"errors"
	"fmt"
	"net/mail"
	"net/url"
	"strings"
	"time"
	"unicode"

	"github.com/kluis-nl/kluis"
	"github.com/kluis-nl/kluis/internal/locale"
)

// Kind names a mail.
type Kind string

// The kinds of mail Kluis sends.
const (
	KindVerifyCode     Kind = "verify_code"      // to a sender: the one-time code
	KindNotify         Kind = "notify"           // to each recipient: the link
	KindConfirm        Kind = "confirm"          // to the sender: summary of the transfer
	KindDownload       Kind = "download"         // to the sender: a recipient downloaded
	KindLockout        Kind = "lockout"          // to the sender: too many wrong passwords
	KindRevoked        Kind = "revoked"          // to a recipient: the transfer was revoked
	KindExpiryReminder Kind = "expiry_reminder"  // to the sender: the transfer expires soon
	KindSummary        Kind = "download_summary" // to the sender: who downloaded what, at expiry or revoke
	KindScanFailed     Kind = "scan_failed"      // to the sender: the malware scan stopped the transfer
	// KindGatewayPassword goes to the sender of a mail the SMTP gateway
	// made a transfer of: the one-time link to its generated password.
	KindGatewayPassword Kind = "gateway_password"
	// KindFileRequest goes to the person a staff member asks for files:
	// the personal upload link (issue 17).
	KindFileRequest Kind = "file_request"
	// KindFileRequestDone goes to the requester: files arrived on their
	// request.
	KindFileRequestDone Kind = "file_request_done"
	// KindStaffRevoked goes to the sender: a staff member of the
	// organisation revoked their transfer in the admin console, and why.
	// It never names the staff member's role or the console.
	KindStaffRevoked Kind = "staff_revoked"
	// KindNotDelivered goes to the sender of a mail the SMTP gateway
	// accepted whose transfer was refused afterwards: Kluis's own
	// non-delivery report.
	KindNotDelivered Kind = "not_delivered"
	// KindDropoffArrived goes to each member of a team: a citizen sent
	// something to one of the team's drop-off points.
	KindDropoffArrived Kind = "dropoff_arrived"
	// KindInboxPassphrase goes to a staff member whose inbox passphrase
	// was changed.
	KindInboxPassphrase Kind = "inbox_passphrase"
)

// KindSMSFileRequest is not a mail: it is the SMS with the personal
// upload link of a file request, which goes through the outbox (sealed
// and retried like mail). Its Message has To (a number in E.164 form),
// Lang, Text and Ref (the file request, which the outbox tells the
// outcome); Render does not make it. It is not in Kinds.
const KindSMSFileRequest Kind = "sms_file_request"

// SMS reports whether k is a text message rather than a mail.
func (k Kind) SMS() bool { return strings.HasPrefix(string(k), "sms_") }

// Kinds lists every kind, in a fixed order.
var Kinds = []Kind{KindVerifyCode, KindNotify, KindConfirm, KindDownload, KindLockout, KindRevoked, KindExpiryReminder, KindSummary, KindScanFailed, KindGatewayPassword, KindFileRequest, KindFileRequestDone, KindStaffRevoked, KindNotDelivered, KindDropoffArrived, KindInboxPassphrase}

// Languages lists the languages mails are written in: every language of
// package locale.
var Languages = locale.Codes()

// Org is the organisation that runs the service, from configuration.
type Org struct {
	Name    string // shown in every mail; "Kluis" when empty
	LogoURL string // absolute http(s) URL of the logo, or empty; anything else is left out
	BaseURL string // the service's address, e.g. https://kluis.example.nl
}

// Validate reports whether the configured organisation can be used in mails.
// Call it at start-up; Render itself leaves out a logo it cannot use.
func (o Org) Validate() error {
	if o.LogoURL != "" && !isWebURL(o.LogoURL) {
		return fmt.Errorf("mail: logo URL %q must be an absolute http or https address", o.LogoURL)
	}
	if o.BaseURL != "" && !isWebURL(o.BaseURL) {
		return fmt.Errorf("mail: base URL %q must be an absolute http or https address", o.BaseURL)
	}
	return nil
}

// Message is one rendered mail for one recipient.
type Message struct {
	Kind    Kind
	Lang    string // the language the mail is written in: one of Languages
	To      string // one bare address
	Subject string // one line, no control characters
	Text    string // plain-text part
	HTML    string // HTML part
	// Ref names, for an SMS, the object the outbox reports its outcome
	// to (the file request); empty for mail.
	Ref string `json:",omitempty"`
}

// VerifyCode is the data for KindVerifyCode.
type VerifyCode struct {
	Code    string // 6 to 8 digits
	Minutes int    // how long the code is valid; 0 leaves the sentence out
}

// FileRef points at one file of a transfer.
type FileRef struct {
	Index int    // 1-based position; -1 (in Download) means all files as a ZIP
	Count int    // number of files in the transfer
	Name  string // empty unless the sender chose to show file names
	Size  int64  // bytes; negative when unknown
}

// Notify is the data for KindNotify: the mail to one recipient. Each
// recipient gets an own mail with an own Link.
type Notify struct {
	SenderName  string
	SenderPhone string
	SenderEmail string
	Subject     string // the sender's subject (untrusted); a default is used when empty
	BodyHTML    string // the sender's formatted text (untrusted); sanitized with SanitizeBody
	Link        string // this recipient's own link (absolute http or https)
	AccessCode  string // the receive code; shown in groups (see GroupCode)
	ExpiresAt   time.Time
	// PasswordRequired says whether a password is needed. The password itself
	// is never passed to this package.
	PasswordRequired bool
	// VisibleRecipients are the To and Cc addresses only, never Bcc.
	VisibleRecipients []string
	Files             []FileRef
	// HasMessage says whether the transfer holds a confidential message.
	// The message itself never goes into a mail.
	HasMessage bool
	// Reply says this is a recipient's answer to the addressee's own
	// transfer: it opens with the password of that transfer.
	Reply bool
	// ReplySubject is, for a Reply, the subject of the transfer it answers
	// (untrusted): the mail's subject is then "Re: <subject>" in the
	// addressee's language, so it lands beside the original in their mailbox.
	ReplySubject string
}

// RecipientLine is one recipient in the sender's confirmation.
type RecipientLine struct {
	Address string
	Kind    string // "to", "cc" or "bcc" (only the sender sees Bcc)
}

// Confirm is the data for KindConfirm: the sender's summary.
type Confirm struct {
	TransferID     string // shown as reference; optional
	Subject        string // the notification subject, to recognise the transfer; optional
	Recipients     []RecipientLine
	Files          []FileRef
	HasMessage     bool
	ExpiresAt      time.Time
	PasswordMode   string // "none", "generate" or "manual"
	NotifyDownload bool   // the sender gets a download notice (Notify "first" when Notify is empty)
	// Notify is the download-notice mode: "none", "first", "each" or
	// "summary" (kluis.NotifyMode); empty reads NotifyDownload.
	Notify        string
	ShowFilenames bool   // file names are shown in the recipients' mails
	RecipientLang string // the recipients' language: one of Languages
	StatusURL     string // the sender's status page; optional
}

// Download is the data for KindDownload: a recipient downloaded a file.
type Download struct {
	Recipient string
	File      FileRef // Index -1 means all files as a ZIP
	At        time.Time
	Subject   string // the notification subject, to recognise the transfer; optional
	StatusURL string // optional
}

// GatewayPassword is the data for KindGatewayPassword. It carries neither
// the password nor the mail's subject or text: only the link to the page
// that shows the password once, to the signed-in sender.
type GatewayPassword struct {
	Link      string    // absolute http or https
	ExpiresAt time.Time // when the link stops working
}

// FileRequest is the data for KindFileRequest. It carries neither the
// request's message nor anything sent: only who asks, the link and its end.
type FileRequest struct {
	RequesterName  string
	RequesterEmail string
	Link           string    // absolute http or https
	ExpiresAt      time.Time // the last moment files can be sent
}

// FileRequestDone is the data for KindFileRequestDone: files arrived on a
// request. It names no file.
type FileRequestDone struct {
	Address   string    // who sent
	Files     int       // how many files (0: a message only)
	Link      string    // the request's page; absolute http or https
	ExpiresAt time.Time // until when it can be opened
}

// DropoffArrived is the data for KindDropoffArrived. It names no file.
type DropoffArrived struct {
	Dropoff   string    // the drop-off point's name
	Address   string    // who sent (a verified address)
	Files     int       // how many files (0: a message only)
	Link      string    // the page to open it; absolute http or https
	ExpiresAt time.Time // until when it can be opened
}

// InboxPassphrase is the data for KindInboxPassphrase.
type InboxPassphrase struct {
	At time.Time // when the passphrase was changed
}

// Lockout is the data for KindLockout: too many wrong passwords.
type Lockout struct {
	Recipient string    // whose link was used; empty when unknown
	Until     time.Time // zero: blocked until the sender acts
	Failures  int       // wrong attempts in all; 0 leaves the number out
	Subject   string    // the notification subject; optional
	StatusURL string    // optional
	// UnlockURL is the one-time link that unblocks the access, in the
	// sender's own verified session; optional.
	UnlockURL string
}

// Revoked is the data for KindRevoked: the mail to a recipient after the
// sender revoked the transfer.
type Revoked struct {
	SenderName  string
	SenderEmail string
	At          time.Time // zero leaves the date out
	Subject     string    // the notification subject the recipient saw; optional
}

// StaffRevoked is the data for KindStaffRevoked, to the sender. It names
// the transfer by its number and subject only, never its message or files.
type StaffRevoked struct {
	TransferID string    // the transfer's number
	Subject    string    // the notification subject; optional
	Reason     string    // the helpdesk's reason, as typed in the console
	At         time.Time // when it was revoked
	StatusURL  string    // optional
}

// ExpiryReminder is the data for KindExpiryReminder, to the sender.
type ExpiryReminder struct {
	ExpiresAt  time.Time
	StatusURL  string // optional
	Recipients int    // recipients who have not downloaded anything yet
	Subject    string // the notification subject; optional
}

// Summary is the data for KindSummary: the sender's download summary
// when the transfer expired or was revoked.
type Summary struct {
	Subject    string    // the notification subject, to recognise the transfer; optional
	Ended      time.Time // when the transfer expired or was revoked
	Revoked    bool      // revoked rather than expired
	Recipients []SummaryRecipient
	StatusURL  string // optional
}

// SummaryRecipient is one recipient in a download summary, with what they
// downloaded completely, oldest first (none: nothing).
type SummaryRecipient struct {
	Address   string
	Downloads []Downloaded
}

// Downloaded is one file a recipient downloaded completely, and when.
type Downloaded struct {
	File FileRef
	At   time.Time
}

// Reasons of ScanFailed.
const (
	ScanInfected = "infected"  // a file contains malware
	ScanTooLarge = "too_large" // a file is too large to be checked, and the policy refuses it
	ScanTimeout  = "timeout"   // the scanner could not be reached in time
)

// ScanFailed is the data for KindScanFailed, to the sender: a transfer that
// waited for its malware scan was not sent, and its content was erased.
type ScanFailed struct {
	Reason string // ScanInfected, ScanTooLarge or ScanTimeout
	// File is the refused file (named only when the sender chose to show
	// file names); unused for ScanTimeout.
	File      FileRef
	Since     time.Time // when the sender finished the transfer
	Subject   string    // the notification subject; optional
	StatusURL string    // optional
}

// NotDelivered is the data for KindNotDelivered: the mail gateway accepted
// a mail (250) and its transfer was refused afterwards, by a malware scan
// that had to wait. It quotes the mail's subject, which its sender wrote,
// so they know which mail; it has no field for the text or the
// attachments, and names an attachment only by its number.
type NotDelivered struct {
	Subject    string    // the mail's subject (marker removed); untrusted
	SentAt     time.Time // when Kluis received the mail
	Recipients []string  // to whom it was addressed
	Reason     string    // ScanInfected, ScanTooLarge or ScanTimeout
	File       FileRef   // the refused attachment (Name is ignored); unused for ScanTimeout
	Since      time.Time // ScanTimeout: since when the scan could not run
}

// ErrInvalid is wrapped by every validation error from Render.
var ErrInvalid = errors.New("mail: invalid input")

func invalid(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, a...))
}

// Lang returns the language a mail is written in for a requested language:
// the language of Languages it names ("de", "DE", "de-AT"), anything else
// Dutch (locale.Default).
func Lang(lang string) string {
	if l, ok := locale.Parse(lang); ok {
		return string(l)
	}
	return string(locale.Default)
}

// Render renders one mail of the given kind for one recipient address. data
// must be the struct for kind (value or pointer). Recipient mails use the
// transfer's recipient language, sender mails the sender's language.
func Render(kind Kind, lang string, org Org, to string, data any) (*Message, error) {
	lang = Lang(lang)
	addr, err := bareAddress(to)
	if err != nil {
		return nil, err
	}
	v, err := prepare(kind, lang, data)
	if err != nil {
		return nil, err
	}
	v.Lang, v.Dir, v.Start = lang, locale.Lang(lang).Dir(), "left"
	if v.Dir == "rtl" {
		v.Start = "right"
	}
	v.To = addr
	v.Org = cleanOrg(org)
	set := templates[locale.Lang(lang)][kind]
	if set == nil {
		return nil, invalid("unknown kind %q", kind)
	}
	var sb strings.Builder
	if err := set.text.ExecuteTemplate(&sb, "subject", v); err != nil {
		return nil, fmt.Errorf("mail: %s subject: %w", kind, err)
	}
	v.Subject = HeaderValue(sb.String())
	if v.Subject == "" {
		return nil, fmt.Errorf("mail: %s: empty subject", kind)
	}
	sb.Reset()
	if err := set.text.ExecuteTemplate(&sb, "layout", v); err != nil {
		return nil, fmt.Errorf("mail: %s text: %w", kind, err)
	}
	text := tidyText(sb.String())
	sb.Reset()
	if err := set.html.ExecuteTemplate(&sb, "layout", v); err != nil {
		return nil, fmt.Errorf("mail: %s html: %w", kind, err)
	}
	return &Message{Kind: kind, Lang: lang, To: addr, Subject: v.Subject, Text: text, HTML: sb.String()}, nil
}

// bareAddress accepts exactly one address without display name.
func bareAddress(to string) (string, error) {
	if to == "" || strings.ContainsFunc(to, isControlOrSep) || strings.ContainsAny(to, " <>,;\"") {
		return "", invalid("recipient %q is not one bare e-mail address", HeaderValue(to))
	}
	a, err := mail.ParseAddress(to)
	if err != nil || a.Name != "" || a.Address != to {
		return "", invalid("recipient %q is not one bare e-mail address", HeaderValue(to))
	}
	return to, nil
}

// view is what the templates see.
type view struct {
	Lang string
	Dir  string // "ltr" or "rtl", for the HTML part
	// Start is the side ("left", "right") where a line of the language
	// starts, for the HTML part's inline styles: mail clients do not know
	// CSS's logical properties.
	Start   string
	Org     Org
	To      string
	Subject string // the final subject line
	D       any    // the kind's data, cleaned

	// Notify only.
	Body       any    // sanitized sender text (template.HTML)
	BodyText   string // plain-text version of Body
	AccessCode string // grouped
	ReceiveURL string
}

func prepare(kind Kind, lang string, data any) (*view, error) {
	v := &view{}
	switch kind {
	case KindVerifyCode:
		d, ok := as[VerifyCode](data)
		if !ok {
			return nil, typeErr(kind, data)
		}
		d.Code = strings.TrimSpace(d.Code)
		if len(d.Code) < 6 || len(d.Code) > 8 || strings.ContainsFunc(d.Code, func(r rune) bool { return r < '0' || r > '9' }) {
			return nil, invalid("verification code must be 6 to 8 digits")
		}
		if d.Minutes < 0 {
			return nil, invalid("negative validity")
		}
		v.D = d
	case KindNotify:
		d, ok := as[Notify](data)
		if !ok {
			return nil, typeErr(kind, data)
		}
		if !isWebURL(d.Link) {
			return nil, invalid("notification link must be an absolute http or https address")
		}
		if d.ExpiresAt.IsZero() {
			return nil, invalid("notification without expiry date")
		}
		if len(d.Files) == 0 && !d.HasMessage {
			return nil, invalid("notification without files or message")
		}
		d.SenderName, d.SenderPhone, d.SenderEmail = line(d.SenderName), line(d.SenderPhone), line(d.SenderEmail)
		if d.SenderName == "" && d.SenderEmail == "" {
			return nil, invalid("notification without sender")
		}
		if d.SenderName == "" {
			d.SenderName = d.SenderEmail
		}
		d.Subject, d.ReplySubject = HeaderValue(d.Subject), HeaderValue(d.ReplySubject)
		vis := make([]string, 0, len(d.VisibleRecipients))
		for _, r := range d.VisibleRecipients {
			if r = line(r); r != "" {
				vis = append(vis, r)
			}
		}
		d.VisibleRecipients = vis
		d.Files = cleanFiles(d.Files)
		body := SanitizeBody(d.BodyHTML)
		d.BodyHTML = ""
		v.BodyText = BodyText(body)
		if strings.TrimSpace(v.BodyText) != "" {
			v.Body = trustedHTML(body)
		}
		v.AccessCode = GroupCode(d.AccessCode)
		v.D = d
	case KindConfirm:
		d, ok := as[Confirm](data)
		if !ok {
			return nil, typeErr(kind, data)
		}
		if d.ExpiresAt.IsZero() {
			return nil, invalid("confirmation without expiry date")
		}
		switch d.PasswordMode {
		case "none", "generate", "manual":
		default:
			return nil, invalid("password mode %q must be none, generate or manual", d.PasswordMode)
		}
		if len(d.Recipients) == 0 {
			return nil, invalid("confirmation without recipients")
		}
		rs := make([]RecipientLine, 0, len(d.Recipients))
		for _, r := range d.Recipients {
			r.Kind = strings.ToLower(r.Kind)
			if r.Kind != "to" && r.Kind != "cc" && r.Kind != "bcc" {
				return nil, invalid("recipient kind %q must be to, cc or bcc", r.Kind)
			}
			r.Address = line(r.Address)
			rs = append(rs, r)
		}
		d.Recipients = rs
		if d.StatusURL != "" && !isWebURL(d.StatusURL) {
			return nil, invalid("status URL must be an absolute http or https address")
		}
		d.TransferID, d.Subject = line(d.TransferID), HeaderValue(d.Subject)
		switch d.Notify {
		case "":
			d.Notify = "none"
			if d.NotifyDownload {
				d.Notify = "first"
			}
		case "none", "first", "each", "summary":
		default:
			return nil, invalid("notice mode %q must be none, first, each or summary", d.Notify)
		}
		d.RecipientLang = Lang(d.RecipientLang)
		d.Files = cleanFiles(d.Files)
		v.D = d
	case KindDownload:
		d, ok := as[Download](data)
		if !ok {
			return nil, typeErr(kind, data)
		}
		d.Recipient = line(d.Recipient)
		if d.Recipient == "" || d.At.IsZero() {
			return nil, invalid("download notice needs recipient and time")
		}
		if d.File.Index < -1 || d.File.Index == 0 {
			return nil, invalid("download notice: file index must be -1 (all) or 1 or more")
		}
		if d.StatusURL != "" && !isWebURL(d.StatusURL) {
			return nil, invalid("status URL must be an absolute http or https address")
		}
		d.File.Name = fileName(d.File.Name)
		d.Subject = HeaderValue(d.Subject)
		v.D = d
	case KindGatewayPassword:
		d, ok := as[GatewayPassword](data)
		if !ok {
			return nil, typeErr(kind, data)
		}
		if !isWebURL(d.Link) || d.ExpiresAt.IsZero() {
			return nil, invalid("gateway password mail needs an absolute http or https link and its end")
		}
		v.D = d
	case KindFileRequest:
		d, ok := as[FileRequest](data)
		if !ok {
			return nil, typeErr(kind, data)
		}
		d.RequesterName, d.RequesterEmail = line(d.RequesterName), line(d.RequesterEmail)
		if d.RequesterEmail == "" || !isWebURL(d.Link) || d.ExpiresAt.IsZero() {
			return nil, invalid("file request mail needs the requester, an absolute http or https link and its end")
		}
		if d.RequesterName == "" {
			d.RequesterName = d.RequesterEmail
		}
		v.D = d
	case KindFileRequestDone:
		d, ok := as[FileRequestDone](data)
		if !ok {
			return nil, typeErr(kind, data)
		}
		d.Address = line(d.Address)
		if d.Address == "" || !isWebURL(d.Link) || d.ExpiresAt.IsZero() || d.Files < 0 {
			return nil, invalid("file request notice needs the sender, an absolute http or https link and its end")
		}
		v.D = d
	case KindDropoffArrived:
		d, ok := as[DropoffArrived](data)
		if !ok {
			return nil, typeErr(kind, data)
		}
		d.Dropoff, d.Address = line(d.Dropoff), line(d.Address)
		if d.Dropoff == "" || d.Address == "" || !isWebURL(d.Link) || d.ExpiresAt.IsZero() || d.Files < 0 {
			return nil, invalid("drop-off notice needs the point's name, the sender, an absolute http or https link and its end")
		}
		v.D = d
	case KindInboxPassphrase:
		d, ok := as[InboxPassphrase](data)
		if !ok {
			return nil, typeErr(kind, data)
		}
		if d.At.IsZero() {
			return nil, invalid("inbox passphrase notice needs the moment of the change")
		}
		v.D = d
	case KindLockout:
		d, ok := as[Lockout](data)
		if !ok {
			return nil, typeErr(kind, data)
		}
		if d.StatusURL != "" && !isWebURL(d.StatusURL) {
			return nil, invalid("status URL must be an absolute http or https address")
		}
		if d.UnlockURL != "" && !isWebURL(d.UnlockURL) {
			return nil, invalid("unlock URL must be an absolute http or https address")
		}
		d.Recipient, d.Subject = line(d.Recipient), HeaderValue(d.Subject)
		v.D = d
	case KindRevoked:
		d, ok := as[Revoked](data)
		if !ok {
			return nil, typeErr(kind, data)
		}
		d.SenderName, d.SenderEmail, d.Subject = line(d.SenderName), line(d.SenderEmail), HeaderValue(d.Subject)
		if d.SenderName == "" && d.SenderEmail == "" {
			return nil, invalid("revocation notice without sender")
		}
		if d.SenderName == "" {
			d.SenderName = d.SenderEmail
		}
		v.D = d
	case KindStaffRevoked:
		d, ok := as[StaffRevoked](data)
		if !ok {
			return nil, typeErr(kind, data)
		}
		d.TransferID, d.Reason, d.Subject = line(d.TransferID), line(d.Reason), HeaderValue(d.Subject)
		if d.TransferID == "" || d.Reason == "" || d.At.IsZero() {
			return nil, invalid("staff revocation notice needs the transfer, the reason and the time")
		}
		if d.StatusURL != "" && !isWebURL(d.StatusURL) {
			return nil, invalid("status URL must be an absolute http or https address")
		}
		v.D = d
	case KindExpiryReminder:
		d, ok := as[ExpiryReminder](data)
		if !ok {
			return nil, typeErr(kind, data)
		}
		if d.ExpiresAt.IsZero() || d.Recipients < 0 {
			return nil, invalid("expiry reminder needs expiry date")
		}
		if d.StatusURL != "" && !isWebURL(d.StatusURL) {
			return nil, invalid("status URL must be an absolute http or https address")
		}
		d.Subject = HeaderValue(d.Subject)
		v.D = d
	case KindSummary:
		d, ok := as[Summary](data)
		if !ok {
			return nil, typeErr(kind, data)
		}
		if d.Ended.IsZero() {
			return nil, invalid("download summary needs the date it ended")
		}
		if len(d.Recipients) == 0 {
			return nil, invalid("download summary without recipients")
		}
		if d.StatusURL != "" && !isWebURL(d.StatusURL) {
			return nil, invalid("status URL must be an absolute http or https address")
		}
		d.Subject = HeaderValue(d.Subject)
		rs := make([]SummaryRecipient, 0, len(d.Recipients))
		for _, r := range d.Recipients {
			r.Address = line(r.Address)
			if r.Address == "" {
				return nil, invalid("download summary: recipient without address")
			}
			ds := make([]Downloaded, 0, len(r.Downloads))
			for _, x := range r.Downloads {
				if x.At.IsZero() || x.File.Index < -1 || x.File.Index == 0 {
					return nil, invalid("download summary: a download needs a time and a file index of -1 (all) or 1 or more")
				}
				x.File.Name = fileName(x.File.Name)
				ds = append(ds, x)
			}
			r.Downloads = ds
			rs = append(rs, r)
		}
		d.Recipients = rs
		v.D = d
	case KindScanFailed:
		d, ok := as[ScanFailed](data)
		if !ok {
			return nil, typeErr(kind, data)
		}
		if err := checkScanReason(d.Reason, d.File, d.Since); err != nil {
			return nil, err
		}
		if d.StatusURL != "" && !isWebURL(d.StatusURL) {
			return nil, invalid("status URL must be an absolute http or https address")
		}
		d.File.Name = fileName(d.File.Name)
		d.Subject = HeaderValue(d.Subject)
		v.D = d
	case KindNotDelivered:
		d, ok := as[NotDelivered](data)
		if !ok {
			return nil, typeErr(kind, data)
		}
		if err := checkScanReason(d.Reason, d.File, d.Since); err != nil {
			return nil, err
		}
		if d.SentAt.IsZero() || len(d.Recipients) == 0 {
			return nil, invalid("non-delivery report needs the time the mail came and its recipients")
		}
		rs := make([]string, 0, len(d.Recipients))
		for _, r := range d.Recipients {
			if r = line(r); r != "" {
				rs = append(rs, r)
			}
		}
		d.Recipients = rs
		// Attachments are never named: the sender chose nothing.
		d.File.Name = ""
		d.File.Count = max(d.File.Count, d.File.Index)
		d.Subject = HeaderValue(d.Subject)
		v.D = d
	default:
		return nil, invalid("unknown kind %q", kind)
	}
	return v, nil
}

// checkScanReason checks the reason of a scan notice or non-delivery
// report: a refused file needs its number, a time-out its start.
func checkScanReason(reason string, file FileRef, since time.Time) error {
	switch reason {
	case ScanInfected, ScanTooLarge:
		if file.Index < 1 {
			return invalid("scan notice: the refused file needs its number")
		}
	case ScanTimeout:
		if since.IsZero() {
			return invalid("scan notice: a time-out needs the time the transfer was finished")
		}
	default:
		return invalid("scan notice: reason %q must be infected, too_large or timeout", reason)
	}
	return nil
}

func as[T any](data any) (T, bool) {
	switch d := data.(type) {
	case T:
		return d, true
	case *T:
		if d != nil {
			return *d, true
		}
	}
	var zero T
	return zero, false
}

func typeErr(kind Kind, data any) error {
	return invalid("kind %q does not take data of type %T", kind, data)
}

func cleanFiles(in []FileRef) []FileRef {
	out := make([]FileRef, len(in))
	for i, f := range in {
		f.Name = fileName(f.Name)
		out[i] = f
	}
	return out
}

// fileName cleans a file name as everywhere else in Kluis (the web
// preview hands names straight from the browser); "" stays "": names are
// not shown.
func fileName(s string) string {
	if s == "" {
		return ""
	}
	return kluis.CleanFileName(s)
}

func cleanOrg(o Org) Org {
	o.Name = line(o.Name)
	if o.Name == "" {
		o.Name = "Kluis"
	}
	if !isWebURL(o.LogoURL) {
		o.LogoURL = ""
	}
	if isWebURL(o.BaseURL) {
		o.BaseURL = strings.TrimRight(o.BaseURL, "/")
	} else {
		o.BaseURL = ""
	}
	return o
}

func isWebURL(s string) bool {
	if s == "" || strings.ContainsFunc(s, func(r rune) bool { return unicode.IsSpace(r) || isControlOrSep(r) }) {
		return false
	}
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}

func isControlOrSep(r rune) bool {
	return unicode.IsControl(r) || r == '\u2028' || r == '\u2029' || r == '\u0085' || unicode.Is(unicode.Cf, r) && r != '\u200d'
}

// line makes a value one line: control characters and line separators become
// spaces, runs of white space collapse, and the ends are trimmed.
func line(s string) string {
	var b strings.Builder
	space := false
	for _, r := range s {
		if isControlOrSep(r) || unicode.IsSpace(r) {
			space = true
			continue
		}
		if space && b.Len() > 0 {
			b.WriteByte(' ')
		}
		space = false
		b.WriteRune(r)
	}
	return b.String()
}

// OriginHeader is set on every mail Kluis sends, with OriginValue; the mail
// gateway refuses a mail that has it, so a mail server that routes Kluis's
// own mails back to the gateway makes no loop (issue 18 item 5).
const (
	OriginHeader = "X-Kluis-Origin"
	OriginValue  = "kluis"
)

// maxHeaderRunes bounds a subject; the rest is cut with an ellipsis.
const maxHeaderRunes = 200

// HeaderValue returns s as a safe header value: one line, no control
// characters (CR, LF, NUL, …) or Unicode line separators, white space
// collapsed and at most 200 characters.
func HeaderValue(s string) string {
	s = line(s)
	if r := []rune(s); len(r) > maxHeaderRunes {
		s = strings.TrimSpace(string(r[:maxHeaderRunes-1])) + "…"
	}
	return s
}

// GroupCode writes a code for a person to read aloud and type: a receive
// code (16 characters) as capitals in groups of four ("K7QM-3XPT-9HRW-D2FA"),
// anything longer (an access id, which mails showed before receive codes)
// as lower-case groups of five ("abcde-fghij-k"). Characters other than
// letters and digits are dropped, so GroupCode is idempotent and accepts
// what a user typed.
func GroupCode(id string) string {
	var clean []rune
	for _, r := range strings.ToLower(id) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			clean = append(clean, r)
		}
	}
	group, upper := 5, false
	if len(clean) == 16 {
		group, upper = 4, true
	}
	var b strings.Builder
	for i, r := range clean {
		if i > 0 && i%group == 0 {
			b.WriteByte('-')
		}
		if upper {
			r = unicode.ToUpper(r)
		}
		b.WriteRune(r)
	}
	return b.String()
}

// tidyText trims trailing white space on each line, allows at most one
// empty line in a row and ends the text with a single newline.
func tidyText(s string) string {
	lines := strings.Split(s, "\n")
	out := make([]string, 0, len(lines))
	empty := true // drop leading empty lines
	for _, l := range lines {
		l = strings.TrimRight(l, " \t\r")
		if l == "" {
			if empty {
				continue
			}
			empty = true
		} else {
			empty = false
		}
		out = append(out, l)
	}
	return strings.TrimRight(strings.Join(out, "\n"), "\n") + "\n"
}
