package web

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/kluis-nl/kluis"
	"github.com/kluis-nl/kluis/internal/role"
	"github.com/kluis-nl/kluis/internal/sender"
	"github.com/kluis-nl/kluis/internal/store"
)

// API keys in the console (/admin/keys), for administrators: the list
// (owner, name, dates, last use; never the secret, which is not stored),
// a new key (shown once, on the page the post redirects to, see
// consoleKeyCreate), and expiring or
// revoking one with a reason. The keys are those of `kluis admin apikey`:
// the same sender.Service methods, so the same checks and audit entries
// (apikey.create, apikey.expire, apikey.revoke with person, role, IP and
// reason).

var rolesKeys = []role.Role{role.Admin}

// keyDefaultDays is the validity the form suggests for a new key.
const keyDefaultDays = 90

// keyFlashCookie points to the flash that carries a new key's secret from
// the post to the page after the redirect (flash.go).
const keyFlashCookie = "__Host-kluis-key-flash"

type consoleKeys struct {
	Nav     consoleNav
	Keys    []keyRow
	MaxDays int
	Done    string // "revoked" or "expired" after an action
	// The create form, as typed.
	Sender, Name, Days, Reason string
	// Created is the key just made: its secret is shown this once.
	Created *createdKey
}

type createdKey struct {
	ID, Secret, Sender string
	ExpiresAt          time.Time
}

// keyRow is a key as listed, with its state at the time of the request.
type keyRow struct {
	*store.APIKey
	State string // "active", "expired" or "revoked"
}

func keyState(k *store.APIKey, now time.Time) string {
	switch {
	case k.RevokedAt != nil:
		return "revoked"
	case !now.Before(k.ExpiresAt):
		return "expired"
	}
	return "active"
}

func (h *Web) keysPage(r *http.Request, s *sender.Sender) (consoleKeys, error) {
	p := consoleKeys{Nav: navFor(s, "/admin/keys"), MaxDays: int(h.senders.APIKeyMaxAge().Hours() / 24), Days: strconv.Itoa(keyDefaultDays)}
	keys, err := h.senders.APIKeys(r.Context())
	if err != nil {
		return p, err
	}
	now := h.svc.Now()
	for _, k := range keys {
		p.Keys = append(p.Keys, keyRow{APIKey: k, State: keyState(k, now)})
	}
	return p, nil
}

// consoleKeysPage is GET /admin/keys.
func (h *Web) consoleKeysPage(w http.ResponseWriter, r *http.Request) {
	s, _, ok := h.staff(w, r, rolesKeys...)
	if !ok {
		return
	}
	p, err := h.keysPage(r, s)
	if err != nil {
		h.errorPage(w, r, err)
		return
	}
	if d := r.URL.Query().Get("done"); d == "revoked" || d == "expired" {
		p.Done = d
	}
	var created createdKey
	found, err := h.takeFlash(w, r, keyFlashCookie, "admin.key", &created)
	if err != nil {
		h.errorPage(w, r, err)
		return
	}
	if found {
		p.Created = &created
	}
	// Never cached: the page may show a new key, and lists the others.
	w.Header().Set("Cache-Control", "no-store")
	h.render(w, r, http.StatusOK, "admin_keys", h.newView(r, p))
}

// consoleKeyCreate is POST /admin/keys: a new key for a sender address,
// with a name, a validity in days and a reason. It answers with a
// redirect to the list, which shows the secret once (a flash, flash.go),
// and nowhere else.
func (h *Web) consoleKeyCreate(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	s, ro, ok := h.staff(w, r, rolesKeys...)
	if !ok {
		return
	}
	p, err := h.keysPage(r, s)
	if err != nil {
		h.errorPage(w, r, err)
		return
	}
	p.Sender, p.Name = strings.TrimSpace(r.PostFormValue("sender")), strings.TrimSpace(r.PostFormValue("name"))
	p.Days, p.Reason = strings.TrimSpace(r.PostFormValue("days")), strings.TrimSpace(r.PostFormValue("reason"))
	var errs []fieldError
	addr, err := kluis.ParseAddress(p.Sender)
	if err != nil {
		errs = append(errs, fieldError{Field: "sender", Key: "admin.key_bad_sender"})
	}
	if n := utf8.RuneCountInString(p.Name); n == 0 || n > sender.MaxAPIKeyName || strings.ContainsAny(p.Name, "\r\n\x00") {
		errs = append(errs, fieldError{Field: "name", Key: "admin.key_bad_name"})
	}
	days, err := strconv.Atoi(p.Days)
	if err != nil || days < 1 || days > p.MaxDays {
		errs = append(errs, fieldError{Field: "days", Key: "admin.key_bad_days"})
	}
	if !validReason(p.Reason) {
		errs = append(errs, fieldError{Field: "reason", Key: "admin.reason_needed"})
	}
	if len(errs) > 0 {
		v := h.newView(r, p)
		v.Errors = errs
		h.render(w, r, http.StatusBadRequest, "admin_keys", v)
		return
	}
	expires := h.svc.Now().Add(time.Duration(days) * 24 * time.Hour)
	id, key, err := h.senders.IssueAPIKey(staffCtx(r, s, ro, p.Reason), sender.APIKeyRequest{Email: addr, Name: p.Name, Expires: expires})
	if err != nil {
		h.errorPage(w, r, err)
		return
	}
	// Post/Redirect/Get: the list shows the new key this once, from a
	// flash of this session; a reload neither shows nor makes it again.
	if err := h.putFlash(w, r, keyFlashCookie, "admin.key", createdKey{ID: id, Secret: key, Sender: addr, ExpiresAt: expires}); err != nil {
		h.errorPage(w, r, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, "/admin/keys#key-created", http.StatusSeeOther)
}

type consoleKey struct {
	Nav    consoleNav
	Key    keyRow
	Reason string
}

// consoleKey is /admin/keys/{id}: the key (GET) and ending it with a
// reason (POST, action "expire" or "revoke").
func (h *Web) consoleKey(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	s, ro, ok := h.staff(w, r, rolesKeys...)
	if !ok {
		return
	}
	k, err := h.senders.APIKey(r.Context(), r.PathValue("id"))
	if kluis.ErrorCode(err) == kluis.ENOTFOUND {
		h.render(w, r, http.StatusNotFound, "problem", h.newView(r, problemPage{Title: "admin.no_key_title", Text: "admin.no_key_text", Back: "/admin/keys", BackText: "admin.back_keys"}))
		return
	}
	if err != nil {
		h.errorPage(w, r, err)
		return
	}
	p := consoleKey{Nav: navFor(s, "/admin/keys"), Key: keyRow{APIKey: k, State: keyState(k, h.svc.Now())}}
	if r.Method == http.MethodGet {
		h.render(w, r, http.StatusOK, "admin_key", h.newView(r, p))
		return
	}
	p.Reason = strings.TrimSpace(r.PostFormValue("reason"))
	action := r.PostFormValue("action")
	if !validReason(p.Reason) || (action != "expire" && action != "revoke") {
		v := h.newView(r, p)
		v.Errors = []fieldError{{Field: "reason", Key: "admin.reason_needed"}}
		h.render(w, r, http.StatusBadRequest, "admin_key", v)
		return
	}
	ctx := staffCtx(r, s, ro, p.Reason)
	done := "revoked"
	if action == "expire" {
		err, done = h.senders.ExpireAPIKey(ctx, k.ID), "expired"
	} else {
		err = h.senders.RevokeAPIKey(ctx, k.ID)
	}
	switch {
	case kluis.ErrorCode(err) == kluis.ENOTFOUND:
		// Ended already (by someone else, or its expiry came).
		h.render(w, r, http.StatusConflict, "problem", h.newView(r, problemPage{Title: "admin.key_ended_title", Text: "admin.key_ended_text", Back: "/admin/keys", BackText: "admin.back_keys"}))
	case err != nil:
		h.errorPage(w, r, err)
	default:
		http.Redirect(w, r, "/admin/keys?done="+url.QueryEscape(done)+"#key-"+url.QueryEscape(k.ID), http.StatusSeeOther)
	}
}
