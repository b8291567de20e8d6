package web

import (
	"errors"
	"net/http"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/kluis-nl/kluis"
	"github.com/kluis-nl/kluis/internal/role"
	"github.com/kluis-nl/kluis/internal/store"
	"github.com/kluis-nl/kluis/internal/transfer"
)

// Revocations from the console, one or many. A bulk revocation takes the
// transfers ticked in the search results, shows what will happen (how
// many, which numbers, which were left out) and asks for one reason; only
// the second post, with the reason, acts. Each transfer is then revoked
// on its own, exactly as from its own page: its own audit entry, its own
// mails, and its own place in the helpdesk's hourly limit, so a bulk
// revocation stops at the limit and says which transfers it did not do.

// bulkMax is the most transfers one bulk revocation takes: one page of
// search results.
const bulkMax = consolePageSize

// validReason reports whether an admin action's reason is 5 to 300
// characters (after trimming).
func validReason(reason string) bool {
	n := utf8.RuneCountInString(reason)
	return n >= 5 && n <= 300
}

// revokeLimit is the hourly number of revocations a role allows (0: no
// limit).
func revokeLimit(ro role.Role) int {
	if ro == role.Helpdesk {
		return helpdeskRevokesPerHour
	}
	return 0
}

// revokeLimited answers a revocation past the helpdesk's hourly limit.
func (h *Web) revokeLimited(w http.ResponseWriter, r *http.Request, id string) {
	h.log.Warn("helpdesk revocation refused: hourly limit", "action", "transfer.revoke", "result", "rate_limited", "transfer", id)
	h.render(w, r, http.StatusTooManyRequests, "problem", h.newView(r, problemPage{Title: "admin.limit_title", Text: "admin.limit_text", Back: "/admin/transfers", BackText: "admin.back_transfers"}))
}

type consoleBulk struct {
	Nav     consoleNav
	Rows    []*store.AdminTransfer // the selected transfers that can be revoked
	Skipped []string               // selected, but already ended or unknown
	Reason  string
	Done    bool         // the revocations were made; Results says how each went
	Results []bulkResult // in the order of Rows
	Revoked int
	Limited bool // the helpdesk's hourly limit stopped the run
}

// bulkResult is how the revocation of one transfer went: Outcome is
// "revoked", "already", "limited" (not done: the hourly limit) or
// "failed" (not done: an error, which is logged).
type bulkResult struct{ ID, Outcome string }

// consoleBulkRevoke is POST /admin/transfers/bulk: without confirm, the
// confirmation page; with confirm and a reason, the revocations.
func (h *Web) consoleBulkRevoke(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	s, ro, ok := h.staff(w, r, rolesTransfers...)
	if !ok {
		return
	}
	if err := r.ParseForm(); err != nil {
		h.errorPage(w, r, kluis.Errorf(kluis.EINVALID, "The form could not be read."))
		return
	}
	var ids []string
	for _, id := range r.PostForm["id"] {
		if id = strings.TrimSpace(id); id != "" && !slices.Contains(ids, id) {
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 || len(ids) > bulkMax {
		h.render(w, r, http.StatusBadRequest, "problem", h.newView(r, problemPage{Title: "admin.bulk_title", Text: "admin.bulk_none", Back: "/admin/transfers", BackText: "admin.back_transfers"}))
		return
	}
	p := consoleBulk{Nav: navFor(s, "/admin/transfers")}
	for _, id := range ids {
		rows, err := h.db.SearchTransfers(r.Context(), store.TransferFilter{ID: id}, 1)
		if err != nil {
			h.errorPage(w, r, err)
			return
		}
		if len(rows) == 0 || rows[0].RevokedAt != nil || rows[0].PurgedAt != nil {
			p.Skipped = append(p.Skipped, id)
			continue
		}
		p.Rows = append(p.Rows, rows[0])
	}
	if r.PostFormValue("confirm") == "" {
		h.render(w, r, http.StatusOK, "admin_bulk", h.newView(r, p))
		return
	}
	p.Reason = strings.TrimSpace(r.PostFormValue("reason"))
	if !validReason(p.Reason) || len(p.Rows) == 0 {
		v := h.newView(r, p)
		v.Errors = []fieldError{{Field: "reason", Key: "admin.reason_needed"}}
		h.render(w, r, http.StatusBadRequest, "admin_bulk", v)
		return
	}
	ctx := staffCtx(r, s, ro, p.Reason)
	p.Done = true
	for _, t := range p.Rows {
		res := bulkResult{ID: t.ID, Outcome: "revoked"}
		switch err := h.svc.RevokeByStaff(ctx, t.ID, revokeLimit(ro)); {
		case errors.Is(err, transfer.ErrStaffLimit):
			p.Limited, res.Outcome = true, "limited"
		case kluis.ErrorCode(err) == kluis.ECONFLICT:
			res.Outcome = "already"
		case err != nil:
			h.log.Error("bulk revocation: one transfer failed", "transfer", t.ID, "err", err)
			res.Outcome = "failed"
		default:
			p.Revoked++
		}
		p.Results = append(p.Results, res)
		if p.Limited {
			// Past the limit nothing more is tried: the rest is listed
			// as not done.
			for _, rest := range p.Rows[len(p.Results):] {
				p.Results = append(p.Results, bulkResult{ID: rest.ID, Outcome: "limited"})
			}
			break
		}
	}
	if p.Limited {
		h.log.Warn("helpdesk bulk revocation stopped: hourly limit", "action", "transfer.revoke", "result", "rate_limited", "revoked", p.Revoked)
	}
	h.render(w, r, http.StatusOK, "admin_bulk", h.newView(r, p))
}
