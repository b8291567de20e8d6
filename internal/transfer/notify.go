package transfer

import (
	"context"
	"slices"
	"time"

	"github.com/kluis-nl/kluis"
	"github.com/kluis-nl/kluis/internal/audit"
	"github.com/kluis-nl/kluis/internal/mail"
	"github.com/kluis-nl/kluis/internal/secret"
	"github.com/kluis-nl/kluis/internal/store"
)

// Mailer queues mail in the caller's transaction (the outbox), so a mail
// exists exactly when the change that causes it was committed.
type Mailer interface {
	Enqueue(ctx context.Context, tx *store.Tx, m *mail.Message) (string, error)
	// Wake tells the worker that new mail was committed.
	Wake()
}

func (s *Service) enqueue(ctx context.Context, tx *store.Tx, kind mail.Kind, lang, to string, data any) error {
	_, err := s.enqueueID(ctx, tx, kind, lang, to, data)
	return err
}

// enqueueID is enqueue that returns the outbox id of the mail ("" without
// a mailer).
func (s *Service) enqueueID(ctx context.Context, tx *store.Tx, kind mail.Kind, lang, to string, data any) (string, error) {
	if s.mailer == nil {
		return "", nil
	}
	m, err := mail.Render(kind, lang, s.org, to, data)
	if err != nil {
		return "", err
	}
	return s.mailer.Enqueue(ctx, tx, m)
}

func (s *Service) wakeMailer() {
	if s.mailer != nil {
		s.mailer.Wake()
	}
}

// fileRefs lists a transfer's files for mails: names only when the sender
// chose to show them (their names are then kept sealed for this purpose).
func (s *Service) fileRefs(files []*store.FileRow, show bool) ([]mail.FileRef, error) {
	refs := make([]mail.FileRef, 0, len(files))
	for _, f := range files {
		var m fileMeta
		if err := s.openJSON(purposeFileMeta, f.ID, f.MetaSealed, &m); err != nil {
			return nil, err
		}
		ref := mail.FileRef{Index: f.Index + 1, Count: len(files), Size: m.Size}
		if show {
			ref.Name = m.Name
		}
		refs = append(refs, ref)
	}
	return refs, nil
}

// notifyReady queues one notification per recipient (each with only its
// own address and its own link) and the sender's confirmation, and returns
// the outbox ids of those mails.
func (s *Service) notifyReady(ctx context.Context, tx *store.Tx, t *store.TransferRow, files []*store.FileRow, links []RecipientLink) ([]string, error) {
	if s.mailer == nil {
		return nil, nil
	}
	opts := parseOptions(t.Options)
	var d details
	if err := s.openJSON(purposeDetails, t.ID, t.DetailsSealed, &d); err != nil {
		return nil, err
	}
	refs, err := s.fileRefs(files, opts.ShowFilenames)
	if err != nil {
		return nil, err
	}
	var ids []string
	var visible []string
	var lines []mail.RecipientLine
	for _, l := range links {
		if l.Recipient.Kind != kluis.KindBcc {
			visible = append(visible, l.Recipient.Address)
		}
		lines = append(lines, mail.RecipientLine{Address: l.Recipient.Address, Kind: string(l.Recipient.Kind)})
	}
	senderName := d.SenderName
	if senderName == "" {
		senderName = t.SenderEmail
	}
	for _, l := range links {
		n := mail.Notify{
			SenderName: senderName, SenderPhone: d.SenderPhone, SenderEmail: t.SenderEmail,
			Subject: d.Subject, BodyHTML: d.Body,
			Link: l.URL, AccessCode: secret.FormatReceiveCode(l.Code),
			ExpiresAt: t.ExpiresAt, PasswordRequired: t.PasswordMode != string(kluis.PasswordNone),
			VisibleRecipients: visible, Files: refs, HasMessage: opts.HasMessage,
			Reply: opts.ReplyTo != "", ReplySubject: d.ReplySubject,
		}
		id, err := s.enqueueID(ctx, tx, mail.KindNotify, t.Lang, l.Recipient.Address, n)
		if err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	if opts.Confirm {
		c := mail.Confirm{
			TransferID: t.ID, Subject: d.Subject, Recipients: lines, Files: refs, HasMessage: opts.HasMessage,
			ExpiresAt: t.ExpiresAt, PasswordMode: t.PasswordMode, NotifyDownload: opts.NotifyDownload,
			ShowFilenames: opts.ShowFilenames, RecipientLang: t.Lang, StatusURL: s.statusURL(t.ID),
		}
		id, err := s.enqueueID(ctx, tx, mail.KindConfirm, opts.senderLang(), t.SenderEmail, c)
		if err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, nil
}

// statusURL is the link to the sender's status page ("my transfers") in
// mails. The page asks the sender to verify their address first.
func (s *Service) statusURL(transferID string) string {
	return s.cfg.BaseURL + "/transfers/" + transferID
}

// notifyDownload tells the sender who downloaded what (fileIndex -1: all
// files, as a ZIP). The caller decides by the transfer's notice mode
// whether a notice is due (notices).
func (s *Service) notifyDownload(ctx context.Context, tx *store.Tx, t *store.TransferRow, r *store.RecipientRow, fileIndex int, at time.Time) error {
	opts := parseOptions(t.Options)
	if s.mailer == nil {
		return nil
	}
	files, err := tx.Files(ctx, t.ID)
	if err != nil {
		return err
	}
	ref := mail.FileRef{Index: -1, Count: len(files)}
	if fileIndex >= 0 {
		// Without its row (a purge since the download began) the file is
		// still named by its position.
		ref = mail.FileRef{Index: fileIndex + 1, Count: max(len(files), fileIndex+1)}
		refs, err := s.fileRefs(files, opts.ShowFilenames)
		if err != nil {
			return err
		}
		for _, f := range refs {
			if f.Index == fileIndex+1 {
				ref = f
			}
		}
	}
	var d details
	_ = s.openJSON(purposeDetails, t.ID, t.DetailsSealed, &d)
	return s.enqueue(ctx, tx, mail.KindDownload, opts.senderLang(), t.SenderEmail,
		mail.Download{Recipient: r.Address, File: ref, At: at, Subject: d.Subject, StatusURL: s.statusURL(t.ID)})
}

// notifySummary queues the sender's download summary of transfer id when
// it asked for one (kluis.NotifySummary) and its recipients were notified.
// The purge calls it in the transaction that claims the transfer and
// erases its content, so the summary is queued exactly once (the claim
// and purged_at commit with it) and can still name the files. It reports
// whether it queued a mail. A summary that cannot be rendered is logged
// and skipped: a mail must never hold up the erasure.
func (s *Service) notifySummary(ctx context.Context, tx *store.Tx, id string) (bool, error) {
	if s.mailer == nil {
		return false, nil
	}
	t, err := tx.Transfer(ctx, id)
	if err != nil {
		return false, err
	}
	opts := parseOptions(t.Options)
	if opts.NotifyMode() != kluis.NotifySummary {
		return false, nil
	}
	rs, err := tx.Recipients(ctx, id)
	if err != nil {
		return false, err
	}
	if !slices.ContainsFunc(rs, func(r *store.RecipientRow) bool { return r.NotifiedAt != nil }) {
		return false, nil // never sent: nobody could download
	}
	downloads, err := tx.Downloads(ctx, id)
	if err != nil {
		return false, err
	}
	files, err := tx.Files(ctx, id)
	if err != nil {
		return false, err
	}
	refs, err := s.fileRefs(files, opts.ShowFilenames)
	if err != nil {
		// Unreadable metadata: name the files by position only.
		s.log.Warn("download summary without file details", "transfer", id, "err", err)
		refs = nil
	}
	ref := func(idx int) mail.FileRef {
		if idx < 0 {
			return mail.FileRef{Index: -1, Count: len(files)}
		}
		for _, f := range refs {
			if f.Index == idx+1 {
				return f
			}
		}
		return mail.FileRef{Index: idx + 1, Count: max(len(files), idx+1), Size: -1}
	}
	sum := mail.Summary{Ended: t.ExpiresAt, StatusURL: s.statusURL(t.ID)}
	if t.RevokedAt != nil && t.RevokedAt.Before(t.ExpiresAt) {
		sum.Ended, sum.Revoked = *t.RevokedAt, true
	}
	var d details
	_ = s.openJSON(purposeDetails, t.ID, t.DetailsSealed, &d)
	sum.Subject = d.Subject
	for _, r := range rs {
		if r.NotifiedAt == nil {
			continue
		}
		line := mail.SummaryRecipient{Address: r.Address}
		for _, dl := range downloads { // oldest first
			if dl.RecipientID == r.ID {
				line.Downloads = append(line.Downloads, mail.Downloaded{File: ref(dl.FileIndex), At: dl.At})
			}
		}
		sum.Recipients = append(sum.Recipients, line)
	}
	m, err := mail.Render(mail.KindSummary, opts.senderLang(), s.org, t.SenderEmail, sum)
	if err != nil {
		s.log.Error("download summary not rendered; skipped", "transfer", id, "err", err)
		return false, nil
	}
	if _, err := s.mailer.Enqueue(ctx, tx, m); err != nil {
		return false, err
	}
	return true, nil
}

// notifyLockout tells the sender that a recipient's access was locked
// (until a time, or with until nil until the sender unblocks it), after
// total wrong attempts, with the one-time unblock link for token.
func (s *Service) notifyLockout(ctx context.Context, tx *store.Tx, t *store.TransferRow, r *store.RecipientRow, until *time.Time, total int, token string) error {
	var d details
	_ = s.openJSON(purposeDetails, t.ID, t.DetailsSealed, &d)
	m := mail.Lockout{Recipient: r.Address, Failures: total, Subject: d.Subject, StatusURL: s.statusURL(t.ID),
		UnlockURL: s.statusURL(t.ID) + "/unlock/" + token}
	if until != nil {
		m.Until = *until
	}
	return s.enqueue(ctx, tx, mail.KindLockout, parseOptions(t.Options).senderLang(), t.SenderEmail, m)
}

// notifyRevoked tells recipients who were notified that the transfer is
// withdrawn.
func (s *Service) notifyRevoked(ctx context.Context, tx *store.Tx, t *store.TransferRow, rs []*store.RecipientRow, at time.Time) error {
	var d details
	_ = s.openJSON(purposeDetails, t.ID, t.DetailsSealed, &d)
	name := d.SenderName
	if name == "" {
		name = t.SenderEmail
	}
	for _, r := range rs {
		if r.NotifiedAt == nil {
			continue
		}
		if err := s.enqueue(ctx, tx, mail.KindRevoked, t.Lang, r.Address,
			mail.Revoked{SenderName: name, SenderEmail: t.SenderEmail, At: at, Subject: d.Subject}); err != nil {
			return err
		}
	}
	return nil
}

// notifyStaffRevoked queues the mail to the sender of t that the helpdesk
// revoked it, with the reason in ctx: the transfer's number and subject,
// never its message or files.
func (s *Service) notifyStaffRevoked(ctx context.Context, tx *store.Tx, t *store.TransferRow, at time.Time) error {
	var d details
	_ = s.openJSON(purposeDetails, t.ID, t.DetailsSealed, &d)
	return s.enqueue(ctx, tx, mail.KindStaffRevoked, parseOptions(t.Options).senderLang(), t.SenderEmail,
		mail.StaffRevoked{TransferID: t.ID, Subject: d.Subject, Reason: audit.Reason(ctx), At: at, StatusURL: s.statusURL(t.ID)})
}

// senderLang is the language of the sender's own mails: the one the sender
// verified in (the page's language, or lang in the API), whichever Kluis
// speaks; Dutch when unknown.
func (o storedOptions) senderLang() string { return mail.Lang(o.SenderLang) }

// ReminderLead is how long before expiry the optional reminder goes out.
const ReminderLead = 24 * time.Hour

// remind queues the expiry reminders that are due: once per transfer, to a
// sender who asked for it, a day before expiry.
func (s *Service) remind(ctx context.Context) error {
	if s.mailer == nil {
		return nil
	}
	now := s.now()
	ids, err := s.db.DueForReminder(ctx, now, now.Add(ReminderLead), 100)
	if err != nil {
		return err
	}
	for _, id := range ids {
		if err := s.remindOne(ctx, id, now); err != nil {
			return err
		}
	}
	if len(ids) > 0 {
		s.wakeMailer()
	}
	return nil
}

func (s *Service) remindOne(ctx context.Context, id string, now time.Time) error {
	tx, err := s.db.BeginTx(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	// Claim the reminder first: another instance may have sent it since
	// DueForReminder (the claim is one conditional update; a parallel
	// claim waits for this transaction and then finds it claimed).
	if claimed, err := tx.ClaimReminder(ctx, id, now); err != nil || !claimed {
		return err
	}
	t, err := tx.Transfer(ctx, id)
	if err != nil {
		return err
	}
	opts := parseOptions(t.Options)
	if opts.RemindExpiry {
		rs, err := tx.Recipients(ctx, id)
		if err != nil {
			return err
		}
		downloads, err := tx.Downloads(ctx, id)
		if err != nil {
			return err
		}
		got := map[int64]bool{}
		for _, d := range downloads {
			got[d.RecipientID] = true
		}
		waiting := 0
		for _, r := range rs {
			if r.RevokedAt == nil && !got[r.ID] {
				waiting++
			}
		}
		if waiting > 0 {
			var d details
			_ = s.openJSON(purposeDetails, t.ID, t.DetailsSealed, &d)
			if err := s.enqueue(ctx, tx, mail.KindExpiryReminder, opts.senderLang(), t.SenderEmail,
				mail.ExpiryReminder{ExpiresAt: t.ExpiresAt, StatusURL: s.statusURL(t.ID), Recipients: waiting, Subject: d.Subject}); err != nil {
				return err
			}
		}
	}
	return tx.Commit()
}
