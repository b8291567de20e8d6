// Package download serves the files of an unlocked transfer over HTTP, for
// the JSON API and the web pages alike: one file (whole, one range, or
// several as multipart/byteranges) or all of them as one ZIP, always as an
// attachment.
//
// # Writing
//
// Every answer is written by the handler's goroutine, never by
// http.ServeContent (see ranges.go): a read error of stored data (a
// tampered segment, blobs purged under a slow reader) panics with
// http.ErrAbortHandler there, which net/http recovers by cutting the
// connection, so the client never takes a broken answer for a complete
// one and the process lives on.
//
// # Reading
//
// The bytes come from segment.ReadAhead over the file's segment reader: the
// windows after the one being sent are decrypted in parallel, so a
// download uses every core, in order, with at most segment.Depth windows
// of segment.WindowSize bytes per answer in memory. A window that fails
// verification releases only its bytes before the failure; nothing after
// it is sent.
//
// # Accounting
//
// Every answer that sent bytes, also one that broke off, is reported to
// transfer.Service.RecordDelivery with the byte ranges the connection
// took.
package download

import (
	"archive/zip"
	"bufio"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/kluis-nl/kluis"
	"github.com/kluis-nl/kluis/internal/locale"
	"github.com/kluis-nl/kluis/internal/segment"
	"github.com/kluis-nl/kluis/internal/transfer"
)

// ServeFile sends one file of an unlocked transfer as an attachment, whole
// or the ranges a Range header asks for (several as multipart/byteranges,
// see ranges.go). It returns an error only while nothing has been written,
// so the caller can answer in its own format (JSON for the API, a page for
// the web); a file that fails verification later aborts the connection
// instead of ending as a clean 200 or 206. Every response that sends bytes
// is accounted for (transfer.Service.RecordDelivery), also one that breaks
// off.
func ServeFile(w http.ResponseWriter, r *http.Request, svc *transfer.Service, s *transfer.Session, fileID string, log *slog.Logger) error {
	f, fr, err := svc.OpenFile(r.Context(), s, fileID)
	if err != nil {
		return err
	}
	defer fr.Close()
	// Verify the first segment before the status line goes out, so a
	// tampered file gets a clean error where that is still possible.
	if f.Size > 0 {
		var one [1]byte
		if _, err := fr.ReadAt(one[:], 0); err != nil && err != io.EOF {
			return integrityError(err)
		}
	}
	rangeHeader := r.Header.Get("Range")
	if r.Header.Get("If-Range") != "" {
		// A download has no validator, so no If-Range can match: the
		// whole file, as RFC 9110 section 13.1.5 asks.
		rangeHeader = ""
	}
	spans, rangeErr := parseRanges(rangeHeader, f.Size)
	if len(spans) > 0 {
		// Bound what the engine must remember of this recipient's pieces
		// of the file: a request that would scatter them further gets the
		// whole file, which joins them all.
		n, err := svc.Fragments(r.Context(), s, f.Index, spans)
		if err != nil {
			return err
		}
		if n > transfer.MaxServedSpans {
			spans = nil
		}
	}
	h := w.Header()
	h.Set("Content-Disposition", ContentDisposition(f.Name))
	h.Set("Content-Type", "application/octet-stream")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", "sandbox; default-src 'none'; frame-ancestors 'none'")
	h.Set("Cache-Control", "no-store")
	h.Set("Kluis-SHA256", f.SHA256)
	h.Set("Accept-Ranges", "bytes")
	// Preconditions come before the Range, as in RFC 9110 section 13.2.2.
	if preconditions(w, r) {
		return nil
	}
	if rangeErr != nil {
		h.Set("Content-Range", fmt.Sprintf("bytes */%d", f.Size))
		h.Del("Content-Disposition")
		h.Del("Kluis-SHA256")
		http.Error(w, "The requested range is not within the file ("+rangeErr.Error()+").", http.StatusRequestedRangeNotSatisfiable)
		return nil
	}

	status := http.StatusOK
	var body []transfer.Span
	var boundary string
	switch len(spans) {
	case 0:
		body = []transfer.Span{{Start: 0, End: f.Size}}
		h.Set("Content-Length", strconv.FormatInt(f.Size, 10))
	case 1:
		status, body = http.StatusPartialContent, spans
		h.Set("Content-Range", contentRange(spans[0], f.Size))
		h.Set("Content-Length", strconv.FormatInt(spans[0].Len(), 10))
	default:
		status, body = http.StatusPartialContent, spans
		boundary = multipart.NewWriter(io.Discard).Boundary()
		h.Set("Content-Type", "multipart/byteranges; boundary="+boundary)
		h.Set("Content-Length", strconv.FormatInt(multipartLength(spans, f.Size, boundary), 10))
	}
	w.WriteHeader(status)
	if r.Method == http.MethodHead {
		return nil
	}

	// From here on every byte the connection takes is accounted for, also
	// when the answer breaks off (a deferred call runs while a panic with
	// http.ErrAbortHandler unwinds).
	var sent []transfer.Span
	complete, recorded := false, false
	delivery := func(spans []transfer.Span, complete bool) transfer.Delivery {
		return transfer.Delivery{Files: []transfer.Served{{Index: f.Index, Size: f.Size, Spans: spans}}, Complete: complete}
	}
	defer func() {
		if recorded || len(sent) == 0 && !(complete && f.Size == 0) {
			return
		}
		if err := svc.RecordDelivery(r.Context(), s, delivery(sent, complete)); err != nil {
			log.Error("record download", "err", err)
		}
	}()
	// The answer is recorded (and the sender's notice queued) before its
	// last bytes go out, so a client never holds them unrecorded, not even
	// when the process dies right after; if the record fails, the answer
	// is cut short instead. Found by the SIGKILL nemesis (e2e).
	recordBeforeEnd := func(final transfer.Span) {
		recorded = true
		if err := svc.RecordDelivery(r.Context(), s, delivery(append(append([]transfer.Span(nil), sent...), final), true)); err != nil {
			log.Error("record download; the download is cut short", "err", err)
			panic(http.ErrAbortHandler)
		}
	}
	if f.Size == 0 {
		recordBeforeEnd(transfer.Span{})
	}
	var mw *multipart.Writer
	if boundary != "" {
		mw = multipart.NewWriter(w)
		mw.SetBoundary(boundary)
	}
	for i, sp := range body {
		dst := io.Writer(w)
		if mw != nil {
			part, err := mw.CreatePart(partHeader(sp, f.Size))
			if err != nil {
				return nil // the client went away
			}
			dst = part
		}
		var beforeLast func(transfer.Span)
		if i == len(body)-1 && !recorded {
			beforeLast = recordBeforeEnd
		}
		n, rerr, werr := copySpan(dst, fr, sp, beforeLast)
		if n > 0 {
			sent = append(sent, transfer.Span{Start: sp.Start, End: sp.Start + n})
		}
		if werr != nil {
			return nil // the client went away; nothing to tell it
		}
		if rerr != nil {
			log.Error("download aborted: stored data failed", "file", f.ID, "at", sp.Start+n, "err", rerr)
			// Abort the connection in this goroutine: the client must not
			// take a short answer for a complete one.
			panic(http.ErrAbortHandler)
		}
	}
	if mw != nil {
		if err := mw.Close(); err != nil {
			return nil
		}
	}
	complete = true
	return nil
}

// copySpan copies span sp of the file fr to dst, reading ahead. It returns
// how many bytes dst took, and either a read error of fr (the stored data
// failed; a short read counts) or a write error of dst (the client went
// away). beforeLast, if set, is called with sp once the last piece of sp
// has been read and verified, before that piece is written.
func copySpan(dst io.Writer, fr *segment.FileReader, sp transfer.Span, beforeLast func(transfer.Span)) (n int64, rerr, werr error) {
	ra := segment.NewReadAhead(fr, sp.Start, sp.Len())
	defer ra.Close()
	tw := &trackWriter{w: dst, left: sp.Len()}
	if beforeLast != nil {
		tw.beforeLast = func() { beforeLast(sp) }
	}
	n, err := ra.WriteTo(tw)
	if tw.err != nil {
		return n, nil, tw.err
	}
	if err == nil && n < sp.Len() {
		err = io.ErrUnexpectedEOF
	}
	return n, err, nil
}

// trackWriter keeps w's error, to tell it from a read error, and calls
// beforeLast before the write that reaches the end of the span (left
// bytes).
type trackWriter struct {
	w          io.Writer
	err        error
	left       int64
	beforeLast func()
}

func (t *trackWriter) Write(p []byte) (int, error) {
	if t.beforeLast != nil && int64(len(p)) >= t.left {
		f := t.beforeLast
		t.beforeLast = nil
		f()
	}
	n, err := t.w.Write(p)
	t.left -= int64(n)
	if err != nil {
		t.err = err
	}
	return n, err
}

// ServeZip streams all files of an unlocked transfer, and the message as a
// text file, as one ZIP without compression and without temporary files.
// Like ServeFile it returns an error only while nothing has been written;
// a tampered file later aborts the connection mid-stream. The response is
// accounted for like a file's: each file whose bytes all reached the
// connection counts as sent whole, also in a ZIP that broke off later.
func ServeZip(w http.ResponseWriter, r *http.Request, svc *transfer.Service, s *transfer.Session, log *slog.Logger) error {
	c, err := svc.Contents(r.Context(), s)
	if err != nil {
		return err
	}
	h := w.Header()
	h.Set("Content-Type", "application/zip")
	sentAt := c.Transfer.CreatedAt
	if c.Transfer.FinishedAt != nil {
		sentAt = *c.Transfer.FinishedAt
	}
	h.Set("Content-Disposition", ContentDisposition(ZipName(c.Subject, sentAt)))
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", "sandbox; default-src 'none'; frame-ancestors 'none'")
	h.Set("Cache-Control", "no-store")
	// sent counts what the connection took; pos is the offset in the ZIP
	// stream, above the buffer. A file's data starts at a known pos, so
	// sent tells how much of each file went out.
	sent := &countWriter{w: w}
	bw := bufio.NewWriterSize(sent, 64<<10)
	pos := &countWriter{w: bw}
	zw := zip.NewWriter(pos)
	type entry struct {
		index       int
		size, start int64
	}
	var entries []entry
	complete, recorded := false, false
	defer func() {
		if recorded || sent.n == 0 {
			return
		}
		d := transfer.Delivery{Zip: true, Complete: complete}
		for _, e := range entries {
			n := min(max(sent.n-e.start, 0), e.size)
			if n > 0 || (e.size == 0 && sent.n >= e.start) {
				d.Files = append(d.Files, transfer.Served{Index: e.index, Size: e.size, Spans: []transfer.Span{{Start: 0, End: n}}})
			}
		}
		if err := svc.RecordDelivery(r.Context(), s, d); err != nil {
			log.Error("record download", "err", err)
		}
	}()
	used := map[string]int{}
	unique := func(name string) string {
		base := name
		for {
			used[strings.ToLower(base)]++
			if used[strings.ToLower(base)] == 1 {
				return base
			}
			ext := ""
			if i := strings.LastIndexByte(name, '.'); i > 0 {
				ext = name[i:]
			}
			base = strings.TrimSuffix(name, ext) + " (" + strconv.Itoa(used[strings.ToLower(name)]) + ")" + ext
		}
	}
	// Every abort below panics with http.ErrAbortHandler in this, the
	// handler's, goroutine: net/http then closes the connection without
	// ending the chunked body, so the client sees a broken download.
	if strings.TrimSpace(c.Message) != "" {
		mw, err := zw.CreateHeader(&zip.FileHeader{Name: unique(messageFileName(c.Transfer.Lang)), Method: zip.Store, Modified: time.Now()})
		if err != nil {
			panic(http.ErrAbortHandler)
		}
		if _, err := io.WriteString(mw, c.Message); err != nil {
			panic(http.ErrAbortHandler)
		}
	}
	for _, f := range c.Files {
		kf, fr, err := svc.OpenFile(r.Context(), s, f.ID)
		if err != nil {
			log.Error("zip: open file", "file", f.ID, "err", err)
			panic(http.ErrAbortHandler)
		}
		fh := &zip.FileHeader{Name: unique(kf.Name), Method: zip.Store, Modified: time.Now()}
		fh.UncompressedSize64 = uint64(kf.Size)
		zf, err := zw.CreateHeader(fh)
		if err == nil {
			// Past zip's own buffer, so pos is where the data starts.
			err = zw.Flush()
		}
		if err != nil {
			fr.Close()
			panic(http.ErrAbortHandler)
		}
		entries = append(entries, entry{index: kf.Index, size: kf.Size, start: pos.n})
		ra := segment.NewReadAhead(fr, 0, kf.Size)
		var n int64
		n, err = ra.WriteTo(zf)
		if err == nil && n < kf.Size {
			err = io.ErrUnexpectedEOF
		}
		ra.Close()
		fr.Close()
		if err != nil {
			log.Error("zip: file failed verification or write; aborting", "file", f.ID, "err", err)
			panic(http.ErrAbortHandler)
		}
	}
	// Every file is whole: recorded before the archive's central
	// directory, its last bytes, goes out (see ServeFile).
	d := transfer.Delivery{Zip: true, Complete: true}
	for _, e := range entries {
		d.Files = append(d.Files, transfer.Served{Index: e.index, Size: e.size, Spans: []transfer.Span{{Start: 0, End: e.size}}})
	}
	recorded = true
	if err := svc.RecordDelivery(r.Context(), s, d); err != nil {
		log.Error("record download; the download is cut short", "err", err)
		panic(http.ErrAbortHandler)
	}
	if err := zw.Close(); err != nil {
		panic(http.ErrAbortHandler)
	}
	if err := bw.Flush(); err != nil {
		panic(http.ErrAbortHandler)
	}
	complete = true
	return nil
}

func integrityError(err error) error {
	if errors.Is(err, segment.ErrIntegrity) {
		return &kluis.Error{Code: kluis.EINTEGRITY, Message: "This file is damaged and cannot be downloaded. Please tell the sender.", Err: err}
	}
	return err
}

func messageFileName(lang string) string {
	// The catalog's text is a translation, not a trusted file name: clean
	// it like any other.
	return kluis.CleanFileName(locale.For(locale.Lang(lang)).T("open.message_file"))
}
