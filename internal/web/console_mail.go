package web

import (
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/kluis-nl/kluis/internal/audit"
	"github.com/kluis-nl/kluis/internal/outbox"
	"github.com/kluis-nl/kluis/internal/role"
	"github.com/kluis-nl/kluis/internal/sender"
	"github.com/kluis-nl/kluis/internal/store"
)

// The console's mail queue (/admin/mail): the mails of the outbox that
// wait for a next try and those that failed for good, as metadata only
// (kind, masked recipient, attempts, the last error with its addresses
// masked, dates). Nothing here opens a sealed mail, so no body or link
// is ever read. Administrators may send a waiting mail now (retry) and
// delete a mail (drop, with a reason); auditors only read; the helpdesk
// has no part in it (a mail's recipient and error are not theirs to
// see). A mail that failed for good cannot be retried: its content was
// erased when it failed (it may hold a link with its secret, see
// docs/security.md), so there is nothing left to send.
var (
	rolesMail       = []role.Role{role.Admin, role.Auditor}
	rolesMailAction = []role.Role{role.Admin}
)

type consoleMail struct {
	Nav                   consoleNav
	State                 string // "failed" or "pending"
	Rows                  []mailRow
	Next                  string
	Pending, Failed, Held int
	Done                  string // "retried", "dropped" or "gone" after an action
	CanAct                bool
	Invalid               string
}

// mailRow is one mail as the page shows it.
type mailRow struct {
	*store.OutboxEntry
	Error string // LastError with every address masked
}

func newMailRow(e *store.OutboxEntry) mailRow {
	return mailRow{OutboxEntry: e, Error: outbox.MaskAddresses(e.LastError)}
}

// consoleMailPage lists the failed (newest first) or waiting (next try
// first) mails, 50 a page.
func (h *Web) consoleMailPage(w http.ResponseWriter, r *http.Request) {
	s, _, ok := h.staff(w, r, rolesMail...)
	if !ok {
		return
	}
	q := r.URL.Query()
	p := consoleMail{Nav: navFor(s, "/admin/mail"), State: q.Get("state"), CanAct: s.Roles.Has(role.Admin)}
	switch d := q.Get("done"); d {
	case "retried", "dropped", "gone":
		p.Done = d
	}
	if p.State == "" {
		p.State = "failed"
	}
	f := store.OutboxFilter{Failed: p.State == "failed", ID: q.Get("id")}
	if p.State != "failed" && p.State != "pending" {
		p.Invalid = "admin.mail_bad_state"
	}
	if at := q.Get("at"); at != "" {
		n, err := strconv.ParseInt(at, 10, 64)
		if err != nil || n <= 0 || f.ID == "" {
			p.Invalid = "admin.bad_page"
		}
		f.At = time.UnixMilli(n)
	}
	ctx := r.Context()
	var err error
	if p.Pending, p.Failed, err = h.db.OutboxDepth(ctx); err == nil {
		p.Held, err = h.db.OutboxHeld(ctx)
	}
	if err != nil {
		h.errorPage(w, r, err)
		return
	}
	status := http.StatusOK
	if p.Invalid != "" {
		status = http.StatusBadRequest
	} else {
		rows, err := h.db.ListOutbox(ctx, f, h.svc.Now(), consolePageSize)
		if err != nil {
			h.errorPage(w, r, err)
			return
		}
		for _, e := range rows {
			p.Rows = append(p.Rows, newMailRow(e))
		}
		if len(rows) == consolePageSize {
			last := rows[len(rows)-1]
			at := last.NotBefore
			if last.FailedAt != nil {
				at = *last.FailedAt
			}
			p.Next = url.Values{"state": {p.State}, "at": {strconv.FormatInt(at.UnixMilli(), 10)}, "id": {last.ID}}.Encode()
		}
	}
	h.render(w, r, status, "admin_mail", h.newView(r, p))
}

// consoleMailRetry makes a waiting mail due now and wakes the worker.
// The entry admin.mail_retry (person, role, IP) is written in the same
// transaction.
func (h *Web) consoleMailRetry(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	s, ro, ok := h.staff(w, r, rolesMailAction...)
	if !ok {
		return
	}
	id := r.PathValue("id")
	err := h.mailAction(r, s, ro, "", id, audit.MailRetry, func(tx *store.Tx, now time.Time) error {
		return tx.RetryOutboxNow(r.Context(), id, now)
	})
	switch {
	case errors.Is(err, store.ErrNotFound):
		http.Redirect(w, r, "/admin/mail?state=pending&done=gone", http.StatusSeeOther)
	case err != nil:
		h.errorPage(w, r, err)
	default:
		if h.mailWake != nil {
			h.mailWake()
		}
		http.Redirect(w, r, "/admin/mail?state=pending&done=retried", http.StatusSeeOther)
	}
}

type consoleMailDrop struct {
	Nav    consoleNav
	M      mailRow
	Reason string
}

// ReasonHint is the hint of the reason field (the "reason_field"
// template), here and on the revoke page.
func (consoleMailDrop) ReasonHint() string { return "admin.mail_reason_hint" }

// ReasonHint: see consoleMailDrop.ReasonHint.
func (consoleRevoke) ReasonHint() string { return "admin.reason_hint" }

// ReasonHint: see consoleMailDrop.ReasonHint.
func (consoleBulk) ReasonHint() string { return "admin.reason_hint" }

// ReasonHint: see consoleMailDrop.ReasonHint.
func (consoleKeys) ReasonHint() string { return "admin.reason_hint" }

// ReasonHint: see consoleMailDrop.ReasonHint.
func (consoleKey) ReasonHint() string { return "admin.reason_hint" }

// consoleMailDrop asks for confirmation and a reason (GET) and deletes
// the mail (POST): a waiting mail is never sent, a failed one's record
// goes. The entry admin.mail_drop has the person, role, IP and reason.
func (h *Web) consoleMailDrop(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	s, ro, ok := h.staff(w, r, rolesMailAction...)
	if !ok {
		return
	}
	id := r.PathValue("id")
	e, held, err := h.db.OutboxMail(r.Context(), id, h.svc.Now())
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		h.errorPage(w, r, err)
		return
	}
	if e == nil || held {
		h.render(w, r, http.StatusNotFound, "problem", h.newView(r, problemPage{Title: "admin.mail_gone_title", Text: "admin.mail_gone_text", Back: "/admin/mail", BackText: "admin.back_mail"}))
		return
	}
	p := consoleMailDrop{Nav: navFor(s, "/admin/mail"), M: newMailRow(e)}
	if r.Method == http.MethodGet {
		h.render(w, r, http.StatusOK, "admin_mail_drop", h.newView(r, p))
		return
	}
	p.Reason = strings.TrimSpace(r.PostFormValue("reason"))
	if !validReason(p.Reason) {
		v := h.newView(r, p)
		v.Errors = []fieldError{{Field: "reason", Key: "admin.reason_needed"}}
		h.render(w, r, http.StatusBadRequest, "admin_mail_drop", v)
		return
	}
	state := "pending"
	if e.FailedAt != nil {
		state = "failed"
	}
	err = h.mailAction(r, s, ro, p.Reason, id, audit.MailDrop, func(tx *store.Tx, now time.Time) error {
		if h.mailDrop != nil {
			return h.mailDrop(r.Context(), tx, id, now)
		}
		return tx.DropOutbox(r.Context(), id, now)
	})
	switch {
	case errors.Is(err, store.ErrNotFound):
		http.Redirect(w, r, "/admin/mail?state="+state+"&done=gone", http.StatusSeeOther)
	case err != nil:
		h.errorPage(w, r, err)
	default:
		// A waiting mail's sealed content was deleted: truncate the WAL
		// too, as after a delivery.
		if err := h.db.Checkpoint(r.Context()); err != nil {
			h.log.Warn("WAL checkpoint after dropping a mail failed; the outbox worker's next one clears it", "err", err)
		}
		http.Redirect(w, r, "/admin/mail?state="+state+"&done=dropped", http.StatusSeeOther)
	}
}

// mailAction runs change on mail id and writes the audit entry action in
// one transaction. The entry's detail is the mail's kind, state and
// tries before the change.
func (h *Web) mailAction(r *http.Request, s *sender.Sender, ro role.Role, reason, id, action string, change func(*store.Tx, time.Time) error) error {
	ctx := staffCtx(r, s, ro, reason)
	now := h.svc.Now()
	tx, err := h.db.BeginTx(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	e, held, err := tx.OutboxMail(ctx, id, now)
	if err != nil {
		return err
	}
	if held {
		return store.ErrNotFound
	}
	if err := change(tx, now); err != nil {
		return err
	}
	state := "pending"
	if e.FailedAt != nil {
		state = "failed"
	}
	// No recipient, not even masked: the audit log names recipients only
	// by id (docs/security.md).
	detail := "kind=" + e.Kind + " state=" + state + " attempts=" + strconv.Itoa(e.Attempts)
	if err := h.audit.Record(ctx, tx.Q, audit.Event{Action: action, Object: id, Detail: detail}); err != nil {
		return err
	}
	return tx.Commit()
}
