package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/kluis-nl/kluis"
	"github.com/kluis-nl/kluis/internal/locale"
	"github.com/kluis-nl/kluis/internal/segment"
	"github.com/kluis-nl/kluis/internal/transfer"
)

// plainUpload takes one file in a single request body, for simple scripts:
// PUT /api/v1/transfers/{id}/files with the name in the Kluis-File-Name
// header (percent-encoded UTF-8). Content-Length is optional; the transfer
// size limit is enforced while streaming. A failed plain upload keeps
// nothing (it cannot be resumed; use tus for that).
func (a *API) plainUpload(w http.ResponseWriter, r *http.Request, o transfer.Owner) {
	name, err := url.PathUnescape(r.Header.Get("Kluis-File-Name"))
	if err != nil || !utf8.ValidString(name) {
		a.Error(w, r, kluis.Errorf(kluis.EINVALID, "The Kluis-File-Name header must be percent-encoded UTF-8."))
		return
	}
	if strings.TrimSpace(name) == "" {
		a.Error(w, r, kluis.Errorf(kluis.EINVALID, "Give the file name in the Kluis-File-Name header."))
		return
	}
	ctype := r.Header.Get("Content-Type")
	if _, _, err := mime.ParseMediaType(ctype); err != nil {
		ctype = "application/octet-stream"
	}
	size := r.ContentLength // -1 when chunked
	f, err := a.svc.NewFile(r.Context(), o, name, ctype, size)
	if err != nil {
		a.Error(w, r, err)
		return
	}
	fail := func(err error) {
		// Nothing of a failed plain upload is kept.
		if derr := a.svc.DeleteFile(context.WithoutCancel(r.Context()), o, f.ID); derr != nil {
			a.log.Error("remove failed upload", "file", f.ID, "err", derr)
		}
		a.Error(w, r, err)
	}
	body := &readTracker{r: r.Body}
	n, err := a.svc.WriteFile(r.Context(), o, f.ID, 0, body)
	if err != nil {
		if kluis.ErrorCode(err) == kluis.ETOOLARGE {
			// Stop reading: the client gets the answer and the connection
			// closes instead of draining gigabytes.
			w.Header().Set("Connection", "close")
		}
		fail(err)
		return
	}
	if body.err != nil {
		fail(kluis.Errorf(kluis.EINVALID, "The upload broke off after %d bytes. Send the file again, or use tus to resume.", n))
		return
	}
	if size >= 0 && n != size {
		fail(kluis.Errorf(kluis.EINVALID, "The upload ended after %d of %d bytes. Send the file again.", n, size))
		return
	}
	done, err := a.svc.CompleteFile(r.Context(), o, f.ID)
	if err != nil {
		fail(err)
		return
	}
	f.Size, f.Complete = done.Size, true
	writeJSON(w, http.StatusCreated, f)
}

type readTracker struct {
	r   io.Reader
	err error
}

func (t *readTracker) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	if err != nil && err != io.EOF {
		t.err = err
	}
	return n, err
}

type linkResponse struct {
	PasswordRequired bool      `json:"password_required"`
	ExpiresAt        time.Time `json:"expires_at"`
}

func (a *API) lookup(w http.ResponseWriter, r *http.Request) {
	l, err := a.svc.Lookup(r.Context(), r.PathValue("access"))
	if err != nil {
		a.Error(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, linkResponse{PasswordRequired: l.PasswordRequired, ExpiresAt: l.ExpiresAt})
}

type unlockRequest struct {
	Secret string `json:"secret"`
}

type unlockResponse struct {
	Session   string    `json:"session"`
	ExpiresAt time.Time `json:"expires_at"`
}

func (a *API) unlock(w http.ResponseWriter, r *http.Request) {
	var req unlockRequest
	if err := decode(w, r, &req); err != nil {
		a.Error(w, r, err)
		return
	}
	s, err := a.svc.Unlock(r.Context(), r.PathValue("access"), req.Secret)
	if err != nil {
		a.Error(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, unlockResponse{Session: s.Token, ExpiresAt: s.ExpiresAt})
}

// session checks the download session (Authorization: Bearer) before any
// handler runs.
func (a *API) session(next func(http.ResponseWriter, *http.Request, *transfer.Session)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		tok := bearer(r)
		if tok == "" {
			a.Error(w, r, kluis.Errorf(kluis.EUNAUTHORIZED, "This request needs a download session (Authorization: Bearer ...). Unlock the link first."))
			return
		}
		s, err := a.svc.OpenSession(r.Context(), tok)
		if err != nil {
			a.Error(w, r, err)
			return
		}
		next(w, r, s)
	}
}

type contentsResponse struct {
	Transfer transferJSON `json:"transfer"`
	Message  string       `json:"message"`
	Files    []kluis.File `json:"files"`
}

func (a *API) contents(w http.ResponseWriter, r *http.Request, s *transfer.Session) {
	c, err := a.svc.Contents(r.Context(), s)
	if err != nil {
		a.Error(w, r, err)
		return
	}
	tv := transferView(c.Transfer, a.svc.Now())
	for i := range tv.Recipients {
		// A recipient sees who else was addressed, not what they did.
		tv.Recipients[i].Status = ""
	}
	if c.Files == nil {
		c.Files = []kluis.File{}
	}
	writeJSON(w, http.StatusOK, contentsResponse{Transfer: tv, Message: c.Message, Files: c.Files})
}

func (a *API) downloadFile(w http.ResponseWriter, r *http.Request, s *transfer.Session) {
	if err := ServeFile(w, r, a.svc, s, r.PathValue("fid"), a.log); err != nil {
		a.Error(w, r, err)
	}
}

func integrityError(err error) error {
	if errors.Is(err, segment.ErrIntegrity) {
		return &kluis.Error{Code: kluis.EINTEGRITY, Message: "This file is damaged and cannot be downloaded. Please tell the sender.", Err: err}
	}
	return err
}

// readAhead makes ServeContent's small sequential reads into large reads of
// the segment reader, and decrypts the next window in the background while
// the current one goes out on the socket, so decryption and network I/O
// overlap. Memory: two windows per download.
func readAhead(r io.ReaderAt, size int64) io.ReaderAt {
	return &prefetcher{r: r, size: size}
}

const prefetchWindow = 512 << 10

type window struct {
	buf []byte
	off int64
	err error
}

type prefetcher struct {
	r       io.ReaderAt
	size    int64
	cur     window
	pending chan window // the next window, being read; nil if none
	spare   []byte
}

// fill reads the window at off. A panic below it (in decryption or a blob
// store) becomes the window's error: fill also runs in a goroutine of its
// own, where a panic would end the process; as an error it aborts only
// this download, in the handler's goroutine.
func (p *prefetcher) fill(buf []byte, off int64) (w window) {
	defer func() {
		if v := recover(); v != nil {
			w = window{buf: buf[:0], off: off, err: fmt.Errorf("read at %d: panic: %v", off, v)}
		}
	}()
	n, err := p.r.ReadAt(buf[:cap(buf)], off)
	if err == io.EOF && off+int64(n) >= p.size {
		err = nil
	}
	return window{buf: buf[:n], off: off, err: err}
}

func (p *prefetcher) ReadAt(b []byte, off int64) (int, error) {
	if off >= p.size {
		return 0, io.EOF
	}
	if !(off >= p.cur.off && off < p.cur.off+int64(len(p.cur.buf))) {
		var w window
		if p.pending != nil {
			w = <-p.pending
			p.pending = nil
			if !(off >= w.off && off < w.off+int64(len(w.buf))) {
				// A seek elsewhere: the prefetched window is of no use.
				p.spare = w.buf
				w = window{}
			}
		}
		if w.buf == nil && w.err == nil {
			buf := p.spare
			if buf == nil {
				buf = make([]byte, prefetchWindow)
			}
			p.spare = nil
			w = p.fill(buf, off)
		}
		if p.cur.buf != nil && p.spare == nil {
			p.spare = p.cur.buf
		}
		p.cur = w
		if w.err != nil {
			// Bytes before the failure were verified and may be served; the
			// failure itself comes when the reader gets to it.
			if len(w.buf) == 0 || off >= w.off+int64(len(w.buf)) {
				p.cur = window{buf: w.buf[:0]}
				return 0, w.err
			}
			n := copy(b, w.buf[off-w.off:])
			if n < len(b) {
				return n, w.err
			}
			return n, nil
		}
		if next := w.off + int64(len(w.buf)); next < p.size {
			buf := p.spare
			if buf == nil {
				buf = make([]byte, prefetchWindow)
			}
			p.spare = nil
			ch := make(chan window, 1)
			p.pending = ch
			go func() { ch <- p.fill(buf, next) }()
		}
	}
	n := copy(b, p.cur.buf[off-p.cur.off:])
	if n < len(b) {
		m, err := p.ReadAt(b[n:], off+int64(n))
		return n + m, err
	}
	return n, nil
}

// wait lets a prefetch in flight end before the reader below is closed.
func (p *prefetcher) wait() {
	if p.pending != nil {
		<-p.pending
		p.pending = nil
	}
}

func (a *API) downloadZip(w http.ResponseWriter, r *http.Request, s *transfer.Session) {
	if err := ServeZip(w, r, a.svc, s, a.log); err != nil {
		a.Error(w, r, err)
	}
}

func messageFileName(lang string) string {
	// The catalog's text is a translation, not a trusted file name: clean
	// it like any other.
	return kluis.CleanFileName(locale.For(locale.Lang(lang)).T("open.message_file"))
}

// ContentDisposition returns an attachment header for name per RFC 6266:
// an ASCII fallback in filename= and the UTF-8 name in filename*=. The
// name is cleaned first (kluis.CleanFileName), whoever the caller.
func ContentDisposition(name string) string {
	name = kluis.CleanFileName(name)
	var ascii strings.Builder
	for _, r := range name {
		switch {
		case r < 0x20 || r == 0x7f || r == '"' || r == '\\' || r == '%' || r == '/':
			ascii.WriteByte('_')
		case r < 0x80:
			ascii.WriteRune(r)
		default:
			ascii.WriteByte('_')
		}
	}
	fallback := ascii.String()
	if strings.Trim(fallback, "_. ") == "" {
		fallback = "download"
	}
	return fmt.Sprintf(`attachment; filename="%s"; filename*=UTF-8''%s`, fallback, rfc5987(name))
}

// rfc5987 percent-encodes everything but attr-char (RFC 8187 section 3.2.1).
func rfc5987(s string) string {
	const attr = "!#$&+-.^_`|~"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z') || ('0' <= c && c <= '9') || strings.IndexByte(attr, c) >= 0 {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}
