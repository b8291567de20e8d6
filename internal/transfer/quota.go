package transfer

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/kluis-nl/kluis"
	"github.com/kluis-nl/kluis/internal/locale"
	"github.com/kluis-nl/kluis/internal/policy"
	"github.com/kluis-nl/kluis/internal/store"
)

// Quotas (issue 11, item 6), set by the policy (policy.Limits; defaults
// policy.DefaultMax*): per sender, the transfers not yet sent at once and
// the bytes declared in the transfers of the last 24 hours; per recipient,
// the replies to one transfer. Every check that lets a row be written
// runs inside the transaction that writes it (Create, NewFile), after
// that transaction took the sender's lock (store.Tx.LockSender; on SQLite
// the database's one write lock), so parallel requests, on any instance,
// cannot both take the last place.
//
// The daily volume counts declared sizes, not bytes written: a tus upload
// declares its Upload-Length before any byte arrives, so the check happens
// once, in the transaction that adds the file, and a sender cannot get
// round it by declaring many large files and writing them slowly. A file
// of unknown length (a plain PUT, a reply) reserves what it may grow to
// at NewFile (fileMeta.Limit) and counts that until it completes, then its
// real size. A transfer counts for the 24 hours after it was created while
// it holds content: revoking (or the purge at expiry) gives its bytes back.

// Sentinel errors wrapped by the EQUOTA errors, so pages can say which
// limit was reached in the visitor's language.
var (
	ErrOpenDrafts  = errors.New("transfer: too many unfinished transfers")
	ErrDailyVolume = errors.New("transfer: daily volume used up")
	ErrReplyLimit  = errors.New("transfer: too many replies to this transfer")
)

// quotaWindow is the period of the daily volume.
const quotaWindow = 24 * time.Hour

// checkCreateQuota checks the sender's open drafts and, for a reply, the
// recipient's replies to the original. Run it inside Create's transaction.
func (s *Service) checkCreateQuota(ctx context.Context, q store.Q, sender, replyTo string, lim policy.Limits, now time.Time) error {
	if replyTo != "" && lim.MaxReplies > 0 {
		n, err := q.CountReplies(ctx, replyTo, sender)
		if err != nil {
			return err
		}
		if n >= lim.MaxReplies {
			return &kluis.Error{Code: kluis.EQUOTA, Err: ErrReplyLimit,
				Message: pluralf(lim.MaxReplies, "You have already replied %d time to this transfer, the most allowed.", "You have already replied %d times to this transfer, the most allowed.")}
		}
	}
	if lim.MaxOpenDrafts > 0 {
		n, err := q.CountOpenDrafts(ctx, sender, now)
		if err != nil {
			return err
		}
		if n >= lim.MaxOpenDrafts {
			return &kluis.Error{Code: kluis.EQUOTA, Err: ErrOpenDrafts,
				Message: pluralf(n, "You have %d transfer that is not sent yet, the most at once. Finish or revoke it first; an unsent transfer also ends at its expiry date.",
					"You have %d transfers that are not sent yet, the most at once. Finish or revoke one of them first; unsent transfers also end at their expiry date.")}
		}
	}
	return nil
}

func pluralf(n int, one, many string) string {
	if n == 1 {
		return fmt.Sprintf(one, n)
	}
	return fmt.Sprintf(many, n)
}

// dailyLimit is the sender's daily volume for files of t: the policy's,
// decided when t was created (transfers from before quotas: the default).
func (s *Service) dailyLimit(t *store.TransferRow) int64 {
	if d := parseOptions(t.Options).MaxBytesPerDay; d > 0 {
		return d
	}
	return s.DefaultLimits().MaxBytesPerDay
}

// dailyUsed sums what the sender's transfers created in the last 24 hours
// declare (fileUse), and says when the oldest of them leaves the window.
func (s *Service) dailyUsed(ctx context.Context, q store.Q, sender string, now time.Time) (int64, time.Time, error) {
	files, err := q.RecentFiles(ctx, sender, now.Add(-quotaWindow))
	if err != nil {
		return 0, time.Time{}, err
	}
	var sum int64
	var oldest time.Time
	for _, rf := range files {
		n, err := s.fileUse(rf.File)
		if err != nil {
			return 0, time.Time{}, err
		}
		if n > 0 && (oldest.IsZero() || rf.CreatedAt.Before(oldest)) {
			oldest = rf.CreatedAt
		}
		sum += n
	}
	return sum, oldest, nil
}

// dailyVolumeError refuses a file that does not fit in the sender's daily
// volume; it says when the oldest counted transfer leaves the window.
func dailyVolumeError(limit, used, size int64, oldest, now time.Time) error {
	msg := "You can send at most " + enSize(limit) + " of files a day, and the transfers of the last 24 hours hold " + enSize(used) + "."
	if size > 0 {
		msg += " This file (" + enSize(size) + ") does not fit."
	}
	e := &kluis.Error{Code: kluis.EQUOTA, Err: ErrDailyVolume}
	if !oldest.IsZero() {
		at := oldest.Add(quotaWindow)
		e.RetryAfter = max(at.Sub(now), time.Second)
		msg += " Try again after " + at.UTC().Format("2006-01-02 15:04") + " UTC, or revoke a transfer you no longer need."
	}
	e.Message = msg
	return e
}

// enSize writes a size for the engine's messages, which are in English
// for now (the API and the CLI show them as they are).
func enSize(n int64) string { return locale.For(locale.EN).Size(n) }
