package transfer

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/kluis-nl/kluis"
	"github.com/kluis-nl/kluis/internal/audit"
	"github.com/kluis-nl/kluis/internal/store"
)

// What counts as a download (docs/security.md, "Download accounting"):
//
//   - Every download response that sends bytes of a file is one audit
//     entry naming the byte ranges it sent, also when it broke off.
//   - The engine keeps, per recipient and file, the union of the byte ranges
//     sent so far (on any route: the file, Range requests, the ZIP). A file
//     counts as downloaded for a recipient when that union covers it: the
//     recipient then has every byte, however many requests it took.
//   - The first time a file counts as downloaded for a recipient, and only
//     then, its downloads row is written and the sender's notice queued, in
//     one transaction that inserts the row with ON CONFLICT DO NOTHING: of
//     parallel requests exactly one is first.

// Span is a half-open byte range [Start, End) of a file.
type Span struct{ Start, End int64 }

// Len is the number of bytes in the span.
func (s Span) Len() int64 { return s.End - s.Start }

// MaxServedSpans bounds how many separate pieces of one file the engine
// tracks per recipient. A download whose ranges would leave more is served
// whole instead (see download.ServeFile), so the record stays small however a
// client scatters its requests.
const MaxServedSpans = 64

// mergeSpans returns the union of spans, sorted, with touching spans joined
// and empty ones dropped.
func mergeSpans(spans []Span) []Span {
	var out []Span
	sorted := slices.Clone(spans)
	slices.SortFunc(sorted, func(a, b Span) int { return cmp.Compare(a.Start, b.Start) })
	for _, s := range sorted {
		if s.Len() <= 0 {
			continue
		}
		if n := len(out); n > 0 && s.Start <= out[n-1].End {
			out[n-1].End = max(out[n-1].End, s.End)
			continue
		}
		out = append(out, s)
	}
	return out
}

// covers reports whether merged spans cover [0, size).
func covers(merged []Span, size int64) bool {
	if size <= 0 {
		return true
	}
	return len(merged) == 1 && merged[0].Start <= 0 && merged[0].End >= size
}

// FormatSpans writes spans as inclusive byte ranges, as in HTTP:
// "0-99,200-299".
func FormatSpans(spans []Span) string {
	var b strings.Builder
	for i, s := range spans {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.FormatInt(s.Start, 10))
		b.WriteByte('-')
		b.WriteString(strconv.FormatInt(s.End-1, 10))
	}
	return b.String()
}

// parseSpans reads what FormatSpans wrote.
func parseSpans(v string) ([]Span, error) {
	if v == "" {
		return nil, nil
	}
	var out []Span
	for _, part := range strings.Split(v, ",") {
		a, b, ok := strings.Cut(part, "-")
		first, err1 := strconv.ParseInt(a, 10, 64)
		last, err2 := strconv.ParseInt(b, 10, 64)
		if !ok || err1 != nil || err2 != nil || first < 0 || last < first {
			return nil, fmt.Errorf("served ranges %q: bad range %q", v, part)
		}
		out = append(out, Span{first, last + 1})
	}
	return out, nil
}

// Fragments returns into how many separate pieces the bytes of file
// fileIndex sent to the session's recipient would fall if spans were sent
// too. Compare it with MaxServedSpans before serving a Range request.
func (s *Service) Fragments(ctx context.Context, a *Session, fileIndex int, spans []Span) (int, error) {
	v, err := s.db.ServedSpans(ctx, a.recipient.ID, fileIndex)
	if err != nil {
		return 0, err
	}
	old, err := parseSpans(v)
	if err != nil {
		return 0, err
	}
	return len(mergeSpans(append(old, spans...))), nil
}

// Served is what one download response sent of one file: the byte ranges
// the client's connection took, in file offsets.
type Served struct {
	Index int   // the file's index in the transfer
	Size  int64 // the file's size
	Spans []Span
}

// Delivery is what one download response sent to a recipient.
type Delivery struct {
	// Zip is set for the archive of all files; otherwise Files holds the
	// one file of a file response.
	Zip   bool
	Files []Served
	// Complete is set when the response ended as asked; unset when it
	// broke off (the client went away, or stored data failed
	// verification).
	Complete bool
}

// RecordDelivery accounts for one download response (see "What counts as a
// download" above): its audit entry, the recipient's served ranges of each
// file, and for each file that now counts as downloaded for the first
// time, its downloads row and the sender's notice. A ZIP that makes every
// file of the transfer downloaded at once gets one notice for all files.
// Call it once per response that sent bytes (or a whole empty file), also
// when the response broke off.
func (s *Service) RecordDelivery(ctx context.Context, a *Session, d Delivery) error {
	// The response has ended; the accounting must not end with it.
	ctx = context.WithoutCancel(ctx)
	now := s.now()
	tx, err := s.db.BeginTx(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	// Shared: the purge waits for this commit (so no served ranges outlive
	// it), and the recipient's row lock makes the read-merge-write of the
	// served ranges one at a time per recipient (parallel ranges of one
	// download manager), while other recipients record beside it.
	t, err := tx.TransferForShare(ctx, a.transfer.ID)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	if t != nil {
		if _, err := tx.RecipientForUpdate(ctx, a.recipient.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
	}
	// A purge since the response began has erased the served ranges;
	// writing them again would outlive it. What this response sent still
	// counts on its own.
	purged := t == nil || t.PurgedAt != nil
	mode := parseOptions(a.transfer.Options).NotifyMode()
	// In NotifyFirst a recipient's notice goes out with the first file
	// that counts; the row lock above makes "none before" hold until the
	// commit.
	hadDownloads := false
	if mode == kluis.NotifyFirst {
		ds, err := tx.Downloads(ctx, a.transfer.ID)
		if err != nil {
			return err
		}
		hadDownloads = slices.ContainsFunc(ds, func(d store.Download) bool { return d.RecipientID == a.recipient.ID })
	}
	var newly []int
	for _, f := range d.Files {
		sent := mergeSpans(f.Spans)
		all := sent
		if !purged {
			v, err := tx.ServedSpans(ctx, a.recipient.ID, f.Index)
			if err != nil {
				return err
			}
			old, err := parseSpans(v)
			if err != nil {
				return err
			}
			all = mergeSpans(append(old, sent...))
			if next := FormatSpans(all); next != v && len(sent) > 0 {
				if err := tx.SetServedSpans(ctx, a.recipient.ID, f.Index, next); err != nil {
					return err
				}
			}
		}
		if !covers(all, f.Size) {
			continue
		}
		first, err := tx.InsertDownload(ctx, a.recipient.ID, f.Index, now)
		if err != nil {
			return err
		}
		if first {
			newly = append(newly, f.Index)
		}
	}
	notices, err := s.notices(ctx, tx, mode, hadDownloads, a.transfer.ID, d.Zip, newly)
	if err != nil {
		return err
	}
	for _, idx := range notices {
		if err := s.notifyDownload(ctx, tx, a.transfer, a.recipient, idx, now); err != nil {
			return err
		}
	}
	ev := audit.Event{Actor: audit.Recipient(a.recipient.ID), Action: audit.FileDownload, Object: a.transfer.ID, Detail: deliveryDetail(d)}
	if d.Zip {
		ev.Action = audit.ZipDownload
	}
	if !d.Complete {
		ev.Result = audit.Aborted
	}
	if err := s.audit.Record(ctx, tx.Q, ev); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	if len(notices) > 0 {
		s.wakeMailer()
	}
	kind := "file"
	if d.Zip {
		kind = "zip"
	}
	switch {
	case d.Zip && d.Complete:
		s.met().Downloaded(kind)
	case !d.Zip && len(newly) > 0:
		s.met().Downloaded(kind)
	}
	s.log.Info("download", "transfer", a.transfer.ID, "recipient", a.recipient.ID, "kind", kind,
		"complete", d.Complete, "detail", ev.Detail, "newly_downloaded", len(newly))
	return nil
}

// notices returns which download notices one response causes in mode: the
// indexes of the files that newly count as downloaded (-1: every file, by
// one ZIP), given whether the recipient had downloaded anything before.
// NotifyEach: one per file, or one for a ZIP that made every file
// downloaded at once. NotifyFirst: one, at the recipient's first download.
// NotifyNone and NotifySummary: none (the summary goes out at the purge).
func (s *Service) notices(ctx context.Context, tx *store.Tx, mode kluis.NotifyMode, hadDownloads bool, transferID string, zip bool, newly []int) ([]int, error) {
	if len(newly) == 0 || s.mailer == nil {
		return nil, nil
	}
	switch mode {
	case kluis.NotifyEach:
	case kluis.NotifyFirst:
		if hadDownloads {
			return nil, nil
		}
	default:
		return nil, nil
	}
	if zip {
		files, err := tx.Files(ctx, transferID)
		if err != nil {
			return nil, err
		}
		if len(files) > 0 && len(newly) == len(files) {
			return []int{-1}, nil // "all files, as a ZIP"
		}
	}
	if mode == kluis.NotifyFirst {
		return newly[:1], nil
	}
	return newly, nil
}

// deliveryDetail is the audit detail of a download response. A file:
// "file_index=I size=N bytes=RANGES" (inclusive ranges, as in HTTP; empty
// when an empty file was sent). A ZIP sends files whole in index order, so
// "files=INDEXES" lists those it sent whole (runs as "0-4") and
// "partial=I:RANGE" the one it broke off in, if any.
func deliveryDetail(d Delivery) string {
	if !d.Zip {
		if len(d.Files) != 1 {
			return ""
		}
		f := d.Files[0]
		return "file_index=" + strconv.Itoa(f.Index) + " size=" + strconv.FormatInt(f.Size, 10) + " bytes=" + FormatSpans(mergeSpans(f.Spans))
	}
	var whole []int
	partial := ""
	for _, f := range d.Files {
		sent := mergeSpans(f.Spans)
		if covers(sent, f.Size) {
			whole = append(whole, f.Index)
		} else if len(sent) > 0 {
			partial = " partial=" + strconv.Itoa(f.Index) + ":" + FormatSpans(sent)
		}
	}
	return "files=" + indexRuns(whole) + partial
}

// indexRuns writes sorted indexes with runs shortened: "0-3,5".
func indexRuns(idx []int) string {
	var b strings.Builder
	for i := 0; i < len(idx); {
		j := i
		for j+1 < len(idx) && idx[j+1] == idx[j]+1 {
			j++
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Itoa(idx[i]))
		if j > i {
			b.WriteByte('-')
			b.WriteString(strconv.Itoa(idx[j]))
		}
		i = j + 1
	}
	return b.String()
}
