package transfer

// The SMS of a file request (issue 17): a person asked for files may have
// a mobile number, and then also gets the personal upload link by SMS.
// The number is sealed under the master key (file_requests.phone_sealed,
// in SealedValues) and shown only masked. The SMS goes through the
// outbox like the mail with the same link: sealed under the master key
// while it waits, retried, and erased once sent or given up. The outbox
// tells the engine the outcome (RequestSMSResult), which the requester's
// pages and the API show per person.
//
// Pairing: FileRequestInput.Mobiles maps an address of the request to a
// number; the key "" stands for the only address of a request to one
// person (the web form's single field, kluis request --mobile NUMBER).

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/kluis-nl/kluis"
	"github.com/kluis-nl/kluis/internal/locale"
	"github.com/kluis-nl/kluis/internal/mail"
	"github.com/kluis-nl/kluis/internal/sms"
	"github.com/kluis-nl/kluis/internal/store"
)

const purposeRequestPhone = "request.phone"

// FieldRequestMobile is the field of a file request's mobile numbers.
const FieldRequestMobile = "mobile"

// Problems of a file request's mobile number (besides CodePhoneCountry,
// CodePhoneInvalid, with the address as argument).
const (
	// CodeMobileOneAddress: a number without an address, for a request to
	// several people.
	CodeMobileOneAddress = "mobile_one_address"
	// CodeMobileNotAsked: a number for an address the request does not go
	// to.
	CodeMobileNotAsked = "mobile_not_asked"
	// CodeMobileUnavailable: a number while no SMS gateway is set.
	CodeMobileUnavailable = "mobile_unavailable"
)

// requestMobiles checks the numbers of a request against its addresses
// and returns the E.164 number of each address that has one (keyed by
// the address as the request stores it).
func (s *Service) requestMobiles(c *checker, in map[string]string, rs []Addressee) map[string]string {
	out := map[string]string{}
	for key, number := range in {
		if strings.TrimSpace(number) == "" {
			continue
		}
		addr := ""
		key = strings.TrimSpace(key)
		if key == "" {
			if len(rs) != 1 {
				c.add(FieldRequestMobile, CodeMobileOneAddress)
				continue
			}
			addr = rs[0].Address
		} else {
			for _, r := range rs {
				if strings.EqualFold(r.Address, key) {
					addr = r.Address
				}
			}
			if addr == "" {
				c.add(FieldRequestMobile, CodeMobileNotAsked, key)
				continue
			}
		}
		if s.sms == nil {
			c.add(FieldRequestMobile, CodeMobileUnavailable, addr)
			continue
		}
		phone, err := sms.ParsePhone(number)
		switch {
		case errors.Is(err, sms.ErrPhoneCountry):
			c.add(FieldRequestMobile, CodePhoneCountry, addr)
		case err != nil:
			c.add(FieldRequestMobile, CodePhoneInvalid, addr)
		default:
			out[strings.ToLower(addr)] = phone
		}
	}
	return out
}

// requestPhone opens a request's number; "" when it has none (or it was
// purged).
func (s *Service) requestPhone(row *store.FileRequest) (string, error) {
	if row.PhoneSealed == nil {
		return "", nil
	}
	p, err := s.keys.Open(purposeRequestPhone, row.ID, row.PhoneSealed)
	if err != nil {
		return "", &kluis.Error{Code: kluis.EINTEGRITY, Message: "Stored data failed verification.", Err: err}
	}
	return string(p), nil
}

// enqueueRequestSMS queues, in tx, the SMS with the link of a request
// whose row has a number.
func (s *Service) enqueueRequestSMS(ctx context.Context, tx *store.Tx, row *store.FileRequest, phone, requesterName, link string) error {
	if s.mailer == nil {
		return nil
	}
	_, err := s.mailer.Enqueue(ctx, tx, &mail.Message{
		Kind: mail.KindSMSFileRequest, Lang: row.Lang, To: phone, Ref: row.ID,
		Text: s.requestSMSText(row.Lang, requesterName, link),
	})
	return err
}

// requestSMSText is the SMS: the organisation, who asks, and the link;
// nothing of what is asked for.
func (s *Service) requestSMSText(lang, requesterName, link string) string {
	org := s.org.Name
	if org == "" {
		org = "Kluis"
	}
	l, _ := locale.Parse(lang)
	return locale.For(l).T("request.sms_text", org, requesterName, link)
}

// RequestSMSWanted tells the outbox (its CheckSMS) whether the SMS with the
// link of a file request should still go out: not once the request was
// withdrawn, has expired, or was purged, since its link no longer works.
func (s *Service) RequestSMSWanted(ctx context.Context, kind mail.Kind, ref string) (bool, string, error) {
	if kind != mail.KindSMSFileRequest {
		return true, "", nil
	}
	row, err := s.db.FileRequest(ctx, ref)
	if errors.Is(err, store.ErrNotFound) {
		return false, "the file request no longer exists; the SMS was not sent", nil
	}
	if err != nil {
		return false, "", err
	}
	switch {
	case row.RevokedAt != nil:
		return false, "the file request was withdrawn; the SMS was not sent", nil
	case row.PurgedAt != nil || !s.now().Before(row.ExpiresAt):
		return false, "the file request has expired; the SMS was not sent", nil
	}
	return true, "", nil
}

// RequestSMSResult records what became of the SMS of a file request (the
// outbox's OnSMS): sent, or given up. A report for a request whose SMS is
// no longer queued changes nothing.
func (s *Service) RequestSMSResult(ctx context.Context, q store.Q, kind mail.Kind, ref string, sent bool, at time.Time) error {
	if kind != mail.KindSMSFileRequest {
		return nil
	}
	state := store.SMSSent
	if !sent {
		state = store.SMSFailed
	}
	err := q.SetFileRequestSMS(ctx, ref, state, at)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if sent {
		s.log.Info("file request sms sent", "request", ref)
	} else {
		s.log.Warn("file request sms not sent", "request", ref)
	}
	return nil
}
