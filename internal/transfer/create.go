package transfer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/kluis-nl/kluis"
	"github.com/kluis-nl/kluis/internal/audit"
	"github.com/kluis-nl/kluis/internal/locale"
	"github.com/kluis-nl/kluis/internal/policy"
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
)

// CreateRequest is what a sender asks for.
type CreateRequest struct {
	SenderEmail  string
	SenderName   string
	SenderPhone  string
	To, Cc, Bcc  []string
	Message      string
	Subject      string
	Body         string
	ExpiresAt    time.Time // zero: the default expiry
	Lang         string    // recipients' language: a code of locale.All ("" is Dutch)
	SenderLang   string    // language of the sender's own mails
	PasswordMode kluis.PasswordMode
	Password     string // manual mode only
	Options      kluis.Options

	// reply, set only by Reply: the secret to protect the transfer with
	// (for password modes; the recipient's password of the original
	// transfer, which its sender knows) and the original transfer's id.
	reuseSecret string
	replyTo     string
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
	sender, err := kluis.ParseAddress(req.SenderEmail)
	if err != nil {
		return nil, kluis.Errorf(kluis.EINVALID, "Sender: %s", kluis.ErrorMessage(err))
	}
	if err := checkText("sender name", req.SenderName, MaxNameLength, true); err != nil {
		return nil, err
	}
	if err := checkText("phone number", req.SenderPhone, MaxPhoneLength, true); err != nil {
		return nil, err
	}
	if err := checkText("confidential message", req.Message, MaxMessageLength, false); err != nil {
		return nil, err
	}
	if err := checkText("subject", req.Subject, MaxSubjectLength, true); err != nil {
		return nil, err
	}
	if err := checkText("mail text", req.Body, MaxBodyLength, false); err != nil {
		return nil, err
	}
	lang, err := recipientLang(req.Lang)
	if err != nil {
		return nil, err
	}
	type rcpt struct {
		kind kluis.RecipientKind
		addr string
	}
	var rcpts []rcpt
	seen := map[string]bool{}
	for _, group := range []struct {
		kind  kluis.RecipientKind
		addrs []string
	}{{kluis.KindTo, req.To}, {kluis.KindCc, req.Cc}, {kluis.KindBcc, req.Bcc}} {
		for _, a := range group.addrs {
			addr, err := kluis.ParseAddress(a)
			if err != nil {
				return nil, kluis.Errorf(kluis.EINVALID, "%s: %s", strings.ToUpper(string(group.kind)), kluis.ErrorMessage(err))
			}
			if seen[strings.ToLower(addr)] {
				continue
			}
			seen[strings.ToLower(addr)] = true
			rcpts = append(rcpts, rcpt{group.kind, addr})
		}
	}
	if len(rcpts) == 0 {
		return nil, kluis.Errorf(kluis.EINVALID, "Add at least one recipient.")
	}
	// The organisation's policy: may this sender send to these recipients,
	// and with which limits (never above the Config's).
	addrs := make([]string, len(rcpts))
	for i, r := range rcpts {
		addrs[i] = r.addr
	}
	dec, err := s.decide(sender, addrs)
	if err != nil {
		return nil, err
	}
	lim := dec.Limits
	if len(rcpts) > lim.MaxRecipients {
		return nil, limitError(dec, policy.FieldMaxRecipients, "A transfer can have at most %d recipients; this one has %d", lim.MaxRecipients, len(rcpts))
	}
	expires := req.ExpiresAt
	if expires.IsZero() {
		expires = now.Add(lim.DefaultExpiry)
	}
	if !expires.After(now) {
		return nil, kluis.Errorf(kluis.EINVALID, "The expiry date must be in the future.")
	}
	if max := now.Add(lim.MaxExpiry); expires.After(max) {
		return nil, limitError(dec, policy.FieldMaxExpiry, "The expiry date can be at most %d days from now", int(lim.MaxExpiry.Hours()/24))
	}
	if strings.TrimSpace(req.Message) != "" && !lim.AllowMessage {
		return nil, limitError(dec, policy.FieldAllowMessage, "A confidential message is not allowed for this transfer; send files only")
	}
	if (strings.TrimSpace(req.Subject) != "" || strings.TrimSpace(req.Body) != "") && !lim.AllowCustomText {
		return nil, limitError(dec, policy.FieldAllowCustomText, "An edited subject or text of the notification mail is not allowed for this transfer; leave them empty")
	}
	if req.Options.ShowFilenames && !lim.AllowShowFilenames {
		return nil, limitError(dec, policy.FieldAllowShowFilenames, "Showing file names in the recipients' mails is not allowed for this transfer; turn show_filenames off")
	}
	if req.PasswordMode == "" {
		req.PasswordMode = kluis.PasswordGenerate
	}
	if req.PasswordMode.Valid() && !lim.AllowsPassword(req.PasswordMode) {
		allowed := "none"
		if len(lim.PasswordModes) > 0 {
			var ms []string
			for _, m := range lim.PasswordModes {
				ms = append(ms, string(m))
			}
			allowed = strings.Join(ms, ", ")
		}
		return nil, limitError(dec, policy.FieldPasswordModes, "Password mode %q is not allowed for this transfer; allowed: %s", req.PasswordMode, allowed)
	}
	// Quotas: checked here so a sender over them costs no key wrap, and
	// again inside the transaction below, which is what counts.
	if err := s.checkCreateQuota(ctx, s.db.Q, sender, req.replyTo, lim, now); err != nil {
		s.log.Info("transfer refused by quota", "action", "transfer.create", "result", "quota")
		return nil, err
	}

	out := &Created{}
	var transferSecret string
	logN := s.cfg.PasswordLogN
	switch req.PasswordMode {
	case kluis.PasswordGenerate, kluis.PasswordManual:
		if req.reuseSecret == "" {
			break
		}
		if req.Password != "" {
			return nil, kluis.Errorf(kluis.EINVALID, "A reply uses the password of the original transfer; do not give one.")
		}
		transferSecret = req.reuseSecret
	}
	switch {
	case transferSecret != "":
	case req.PasswordMode == kluis.PasswordManual:
		if err := secret.CheckPassword(req.Password); err != nil {
			return nil, err
		}
		transferSecret = req.Password
	case req.PasswordMode == kluis.PasswordGenerate || req.PasswordMode == "":
		req.PasswordMode = kluis.PasswordGenerate
		out.Password = secret.GeneratePassword()
		transferSecret = out.Password
	case req.PasswordMode == kluis.PasswordNone:
		out.LinkSecret = secret.NewLinkSecret()
		transferSecret = out.LinkSecret
		logN = secret.LinkSecretLogN
	default:
		return nil, kluis.Errorf(kluis.EINVALID, "Password mode %q is unknown. Choose none, generate or manual.", req.PasswordMode)
	}
	if req.PasswordMode != kluis.PasswordManual && req.Password != "" {
		return nil, kluis.Errorf(kluis.EINVALID, "A password was given, but the password mode is %q. Use mode manual to set your own password.", req.PasswordMode)
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
		MaxSize: lim.MaxTransferSize, MaxExpiry: lim.MaxExpiry, MaxBytesPerDay: lim.MaxBytesPerDay, ReplyTo: req.replyTo})
	det, err := s.sealJSON(purposeDetails, id, details{SenderName: req.SenderName, SenderPhone: req.SenderPhone, Subject: req.Subject, Body: req.Body})
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
		ExpiresAt:       expires,
		SenderEmail:     sender,
		Lang:            lang,
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
	// Write transactions run one at a time (store.BeginTx), so of parallel
	// creates only as many as the quota allows get past this count.
	if err := s.checkCreateQuota(ctx, tx.Q, sender, req.replyTo, lim, now); err != nil {
		s.log.Info("transfer refused by quota", "action", "transfer.create", "result", "quota")
		return nil, err
	}
	if err := tx.InsertTransfer(ctx, row); err != nil {
		return nil, err
	}
	for _, r := range rcpts {
		if err := tx.InsertRecipient(ctx, &store.RecipientRow{TransferID: id, Kind: string(r.kind), Address: r.addr}); err != nil {
			return nil, err
		}
	}
	if err := s.audit.Record(ctx, tx.Q, audit.Event{Actor: actorOr(ctx, audit.Sender(sender)), Action: audit.TransferCreate, Object: id,
		Detail: fmt.Sprintf("recipients=%d password_mode=%s", len(rcpts), req.PasswordMode)}); err != nil {
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
	s.log.Info("transfer created", "transfer", id, "recipients", len(rcpts), "password_mode", req.PasswordMode)
	return out, nil
}

func checkText(what, v string, max int, singleLine bool) error {
	if !utf8.ValidString(v) {
		return kluis.Errorf(kluis.EINVALID, "The %s contains characters that are not valid text.", what)
	}
	if len(v) > max {
		return kluis.Errorf(kluis.EINVALID, "The %s is too long: at most %d characters.", what, max)
	}
	if singleLine && strings.ContainsAny(v, "\r\n\x00") {
		return kluis.Errorf(kluis.EINVALID, "The %s must be one line.", what)
	}
	if strings.ContainsRune(v, 0) {
		return kluis.Errorf(kluis.EINVALID, "The %s contains a NUL character.", what)
	}
	return nil
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
	rs, err := q.Recipients(ctx, row.ID)
	if err != nil {
		return nil, err
	}
	t := s.view(row, rs)
	downloads, err := q.Downloads(ctx, row.ID)
	if err != nil || len(downloads) == 0 {
		return t, err
	}
	names := map[int]string{}
	if parseOptions(row.Options).ShowFilenames {
		files, err := q.Files(ctx, row.ID)
		if err != nil {
			return nil, err
		}
		for _, f := range files {
			var m fileMeta
			if s.openJSON(purposeFileMeta, f.ID, f.MetaSealed, &m) == nil {
				names[f.Index] = m.Name
			}
		}
	}
	for i := range t.Recipients {
		r := &t.Recipients[i]
		for _, d := range downloads {
			if d.RecipientID == r.ID {
				r.Downloads = append(r.Downloads, kluis.Download{FileIndex: d.FileIndex, Name: names[d.FileIndex], At: d.At})
			}
		}
	}
	return t, nil
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
		})
	}
	return t
}

// recipientLang reads the recipients' language of a new transfer: any
// language Kluis speaks, as its code ("DE" and "de-AT" are "de"); "" is
// the default, Dutch.
func recipientLang(s string) (string, error) {
	if strings.TrimSpace(s) == "" {
		return string(locale.Default), nil
	}
	l, ok := locale.Parse(s)
	if !ok {
		return "", kluis.Errorf(kluis.EINVALID, "Language %q is not supported. Choose one of %s.", s, strings.Join(locale.Codes(), ", "))
	}
	return string(l), nil
}
