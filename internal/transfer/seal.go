package transfer

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"filippo.io/age"

	"github.com/kluis-nl/kluis"
)

// Seal purposes: a sealed value is bound to its purpose and row id, so it
// cannot be moved to another column or row.
const (
	purposeRecipient = "transfer.recipient"
	purposeIdentity  = "transfer.identity"
	purposeDetails   = "transfer.details"
	purposePrivate   = "transfer.private"
	purposeFileMeta  = "file.meta"
	purposeFilePriv  = "file.private"
	purposeFileSum   = "file.sum"
	purposeManifest  = "file.manifest" // a whole manifest, before migration 0009
	purposeHead      = "file.head"
	purposeSegment   = "file.segment"
	purposeScan      = "file.scan" // a file's scan identity, until its scan finished (scan.go)
	purposeSession   = "session.identity"
	purposeLabel     = "transfer.label"
)

// label is what a sender recognises a transfer by once its details are
// purged (revoked or expired): the subject the recipients saw in their
// mail, and the files as the sender's pages showed them. Sealed under the
// master key and kept until the minimal record's retention ends.
type label struct {
	Subject string `json:"subject,omitempty"`
	// Reference is the sender's own reference, kept like the subject.
	Reference string `json:"reference,omitempty"`
	Files     int    `json:"files"`
	Size      int64  `json:"size"`
	// First is the first file's name, only when the sender chose to show
	// file names (it was in the mails then).
	First string `json:"first,omitempty"`
	// Refused says why the malware scan stopped the transfer, if it did.
	Refused *ScanRefusal `json:"refused,omitempty"`
}

// details are sealed under the master key only: the server needs them to
// write mails.
type details struct {
	SenderName  string `json:"sender_name"`
	SenderPhone string `json:"sender_phone"`
	Subject     string `json:"subject"`
	Body        string `json:"body"`
	// ReplySubject is, for a reply, the subject of the transfer it
	// answers, copied when the reply is made: the reply's mail is titled
	// after it even if the original is purged by then.
	ReplySubject string `json:"reply_subject,omitempty"`
	// Reference is the sender's own reference; only their pages show it.
	Reference string `json:"reference,omitempty"`
}

// private is what only the transfer secret opens.
type private struct {
	Message string `json:"message"`
}

// fileMeta is sealed under the master key only: tus needs the size and the
// budget check needs all sizes without the transfer secret. Name is kept
// here only when the sender chose to show file names in mails.
type fileMeta struct {
	Size int64  `json:"size"` // -1 while a plain upload of unknown length runs
	Name string `json:"name,omitempty"`
	// Limit is, while Size is -1, what the file may grow to: reserved at
	// NewFile from the transfer's budget and the sender's daily volume,
	// so parallel uploads cannot both take the same bytes. QuotaLimit
	// says the daily volume set it (the error is then EQUOTA). Files
	// written before Limit existed have 0 and use the transfer's budget.
	Limit      int64 `json:"limit,omitempty"`
	QuotaLimit bool  `json:"quota_limit,omitempty"`
	// Plain says the file is written by one request and cannot be
	// resumed (NewPlainFile).
	Plain bool `json:"plain,omitempty"`
}

// filePrivate is what only the transfer secret opens.
type filePrivate struct {
	Name        string `json:"name"`
	ContentType string `json:"content_type"`
	SHA256      string `json:"sha256,omitempty"`
}

// Names are cleaned again as they are read back, not only at NewFile, so a
// file stored before a cleaning rule was added (a bidirectional control
// the old rules kept) shows clean on every page, header, ZIP entry and
// mail. Every read of a stored name goes through these two decoders.

func (m *fileMeta) UnmarshalJSON(b []byte) error {
	type plain fileMeta
	if err := json.Unmarshal(b, (*plain)(m)); err != nil {
		return err
	}
	if m.Name != "" { // "" means: names are not shown
		m.Name = kluis.CleanFileName(m.Name)
	}
	return nil
}

func (p *filePrivate) UnmarshalJSON(b []byte) error {
	type plain filePrivate
	if err := json.Unmarshal(b, (*plain)(p)); err != nil {
		return err
	}
	p.Name = kluis.CleanFileName(p.Name)
	return nil
}

func (s *Service) sealJSON(purpose, id string, v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return s.keys.Seal(purpose, id, b), nil
}

func (s *Service) openJSON(purpose, id string, sealed []byte, v any) error {
	if sealed == nil {
		return &kluis.Error{Code: kluis.EINTEGRITY, Message: "This data is no longer available."}
	}
	b, err := s.keys.Open(purpose, id, sealed)
	if err != nil {
		return &kluis.Error{Code: kluis.EINTEGRITY, Message: "Stored data failed verification.", Err: fmt.Errorf("open %s %s: %w", purpose, id, err)}
	}
	return json.Unmarshal(b, v)
}

// sealPrivate encrypts v to the transfer's age recipient, then seals the
// age file under the master key.
func (s *Service) sealPrivate(r age.Recipient, purpose, id string, v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	w, err := age.Encrypt(&buf, r)
	if err != nil {
		return nil, err
	}
	if _, err := w.Write(b); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return s.keys.Seal(purpose, id, buf.Bytes()), nil
}

func (s *Service) openPrivate(id age.Identity, purpose, rowID string, sealed []byte, v any) error {
	if sealed == nil {
		return &kluis.Error{Code: kluis.EINTEGRITY, Message: "This data is no longer available."}
	}
	ct, err := s.keys.Open(purpose, rowID, sealed)
	if err != nil {
		return &kluis.Error{Code: kluis.EINTEGRITY, Message: "Stored data failed verification.", Err: err}
	}
	r, err := age.Decrypt(bytes.NewReader(ct), id)
	if err != nil {
		return &kluis.Error{Code: kluis.EINTEGRITY, Message: "Stored data failed verification.", Err: err}
	}
	b, err := io.ReadAll(io.LimitReader(r, 16<<20))
	if err != nil {
		return &kluis.Error{Code: kluis.EINTEGRITY, Message: "Stored data failed verification.", Err: err}
	}
	return json.Unmarshal(b, v)
}

// recipientOf opens the transfer's public age recipient.
func (s *Service) recipientOf(id string, sealed []byte) (*age.X25519Recipient, error) {
	if sealed == nil {
		return nil, kluis.Errorf(kluis.ECONFLICT, "This transfer no longer accepts files.")
	}
	b, err := s.keys.Open(purposeRecipient, id, sealed)
	if err != nil {
		return nil, &kluis.Error{Code: kluis.EINTEGRITY, Message: "Stored data failed verification.", Err: err}
	}
	return age.ParseX25519Recipient(string(b))
}

// storedOptions is the options column: the sender's choices plus what the
// server must know about the private content without opening it.
type storedOptions struct {
	kluis.Options
	HasMessage bool   `json:"has_message"`
	SenderLang string `json:"sender_lang,omitempty"`
	// MaxSize and MaxExpiry are the policy's limits for this transfer,
	// decided at Create (0: the Config's).
	MaxSize   int64         `json:"max_size,omitempty"`
	MaxExpiry time.Duration `json:"max_expiry,omitempty"`
	// MaxBytesPerDay is the sender's daily volume the policy gave when
	// this transfer was created (0: from before quotas).
	MaxBytesPerDay int64 `json:"max_bytes_per_day,omitempty"`
	// ReplyTo is the id of the transfer this one answers (made by a
	// recipient with Reply), or "".
	ReplyTo string `json:"reply_to,omitempty"`
	// WordPassword says the generated password is words (issue 13, item
	// 8): the identity is wrapped with its normalised form. Generated
	// passwords from before are groups of characters.
	WordPassword bool `json:"word_password,omitempty"`
	// MaxFiles bounds the files (0: only the server's bound); Request is
	// the id of the file request whose upload this is, or "".
	MaxFiles int    `json:"max_files,omitempty"`
	Request  string `json:"request,omitempty"`
	// Dropoff is the slug of the drop-off point this upload goes to, or "".
	Dropoff string `json:"dropoff,omitempty"`
}

func parseOptions(s string) storedOptions {
	var o storedOptions
	_ = json.Unmarshal([]byte(s), &o)
	return o
}

var randRead = rand.Read
