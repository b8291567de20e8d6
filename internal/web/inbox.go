package web

// The sender's inbox: set an inbox passphrase once, unlock the inbox once
// per session, lock it again (package sender, inbox.go, has the key
// model). The passphrase travels only in POST bodies and is never put back
// into a page.

import (
	"net/http"

	"github.com/kluis-nl/kluis"
	"github.com/kluis-nl/kluis/internal/secret"
	"github.com/kluis-nl/kluis/internal/sender"
)

// inboxPage is the inbox page: the form to set the passphrase, to unlock
// with it, or the unlocked state.
type inboxPage struct {
	Email string
	State *sender.InboxState
	Done  string // "created", "unlocked", "locked" or "changed" after a POST
	// Waits are the sender's teams in which someone waits for the team
	// key (package sender, team.go).
	Waits []sender.TeamWait
}

// inboxDone are the confirmations a redirect may ask for.
var inboxDone = map[string]bool{"created": true, "unlocked": true, "locked": true, "changed": true}

// passphraseProblems maps secret.PasswordProblem to the page's texts.
var passphraseProblems = map[string]string{
	secret.PasswordNotText:  "inbox.error_not_text",
	secret.PasswordEmpty:    "inbox.error_empty",
	secret.PasswordBlank:    "inbox.error_empty",
	secret.PasswordTooShort: "inbox.error_too_short",
	secret.PasswordTooLong:  "inbox.error_too_long",
	secret.PasswordCommon:   "inbox.error_common",
}

// inboxSender returns the signed-in sender and their session token, or
// sends the browser to verify first.
func (h *Web) inboxSender(w http.ResponseWriter, r *http.Request) (*sender.Sender, string) {
	s := h.verifiedSender(w, r, "/inbox")
	if s == nil {
		return nil, ""
	}
	c, _ := r.Cookie(senderSessionCookie)
	return s, c.Value
}

func (h *Web) inbox(w http.ResponseWriter, r *http.Request) {
	s, token := h.inboxSender(w, r)
	if s == nil {
		return
	}
	done := r.URL.Query().Get("done")
	if !inboxDone[done] {
		done = ""
	}
	h.renderInbox(w, r, http.StatusOK, s, token, done, nil)
}

// renderInbox shows the page with the current state and errs, if any.
func (h *Web) renderInbox(w http.ResponseWriter, r *http.Request, status int, s *sender.Sender, token, done string, errs []fieldError) {
	st, err := h.senders.InboxState(r.Context(), token)
	if err != nil {
		h.errorPage(w, r, err)
		return
	}
	waits, err := h.senders.TeamWaits(r.Context(), s.Email)
	if err != nil {
		h.errorPage(w, r, err)
		return
	}
	v := h.newView(r, inboxPage{Email: s.Email, State: st, Done: done, Waits: waits})
	v.Here, v.Errors = "/inbox", errs
	h.render(w, r, status, "inbox", v)
}

// inboxCreate sets the inbox passphrase (typed twice).
func (h *Web) inboxCreate(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	s, token := h.inboxSender(w, r)
	if s == nil {
		return
	}
	pass, again := r.PostFormValue("passphrase"), r.PostFormValue("passphrase_again")
	if p := secret.PasswordProblem(pass); p != "" {
		h.renderInbox(w, r, http.StatusUnprocessableEntity, s, token, "", []fieldError{{Field: "passphrase", Key: passphraseProblems[p]}})
		return
	}
	if pass != again {
		h.renderInbox(w, r, http.StatusUnprocessableEntity, s, token, "", []fieldError{{Field: "passphrase_again", Key: "inbox.error_mismatch"}})
		return
	}
	err := h.senders.CreateInbox(senderCtx(r, s).Context(), token, pass)
	switch {
	case err == nil:
		h.seeOther(w, r, "/inbox?done=created")
	case kluis.ErrorCode(err) == kluis.ECONFLICT:
		// Set meanwhile (another tab): the page shows the unlock form.
		h.seeOther(w, r, "/inbox")
	default:
		h.errorPage(w, r, err)
	}
}

// inboxUnlock unlocks the inbox for this session.
func (h *Web) inboxUnlock(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	s, token := h.inboxSender(w, r)
	if s == nil {
		return
	}
	err := h.senders.UnlockInbox(senderCtx(r, s).Context(), token, r.PostFormValue("passphrase"))
	switch code := kluis.ErrorCode(err); {
	case err == nil:
		h.seeOther(w, r, "/inbox?done=unlocked")
	case code == kluis.EWRONGSECRET:
		h.renderInbox(w, r, formStatus(err), s, token, "", []fieldError{{Field: "passphrase", Key: "inbox.error_wrong"}})
	case code == kluis.ETOOMANYREQUESTS:
		setRetryAfter(w, err)
		h.renderInbox(w, r, formStatus(err), s, token, "", []fieldError{{Field: "passphrase", Key: "inbox.error_too_many"}})
	case code == kluis.ENOTFOUND:
		h.seeOther(w, r, "/inbox")
	default:
		h.errorPage(w, r, err)
	}
}

// inboxPassphrase changes the inbox passphrase: the current one (its try
// counts as an unlock's), and the new one typed twice.
func (h *Web) inboxPassphrase(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	s, token := h.inboxSender(w, r)
	if s == nil {
		return
	}
	old := r.PostFormValue("old_passphrase")
	pass, again := r.PostFormValue("new_passphrase"), r.PostFormValue("new_passphrase_again")
	fail := func(status int, field, key string) {
		h.renderInbox(w, r, status, s, token, "", []fieldError{{Field: field, Key: key}})
	}
	if p := secret.PasswordProblem(pass); p != "" {
		fail(http.StatusUnprocessableEntity, "new_passphrase", passphraseProblems[p])
		return
	}
	if pass != again {
		fail(http.StatusUnprocessableEntity, "new_passphrase_again", "inbox.error_mismatch")
		return
	}
	if pass == old {
		fail(http.StatusUnprocessableEntity, "new_passphrase", "inbox.error_same")
		return
	}
	err := h.senders.ChangeInboxPassphrase(senderCtx(r, s).Context(), token, old, pass)
	switch code := kluis.ErrorCode(err); {
	case err == nil:
		h.seeOther(w, r, "/inbox?done=changed")
	case code == kluis.EWRONGSECRET:
		fail(formStatus(err), "old_passphrase", "inbox.error_wrong")
	case code == kluis.ETOOMANYREQUESTS:
		setRetryAfter(w, err)
		fail(formStatus(err), "old_passphrase", "inbox.error_too_many")
	case code == kluis.ENOTFOUND:
		h.seeOther(w, r, "/inbox")
	default:
		h.errorPage(w, r, err)
	}
}

// inboxLock forgets the unlocked inbox of this session.
func (h *Web) inboxLock(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	s, token := h.inboxSender(w, r)
	if s == nil {
		return
	}
	if err := h.senders.LockInbox(r.Context(), token); err != nil {
		h.errorPage(w, r, err)
		return
	}
	h.seeOther(w, r, "/inbox?done=locked")
}

func (h *Web) seeOther(w http.ResponseWriter, r *http.Request, to string) {
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, to, http.StatusSeeOther)
}
