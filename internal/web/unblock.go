package web

// The sender unblocks a recipient's locked access: a button per locked
// recipient in My transfers, or the one-time link of the lock-out mail,
// which shows a confirmation first (mail scanners open links; only the
// POST acts). Both need the sender's own session cookie: a forwarded or
// leaked mail alone unblocks nothing.

import (
	"net/http"
	"net/url"
	"strconv"

	"github.com/kluis-nl/kluis"
	"github.com/kluis-nl/kluis/internal/transfer"
)

// unblockPage is the confirmation of an unblock link.
type unblockPage struct {
	ID, Address, Token string
}

// unblockLink is where the lock-out mail's link leads: after the sender's
// verification (which comes back here), a confirmation for the recipient
// the link names.
func (h *Web) unblockLink(w http.ResponseWriter, r *http.Request) {
	id, token := r.PathValue("id"), r.PathValue("token")
	s := h.verifiedSender(w, r, "/transfers/"+url.PathEscape(id)+"/unlock/"+url.PathEscape(token))
	if s == nil {
		return
	}
	o, err := h.svc.AuthorizeSender(r.Context(), id, s.Email)
	if err != nil {
		h.ownedError(w, r, err)
		return
	}
	addr, err := h.svc.LockedByLink(r.Context(), o, token)
	if kluis.ErrorCode(err) == kluis.ENOTFOUND {
		h.linkUsed(w, r, o)
		return
	}
	if err != nil {
		h.linkError(w, r, "", err)
		return
	}
	v := h.newView(r, unblockPage{ID: o.TransferID, Address: addr, Token: token})
	v.Here = "/transfers/" + url.PathEscape(o.TransferID)
	h.render(w, r, http.StatusOK, "transfer_unlock", v)
}

// unblock lifts a recipient's lock: by recipient id (My transfers) or by
// the one-time token of the mail's link.
func (h *Web) unblock(w http.ResponseWriter, r *http.Request) {
	s, o, _, back, ok := h.ownedAction(w, r)
	if !ok {
		return
	}
	ctx := senderCtx(r, s).Context()
	if token := r.PostFormValue("token"); token != "" {
		if _, err := h.svc.LiftLockWithLink(ctx, o, token); kluis.ErrorCode(err) == kluis.ENOTFOUND {
			h.linkUsed(w, r, o)
			return
		} else if err != nil {
			h.linkError(w, r, "", err)
			return
		}
		http.Redirect(w, r, back+"?done=unlocked", http.StatusSeeOther)
		return
	}
	id, _ := strconv.ParseInt(r.PostFormValue("recipient"), 10, 64)
	err := h.svc.LiftLock(ctx, o, id)
	switch {
	case err == nil:
		http.Redirect(w, r, back+"?done=unlocked", http.StatusSeeOther)
	case kluis.ErrorCode(err) == kluis.ENOTFOUND:
		// Not locked (any more): show the state as it is.
		http.Redirect(w, r, back, http.StatusSeeOther)
	default:
		h.linkError(w, r, "", err)
	}
}

// linkUsed answers an unblock link that does not work (any more).
func (h *Web) linkUsed(w http.ResponseWriter, r *http.Request, o transfer.Owner) {
	back := "/transfers/" + url.PathEscape(o.TransferID)
	h.render(w, r, http.StatusNotFound, "problem", h.newView(r, problemPage{Title: "mine.unlock_link_title", Text: "mine.unlock_link_text", Back: back, BackText: "mine.back_detail"}))
}

// ownedError answers a failed AuthorizeSender: another sender's transfer is
// "not found", as one that does not exist.
func (h *Web) ownedError(w http.ResponseWriter, r *http.Request, err error) {
	if kluis.ErrorCode(err) == kluis.ENOTFOUND {
		h.render(w, r, http.StatusNotFound, "problem", h.newView(r, problemPage{Title: "mine.notfound_title", Text: "mine.notfound_text", Back: "/transfers", BackText: "mine.back_list"}))
		return
	}
	h.linkError(w, r, "", err)
}
