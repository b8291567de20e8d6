package transfer

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/kluis-nl/kluis"
	"github.com/kluis-nl/kluis/internal/audit"
	"github.com/kluis-nl/kluis/internal/mail"
	"github.com/kluis-nl/kluis/internal/store"
)

// Waiting for the malware scan (issue 16; docs/security.md, "Malware
// scanning").
//
// When clamd cannot be reached at finish and the policy is fail-closed,
// Finish does all it would do (access ids, receive codes, the rendered
// notifications in the outbox) but leaves the transfer in state scanning
// with its mails held, and keeps the files' scan identities. RunScans
// retries the scan with backoff. When every file passes, the transfer
// becomes ready and its mails are released; when a file is refused, or
// the wait (--scan-wait) ends first, the transfer fails: its held mails
// are deleted, it is revoked so the purge erases its content (and the
// scan identities with the file rows), and the sender gets a scan_failed
// mail. Each retry claims the transfer with a lease, so with several
// instances one scans it.

const (
	// scanRetryFirst is the first retry after finish; each further
	// retry waits twice as long, up to scanRetryMax.
	scanRetryFirst = 30 * time.Second
	scanRetryMax   = 10 * time.Minute
	// scanPoll is how often RunScans looks for a transfer whose retry is
	// due.
	scanPoll = 10 * time.Second
	// scanLease is how long a claim on a waiting transfer holds another
	// instance off; a scan that takes longer is at worst run twice.
	scanLease = 15 * time.Minute
	// scanBatch is how many waiting transfers one round claims.
	scanBatch = 20
)

// scanBackoff is the wait before the retry after attempts failed ones.
func scanBackoff(attempts int) time.Duration {
	d := scanRetryFirst
	for range attempts {
		d *= 2
		if d >= scanRetryMax {
			return scanRetryMax
		}
	}
	return d
}

// RunScans retries the scans of waiting transfers until ctx ends.
func (s *Service) RunScans(ctx context.Context) {
	tick := time.NewTicker(scanPoll)
	defer tick.Stop()
	for {
		if _, err := s.RetryScans(ctx); err != nil && ctx.Err() == nil {
			s.log.Error("malware scan retries failed; will retry", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// RetryScans runs one round: it claims the waiting transfers whose retry
// is due and scans them again. Returns how many it claimed.
func (s *Service) RetryScans(ctx context.Context) (int, error) {
	n := 0
	for {
		ids, err := s.db.ClaimScanWaits(ctx, s.now(), scanLease, scanBatch)
		if err != nil {
			return n, err
		}
		var errs []error
		for _, id := range ids {
			if err := s.retryScan(ctx, id); err != nil {
				errs = append(errs, fmt.Errorf("transfer %s: %w", id, err))
			}
		}
		n += len(ids)
		if err := errors.Join(errs...); err != nil || len(ids) < scanBatch {
			return n, err
		}
	}
}

// retryScan scans a claimed waiting transfer again and moves it on.
func (s *Service) retryScan(ctx context.Context, id string) error {
	ctx = audit.WithActor(ctx, audit.System)
	t, err := s.db.Transfer(ctx, id)
	if err != nil {
		return err
	}
	if t.State != string(kluis.StateScanning) {
		return nil
	}
	w, err := s.db.ScanWaitOf(ctx, id)
	if err != nil {
		return err
	}
	files, err := s.db.Files(ctx, t.ID)
	if err != nil {
		return err
	}
	// The references for the sender's mail are read before a refused
	// file's row goes.
	refs, err := s.fileRefs(files, parseOptions(t.Options).ShowFilenames)
	if err != nil {
		return err
	}
	for i, f := range files {
		if f.ScanSealed == nil {
			continue
		}
		_, err := s.scanFile(ctx, t, f, len(files))
		if err == nil {
			continue
		}
		switch kluis.ErrorCode(err) {
		case kluis.EINFECTED:
			return s.failScan(ctx, t, mail.ScanInfected, refs[i])
		case kluis.EUNSCANNABLE:
			return s.failScan(ctx, t, mail.ScanTooLarge, refs[i])
		case kluis.ESCANPENDING:
		default:
			// A database or storage error: retried like a scanner that
			// is down, and logged.
			s.log.Error("malware scan of a waiting transfer failed; will retry", "transfer", t.ID, "file", f.ID, "err", err)
		}
		now := s.now()
		if !now.Before(w.Until) {
			return s.failScan(ctx, t, mail.ScanTimeout, mail.FileRef{})
		}
		return s.db.RetryScanWait(ctx, t.ID, earliest(now.Add(scanBackoff(w.Attempts+1)), w.Until))
	}
	return s.passScan(ctx, t, len(files))
}

// lockScanning begins a transaction and locks transfer id (a revoke waits,
// or this sees it). It returns a nil row, and no transaction, when the
// transfer no longer waits for its scan; otherwise the caller owns tx.
func (s *Service) lockScanning(ctx context.Context, id string) (*store.Tx, *store.TransferRow, error) {
	tx, err := s.db.BeginTx(ctx)
	if err != nil {
		return nil, nil, err
	}
	t, err := tx.TransferForUpdate(ctx, id)
	if err != nil || t.State != string(kluis.StateScanning) {
		tx.Rollback()
		return nil, nil, err
	}
	return tx, t, nil
}

// passScan makes a waiting transfer whose files all passed ready and
// releases its mails.
func (s *Service) passScan(ctx context.Context, t *store.TransferRow, nfiles int) error {
	ctx = context.WithoutCancel(ctx)
	tx, t, err := s.lockScanning(ctx, t.ID)
	if err != nil || t == nil {
		return err
	}
	defer tx.Rollback()
	now := s.now()
	if err := tx.EndScanWait(ctx, t.ID, now, s.mailer != nil); err != nil {
		return err
	}
	if err := s.audit.Record(ctx, tx.Q, audit.Event{Actor: audit.System, Action: audit.TransferFinish, Object: t.ID,
		Detail: fmt.Sprintf("files=%d scan=passed", nfiles)}); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	s.wakeMailer()
	s.log.Info("transfer ready after its malware scan", "transfer", t.ID, "files", nfiles)
	return nil
}

// failScan ends a waiting transfer that will not be sent (reason: one of
// mail.ScanInfected, ScanTooLarge, ScanTimeout; file: the refused file)
// and tells its sender.
func (s *Service) failScan(ctx context.Context, t *store.TransferRow, reason string, file mail.FileRef) error {
	ctx = context.WithoutCancel(ctx)
	tx, t, err := s.lockScanning(ctx, t.ID)
	if err != nil || t == nil {
		return err
	}
	defer tx.Rollback()
	now := s.now()
	w, err := tx.ScanWaitOf(ctx, t.ID)
	if err != nil {
		return err
	}
	if err := tx.FailScanWait(ctx, t.ID, now); err != nil {
		return err
	}
	if reason == mail.ScanTimeout {
		// A refused file's refusal was kept when it was removed.
		if err := s.keepRefusal(ctx, tx, t, ScanRefusal{Reason: ScanTimeout}); err != nil {
			return err
		}
	}
	opts := parseOptions(t.Options)
	var d details
	if err := s.openJSON(purposeDetails, t.ID, t.DetailsSealed, &d); err != nil {
		return err
	}
	// A transfer made from a mail: the sender's non-delivery report.
	if ndr, err := s.notDelivered(ctx, tx, t, reason, file, w.Since); err != nil {
		return err
	} else if !ndr {
		if err := s.enqueue(ctx, tx, mail.KindScanFailed, opts.senderLang(), t.SenderEmail, mail.ScanFailed{
			Reason: reason, File: file, Since: w.Since, Subject: d.Subject, StatusURL: s.statusURL(t.ID),
		}); err != nil {
			return err
		}
	}
	detail := "scan=" + reason
	if file.Index > 0 {
		detail += fmt.Sprintf(" file=%d", file.Index)
	}
	if err := s.audit.Record(ctx, tx.Q, audit.Event{Actor: audit.System, Action: audit.TransferFinish, Object: t.ID,
		Result: audit.Refused, Detail: detail}); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	s.log.Warn("transfer not sent: its malware scan failed; the sender is told", "transfer", t.ID, "reason", reason)
	s.wakeMailer()
	s.wakePurge() // the purge erases its content now
	return s.db.Checkpoint(ctx)
}

// ScanWaitUntil returns when a transfer that waits for its malware scan
// gives up (zero when it does not wait), for the sender's pages.
func (s *Service) ScanWaitUntil(ctx context.Context, o Owner) (time.Time, error) {
	w, err := s.db.ScanWaitOf(ctx, o.TransferID)
	if errors.Is(err, store.ErrNotFound) {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, err
	}
	return w.Until, nil
}

func earliest(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}
