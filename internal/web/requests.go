package web

// File requests (issue 17, part 2). A signed-in sender with an inbox asks
// an address for files (/requests); the person opens the link from their
// mail (/q/{access}) and sends files and a message with a plain
// multipart form (no script needed: each file part is streamed into the
// engine, which encrypts it to a key only the requester's inbox opens).
// The requester opens what arrived from /requests/{id} after unlocking
// their inbox.

import (
	"errors"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/kluis-nl/kluis"
	"github.com/kluis-nl/kluis/internal/download"
	"github.com/kluis-nl/kluis/internal/locale"
	"github.com/kluis-nl/kluis/internal/sender"
	"github.com/kluis-nl/kluis/internal/transfer"
)

// requestsPage is the requester's list and the form for a new request.
type requestsPage struct {
	Email    string
	Inbox    *sender.InboxState
	Requests []*transfer.FileRequest
	Now      time.Time
	Langs    []locale.Lang
	// The form as typed.
	Address, Mobile, Message, Expires, Lang string
	// SMS: a mobile number can be given (an SMS gateway is set).
	SMS bool
	// Created is how many requests were made at once (?created=).
	Created string
}

// requestPage is one request for its requester.
type requestPage struct {
	Email   string
	Request *transfer.FileRequest
	State   string
	Inbox   *sender.InboxState
}

func (h *Web) requestsSender(w http.ResponseWriter, r *http.Request, next string) (*sender.Sender, string) {
	s := h.verifiedSender(w, r, next)
	if s == nil {
		return nil, ""
	}
	c, _ := r.Cookie(senderSessionCookie)
	return s, c.Value
}

func (h *Web) renderRequests(w http.ResponseWriter, r *http.Request, status int, s *sender.Sender, token string, p *requestsPage, errs []fieldError) {
	st, err := h.senders.InboxState(r.Context(), token)
	if err != nil {
		h.errorPage(w, r, err)
		return
	}
	list, err := h.svc.FileRequests(r.Context(), s.Email)
	if err != nil {
		h.errorPage(w, r, err)
		return
	}
	p.Email, p.Inbox, p.Requests, p.Now, p.Langs, p.SMS = s.Email, st, list, h.svc.Now(), locale.All, h.svc.CanSMS()
	if p.Lang == "" {
		p.Lang = string(locale.Default)
	}
	v := h.newView(r, p)
	v.Here, v.Errors = "/requests", errs
	h.render(w, r, status, "requests", v)
}

func (h *Web) requests(w http.ResponseWriter, r *http.Request) {
	s, token := h.requestsSender(w, r, "/requests")
	if s == nil {
		return
	}
	h.renderRequests(w, r, http.StatusOK, s, token, &requestsPage{Created: r.URL.Query().Get("created")}, nil)
}

// requestFieldKeys are the form's texts for the engine's field errors.
var requestFieldKeys = map[string]map[string]string{
	transfer.FieldRequestAddress: {
		transfer.CodeNoRecipients: "request.error_address_empty", transfer.CodeAddressInvalid: "request.error_address_invalid",
		transfer.CodeTooManyRecipients: "request.error_address_one", transfer.CodeAddressNotAllowed: "request.error_address_refused",
		transfer.CodeAddressOutside: "request.error_address_refused",
	},
	transfer.FieldMessage: {transfer.CodeNothingToSend: "request.error_message_empty", transfer.CodeTooLong: "request.error_message_long"},
	transfer.FieldExpires: {transfer.CodeExpiryFormat: "request.error_expires_format", transfer.CodeExpiryPast: "request.error_expires_past",
		transfer.CodeExpiryTooLate: "request.error_expires_late"},
	transfer.FieldLang: {transfer.CodeLangUnsupported: "request.error_lang"},
	transfer.FieldRequestMobile: {transfer.CodePhoneCountry: "request.error_mobile_country", transfer.CodePhoneInvalid: "request.error_mobile_invalid",
		transfer.CodeMobileUnavailable: "request.error_mobile_unavailable", transfer.CodeMobileOneAddress: "request.error_mobile_one_address",
		transfer.CodeMobileNotAsked: "request.error_mobile_one_address"},
}

var requestFormField = map[string]string{
	transfer.FieldRequestAddress: "address", transfer.FieldMessage: "message", transfer.FieldExpires: "expires", transfer.FieldLang: "lang",
	transfer.FieldRequestMobile: "mobile",
}

func (h *Web) requestCreate(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	s, token := h.requestsSender(w, r, "/requests")
	if s == nil {
		return
	}
	p := &requestsPage{Address: r.PostFormValue("address"), Mobile: r.PostFormValue("mobile"), Message: strings.ReplaceAll(r.PostFormValue("message"), "\r\n", "\n"),
		Expires: r.PostFormValue("expires"), Lang: r.PostFormValue("lang")}
	st, err := h.senders.InboxState(r.Context(), token)
	if err != nil {
		h.errorPage(w, r, err)
		return
	}
	if !st.Exists {
		h.renderRequests(w, r, http.StatusConflict, s, token, p, []fieldError{{Field: "address", Key: "request.error_no_inbox"}})
		return
	}
	frs, _, err := h.svc.CreateFileRequests(senderCtx(r, s).Context(), transfer.FileRequestInput{
		Requester: s.Email, RequesterName: s.Name, Inbox: st.Recipient, Address: p.Address, Message: p.Message,
		// The form's one number is for the only address (the engine
		// refuses it for several).
		Mobiles:   map[string]string{"": p.Mobile},
		ExpiresOn: p.Expires, Lang: p.Lang, RequesterLang: string(h.pageLang(r, false)),
	})
	switch code := kluis.ErrorCode(err); {
	case err == nil && len(frs) == 1:
		h.seeOther(w, r, "/requests/"+url.PathEscape(frs[0].ID)+"?done=created")
	case err == nil:
		// One request per person: the list shows each one's state.
		h.seeOther(w, r, "/requests?created="+strconv.Itoa(len(frs)))
	case code == kluis.EINVALID:
		var errs []fieldError
		for _, f := range kluis.FieldErrors(err) {
			key := requestFieldKeys[f.Field][f.Code]
			if key == "" {
				key = "request.error_invalid"
			}
			field := requestFormField[f.Field]
			if field == "" {
				field = "message"
			}
			errs = append(errs, fieldError{Field: field, Key: key})
		}
		h.renderRequests(w, r, http.StatusUnprocessableEntity, s, token, p, errs)
	case code == kluis.ETOOMANYREQUESTS:
		setRetryAfter(w, err)
		h.renderRequests(w, r, http.StatusTooManyRequests, s, token, p, []fieldError{{Field: "address", Key: "request.error_too_many"}})
	default:
		h.errorPage(w, r, err)
	}
}

// ownRequest loads the request in the path for its signed-in requester.
func (h *Web) ownRequest(w http.ResponseWriter, r *http.Request) (*sender.Sender, string, *transfer.FileRequest, bool) {
	id := r.PathValue("id")
	s, token := h.requestsSender(w, r, "/requests/"+url.PathEscape(id))
	if s == nil {
		return nil, "", nil, false
	}
	fr, err := h.svc.FileRequestOf(r.Context(), s.Email, id)
	if err != nil {
		h.errorPage(w, r, err)
		return nil, "", nil, false
	}
	return s, token, fr, true
}

func (h *Web) request(w http.ResponseWriter, r *http.Request) {
	s, token, fr, ok := h.ownRequest(w, r)
	if !ok {
		return
	}
	st, err := h.senders.InboxState(r.Context(), token)
	if err != nil {
		h.errorPage(w, r, err)
		return
	}
	v := h.newView(r, requestPage{Email: s.Email, Request: fr, State: fr.State(h.svc.Now()), Inbox: st})
	v.Here = "/requests/" + url.PathEscape(fr.ID)
	w.Header().Set("Cache-Control", "no-store")
	h.render(w, r, http.StatusOK, "request", v)
}

func (h *Web) requestRevoke(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	s, _, fr, ok := h.ownRequest(w, r)
	if !ok {
		return
	}
	if err := h.svc.RevokeFileRequest(senderCtx(r, s).Context(), s.Email, fr.ID); err != nil && kluis.ErrorCode(err) != kluis.ECONFLICT {
		h.errorPage(w, r, err)
		return
	}
	h.seeOther(w, r, "/requests/"+url.PathEscape(fr.ID))
}

// requestOpen opens what was sent with the session's unlocked inbox and
// sets the download session's cookie; a locked inbox goes to /inbox.
func (h *Web) requestOpen(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	s, token, fr, ok := h.ownRequest(w, r)
	if !ok {
		return
	}
	id, err := h.senders.InboxIdentity(r.Context(), token)
	if kluis.ErrorCode(err) == kluis.ELOCKED {
		h.seeOther(w, r, "/inbox")
		return
	}
	if err != nil {
		h.errorPage(w, r, err)
		return
	}
	sess, err := h.svc.OpenFileRequest(senderCtx(r, s).Context(), s.Email, fr.ID, id)
	if err != nil {
		h.linkError(w, r, "", err)
		return
	}
	http.SetCookie(w, &http.Cookie{
		Name: sessionCookie, Value: sess.Token, Path: "/",
		Expires: sess.ExpiresAt, MaxAge: int(time.Until(sess.ExpiresAt).Seconds()),
		HttpOnly: true, Secure: h.secure, SameSite: http.SameSiteStrictMode,
	})
	h.seeOther(w, r, "/requests/"+url.PathEscape(fr.ID)+"/open")
}

// requestUnlocked runs next with the browser's download session of what
// was sent on the request, or sends the browser to the request's page.
func (h *Web) requestUnlocked(w http.ResponseWriter, r *http.Request, next func(s *transfer.Session, base string)) {
	s, _, fr, ok := h.ownRequest(w, r)
	if !ok {
		return
	}
	base := "/requests/" + url.PathEscape(fr.ID)
	l, err := h.svc.FileRequestLink(r.Context(), s.Email, fr.ID)
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

// filereqPage is the page of the person asked.
type filereqPage struct {
	Access  string
	Request *transfer.FileRequest
	// Who is the requester as the page names them.
	Who     string
	Message string
	Files   []string
	Sent    bool
	// AtDeadline: it was sent at the deadline, at SentAt, because the
	// person never pressed Done.
	AtDeadline bool
	SentAt     time.Time
}

// fileRequestFor loads the request of the link for the person asked, or
// answers with the page that says why it cannot be used.
func (h *Web) fileRequestFor(w http.ResponseWriter, r *http.Request) (*filereqPage, bool) {
	access := r.PathValue("access")
	fr, err := h.svc.FileRequestByLink(r.Context(), access)
	if err != nil {
		h.filereqGone(w, r, err)
		return nil, false
	}
	who := fr.RequesterName
	if who == "" {
		who = fr.Requester
	}
	p := &filereqPage{Access: access, Request: fr, Who: who, Sent: fr.DoneAt != nil, AtDeadline: fr.AtDeadline()}
	if fr.DoneAt != nil {
		p.SentAt = *fr.DoneAt
	}
	return p, true
}

// filereqGone is the page of a link that cannot be used (any more).
func (h *Web) filereqGone(w http.ResponseWriter, r *http.Request, err error) {
	switch kluis.ErrorCode(err) {
	case kluis.EEXPIRED, kluis.EREVOKED:
		var at time.Time
		if ke := (*kluis.Error)(nil); errors.As(err, &ke) && ke.At != nil {
			at = *ke.At
		}
		v := h.viewFor(r, map[string]any{"Expired": kluis.ErrorCode(err) == kluis.EEXPIRED, "At": at}, true)
		h.render(w, r, http.StatusGone, "filereq_gone", v)
	default:
		h.linkError(w, r, "", err)
	}
}

func (h *Web) fileRequestForm(w http.ResponseWriter, r *http.Request) {
	p, ok := h.fileRequestFor(w, r)
	if !ok {
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	h.render(w, r, http.StatusOK, "filereq", h.viewFor(r, p, true))
}

// fileRequestSend reads the form part by part: the message first, then
// each file streamed into the request's upload; then it sends.
func (h *Web) fileRequestSend(w http.ResponseWriter, r *http.Request) {
	p, ok := h.fileRequestFor(w, r)
	if !ok {
		return
	}
	if p.Sent {
		h.seeOther(w, r, "/q/"+p.Access)
		return
	}
	fail := func(status int, field, key string) {
		v := h.viewFor(r, p, true)
		v.Errors = []fieldError{{Field: field, Key: key}}
		w.Header().Set("Connection", "close")
		h.render(w, r, status, "filereq", v)
	}
	r.Body = http.MaxBytesReader(w, r.Body, p.Request.MaxSize+replyFraming)
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
		if up, err = h.svc.StartFileRequest(r.Context(), p.Access, p.Message); err != nil {
			up = nil
			h.filereqFailed(w, r, err, fail)
			return false
		}
		return true
	}
	if !h.readUploadForm(mr, &p.Message, fail, func(part *multipart.Part) bool {
		if !start() {
			return false
		}
		if _, err := h.svc.AddRequestFile(r.Context(), up, part.FileName(), part.Header.Get("Content-Type"), part); err != nil {
			h.filereqFailed(w, r, err, fail)
			return false
		}
		p.Files = append(p.Files, kluis.CleanFileName(part.FileName()))
		return true
	}) {
		return
	}
	if up == nil && strings.TrimSpace(p.Message) == "" {
		// Files sent before (by the script, or a broken try) count too.
		if p.Request.Files == 0 {
			fail(http.StatusUnprocessableEntity, "files", "filereq.error_empty")
			return
		}
	}
	if !start() {
		return
	}
	if err := h.svc.FinishFileRequest(r.Context(), p.Access); err != nil {
		h.filereqFailed(w, r, err, fail)
		return
	}
	h.seeOther(w, r, "/q/"+p.Access)
}

// filereqFailed answers an engine error while sending on a request.
func (h *Web) filereqFailed(w http.ResponseWriter, r *http.Request, err error, fail func(status int, field, key string)) {
	var mbe *http.MaxBytesError
	switch code := kluis.ErrorCode(err); {
	case errors.As(err, &mbe), code == kluis.ETOOLARGE:
		fail(http.StatusRequestEntityTooLarge, "files", "filereq.error_too_large")
	case code == kluis.EINVALID:
		for _, f := range kluis.FieldErrors(err) {
			if f.Code == transfer.CodeTooManyFiles {
				fail(http.StatusUnprocessableEntity, "files", "filereq.error_too_many")
				return
			}
			if f.Field == transfer.FieldMessage {
				fail(http.StatusUnprocessableEntity, "message", "filereq.error_message_long")
				return
			}
		}
		fail(http.StatusUnprocessableEntity, "files", "filereq.error_empty")
	case code == kluis.EINFECTED, code == kluis.EUNSCANNABLE:
		fail(formStatus(err), "files", "filereq.error_infected")
	case code == kluis.EEXPIRED, code == kluis.EREVOKED, code == kluis.ENOTFOUND:
		h.filereqGone(w, r, err)
	default:
		h.log.Error("web: file request send", "err", err)
		fail(http.StatusServiceUnavailable, "files", "filereq.error_generic")
	}
}

// fileRequestStart is the page script's first step: it puts the message
// into the request's upload and answers with what tus needs (the upload
// token and URL). Errors answer JSON with the page's own text.
func (h *Web) fileRequestStart(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, int64(transfer.MaxMessageLength)+1<<16)
	lang := h.pageLang(r, true)
	up, err := h.svc.StartFileRequest(r.Context(), r.PathValue("access"), strings.ReplaceAll(r.PostFormValue("message"), "\r\n", "\n"))
	if err != nil {
		h.filereqJSONError(w, lang, err)
		return
	}
	writeJSONResponse(w, http.StatusOK, map[string]any{"id": up.Owner.TransferID, "token": up.Token, "url": "/api/v1/uploads/",
		"files_left": up.FilesLeft, "left": up.Left})
}

// fileRequestDone is the page script's last step: send what was uploaded.
func (h *Web) fileRequestDone(w http.ResponseWriter, r *http.Request) {
	lang := h.pageLang(r, true)
	if err := h.svc.FinishFileRequest(r.Context(), r.PathValue("access")); err != nil {
		h.filereqJSONError(w, lang, err)
		return
	}
	writeJSONResponse(w, http.StatusOK, map[string]any{"sent": true})
}

func (h *Web) filereqJSONError(w http.ResponseWriter, lang locale.Lang, err error) {
	key := uploadErrorKey(err)
	if key == "filereq.error_generic" {
		h.log.Error("web: file request", "err", err)
	}
	writeJSONResponse(w, statusOf(err), map[string]any{"error": map[string]string{"code": string(kluis.ErrorCode(err)), "message": locale.For(lang).T(key)}})
}

// ownOpener runs next with the staff member's open session of something
// that arrived for them (a file request's result, a drop-off), and base,
// its page; or answers itself (not theirs, inbox locked).
type ownOpener func(w http.ResponseWriter, r *http.Request, next func(s *transfer.Session, base string))

// ownContents shows what arrived: the message and the files.
func (h *Web) ownContents(open ownOpener) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		open(w, r, func(s *transfer.Session, base string) {
			c, err := h.svc.Contents(r.Context(), s)
			if err != nil {
				h.linkError(w, r, "", err)
				return
			}
			t := c.Transfer
			p := openPage{Base: base, Own: true, Back: base, SenderEmail: t.SenderEmail, SenderName: t.SenderName,
				Message: c.Message, Files: c.Files, ExpiresAt: t.ExpiresAt}
			h.render(w, r, http.StatusOK, "open", h.newView(r, p))
		})
	}
}

// ownFile downloads one file of what arrived.
func (h *Web) ownFile(open ownOpener) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		open(w, r, func(s *transfer.Session, base string) {
			if err := download.ServeFile(w, r, h.svc, s, r.PathValue("fid"), h.log); err != nil {
				if kluis.ErrorCode(err) == kluis.ENOTFOUND {
					h.problem(w, r, http.StatusNotFound, "problem.file", base+"/open")
					return
				}
				h.linkError(w, r, "", err)
			}
		})
	}
}

// ownZip downloads all files of what arrived as one ZIP.
func (h *Web) ownZip(open ownOpener) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		open(w, r, func(s *transfer.Session, _ string) {
			if err := download.ServeZip(w, r, h.svc, s, h.log); err != nil {
				h.linkError(w, r, "", err)
			}
		})
	}
}

// readUploadForm reads a plain (no script) upload form's parts in order:
// the message into *message, and each chosen file to file, which streams
// it into the upload. It answers a broken or too large body itself with
// fail; it returns false when it or file answered.
func (h *Web) readUploadForm(mr *multipart.Reader, message *string, fail func(status int, field, key string), file func(*multipart.Part) bool) bool {
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			return true
		}
		if err != nil {
			if mbe := (*http.MaxBytesError)(nil); errors.As(err, &mbe) {
				fail(http.StatusRequestEntityTooLarge, "files", "filereq.error_too_large")
				return false
			}
			fail(http.StatusUnprocessableEntity, "files", "filereq.error_broken")
			return false
		}
		switch part.FormName() {
		case "message":
			b, err := io.ReadAll(io.LimitReader(part, transfer.MaxMessageLength+1))
			if err != nil {
				fail(http.StatusUnprocessableEntity, "files", "filereq.error_broken")
				return false
			}
			if len(b) > transfer.MaxMessageLength {
				fail(http.StatusUnprocessableEntity, "message", "filereq.error_message_long")
				return false
			}
			*message = strings.ReplaceAll(string(b), "\r\n", "\n")
		case "files":
			if part.FileName() != "" && !file(part) {
				return false
			}
		}
		part.Close()
	}
}

// UploadMaxFiles and UploadMaxSize are the limits the upload form states
// (partials/upload.html).
func (p filereqPage) UploadMaxFiles() int { return p.Request.MaxFiles }

// UploadMaxSize: see UploadMaxFiles.
func (p filereqPage) UploadMaxSize() int64 { return p.Request.MaxSize }
