package web

import (
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/kluis-nl/kluis"
	"github.com/kluis-nl/kluis/internal/download"
	"github.com/kluis-nl/kluis/internal/secret"
	"github.com/kluis-nl/kluis/internal/transfer"
)

// sessionCookie holds the download session token. The __Host- prefix makes
// the browser insist on Secure, Path=/ and no Domain, so no other host can
// set or read it.
const sessionCookie = "__Host-kluis-dl"

// maxFormBytes bounds the small forms (a code, a password).
const maxFormBytes = 16 << 10

func (h *Web) receiveForm(w http.ResponseWriter, r *http.Request) {
	h.render(w, r, http.StatusOK, "receive", h.newView(r, ""))
}

// receiveCode takes a code typed by hand (the short receive code from the
// mail, or an older mail's access id; any case, with dashes or spaces) or a
// whole pasted link, and goes to that link's page. A code that names no
// transfer shows the form again with the error and what was typed, rather
// than the page for a broken link. A pasted no-password link has its
// secret after '#': that is used at once, since it must not go into the
// redirect's URL. The route is rate-limited (server.rateLimited), and a
// wrong code counts as a failure there.
func (h *Web) receiveCode(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	input := strings.TrimSpace(r.PostFormValue("code"))
	v := h.newView(r, input)
	v.Here = "/receive"
	wrong := func(key string) {
		v.Errors = []fieldError{{Field: "code", Key: key}}
		h.render(w, r, http.StatusUnprocessableEntity, "receive", v)
	}
	if input == "" {
		wrong("receive.error_empty")
		return
	}
	code, frag, _ := strings.Cut(input, "#")
	if i := strings.LastIndex(code, "/r/"); i >= 0 {
		code = code[i+3:]
	}
	code, _, _ = strings.Cut(code, "?")
	code = strings.Trim(code, "/ ")
	id, ok := secret.NormalizeAccessID(code)
	if !ok {
		id, ok = secret.NormalizeReceiveCode(code)
	}
	if !ok {
		wrong("receive.error_invalid")
		return
	}
	if _, err := h.svc.Lookup(r.Context(), id); kluis.ErrorCode(err) == kluis.ENOTFOUND {
		wrong("receive.error_invalid")
		return
	}
	// Expired, revoked and locked links are told so on their own page.
	if frag != "" {
		h.unlockWith(w, r, id, frag)
		return
	}
	http.Redirect(w, r, "/r/"+id, http.StatusSeeOther)
}

// linkPage is the data of the password and no-password pages.
type linkPage struct {
	Access    string
	ExpiresAt time.Time
	// Base is the path the forms post under: "/r/<access>", or the
	// sender's own path of a reply (replyBase).
	Base string
	// Reply: the transfer is a reply, so whoever opens it is the sender
	// of the original, with the password of their own transfer.
	Reply bool
	// MessageOnly: the transfer holds a message and no files.
	MessageOnly bool
}

// link is where the link in the mail leads: a password form, or for a
// no-password link a page whose script posts the secret from the #fragment.
func (h *Web) link(w http.ResponseWriter, r *http.Request) {
	access := r.PathValue("access")
	l, err := h.svc.Lookup(r.Context(), access)
	if err != nil {
		h.linkError(w, r, access, err)
		return
	}
	if s := h.session(r, l); s != nil {
		// Already unlocked in this browser.
		http.Redirect(w, r, "/r/"+access+"/open", http.StatusSeeOther)
		return
	}
	if h.pending(r, l) != nil {
		// The password was right; the SMS code is still due.
		http.Redirect(w, r, "/r/"+access+"/code", http.StatusSeeOther)
		return
	}
	h.renderLink(w, r, http.StatusOK, access, l, nil)
}

func (h *Web) renderLink(w http.ResponseWriter, r *http.Request, status int, access string, l *transfer.Link, errs []fieldError) {
	v := h.newView(r, linkPage{Access: access, ExpiresAt: l.ExpiresAt, Base: "/r/" + access, Reply: l.Reply,
		MessageOnly: h.svc.MessageOnly(r.Context(), access)})
	v.Here = "/r/" + access
	v.Errors = errs
	page := "password"
	if !l.PasswordRequired {
		page = "fragment"
	}
	h.render(w, r, status, page, v)
}

// unlock checks the password (or the link secret) posted in the body.
func (h *Web) unlock(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
		return
	}
	value := r.PostForm.Get("password")
	if !r.PostForm.Has("password") {
		value = r.PostForm.Get("secret")
	}
	h.unlockWith(w, r, r.PathValue("access"), value)
}

// unlockWith opens a download session with a password or link secret and
// sets its cookie.
func (h *Web) unlockWith(w http.ResponseWriter, r *http.Request, access, value string) {
	l, err := h.svc.Lookup(r.Context(), access)
	if err != nil {
		h.linkError(w, r, access, err)
		return
	}
	field := "secret"
	if l.PasswordRequired {
		field = "password"
	} else if _, after, ok := strings.Cut(value, "#"); ok {
		// The whole link was pasted.
		value = after
	}
	if !l.PasswordRequired {
		value = strings.TrimSpace(value)
	}
	prefix := map[string]string{"password": "unlock", "secret": "fragment"}[field]
	if strings.TrimSpace(value) == "" {
		h.renderLink(w, r, http.StatusUnprocessableEntity, access, l, []fieldError{{Field: field, Key: prefix + ".error_empty"}})
		return
	}
	s, err := h.svc.Unlock(r.Context(), access, value)
	if kluis.ErrorCode(err) == kluis.EWRONGSECRET {
		h.renderLink(w, r, http.StatusUnprocessableEntity, access, l, []fieldError{{Field: field, Key: prefix + ".error_wrong"}})
		return
	}
	if err != nil {
		h.linkError(w, r, access, err)
		return
	}
	if s.Pending() {
		// The second factor is due; a login has its own step, an SMS
		// code is sent and asked for.
		if p, err := h.svc.OpenPending(r.Context(), s.Token); err == nil && p.Method() == kluis.AuthPasswordLogin {
			setSessionCookie(w, s.Token, s.ExpiresAt)
			http.Redirect(w, r, "/r/"+access+"/login", http.StatusSeeOther)
			return
		}
		h.startCode(w, r, access, s)
		return
	}
	setSessionCookie(w, s.Token, s.ExpiresAt)
	http.Redirect(w, r, "/r/"+access+"/open", http.StatusSeeOther)
}

// session returns the browser's download session if it is valid and
// belongs to the recipient of l, else nil (another recipient of the same
// transfer unlocks with their own link).
func (h *Web) session(r *http.Request, l *transfer.Link) *transfer.Session {
	c, err := r.Cookie(sessionCookie)
	if err != nil || c.Value == "" {
		return nil
	}
	s, err := h.svc.OpenSession(r.Context(), c.Value)
	if err != nil || s.TransferID() != l.TransferID || s.RecipientID() != l.RecipientID {
		return nil
	}
	return s
}

// unlocked runs next with the browser's session for the link, or sends the
// browser to the link's page to unlock it first.
func (h *Web) unlocked(w http.ResponseWriter, r *http.Request, next func(*transfer.Session)) {
	access := r.PathValue("access")
	l, err := h.svc.Lookup(r.Context(), access)
	if err != nil {
		h.linkError(w, r, access, err)
		return
	}
	s := h.session(r, l)
	if s == nil {
		w.Header().Set("Cache-Control", "no-store")
		http.Redirect(w, r, "/r/"+access, http.StatusSeeOther)
		return
	}
	next(s)
}

// openPage is what an unlocked recipient sees.
type openPage struct {
	Access string
	// Base is the path of the files and the ZIP: "/r/<access>", or the
	// sender's own path of a reply (replyBase).
	Base string
	// Own: the sender opened a reply to their transfer from their own
	// pages; Back is that transfer's page. No reply to a reply is offered.
	Own                                  bool
	Back                                 string
	SenderName, SenderPhone, SenderEmail string
	Recipients                           []string
	Message                              string
	Files                                []kluis.File
	ExpiresAt                            time.Time
}

func (h *Web) open(w http.ResponseWriter, r *http.Request) {
	access := r.PathValue("access")
	h.unlocked(w, r, func(s *transfer.Session) {
		c, err := h.svc.Contents(r.Context(), s)
		if err != nil {
			h.linkError(w, r, access, err)
			return
		}
		t := c.Transfer
		p := openPage{
			Access: access, Base: "/r/" + access, SenderName: t.SenderName, SenderPhone: t.SenderPhone, SenderEmail: t.SenderEmail,
			Message: c.Message, Files: c.Files, ExpiresAt: t.ExpiresAt,
		}
		for _, rc := range t.Recipients {
			if rc.Kind != kluis.KindBcc {
				p.Recipients = append(p.Recipients, rc.Address)
			}
		}
		h.render(w, r, http.StatusOK, "open", h.newView(r, p))
	})
}

func (h *Web) downloadFile(w http.ResponseWriter, r *http.Request) {
	access := r.PathValue("access")
	h.unlocked(w, r, func(s *transfer.Session) {
		if err := download.ServeFile(w, r, h.svc, s, r.PathValue("fid"), h.log); err != nil {
			if kluis.ErrorCode(err) == kluis.ENOTFOUND {
				h.problem(w, r, http.StatusNotFound, "problem.file", "/r/"+access+"/open")
				return
			}
			h.linkError(w, r, access, err)
		}
	})
}

func (h *Web) downloadZip(w http.ResponseWriter, r *http.Request) {
	access := r.PathValue("access")
	h.unlocked(w, r, func(s *transfer.Session) {
		if err := download.ServeZip(w, r, h.svc, s, h.log); err != nil {
			h.linkError(w, r, access, err)
		}
	})
}

// gonePage and lockedPage carry the dates of those pages.
type gonePage struct {
	Kind string // "expired" or "revoked"
	At   *time.Time
	// OnlyYou: this recipient's access was revoked; the transfer and its
	// files are still there for the others.
	OnlyYou bool
	// MessageOnly: the transfer held a message and no files.
	MessageOnly bool
}

// lockedPage says until when a link is locked, or that it waits for the
// sender (Held), and how to reach the sender.
type lockedPage struct {
	Until                   *time.Time
	Held                    bool
	SenderName, SenderEmail string
	// MessageOnly: the transfer holds a message and no files.
	MessageOnly bool
}

type problemPage struct{ Title, Text, Back, BackText string }

// linkError answers an error of the engine about a link with a page, with
// the status api.Status gives (statusOf). The texts are our own; an
// error's internal details only go to the log.
func (h *Web) linkError(w http.ResponseWriter, r *http.Request, access string, err error) {
	var at *time.Time
	if ke := (*kluis.Error)(nil); errors.As(err, &ke) {
		at = ke.At
	}
	switch kluis.ErrorCode(err) {
	case kluis.ENOTFOUND:
		h.render(w, r, statusOf(err), "notfound", nil)
	case kluis.EEXPIRED:
		h.render(w, r, statusOf(err), "gone", h.newView(r, gonePage{Kind: "expired", At: at, MessageOnly: access != "" && h.svc.MessageOnly(r.Context(), access)}))
	case kluis.EREVOKED:
		h.render(w, r, statusOf(err), "gone", h.newView(r, gonePage{Kind: "revoked", At: at, OnlyYou: errors.Is(err, transfer.ErrAccessRevoked),
			MessageOnly: access != "" && h.svc.MessageOnly(r.Context(), access)}))
	case kluis.ELOCKED:
		p := lockedPage{Until: at, MessageOnly: access != "" && h.svc.MessageOnly(r.Context(), access)}
		// Who to contact (the recipient knows the sender from the mail).
		if l, _ := h.svc.Lookup(r.Context(), access); l != nil && l.SenderEmail != "" {
			p.Held, p.SenderName, p.SenderEmail = l.Held, l.SenderName, l.SenderEmail
		}
		h.render(w, r, statusOf(err), "locked", h.newView(r, p))
	case kluis.EUNAUTHORIZED:
		h.problem(w, r, statusOf(err), "problem.session", "/r/"+access)
	default:
		h.errorPage(w, r, err)
	}
}

func (h *Web) problem(w http.ResponseWriter, r *http.Request, status int, key, back string) {
	h.problemLookup(w, r, status, key, back, true)
}

// problemLookup is problem; lookup is pageLang's (false for a refusal
// under load, which should cost no database work).
func (h *Web) problemLookup(w http.ResponseWriter, r *http.Request, status int, key, back string, lookup bool) {
	p := problemPage{Title: key + "_title", Text: key + "_text", Back: back}
	if back != "" {
		p.BackText = "problem.back_to_link"
	}
	h.render(w, r, status, "problem", h.viewFor(r, p, lookup))
}
