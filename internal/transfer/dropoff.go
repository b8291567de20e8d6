package transfer

// Drop-off points (issue 17, part 1). A citizen who verified their address
// sends files and a message to a team at /to/{slug}: no password, no
// internal address. What they upload goes into a transfer of its own with
// mode PasswordInbox, as a file request's upload does (filerequest.go):
// a fresh identity whose only wrap is an age file encrypted to the team's
// current inbox key (package sender, team.go). So the server encrypts as
// it arrives, but only a team member's inbox passphrase opens it.
//
// The recipients of the transfer are the team's members at the time of
// upload (status per member, and each gets the mail). A member opens it
// with the team identities their unlocked inbox gives.

import (
	"context"
	"encoding/base64"
	"errors"
	"slices"
	"strings"
	"time"

	"filippo.io/age"

	"github.com/kluis-nl/kluis"
	"github.com/kluis-nl/kluis/internal/audit"
	"github.com/kluis-nl/kluis/internal/mail"
	"github.com/kluis-nl/kluis/internal/policy"
	"github.com/kluis-nl/kluis/internal/secret"
	"github.com/kluis-nl/kluis/internal/store"
)

const purposeDropoffUpload = "dropoff.upload"

// DropoffInput is what the /to page starts an upload with.
type DropoffInput struct {
	// Slug is the drop-off point.
	Slug string
	// Sender is the citizen's verified address.
	Sender string
	// Team is the team's current key and Generation its number (package
	// sender, TeamRecipient); Members the team's members.
	Team       age.Recipient
	Generation int
	Members    []string
	// Lang is the citizen's language; Message their message.
	Lang, Message string
}

// Dropoff finds a drop-off point of the policy. ENOTFOUND if there is
// none with slug.
func (s *Service) Dropoff(slug string) (policy.Dropoff, error) {
	d, ok := s.Policy().Dropoff(slug)
	if !ok {
		return d, kluis.Errorf(kluis.ENOTFOUND, "There is no drop-off point at this address. Check the link.")
	}
	return d, nil
}

// DropoffLimits are a drop-off point's size bound and expiry, with the
// policy's defaults and the server's settings filled in.
func (s *Service) DropoffLimits(d policy.Dropoff) (maxSize int64, expiry time.Duration) {
	def := s.Policy().Defaults()
	maxSize, expiry = d.MaxSize, d.Expiry
	if maxSize == 0 {
		maxSize = def.MaxTransferSize
	}
	if maxSize == 0 || s.cfg.MaxTransferSize > 0 && maxSize > s.cfg.MaxTransferSize {
		maxSize = s.cfg.MaxTransferSize
	}
	if expiry == 0 {
		expiry = def.DefaultExpiry
	}
	if expiry == 0 {
		expiry = s.cfg.DefaultExpiry
	}
	if s.cfg.MaxExpiry > 0 && expiry > s.cfg.MaxExpiry {
		expiry = s.cfg.MaxExpiry
	}
	return maxSize, expiry
}

// dropoffUploadToken is the upload token of a drop-off's transfer, a MAC
// of its id under the master key: the page asks for it again (from a
// verified session) after a reload, and the database keeps its hash.
func (s *Service) dropoffUploadToken(transferID string) string {
	return "kd_" + base64.RawURLEncoding.EncodeToString(s.keys.MAC(purposeDropoffUpload, []byte(transferID)))
}

// StartDropoff makes (or finds, for the same sender and point) the draft
// transfer that receives a citizen's upload to a drop-off point, with
// their message (a later call with a message replaces it).
func (s *Service) StartDropoff(ctx context.Context, in DropoffInput) (*RequestUpload, error) {
	d, err := s.Dropoff(in.Slug)
	if err != nil {
		return nil, err
	}
	c := &checker{}
	c.text(FieldMessage, in.Message, MaxMessageLength, false)
	if len(c.errs) > 0 {
		return nil, kluis.Invalid(c.errs...)
	}
	sender, err := kluis.ParseAddress(in.Sender)
	if err != nil {
		return nil, kluis.Errorf(kluis.EUNAUTHORIZED, "Verify your e-mail address first.")
	}
	if in.Team == nil || len(in.Members) == 0 {
		return nil, kluis.Errorf(kluis.ECONFLICT, "This drop-off point cannot take files right now: its team has no key yet.")
	}
	maxSize, expiry := s.DropoffLimits(d)
	now := s.now()
	tx, err := s.db.BeginTx(ctx)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	if err := tx.LockSender(ctx, sender); err != nil {
		return nil, err
	}
	var t *store.TransferRow
	open, err := tx.OpenDropoffDraft(ctx, sender, d.Slug)
	switch {
	case err == nil:
		if t, err = tx.TransferForUpdate(ctx, open.TransferID); err != nil {
			return nil, err
		}
		if err := s.writable(t); err != nil {
			return nil, err
		}
		if err := s.replaceDraftMessage(ctx, tx, t, in.Message); err != nil {
			return nil, err
		}
	case errors.Is(err, store.ErrNotFound):
		n, err := tx.CountOpenDrafts(ctx, sender, now)
		if err != nil {
			return nil, err
		}
		if n >= policy.DefaultMaxOpenDrafts {
			return nil, &kluis.Error{Code: kluis.EQUOTA, Message: "You have too many unfinished uploads. Finish or wait for them first."}
		}
		lang := mail.Lang(in.Lang)
		t, err = s.newInboxTransfer(in.Team, sender, lang, "", in.Message, now.Add(expiry), now,
			storedOptions{SenderLang: lang, MaxSize: maxSize, MaxFiles: d.MaxFiles, Dropoff: d.Slug})
		if err != nil {
			return nil, err
		}
		t.UploadTokenHash = secret.HashToken(s.dropoffUploadToken(t.ID))
		if err := tx.InsertTransfer(ctx, t); err != nil {
			return nil, err
		}
		for _, m := range in.Members {
			rr := &store.RecipientRow{TransferID: t.ID, Kind: string(kluis.KindTo), Address: m, AuthMethod: string(kluis.AuthPassword)}
			if err := tx.InsertRecipient(ctx, rr); err != nil {
				return nil, err
			}
		}
		if err := tx.InsertDropoffUpload(ctx, &store.DropoffUpload{TransferID: t.ID, Slug: d.Slug, TeamID: d.Team,
			Generation: in.Generation, SenderEmail: sender, CreatedAt: now}); err != nil {
			return nil, err
		}
		if err := s.audit.Record(ctx, tx.Q, audit.Event{Actor: audit.Sender(sender), Action: audit.TransferCreate, Object: t.ID,
			Detail: "dropoff=" + d.Slug + " password_mode=inbox"}); err != nil {
			return nil, err
		}
	default:
		return nil, err
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
	return &RequestUpload{Owner: Owner{TransferID: t.ID}, Token: s.dropoffUploadToken(t.ID),
		Left: max(0, maxSize-used), FilesLeft: max(0, d.MaxFiles-len(files))}, nil
}

// FinishDropoff sends what a sender uploaded to a drop-off point (Finish:
// the malware scan, then the team's mails).
func (s *Service) FinishDropoff(ctx context.Context, sender, slug string) (*kluis.Transfer, error) {
	open, err := s.db.OpenDropoffDraft(ctx, sender, slug)
	if errors.Is(err, store.ErrNotFound) {
		return nil, kluis.Errorf(kluis.EINVALID, "Add at least one file or a message before you send.")
	}
	if err != nil {
		return nil, err
	}
	f, err := s.Finish(ctx, Owner{TransferID: open.TransferID}, "")
	if err != nil {
		return nil, err
	}
	return f.Transfer, nil
}

// finishDropoff is Finish's part for a drop-off's transfer, in its
// transaction: the team keeps it for the point's expiry from now, and
// each member gets a mail with a link to it (after unlocking their inbox
// they open it), in the language that member last used (staffMailLang),
// not the citizen's. The mail names no file.
func (s *Service) finishDropoff(ctx context.Context, tx *store.Tx, t *store.TransferRow, slug string, files int, now time.Time) ([]string, error) {
	d, err := s.Dropoff(slug)
	if err != nil {
		// The point left the policy while the citizen uploaded: the
		// team still gets what was sent.
		d = policy.Dropoff{Slug: slug, Names: map[string]string{"nl": slug}}
	}
	_, expiry := s.DropoffLimits(d)
	if err := tx.ExtendTransfer(ctx, t.ID, now.Add(expiry)); err != nil {
		return nil, err
	}
	t.ExpiresAt = now.Add(expiry)
	if s.mailer == nil {
		return nil, nil
	}
	rs, err := tx.Recipients(ctx, t.ID)
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, r := range rs {
		lang := s.staffMailLang(ctx, r.Address)
		id, err := s.enqueueID(ctx, tx, mail.KindDropoffArrived, lang, r.Address, mail.DropoffArrived{
			Dropoff: d.Name(lang), Address: t.SenderEmail, Files: files,
			Link: s.cfg.BaseURL + "/dropoffs/" + t.ID, ExpiresAt: t.ExpiresAt,
		})
		if err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, nil
}

// staffMailLang is the language of a mail to a staff member who is not on
// a page now: the one they last used (Deps.StaffLang), whichever Kluis
// speaks; Dutch when unknown. A failed look-up is logged and falls back
// to Dutch: the mail goes either way.
func (s *Service) staffMailLang(ctx context.Context, email string) string {
	if s.staffLang == nil {
		return mail.Lang("")
	}
	lang, err := s.staffLang(ctx, email)
	if err != nil {
		s.log.Error("staff mail language", "err", err)
	}
	return mail.Lang(lang)
}

// DropoffItem is what arrived at a drop-off point, as its team sees it.
type DropoffItem struct {
	Slug, Team string
	Sender     string
	Transfer   *kluis.Transfer
	Files      int
}

// TeamDropoffs lists what arrived for the teams (newest first, at most
// 200 per team).
func (s *Service) TeamDropoffs(ctx context.Context, teams []string) ([]*DropoffItem, error) {
	var out []*DropoffItem
	for _, team := range teams {
		rows, err := s.db.TeamDropoffs(ctx, team, 200)
		if err != nil {
			return nil, err
		}
		for _, r := range rows {
			it, err := s.dropoffItem(ctx, r)
			if err != nil {
				return nil, err
			}
			if it != nil {
				out = append(out, it)
			}
		}
	}
	return out, nil
}

func (s *Service) dropoffItem(ctx context.Context, r *store.DropoffUpload) (*DropoffItem, error) {
	t, err := s.transfer(ctx, s.db.Q, r.TransferID)
	if kluis.ErrorCode(err) == kluis.ENOTFOUND {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	files, err := s.db.Files(ctx, r.TransferID)
	if err != nil {
		return nil, err
	}
	return &DropoffItem{Slug: r.Slug, Team: r.TeamID, Sender: r.SenderEmail, Transfer: t, Files: len(files)}, nil
}

// DropoffOf is one finished drop-off of one of teams. ENOTFOUND for
// anything else.
func (s *Service) DropoffOf(ctx context.Context, teams []string, transferID string) (*DropoffItem, error) {
	r, err := s.teamDropoff(ctx, teams, transferID)
	if err != nil {
		return nil, err
	}
	it, err := s.dropoffItem(ctx, r)
	if err == nil && it == nil {
		err = errDropoffNotFound()
	}
	return it, err
}

func errDropoffNotFound() error {
	return kluis.Errorf(kluis.ENOTFOUND, "This was not sent to your team, or it no longer exists.")
}

func (s *Service) teamDropoff(ctx context.Context, teams []string, transferID string) (*store.DropoffUpload, error) {
	r, err := s.db.DropoffUpload(ctx, transferID)
	if errors.Is(err, store.ErrNotFound) || err == nil && !slices.Contains(teams, r.TeamID) {
		return nil, errDropoffNotFound()
	}
	return r, err
}

// dropoffResult is a finished drop-off's transfer and the member's
// recipient row; a member who joined after it arrived gets a row now.
func (s *Service) dropoffResult(ctx context.Context, email string, teams []string, transferID string) (*store.TransferRow, *store.RecipientRow, error) {
	if _, err := s.teamDropoff(ctx, teams, transferID); err != nil {
		return nil, nil, err
	}
	t, err := s.db.Transfer(ctx, transferID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil, errDropoffNotFound()
	}
	if err != nil {
		return nil, nil, err
	}
	if t.State == string(kluis.StateDraft) || t.State == string(kluis.StateUploading) {
		return nil, nil, errDropoffNotFound()
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
	r := &store.RecipientRow{TransferID: t.ID, Kind: string(kluis.KindTo), Address: email, AuthMethod: string(kluis.AuthPassword)}
	if err := s.db.InsertRecipient(ctx, r); err != nil {
		return nil, nil, err
	}
	return t, r, nil
}

// DropoffLink is the Link of a drop-off for a member, so a page can check
// a download session against it.
func (s *Service) DropoffLink(ctx context.Context, email string, teams []string, transferID string) (*Link, error) {
	t, r, err := s.dropoffResult(ctx, email, teams, transferID)
	if err != nil {
		return nil, err
	}
	return s.lookup(t, r)
}

// OpenDropoff opens a drop-off for a team member with the team identities
// their unlocked inbox gave (package sender, TeamIdentities): a download
// session as a recipient's. EFORBIDDEN if none of them opens it (the
// member was not in the team, or was removed, when it arrived).
func (s *Service) OpenDropoff(ctx context.Context, email string, teams []string, transferID string, ids []age.Identity) (*Session, error) {
	t, r, err := s.dropoffResult(ctx, email, teams, transferID)
	if err != nil {
		return nil, err
	}
	if err := s.openable(t, r); err != nil {
		return nil, err
	}
	ident, err := s.unwrapInbox(t, ids...)
	if err != nil {
		if kluis.ErrorCode(err) == kluis.EFORBIDDEN {
			s.audit.Log(ctx, audit.Event{Actor: audit.Sender(email), Action: audit.DropoffOpen, Object: t.ID, Result: audit.Refused})
			return nil, kluis.Errorf(kluis.EFORBIDDEN, "Your team key does not open this. It arrived while you were not in the team.")
		}
		return nil, err
	}
	if err := s.db.MarkOpened(ctx, r.ID, s.now()); err != nil {
		return nil, err
	}
	sess, err := s.newSession(ctx, t, r, ident, "", false)
	if err != nil {
		return nil, err
	}
	s.audit.Log(ctx, audit.Event{Actor: audit.Sender(email), Action: audit.DropoffOpen, Object: t.ID})
	return sess, nil
}
