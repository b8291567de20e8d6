package transfer

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/kluis-nl/kluis"
	"github.com/kluis-nl/kluis/internal/audit"
	"github.com/kluis-nl/kluis/internal/blob"
	"github.com/kluis-nl/kluis/internal/secret"
	"github.com/kluis-nl/kluis/internal/segment"
	"github.com/kluis-nl/kluis/internal/store"
)

// Owner is a sender's proof of a transfer: the upload token from Create.
type Owner struct {
	TransferID string
}

// AuthorizeUpload finds the transfer an upload token belongs to. Returns
// EUNAUTHORIZED for an unknown token.
func (s *Service) AuthorizeUpload(ctx context.Context, token string) (Owner, error) {
	if token == "" {
		return Owner{}, kluis.Errorf(kluis.EUNAUTHORIZED, "This request needs the transfer's upload token (Authorization: Bearer ...).")
	}
	row, err := s.db.TransferByUploadToken(ctx, secret.HashToken(token))
	if errors.Is(err, store.ErrNotFound) {
		return Owner{}, kluis.Errorf(kluis.EUNAUTHORIZED, "The upload token is not valid.")
	}
	if err != nil {
		return Owner{}, err
	}
	return Owner{TransferID: row.ID}, nil
}

// AuthorizeSender lets a verified sender act on their own transfer. Another
// sender's transfer is "not found", so ids reveal nothing.
func (s *Service) AuthorizeSender(ctx context.Context, transferID, email string) (Owner, error) {
	row, err := s.db.Transfer(ctx, transferID)
	if errors.Is(err, store.ErrNotFound) || (err == nil && !strings.EqualFold(row.SenderEmail, email)) {
		return Owner{}, kluis.Errorf(kluis.ENOTFOUND, "This transfer does not exist.")
	}
	if err != nil {
		return Owner{}, err
	}
	return Owner{TransferID: row.ID}, nil
}

// SenderTransfers lists a sender's transfers, newest first, including the
// minimal records of expired ones still in retention.
func (s *Service) SenderTransfers(ctx context.Context, email string) ([]*kluis.Transfer, error) {
	rows, err := s.db.TransfersBySender(ctx, email)
	if err != nil {
		return nil, err
	}
	if len(rows) == 0 {
		return []*kluis.Transfer{}, nil
	}
	ts, err := s.ownerViews(ctx, s.db.Q, rows, nil)
	if err != nil {
		return nil, err
	}
	// A transfer the malware scan stopped before it was sent reads
	// failed, as on its own status, also after the purge.
	var ended []string
	for _, r := range rows {
		if r.FinishedAt == nil && (r.RevokedAt != nil || r.State == string(kluis.StateFailed)) {
			ended = append(ended, r.ID)
		}
	}
	if len(ended) == 0 {
		return ts, nil
	}
	labels, err := s.db.TransferLabels(ctx, ended)
	if err != nil {
		return nil, err
	}
	for i, r := range rows {
		b, ok := labels[r.ID]
		if !ok || r.FinishedAt != nil {
			continue
		}
		var l label
		if err := s.openJSON(purposeLabel, r.ID, b, &l); err == nil && l.Refused != nil {
			ts[i].State = kluis.StateFailed
		}
	}
	return ts, nil
}

// Transfer returns the owner's view of their transfer.
func (s *Service) Transfer(ctx context.Context, o Owner) (*kluis.Transfer, error) {
	return s.transfer(ctx, s.db.Q, o.TransferID)
}

// writable checks that a transfer still takes files.
func (s *Service) writable(t *store.TransferRow) error {
	now := s.now()
	switch {
	case t.RevokedAt != nil:
		return &kluis.Error{Code: kluis.EREVOKED, Message: "This transfer was revoked.", At: t.RevokedAt}
	case t.PurgedAt != nil || !now.Before(t.ExpiresAt):
		at := t.ExpiresAt
		return &kluis.Error{Code: kluis.EEXPIRED, Message: "This transfer has expired.", At: &at}
	case t.State != string(kluis.StateDraft) && t.State != string(kluis.StateUploading):
		return kluis.Errorf(kluis.ECONFLICT, "This transfer is finished and takes no more files.")
	}
	return nil
}

// finishable is writable for finish: at a file request's deadline
// (atDeadline) the transfer's expiry, which is the deadline, may have
// passed; it must still be a draft that is neither revoked nor purged.
func (s *Service) finishable(t *store.TransferRow, atDeadline bool) error {
	if !atDeadline || t.RevokedAt != nil || t.PurgedAt != nil {
		return s.writable(t)
	}
	if t.State != string(kluis.StateDraft) && t.State != string(kluis.StateUploading) {
		return kluis.Errorf(kluis.ECONFLICT, "This transfer is finished and takes no more files.")
	}
	return nil
}

// NewFile adds a file to a transfer. size is the declared length (tus
// Upload-Length); -1 means unknown (a plain streaming upload), in which case
// the remaining transfer budget is the limit while streaming.
func (s *Service) NewFile(ctx context.Context, o Owner, name, contentType string, size int64) (*kluis.File, error) {
	return s.newFile(ctx, o, name, contentType, size, false)
}

// NewPlainFile is NewFile for a plain upload, written by one request and
// not resumable: if that request dies with its process, Finish drops the
// file (see settleUploads).
func (s *Service) NewPlainFile(ctx context.Context, o Owner, name, contentType string, size int64) (*kluis.File, error) {
	return s.newFile(ctx, o, name, contentType, size, true)
}

func (s *Service) newFile(ctx context.Context, o Owner, name, contentType string, size int64, plain bool) (*kluis.File, error) {
	if size < -1 {
		return nil, kluis.Errorf(kluis.EINVALID, "The file size must not be negative.")
	}
	name = kluis.CleanFileName(name)
	if contentType == "" || len(contentType) > 200 || strings.ContainsAny(contentType, "\r\n") {
		contentType = "application/octet-stream"
	}
	tx, err := s.db.BeginTx(ctx)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	// The sender's lock for the daily volume (counted over all the
	// sender's transfers), then the transfer's row for its size budget,
	// its file count and the next file index; read again under the lock.
	t, err := tx.Transfer(ctx, o.TransferID)
	if err != nil {
		return nil, err
	}
	if err := tx.LockSender(ctx, t.SenderEmail); err != nil {
		return nil, err
	}
	if t, err = tx.TransferForUpdate(ctx, o.TransferID); err != nil {
		return nil, err
	}
	if err := s.writable(t); err != nil {
		return nil, err
	}
	used, err := s.used(ctx, tx.Q, o.TransferID)
	if err != nil {
		return nil, err
	}
	max := s.maxSize(t)
	if size >= 0 && used+size > max {
		return nil, s.tooLarge(max)
	}
	// The sender's daily volume, counted in this transaction (quota.go).
	meta := fileMeta{Size: size, Plain: plain}
	room := max - used
	if size < 0 && room <= 0 {
		return nil, s.tooLarge(max)
	}
	if limit := s.dailyLimit(t); limit > 0 {
		now := s.now()
		dayUsed, oldest, err := s.dailyUsed(ctx, tx.Q, t.SenderEmail, now)
		if err != nil {
			return nil, err
		}
		dayRoom := limit - dayUsed
		if size >= 0 && size > dayRoom || size < 0 && dayRoom <= 0 {
			s.log.Info("file refused by quota", "action", "upload.new_file", "transfer", t.ID, "result", "quota")
			return nil, dailyVolumeError(limit, dayUsed, size, oldest, now)
		}
		if size < 0 && dayRoom < room {
			room, meta.QuotaLimit = dayRoom, true
		}
	}
	if size < 0 {
		meta.Limit = room
	}
	files, err := tx.Files(ctx, o.TransferID)
	if err != nil {
		return nil, err
	}
	if len(files) >= 1000 {
		return nil, kluis.Errorf(kluis.EINVALID, "A transfer can hold at most 1000 files.")
	}
	if mf := parseOptions(t.Options).MaxFiles; mf > 0 && len(files) >= mf {
		c := &checker{}
		c.add(FieldFiles, CodeTooManyFiles, mf)
		return nil, kluis.Invalid(c.errs...)
	}
	r, err := s.recipientOf(t.ID, t.RecipientSealed)
	if err != nil {
		return nil, err
	}
	id := secret.NewID()
	if parseOptions(t.Options).ShowFilenames {
		meta.Name = name
	}
	metaSealed, err := s.sealJSON(purposeFileMeta, id, meta)
	if err != nil {
		return nil, err
	}
	privSealed, err := s.sealPrivate(r, purposeFilePriv, id, filePrivate{Name: name, ContentType: contentType})
	if err != nil {
		return nil, err
	}
	row := &store.FileRow{
		ID: id, TransferID: o.TransferID, UpdatedAt: s.now(),
		MetaSealed: metaSealed, PrivateSealed: privSealed,
		HeadSealed: s.keys.Seal(purposeHead, id, segment.Head{}.Marshal()),
	}
	if s.scans(t) {
		if row.ScanSealed, err = s.newScanKey(id); err != nil {
			return nil, err
		}
	}
	if err := tx.InsertFile(ctx, row); err != nil {
		return nil, err
	}
	if t.State == string(kluis.StateDraft) {
		if err := tx.SetTransferState(ctx, t.ID, string(kluis.StateUploading), string(kluis.StateDraft)); err != nil {
			return nil, err
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, err
	}
	return &kluis.File{ID: id, Index: row.Index, Name: name, ContentType: contentType, Size: size}, nil
}

func (s *Service) tooLarge(max int64) error {
	return kluis.Errorf(kluis.ETOOLARGE, "The files are too large together: a transfer can hold at most %s.", enSize(max))
}

// used sums what a transfer's files take of its budget (fileUse).
func (s *Service) used(ctx context.Context, q store.Q, transferID string) (int64, error) {
	files, err := q.Files(ctx, transferID)
	if err != nil {
		return 0, err
	}
	var sum int64
	for _, f := range files {
		n, err := s.fileUse(f)
		if err != nil {
			return 0, err
		}
		sum += n
	}
	return sum, nil
}

// fileUse is what a file takes of its transfer's budget and its sender's
// daily volume: its declared size; for a file of unknown length still
// being written, what it reserved (fileMeta.Limit), or for one from before
// reservations, the bytes so far.
func (s *Service) fileUse(f *store.FileRow) (int64, error) {
	var m fileMeta
	if err := s.openJSON(purposeFileMeta, f.ID, f.MetaSealed, &m); err != nil {
		return 0, err
	}
	switch {
	case m.Size >= 0:
		return m.Size, nil
	case m.Limit > 0:
		return m.Limit, nil
	}
	h, err := s.head(f)
	if err != nil {
		return 0, err
	}
	return h.Size, nil
}

// FileState is what tus needs to answer HEAD.
type FileState struct {
	ID         string
	TransferID string
	Size       int64 // -1 if unknown
	Offset     int64
	Complete   bool
}

// FileState returns a file's upload progress. Returns ENOTFOUND if the file
// does not belong to the owner's transfer.
func (s *Service) FileState(ctx context.Context, o Owner, fileID string) (*FileState, error) {
	f, err := s.ownedFile(ctx, s.db.Q, o, fileID)
	if err != nil {
		return nil, err
	}
	var m fileMeta
	if err := s.openJSON(purposeFileMeta, f.ID, f.MetaSealed, &m); err != nil {
		return nil, err
	}
	h, err := s.head(f)
	if err != nil {
		return nil, err
	}
	return &FileState{ID: f.ID, TransferID: f.TransferID, Size: m.Size, Offset: h.Size, Complete: f.Complete}, nil
}

func (s *Service) ownedFile(ctx context.Context, q store.Q, o Owner, fileID string) (*store.FileRow, error) {
	f, err := q.File(ctx, fileID)
	if errors.Is(err, store.ErrNotFound) || (err == nil && f.TransferID != o.TransferID) {
		return nil, kluis.Errorf(kluis.ENOTFOUND, "This upload does not exist.")
	}
	return f, err
}

// errReader remembers the first read error of the request body, so that a
// body that broke off is told apart from a storage failure.
type errReader struct {
	r   io.Reader
	err error
}

func (e *errReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil && err != io.EOF && e.err == nil {
		e.err = err
	}
	return n, err
}

// WriteFile appends src to a file at offset, as one or more segments, each
// committed (blob, then its manifest entry) before WriteFile returns, also
// when src ends with an error. It returns the number of bytes committed. A
// file of unknown size (plain streaming upload) may grow to what it
// reserved at NewFile (the rest of the transfer's budget, or of the
// sender's daily volume); more gives ETOOLARGE (EQUOTA for the volume).
//
// A commit writes one entry row and the file's small head, so its cost does
// not grow with the segments before it (manifest.go).
//
// Tiny requests are refused: a request that ends before the file's end
// with less than Config.MinSegment bytes leaves a "short" segment; a file
// takes MaxShortSegments of them (interrupted requests end short too), and
// after that such a request stores nothing and gets ETOOMANY asking for
// larger requests (see docs/security.md).
//
// Every segment commits under the file's upload lease (lease.go): the one
// in ctx (WithLease, as tus does), or else one WriteFile takes itself for
// the call, waiting up to two lease durations for another holder. A lease
// lost mid-write (taken over after this process stalled) fails the next
// commit with ECONFLICT, and that segment's blob is deleted.
func (s *Service) WriteFile(ctx context.Context, o Owner, fileID string, offset int64, src io.Reader) (int64, error) {
	f, err := s.ownedFile(ctx, s.db.Q, o, fileID)
	if err != nil {
		return 0, err
	}
	lease := leaseFrom(ctx, f.ID)
	if lease == nil {
		// No lock from the caller (plain PUT, reply): hold the lease for
		// this call. Requests to let go are not honoured: such an upload
		// cannot resume elsewhere, so the other request waits for it.
		wctx, cancel := context.WithTimeout(ctx, 2*s.leaseTTL())
		lease, err = s.LeaseUpload(wctx, f.ID, nil)
		cancel()
		if err != nil {
			if errors.Is(err, ErrLeaseTimeout) {
				return 0, kluis.Errorf(kluis.ECONFLICT, "Another request is still writing this file; try again later.")
			}
			return 0, err
		}
		defer lease.Release()
		// The file may have moved on while this call waited.
		if f, err = s.ownedFile(ctx, s.db.Q, o, fileID); err != nil {
			return 0, err
		}
	}
	if f.Complete {
		return 0, kluis.Errorf(kluis.ECONFLICT, "This file is already complete.")
	}
	t, err := s.db.Transfer(ctx, f.TransferID)
	if err != nil {
		return 0, err
	}
	if err := s.writable(t); err != nil {
		return 0, err
	}
	var meta fileMeta
	if err := s.openJSON(purposeFileMeta, f.ID, f.MetaSealed, &meta); err != nil {
		return 0, err
	}
	if f.HeadSealed == nil {
		// Written before migration 0009: move its manifest to entry rows
		// once, so this and later commits are O(1).
		if err := s.convertLegacy(ctx, f); err != nil {
			return 0, err
		}
		if f, err = s.ownedFile(ctx, s.db.Q, o, fileID); err != nil {
			return 0, err
		}
	}
	head, err := s.head(f)
	if err != nil {
		return 0, err
	}
	if offset != head.Size {
		return 0, kluis.Errorf(kluis.ECONFLICT, "The upload offset %d does not match the stored offset %d.", offset, head.Size)
	}
	limit := meta.Size
	if limit < 0 {
		if meta.Limit > 0 {
			limit = meta.Limit
		} else {
			// A file from before reservations: the rest of the budget.
			used, err := s.used(ctx, s.db.Q, t.ID)
			if err != nil {
				return 0, err
			}
			limit = head.Size + (s.maxSize(t) - used)
		}
	}
	rcpt, err := s.recipientOf(t.ID, t.RecipientSealed)
	if err != nil {
		return 0, err
	}
	// A file that waits for its malware scan is also encrypted to its
	// scan recipient (scan.go).
	rcpts, err := s.recipientsOf(rcpt, f)
	if err != nil {
		return 0, err
	}
	body := &errReader{r: src}
	// Commits must finish even when the request context ends (a client that
	// went away): what arrived is kept, so the upload can resume there.
	commitCtx := context.WithoutCancel(ctx)
	rev := f.Rev
	var total int64
	// commit makes one closed segment durable (blob, then entry and head).
	// It runs in its own goroutine while the loop reads and encrypts the
	// next segment; at most one commit is in flight, so they finish in
	// order. Only commit touches head, rev and total until wait has
	// returned.
	commit := func(bw blob.Writer, entry segment.Entry, n int64, short bool) error {
		start := time.Now()
		if err := bw.Commit(); err != nil {
			bw.Abort()
			return storageError(err)
		}
		next, err := head.Append(&entry)
		if err != nil {
			// Never happens: the loop computes offsets from this head.
			s.blobs.Delete(commitCtx, entry.Key)
			return err
		}
		if short {
			next.Short++
		}
		id := store.SegmentID(f.ID, head.Count)
		row := store.SegmentRow{ID: id, FileID: f.ID, Index: head.Count, EntrySealed: s.keys.Seal(purposeSegment, id, segment.MarshalEntry(entry))}
		if err := s.db.AppendSegmentFenced(commitCtx, f.ID, lease.Token(), rev, row, s.keys.Seal(purposeHead, f.ID, next.Marshal()), s.now()); err != nil {
			// The lease is gone (taken over after this process stalled) or
			// another writer moved on: this segment must not count. The
			// blob is deleted (or collected).
			s.blobs.Delete(commitCtx, entry.Key)
			if errors.Is(err, store.ErrLeaseLost) {
				s.log.Warn("segment refused: upload lease lost", "file", f.ID, "err", err)
				return errLeaseLost(err)
			}
			if errors.Is(err, store.ErrConflict) {
				return kluis.Errorf(kluis.ECONFLICT, "This upload was changed by another request. Ask the server for the current offset and resume.")
			}
			return err
		}
		head = next
		rev++
		total += n
		s.met().SegmentCommitted(n, time.Since(start))
		return nil
	}
	var pending chan error
	wait := func() error {
		if pending == nil {
			return nil
		}
		err := <-pending
		pending = nil
		return err
	}
	// done waits for the commit in flight and returns what is committed.
	done := func(err error) (int64, error) {
		if cerr := wait(); err == nil {
			err = cerr
		}
		return total, err
	}
	// The loop's own view of the file: where the next segment starts.
	next, hashState, count, shorts := head.Size, head.HashState, head.Count, head.Short
	start := next
	minSegment, maxShort := s.minSegment(), s.maxShortSegments()
	buf := make([]byte, 256<<10)
	for {
		room := limit - next
		if room <= 0 {
			// Upload-Length reached (tus) or the budget is used up: one more
			// byte means too large for a streaming upload.
			if meta.Size < 0 {
				var one [1]byte
				if n, _ := io.ReadFull(body, one[:]); n > 0 {
					if meta.QuotaLimit {
						return done(&kluis.Error{Code: kluis.EQUOTA, Err: ErrDailyVolume, Message: "You can send at most " +
							enSize(s.dailyLimit(t)) + " of files a day, and this file goes beyond what is left of it today."})
					}
					return done(s.tooLarge(s.maxSize(t)))
				}
			}
			return done(nil)
		}
		if count >= segment.MaxSegments {
			return done(kluis.Errorf(kluis.ETOOMANY, "This file was sent in too many small pieces (at most %d). Send larger requests.", segment.MaxSegments))
		}
		segLimit := min(room, s.cfg.SegmentSize, segment.MaxSize)
		key := fmt.Sprintf("t/%s/%s/%06d-%s", t.ID, f.ID, count, randHex(4))
		bw, err := s.blobs.Create(commitCtx, key)
		if err != nil {
			return done(storageError(err))
		}
		sw, err := segment.NewWriterTo(bw, rcpts, next, hashState)
		if err != nil {
			bw.Abort()
			return done(err)
		}
		n, copyErr := io.CopyBuffer(sw, io.LimitReader(body, segLimit), buf)
		if copyErr != nil && body.err == nil {
			// The blob store failed (disk full, I/O error): this segment is
			// lost, the committed ones stay, the client resumes later.
			bw.Abort()
			return done(storageError(copyErr))
		}
		if n == 0 {
			bw.Abort()
			return done(nil)
		}
		// A request that ended before the file's end with less than
		// minSegment bytes in all: a tiny request (or an interrupted one). Past the allowance it is not
		// stored; an interrupted client never sees the answer and resumes
		// from the stored offset with a new request.
		short := n < segLimit && next+n-start < minSegment && meta.Size >= 0 && next+n < meta.Size
		if short && shorts >= maxShort {
			bw.Abort()
			s.log.Info("segment refused: too many small requests", "file", f.ID, "bytes", n)
			return done(kluis.Errorf(kluis.ETOOMANY,
				"This file is being sent in requests that are too small: a file may have at most %d requests of less than %s before its end. Send at least %s per request (for a tus client: a larger chunk size), or the rest of the file at once.",
				maxShort, enSize(minSegment), enSize(minSegment)))
		}
		entry, err := sw.Close()
		if err != nil {
			bw.Abort()
			return done(storageError(err))
		}
		entry.Key = key
		if err := wait(); err != nil {
			// The previous segment did not commit: this one cannot follow it.
			bw.Abort()
			return total, err
		}
		pending = make(chan error, 1)
		go func(c chan<- error) { c <- commit(bw, entry, n, short) }(pending)
		next, hashState, count = next+n, entry.HashState, count+1
		if short {
			shorts++
		}
		if n < segLimit {
			// The body ended (cleanly or not) before the bound.
			return done(nil)
		}
	}
}

func storageError(err error) error {
	if errors.Is(err, blob.ErrNoSpace) {
		return &kluis.Error{Code: kluis.ENOSPACE, Message: "The server's storage is full. Your upload was saved up to this point; try again later to continue.", Err: err}
	}
	return fmt.Errorf("storage: %w", err)
}

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// CompleteFile marks a fully uploaded file complete, storing its size and
// SHA-256 (from the running hash state: the file is not read again).
func (s *Service) CompleteFile(ctx context.Context, o Owner, fileID string) (*kluis.File, error) {
	tx, err := s.db.BeginTx(ctx)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	f, err := s.ownedFile(ctx, tx.Q, o, fileID)
	if err != nil {
		return nil, err
	}
	if f.Complete {
		return nil, kluis.Errorf(kluis.ECONFLICT, "This file is already complete.")
	}
	// Shared: the transfer must stay writable until this commits (a
	// revoke or the purge waits), while other files complete beside it.
	t, err := tx.TransferForShare(ctx, f.TransferID)
	if err != nil {
		return nil, err
	}
	if err := s.writable(t); err != nil {
		return nil, err
	}
	var meta fileMeta
	if err := s.openJSON(purposeFileMeta, f.ID, f.MetaSealed, &meta); err != nil {
		return nil, err
	}
	head, err := s.head(f)
	if err != nil {
		return nil, err
	}
	if meta.Size >= 0 && head.Size != meta.Size {
		return nil, kluis.Errorf(kluis.ECONFLICT, "The file is not complete: %d of %d bytes received.", head.Size, meta.Size)
	}
	meta.Size, meta.Limit, meta.QuotaLimit = head.Size, 0, false
	sum, err := head.Sum()
	if err != nil {
		return nil, err
	}
	rcpt, err := s.recipientOf(t.ID, t.RecipientSealed)
	if err != nil {
		return nil, err
	}
	// The name was encrypted at NewFile and only the identity opens it, so
	// the checksum gets its own private value beside it.
	metaSealed, err := s.sealJSON(purposeFileMeta, f.ID, meta)
	if err != nil {
		return nil, err
	}
	sumSealed, err := s.sealPrivate(rcpt, purposeFileSum, f.ID, hex.EncodeToString(sum))
	if err != nil {
		return nil, err
	}
	if err := tx.CompleteFile(ctx, f.ID, f.Rev, metaSealed, sumSealed, s.now()); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return nil, kluis.Errorf(kluis.ECONFLICT, "This upload was changed by another request; try again.")
		}
		return nil, err
	}
	if err := s.audit.Record(ctx, tx.Q, audit.Event{Actor: actorOr(ctx, audit.UploadToken), Action: audit.FileComplete, Object: t.ID,
		Detail: fmt.Sprintf("file=%s size=%d", f.ID, meta.Size)}); err != nil {
		return nil, err
	}
	if err := tx.Commit(); err != nil {
		return nil, err
	}
	s.met().FileUploaded(uploadKind(ctx))
	return &kluis.File{ID: f.ID, Index: f.Index, Size: meta.Size, Complete: true}, nil
}

// DeleteFile removes an unfinished file and its segments (tus termination,
// or a plain upload that failed).
func (s *Service) DeleteFile(ctx context.Context, o Owner, fileID string) error {
	f, err := s.ownedFile(ctx, s.db.Q, o, fileID)
	if err != nil {
		return err
	}
	tx, err := s.db.BeginTx(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	// Locked, so a Finish cannot send a file this removes.
	t, err := tx.TransferForUpdate(ctx, f.TransferID)
	if err != nil {
		return err
	}
	if t.State != string(kluis.StateDraft) && t.State != string(kluis.StateUploading) {
		return kluis.Errorf(kluis.ECONFLICT, "Files of a finished transfer cannot be removed; revoke the transfer instead.")
	}
	if err := tx.DeleteFile(ctx, f.ID); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	return s.deletePrefix(context.WithoutCancel(ctx), fmt.Sprintf("t/%s/%s/", f.TransferID, f.ID))
}

func (s *Service) deletePrefix(ctx context.Context, prefix string) error {
	var keys []string
	if err := s.blobs.List(ctx, prefix, func(i blob.Info) error {
		keys = append(keys, i.Key)
		return nil
	}); err != nil {
		return err
	}
	for _, k := range keys {
		if err := s.blobs.Delete(ctx, k); err != nil {
			return err
		}
	}
	return nil
}

// RecipientLink is a recipient's own link, handed out once at Finish.
type RecipientLink struct {
	Recipient kluis.Recipient
	AccessID  string
	// Code is the recipient's receive code, for typing at /receive (the
	// mail shows it); it leads to the same form as the link.
	Code string
	URL  string
}

// Finished is the result of Finish.
type Finished struct {
	Transfer *kluis.Transfer
	Links    []RecipientLink
	// Unscanned are the numbers (from 1) of the files that this finish
	// let pass without a malware scan, by policy: clamd could not be
	// reached and the policy is fail-open, or the file is larger than
	// clamd takes and the policy passes such files. The sender is warned.
	Unscanned []int
}

// Finish closes a transfer for uploads and makes it ready: every file must
// be complete, and there must be a file or a message. Each recipient gets a
// fresh access id now (only its hash is stored). For a no-password transfer
// the client hands back the link secret from Create; it is checked and put
// into the links, and not stored.
func (s *Service) Finish(ctx context.Context, o Owner, linkSecret string) (*Finished, error) {
	return s.FinishWith(ctx, o, linkSecret, nil)
}

// FinishHook queues mails of the caller's that must go out only with the
// transfer (the mail gateway's password confirmation). It runs in Finish's
// transaction once the transfer is finished, and returns the outbox ids of
// what it queued: while the transfer waits for its malware scan they are
// held with the recipients' notifications, released when the scan passes
// and deleted when it fails. A transfer refused at once by the scan never
// runs it.
type FinishHook func(ctx context.Context, tx *store.Tx) ([]string, error)

// FinishWith is Finish that runs also (if not nil) in its transaction.
func (s *Service) FinishWith(ctx context.Context, o Owner, linkSecret string, also FinishHook) (*Finished, error) {
	return s.finish(ctx, o, linkSecret, also, false)
}

// finish is the one finish path of every upload: Finish, FinishWith and,
// with atDeadline, the sending of a file request's upload at its deadline
// (deadline.go). At the deadline the transfer's own expiry (the request's
// deadline) has passed, which finish then allows; the request must be
// past its deadline, and files whose upload is not complete are dropped
// rather than refused. Everything else (the malware scan, the requester's
// mail, the audit entry, the row locks that make it happen once) is the
// same.
func (s *Service) finish(ctx context.Context, o Owner, linkSecret string, also FinishHook, atDeadline bool) (*Finished, error) {
	// An upload that received every byte before a crash is completed first,
	// so that its file is scanned and counted like any other.
	if err := s.settleUploads(ctx, o); err != nil {
		return nil, err
	}
	// Files waiting for their malware scan are scanned first, outside the
	// transaction (a scan reads the whole file): a refused file is removed
	// and Finish ends there, so no recipient is notified. When clamd
	// cannot be reached (fail-closed) the transfer is finished all the
	// same, but waits in state scanning with its mails held (scanwait.go).
	waiting := false
	unscanned, err := s.scanBeforeFinish(ctx, o, atDeadline)
	if err != nil {
		if kluis.ErrorCode(err) != kluis.ESCANPENDING {
			return nil, err
		}
		waiting = true
	}
	tx, err := s.db.BeginTx(ctx)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	// Locked: no file can be added or removed between the check that every
	// file is complete and the commit.
	t, err := tx.TransferForUpdate(ctx, o.TransferID)
	if err != nil {
		return nil, err
	}
	if err := s.finishable(t, atDeadline); err != nil {
		return nil, err
	}
	all, err := tx.Files(ctx, t.ID)
	if err != nil {
		return nil, err
	}
	files := make([]*store.FileRow, 0, len(all))
	var dropped []*store.FileRow
	for _, f := range all {
		if !f.Complete && atDeadline {
			// Never finished before the deadline: it goes, the rest is
			// sent. A writer still at it finds the file gone.
			if err := tx.DeleteFile(ctx, f.ID); err != nil {
				return nil, err
			}
			dropped = append(dropped, f)
			continue
		}
		if !f.Complete {
			return nil, kluis.Errorf(kluis.ECONFLICT, "File %d of %d has not been uploaded completely yet.", f.Index+1, len(all))
		}
		files = append(files, f)
		if f.ScanSealed != nil && !waiting {
			// Added or completed while the others were scanned.
			return nil, &kluis.Error{Code: kluis.ESCANPENDING, RetryAfter: time.Second,
				Message: "A file was added while the files were being checked for malware. Nothing was sent yet; finish again."}
		}
	}
	if len(files) == 0 && !parseOptions(t.Options).HasMessage {
		return nil, kluis.Errorf(kluis.EINVALID, "Add at least one file or a confidential message before you finish.")
	}
	fragment := ""
	now := s.now()
	var request *store.FileRequest
	if reqID := parseOptions(t.Options).Request; reqID != "" {
		if request, err = s.finishRequest(ctx, tx, t, reqID, now, atDeadline); err != nil {
			return nil, err
		}
	} else if atDeadline {
		return nil, kluis.Errorf(kluis.ECONFLICT, "Only the upload of a file request is sent at its deadline.")
	}
	if t.PasswordMode == string(kluis.PasswordNone) {
		if linkSecret == "" {
			return nil, kluis.Errorf(kluis.EINVALID, "This transfer has no password: send the link_secret from the create response to finish it.")
		}
		if _, err := s.unwrap(t, linkSecret); err != nil {
			return nil, err
		}
		fragment = "#" + linkSecret
	}
	rs, err := tx.Recipients(ctx, t.ID)
	if err != nil {
		return nil, err
	}
	out := &Finished{Unscanned: unscanned}
	var notified *time.Time
	if s.mailer != nil && !waiting {
		notified = &now
	}
	for _, r := range rs {
		access := secret.NewAccessID()
		if err := tx.SetRecipientAccess(ctx, r.ID, secret.HashToken(access), notified); err != nil {
			return nil, err
		}
		code := secret.NewReceiveCode()
		if err := tx.SetRecipientCode(ctx, r.ID, s.codeHash(code)); err != nil {
			return nil, err
		}
		out.Links = append(out.Links, RecipientLink{
			Recipient: kluis.Recipient{ID: r.ID, TransferID: t.ID, Kind: kluis.RecipientKind(r.Kind), Address: r.Address},
			AccessID:  access,
			Code:      code,
			URL:       s.cfg.BaseURL + "/r/" + access + fragment,
		})
	}
	detail := fmt.Sprintf("files=%d recipients=%d", len(files), len(rs))
	if atDeadline {
		detail += fmt.Sprintf(" at=deadline dropped=%d", len(dropped))
	}
	if waiting {
		// Never past the expiry: the purge ends the transfer then.
		until := earliest(now.Add(s.cfg.Scan.Wait), t.ExpiresAt)
		if err := tx.StartScanWait(ctx, t.ID, now, now.Add(scanRetryFirst), until); err != nil {
			return nil, kluis.Errorf(kluis.ECONFLICT, "This transfer is already finished.")
		}
		detail += " scan=waiting"
	} else if err := tx.FinishTransfer(ctx, t.ID, now); err != nil {
		return nil, kluis.Errorf(kluis.ECONFLICT, "This transfer is already finished.")
	}
	if err := s.keepLabel(ctx, tx, t, files); err != nil {
		return nil, err
	}
	var mails []string
	if request != nil {
		mails, err = s.notifyRequestDone(ctx, tx, t, request, len(files))
		detail += " request=" + request.ID
	} else if slug := parseOptions(t.Options).Dropoff; slug != "" {
		mails, err = s.finishDropoff(ctx, tx, t, slug, len(files), now)
		detail += " dropoff=" + slug
	} else {
		mails, err = s.notifyReady(ctx, tx, t, files, out.Links)
	}
	if err != nil {
		return nil, err
	}
	if also != nil {
		more, err := also(ctx, tx)
		if err != nil {
			return nil, err
		}
		mails = append(mails, more...)
	}
	if waiting {
		if err := tx.HoldOutbox(ctx, t.ID, mails); err != nil {
			return nil, err
		}
	}
	if err := s.audit.Record(ctx, tx.Q, audit.Event{Actor: actorOr(ctx, audit.UploadToken), Action: audit.TransferFinish, Object: t.ID,
		Detail: detail}); err != nil {
		return nil, err
	}
	if err := tx.Commit(); err != nil {
		return nil, err
	}
	s.wakeMailer()
	for _, f := range dropped {
		// Blobs left by a failure here are the collector's.
		if err := s.deletePrefix(context.WithoutCancel(ctx), fmt.Sprintf("t/%s/%s/", t.ID, f.ID)); err != nil {
			s.log.Error("finish: delete an unfinished upload", "transfer", t.ID, "file", f.ID, "err", err)
		}
	}
	out.Transfer, err = s.transfer(ctx, s.db.Q, t.ID)
	if err != nil {
		return nil, err
	}
	if waiting {
		s.log.Warn("transfer waits for its malware scan", "transfer", t.ID, "files", len(files))
		return out, nil
	}
	s.log.Info("transfer ready", "transfer", t.ID, "files", len(files))
	return out, nil
}

// Revoke ends a transfer for everyone, or for one recipient when address is
// not empty.
func (s *Service) Revoke(ctx context.Context, o Owner, address string) error {
	return s.revoke(ctx, o, address, -1)
}

// ErrStaffLimit is returned by RevokeByStaff when the actor revoked their
// hourly number of transfers already.
var ErrStaffLimit = kluis.Errorf(kluis.ETOOMANYREQUESTS, "You revoked many transfers in the last hour. Wait a while, or ask an administrator.")

// RevokeByStaff is a revocation from the admin console: the whole
// transfer, by the person, role and reason in ctx (audit.WithActor,
// WithRole, WithReason). The sender is told by mail, in their language,
// that the helpdesk revoked it and why. With hourly > 0 the actor may
// revoke at most hourly transfers in the hour before now, counted in the
// audit log in the same transaction as the revocation and its entry, with
// the actor locked first (store.Tx.LockActor): of two revocations at once
// by one person at hourly-1, one passes. Returns ErrStaffLimit past it.
func (s *Service) RevokeByStaff(ctx context.Context, transferID string, hourly int) error {
	return s.revoke(ctx, Owner{TransferID: transferID}, "", hourly)
}

// revoke is Revoke; staff >= 0 makes it RevokeByStaff with that limit
// (0: none).
func (s *Service) revoke(ctx context.Context, o Owner, address string, staff int) error {
	now := s.now()
	tx, err := s.db.BeginTx(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if staff > 0 {
		actor := audit.Actor(ctx)
		if err := tx.LockActor(ctx, actor); err != nil {
			return err
		}
		recent, err := tx.SearchAudit(ctx, store.AuditFilter{Actor: actor, Action: audit.TransferRevoke, From: now.Add(-time.Hour)}, staff)
		if err != nil {
			return err
		}
		if len(recent) >= staff {
			return ErrStaffLimit
		}
	}
	t, err := tx.TransferForUpdate(ctx, o.TransferID)
	if err != nil {
		return err
	}
	if t.RevokedAt != nil {
		return kluis.Errorf(kluis.ECONFLICT, "This transfer was already revoked.")
	}
	if t.PurgedAt != nil || !now.Before(t.ExpiresAt) {
		return kluis.Errorf(kluis.ECONFLICT, "This transfer has already expired.")
	}
	rs, err := tx.Recipients(ctx, t.ID)
	if err != nil {
		return err
	}
	if address == "" {
		if err := tx.RevokeTransfer(ctx, t.ID, now); err != nil {
			return err
		}
		var live []*store.RecipientRow
		for _, r := range rs {
			if r.RevokedAt == nil {
				live = append(live, r)
			}
		}
		if err := s.notifyRevoked(ctx, tx, t, live, now); err != nil {
			return err
		}
		if staff >= 0 {
			if err := s.notifyStaffRevoked(ctx, tx, t, now); err != nil {
				return err
			}
		}
	} else {
		found := false
		for _, r := range rs {
			if strings.EqualFold(r.Address, strings.TrimSpace(address)) {
				found = true
				if r.RevokedAt != nil {
					return kluis.Errorf(kluis.ECONFLICT, "Access for %s was already revoked.", r.Address)
				}
				if t.State == string(kluis.StateScanning) {
					// Its notification is queued, held until the scan:
					// revoking one recipient now would still send it.
					return kluis.Errorf(kluis.ECONFLICT, "This transfer is still being checked for malware and nothing was sent yet. Revoke the whole transfer, or wait until it is sent.")
				}
				if err := tx.RevokeRecipient(ctx, r.ID, now); err != nil {
					return err
				}
				if err := s.notifyRevoked(ctx, tx, t, []*store.RecipientRow{r}, now); err != nil {
					return err
				}
			}
		}
		if !found {
			return kluis.Errorf(kluis.ENOTFOUND, "%s is not a recipient of this transfer.", address)
		}
	}
	ev := audit.Event{Actor: actorOr(ctx, audit.UploadToken), Action: audit.TransferRevoke, Object: t.ID}
	if address != "" {
		for _, r := range rs {
			if strings.EqualFold(r.Address, strings.TrimSpace(address)) {
				ev.Detail = "recipient=" + strconv.FormatInt(r.ID, 10)
			}
		}
	}
	if err := s.audit.Record(ctx, tx.Q, ev); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	s.wakeMailer()
	s.log.Info("transfer revoked", "transfer", t.ID, "one_recipient", address != "")
	if address == "" {
		s.wakePurge()
	}
	return nil
}

// Extend moves the expiry of a live transfer, within MaxExpiry (or the
// policy's maximum decided at Create) from now.
func (s *Service) Extend(ctx context.Context, o Owner, expires time.Time) error {
	now := s.now()
	if !expires.After(now) {
		return kluis.Errorf(kluis.EINVALID, "The new expiry date must be in the future.")
	}
	t, err := s.db.Transfer(ctx, o.TransferID)
	if err != nil {
		return err
	}
	if m := parseOptions(t.Options).MaxExpiry; m > 0 && m < s.cfg.MaxExpiry && expires.After(now.Add(m)) {
		return kluis.Errorf(kluis.EPOLICY, "The expiry date can be at most %d days from now (organisation policy).", int(m.Hours()/24))
	}
	if expires.After(now.Add(s.cfg.MaxExpiry)) {
		return kluis.Errorf(kluis.EINVALID, "The expiry date can be at most %d days from now.", int(s.cfg.MaxExpiry.Hours()/24))
	}
	if err := s.live(t); err != nil {
		return err
	}
	if err := s.db.ExtendTransfer(ctx, t.ID, expires); err != nil {
		return kluis.Errorf(kluis.ECONFLICT, "This transfer can no longer be extended.")
	}
	s.audit.Log(ctx, audit.Event{Actor: actorOr(ctx, audit.UploadToken), Action: audit.TransferExtend, Object: t.ID,
		Detail: "expires_at=" + expires.UTC().Format(time.RFC3339)})
	return nil
}

// Defaults of Config.MinSegment and Config.MaxShortSegments. Browsers send
// at least 2 MiB per request (send-page.js) and the CLI sends a file in
// one request, so only a client that chose tiny requests, or a connection
// that broke off more than 16 times in one file, meets the limit.
const (
	DefaultMinSegment       = 1 << 20
	DefaultMaxShortSegments = 16
)

func (s *Service) minSegment() int64 {
	if s.cfg.MinSegment > 0 {
		return s.cfg.MinSegment
	}
	return DefaultMinSegment
}

func (s *Service) maxShortSegments() int {
	if s.cfg.MaxShortSegments > 0 {
		return s.cfg.MaxShortSegments
	}
	return DefaultMaxShortSegments
}
