package transfer

import (
	"context"
	"errors"
	"time"

	"github.com/kluis-nl/kluis/internal/mail"
	"github.com/kluis-nl/kluis/internal/store"
)

// A transfer made from a mail (the SMTP gateway, issue 18) can be refused
// after the gateway accepted the mail with 250: when the malware scan had
// to wait (clamd away, fail-closed) and then refuses a file or gives up.
// The sender then gets a non-delivery report (mail.KindNotDelivered)
// instead of the web's scan notice: it speaks of their e-mail, quotes its
// subject so they know which one, and lists its recipients; it never holds
// the text or the attachments.
//
// The subject waits for that, sealed under the master key, only while the
// transfer can still be refused (draft or waiting for its scan); in that
// window the gateway's generated password also waits sealed under the
// master key (docs/security.md "Mail gateway"), and it opens the message
// that starts with the same subject.

// purposeMailSubject seals mail_origins.subject_sealed.
const purposeMailSubject = "transfer.mail_subject"

// NoteMailOrigin records that the transfer of o was made from a mail with
// this subject (marker removed), received at; the gateway calls it right
// after Create.
func (s *Service) NoteMailOrigin(ctx context.Context, o Owner, subject string, received time.Time) error {
	return s.db.InsertMailOrigin(ctx, &store.MailOrigin{TransferID: o.TransferID,
		SubjectSealed: s.keys.Seal(purposeMailSubject, o.TransferID, []byte(subject)), ReceivedAt: received})
}

// ForgetMailOrigins erases the subjects of mails whose transfers can no
// longer be refused (sent, or gone).
func (s *Service) ForgetMailOrigins(ctx context.Context) (int64, error) {
	n, err := s.db.DeleteSettledMailOrigins(ctx)
	if err != nil || n == 0 {
		return n, err
	}
	return n, s.db.Checkpoint(ctx)
}

// notDelivered writes, in tx, the non-delivery report for transfer t made
// from a mail and refused by its scan (reason and file as for
// mail.ScanFailed; since: when the scan began to wait). It reports false
// for a transfer not made from a mail: the caller sends its own notice.
func (s *Service) notDelivered(ctx context.Context, tx *store.Tx, t *store.TransferRow, reason string, file mail.FileRef, since time.Time) (bool, error) {
	m, err := tx.TakeMailOrigin(ctx, t.ID)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	subject, err := s.keys.Open(purposeMailSubject, t.ID, m.SubjectSealed)
	if err != nil {
		return false, err
	}
	rs, err := tx.Recipients(ctx, t.ID)
	if err != nil {
		return false, err
	}
	to := make([]string, 0, len(rs))
	for _, r := range rs {
		to = append(to, r.Address)
	}
	return true, s.enqueue(ctx, tx, mail.KindNotDelivered, parseOptions(t.Options).senderLang(), t.SenderEmail, mail.NotDelivered{
		Subject: string(subject), SentAt: m.ReceivedAt, Recipients: to, Reason: reason, File: file, Since: since,
	})
}
