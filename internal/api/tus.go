package api

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	tusd "github.com/tus/tusd/v2/pkg/handler"
	expslog "golang.org/x/exp/slog"

	"github.com/kluis-nl/kluis"
	"github.com/kluis-nl/kluis/internal/audit"
	"github.com/kluis-nl/kluis/internal/transfer"
)

// newTus builds the tus 1.0 handler over the encrypting store. Upload-Length
// is required (no deferred length), tusd's download route is off, and tus
// metadata is never kept: the file name and type go, encrypted, into the
// file's row.
func (a *API) newTus(basePath string) (http.Handler, error) {
	composer := tusd.NewStoreComposer()
	// Uploads are locked across instances with lease rows (tuslock.go);
	// WriteChunk commits under the lease its request holds.
	locker := newTusLocker(a.svc)
	st := &tusStore{svc: a.svc, locker: locker}
	composer.UseCore(st)
	composer.UseTerminater(st)
	locker.UseIn(composer)
	h, err := tusd.NewUnroutedHandler(tusd.Config{
		BasePath:                         basePath,
		StoreComposer:                    composer,
		MaxSize:                          a.svc.Config().MaxTransferSize,
		DisableDownload:                  true,
		DisableConcatenation:             true,
		Cors:                             &tusd.CorsConfig{Disable: true},
		Logger:                           expslog.New(expslog.NewTextHandler(io.Discard, nil)),
		GracefulRequestCompletionTimeout: 10 * time.Second,
		NetworkTimeout:                   60 * time.Second,
	})
	if err != nil {
		return nil, err
	}
	return http.StripPrefix(strings.TrimSuffix(basePath, "/"), tusRouter(h)), nil
}

// tusRouter dispatches by method; the mux in Register has already checked
// the paths, and the base path is stripped (tusd's unrouted handler takes
// the rest of the path as the upload id).
func tusRouter(h *tusd.UnroutedHandler) http.Handler {
	routed := h.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodPost:
			h.PostFile(w, r)
		case http.MethodHead:
			h.HeadFile(w, r)
		case http.MethodPatch:
			h.PatchFile(w, r)
		case http.MethodDelete:
			h.DelFile(w, r)
		default:
			w.WriteHeader(http.StatusMethodNotAllowed)
		}
	}))
	// Wrapped outside tusd's middleware: tusd keeps the writer it first
	// sees for the whole request.
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPatch {
			w = &closeOnError{ResponseWriter: w, ctx: r.Context()}
		}
		routed.ServeHTTP(w, r)
	})
}

// closeOnError keeps a PATCH that tusd cut short from breaking the
// connection for later requests. tusd ends an interrupted or shut-down
// PATCH (and one whose lock another request asks for, even after it has
// answered) by moving the connection's read deadline to now, to unblock
// the body read. If the body had already been read to its end, net/http's
// background read of the connection fails on that deadline instead and
// cancels the connection's context, and every later request on the
// kept-alive connection starts out cancelled (golang/go#70834). So: a
// deadline in the past before the answer is written makes the answer close
// the connection; one after the answer is dropped (nothing reads the body
// any more); and an error answer, or any answer once the request's context
// has ended, closes the connection too (tusd's own per-read deadline can
// run out after the body's end while a commit is slow).
type closeOnError struct {
	http.ResponseWriter
	ctx context.Context // the request's

	mu    sync.Mutex
	wrote bool // WriteHeader was called
	cut   bool // a deadline in the past was set before that
}

func (w *closeOnError) WriteHeader(code int) {
	w.mu.Lock()
	if code >= 400 || w.cut || w.ctx.Err() != nil {
		w.Header().Set("Connection", "close")
	}
	w.wrote = true
	w.mu.Unlock()
	w.ResponseWriter.WriteHeader(code)
}

// SetReadDeadline is what tusd's http.ResponseController finds first.
func (w *closeOnError) SetReadDeadline(t time.Time) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !t.IsZero() && !t.After(time.Now()) {
		if w.wrote {
			return nil
		}
		w.cut = true
	}
	return http.NewResponseController(w.ResponseWriter).SetReadDeadline(t)
}

// Unwrap lets tusd's http.ResponseController reach the connection.
func (w *closeOnError) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// tusAuth checks the upload token before tus sees the request and puts the
// owner into the context for the store.
func (a *API) tusAuth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		o, err := a.svc.AuthorizeUpload(r.Context(), bearer(r))
		if err != nil {
			a.Error(w, r, err)
			return
		}
		if r.Method == http.MethodPost && r.Header.Get("Upload-Length") == "" {
			a.Error(w, r, kluis.Errorf(kluis.EINVALID, "Send the file size in the Upload-Length header; uploads of unknown length are not accepted here (use PUT /api/v1/transfers/{id}/files)."))
			return
		}
		ctx := audit.WithActor(context.WithValue(r.Context(), ownerKey{}, o), audit.UploadToken)
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

func ownerFrom(ctx context.Context) (transfer.Owner, bool) {
	o, ok := ctx.Value(ownerKey{}).(transfer.Owner)
	return o, ok
}

// tusStore is tusd's DataStore over the engine.
type tusStore struct {
	svc    *transfer.Service
	locker *tusLocker
}

type tusUpload struct {
	svc    *transfer.Service
	locker *tusLocker
	owner  transfer.Owner
	id     string
}

func (s *tusStore) NewUpload(ctx context.Context, info tusd.FileInfo) (tusd.Upload, error) {
	o, ok := ownerFrom(ctx)
	if !ok {
		return nil, tusError(kluis.Errorf(kluis.EUNAUTHORIZED, "This request needs the transfer's upload token."))
	}
	if info.SizeIsDeferred {
		return nil, tusError(kluis.Errorf(kluis.EINVALID, "Send the file size in the Upload-Length header."))
	}
	name := first(info.MetaData, "filename", "name")
	ctype := first(info.MetaData, "filetype", "type", "contentType")
	f, err := s.svc.NewFile(ctx, o, name, ctype, info.Size)
	if err != nil {
		return nil, tusError(err)
	}
	return &tusUpload{svc: s.svc, locker: s.locker, owner: o, id: f.ID}, nil
}

func first(m tusd.MetaData, keys ...string) string {
	for _, k := range keys {
		if v := m[k]; v != "" {
			return v
		}
	}
	return ""
}

func (s *tusStore) GetUpload(ctx context.Context, id string) (tusd.Upload, error) {
	o, ok := ownerFrom(ctx)
	if !ok {
		return nil, tusd.ErrNotFound
	}
	if _, err := s.svc.FileState(ctx, o, id); err != nil {
		if kluis.ErrorCode(err) == kluis.ENOTFOUND {
			return nil, tusd.ErrNotFound
		}
		return nil, tusError(err)
	}
	return &tusUpload{svc: s.svc, locker: s.locker, owner: o, id: id}, nil
}

func (s *tusStore) AsTerminatableUpload(u tusd.Upload) tusd.TerminatableUpload {
	return u.(*tusUpload)
}

func (u *tusUpload) WriteChunk(ctx context.Context, offset int64, src io.Reader) (int64, error) {
	if l := u.locker.lease(u.id); l != nil {
		ctx = transfer.WithLease(ctx, l)
	}
	n, err := u.svc.WriteFile(ctx, u.owner, u.id, offset, src)
	if err != nil {
		return n, tusError(err)
	}
	return n, nil
}

func (u *tusUpload) GetInfo(ctx context.Context) (tusd.FileInfo, error) {
	st, err := u.svc.FileState(ctx, u.owner, u.id)
	if err != nil {
		return tusd.FileInfo{}, tusError(err)
	}
	// MetaData stays empty: tus would echo it in HEAD, and it holds the
	// file name.
	return tusd.FileInfo{ID: st.ID, Size: st.Size, Offset: st.Offset, MetaData: tusd.MetaData{}}, nil
}

func (u *tusUpload) GetReader(context.Context) (io.ReadCloser, error) {
	return nil, tusd.ErrNotImplemented
}

func (u *tusUpload) FinishUpload(ctx context.Context) error {
	_, err := u.svc.CompleteFile(ctx, u.owner, u.id)
	return tusError(err)
}

func (u *tusUpload) Terminate(ctx context.Context) error {
	return tusError(u.svc.DeleteFile(ctx, u.owner, u.id))
}

// tusError turns an engine error into a tusd error with our status and a
// safe message; tusd writes it as the response body.
func tusError(err error) error {
	if err == nil {
		return nil
	}
	var te tusd.Error
	if errors.As(err, &te) {
		return err
	}
	code := kluis.ErrorCode(err)
	te = tusd.NewError("ERR_"+strings.ToUpper(string(code)), kluis.ErrorMessage(err), Status(code))
	if ke := (*kluis.Error)(nil); errors.As(err, &ke) && ke.RetryAfter > 0 {
		// A quota that frees up in time (the daily volume): say when.
		te.HTTPResponse.Header = tusd.HTTPHeader{"Retry-After": strconv.Itoa(int((ke.RetryAfter + time.Second - 1) / time.Second))}
	}
	return te
}
