// Package api serves Kluis's JSON API under /api/v1 and the tus upload
// endpoint. Errors are JSON with a stable code and a message that is safe to
// show; internal error text is logged, never sent.
package api

import (
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/kluis-nl/kluis"
	"github.com/kluis-nl/kluis/internal/locale"
	"github.com/kluis-nl/kluis/internal/oidc"
	"github.com/kluis-nl/kluis/internal/sender"
	"github.com/kluis-nl/kluis/internal/transfer"
)

// API holds the handlers' dependencies.
type API struct {
	svc     *transfer.Service
	senders *sender.Service
	log     *slog.Logger
	tus     http.Handler

	sso      *oidc.Provider // nil: no single sign-on (UseSSO)
	ssoRoles oidc.Mapping
}

// New returns the API; tus is mounted at /api/v1/uploads/.
func New(svc *transfer.Service, senders *sender.Service, log *slog.Logger) (*API, error) {
	a := &API{svc: svc, senders: senders, log: log}
	tus, err := a.newTus("/api/v1/uploads/")
	if err != nil {
		return nil, err
	}
	a.tus = tus
	return a, nil
}

// Register adds the API's routes to mux.
func (a *API) Register(mux Mux) {
	mux.HandleFunc("POST /api/v1/verify", a.startVerification)
	mux.HandleFunc("POST /api/v1/verify/confirm", a.confirmVerification)
	mux.HandleFunc("POST /api/v1/sso/start", a.ssoStart)
	mux.HandleFunc("POST /api/v1/sso/finish", a.ssoFinish)
	mux.HandleFunc("POST /api/v1/logout", a.logout)
	mux.HandleFunc("GET /api/v1/me", a.me)
	mux.HandleFunc("GET /api/v1/config", a.config)
	mux.HandleFunc("GET /api/v1/transfers", a.verified(a.listTransfers))
	mux.HandleFunc("POST /api/v1/transfers", a.verified(a.createTransfer))
	mux.HandleFunc("GET /api/v1/transfers/{id}", a.owner(a.getTransfer))
	mux.HandleFunc("PUT /api/v1/transfers/{id}/files", a.owner(a.plainUpload))
	mux.HandleFunc("POST /api/v1/transfers/{id}/finish", a.owner(a.finish))
	mux.HandleFunc("POST /api/v1/transfers/{id}/revoke", a.owner(a.revoke))
	mux.HandleFunc("POST /api/v1/transfers/{id}/extend", a.owner(a.extend))
	mux.HandleFunc("DELETE /api/v1/transfers/{id}", a.owner(a.erase))
	mux.Handle("POST /api/v1/uploads/", a.tusAuth(a.tus))
	mux.Handle("HEAD /api/v1/uploads/{fid}", a.tusAuth(a.tus))
	mux.Handle("PATCH /api/v1/uploads/{fid}", a.tusAuth(a.tus))
	mux.Handle("DELETE /api/v1/uploads/{fid}", a.tusAuth(a.tus))
	mux.Handle("OPTIONS /api/v1/uploads/", a.tus)
	mux.Handle("OPTIONS /api/v1/uploads/{fid}", a.tus)
	mux.HandleFunc("GET /api/v1/inbox", a.verified(a.inbox))
	mux.HandleFunc("POST /api/v1/inbox", a.verified(a.createInbox))
	mux.HandleFunc("POST /api/v1/inbox/passphrase", a.verified(a.changeInboxPassphrase))
	mux.HandleFunc("GET /api/v1/requests", a.verified(a.listFileRequests))
	mux.HandleFunc("POST /api/v1/requests", a.verified(a.createFileRequests))
	mux.HandleFunc("GET /api/v1/requests/{id}", a.verified(a.getFileRequest))
	mux.HandleFunc("POST /api/v1/requests/{id}/revoke", a.verified(a.revokeFileRequest))
	mux.HandleFunc("POST /api/v1/requests/{id}/open", a.verified(a.openFileRequest))
	mux.HandleFunc("GET /api/v1/links/{access}", a.lookup)
	mux.HandleFunc("POST /api/v1/links/{access}/unlock", a.unlock)
	mux.HandleFunc("GET /api/v1/session", a.session(a.contents))
	mux.HandleFunc("GET /api/v1/session/files/{fid}", a.session(a.downloadFile))
	mux.HandleFunc("GET /api/v1/session/zip", a.session(a.downloadZip))
	mux.HandleFunc("GET /api/v1/openapi.json", a.openapi)
}

// errorBody is every error response.
type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code    kluis.Code `json:"code"`
	Message string     `json:"message"`
	At      *time.Time `json:"at,omitempty"`
	// Fields are the problems field by field, for invalid and policy
	// answers of the engine's validation (kluis.FieldError).
	Fields []fieldErrorJSON `json:"fields,omitempty"`
	// File and Finding, for infected and too_large_to_scan: the number
	// (from 1) of the refused file, and what the scanner found.
	File    int    `json:"file,omitempty"`
	Finding string `json:"finding,omitempty"`
}

// fieldErrorJSON is one kluis.FieldError: the stable code and catalog key
// for programs, the message for people.
type fieldErrorJSON struct {
	Field   string `json:"field"`
	Code    string `json:"code"`
	Key     string `json:"key"`
	Message string `json:"message"`
	Policy  string `json:"policy,omitempty"`
}

// errorLangs are the languages of the API's messages: English unless the
// request's Accept-Language prefers Dutch (the catalogs that are complete
// for senders).
var errorLangs = []locale.Lang{locale.EN, locale.NL}

// Status maps an application error code to its HTTP status. This is the
// only place that does so.
func Status(code kluis.Code) int {
	switch code {
	case kluis.EINVALID:
		return http.StatusBadRequest
	case kluis.EUNAUTHORIZED:
		return http.StatusUnauthorized
	case kluis.EWRONGSECRET:
		return http.StatusUnauthorized
	case kluis.EFORBIDDEN, kluis.EPOLICY:
		return http.StatusForbidden
	case kluis.ENOTFOUND:
		return http.StatusNotFound
	case kluis.ECONFLICT:
		return http.StatusConflict
	case kluis.EEXPIRED, kluis.EREVOKED:
		return http.StatusGone
	case kluis.ELOCKED:
		return http.StatusLocked
	case kluis.ETOOLARGE:
		return http.StatusRequestEntityTooLarge
	case kluis.ETOOMANY:
		return http.StatusBadRequest
	case kluis.ENOSPACE:
		return http.StatusInsufficientStorage
	case kluis.EUNAVAILABLE:
		return http.StatusServiceUnavailable
	case kluis.ETOOMANYREQUESTS, kluis.EQUOTA:
		return http.StatusTooManyRequests
	case kluis.EINTEGRITY:
		return http.StatusInternalServerError
	case kluis.EINFECTED, kluis.EUNSCANNABLE:
		return http.StatusUnprocessableEntity
	case kluis.ESCANPENDING:
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// Error writes err as JSON. Internal errors are logged with their detail and
// answered with a generic message.
func (a *API) Error(w http.ResponseWriter, r *http.Request, err error) {
	code := kluis.ErrorCode(err)
	if code == kluis.EINTERNAL || code == kluis.EINTEGRITY {
		a.log.Error("request failed", "method", r.Method, "route", r.Pattern, "code", code, "err", err)
	}
	body := errorBody{Error: errorDetail{Code: code, Message: kluis.ErrorMessage(err)}}
	if fs := kluis.FieldErrors(err); len(fs) > 0 {
		pr := locale.For(locale.Match(r.Header.Get("Accept-Language"), errorLangs))
		texts := make([]string, len(fs))
		for i, f := range fs {
			texts[i] = f.Text(pr)
			body.Error.Fields = append(body.Error.Fields, fieldErrorJSON{Field: f.Field, Code: f.Code, Key: f.Key, Message: texts[i], Policy: f.Policy})
		}
		body.Error.Message = strings.Join(texts, " ")
	}
	var e *kluis.Error
	if errors.As(err, &e) && e.At != nil {
		at := e.At.UTC()
		body.Error.At = &at
	}
	if e != nil {
		body.Error.File, body.Error.Finding = e.File, e.Finding
	}
	if code == kluis.EUNAVAILABLE || code == kluis.ETOOMANYREQUESTS || code == kluis.ESCANPENDING {
		secs := 5
		if e != nil && e.RetryAfter > 0 {
			secs = int((e.RetryAfter + time.Second - 1) / time.Second)
		}
		w.Header().Set("Retry-After", strconv.Itoa(secs))
	}
	if code == kluis.EQUOTA && e != nil && e.RetryAfter > 0 {
		// Only when waiting helps (the daily volume); a full set of
		// drafts or replies is not freed by time alone.
		w.Header().Set("Retry-After", strconv.Itoa(int((e.RetryAfter+time.Second-1)/time.Second)))
	}
	writeJSON(w, Status(code), body)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(true)
	_ = enc.Encode(v)
}

// maxJSONBody bounds request bodies of the JSON endpoints.
const maxJSONBody = 1 << 20

// decode reads a JSON body into v, refusing unknown fields, trailing data
// and bodies over maxJSONBody, with a message that says what to fix.
func decode(w http.ResponseWriter, r *http.Request, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/json") {
		return kluis.Errorf(kluis.EINVALID, "Send the request body as JSON (Content-Type: application/json).")
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxJSONBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &mbe):
			return kluis.Errorf(kluis.ETOOLARGE, "The request body is too large (at most 1 MiB).")
		case errors.Is(err, io.EOF):
			return kluis.Errorf(kluis.EINVALID, "The request body is empty; send a JSON object.")
		case errors.Is(err, io.ErrUnexpectedEOF):
			return kluis.Errorf(kluis.EINVALID, "The request body ends in the middle of the JSON; send a complete JSON object.")
		case errors.As(err, &se):
			return kluis.Errorf(kluis.EINVALID, "The request body is not valid JSON (at byte %d).", se.Offset)
		case errors.As(err, &te):
			return kluis.Errorf(kluis.EINVALID, "The field %q has the wrong type: expected %s.", te.Field, te.Type)
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			return kluis.Errorf(kluis.EINVALID, "The field %s is unknown.", strings.TrimPrefix(err.Error(), "json: unknown field "))
		}
		return kluis.Errorf(kluis.EINVALID, "The request body could not be read as JSON.")
	}
	if dec.More() {
		return kluis.Errorf(kluis.EINVALID, "The request body has data after the JSON object.")
	}
	return nil
}

func bearer(r *http.Request) string {
	h := r.Header.Get("Authorization")
	if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return strings.TrimSpace(h[7:])
	}
	return ""
}
