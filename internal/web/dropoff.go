package web

// Drop-off points (issue 17, part 1). The citizen's page /to/{slug} (a
// recipient page: every language) verifies their address with a mailed
// code (the sender verification of package sender, with the page's own
// short forms) and then takes files and a message: with script over tus
// (request-page.js, resumable, progress), without script as one
// multipart form streamed into the engine. What arrives is encrypted to
// the team's inbox key (package sender, team.go). Team members find it
// under /dropoffs and open it with their unlocked inbox.

import (
	"errors"
	"mime/multipart"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/kluis-nl/kluis"
	"github.com/kluis-nl/kluis/internal/locale"
	kpolicy "github.com/kluis-nl/kluis/internal/policy"
	"github.com/kluis-nl/kluis/internal/sender"
	"github.com/kluis-nl/kluis/internal/transfer"
)

// toPage is the citizen's page of a drop-off point.
type toPage struct {
	Slug, Name, Description string
	MaxFiles                int
	MaxSize                 int64
	// Step is "verify" (the address form), "code" (the code form),
	// "upload" (the files form), "sent" or "closed" (no team key).
	Step string
	// Verified is the citizen's verified address (step upload).
	Verified string
	// The forms as typed.
	Name2, Email, Message string
	CodeDigits, Minutes   int
}

// dropoffFor loads the drop-off point of the path, or answers not found.
func (h *Web) dropoffFor(w http.ResponseWriter, r *http.Request) (kpolicy.Dropoff, *toPage, bool) {
	d, err := h.svc.Dropoff(r.PathValue("slug"))
	if err != nil {
		h.problem(w, r, http.StatusNotFound, "to.not_found", "/")
		return d, nil, false
	}
	lang := string(h.pageLang(r, false))
	size, _ := h.svc.DropoffLimits(d)
	return d, &toPage{Slug: d.Slug, Name: d.Name(lang), Description: d.Description(lang), MaxFiles: d.MaxFiles, MaxSize: size}, true
}

func (h *Web) renderTo(w http.ResponseWriter, r *http.Request, status int, p *toPage, errs []fieldError) {
	v := h.viewFor(r, p, false)
	v.Here, v.Errors = "/to/"+p.Slug, errs
	w.Header().Set("Cache-Control", "no-store")
	h.render(w, r, status, "to", v)
}

func (h *Web) toForm(w http.ResponseWriter, r *http.Request) {
	d, p, ok := h.dropoffFor(w, r)
	if !ok {
		return
	}
	s := h.sender(r)
	switch {
	case s == nil:
		p.Step = "verify"
	case r.URL.Query().Get("sent") != "":
		p.Step, p.Verified = "sent", s.Email
	default:
		p.Step, p.Verified = "upload", s.Email
		if _, _, err := h.senders.TeamRecipient(r.Context(), d.Team); err != nil {
			p.Step = "closed"
		}
	}
	h.renderTo(w, r, http.StatusOK, p, nil)
}

// toVerify mails the citizen a code (package sender's verification).
func (h *Web) toVerify(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	_, p, ok := h.dropoffFor(w, r)
	if !ok {
		return
	}
	p.Step = "verify"
	p.Name2, p.Email = strings.TrimSpace(r.PostFormValue("name")), strings.TrimSpace(r.PostFormValue("email"))
	var errs []fieldError
	if p.Name2 == "" {
		errs = append(errs, fieldError{Field: "name", Key: "to.error_name_empty"})
	}
	if p.Email == "" {
		errs = append(errs, fieldError{Field: "email", Key: "to.error_email_empty"})
	} else if _, err := kluis.ParseAddress(p.Email); err != nil {
		errs = append(errs, fieldError{Field: "email", Key: "to.error_email"})
	}
	if len(errs) > 0 {
		h.renderTo(w, r, http.StatusUnprocessableEntity, p, errs)
		return
	}
	pre := ""
	if c, err := r.Cookie(verifyCookie); err == nil {
		pre = c.Value
	}
	tok, err := h.senders.Start(r.Context(), pre, p.Email, p.Name2, "", string(h.pageLang(r, false)))
	ttl := h.senders.Config().CodeTTL
	p.CodeDigits, p.Minutes = sender.CodeDigits, int(ttl.Minutes())
	switch code := kluis.ErrorCode(err); {
	case err == nil:
		http.SetCookie(w, &http.Cookie{Name: verifyCookie, Value: tok, Path: "/", MaxAge: int(ttl.Seconds()), Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode})
		p.Step = "code"
		h.renderTo(w, r, http.StatusOK, p, nil)
	case errors.Is(err, sender.ErrCooldown):
		// A code went to this address a moment ago: it still works.
		setRetryAfter(w, err)
		p.Step = "code"
		h.renderTo(w, r, http.StatusOK, p, nil)
	case code == kluis.EINVALID, code == kluis.EPOLICY:
		h.renderTo(w, r, formStatus(err), p, []fieldError{{Field: "email", Key: "to.error_email"}})
	case code == kluis.ETOOMANYREQUESTS:
		setRetryAfter(w, err)
		h.renderTo(w, r, formStatus(err), p, []fieldError{{Field: "email", Key: "to.error_too_many"}})
	default:
		h.errorPage(w, r, err)
	}
}

// toCode checks the mailed code and opens the citizen's session.
func (h *Web) toCode(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	_, p, ok := h.dropoffFor(w, r)
	if !ok {
		return
	}
	p.Step, p.Email = "code", strings.TrimSpace(r.PostFormValue("email"))
	p.CodeDigits, p.Minutes = sender.CodeDigits, int(h.senders.Config().CodeTTL.Minutes())
	code := strings.Map(func(r rune) rune {
		if r == ' ' || r == '-' {
			return -1
		}
		return r
	}, r.PostFormValue("code"))
	fail := func(status int, key string) {
		h.renderTo(w, r, status, p, []fieldError{{Field: "code", Key: key}})
	}
	if code == "" {
		fail(http.StatusUnprocessableEntity, "to.error_code_empty")
		return
	}
	pre := ""
	if c, err := r.Cookie(verifyCookie); err == nil {
		pre = c.Value
	}
	s, err := h.senders.Confirm(r.Context(), pre, code, "browser")
	switch code := kluis.ErrorCode(err); {
	case err == nil:
	case code == kluis.EINVALID, code == kluis.EWRONGSECRET:
		fail(formStatus(err), "to.error_code_wrong")
		return
	case code == kluis.EEXPIRED, code == kluis.ELOCKED, code == kluis.EUNAUTHORIZED:
		p.Step = "verify"
		fail(formStatus(err), "to.error_code_expired")
		return
	case code == kluis.ETOOMANYREQUESTS:
		setRetryAfter(w, err)
		fail(formStatus(err), "to.error_too_many")
		return
	default:
		h.errorPage(w, r, err)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: verifyCookie, Value: "", Path: "/", MaxAge: -1, Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode})
	http.SetCookie(w, &http.Cookie{Name: senderSessionCookie, Value: s.Token, Path: "/", MaxAge: int(time.Until(s.ExpiresAt).Seconds()), Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode})
	h.seeOther(w, r, "/to/"+p.Slug)
}

// toUpload starts (or finds) the citizen's upload to the point: the team's
// current key and members come from package sender.
func (h *Web) toUpload(r *http.Request, d kpolicy.Dropoff, s *sender.Sender, message string) (*transfer.RequestUpload, error) {
	to, gen, err := h.senders.TeamRecipient(r.Context(), d.Team)
	if err != nil {
		return nil, err
	}
	team, err := h.senders.Team(r.Context(), d.Team)
	if err != nil {
		return nil, err
	}
	var members []string
	for _, m := range team.Members {
		members = append(members, m.Email)
	}
	return h.svc.StartDropoff(senderCtx(r, s).Context(), transfer.DropoffInput{Slug: d.Slug, Sender: s.Email, Team: to, Generation: gen,
		Members: members, Lang: string(h.pageLang(r, false)), Message: message})
}

// toSend is the form without script: the message, then each file
// streamed into the upload; then it sends.
func (h *Web) toSend(w http.ResponseWriter, r *http.Request) {
	d, p, ok := h.dropoffFor(w, r)
	if !ok {
		return
	}
	s := h.sender(r)
	if s == nil {
		h.seeOther(w, r, "/to/"+d.Slug)
		return
	}
	p.Step, p.Verified = "upload", s.Email
	fail := func(status int, field, key string) {
		w.Header().Set("Connection", "close")
		h.renderTo(w, r, status, p, []fieldError{{Field: field, Key: key}})
	}
	r.Body = http.MaxBytesReader(w, r.Body, p.MaxSize+replyFraming)
	mr, err := r.MultipartReader()
	if err != nil {
		fail(http.StatusUnprocessableEntity, "files", "filereq.error_broken")
		return
	}
	var up *transfer.RequestUpload
	start := func() bool {
		if up != nil {
			return true
		}
		if up, err = h.toUpload(r, d, s, p.Message); err != nil {
			up = nil
			h.toFailed(w, r, p, err, fail)
			return false
		}
		return true
	}
	if !h.readUploadForm(mr, &p.Message, fail, func(part *multipart.Part) bool {
		if !start() {
			return false
		}
		if _, err := h.svc.AddRequestFile(r.Context(), up, part.FileName(), part.Header.Get("Content-Type"), part); err != nil {
			h.toFailed(w, r, p, err, fail)
			return false
		}
		return true
	}) {
		return
	}
	if up == nil && strings.TrimSpace(p.Message) == "" {
		fail(http.StatusUnprocessableEntity, "files", "filereq.error_empty")
		return
	}
	if !start() {
		return
	}
	if _, err := h.svc.FinishDropoff(senderCtx(r, s).Context(), s.Email, d.Slug); err != nil {
		h.toFailed(w, r, p, err, fail)
		return
	}
	h.seeOther(w, r, "/to/"+d.Slug+"?sent=1")
}

// toFailed answers an engine error while sending to a point.
func (h *Web) toFailed(w http.ResponseWriter, r *http.Request, p *toPage, err error, fail func(status int, field, key string)) {
	if kluis.ErrorCode(err) == kluis.ECONFLICT && p.Step == "upload" {
		if _, _, kerr := h.senders.TeamRecipient(r.Context(), r.PathValue("slug")); kerr != nil {
			p.Step = "closed"
		}
	}
	key := uploadErrorKey(err)
	field := "files"
	if key == "filereq.error_message_long" {
		field = "message"
	}
	if key == "filereq.error_generic" {
		h.log.Error("web: drop-off send", "err", err)
	}
	fail(statusOf(err), field, key)
}

// uploadErrorKey is the page text of an engine error while sending on a
// request or to a drop-off point.
func uploadErrorKey(err error) string {
	var mbe *http.MaxBytesError
	switch code := kluis.ErrorCode(err); {
	case errors.As(err, &mbe), code == kluis.ETOOLARGE:
		return "filereq.error_too_large"
	case code == kluis.EINVALID:
		for _, f := range kluis.FieldErrors(err) {
			if f.Code == transfer.CodeTooManyFiles {
				return "filereq.error_too_many"
			}
			if f.Field == transfer.FieldMessage {
				return "filereq.error_message_long"
			}
		}
		return "filereq.error_empty"
	case code == kluis.EINFECTED, code == kluis.EUNSCANNABLE:
		return "filereq.error_infected"
	case code == kluis.EQUOTA:
		return "filereq.error_too_many"
	case code == kluis.EEXPIRED, code == kluis.EREVOKED, code == kluis.ENOTFOUND, code == kluis.ECONFLICT:
		return "filereq.gone_heading"
	}
	return "filereq.error_generic"
}

// toStart is the page script's first step (as fileRequestStart).
func (h *Web) toStart(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, int64(transfer.MaxMessageLength)+1<<16)
	lang := h.pageLang(r, false)
	d, err := h.svc.Dropoff(r.PathValue("slug"))
	s := h.sender(r)
	if err == nil && s == nil {
		err = kluis.Errorf(kluis.EUNAUTHORIZED, "Verify your e-mail address first.")
	}
	if err != nil {
		h.toJSONError(w, lang, err)
		return
	}
	up, err := h.toUpload(r, d, s, strings.ReplaceAll(r.PostFormValue("message"), "\r\n", "\n"))
	if err != nil {
		h.toJSONError(w, lang, err)
		return
	}
	writeJSONResponse(w, http.StatusOK, map[string]any{"id": up.Owner.TransferID, "token": up.Token, "url": "/api/v1/uploads/",
		"files_left": up.FilesLeft, "left": up.Left})
}

// toDone is the page script's last step: send what was uploaded.
func (h *Web) toDone(w http.ResponseWriter, r *http.Request) {
	lang := h.pageLang(r, false)
	_, err := h.svc.Dropoff(r.PathValue("slug"))
	s := h.sender(r)
	if err == nil && s == nil {
		err = kluis.Errorf(kluis.EUNAUTHORIZED, "Verify your e-mail address first.")
	}
	if err != nil {
		h.toJSONError(w, lang, err)
		return
	}
	if _, err := h.svc.FinishDropoff(senderCtx(r, s).Context(), s.Email, r.PathValue("slug")); err != nil {
		h.toJSONError(w, lang, err)
		return
	}
	writeJSONResponse(w, http.StatusOK, map[string]any{"sent": true, "next": "/to/" + url.PathEscape(r.PathValue("slug")) + "?sent=1"})
}

func (h *Web) toJSONError(w http.ResponseWriter, lang locale.Lang, err error) {
	key := uploadErrorKey(err)
	if key == "filereq.error_generic" && kluis.ErrorCode(err) != kluis.EUNAUTHORIZED {
		h.log.Error("web: drop-off", "err", err)
	}
	writeJSONResponse(w, statusOf(err), map[string]any{"error": map[string]string{"code": string(kluis.ErrorCode(err)), "message": locale.For(lang).T(key)}})
}

// dropoffsPage is a team member's list of what arrived.
type dropoffsPage struct {
	Email string
	Teams []string
	Items []*transfer.DropoffItem
	Inbox *sender.InboxState
	// Item is the one shown (dropoff page), with Name its point's name.
	Item *transfer.DropoffItem
	Name string
	// Waits are the member's teams in which someone waits for the team
	// key (package sender, team.go).
	Waits []sender.TeamWait
}

// teamMember returns the signed-in sender, their session token and their
// teams; one in no team gets 403.
func (h *Web) teamMember(w http.ResponseWriter, r *http.Request, next string) (*sender.Sender, string, []string, bool) {
	s := h.verifiedSender(w, r, next)
	if s == nil {
		return nil, "", nil, false
	}
	c, _ := r.Cookie(senderSessionCookie)
	teams, err := h.senders.TeamsOf(r.Context(), s.Email)
	if err != nil {
		h.errorPage(w, r, err)
		return nil, "", nil, false
	}
	return s, c.Value, teams, true
}

func (h *Web) dropoffs(w http.ResponseWriter, r *http.Request) {
	s, token, teams, ok := h.teamMember(w, r, "/dropoffs")
	if !ok {
		return
	}
	items, err := h.svc.TeamDropoffs(r.Context(), teams)
	if err != nil {
		h.errorPage(w, r, err)
		return
	}
	st, err := h.senders.InboxState(r.Context(), token)
	if err != nil {
		h.errorPage(w, r, err)
		return
	}
	if st.Unlocked {
		// Share the team keys this member holds with colleagues who
		// wait for them (package sender, team.go).
		for _, team := range teams {
			if _, err := h.senders.TeamIdentities(senderCtx(r, s).Context(), token, team); err != nil {
				h.log.Error("web: share team keys", "err", err)
			}
		}
	}
	// After the sharing above, so the page shows who still waits.
	waits, err := h.senders.TeamWaits(r.Context(), s.Email)
	if err != nil {
		h.errorPage(w, r, err)
		return
	}
	v := h.newView(r, dropoffsPage{Email: s.Email, Teams: teams, Items: items, Inbox: st, Waits: waits})
	v.Here = "/dropoffs"
	w.Header().Set("Cache-Control", "no-store")
	h.render(w, r, http.StatusOK, "dropoffs", v)
}

// ownDropoff loads the drop-off in the path for a member of its team.
func (h *Web) ownDropoff(w http.ResponseWriter, r *http.Request) (*sender.Sender, string, []string, *transfer.DropoffItem, bool) {
	id := r.PathValue("id")
	s, token, teams, ok := h.teamMember(w, r, "/dropoffs/"+url.PathEscape(id))
	if !ok {
		return nil, "", nil, nil, false
	}
	it, err := h.svc.DropoffOf(r.Context(), teams, id)
	if err != nil {
		h.errorPage(w, r, err)
		return nil, "", nil, nil, false
	}
	return s, token, teams, it, true
}

func (h *Web) dropoffPage(w http.ResponseWriter, r *http.Request) {
	s, token, teams, it, ok := h.ownDropoff(w, r)
	if !ok {
		return
	}
	st, err := h.senders.InboxState(r.Context(), token)
	if err != nil {
		h.errorPage(w, r, err)
		return
	}
	name := it.Slug
	if d, ok := h.svc.Policy().Dropoff(it.Slug); ok {
		name = d.Name(string(h.pageLang(r, false)))
	}
	v := h.newView(r, dropoffsPage{Email: s.Email, Teams: teams, Item: it, Inbox: st, Name: name})
	w.Header().Set("Cache-Control", "no-store")
	h.render(w, r, http.StatusOK, "dropoff", v)
}

// dropoffOpen opens a drop-off with the team keys of the session's
// unlocked inbox and sets the download session's cookie; a locked inbox
// goes to /inbox.
func (h *Web) dropoffOpen(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	s, token, teams, it, ok := h.ownDropoff(w, r)
	if !ok {
		return
	}
	ids, err := h.senders.TeamIdentities(r.Context(), token, it.Team)
	if kluis.ErrorCode(err) == kluis.ELOCKED {
		h.seeOther(w, r, "/inbox")
		return
	}
	if err != nil {
		h.errorPage(w, r, err)
		return
	}
	sess, err := h.svc.OpenDropoff(senderCtx(r, s).Context(), s.Email, teams, it.Transfer.ID, ids)
	if err != nil {
		h.linkError(w, r, "", err)
		return
	}
	http.SetCookie(w, &http.Cookie{
		Name: sessionCookie, Value: sess.Token, Path: "/",
		Expires: sess.ExpiresAt, MaxAge: int(time.Until(sess.ExpiresAt).Seconds()),
		HttpOnly: true, Secure: h.secure, SameSite: http.SameSiteStrictMode,
	})
	h.seeOther(w, r, "/dropoffs/"+url.PathEscape(it.Transfer.ID)+"/open")
}

// dropoffUnlocked runs next with the browser's download session of the
// drop-off, or sends the browser to the drop-off's page.
func (h *Web) dropoffUnlocked(w http.ResponseWriter, r *http.Request, next func(s *transfer.Session, base string)) {
	s, _, teams, it, ok := h.ownDropoff(w, r)
	if !ok {
		return
	}
	base := "/dropoffs/" + url.PathEscape(it.Transfer.ID)
	l, err := h.svc.DropoffLink(r.Context(), s.Email, teams, it.Transfer.ID)
	if err != nil {
		h.linkError(w, r, "", err)
		return
	}
	sess := h.session(r, l)
	if sess == nil {
		h.seeOther(w, r, base)
		return
	}
	next(sess, base)
}

// UploadMaxFiles and UploadMaxSize are the limits the upload form states
// (partials/upload.html).
func (p toPage) UploadMaxFiles() int { return p.MaxFiles }

// UploadMaxSize: see UploadMaxFiles.
func (p toPage) UploadMaxSize() int64 { return p.MaxSize }
