package api

import (
	"context"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/kluis-nl/kluis"
	"github.com/kluis-nl/kluis/internal/download"
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
	f, err := a.svc.NewPlainFile(r.Context(), o, name, ctype, size)
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
	if err := download.ServeFile(w, r, a.svc, s, r.PathValue("fid"), a.log); err != nil {
		a.Error(w, r, err)
	}
}

func (a *API) downloadZip(w http.ResponseWriter, r *http.Request, s *transfer.Session) {
	if err := download.ServeZip(w, r, a.svc, s, a.log); err != nil {
		a.Error(w, r, err)
	}
}
