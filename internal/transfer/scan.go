package transfer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"filippo.io/age"

	"github.com/kluis-nl/kluis"
	"github.com/kluis-nl/kluis/internal/audit"
	"github.com/kluis-nl/kluis/internal/scan"
	"github.com/kluis-nl/kluis/internal/segment"
	"github.com/kluis-nl/kluis/internal/store"
)

// Malware scanning (issue 16; docs/security.md, "Malware scanning").
//
// Once a transfer is ready the server cannot read it: its identity is
// wrapped by the transfer secret. So each file that is to be scanned gets
// an X25519 scan identity of its own at NewFile; every segment of the file
// is encrypted to the transfer's recipient and to that scan recipient (two
// stanzas in each age header), and the scan identity is kept sealed under
// the master key in files.scan_sealed. Finish streams each such file,
// decrypted with its scan identity from the stored segments, to clamd
// (INSTREAM, bounded memory; so a resumed upload, or one continued on
// another instance, is scanned whole), and erases the scan identity as
// soon as the file's scan has ended (secure_delete, WAL truncated). From
// then on only the transfer secret opens the file, as without scanning.

// Scanner scans content for malware: scan.Client, talking to clamd.
type Scanner interface {
	// Scan returns clamd's verdict on r; scan.ErrTooLarge when r is longer
	// than clamd takes, an error wrapping scan.ErrUnavailable when clamd
	// gave no verdict, or r's read error.
	Scan(ctx context.Context, r io.Reader) (scan.Result, error)
}

// ScanScope says which transfers' files are scanned.
type ScanScope string

// Values of ScanScope.
const (
	ScanOff ScanScope = "off"
	// ScanInbound scans what people outside the organisation send in:
	// replies by recipients and uploads on file requests and to drop-off
	// points.
	ScanInbound ScanScope = "inbound"
	ScanAll     ScanScope = "all"
)

// ScanConfig is the malware-scan policy of the engine.
type ScanConfig struct {
	// Scope is which transfers are scanned; "" is ScanOff.
	Scope ScanScope
	// FailOpen passes a file, with a warning in the log and the audit
	// entry, when clamd cannot be reached. Otherwise (fail-closed, the
	// default) Finish answers ESCANPENDING and keeps the scan identity,
	// so the scan runs again at the next Finish.
	FailOpen bool
	// PassTooLarge passes a file larger than clamd's StreamMaxLength with
	// a note; otherwise such a file is refused like an infected one.
	PassTooLarge bool
	// Wait is how long a transfer finished while clamd could not be
	// reached waits for its scan (fail-closed) before it fails and its
	// sender is told (scanwait.go).
	Wait time.Duration
}

// Values of Metrics.Scanned and of the audit entries' detail.
const (
	ScanClean       = "clean"
	ScanInfected    = "infected"
	ScanTooLarge    = "too_large"
	ScanUnavailable = "unavailable"
)

// scanRetry is the Retry-After of ESCANPENDING.
const scanRetry = time.Minute

// scans reports whether t's files are scanned.
func (s *Service) scans(t *store.TransferRow) bool {
	switch s.cfg.Scan.Scope {
	case ScanAll:
		return true
	case ScanInbound:
		o := parseOptions(t.Options)
		return t.ReplyTo != "" || o.Request != "" || o.Dropoff != ""
	}
	return false
}

// ScansSent reports whether the files senders send are scanned (the
// send page then says that they are being checked).
func (s *Service) ScansSent() bool { return s.cfg.Scan.Scope == ScanAll }

// newScanKey makes a file's scan identity, sealed under the master key
// and bound to the file.
func (s *Service) newScanKey(fileID string) ([]byte, error) {
	id, err := age.GenerateX25519Identity()
	if err != nil {
		return nil, err
	}
	return s.keys.Seal(purposeScan, fileID, []byte(id.String())), nil
}

// scanIdentity opens a file's scan identity.
func (s *Service) scanIdentity(f *store.FileRow) (*age.X25519Identity, error) {
	b, err := s.keys.Open(purposeScan, f.ID, f.ScanSealed)
	if err != nil {
		return nil, &kluis.Error{Code: kluis.EINTEGRITY, Message: "Stored data failed verification.", Err: fmt.Errorf("open scan key %s: %w", f.ID, err)}
	}
	return age.ParseX25519Identity(string(b))
}

// recipientsOf are the age recipients of a file's segments: the
// transfer's, and the file's scan recipient while it waits for its scan.
func (s *Service) recipientsOf(transfer age.Recipient, f *store.FileRow) ([]age.Recipient, error) {
	if f.ScanSealed == nil {
		return []age.Recipient{transfer}, nil
	}
	id, err := s.scanIdentity(f)
	if err != nil {
		return nil, err
	}
	return []age.Recipient{transfer, id.Recipient()}, nil
}

// scanFiles scans every complete file of t that still holds a scan
// identity. It returns the numbers (from 1) of the files that passed
// unscanned by policy (fail-open, or too large with PassTooLarge), so the
// sender can be warned; EINFECTED or EUNSCANNABLE after removing a refused
// file; ESCANPENDING when clamd cannot be reached (fail-closed).
func (s *Service) scanFiles(ctx context.Context, t *store.TransferRow, files []*store.FileRow) ([]int, error) {
	var unscanned []int
	for _, f := range files {
		if f.ScanSealed == nil || !f.Complete {
			continue
		}
		passed, err := s.scanFile(ctx, t, f, len(files))
		if err != nil {
			return unscanned, err
		}
		if passed {
			unscanned = append(unscanned, f.Index+1)
		}
	}
	return unscanned, nil
}

// scanFile scans one file and ends its scan. unscanned reports that the
// policy let it pass without a verdict.
func (s *Service) scanFile(ctx context.Context, t *store.TransferRow, f *store.FileRow, nfiles int) (unscanned bool, err error) {
	id, err := s.scanIdentity(f)
	if err != nil {
		return false, err
	}
	man, err := s.manifest(ctx, s.db.Q, f)
	if err != nil {
		return false, err
	}
	start := time.Now()
	var res scan.Result
	if s.scanner == nil {
		// Scanning was on when the file was added; this process runs
		// without --clamd. The file waits like it would for a clamd that
		// is down.
		err = fmt.Errorf("%w: this server has no --clamd", scan.ErrUnavailable)
	} else {
		r := segment.NewFileReader(ctx, man, s.blobs.Open, id)
		res, err = s.scanner.Scan(ctx, io.NewSectionReader(r, 0, man.Size()))
		r.Close()
	}
	log := s.log.With("action", "file.scan", "transfer", t.ID, "file", f.ID, "size", man.Size(), "took", time.Since(start).Round(time.Millisecond))
	which := fmt.Sprintf("File %d of %d", f.Index+1, nfiles)
	switch {
	case err == nil && !res.Infected:
		log.Info("file scanned", "result", ScanClean)
		s.met().Scanned(ScanClean)
		return false, s.endScan(ctx, t, f, audit.OK, ScanClean)
	case err == nil:
		log.Warn("malware found; file removed", "result", ScanInfected, "signature", res.Signature)
		s.met().Scanned(ScanInfected)
		if err := s.refuseFile(ctx, t, f, ScanInfected+" signature="+res.Signature, s.refusalOf(t, f, nfiles, ScanInfected, res.Signature)); err != nil {
			return false, err
		}
		e := kluis.Errorf(kluis.EINFECTED, "%s contains malware (%s). It was removed from this transfer and nothing was sent. Do not open the file; ask your IT department for help. You can send the other files without it.", which, res.Signature)
		e.File, e.Finding = f.Index+1, res.Signature
		return false, e
	case errors.Is(err, scan.ErrTooLarge):
		s.met().Scanned(ScanTooLarge)
		if s.cfg.Scan.PassTooLarge {
			log.Warn("file larger than the scanner takes: passed unscanned (policy)", "result", ScanTooLarge)
			s.met().PassedUnscanned(ScanTooLarge)
			return true, s.endScan(ctx, t, f, audit.OK, ScanTooLarge+" passed unscanned")
		}
		log.Warn("file larger than the scanner takes: refused (policy)", "result", ScanTooLarge)
		if err := s.refuseFile(ctx, t, f, ScanTooLarge, s.refusalOf(t, f, nfiles, ScanTooLarge, "")); err != nil {
			return false, err
		}
		e := kluis.Errorf(kluis.EUNSCANNABLE, "%s is too large to be checked for malware, and files that cannot be checked are not accepted. It was removed from this transfer and nothing was sent. Send it in smaller parts, for example as several files.", which)
		e.File = f.Index + 1
		return false, e
	case errors.Is(err, scan.ErrUnavailable):
		s.met().Scanned(ScanUnavailable)
		if s.cfg.Scan.FailOpen {
			log.Warn("malware scanner unavailable: file passed unscanned (fail-open)", "result", ScanUnavailable, "err", err)
			s.met().PassedUnscanned(ScanUnavailable)
			return true, s.endScan(ctx, t, f, audit.OK, ScanUnavailable+" passed unscanned")
		}
		log.Warn("malware scanner unavailable: transfer waits (fail-closed)", "result", ScanUnavailable, "err", err)
		return false, &kluis.Error{Code: kluis.ESCANPENDING, RetryAfter: scanRetry, Err: err,
			Message: "Your files are being checked for malware, but the check cannot run right now. Nothing was sent yet and your files are kept. Try to finish again in a few minutes."}
	}
	return false, err
}

// endScan erases a file's scan identity after its scan, with an audit
// entry, and truncates the WAL so the identity is gone from the database
// file and its WAL.
func (s *Service) endScan(ctx context.Context, t *store.TransferRow, f *store.FileRow, result, detail string) error {
	ctx = context.WithoutCancel(ctx)
	tx, err := s.db.BeginTx(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if err := tx.EndScan(ctx, f.ID); err != nil {
		return err
	}
	if err := s.audit.Record(ctx, tx.Q, audit.Event{Actor: actorOr(ctx, audit.UploadToken), Action: audit.FileScan, Object: t.ID,
		Result: result, Detail: fmt.Sprintf("file=%s %s", f.ID, detail)}); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	f.ScanSealed = nil
	return s.db.Checkpoint(ctx)
}

// ScanRefusal is why the malware scan stopped a transfer before it was
// sent. It is kept in the transfer's sealed label, which outlives the
// purge, so the sender's pages can still say what happened (not just
// "revoked") until the minimal record's retention ends.
type ScanRefusal struct {
	// Reason is ScanInfected, ScanTooLarge or ScanTimeout.
	Reason string `json:"reason"`
	// File is the refused file's number (from 1) of Files; 0 for
	// ScanTimeout.
	File  int `json:"file,omitempty"`
	Files int `json:"files,omitempty"`
	// Name is the file's name, only when the sender chose to show file
	// names (as the mails and pages do).
	Name string `json:"name,omitempty"`
	// Finding is clamd's name of what it found (ScanInfected).
	Finding string `json:"finding,omitempty"`
}

// ScanTimeout is the Reason of a transfer that waited for clamd longer
// than the policy allows.
const ScanTimeout = "timeout"

// refusalOf is the refusal of file f of t (nfiles files).
func (s *Service) refusalOf(t *store.TransferRow, f *store.FileRow, nfiles int, reason, finding string) ScanRefusal {
	r := ScanRefusal{Reason: reason, File: f.Index + 1, Files: nfiles, Finding: finding}
	var m fileMeta
	if parseOptions(t.Options).ShowFilenames && s.openJSON(purposeFileMeta, f.ID, f.MetaSealed, &m) == nil {
		r.Name = kluis.CleanFileName(m.Name)
	}
	return r
}

// keepRefusal adds the refusal to t's label (making one from its details
// if Finish has not made one yet).
func (s *Service) keepRefusal(ctx context.Context, tx *store.Tx, t *store.TransferRow, r ScanRefusal) error {
	labels, err := tx.TransferLabels(ctx, []string{t.ID})
	if err != nil {
		return err
	}
	var l label
	if b, ok := labels[t.ID]; ok {
		if err := s.openJSON(purposeLabel, t.ID, b, &l); err != nil {
			return err
		}
	} else if t.DetailsSealed != nil {
		var d details
		if err := s.openJSON(purposeDetails, t.ID, t.DetailsSealed, &d); err != nil {
			return err
		}
		l.Subject, l.Reference = d.Subject, d.Reference
	}
	l.Refused = &r
	sealed, err := s.sealJSON(purposeLabel, t.ID, l)
	if err != nil {
		return err
	}
	return tx.SetTransferLabel(ctx, t.ID, sealed)
}

// refuseFile removes a file the scan refused: its row (with its scan
// identity and segment rows) and its blobs, with an audit entry, and
// keeps the refusal in the transfer's label.
func (s *Service) refuseFile(ctx context.Context, t *store.TransferRow, f *store.FileRow, detail string, r ScanRefusal) error {
	ctx = context.WithoutCancel(ctx)
	tx, err := s.db.BeginTx(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if err := tx.DeleteFile(ctx, f.ID); err != nil {
		return err
	}
	if err := s.keepRefusal(ctx, tx, t, r); err != nil {
		return err
	}
	if err := s.audit.Record(ctx, tx.Q, audit.Event{Actor: actorOr(ctx, audit.UploadToken), Action: audit.FileScan, Object: t.ID,
		Result: audit.Refused, Detail: fmt.Sprintf("file=%s %s", f.ID, detail)}); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	if err := s.deletePrefix(ctx, fmt.Sprintf("t/%s/%s/", t.ID, f.ID)); err != nil {
		return err
	}
	return s.db.Checkpoint(ctx)
}

// scanBeforeFinish scans the files of o's transfer that wait for it, once
// the transfer could be finished but for the scan. It returns the numbers
// of the files that passed unscanned (scanFiles).
// At a request's deadline (atDeadline) the files not complete are left
// out: finish drops them.
func (s *Service) scanBeforeFinish(ctx context.Context, o Owner, atDeadline bool) ([]int, error) {
	t, err := s.db.Transfer(ctx, o.TransferID)
	if err != nil {
		return nil, err
	}
	if err := s.finishable(t, atDeadline); err != nil {
		return nil, err
	}
	all, err := s.db.Files(ctx, t.ID)
	if err != nil {
		return nil, err
	}
	files := make([]*store.FileRow, 0, len(all))
	for _, f := range all {
		if f.Complete {
			files = append(files, f)
		} else if !atDeadline {
			return nil, kluis.Errorf(kluis.ECONFLICT, "File %d of %d has not been uploaded completely yet.", f.Index+1, len(all))
		}
	}
	return s.scanFiles(ctx, t, files)
}
