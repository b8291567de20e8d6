package transfer

import (
	"context"
	"errors"
	"time"

	"github.com/kluis-nl/kluis"
	"github.com/kluis-nl/kluis/internal/store"
)

// Overview is what a sender's own pages ("my transfers") show of a
// transfer: what the server can read without the transfer secret. The
// message, file names (unless the sender chose to show them in mails),
// content types and checksums are encrypted to the transfer and stay
// closed here.
type Overview struct {
	*kluis.Transfer
	// Subject is the sender's subject of the notification mail, or "".
	Subject string
	// Files lists sizes, and names only when the sender chose to show
	// file names (NamesShown).
	Files      []FileSummary
	NamesShown bool
	HasMessage bool
	// ReplyTo is the id of the transfer this one answers, or "".
	ReplyTo string
	// Replies are the recipients' answers to this transfer.
	Replies []ReplySummary
	// MaxExpiry is how far from now the expiry may be moved (the policy's
	// limit decided at Create, never above the server's).
	MaxExpiry time.Duration
}

// ReplySummary is a recipient's reply as the original sender's pages see
// it: who and when. The reply itself opens with the link in the mail.
type ReplySummary struct {
	From  string
	At    time.Time
	State kluis.State
}

// FileSummary is one file as its sender's pages see it.
type FileSummary struct {
	Index    int
	Size     int64
	Name     string // "" unless the sender chose to show file names
	Complete bool
}

// Overview returns the owner's overview of their transfer. A purged
// transfer has only its minimal record: no subject, no files.
func (s *Service) Overview(ctx context.Context, o Owner) (*Overview, error) {
	row, err := s.db.Transfer(ctx, o.TransferID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, kluis.Errorf(kluis.ENOTFOUND, "This transfer does not exist.")
	}
	if err != nil {
		return nil, err
	}
	ov, err := s.overview(ctx, row)
	if err != nil {
		return nil, err
	}
	// Replies are the transfers its recipients sent back that name it.
	for _, r := range ov.Recipients {
		rows, err := s.db.TransfersBySender(ctx, r.Address)
		if err != nil {
			return nil, err
		}
		for _, x := range rows {
			if parseOptions(x.Options).ReplyTo != row.ID || x.FinishedAt == nil {
				continue
			}
			t := kluis.Transfer{State: kluis.State(x.State), ExpiresAt: x.ExpiresAt}
			ov.Replies = append(ov.Replies, ReplySummary{From: x.SenderEmail, At: *x.FinishedAt, State: t.EffectiveState(s.now())})
		}
	}
	return ov, nil
}

// SenderOverviews lists a sender's transfers as overviews, newest first.
func (s *Service) SenderOverviews(ctx context.Context, email string) ([]*Overview, error) {
	rows, err := s.db.TransfersBySender(ctx, email)
	if err != nil {
		return nil, err
	}
	out := make([]*Overview, 0, len(rows))
	for _, row := range rows {
		ov, err := s.overview(ctx, row)
		if err != nil {
			return nil, err
		}
		out = append(out, ov)
	}
	return out, nil
}

func (s *Service) overview(ctx context.Context, row *store.TransferRow) (*Overview, error) {
	t, err := s.ownerView(ctx, s.db.Q, row)
	if err != nil {
		return nil, err
	}
	opts := parseOptions(row.Options)
	ov := &Overview{Transfer: t, NamesShown: opts.ShowFilenames, HasMessage: opts.HasMessage, ReplyTo: opts.ReplyTo, MaxExpiry: s.cfg.MaxExpiry}
	if opts.MaxExpiry > 0 && opts.MaxExpiry < ov.MaxExpiry {
		ov.MaxExpiry = opts.MaxExpiry
	}
	if row.DetailsSealed != nil {
		var d details
		if err := s.openJSON(purposeDetails, row.ID, row.DetailsSealed, &d); err == nil {
			ov.Subject = d.Subject
		}
	}
	files, err := s.db.Files(ctx, row.ID)
	if err != nil {
		return nil, err
	}
	for _, f := range files {
		var m fileMeta
		if err := s.openJSON(purposeFileMeta, f.ID, f.MetaSealed, &m); err != nil {
			continue // purged: the sealed values are gone
		}
		fs := FileSummary{Index: f.Index, Size: m.Size, Complete: f.Complete}
		if opts.ShowFilenames {
			fs.Name = m.Name
		}
		ov.Files = append(ov.Files, fs)
	}
	return ov, nil
}
