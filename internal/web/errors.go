package web

import (
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/kluis-nl/kluis"
	"github.com/kluis-nl/kluis/internal/api"
)

// statusOf is the status of a page that answers err. It is api.Status, the
// one map from error codes to HTTP status, so a page and the API never
// disagree about what happened; the pages only choose the words.
func statusOf(err error) int { return api.Status(kluis.ErrorCode(err)) }

// formStatus is the status of a form shown again with err as what to fix:
// 422 (the visitor can correct it), unless api.Status says to wait (429) or
// that the service failed (5xx).
func formStatus(err error) int {
	if st := statusOf(err); st == http.StatusTooManyRequests || st >= 500 {
		return st
	}
	return http.StatusUnprocessableEntity
}

// setRetryAfter sets Retry-After on answers that say to come back later
// (429, 503): the error's own wait, else 5 seconds, as the API does.
func setRetryAfter(w http.ResponseWriter, err error) {
	if st := statusOf(err); st != http.StatusTooManyRequests && st != http.StatusServiceUnavailable {
		return
	}
	wait := 5 * time.Second
	if ke := (*kluis.Error)(nil); errors.As(err, &ke) && ke.RetryAfter > 0 {
		wait = ke.RetryAfter
	}
	w.Header().Set("Retry-After", strconv.Itoa(int((wait+time.Second-1)/time.Second)))
}

// errorPage answers err with a general problem page: "too busy" when
// waiting helps, "our fault" for other failures of the service, and "this
// did not work" for the remaining refusals. Our own failures are logged
// with their detail, refusals by code only (their message may name an
// address); the page never shows either.
func (h *Web) errorPage(w http.ResponseWriter, r *http.Request, err error) {
	code, status := kluis.ErrorCode(err), statusOf(err)
	switch {
	case code == kluis.EINTERNAL:
		h.log.Error("web: request failed", "route", r.Pattern, "err", err)
	case code == kluis.EINTEGRITY:
		h.log.Error("web: stored data failed verification", "route", r.Pattern, "err", err)
	default:
		h.log.Info("web: request refused", "route", r.Pattern, "code", code)
	}
	setRetryAfter(w, err)
	key := "problem.request"
	switch {
	case status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable:
		key = "problem.busy"
	case code == kluis.EINTEGRITY:
		key = "problem.damaged"
	case status >= 500:
		key = "problem.internal"
	}
	h.problem(w, r, status, key, "")
}
