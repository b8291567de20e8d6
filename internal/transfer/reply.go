package transfer

import (
	"context"
	"errors"
	"io"
	"strconv"
	"strings"

	"github.com/kluis-nl/kluis"
	"github.com/kluis-nl/kluis/internal/audit"
	"github.com/kluis-nl/kluis/internal/store"
)

// MaxReplyFiles bounds the files of one reply: a reply is an answer, not a
// second transfer service.
const MaxReplyFiles = 20

// ReplyRequest is what a recipient sends back.
type ReplyRequest struct {
	Message string
	// Name is the replier's own name, optional: the original sender sees
	// it in the reply's mail and pages instead of only an address.
	Name string
	// Lang is the language of the recipient's pages; their own mails (none
	// today) would use it.
	Lang string
}

// Check applies the rules a reply shares with every transfer (Validate)
// to what the recipient wrote, so a page can refuse it before it reads any
// file. StartReply checks it again through Create.
func (r ReplyRequest) Check() error {
	c := &checker{}
	c.text(FieldSenderName, r.Name, MaxNameLength, true)
	c.text(FieldMessage, r.Message, MaxMessageLength, false)
	if len(c.errs) > 0 {
		return kluis.Invalid(c.errs...)
	}
	return nil
}

// ReplyDraft is a reply being written: a new draft transfer from the
// recipient to the original sender. Add files with AddReplyFile, then
// SendReply; Abandon it on any error.
type ReplyDraft struct {
	Owner Owner
	// MaxSize is the size budget of all files together.
	MaxSize int64
	// linkSecret is set when the original had no password: the reply
	// then has no password either, and its new link secret travels only
	// in the sender's mail. Kept in memory until SendReply.
	linkSecret string
	files      int
	original   string
	recipient  int64
}

// StartReply begins a reply to the transfer of an unlocked recipient. The
// unlocked session proves the recipient's address, so no verification is
// asked. The reply goes to the original sender only, under the organisation
// policy like any transfer. It is protected by the same secret the
// recipient opened the original with: the sender knows their own password.
// A transfer that was revoked or expired (or the recipient's revoked
// access) refuses a reply.
func (s *Service) StartReply(ctx context.Context, a *Session, req ReplyRequest) (*ReplyDraft, error) {
	// The session was opened at the start of the request; look again, so
	// a revoke that happened since applies.
	t, err := s.db.Transfer(ctx, a.transfer.ID)
	if err != nil {
		return nil, err
	}
	r, err := s.db.Recipient(ctx, a.recipient.ID)
	if err != nil {
		return nil, err
	}
	if err := s.openable(t, r); err != nil {
		return nil, err
	}
	mode := kluis.PasswordMode(t.PasswordMode)
	if mode != kluis.PasswordNone && a.secret == "" {
		// A session from before passwords were kept in sessions.
		return nil, kluis.Errorf(kluis.EUNAUTHORIZED, "Open the link from your mail again and enter the password, then reply.")
	}
	lang := parseOptions(t.Options).senderLang()
	var orig details
	if err := s.openJSON(purposeDetails, t.ID, t.DetailsSealed, &orig); err != nil {
		return nil, err
	}
	cr := CreateRequest{
		SenderEmail:  r.Address,
		SenderName:   strings.TrimSpace(req.Name),
		To:           []string{t.SenderEmail},
		Message:      req.Message,
		Lang:         lang,
		SenderLang:   req.Lang,
		PasswordMode: mode,
		reuseSecret:  a.secret,
		reuseWords:   parseOptions(t.Options).WordPassword,
		replyTo:      t.ID,
		replySubject: orig.Subject,
	}
	if mode == kluis.PasswordNone {
		cr.reuseSecret = ""
	}
	ctx = audit.WithActor(ctx, audit.Recipient(r.ID))
	c, err := s.Create(ctx, cr)
	if err != nil {
		return nil, err
	}
	return &ReplyDraft{Owner: Owner{TransferID: c.Transfer.ID}, MaxSize: c.MaxSize, linkSecret: c.LinkSecret,
		original: t.ID, recipient: r.ID}, nil
}

// ReplyMaxSize is the size budget a reply from this recipient to the
// original sender would get under the policy. EPOLICY if the policy does
// not allow the reply at all.
func (s *Service) ReplyMaxSize(ctx context.Context, a *Session) (int64, error) {
	dec, err := s.decide(a.recipient.Address, []string{a.transfer.SenderEmail})
	if err != nil {
		return 0, err
	}
	return dec.Limits.MaxTransferSize, nil
}

// AddReplyFile streams one file of unknown length into the reply: it is
// encrypted as it arrives, and no plaintext touches the disk. Over the
// size budget gives ETOOLARGE.
func (s *Service) AddReplyFile(ctx context.Context, d *ReplyDraft, name, contentType string, src io.Reader) (*kluis.File, error) {
	if d.files >= MaxReplyFiles {
		c := &checker{}
		c.add(FieldFiles, CodeTooManyFiles, MaxReplyFiles)
		return nil, kluis.Invalid(c.errs...)
	}
	f, err := s.NewFile(ctx, d.Owner, name, contentType, -1)
	if err != nil {
		return nil, err
	}
	d.files++
	if _, err := s.WriteFile(ctx, d.Owner, f.ID, 0, src); err != nil {
		return nil, err
	}
	return s.CompleteFile(ctx, d.Owner, f.ID)
}

// SendReply finishes the reply: the original sender gets the notification
// mail with their link.
func (s *Service) SendReply(ctx context.Context, d *ReplyDraft) (*Finished, error) {
	ctx = audit.WithActor(ctx, audit.Recipient(d.recipient))
	out, err := s.Finish(ctx, d.Owner, d.linkSecret)
	if err != nil {
		return nil, err
	}
	d.linkSecret = ""
	s.audit.Log(ctx, audit.Event{Actor: audit.Recipient(d.recipient), Action: audit.TransferReply, Object: d.original,
		Detail: "reply=" + d.Owner.TransferID + " files=" + strconv.Itoa(d.files)})
	s.log.Info("reply sent", "transfer", d.original, "reply", d.Owner.TransferID, "recipient", d.recipient)
	return out, nil
}

// AbandonReply deletes a reply that failed before it was sent: its blobs
// and its draft row. Nothing was mailed.
func (s *Service) AbandonReply(ctx context.Context, d *ReplyDraft) error {
	ctx = context.WithoutCancel(ctx)
	d.linkSecret = ""
	if err := s.deletePrefix(ctx, "t/"+d.Owner.TransferID+"/"); err != nil {
		return err
	}
	tx, err := s.db.BeginTx(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	// Locked: a SendReply (Finish) of the same reply waits, or this sees
	// its commit.
	t, err := tx.TransferForUpdate(ctx, d.Owner.TransferID)
	if err != nil {
		return err
	}
	if t.State == string(kluis.StateReady) {
		return kluis.Errorf(kluis.ECONFLICT, "This reply was already sent.")
	}
	if err := tx.EraseTransfer(ctx, t.ID); err != nil {
		return err
	}
	if err := s.audit.Record(ctx, tx.Q, audit.Event{Actor: audit.Recipient(d.recipient), Action: audit.TransferErase, Object: t.ID,
		Result: audit.Refused, Detail: "reply abandoned"}); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	return s.deletePrefix(ctx, "t/"+d.Owner.TransferID+"/")
}

// ReplyTo returns the id of the transfer a transfer answers, or "".
func (s *Service) ReplyTo(ctx context.Context, o Owner) (string, error) {
	t, err := s.db.Transfer(ctx, o.TransferID)
	if err != nil {
		return "", err
	}
	return parseOptions(t.Options).ReplyTo, nil
}

// replyRecipient finds, for the sender's own pages, the reply replyID to
// the owner's transfer and its recipient: the owner's address. Anything
// else, a reply to another transfer included, is "not found", as an id
// that does not exist.
func (s *Service) replyRecipient(ctx context.Context, o Owner, senderEmail, replyID string) (*store.TransferRow, *store.RecipientRow, error) {
	t, err := s.db.Transfer(ctx, replyID)
	if errors.Is(err, store.ErrNotFound) || err == nil && (t.ReplyTo == "" || t.ReplyTo != o.TransferID) {
		return nil, nil, notFound()
	}
	if err != nil {
		return nil, nil, err
	}
	rs, err := s.db.Recipients(ctx, t.ID)
	if err != nil {
		return nil, nil, err
	}
	for _, r := range rs {
		if strings.EqualFold(r.Address, senderEmail) {
			return t, r, nil
		}
	}
	return nil, nil, notFound()
}

// ReplyLink is Lookup for a reply opened from its addressee's own pages
// (the sender of the original transfer o, signed in as senderEmail)
// instead of the link in the mail, which is never stored.
func (s *Service) ReplyLink(ctx context.Context, o Owner, senderEmail, replyID string) (*Link, error) {
	t, r, err := s.replyRecipient(ctx, o, senderEmail, replyID)
	if err != nil {
		return nil, err
	}
	return s.lookup(t, r)
}

// UnlockReply is Unlock for a reply opened from its addressee's own
// pages: the same password, the same lock-out and the same session as
// through the link in the mail. Signing in proves the mailbox only; the
// password is what opens the reply.
func (s *Service) UnlockReply(ctx context.Context, o Owner, senderEmail, replyID, transferSecret string) (*Session, error) {
	t, r, err := s.replyRecipient(ctx, o, senderEmail, replyID)
	if err != nil {
		return nil, err
	}
	return s.unlock(ctx, t, r, transferSecret)
}
