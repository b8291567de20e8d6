package web

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/kluis-nl/kluis"
	"github.com/kluis-nl/kluis/internal/audit"
	"github.com/kluis-nl/kluis/internal/role"
	"github.com/kluis-nl/kluis/internal/sender"
	"github.com/kluis-nl/kluis/internal/store"
	"github.com/kluis-nl/kluis/internal/transfer"
)

// The admin console (issue 19): pages under /admin for the people who run
// Kluis, each for the roles of package role that may use it. Roles come
// from the organisation's identity provider at an SSO sign-in (package
// sender keeps them with the session; see sso.go); a mailed-code session
// has none. Every check is on the server, per request, through staff.
// What the console shows of transfers is metadata only (the store's
// searches return no sealed column), and every action it takes is
// audited with the person, the role that allowed it, the IP address and
// the reason.

// The roles each part of the console is for.
var (
	rolesTransfers = []role.Role{role.Admin, role.Helpdesk}
	rolesAudit     = []role.Role{role.Admin, role.Auditor}
	rolesStats     = []role.Role{role.Admin, role.Auditor}
	rolesConsole   = []role.Role{role.Admin, role.Auditor, role.Helpdesk}
)

// consolePageSize is the rows of one page of a console list.
const consolePageSize = 50

// helpdeskRevokesPerHour bounds the transfers one helpdesk member may
// revoke in an hour (counted in the audit log, so across instances): a
// stolen helpdesk session cannot end every transfer at once.
const helpdeskRevokesPerHour = 20

// staff returns the signed-in person when they hold one of allowed, and
// the first of those roles they hold (the one recorded for what they do).
// Otherwise it has answered: to the sign-in without a session, 403 saying
// what is missing with one.
func (h *Web) staff(w http.ResponseWriter, r *http.Request, allowed ...role.Role) (*sender.Sender, role.Role, bool) {
	if h.db == nil {
		h.problem(w, r, http.StatusNotFound, "notfound.text", "")
		return nil, "", false
	}
	s := h.sender(r)
	if s == nil {
		w.Header().Set("Cache-Control", "no-store")
		start := "/send?next="
		if h.sso != nil {
			start = "/sso/start?next="
		}
		http.Redirect(w, r, start+url.QueryEscape(r.URL.Path), http.StatusSeeOther)
		return nil, "", false
	}
	for _, ro := range allowed {
		if s.Roles.Has(ro) {
			return s, ro, true
		}
	}
	text := "admin.forbidden_role"
	switch {
	case s.Auth != "sso":
		text = "admin.forbidden_code"
	default:
		for _, ro := range allowed {
			if s.Withheld.Has(ro) {
				text = "admin.forbidden_mfa"
			}
		}
	}
	h.log.Warn("admin console refused", "action", "admin.view", "result", "forbidden", "path", r.URL.Path,
		"auth", s.Auth, "roles", s.Roles.String(), "withheld", s.Withheld.String())
	h.render(w, r, http.StatusForbidden, "problem", h.newView(r, problemPage{Title: "admin.forbidden_title", Text: text, Back: "/", BackText: "common.back_home"}))
	return nil, "", false
}

// staffCtx is the context of an admin action: who, in which role, why.
// The IP address comes from the request's context already.
func staffCtx(r *http.Request, s *sender.Sender, ro role.Role, reason string) context.Context {
	ctx := audit.WithActor(r.Context(), s.AuditActor())
	ctx = audit.WithRole(ctx, string(ro))
	if reason != "" {
		ctx = audit.WithReason(ctx, reason)
	}
	return ctx
}

// consoleNav is the console's menu: the parts the person's roles open.
type consoleNav struct {
	Here  string
	Items []consoleLink
	Email string
	Name  string
	Roles string
}

type consoleLink struct{ Path, Title, Text string }

func navFor(s *sender.Sender, here string) consoleNav {
	n := consoleNav{Here: here, Email: s.Email, Name: s.Name, Roles: s.Roles.String()}
	add := func(path, title, text string, roles []role.Role) {
		for _, ro := range roles {
			if s.Roles.Has(ro) {
				n.Items = append(n.Items, consoleLink{path, title, text})
				return
			}
		}
	}
	add("/admin/transfers", "admin.nav_transfers", "admin.about_transfers", rolesTransfers)
	add("/admin/audit", "admin.nav_audit", "admin.about_audit", rolesAudit)
	add("/admin/stats", "admin.nav_stats", "admin.about_stats", rolesStats)
	add("/admin/keys", "admin.nav_keys", "admin.about_keys", rolesKeys)
	add("/admin/mail", "admin.nav_mail", "admin.about_mail", rolesMail)
	add("/admin/policy", "admin.nav_policy", "admin.about_policy", rolesPolicy)
	return n
}

type consoleHome struct{ Nav consoleNav }

// consoleIndex is /admin: who is signed in, in which roles, and the parts
// of the console those roles open.
func (h *Web) consoleIndex(w http.ResponseWriter, r *http.Request) {
	s, _, ok := h.staff(w, r, rolesConsole...)
	if !ok {
		return
	}
	h.render(w, r, http.StatusOK, "admin", h.newView(r, consoleHome{Nav: navFor(s, "/admin")}))
}

// --- transfers ---------------------------------------------------------

type consoleTransfers struct {
	Nav      consoleNav
	Q        consoleQuery // the search, as typed
	States   []string
	Rows     []*store.AdminTransfer
	Next     string // the query of the next page, or ""
	Searched bool
	Done     string // "revoked" or "already" after a revocation
	Invalid  string // catalog key of a search error
}

// consoleQuery is a search form's values, as typed.
type consoleQuery map[string]string

func queryOf(q url.Values, keys ...string) consoleQuery {
	out := consoleQuery{}
	for _, k := range keys {
		out[k] = strings.TrimSpace(q.Get(k))
	}
	return out
}

var consoleStates = []string{"draft", "uploading", "scanning", "ready", "failed", "revoked", "purged"}

// consoleTransfersPage searches transfers by id, sender, recipient, state
// and date: metadata only.
func (h *Web) consoleTransfersPage(w http.ResponseWriter, r *http.Request) {
	s, _, ok := h.staff(w, r, rolesTransfers...)
	if !ok {
		return
	}
	q := r.URL.Query()
	p := consoleTransfers{Nav: navFor(s, "/admin/transfers"), Q: queryOf(q, "id", "sender", "recipient", "state", "from", "to"),
		States: consoleStates}
	if d := q.Get("done"); d == "revoked" || d == "already" {
		p.Done = d
	}
	f := store.TransferFilter{ID: p.Q["id"], Sender: p.Q["sender"], Recipient: p.Q["recipient"], State: p.Q["state"], BeforeID: q.Get("bid")}
	var err error
	if f.From, f.To, err = dayRange(p.Q["from"], p.Q["to"]); err != nil {
		p.Invalid = "admin.bad_date"
	}
	if f.State != "" && !slices.Contains(consoleStates, f.State) {
		p.Invalid = "admin.bad_state"
	}
	if b := q.Get("before"); b != "" {
		ms, err := strconv.ParseInt(b, 10, 64)
		if err != nil || ms <= 0 {
			p.Invalid = "admin.bad_page"
		}
		f.Before = time.UnixMilli(ms)
	}
	status := http.StatusOK
	if p.Invalid != "" {
		status = http.StatusBadRequest
	} else {
		rows, err := h.db.SearchTransfers(r.Context(), f, consolePageSize)
		if err != nil {
			h.errorPage(w, r, err)
			return
		}
		p.Rows, p.Searched = rows, true
		if len(rows) == consolePageSize {
			next := url.Values{}
			for k, v := range p.Q {
				if v != "" {
					next.Set(k, v)
				}
			}
			last := rows[len(rows)-1]
			next.Set("before", strconv.FormatInt(last.CreatedAt.UnixMilli(), 10))
			next.Set("bid", last.ID)
			p.Next = next.Encode()
		}
	}
	h.render(w, r, status, "admin_transfers", h.newView(r, p))
}

type consoleRevoke struct {
	Nav    consoleNav
	T      *store.AdminTransfer
	Reason string
}

// consoleRevoke asks for the reason (GET) and revokes (POST). The
// recipients are told as when the sender revokes, the sender is told that
// the helpdesk did it and why; the entry in the audit log names the
// person, role, IP address and reason; a helpdesk member may revoke
// helpdeskRevokesPerHour transfers an hour (revokeLimit).
func (h *Web) consoleRevoke(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	s, ro, ok := h.staff(w, r, rolesTransfers...)
	if !ok {
		return
	}
	id := r.PathValue("id")
	rows, err := h.db.SearchTransfers(r.Context(), store.TransferFilter{ID: id}, 1)
	if err != nil {
		h.errorPage(w, r, err)
		return
	}
	if len(rows) == 0 {
		h.render(w, r, http.StatusNotFound, "problem", h.newView(r, problemPage{Title: "admin.no_transfer_title", Text: "admin.no_transfer_text", Back: "/admin/transfers", BackText: "admin.back_transfers"}))
		return
	}
	p := consoleRevoke{Nav: navFor(s, "/admin/transfers"), T: rows[0]}
	if r.Method == http.MethodGet {
		h.render(w, r, http.StatusOK, "admin_revoke", h.newView(r, p))
		return
	}
	p.Reason = strings.TrimSpace(r.PostFormValue("reason"))
	if !validReason(p.Reason) {
		v := h.newView(r, p)
		v.Errors = []fieldError{{Field: "reason", Key: "admin.reason_needed"}}
		h.render(w, r, http.StatusBadRequest, "admin_revoke", v)
		return
	}
	err = h.svc.RevokeByStaff(staffCtx(r, s, ro, p.Reason), id, revokeLimit(ro))
	if errors.Is(err, transfer.ErrStaffLimit) {
		h.revokeLimited(w, r, id)
		return
	}
	switch {
	case kluis.ErrorCode(err) == kluis.ECONFLICT:
		http.Redirect(w, r, "/admin/transfers?id="+url.QueryEscape(id)+"&done=already", http.StatusSeeOther)
	case err != nil:
		h.errorPage(w, r, err)
	default:
		http.Redirect(w, r, "/admin/transfers?id="+url.QueryEscape(id)+"&done=revoked", http.StatusSeeOther)
	}
}

// --- audit log ---------------------------------------------------------

type consoleAudit struct {
	Nav     consoleNav
	Q       consoleQuery
	Rows    []*store.AuditRow
	Next    string
	Export  string // the filters, for the export links
	Invalid string
}

var auditKeys = []string{"actor", "action", "object", "result", "from", "to"}

// auditFilter reads the audit filters of q.
func auditFilter(q url.Values) (store.AuditFilter, string) {
	v := queryOf(q, auditKeys...)
	f := store.AuditFilter{Actor: v["actor"], Action: v["action"], Object: v["object"], Result: v["result"]}
	var err error
	if f.From, f.To, err = dayRange(v["from"], v["to"]); err != nil {
		return f, "admin.bad_date"
	}
	if b := q.Get("before"); b != "" {
		if f.BeforeID, err = strconv.ParseInt(b, 10, 64); err != nil || f.BeforeID <= 0 {
			return f, "admin.bad_page"
		}
	}
	return f, ""
}

// encode is the non-empty values of q as a URL query.
func (q consoleQuery) encode() url.Values {
	out := url.Values{}
	for k, v := range q {
		if v != "" {
			out.Set(k, v)
		}
	}
	return out
}

// consoleAuditPage lists audit entries, newest first, with filters.
func (h *Web) consoleAuditPage(w http.ResponseWriter, r *http.Request) {
	s, _, ok := h.staff(w, r, rolesAudit...)
	if !ok {
		return
	}
	q := r.URL.Query()
	f, invalid := auditFilter(q)
	p := consoleAudit{Nav: navFor(s, "/admin/audit"), Q: queryOf(q, auditKeys...), Invalid: invalid}
	p.Export = p.Q.encode().Encode()
	status := http.StatusOK
	if invalid != "" {
		status = http.StatusBadRequest
	} else {
		rows, err := h.db.SearchAudit(r.Context(), f, consolePageSize)
		if err != nil {
			h.errorPage(w, r, err)
			return
		}
		p.Rows = rows
		if len(rows) == consolePageSize {
			next := p.Q.encode()
			next.Set("before", strconv.FormatInt(rows[len(rows)-1].ID, 10))
			p.Next = next.Encode()
		}
	}
	h.render(w, r, status, "admin_audit", h.newView(r, p))
}

// consoleAuditExport streams the filtered entries as CSV or JSON Lines;
// the export itself is an audit entry (the log holds personal data).
func (h *Web) consoleAuditExport(w http.ResponseWriter, r *http.Request) {
	s, ro, ok := h.staff(w, r, rolesAudit...)
	if !ok {
		return
	}
	q := r.URL.Query()
	q.Del("before")
	f, invalid := auditFilter(q)
	format := q.Get("format")
	if invalid == "" && format != audit.CSV && format != audit.JSON {
		invalid = "admin.bad_format"
	}
	if invalid != "" {
		h.render(w, r, http.StatusBadRequest, "problem", h.newView(r, problemPage{Title: "admin.bad_request_title", Text: invalid, Back: "/admin/audit", BackText: "admin.back_audit"}))
		return
	}
	ctx := staffCtx(r, s, ro, "")
	if err := h.audit.Record(ctx, h.db.Q, audit.Event{Action: audit.AuditExport, Detail: "format=" + format + " filter=" + exportDetail(q)}); err != nil {
		h.errorPage(w, r, err)
		return
	}
	ext, ctype := "csv", "text/csv; charset=utf-8"
	if format == audit.JSON {
		ext, ctype = "jsonl", "application/jsonl; charset=utf-8"
	}
	w.Header().Set("Content-Type", ctype)
	w.Header().Set("Content-Disposition", `attachment; filename="kluis-audit-`+h.svc.Now().UTC().Format("20060102-150405")+`.`+ext+`"`)
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if err := h.audit.ExportFiltered(ctx, f, format, w); err != nil {
		// The header is out; the log says why the file is short.
		h.log.Error("audit export ended early", "err", err)
	}
}

// exportDetail is the filters of an export, for its audit entry.
func exportDetail(q url.Values) string {
	var parts []string
	for _, k := range auditKeys {
		if v := strings.TrimSpace(q.Get(k)); v != "" {
			parts = append(parts, k+":"+v)
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ",")
}

// --- statistics --------------------------------------------------------

// statsDays and statsMonths are the days and months the statistics page
// shows, up to and including the current one.
const (
	statsDays   = 31
	statsMonths = 12
)

type consoleStats struct {
	Nav    consoleNav
	Days   []store.Stats
	Months []store.Stats
	Chart  chart
}

// chart is a bar chart drawn on the server as SVG: the transfers sent per
// day. The table next to it holds the same numbers as text.
type chart struct {
	Width, Height int
	Max           int64
	Bars          []bar
	Ticks         []tick
}

type bar struct {
	X, Y, W, H int
	Day        time.Time
	Value      int64
}

type tick struct {
	Y     int
	Value int64
}

// The chart's drawing area, in SVG user units.
const (
	chartLeft   = 40
	chartTop    = 10
	chartPlotW  = 620
	chartPlotH  = 200
	chartBottom = 30
)

func newChart(days []store.Stats) chart {
	c := chart{Width: chartLeft + chartPlotW + 10, Height: chartTop + chartPlotH + chartBottom}
	for _, d := range days {
		c.Max = max(c.Max, d.TransfersSent)
	}
	top := max(c.Max, 4)
	for i := int64(0); i <= 4; i++ {
		v := top * i / 4
		c.Ticks = append(c.Ticks, tick{Y: chartTop + chartPlotH - int(v*chartPlotH/top), Value: v})
	}
	if len(days) == 0 {
		return c
	}
	slot := chartPlotW / len(days)
	for i, d := range days {
		h := int(d.TransfersSent * chartPlotH / top)
		c.Bars = append(c.Bars, bar{X: chartLeft + i*slot + 1, Y: chartTop + chartPlotH - h, W: max(slot-2, 1), H: h, Day: d.Start, Value: d.TransfersSent})
	}
	return c
}

// consoleStatsPage shows the statistics per day (the last statsDays days)
// and per month (the last statsMonths months), newest last in the chart
// and newest first in the tables.
func (h *Web) consoleStatsPage(w http.ResponseWriter, r *http.Request) {
	s, _, ok := h.staff(w, r, rolesStats...)
	if !ok {
		return
	}
	now := h.svc.Now().UTC()
	today := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC)
	days, err := h.db.StatsDays(r.Context(), today.AddDate(0, 0, 1-statsDays), today.AddDate(0, 0, 1))
	if err != nil {
		h.errorPage(w, r, err)
		return
	}
	month := time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC)
	months, err := h.db.StatsMonths(r.Context(), month.AddDate(0, 1-statsMonths, 0), month.AddDate(0, 1, 0))
	if err != nil {
		h.errorPage(w, r, err)
		return
	}
	p := consoleStats{Nav: navFor(s, "/admin/stats"), Chart: newChart(days)}
	for i := len(days) - 1; i >= 0; i-- {
		p.Days = append(p.Days, days[i])
	}
	for i := len(months) - 1; i >= 0; i-- {
		p.Months = append(p.Months, months[i])
	}
	h.render(w, r, http.StatusOK, "admin_stats", h.newView(r, p))
}

// --- helpers -----------------------------------------------------------

// dayRange reads two optional dates (YYYY-MM-DD, as <input type=date>
// sends) as [from 00:00, to+1 00:00) in UTC.
func dayRange(from, to string) (time.Time, time.Time, error) {
	var f, t time.Time
	var err error
	if from != "" {
		if f, err = time.Parse(time.DateOnly, from); err != nil {
			return f, t, err
		}
	}
	if to != "" {
		if t, err = time.Parse(time.DateOnly, to); err != nil {
			return f, t, err
		}
		t = t.AddDate(0, 0, 1)
	}
	if !f.IsZero() && !t.IsZero() && !f.Before(t) {
		return f, t, fmt.Errorf("from %s is after to %s", from, to)
	}
	return f, t, nil
}
