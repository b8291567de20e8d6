package transfer

// File requests (issue 17, part 2). A signed-in staff member who has set
// an inbox passphrase asks one address for files. The address gets a mail
// with a personal link (/q/{access}); the link is the capability, so the
// person needs no verification. What they upload goes into a transfer of
// its own with mode PasswordInbox: a fresh age identity whose only wrap is
// an age file encrypted to the requester's inbox recipient (sealed under
// the master key like every wrap). The server can therefore encrypt what
// arrives, but opening it needs the inbox identity, which only the
// requester's inbox passphrase (or their unlocked session) gives: a copy
// of the data folder plus the master key cannot open it.
//
// The upload itself is an ordinary transfer upload (tus or a plain form
// POST, segments, malware scan at Finish, purge at expiry), authorised by
// an upload token derived from the link's secret with a master-key MAC, so
// the page can hand it to tus again after a reload without storing it.

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"filippo.io/age"

	"github.com/kluis-nl/kluis"
	"github.com/kluis-nl/kluis/internal/audit"
	"github.com/kluis-nl/kluis/internal/locale"
	"github.com/kluis-nl/kluis/internal/mail"
	"github.com/kluis-nl/kluis/internal/secret"
	"github.com/kluis-nl/kluis/internal/sms"
	"github.com/kluis-nl/kluis/internal/store"
)

// Limits of file requests.
const (
	// MaxRequestFiles bounds the files one person can send on a request.
	MaxRequestFiles = 20
	// MaxRequestMessage bounds the requester's message (what is asked).
	MaxRequestMessage = 5_000
	// RequestsPerDay bounds the requests one requester makes in 24 hours:
	// each mails an address outside, so a stolen session cannot spam.
	RequestsPerDay = 50
	// MaxRequestAddresses bounds the addresses asked at once
	// (CreateFileRequests): each gets a request of its own.
	MaxRequestAddresses = 20
	// MaxRequestAsk bounds the things asked for as a list, and
	// MaxRequestAskItem the length of each.
	MaxRequestAsk     = 20
	MaxRequestAskItem = 200
)

const (
	purposeRequestDetails = "request.details"
	purposeRequestInbox   = "request.inbox"
	purposeRequestUpload  = "request.upload"
)

// Fields of a file request: the address(es) it goes to, and the list of
// what is asked for.
const (
	FieldRequestAddress = "address"
	FieldRequestAsk     = "ask"
)

// requestDetails are sealed under the master key: the server shows them
// on the request's page.
type requestDetails struct {
	RequesterName string `json:"requester_name,omitempty"`
	Message       string `json:"message"`
	// RequesterLang is the language of the requester's own mail.
	RequesterLang string `json:"requester_lang,omitempty"`
}

// FileRequestInput is what a requester asks for.
type FileRequestInput struct {
	// Requester is the signed-in requester's address; RequesterName their
	// name as the person will see it (optional).
	Requester, RequesterName string
	// Inbox is the requester's inbox recipient ("age1…"): what arrives is
	// encrypted to it.
	Inbox string
	// Address is who is asked for files.
	Address string
	// Mobiles are the mobile numbers (as people write them) of addresses
	// of the request, which then also get the link by SMS; the key "" is
	// the only address of a request to one person. A number needs an SMS
	// gateway.
	Mobiles map[string]string
	// Message says what is asked for; Ask lists things asked for, shown
	// as a list after it. One of them must be given.
	Message string
	Ask     []string
	// ExpiresOn is the last day (YYYY-MM-DD, Amsterdam) the person can
	// send; "" is the default expiry.
	ExpiresOn string
	// Lang is the language of the mail and page for the person;
	// RequesterLang that of the requester's own mail.
	Lang, RequesterLang string
}

// FileRequest is a request as its requester and the person asked see it.
type FileRequest struct {
	ID            string
	Requester     string
	RequesterName string
	Address       string
	Lang          string
	Message       string // "" once expired or revoked
	// Mobile is the person's number, masked ("" without one, and once
	// purged); SMS what became of the SMS with the link (store.SMSQueued,
	// SMSSent, SMSFailed; "" without a number) and SMSAt when.
	Mobile    string
	SMS       string
	SMSAt     *time.Time
	CreatedAt time.Time
	ExpiresAt time.Time
	DoneAt    *time.Time
	RevokedAt *time.Time
	MaxSize   int64
	MaxFiles  int
	// Files is how many files were sent (or are uploading); Result the
	// transfer holding them, nil before the first upload.
	Files  int
	Result *kluis.Transfer
}

// AtDeadline tells that what the person uploaded was sent at the
// request's deadline, because they never pressed Done: a request sent
// with Done is done before its expiry, one sent at the deadline at or
// after it (finishRequest).
func (f *FileRequest) AtDeadline() bool {
	return f.DoneAt != nil && !f.DoneAt.Before(f.ExpiresAt)
}

// State is "open", "done", "revoked" or "expired" at now.
func (f *FileRequest) State(now time.Time) string {
	switch {
	case f.RevokedAt != nil:
		return "revoked"
	case f.DoneAt != nil:
		return "done"
	case !now.Before(f.ExpiresAt):
		return "expired"
	}
	return "open"
}

// CreateFileRequest checks and stores a request to one address and queues
// the mail with its link. The address must be one the requester may send
// to under the policy; the expiry and size budget are the policy's. It
// returns the request and the link (also only in the mail; not stored).
func (s *Service) CreateFileRequest(ctx context.Context, in FileRequestInput) (*FileRequest, string, error) {
	frs, links, err := s.createFileRequests(ctx, in, 1)
	if err != nil {
		return nil, "", err
	}
	return frs[0], links[0], nil
}

// CreateFileRequests is CreateFileRequest for up to MaxRequestAddresses
// addresses at once (in.Address is a list as people write it): one
// request, link and mail per address, so each person has a status of
// their own. Every address is checked first; either all requests are
// made or none.
func (s *Service) CreateFileRequests(ctx context.Context, in FileRequestInput) ([]*FileRequest, []string, error) {
	return s.createFileRequests(ctx, in, MaxRequestAddresses)
}

func (s *Service) createFileRequests(ctx context.Context, in FileRequestInput, maxAddrs int) ([]*FileRequest, []string, error) {
	now := s.now()
	requester, err := kluis.ParseAddress(in.Requester)
	if err != nil {
		return nil, nil, kluis.Errorf(kluis.EUNAUTHORIZED, "Sign in with your e-mail address first.")
	}
	if _, err := age.ParseX25519Recipient(in.Inbox); err != nil {
		return nil, nil, kluis.Errorf(kluis.ECONFLICT, "Set an inbox passphrase before you request files.")
	}
	c := &checker{}
	c.text(FieldSenderName, in.RequesterName, MaxNameLength, true)
	message := requestMessage(c, in.Message, in.Ask)
	lang := string(locale.Default)
	if strings.TrimSpace(in.Lang) != "" {
		if l, ok := locale.Parse(in.Lang); ok {
			lang = string(l)
		} else {
			c.add(FieldLang, CodeLangUnsupported, strings.Join(locale.Codes(), ", "))
		}
	}
	rs := c.recipients(s.Policy(), requester, CreateRequest{To: kluis.SplitAddressList(in.Address)})
	for i := range c.errs {
		if c.errs[i].Field == FieldTo {
			c.errs[i].Field = FieldRequestAddress
		}
	}
	if len(rs) > maxAddrs {
		c.add(FieldRequestAddress, CodeTooManyRecipients, maxAddrs, len(rs))
	}
	dec, err := s.decision(requester, rs)
	if err != nil {
		return nil, nil, err
	}
	for _, r := range rs {
		if strings.EqualFold(r.Address, requester) {
			c.add(FieldRequestAddress, CodeAddressNotAllowed, r.Address)
		}
	}
	expires := c.expiry(dec, CreateRequest{ExpiresOn: in.ExpiresOn}, now)
	mobiles := s.requestMobiles(c, in.Mobiles, rs)
	if len(c.errs) > 0 {
		return nil, nil, kluis.Invalid(c.errs...)
	}
	name := strings.TrimSpace(in.RequesterName)
	rows := make([]*store.FileRequest, len(rs))
	links := make([]string, len(rs))
	for i, r := range rs {
		access := secret.NewAccessID()
		id := secret.NewID()
		det, err := s.sealJSON(purposeRequestDetails, id, requestDetails{RequesterName: name, Message: message,
			RequesterLang: mail.Lang(in.RequesterLang)})
		if err != nil {
			return nil, nil, err
		}
		rows[i] = &store.FileRequest{
			ID: id, RequesterEmail: requester, Address: r.Address, Lang: lang,
			AccessHash:    secret.HashToken(access),
			InboxSealed:   s.keys.Seal(purposeRequestInbox, id, []byte(in.Inbox)),
			DetailsSealed: det,
			MaxSize:       dec.Limits.MaxTransferSize, MaxFiles: MaxRequestFiles,
			CreatedAt: now, ExpiresAt: expires,
		}
		if p := mobiles[strings.ToLower(r.Address)]; p != "" {
			rows[i].PhoneSealed = s.keys.Seal(purposeRequestPhone, id, []byte(p))
			rows[i].SMSState = store.SMSQueued
		}
		links[i] = s.cfg.BaseURL + "/q/" + access
	}
	tx, err := s.db.BeginTx(ctx)
	if err != nil {
		return nil, nil, err
	}
	defer tx.Rollback()
	// The requester's lock: parallel requests are counted one by one.
	if err := tx.LockSender(ctx, requester); err != nil {
		return nil, nil, err
	}
	n, err := tx.CountFileRequestsSince(ctx, requester, now.Add(-24*time.Hour))
	if err != nil {
		return nil, nil, err
	}
	if n+len(rows) > RequestsPerDay {
		s.audit.Log(ctx, audit.Event{Actor: audit.Sender(requester), Action: audit.RequestCreate, Result: audit.Refused, Detail: "rate_limited"})
		return nil, nil, &kluis.Error{Code: kluis.ETOOMANYREQUESTS, RetryAfter: time.Hour,
			Message: fmt.Sprintf("You can make at most %d file requests in 24 hours, and have made %d. Try again later.", RequestsPerDay, n)}
	}
	if name == "" {
		name = requester
	}
	for i, row := range rows {
		if err := tx.InsertFileRequest(ctx, row); err != nil {
			return nil, nil, err
		}
		if err := s.enqueue(ctx, tx, mail.KindFileRequest, lang, row.Address, mail.FileRequest{
			RequesterName: name, RequesterEmail: requester, Link: links[i], ExpiresAt: expires,
		}); err != nil {
			return nil, nil, err
		}
		detail := "lang=" + lang
		if p := mobiles[strings.ToLower(row.Address)]; p != "" {
			if err := s.enqueueRequestSMS(ctx, tx, row, p, name, links[i]); err != nil {
				return nil, nil, err
			}
			detail += " sms=" + sms.Mask(p)
		}
		if err := s.audit.Record(ctx, tx.Q, audit.Event{Actor: audit.Sender(requester), Action: audit.RequestCreate, Object: row.ID,
			Detail: detail}); err != nil {
			return nil, nil, err
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, nil, err
	}
	s.wakeMailer()
	out := make([]*FileRequest, len(rows))
	for i, row := range rows {
		s.log.Info("file request created", "request", row.ID, "action", audit.RequestCreate)
		if out[i], err = s.fileRequestView(ctx, row); err != nil {
			return nil, nil, err
		}
	}
	return out, links, nil
}

// requestMessage is the text the person asked sees: the requester's
// message, then each thing asked for as an item of a list. Either must be
// given; the whole is at most MaxRequestMessage bytes.
func requestMessage(c *checker, message string, ask []string) string {
	msg := strings.TrimSpace(message)
	var items []string
	for _, a := range ask {
		a = strings.TrimSpace(a)
		if a == "" {
			continue
		}
		c.text(FieldRequestAsk, a, MaxRequestAskItem, true)
		items = append(items, "- "+a)
	}
	if len(items) > MaxRequestAsk {
		c.add(FieldRequestAsk, CodeTooManyAsked, MaxRequestAsk, len(items))
	}
	if len(items) > 0 {
		if msg != "" {
			msg += "\n\n"
		}
		msg += strings.Join(items, "\n")
	}
	c.text(FieldMessage, msg, MaxRequestMessage, false)
	if msg == "" {
		c.add(FieldMessage, CodeNothingToSend)
	}
	return msg
}

// fileRequestView is the view of a row, with its message while it lasts.
func (s *Service) fileRequestView(ctx context.Context, row *store.FileRequest) (*FileRequest, error) {
	f := &FileRequest{ID: row.ID, Requester: row.RequesterEmail, Address: row.Address, Lang: row.Lang,
		CreatedAt: row.CreatedAt, ExpiresAt: row.ExpiresAt, DoneAt: row.DoneAt, RevokedAt: row.RevokedAt,
		MaxSize: row.MaxSize, MaxFiles: row.MaxFiles, SMS: row.SMSState, SMSAt: row.SMSAt}
	if p, err := s.requestPhone(row); err != nil {
		return nil, err
	} else if p != "" {
		f.Mobile = sms.Mask(p)
	}
	if row.DetailsSealed != nil {
		var d requestDetails
		if err := s.openJSON(purposeRequestDetails, row.ID, row.DetailsSealed, &d); err != nil {
			return nil, err
		}
		f.RequesterName, f.Message = d.RequesterName, d.Message
	}
	if row.TransferID != "" {
		t, err := s.transfer(ctx, s.db.Q, row.TransferID)
		if err != nil && kluis.ErrorCode(err) != kluis.ENOTFOUND {
			return nil, err
		}
		if t != nil {
			f.Result = t
			files, err := s.db.Files(ctx, row.TransferID)
			if err != nil {
				return nil, err
			}
			f.Files = len(files)
		}
	}
	return f, nil
}

// requestByLink finds the request of a link, and refuses one that
// expired, was revoked or was sent already.
func (s *Service) requestByLink(ctx context.Context, q store.Q, access string) (*store.FileRequest, error) {
	id, ok := secret.NormalizeAccessID(access)
	if !ok {
		return nil, requestNotFound()
	}
	row, err := q.FileRequestByAccess(ctx, secret.HashToken(id))
	if errors.Is(err, store.ErrNotFound) {
		return nil, requestNotFound()
	}
	if err != nil {
		return nil, err
	}
	return row, nil
}

func requestNotFound() error {
	return kluis.Errorf(kluis.ENOTFOUND, "There is no file request at this link. Check that you copied the whole link.")
}

// requestOpen returns nil if files can still be sent on the request.
func (s *Service) requestOpen(row *store.FileRequest) error {
	switch {
	case row.RevokedAt != nil:
		return &kluis.Error{Code: kluis.EREVOKED, Message: "This file request was withdrawn.", At: row.RevokedAt}
	case row.DoneAt != nil:
		return &kluis.Error{Code: kluis.ECONFLICT, Message: "You have already sent your files for this request.", At: row.DoneAt}
	case !s.now().Before(row.ExpiresAt):
		at := row.ExpiresAt
		return &kluis.Error{Code: kluis.EEXPIRED, Message: "This file request has expired.", At: &at}
	}
	return nil
}

// FileRequestByLink is the request behind a link, for the page of the
// person asked. A request that was sent already is returned with DoneAt
// set (its page thanks them); one that expired or was revoked gives
// EEXPIRED or EREVOKED; a link never issued (or purged) ENOTFOUND. A
// request whose deadline passed with an upload not sent yet is sent now,
// as the next purge round would (sendAtDeadline), so the page can say so.
func (s *Service) FileRequestByLink(ctx context.Context, access string) (*FileRequest, error) {
	row, err := s.requestByLink(ctx, s.db.Q, access)
	if err != nil {
		return nil, err
	}
	if row.DoneAt == nil && row.RevokedAt == nil && row.TransferID != "" && !s.now().Before(row.ExpiresAt) {
		d := store.DeadlineDue{RequestID: row.ID, TransferID: row.TransferID}
		if _, err := s.sendRequestAtDeadline(audit.WithActor(ctx, audit.System), d); err != nil {
			s.log.Error("file request: sending at the deadline failed", "request", row.ID, "transfer", row.TransferID, "err", err)
		}
		if row, err = s.requestByLink(ctx, s.db.Q, access); err != nil {
			return nil, err
		}
	}
	if err := s.requestOpen(row); err != nil && row.DoneAt == nil {
		return nil, err
	}
	return s.fileRequestView(ctx, row)
}

// RequestUploadToken is the upload token of a request's transfer: a MAC
// of the link's secret under the master key, so the link gives it again
// on every visit and the database keeps only its hash.
func (s *Service) requestUploadToken(access string) string {
	return "kq_" + base64.RawURLEncoding.EncodeToString(s.keys.MAC(purposeRequestUpload, []byte(access)))
}

// RequestUpload is what the page of a request needs to upload.
type RequestUpload struct {
	Owner Owner
	// Token authorises the tus uploads (Authorization: Bearer) and
	// FinishFileRequest.
	Token string
	// Left is the size budget not used yet, FilesLeft the files.
	Left      int64
	FilesLeft int
}

// StartFileRequest makes (or finds) the transfer that receives the
// uploads of a request and puts the person's message in it (a later call
// with a message replaces it). The transfer's identity is fresh, and only
// wrapped to the requester's inbox recipient.
func (s *Service) StartFileRequest(ctx context.Context, access, message string) (*RequestUpload, error) {
	c := &checker{}
	c.text(FieldMessage, message, MaxMessageLength, false)
	if len(c.errs) > 0 {
		return nil, kluis.Invalid(c.errs...)
	}
	id, _ := secret.NormalizeAccessID(access)
	row, err := s.requestByLink(ctx, s.db.Q, access)
	if err != nil {
		return nil, err
	}
	if err := s.requestOpen(row); err != nil {
		return nil, err
	}
	token := s.requestUploadToken(id)
	tx, err := s.db.BeginTx(ctx)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	if row, err = tx.FileRequestForUpdate(ctx, row.ID); err != nil {
		return nil, err
	}
	if err := s.requestOpen(row); err != nil {
		return nil, err
	}
	now := s.now()
	var t *store.TransferRow
	if row.TransferID == "" {
		if t, err = s.newRequestTransfer(row, token, message, now); err != nil {
			return nil, err
		}
		if err := tx.InsertTransfer(ctx, t); err != nil {
			return nil, err
		}
		rr := &store.RecipientRow{TransferID: t.ID, Kind: string(kluis.KindTo), Address: row.RequesterEmail, AuthMethod: string(kluis.AuthPassword)}
		if err := tx.InsertRecipient(ctx, rr); err != nil {
			return nil, err
		}
		if err := tx.SetFileRequestTransfer(ctx, row.ID, t.ID); err != nil {
			return nil, err
		}
		if err := s.audit.Record(ctx, tx.Q, audit.Event{Actor: audit.UploadToken, Action: audit.TransferCreate, Object: t.ID,
			Detail: "request=" + row.ID + " password_mode=inbox"}); err != nil {
			return nil, err
		}
	} else {
		if t, err = tx.TransferForUpdate(ctx, row.TransferID); err != nil {
			return nil, err
		}
		if err := s.writable(t); err != nil {
			return nil, err
		}
		if err := s.replaceDraftMessage(ctx, tx, t, message); err != nil {
			return nil, err
		}
	}
	files, err := tx.Files(ctx, t.ID)
	if err != nil {
		return nil, err
	}
	used, err := s.used(ctx, tx.Q, t.ID)
	if err != nil {
		return nil, err
	}
	if err := tx.Commit(); err != nil {
		return nil, err
	}
	return &RequestUpload{Owner: Owner{TransferID: t.ID}, Token: token, Left: max(0, row.MaxSize-used), FilesLeft: max(0, row.MaxFiles-len(files))}, nil
}

// newRequestTransfer is the draft transfer of a request's upload: from
// the address asked, to the requester, until the request's expiry (Finish
// extends it for the requester to download).
func (s *Service) newRequestTransfer(row *store.FileRequest, token, message string, now time.Time) (*store.TransferRow, error) {
	inbox, err := s.keys.Open(purposeRequestInbox, row.ID, row.InboxSealed)
	if err != nil {
		return nil, &kluis.Error{Code: kluis.EINTEGRITY, Message: "Stored data failed verification.", Err: err}
	}
	to, err := age.ParseX25519Recipient(string(inbox))
	if err != nil {
		return nil, &kluis.Error{Code: kluis.EINTEGRITY, Message: "Stored data failed verification.", Err: err}
	}
	return s.newInboxTransfer(to, row.Address, row.Lang, token, message, row.ExpiresAt, now,
		storedOptions{SenderLang: row.Lang, MaxSize: row.MaxSize, MaxFiles: row.MaxFiles, Request: row.ID})
}

// newInboxTransfer is a draft transfer (mode PasswordInbox) whose fresh
// identity is wrapped only to the inbox recipient to: what is uploaded
// into it needs no secret, and only to's identity opens it.
func (s *Service) newInboxTransfer(to age.Recipient, from, lang, token, message string, expires, now time.Time, opts storedOptions) (*store.TransferRow, error) {
	identity, err := secret.GenerateIdentity()
	if err != nil {
		return nil, err
	}
	var wrapped bytes.Buffer
	w, err := age.Encrypt(&wrapped, to)
	if err != nil {
		return nil, err
	}
	if _, err := io.WriteString(w, identity.String()); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	id := secret.NewID()
	opts.HasMessage = strings.TrimSpace(message) != ""
	ob, _ := json.Marshal(opts)
	det, err := s.sealJSON(purposeDetails, id, details{})
	if err != nil {
		return nil, err
	}
	priv, err := s.sealPrivate(identity.Recipient(), purposePrivate, id, private{Message: message})
	if err != nil {
		return nil, err
	}
	return &store.TransferRow{
		ID: id, State: string(kluis.StateDraft), CreatedAt: now, ExpiresAt: expires,
		SenderEmail: from, Lang: lang, PasswordMode: string(kluis.PasswordInbox), Options: string(ob),
		UploadTokenHash: secret.HashToken(token),
		RecipientSealed: s.keys.Seal(purposeRecipient, id, []byte(identity.Recipient().String())),
		IdentitySealed:  s.keys.Seal(purposeIdentity, id, wrapped.Bytes()),
		DetailsSealed:   det,
		PrivateSealed:   priv,
	}, nil
}

// replaceDraftMessage puts message (if not blank) into a draft in place
// of the one it had.
func (s *Service) replaceDraftMessage(ctx context.Context, tx *store.Tx, t *store.TransferRow, message string) error {
	if strings.TrimSpace(message) == "" {
		return nil
	}
	r, err := s.recipientOf(t.ID, t.RecipientSealed)
	if err != nil {
		return err
	}
	priv, err := s.sealPrivate(r, purposePrivate, t.ID, private{Message: message})
	if err != nil {
		return err
	}
	opts := parseOptions(t.Options)
	opts.HasMessage = true
	ob, _ := json.Marshal(opts)
	return tx.SetTransferPrivate(ctx, t.ID, string(ob), priv)
}

// FinishFileRequest sends what was uploaded on a request to its
// requester (Finish: the malware scan, then the requester's mail). There
// must be a file or a message.
func (s *Service) FinishFileRequest(ctx context.Context, access string) error {
	row, err := s.requestByLink(ctx, s.db.Q, access)
	if err != nil {
		return err
	}
	if err := s.requestOpen(row); err != nil {
		return err
	}
	if row.TransferID == "" {
		return kluis.Errorf(kluis.EINVALID, "Add at least one file or a message before you send.")
	}
	_, err = s.Finish(ctx, Owner{TransferID: row.TransferID}, "")
	return err
}

// AddRequestFile streams one file of unknown length into a request's
// upload (the form without script): encrypted as it arrives.
func (s *Service) AddRequestFile(ctx context.Context, u *RequestUpload, name, contentType string, src io.Reader) (*kluis.File, error) {
	f, err := s.NewFile(ctx, u.Owner, name, contentType, -1)
	if err != nil {
		return nil, err
	}
	if _, err := s.WriteFile(ctx, u.Owner, f.ID, 0, src); err != nil {
		// What was written of it goes; the others stay.
		if derr := s.DeleteFile(context.WithoutCancel(ctx), u.Owner, f.ID); derr != nil {
			s.log.Error("request: delete broken file", "err", derr)
		}
		return nil, err
	}
	return s.CompleteFile(ctx, u.Owner, f.ID)
}

// finishRequest is Finish's part for a request's transfer, in its
// transaction: the request is done, and the transfer lives on for the
// requester to download (DefaultExpiry past the later of now and the
// request's expiry). atDeadline sends it at its deadline: the request
// must have reached it (and not be done or revoked); its done_at is then
// at or after its expiry, which is how a request sent at the deadline is
// told from one sent with Done (FileRequest.AtDeadline).
func (s *Service) finishRequest(ctx context.Context, tx *store.Tx, t *store.TransferRow, reqID string, now time.Time, atDeadline bool) (*store.FileRequest, error) {
	row, err := tx.FileRequestForUpdate(ctx, reqID)
	if err != nil {
		return nil, err
	}
	if atDeadline {
		if err := s.requestOpen(row); kluis.ErrorCode(err) != kluis.EEXPIRED || now.Before(row.ExpiresAt) {
			return nil, kluis.Errorf(kluis.ECONFLICT, "This file request is not waiting to be sent at its deadline.")
		}
	} else if err := s.requestOpen(row); err != nil {
		return nil, err
	}
	if err := tx.FileRequestDone(ctx, row.ID, now); err != nil {
		return nil, err
	}
	keep := row.ExpiresAt
	if now.After(keep) {
		keep = now
	}
	if err := tx.ExtendTransfer(ctx, t.ID, keep.Add(s.cfg.DefaultExpiry)); err != nil {
		return nil, err
	}
	t.ExpiresAt = keep.Add(s.cfg.DefaultExpiry)
	return row, nil
}

// notifyRequestDone queues the requester's mail that files arrived on
// their request: a link to the request's page, where they open it after
// unlocking their inbox. The mail names no file.
func (s *Service) notifyRequestDone(ctx context.Context, tx *store.Tx, t *store.TransferRow, row *store.FileRequest, files int) ([]string, error) {
	if s.mailer == nil {
		return nil, nil
	}
	var d requestDetails
	_ = s.openJSON(purposeRequestDetails, row.ID, row.DetailsSealed, &d)
	id, err := s.enqueueID(ctx, tx, mail.KindFileRequestDone, mail.Lang(d.RequesterLang), row.RequesterEmail, mail.FileRequestDone{
		Address: row.Address, Files: files, Link: s.cfg.BaseURL + "/requests/" + row.ID, ExpiresAt: t.ExpiresAt,
	})
	if err != nil {
		return nil, err
	}
	return []string{id}, nil
}

// FileRequests lists a requester's requests, newest first.
func (s *Service) FileRequests(ctx context.Context, email string) ([]*FileRequest, error) {
	rows, err := s.db.FileRequestsByRequester(ctx, email)
	if err != nil {
		return nil, err
	}
	out := make([]*FileRequest, 0, len(rows))
	for _, r := range rows {
		f, err := s.fileRequestView(ctx, r)
		if err != nil {
			return nil, err
		}
		out = append(out, f)
	}
	return out, nil
}

// ownRequest is a requester's own request; anyone else's is "not found".
func (s *Service) ownRequest(ctx context.Context, email, id string) (*store.FileRequest, error) {
	row, err := s.db.FileRequest(ctx, id)
	if errors.Is(err, store.ErrNotFound) || err == nil && !strings.EqualFold(row.RequesterEmail, email) {
		return nil, kluis.Errorf(kluis.ENOTFOUND, "This file request does not exist.")
	}
	return row, err
}

// FileRequestOf is one of a requester's own requests.
func (s *Service) FileRequestOf(ctx context.Context, email, id string) (*FileRequest, error) {
	row, err := s.ownRequest(ctx, email, id)
	if err != nil {
		return nil, err
	}
	return s.fileRequestView(ctx, row)
}

// RevokeFileRequest withdraws a request: its link stops working at once,
// and what was uploaded or sent on it is revoked (and purged) too.
func (s *Service) RevokeFileRequest(ctx context.Context, email, id string) error {
	row, err := s.ownRequest(ctx, email, id)
	if err != nil {
		return err
	}
	if err := s.db.RevokeFileRequest(ctx, row.ID, s.now()); errors.Is(err, store.ErrConflict) {
		return kluis.Errorf(kluis.ECONFLICT, "This file request was withdrawn already.")
	} else if err != nil {
		return err
	}
	if row.TransferID != "" {
		if err := s.Revoke(ctx, Owner{TransferID: row.TransferID}, ""); err != nil && kluis.ErrorCode(err) != kluis.ECONFLICT {
			return err
		}
	}
	s.audit.Log(ctx, audit.Event{Actor: audit.Sender(row.RequesterEmail), Action: audit.RequestRevoke, Object: row.ID})
	s.wakePurge()
	return nil
}

// requestResult finds the transfer sent on a requester's request and its
// recipient row (the requester).
func (s *Service) requestResult(ctx context.Context, email, id string) (*store.TransferRow, *store.RecipientRow, error) {
	row, err := s.ownRequest(ctx, email, id)
	if err != nil {
		return nil, nil, err
	}
	if row.TransferID == "" || row.DoneAt == nil {
		return nil, nil, kluis.Errorf(kluis.ENOTFOUND, "Nothing was sent on this file request yet.")
	}
	t, err := s.db.Transfer(ctx, row.TransferID)
	if err != nil {
		return nil, nil, err
	}
	rs, err := s.db.Recipients(ctx, t.ID)
	if err != nil {
		return nil, nil, err
	}
	for _, r := range rs {
		if strings.EqualFold(r.Address, email) {
			return t, r, nil
		}
	}
	return nil, nil, kluis.Errorf(kluis.ENOTFOUND, "This file request does not exist.")
}

// FileRequestLink is the Link of what was sent on a request, so a page can
// check a download session against it.
func (s *Service) FileRequestLink(ctx context.Context, email, id string) (*Link, error) {
	t, r, err := s.requestResult(ctx, email, id)
	if err != nil {
		return nil, err
	}
	return s.lookup(t, r)
}

// OpenFileRequest opens what was sent on a request with the requester's
// unlocked inbox identity: a download session as a recipient's.
func (s *Service) OpenFileRequest(ctx context.Context, email, id string, inbox *age.X25519Identity) (*Session, error) {
	t, r, err := s.requestResult(ctx, email, id)
	if err != nil {
		return nil, err
	}
	if err := s.openable(t, r); err != nil {
		return nil, err
	}
	ident, err := s.unwrapInbox(t, inbox)
	if err != nil {
		return nil, err
	}
	if err := s.db.MarkOpened(ctx, r.ID, s.now()); err != nil {
		return nil, err
	}
	sess, err := s.newSession(ctx, t, r, ident, "", false)
	if err != nil {
		return nil, err
	}
	s.audit.Log(ctx, audit.Event{Actor: audit.Sender(email), Action: audit.RequestOpen, Object: id, Detail: "transfer=" + t.ID})
	return sess, nil
}

// unwrapInbox opens the identity of a PasswordInbox transfer with the
// inbox identity it was encrypted to. Another identity gives EFORBIDDEN.
func (s *Service) unwrapInbox(t *store.TransferRow, inbox ...age.Identity) (*age.X25519Identity, error) {
	if t.PasswordMode != string(kluis.PasswordInbox) || t.IdentitySealed == nil {
		return nil, s.live(t)
	}
	wrapped, err := s.keys.Open(purposeIdentity, t.ID, t.IdentitySealed)
	if err != nil {
		return nil, &kluis.Error{Code: kluis.EINTEGRITY, Message: "Stored data failed verification.", Err: err}
	}
	r, err := age.Decrypt(bytes.NewReader(wrapped), inbox...)
	if err != nil {
		return nil, kluis.Errorf(kluis.EFORBIDDEN, "Your inbox key does not open this. It was sent to another inbox key.")
	}
	b, err := io.ReadAll(io.LimitReader(r, 1024))
	if err != nil {
		return nil, &kluis.Error{Code: kluis.EINTEGRITY, Message: "Stored data failed verification.", Err: err}
	}
	id, err := age.ParseX25519Identity(string(b))
	if err != nil {
		return nil, &kluis.Error{Code: kluis.EINTEGRITY, Message: "Stored data failed verification.", Err: err}
	}
	return id, nil
}

// FileRequestLang is the language the requester chose for the person a
// request's link is for, or "" for a link that is not known.
func (s *Service) FileRequestLang(ctx context.Context, access string) string {
	row, err := s.requestByLink(ctx, s.db.Q, access)
	if err != nil {
		return ""
	}
	return row.Lang
}
