package web

// A reply opened from the sender's own pages: the sender of a transfer,
// signed in, opens a recipient's reply from its status page instead of
// with the link in the reply's mail (that link is stored nowhere). The
// password of their own transfer still opens it, through the same
// lock-out and download session as the link.

import (
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/kluis-nl/kluis"
	"github.com/kluis-nl/kluis/internal/download"
	"github.com/kluis-nl/kluis/internal/transfer"
)

// replyBase is the sender's own path of a reply to their transfer.
func replyBase(o transfer.Owner, replyID string) string {
	return "/transfers/" + url.PathEscape(o.TransferID) + "/replies/" + url.PathEscape(replyID)
}

// ownReply finds the reply in the path for its signed-in addressee, or
// answers (sign in first, or "not found" for anything not theirs).
func (h *Web) ownReply(w http.ResponseWriter, r *http.Request) (o transfer.Owner, email, base string, l *transfer.Link, ok bool) {
	s, o, ok := h.owned(w, r)
	if !ok {
		return o, "", "", nil, false
	}
	rid := r.PathValue("rid")
	base = replyBase(o, rid)
	l, err := h.svc.ReplyLink(r.Context(), o, s.Email, rid)
	if err != nil {
		h.linkError(w, r, "", err)
		return o, "", "", nil, false
	}
	return o, s.Email, base, l, true
}

// renderOwnReplyLink is the password page of a reply for its addressee.
func (h *Web) renderOwnReplyLink(w http.ResponseWriter, r *http.Request, status int, base string, l *transfer.Link, errs []fieldError) {
	v := h.newView(r, linkPage{ExpiresAt: l.ExpiresAt, Base: base, Reply: true})
	v.Here = base
	v.Errors = errs
	h.render(w, r, status, "password", v)
}

// replyLink shows the password form of a reply, or the reply itself when
// this browser has unlocked it already. A reply without password opens
// only with the link secret in its mail, which the server does not have.
func (h *Web) replyLink(w http.ResponseWriter, r *http.Request) {
	_, _, base, l, ok := h.ownReply(w, r)
	if !ok {
		return
	}
	if !l.PasswordRequired {
		h.render(w, r, http.StatusOK, "problem", h.newView(r, problemPage{Title: "mine.reply_link_title", Text: "mine.reply_link_text",
			Back: "/transfers/" + url.PathEscape(r.PathValue("id")), BackText: "mine.back_detail"}))
		return
	}
	if h.session(r, l) != nil {
		http.Redirect(w, r, base+"/open", http.StatusSeeOther)
		return
	}
	h.renderOwnReplyLink(w, r, http.StatusOK, base, l, nil)
}

// replyUnlock checks the password of a reply for its addressee and sets
// the download session's cookie.
func (h *Web) replyUnlock(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
		return
	}
	o, email, base, l, ok := h.ownReply(w, r)
	if !ok {
		return
	}
	value := r.PostForm.Get("password")
	if strings.TrimSpace(value) == "" {
		h.renderOwnReplyLink(w, r, http.StatusUnprocessableEntity, base, l, []fieldError{{Field: "password", Key: "unlock.error_empty"}})
		return
	}
	s, err := h.svc.UnlockReply(r.Context(), o, email, r.PathValue("rid"), value)
	if kluis.ErrorCode(err) == kluis.EWRONGSECRET {
		h.renderOwnReplyLink(w, r, http.StatusUnprocessableEntity, base, l, []fieldError{{Field: "password", Key: "unlock.error_wrong"}})
		return
	}
	if err != nil {
		h.linkError(w, r, "", err)
		return
	}
	http.SetCookie(w, &http.Cookie{
		Name: sessionCookie, Value: s.Token, Path: "/",
		Expires: s.ExpiresAt, MaxAge: int(time.Until(s.ExpiresAt).Seconds()),
		HttpOnly: true, Secure: true, SameSite: http.SameSiteStrictMode,
	})
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, base+"/open", http.StatusSeeOther)
}

// ownReplyUnlocked runs next with the browser's download session of the
// reply, or sends the browser to the reply's password form.
func (h *Web) ownReplyUnlocked(w http.ResponseWriter, r *http.Request, next func(s *transfer.Session, base string)) {
	_, _, base, l, ok := h.ownReply(w, r)
	if !ok {
		return
	}
	s := h.session(r, l)
	if s == nil {
		w.Header().Set("Cache-Control", "no-store")
		http.Redirect(w, r, base, http.StatusSeeOther)
		return
	}
	next(s, base)
}

// replyOpen shows an unlocked reply to its addressee.
func (h *Web) replyOpen(w http.ResponseWriter, r *http.Request) {
	h.ownReplyUnlocked(w, r, func(s *transfer.Session, base string) {
		c, err := h.svc.Contents(r.Context(), s)
		if err != nil {
			h.linkError(w, r, "", err)
			return
		}
		t := c.Transfer
		p := openPage{
			Base: base, Own: true, Back: "/transfers/" + url.PathEscape(r.PathValue("id")),
			SenderName: t.SenderName, SenderPhone: t.SenderPhone, SenderEmail: t.SenderEmail,
			Message: c.Message, Files: c.Files, ExpiresAt: t.ExpiresAt,
		}
		h.render(w, r, http.StatusOK, "open", h.newView(r, p))
	})
}

func (h *Web) replyFile(w http.ResponseWriter, r *http.Request) {
	h.ownReplyUnlocked(w, r, func(s *transfer.Session, base string) {
		if err := download.ServeFile(w, r, h.svc, s, r.PathValue("fid"), h.log); err != nil {
			if kluis.ErrorCode(err) == kluis.ENOTFOUND {
				h.problem(w, r, http.StatusNotFound, "problem.file", base+"/open")
				return
			}
			h.linkError(w, r, "", err)
		}
	})
}

func (h *Web) replyZip(w http.ResponseWriter, r *http.Request) {
	h.ownReplyUnlocked(w, r, func(s *transfer.Session, _ string) {
		if err := download.ServeZip(w, r, h.svc, s, h.log); err != nil {
			h.linkError(w, r, "", err)
		}
	})
}
