package web

// The review step of the send flow: before anything is created, the
// sender sees per recipient what they will get, the files, the options and
// the mail, and only the review's own button starts the transfer. Enter in
// a field of the compose form submits it to this step, never to the start.
//
// The compose form posts here as a plain form without JavaScript (the
// review is then a page of its own, with Back posting the values to the
// compose form again), or as JSON from the page's script (the answer holds
// the same review as an HTML fragment). Both run transfer.Service.Validate,
// the one validation path, and show its field errors at their fields.

import (
	"bytes"
	"encoding/json"
	"errors"
	"html/template"
	"mime"
	"net/http"
	"strings"

	"github.com/kluis-nl/kluis"
	"github.com/kluis-nl/kluis/internal/locale"
	"github.com/kluis-nl/kluis/internal/sender"
	"github.com/kluis-nl/kluis/internal/sms"
	"github.com/kluis-nl/kluis/internal/transfer"
)

// How the sender chose to protect the recipients' addresses from each
// other when more than one external address is in To and Cc.
const (
	privacyKeep     = "keep"     // as typed: every To/Cc address is shown to every recipient
	privacyBcc      = "bcc"      // every address as Bcc: nobody sees another address
	privacySeparate = "separate" // one transfer per recipient, each with its own password or link
)

// reviewRecipient is one row of the review: what this recipient gets.
type reviewRecipient struct {
	Address string
	Kind    string // to, cc, bcc
	// SeesOthers is true when the other To/Cc addresses are shown to this
	// recipient (in the mail and on the page).
	SeesOthers bool
	// Login is the provider's label and the masked value of a recipient
	// who logs in after the password; "" for none.
	Login, LoginValue string
	// Phone is the masked mobile number of a recipient who gets a code
	// by SMS after the password; "" for none. PasswordOnly marks a
	// recipient with the password only: the lower level.
	Phone        string
	PasswordOnly bool
}

// reviewFile is a planned file as the review lists it.
type reviewFile struct {
	Name string
	Size int64 // -1 when unknown (a form posted without JavaScript)
}

// reviewPage is the data of the review (page and fragment).
type reviewPage struct {
	Sender     *sender.Sender
	Recipients []reviewRecipient
	// External are the To/Cc addresses outside the organisation domains
	// (all of them when none are configured), listed when there are two or
	// more: then the sender chooses Privacy.
	External []string
	Privacy  string
	// Separate lists the addresses that each get their own transfer.
	Separate    []string
	Lang        locale.Lang
	Mode        string
	Files       []reviewFile
	Message     string
	ExpiresText string
	Confirm     bool
	Notify      bool
	// NotifyMode is the download-notice mode as Validate settled it
	// ("first", "each", "summary"; "none" when Notify is false).
	NotifyMode string
	Filenames  bool
	// Special: the sender marked special personal data.
	Special   bool
	Subject   string        // as the mail will have it: the sender's or the default
	Reference string        // the sender's own, shown only to them
	Body      template.HTML // sanitized by Validate as the mail will show it
	// Form is what the no-JavaScript page posts back for Back.
	Form composeForm
	// NoScript is true for the review page of a plain form post.
	NoScript bool
}

// composeForm holds the compose form's values (no files: they are chosen
// again with JavaScript, or listed by name).
type composeForm struct {
	To, Cc, Bcc, Message, Subject, Body, Expires, Lang, PasswordMode string
	Reference                                                        string
	Confirm, NotifyDownload, ShowFilenames                           bool
	Notify                                                           string // the mode
	Privacy                                                          string
	FileNames                                                        []string
	RecipientLogin, RecipientPhone                                   string
	SpecialData                                                      bool
	// password is checked but never shown again: not in the page's data,
	// not in the review's hidden fields (Back asks for it anew).
	password string
}

// review answers the compose form's Next: the review, or the compose form
// again with the field errors.
func (h *Web) review(w http.ResponseWriter, r *http.Request) {
	lang := h.pageLang(r, false)
	pr := locale.For(lang)
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	script := ct == "application/json"
	s := h.sender(r)
	if s == nil {
		if script {
			writeJSONResponse(w, http.StatusUnauthorized, map[string]any{"errors": []composeError{{Message: pr.T("send.error_session")}}})
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		http.Redirect(w, r, "/send", http.StatusSeeOther)
		return
	}
	var req composeRequest
	var form composeForm
	if script {
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxComposeBytes))
		if err := dec.Decode(&req); err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				writeJSONResponse(w, http.StatusRequestEntityTooLarge, map[string]any{"errors": []composeError{{Field: "message", Message: pr.T("send.error_message_long")}}})
				return
			}
			writeJSONResponse(w, http.StatusBadRequest, map[string]any{"errors": []composeError{{Message: pr.T("send.error_generic")}}})
			return
		}
	} else {
		r.Body = http.MaxBytesReader(w, r.Body, maxComposeBytes)
		if err := r.ParseForm(); err != nil {
			http.Error(w, "bad form", http.StatusBadRequest)
			return
		}
		form = formValues(r)
		req = form.request()
		if r.PostForm.Get("step") == "edit" {
			h.renderCompose(w, r, s, http.StatusOK, &form, nil)
			return
		}
	}
	rp, errs, err := h.checkReview(s, &req, pr)
	if err != nil {
		setRetryAfter(w, err)
		if script {
			writeJSONResponse(w, statusOf(err), map[string]any{"errors": []composeError{{Message: pr.T("send.error_busy")}}})
			return
		}
		h.errorPage(w, r, err)
		return
	}
	if len(errs) > 0 {
		if script {
			writeJSONResponse(w, http.StatusUnprocessableEntity, map[string]any{"errors": errs})
			return
		}
		h.renderCompose(w, r, s, http.StatusUnprocessableEntity, &form, errs)
		return
	}
	v := h.newView(r, rp)
	v.Here = "/send"
	if script {
		pt, ok := h.tmpl[v.Lang]["send_review"]
		var buf bytes.Buffer
		if !ok {
			writeJSONResponse(w, http.StatusInternalServerError, map[string]any{"errors": []composeError{{Message: pr.T("send.error_generic")}}})
			return
		}
		if err := pt.t.ExecuteTemplate(&buf, "review", v); err != nil {
			h.log.Error("web: render review", "err", err)
			writeJSONResponse(w, http.StatusInternalServerError, map[string]any{"errors": []composeError{{Message: pr.T("send.error_generic")}}})
			return
		}
		writeJSONResponse(w, http.StatusOK, map[string]any{"html": buf.String(), "separate": rp.Separate, "choose": len(rp.External) > 1})
		return
	}
	rp.Form, rp.NoScript = form, true
	for i := range rp.Files {
		rp.Files[i].Size = -1 // a plain form sends names only
	}
	h.render(w, r, http.StatusOK, "send_review", v)
}

// checkReview validates req through transfer.Service.Validate and builds
// the review. errs are the field errors in the page's language; err is an
// error that is not about the input (the store or the policy failed).
func (h *Web) checkReview(s *sender.Sender, req *composeRequest, pr *locale.Printer) (*reviewPage, []composeError, error) {
	cr := composeCreateRequest(s, req)
	ck, err := h.svc.Validate(cr)
	if err != nil {
		fs := kluis.FieldErrors(err)
		if len(fs) == 0 {
			return nil, nil, err
		}
		es := make([]composeError, len(fs))
		for i, f := range fs {
			es[i] = composeError{Field: composeField(f, req.PasswordMode, h.svc.CanSMS()), Message: f.Text(pr)}
		}
		return nil, es, nil
	}
	rp := &reviewPage{Sender: s, Lang: locale.Lang(ck.Lang), Mode: string(ck.Mode), Message: req.Message,
		ExpiresText: pr.Date(ck.ExpiresAt), Confirm: req.Confirm, Notify: req.NotifyDownload, NotifyMode: string(ck.Notify), Filenames: req.ShowFilenames,
		Subject: ck.Subject, Reference: ck.Reference, Body: template.HTML(ck.Body), Privacy: req.Privacy, Special: req.SpecialData} // #nosec G203: Body is mail.SanitizeBody's output
	if rp.Subject == "" {
		rp.Subject = h.defaultSubject(s, locale.Lang(ck.Lang))
	}
	for _, f := range req.Files {
		rp.Files = append(rp.Files, reviewFile{Name: f.Name, Size: f.Size})
	}
	visible := 0
	pol := h.svc.Policy()
	for _, a := range ck.Recipients {
		if a.Kind != kluis.KindBcc {
			visible++
			if !pol.Inside(a.Address) {
				rp.External = append(rp.External, a.Address)
			}
		}
	}
	if len(rp.External) < 2 {
		rp.External = nil
	}
	for _, a := range ck.Recipients {
		rr := reviewRecipient{Address: a.Address, Kind: string(a.Kind), SeesOthers: a.Kind != kluis.KindBcc && visible > 1}
		switch a.Auth {
		case kluis.AuthPasswordLogin:
			if lp, ok := pol.LoginProvider(a.LoginProvider); ok && a.LoginProvider != "" {
				rr.Login, rr.LoginValue = lp.Label, transfer.MaskLoginValue(a.LoginValue)
			}
		case kluis.AuthPasswordSMS:
			rr.Phone = sms.Mask(a.Phone)
		case kluis.AuthPassword:
			rr.PasswordOnly = ck.Mode != kluis.PasswordNone
		}
		if req.Privacy == privacySeparate {
			rr.SeesOthers = false
			rp.Separate = append(rp.Separate, a.Address)
		}
		rp.Recipients = append(rp.Recipients, rr)
	}
	// One transfer per recipient: each is its own request, which the
	// policy decides on its own (its limits may differ from the group's).
	for _, a := range rp.Separate {
		one := *req
		one.To, one.Cc, one.Bcc, one.Privacy = a, "", "", ""
		one.RecipientLogin, one.RecipientPhone = authLinesFor(req.RecipientLogin, a), authLinesFor(req.RecipientPhone, a)
		if _, err := h.svc.Validate(composeCreateRequest(s, &one)); err != nil {
			fs := kluis.FieldErrors(err)
			if len(fs) == 0 {
				return nil, nil, err
			}
			var es []composeError
			for _, f := range fs {
				es = append(es, composeError{Message: a + ": " + f.Text(pr)})
			}
			return nil, es, nil
		}
	}
	return rp, nil, nil
}

// formValues reads the compose form as a browser posts it without
// JavaScript.
func formValues(r *http.Request) composeForm {
	f := r.PostForm
	on := func(k string) bool { return f.Get(k) != "" }
	cf := composeForm{To: f.Get("to"), Cc: f.Get("cc"), Bcc: f.Get("bcc"), Message: f.Get("message"),
		Subject: f.Get("subject"), Reference: f.Get("reference"), Body: f.Get("body"), Expires: f.Get("expires"), Lang: f.Get("lang"),
		PasswordMode: f.Get("password_mode"), Confirm: on("confirm"), NotifyDownload: on("notify_download"), Notify: f.Get("notify"),
		ShowFilenames: on("show_filenames"), Privacy: f.Get("privacy"), password: f.Get("password"),
		RecipientLogin: f.Get("recipient_login"), RecipientPhone: f.Get("recipient_phone"), SpecialData: on("special_data")}
	for _, n := range f["files"] {
		if n = strings.TrimSpace(n); n != "" {
			cf.FileNames = append(cf.FileNames, n)
		}
	}
	return cf
}

// request is the form as the script would post it. A plain form carries
// no file sizes: the files count as planned with an unknown size, which
// the upload (with JavaScript) checks.
func (cf composeForm) request() composeRequest {
	req := composeRequest{To: cf.To, Cc: cf.Cc, Bcc: cf.Bcc, Message: cf.Message, Subject: cf.Subject, Reference: cf.Reference,
		Body: plainBody(cf.Body), Expires: cf.Expires, Lang: cf.Lang, Confirm: cf.Confirm, NotifyDownload: cf.NotifyDownload, Notify: cf.Notify,
		ShowFilenames: cf.ShowFilenames, PasswordMode: cf.PasswordMode, Password: cf.password, Privacy: cf.Privacy,
		RecipientLogin: cf.RecipientLogin, RecipientPhone: cf.RecipientPhone, SpecialData: cf.SpecialData}
	for _, n := range cf.FileNames {
		req.Files = append(req.Files, struct {
			Name string
			Size int64
		}{n, 0})
	}
	return req
}

// plainBody turns the mail text of the form without JavaScript (a plain
// text area) into the editor's markup: escaped, paragraphs per blank line.
func plainBody(s string) string {
	s = strings.TrimSpace(strings.ReplaceAll(s, "\r\n", "\n"))
	if s == "" {
		return ""
	}
	var b strings.Builder
	for _, p := range strings.Split(s, "\n\n") {
		if p = strings.TrimSpace(p); p != "" {
			b.WriteString("<p>" + strings.ReplaceAll(template.HTMLEscapeString(p), "\n", "<br>") + "</p>")
		}
	}
	return b.String()
}

// renderCompose shows the compose form with the values of f and the field
// errors errs (a form posted without JavaScript).
func (h *Web) renderCompose(w http.ResponseWriter, r *http.Request, s *sender.Sender, status int, f *composeForm, errs []composeError) {
	p := h.composeData(r, s)
	p.F = f
	p.Errs = map[string]string{}
	for _, e := range errs {
		if e.Field != "" {
			if p.Errs[e.Field] != "" {
				p.Errs[e.Field] += " "
			}
			p.Errs[e.Field] += e.Message
		}
	}
	p.ErrList = errs
	v := h.newView(r, p)
	v.Here = "/send"
	h.render(w, r, status, "send", v)
}
