package transfer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/kluis-nl/kluis"
	"github.com/kluis-nl/kluis/internal/audit"
	"github.com/kluis-nl/kluis/internal/secret"
	"github.com/kluis-nl/kluis/internal/store"
)

// Limits on free text, in bytes of UTF-8.
const (
	MaxMessageLength = 100_000
	MaxSubjectLength = 200
	MaxBodyLength    = 20_000
	MaxNameLength    = 200
	MaxPhoneLength   = 40
	// MaxReferenceLength bounds the sender's own reference: a case or file
	// number, not a description.
	MaxReferenceLength = 100
)

// CreateRequest is what a sender asks for.
type CreateRequest struct {
	SenderEmail string
	SenderName  string
	SenderPhone string
	To, Cc, Bcc []string
	Message     string
	Subject     string
	Body        string
	// Reference is the sender's own reference (a case number), optional:
	// shown only on the sender's own pages, never to recipients.
	Reference string
	ExpiresAt time.Time // zero: the default expiry
	// ExpiresOn is a day (YYYY-MM-DD) as people choose it: the transfer
	// ends at 23:59 that day in Amsterdam (at the maximum expiry if that is
	// earlier). When set, ExpiresAt is not used.
	ExpiresOn    string
	Lang         string // recipients' language: a code of locale.All ("" is Dutch)
	SenderLang   string // language of the sender's own mails
	PasswordMode kluis.PasswordMode
	Password     string // manual mode only
	Options      kluis.Options
	// Files, when not nil, are the sizes of the files the sender is going
	// to upload, so a transfer with nothing in it or over its size budget
	// is refused before any byte is sent (the compose page knows them; API
	// clients add files later, and the upload enforces the budget).
	Files []int64
	// Auth is the sender's choice of verification per recipient, by
	// address; a recipient not in it gets the minimum of its policy rule.
	Auth map[string]RecipientAuth

	// reply, set only by Reply: the secret to protect the transfer with
	// (for password modes; the recipient's password of the original
	// transfer, which its sender knows) and the original transfer's id.
	reuseSecret  string
	replyTo      string
	replySubject string
	// reuseWords says the reused secret is a word password in its
	// normalised form (storedOptions.WordPassword of the original).
	reuseWords bool
}

// Created is the result of Create. Password and LinkSecret are returned
// once and never stored.
type Created struct {
	Transfer    *kluis.Transfer
	UploadToken string
	// Password is set for PasswordGenerate.
	Password string
	// LinkSecret is set for PasswordNone: the #fragment of every link. The
	// client hands it back to Finish; the server keeps it nowhere.
	LinkSecret string
	// MaxSize is the size budget of all files together (policy and server).
	MaxSize int64
}

// Create validates the request and stores a new draft transfer with its own
// age identity, wrapped by the transfer secret and sealed.
func (s *Service) Create(ctx context.Context, req CreateRequest) (*Created, error) {
	now := s.now()
	ck, err := s.Validate(req)
	if err != nil {
		return nil, err
	}
	sender, lim := ck.Sender, ck.Decision.Limits
	req.PasswordMode = ck.Mode
	req.Options.Notify, req.Options.NotifyDownload = ck.Notify, ck.Notify != kluis.NotifyNone
	// Quotas: checked here so a sender over them costs no key wrap, and
	// again inside the transaction below, which is what counts.
	if err := s.checkCreateQuota(ctx, s.db.Q, sender, req.replyTo, lim, now); err != nil {
		s.log.Info("transfer refused by quota", "action", "transfer.create", "result", "quota")
		return nil, err
	}

	out := &Created{}
	var transferSecret string
	words := false
	logN := s.cfg.PasswordLogN
	switch {
	case req.reuseSecret != "" && req.PasswordMode != kluis.PasswordNone:
		transferSecret = req.reuseSecret
		words = req.reuseWords
	case req.PasswordMode == kluis.PasswordManual:
		transferSecret = req.Password
	case req.PasswordMode == kluis.PasswordGenerate:
		// Words in the sender's language, to read out over the phone.
		out.Password = secret.GenerateWordPassword(req.SenderLang)
		transferSecret = secret.NormalizeWordPassword(out.Password)
		words = true
	default: // PasswordNone: Validate allows no other mode
		out.LinkSecret = secret.NewLinkSecret()
		transferSecret = out.LinkSecret
		logN = secret.LinkSecretLogN
	}

	id := secret.NewID()
	identity, err := secret.GenerateIdentity()
	if err != nil {
		return nil, err
	}
	wrapped, err := secret.WrapIdentity(identity, transferSecret, logN)
	if err != nil {
		return nil, fmt.Errorf("wrap identity: %w", err)
	}
	opts, _ := json.Marshal(storedOptions{Options: req.Options, HasMessage: strings.TrimSpace(req.Message) != "", SenderLang: req.SenderLang,
		MaxSize: lim.MaxTransferSize, MaxExpiry: lim.MaxExpiry, MaxBytesPerDay: lim.MaxBytesPerDay, ReplyTo: req.replyTo,
		WordPassword: words})
	det, err := s.sealJSON(purposeDetails, id, details{SenderName: req.SenderName, SenderPhone: req.SenderPhone, Subject: ck.Subject, Body: ck.Body,
		ReplySubject: req.replySubject, Reference: ck.Reference})
	if err != nil {
		return nil, err
	}
	priv, err := s.sealPrivate(identity.Recipient(), purposePrivate, id, private{Message: req.Message})
	if err != nil {
		return nil, err
	}
	out.UploadToken = secret.NewToken()
	row := &store.TransferRow{
		ID:              id,
		State:           string(kluis.StateDraft),
		CreatedAt:       now,
		ExpiresAt:       ck.ExpiresAt,
		SenderEmail:     sender,
		Lang:            ck.Lang,
		PasswordMode:    string(req.PasswordMode),
		Options:         string(opts),
		UploadTokenHash: secret.HashToken(out.UploadToken),
		RecipientSealed: s.keys.Seal(purposeRecipient, id, []byte(identity.Recipient().String())),
		IdentitySealed:  s.keys.Seal(purposeIdentity, id, wrapped),
		DetailsSealed:   det,
		PrivateSealed:   priv,
		ReplyTo:         req.replyTo,
	}
	tx, err := s.db.BeginTx(ctx)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	// The sender's lock (on SQLite the database's write lock): of parallel
	// creates by one sender, on any instance, only as many as the quotas
	// allow get past this count. A reply's sender is the recipient, so the
	// same lock covers the replies to one transfer.
	if err := tx.LockSender(ctx, sender); err != nil {
		return nil, err
	}
	if err := s.checkCreateQuota(ctx, tx.Q, sender, req.replyTo, lim, now); err != nil {
		s.log.Info("transfer refused by quota", "action", "transfer.create", "result", "quota")
		return nil, err
	}
	if err := tx.InsertTransfer(ctx, row); err != nil {
		return nil, err
	}
	second, logins := 0, 0
	for _, r := range ck.Recipients {
		row := &store.RecipientRow{TransferID: id, Kind: string(r.Kind), Address: r.Address, AuthMethod: string(r.Auth)}
		if err := tx.InsertRecipient(ctx, row); err != nil {
			return nil, err
		}
		if r.Phone != "" {
			second++
			if err := tx.SetRecipientPhone(ctx, row.ID, s.sealPhone(row.ID, r.Phone)); err != nil {
				return nil, err
			}
		}
		if r.LoginProvider != "" {
			logins++
			if err := tx.SetRecipientLogin(ctx, row.ID, r.LoginProvider, s.sealLogin(row.ID, r.LoginValue)); err != nil {
				return nil, err
			}
		}
	}
	if err := s.audit.Record(ctx, tx.Q, audit.Event{Actor: actorOr(ctx, audit.Sender(sender)), Action: audit.TransferCreate, Object: id,
		Detail: fmt.Sprintf("recipients=%d password_mode=%s sms=%d login=%d special=%t", len(ck.Recipients), req.PasswordMode, second, logins, req.Options.SpecialData)}); err != nil {
		return nil, err
	}
	if err := tx.Commit(); err != nil {
		return nil, err
	}
	t, err := s.transfer(ctx, s.db.Q, id)
	if err != nil {
		return nil, err
	}
	out.Transfer = t
	out.MaxSize = lim.MaxTransferSize
	s.log.Info("transfer created", "transfer", id, "recipients", len(ck.Recipients), "password_mode", req.PasswordMode)
	return out, nil
}

// transfer loads the plaintext view of a transfer with its recipients.
func (s *Service) transfer(ctx context.Context, q store.Q, id string) (*kluis.Transfer, error) {
	row, err := q.Transfer(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, kluis.Errorf(kluis.ENOTFOUND, "This transfer does not exist.")
	}
	if err != nil {
		return nil, err
	}
	return s.ownerView(ctx, q, row)
}

// ownerView is the sender's view: the transfer with every recipient and
// what each downloaded when.
func (s *Service) ownerView(ctx context.Context, q store.Q, row *store.TransferRow) (*kluis.Transfer, error) {
	ts, err := s.ownerViews(ctx, q, []*store.TransferRow{row}, nil)
	if err != nil {
		return nil, err
	}
	return ts[0], nil
}

// ownerViews is ownerView for many transfers, with one query for all
// their recipients, one for their downloads and (for the names, when a
// sender chose to show them) one for their files. files, if not nil, are
// the transfers' files already loaded.
func (s *Service) ownerViews(ctx context.Context, q store.Q, rows []*store.TransferRow, files map[string][]*store.FileRow) ([]*kluis.Transfer, error) {
	ids := make([]string, len(rows))
	for i, r := range rows {
		ids[i] = r.ID
	}
	rcpts, err := q.RecipientsOf(ctx, ids)
	if err != nil {
		return nil, err
	}
	downloads, err := q.DownloadsOf(ctx, ids)
	if err != nil {
		return nil, err
	}
	if files == nil {
		var named []string
		for _, r := range rows {
			if len(downloads[r.ID]) > 0 && parseOptions(r.Options).ShowFilenames {
				named = append(named, r.ID)
			}
		}
		if files, err = q.FilesOf(ctx, named); err != nil {
			return nil, err
		}
	}
	out := make([]*kluis.Transfer, len(rows))
	for i, row := range rows {
		t := s.view(row, rcpts[row.ID])
		out[i] = t
		ds := downloads[row.ID]
		if len(ds) == 0 {
			continue
		}
		names := map[int]string{}
		if parseOptions(row.Options).ShowFilenames {
			for _, f := range files[row.ID] {
				var m fileMeta
				if s.openJSON(purposeFileMeta, f.ID, f.MetaSealed, &m) == nil {
					names[f.Index] = m.Name
				}
			}
		}
		for i := range t.Recipients {
			r := &t.Recipients[i]
			for _, d := range ds {
				if d.RecipientID == r.ID {
					r.Downloads = append(r.Downloads, kluis.Download{FileIndex: d.FileIndex, Name: names[d.FileIndex], At: d.At})
				}
			}
		}
	}
	return out, nil
}

func (s *Service) view(row *store.TransferRow, rs []*store.RecipientRow) *kluis.Transfer {
	t := &kluis.Transfer{
		ID:           row.ID,
		State:        kluis.State(row.State),
		CreatedAt:    row.CreatedAt,
		ExpiresAt:    row.ExpiresAt,
		FinishedAt:   row.FinishedAt,
		RevokedAt:    row.RevokedAt,
		PurgedAt:     row.PurgedAt,
		SenderEmail:  row.SenderEmail,
		Lang:         row.Lang,
		PasswordMode: kluis.PasswordMode(row.PasswordMode),
	}
	t.Options = parseOptions(row.Options).Options
	if row.DetailsSealed != nil {
		var d details
		if err := s.openJSON(purposeDetails, row.ID, row.DetailsSealed, &d); err == nil {
			t.SenderName, t.SenderPhone = d.SenderName, d.SenderPhone
		}
	}
	for _, r := range rs {
		t.Recipients = append(t.Recipients, kluis.Recipient{
			ID: r.ID, TransferID: r.TransferID, Kind: kluis.RecipientKind(r.Kind), Address: r.Address,
			NotifiedAt: r.NotifiedAt, OpenedAt: r.OpenedAt, RevokedAt: r.RevokedAt, LockedUntil: r.LockedUntil, HeldAt: r.HeldAt, Failures: r.Failures,
			AuthMethod: kluis.AuthMethod(r.AuthMethod), Phone: s.maskedPhone(r), VerifiedAt: r.VerifiedAt,
			Login: r.LoginProvider, LoginValue: s.maskedLogin(r),
		})
	}
	return t
}
