package transfer

import (
	"context"
	"errors"
	"strconv"
	"strings"
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
	// Reference is the sender's own reference, or "".
	Reference string
	// Files lists sizes, and names only when the sender chose to show
	// file names (NamesShown).
	Files      []FileSummary
	NamesShown bool
	HasMessage bool
	// ReplyTo is the id of the transfer this one answers, or "".
	ReplyTo string
	// Replies are the recipients' answers to this transfer.
	Replies []ReplySummary
	// ReplyCount is how many replies were sent to this transfer, on the
	// pages of SenderOverviewPage (which do not list Replies).
	ReplyCount int
	// MaxExpiry is how far from now the expiry may be moved (the policy's
	// limit decided at Create, never above the server's).
	MaxExpiry time.Duration
	// Kept is what the transfer's label kept of its files once they were
	// purged (revoked or expired), so the sender still recognises it; nil
	// while Files lists them, or for a transfer never sent.
	Kept *KeptFiles
	// Refused is why the malware scan stopped this transfer, which was
	// then never sent (it failed, or the sender's client revoked it after
	// the refusal); nil otherwise.
	Refused *ScanRefusal
}

// SenderState is the state a sender's views show: a transfer the malware
// scan stopped reads failed (not sent) also after its content was purged,
// and a revoked one stays revoked after the purge, so the sender reads
// what happened rather than what the server did next.
func (ov *Overview) SenderState(now time.Time) kluis.State {
	st := ov.EffectiveState(now)
	switch {
	case ov.Refused != nil:
		return kluis.StateFailed
	case st == kluis.StatePurged && ov.RevokedAt != nil:
		return kluis.StateRevoked
	}
	return st
}

// KeptFiles is what a sender's pages still show of a purged transfer's
// files, until the minimal record's retention ends.
type KeptFiles struct {
	Count int
	Size  int64
	First string // the first file's name, only when names were shown
}

// ReplySummary is a recipient's reply as the original sender's pages see
// it: who and when. The reply itself opens with the link in the mail, or
// from the sender's own pages by its ID (see ReplyLink).
type ReplySummary struct {
	ID   string
	From string
	// Name is the name the replier gave, or "".
	Name  string
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
// transfer has only its minimal record and its label: the subject and
// Kept, no file list.
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
	replies, err := s.db.RepliesTo(ctx, row.ID)
	if err != nil {
		return nil, err
	}
	for _, x := range replies {
		if x.FinishedAt == nil || !ov.isRecipient(x.SenderEmail) {
			continue
		}
		t := kluis.Transfer{State: kluis.State(x.State), ExpiresAt: x.ExpiresAt}
		rs := ReplySummary{ID: x.ID, From: x.SenderEmail, At: *x.FinishedAt, State: t.EffectiveState(s.now())}
		if x.DetailsSealed != nil {
			var d details
			if err := s.openJSON(purposeDetails, x.ID, x.DetailsSealed, &d); err == nil {
				rs.Name = d.SenderName
			}
		}
		ov.Replies = append(ov.Replies, rs)
	}
	return ov, nil
}

func (ov *Overview) isRecipient(addr string) bool {
	for _, r := range ov.Recipients {
		if strings.EqualFold(r.Address, addr) {
			return true
		}
	}
	return false
}

// OverviewPageSize is how many transfers one page of a sender's list holds.
const OverviewPageSize = 50

// SenderOverviewPage lists one page of a sender's transfers as overviews,
// newest first: the first page for an empty cursor, else the page after
// the one whose next cursor it is. next is the cursor of the following
// page, or "" on the last page. A cursor that is not one gives EINVALID.
func (s *Service) SenderOverviewPage(ctx context.Context, email, cursor string) (ovs []*Overview, next string, err error) {
	var before time.Time
	var beforeID string
	if cursor != "" {
		at, id, ok := strings.Cut(cursor, ".")
		v, err := strconv.ParseInt(at, 10, 64)
		if !ok || err != nil || v <= 0 || id == "" {
			return nil, "", kluis.Errorf(kluis.EINVALID, "This page of your transfers does not exist; start at the first page.")
		}
		before, beforeID = time.UnixMilli(v).UTC(), id
	}
	rows, err := s.db.TransfersBySenderPage(ctx, email, before, beforeID, OverviewPageSize+1)
	if err != nil {
		return nil, "", err
	}
	if len(rows) > OverviewPageSize {
		rows = rows[:OverviewPageSize]
		last := rows[len(rows)-1]
		next = strconv.FormatInt(last.CreatedAt.UnixMilli(), 10) + "." + last.ID
	}
	ovs, err = s.overviews(ctx, rows)
	if err != nil {
		return nil, "", err
	}
	ids := make([]string, len(ovs))
	for i, ov := range ovs {
		ids[i] = ov.ID
	}
	counts, err := s.db.ReplyCounts(ctx, ids)
	if err != nil {
		return nil, "", err
	}
	for _, ov := range ovs {
		ov.ReplyCount = counts[ov.ID]
	}
	return ovs, next, nil
}

func (s *Service) overview(ctx context.Context, row *store.TransferRow) (*Overview, error) {
	ovs, err := s.overviews(ctx, []*store.TransferRow{row})
	if err != nil {
		return nil, err
	}
	return ovs[0], nil
}

// overviews builds the overviews of rows with one query each for their
// recipients, downloads and files.
func (s *Service) overviews(ctx context.Context, rows []*store.TransferRow) ([]*Overview, error) {
	ids := make([]string, len(rows))
	for i, r := range rows {
		ids[i] = r.ID
	}
	files, err := s.db.FilesOf(ctx, ids)
	if err != nil {
		return nil, err
	}
	ts, err := s.ownerViews(ctx, s.db.Q, rows, files)
	if err != nil {
		return nil, err
	}
	// The labels of purged transfers, and of those that ended before they
	// were sent (a malware scan may have stopped them).
	var ended []string
	for _, r := range rows {
		if r.DetailsSealed == nil || (r.FinishedAt == nil && (r.RevokedAt != nil || r.State == string(kluis.StateFailed))) {
			ended = append(ended, r.ID)
		}
	}
	labels, err := s.db.TransferLabels(ctx, ended)
	if err != nil {
		return nil, err
	}
	out := make([]*Overview, len(rows))
	for i, row := range rows {
		opts := parseOptions(row.Options)
		ov := &Overview{Transfer: ts[i], NamesShown: opts.ShowFilenames, HasMessage: opts.HasMessage, ReplyTo: opts.ReplyTo, MaxExpiry: s.cfg.MaxExpiry}
		if opts.MaxExpiry > 0 && opts.MaxExpiry < ov.MaxExpiry {
			ov.MaxExpiry = opts.MaxExpiry
		}
		if row.DetailsSealed != nil {
			var d details
			if err := s.openJSON(purposeDetails, row.ID, row.DetailsSealed, &d); err == nil {
				ov.Subject, ov.Reference = d.Subject, d.Reference
			}
		}
		if b, ok := labels[row.ID]; ok {
			var l label
			if err := s.openJSON(purposeLabel, row.ID, b, &l); err == nil {
				ov.Subject, ov.Reference = l.Subject, l.Reference
				if row.DetailsSealed == nil && (l.Files > 0 || l.Refused == nil) {
					ov.Kept = &KeptFiles{Count: l.Files, Size: l.Size, First: kluis.CleanFileName(l.First)}
					if l.First == "" {
						ov.Kept.First = ""
					}
				}
				if row.FinishedAt == nil {
					ov.Refused = l.Refused
				}
			}
		}
		for _, f := range files[row.ID] {
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
		out[i] = ov
	}
	return out, nil
}

// keepLabel seals the label of a transfer being finished: the subject its
// recipients are about to see and its files, which the purge after a
// revoke or expiry would otherwise take from the sender's list.
func (s *Service) keepLabel(ctx context.Context, tx *store.Tx, t *store.TransferRow, files []*store.FileRow) error {
	var d details
	if t.DetailsSealed != nil {
		if err := s.openJSON(purposeDetails, t.ID, t.DetailsSealed, &d); err != nil {
			return err
		}
	}
	l := label{Subject: d.Subject, Reference: d.Reference, Files: len(files)}
	show := parseOptions(t.Options).ShowFilenames
	for _, f := range files {
		var m fileMeta
		if err := s.openJSON(purposeFileMeta, f.ID, f.MetaSealed, &m); err != nil {
			return err
		}
		l.Size += max(m.Size, 0)
		if show && f.Index == 0 {
			l.First = m.Name
		}
	}
	sealed, err := s.sealJSON(purposeLabel, t.ID, l)
	if err != nil {
		return err
	}
	return tx.SetTransferLabel(ctx, t.ID, sealed)
}
