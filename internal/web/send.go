package web

// The send flow for people: sender details and e-mail verification (plain
// forms that work without JavaScript), then one compose page whose script
// validates through POST /send/transfer, uploads the files over tus to the
// API's /api/v1/uploads/ with the transfer's upload token, finishes the
// transfer and shows the summary. The server is the authority on every
// check; the page only repeats them for quick feedback.

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/kluis-nl/kluis"
	"github.com/kluis-nl/kluis/internal/locale"
	"github.com/kluis-nl/kluis/internal/mail"
	kpolicy "github.com/kluis-nl/kluis/internal/policy"
	"github.com/kluis-nl/kluis/internal/sender"
	"github.com/kluis-nl/kluis/internal/transfer"
)

// maxComposeBytes bounds the JSON of the compose form: the message and
// the mail text at their maximum, with room for escaping.
const maxComposeBytes = 1 << 20

// nextPath returns the local path to go to after verification: next if it
// is a path on this site, else /send.
func nextPath(next string) string {
	if next == "" {
		return "/send"
	}
	p := localPath(next)
	if p == "/" && next != "/" {
		return "/send"
	}
	// Keep a query (/send?x) only when it is harmless: drop it.
	return p
}

// detailsPage is the data of the sender-details and code pages.
type detailsPage struct {
	Name, Email, Phone, Next string
	// CodeDigits is the length of the verification code.
	CodeDigits int
	// Resent is true after a new code was asked for.
	Resent bool
	// Minutes a code is valid.
	Minutes int
}

// composePage is the data of the compose page.
type composePage struct {
	// Logins are the labels of the policy's login providers by name; the
	// login field is shown only when there are any.
	Logins map[string]string
	// SMS is true when the server can send SMS codes: the form then asks
	// for mobile numbers. SpecialDefault ticks "special personal data"
	// on a new form (the policy's recipient_auth.special_default for a
	// recipient outside the organisation).
	SMS, SpecialDefault bool
	Sender              *sender.Sender
	Limits              kpolicy.Limits
	MaxSizeText         string
	DefaultExpiry       string // YYYY-MM-DD
	MinExpiry           string
	MaxExpiry           string
	DefaultDate         string // the default expiry in words
	MaxDays             int
	Modes               map[string]bool
	DefaultMode         string
	// RecipientLang is the recipients' language chosen at first: the
	// page's; RecipientLangs are all the sender can choose from.
	RecipientLang  locale.Lang
	RecipientLangs []locale.Lang
	Decimal        string                 // the decimal separator of the page's language, for the script's sizes
	I18n           map[string]string      // texts the script needs, in the page's language, unformatted
	DefaultSubj    map[locale.Lang]string // the default subject per recipients' language
	// F holds the values of a form posted back without JavaScript (Back
	// from the review, or field errors); nil for a new form.
	F *composeForm
	// Errs are the field errors of such a post by field id, ErrList the
	// same in order for the error summary.
	Errs    map[string]string
	ErrList []composeError
	// Scans: the files are checked for viruses at finish, and the page
	// says so while it waits.
	Scans bool
}

// send is the start of the flow: the details form, or for a verified
// sender the compose page (verification is skipped while it lasts).
func (h *Web) send(w http.ResponseWriter, r *http.Request) {
	next := nextPath(r.URL.Query().Get("next"))
	s := h.sender(r)
	if s == nil {
		v := h.newView(r, detailsPage{Next: next})
		h.render(w, r, http.StatusOK, "send_details", v)
		return
	}
	if next != "/send" {
		w.Header().Set("Cache-Control", "no-store")
		http.Redirect(w, r, next, http.StatusSeeOther)
		return
	}
	h.render(w, r, http.StatusOK, "send", h.newView(r, h.composeData(r, s)))
}

// expiryLoc is where a chosen date's day ends: the engine's (ExpiresOn).
var expiryLoc = locale.Amsterdam

func (h *Web) composeData(r *http.Request, s *sender.Sender) composePage {
	lang := h.pageLang(r, false)
	pr := locale.For(lang)
	lim := h.svc.DefaultLimits()
	now := h.svc.Now().In(expiryLoc)
	p := composePage{
		Sender: s, Limits: lim, MaxSizeText: pr.Size(lim.MaxTransferSize),
		DefaultExpiry:  now.Add(lim.DefaultExpiry).Format(time.DateOnly),
		MinExpiry:      now.Format(time.DateOnly),
		MaxExpiry:      now.Add(lim.MaxExpiry).Format(time.DateOnly),
		DefaultDate:    pr.Date(now.Add(lim.DefaultExpiry)),
		MaxDays:        int(lim.MaxExpiry.Hours() / 24),
		Modes:          map[string]bool{},
		RecipientLang:  lang,
		RecipientLangs: locale.All,
		Decimal:        pr.T("format.decimal"),
		DefaultSubj:    map[locale.Lang]string{},
		Scans:          h.svc.ScansSent(),
	}
	for _, m := range lim.PasswordModes {
		p.Modes[string(m)] = true
	}
	for _, lp := range h.svc.Policy().LoginProviders() {
		if p.Logins == nil {
			p.Logins = map[string]string{}
		}
		p.Logins[lp.Name] = lp.Label
	}
	p.SMS = h.svc.CanSMS()
	p.SpecialDefault = h.svc.Policy().RecipientAuth(s.Email, "").SpecialDefault
	for _, m := range []kluis.PasswordMode{kluis.PasswordGenerate, kluis.PasswordManual, kluis.PasswordNone} {
		if p.Modes[string(m)] {
			p.DefaultMode = string(m)
			break
		}
	}
	for _, l := range locale.All {
		if subj := h.defaultSubject(s, l); subj != "" {
			p.DefaultSubj[l] = subj
		}
	}
	p.I18n = map[string]string{}
	for _, k := range scriptKeys {
		p.I18n[k] = pr.Format("sendjs." + k)
	}
	return p
}

// defaultSubject is the notification's subject in lang when the sender
// leaves it empty.
func (h *Web) defaultSubject(s *sender.Sender, l locale.Lang) string {
	name := s.Name
	if name == "" {
		name = s.Email
	}
	m, err := mail.Render(mail.KindNotify, string(l), mail.Org{Name: h.org.Name}, "preview@example.nl",
		mail.Notify{SenderName: name, Link: "https://example.nl/r/x", ExpiresAt: h.svc.Now(), HasMessage: true})
	if err != nil {
		return ""
	}
	return m.Subject
}

// scriptKeys are the catalog keys "sendjs.*" the compose script uses.
var scriptKeys = []string{
	"remove", "remove_label", "total_one", "total_other", "file_waiting", "total_waiting", "over_limit", "no_files", "bytes", "kb", "mb", "gb",
	"strength_0", "strength_1", "strength_2", "strength_3", "strength_4", "strength_label",
	"uploading", "speed", "left", "done", "file_progress", "total_progress", "resumed", "retrying",
	"error_network", "error_upload", "error_finish", "error_session", "error_generic",
	"error_infected", "error_unscannable", "error_scan_pending", "error_infected_file", "error_unscannable_file",
	"checking", "file_checking", "summary_heading_checking", "summary_checking", "summary_heading_failed", "summary_failed", "summary_checked",
	"cancel_confirm", "cancelled", "copied", "copy_failed", "resume_notice", "resume_choose", "resume_mismatch",
	"kind_to", "kind_cc", "kind_bcc", "pw_generate", "pw_manual", "pw_none", "yes", "no",
	"seconds", "minutes", "hours", "preview_subject", "error_files_needed",
	"summary_heading_done", "format_on", "format_off", "pw_generate_shown", "error_prefix",
	"privacy_choose", "summary_transfer", "transfer_of",
}

// verifyStart checks the sender details, mails a code and shows the code
// form. Asking again from the code form resends (after a short cooldown).
func (h *Web) verifyStart(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
		return
	}
	f := r.PostForm
	d := detailsPage{Name: strings.TrimSpace(f.Get("name")), Email: strings.TrimSpace(f.Get("email")),
		Phone: strings.TrimSpace(f.Get("phone")), Next: nextPath(f.Get("next"))}
	resend := f.Get("resend") != ""
	v := h.newView(r, d)
	v.Here = "/send"
	v.Errors = checkDetails(d)
	if len(v.Errors) > 0 {
		h.render(w, r, http.StatusUnprocessableEntity, "send_details", v)
		return
	}
	if h.senders == nil {
		h.problem(w, r, http.StatusServiceUnavailable, "problem.busy", "")
		return
	}
	pre := ""
	if c, err := r.Cookie(verifyCookie); err == nil {
		pre = c.Value
	}
	tok, err := h.senders.Start(r.Context(), pre, d.Email, d.Name, d.Phone, string(v.Lang))
	if err != nil {
		switch kluis.ErrorCode(err) {
		case kluis.EINVALID:
			v.Errors = []fieldError{{Field: "email", Key: "send.error_email"}}
			h.render(w, r, formStatus(err), "send_details", v)
		case kluis.EPOLICY:
			if !errors.Is(err, sender.ErrSSORequired) {
				h.sendProblem(w, r, err)
				return
			}
			// Staff sign in with the organisation account: the form
			// again, saying so, with the sign-in button above it.
			v.Errors = []fieldError{{Field: "email", Key: "send.error_sso_required"}}
			h.render(w, r, formStatus(err), "send_details", v)
		case kluis.ETOOMANYREQUESTS:
			if errors.Is(err, sender.ErrCodeLimit) {
				// Too many codes for this address (or from this
				// browser): the details form, saying to wait.
				setRetryAfter(w, err)
				v.Errors = []fieldError{{Field: "email", Key: "send.error_code_limit"}}
				h.render(w, r, formStatus(err), "send_details", v)
				return
			}
			if !errors.Is(err, sender.ErrCooldown) {
				h.sendProblem(w, r, err)
				return
			}
			setRetryAfter(w, err)
			if pending := h.senders.PendingAddress(r.Context(), pre); pending != "" && !strings.EqualFold(pending, d.Email) {
				// The cooldown holds for another address too: the
				// details form again, with the address as it was typed.
				v.Errors = []fieldError{{Field: "email", Key: "send.error_change_wait"}}
				h.render(w, r, formStatus(err), "send_details", v)
				return
			}
			// A code went to this address from this browser a moment ago
			// (the cooldown): that code still works.
			d.CodeDigits, d.Minutes = sender.CodeDigits, int(h.senders.Config().CodeTTL.Minutes())
			v.D = d
			v.Errors = []fieldError{{Field: "code", Key: "send.error_resend_wait"}}
			h.render(w, r, formStatus(err), "send_code", v)
		default:
			h.sendProblem(w, r, err)
		}
		return
	}
	ttl := h.senders.Config().CodeTTL
	http.SetCookie(w, &http.Cookie{Name: verifyCookie, Value: tok, Path: "/", MaxAge: int(ttl.Seconds()), Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode})
	d.CodeDigits, d.Minutes, d.Resent = sender.CodeDigits, int(ttl.Minutes()), resend
	v.D = d
	h.render(w, r, http.StatusOK, "send_code", v)
}

// sendProblem answers an unexpected error of the verification with a page.
func (h *Web) sendProblem(w http.ResponseWriter, r *http.Request, err error) {
	h.errorPage(w, r, err)
}

// checkDetails validates the sender-details form.
func checkDetails(d detailsPage) []fieldError {
	var errs []fieldError
	switch {
	case d.Name == "":
		errs = append(errs, fieldError{Field: "name", Key: "send.error_name_empty"})
	case len(d.Name) > transfer.MaxNameLength || !utf8.ValidString(d.Name):
		errs = append(errs, fieldError{Field: "name", Key: "send.error_name_long"})
	}
	if d.Email == "" {
		errs = append(errs, fieldError{Field: "email", Key: "send.error_email_empty"})
	} else if _, err := kluis.ParseAddress(d.Email); err != nil {
		errs = append(errs, fieldError{Field: "email", Key: "send.error_email"})
	}
	if len(d.Phone) > transfer.MaxPhoneLength || !utf8.ValidString(d.Phone) || strings.ContainsFunc(d.Phone, func(r rune) bool {
		return !(r == ' ' || r == '+' || r == '-' || r == '(' || r == ')' || r == '.' || r == '/' || ('0' <= r && r <= '9'))
	}) {
		errs = append(errs, fieldError{Field: "phone", Key: "send.error_phone"})
	}
	return errs
}

// verifyConfirm checks the code, opens the sender session (the same
// cookie the API sets) and goes on to next.
func (h *Web) verifyConfirm(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
		return
	}
	f := r.PostForm
	d := detailsPage{Name: strings.TrimSpace(f.Get("name")), Email: strings.TrimSpace(f.Get("email")),
		Phone: strings.TrimSpace(f.Get("phone")), Next: nextPath(f.Get("next")), CodeDigits: sender.CodeDigits}
	v := h.newView(r, d)
	v.Here = "/send"
	if h.senders == nil {
		h.problem(w, r, http.StatusServiceUnavailable, "problem.busy", "")
		return
	}
	d.Minutes = int(h.senders.Config().CodeTTL.Minutes())
	v.D = d
	code := strings.Map(func(r rune) rune {
		if r == ' ' || r == '-' {
			return -1
		}
		return r
	}, f.Get("code"))
	fail := func(status int, key string) {
		v.Errors = []fieldError{{Field: "code", Key: key}}
		h.render(w, r, status, "send_code", v)
	}
	if code == "" {
		fail(http.StatusUnprocessableEntity, "send.error_code_empty")
		return
	}
	pre := ""
	if c, err := r.Cookie(verifyCookie); err == nil {
		pre = c.Value
	}
	s, err := h.senders.Confirm(r.Context(), pre, code, "browser")
	if err != nil {
		switch kluis.ErrorCode(err) {
		case kluis.EINVALID:
			fail(formStatus(err), "send.error_code_format")
		case kluis.EWRONGSECRET:
			fail(formStatus(err), "send.error_code_wrong")
		case kluis.EEXPIRED:
			fail(formStatus(err), "send.error_code_expired")
		case kluis.ELOCKED:
			fail(formStatus(err), "send.error_code_locked")
		case kluis.EUNAUTHORIZED:
			fail(formStatus(err), "send.error_code_none")
		case kluis.ETOOMANYREQUESTS:
			setRetryAfter(w, err)
			fail(formStatus(err), "send.error_too_many")
		default:
			h.sendProblem(w, r, err)
		}
		return
	}
	http.SetCookie(w, &http.Cookie{Name: verifyCookie, Value: "", Path: "/", MaxAge: -1, Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode})
	http.SetCookie(w, &http.Cookie{Name: senderSessionCookie, Value: s.Token, Path: "/", MaxAge: int(time.Until(s.ExpiresAt).Seconds()), Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode})
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, d.Next, http.StatusSeeOther)
}

// composeRequest is what the compose page's script posts.
type composeRequest struct {
	To, Cc, Bcc    string
	Message        string
	Subject        string
	Reference      string
	Body           string
	Expires        string // YYYY-MM-DD
	Lang           string
	Confirm        bool
	NotifyDownload bool   `json:"notify_download"`
	Notify         string // the mode, read only with NotifyDownload
	// Privacy is the sender's choice for visible addresses: privacyBcc
	// sends every To and Cc address as Bcc. One transfer per recipient
	// (privacySeparate) is one request per address, made by the script.
	Privacy       string
	ShowFilenames bool   `json:"show_filenames"`
	PasswordMode  string `json:"password_mode"`
	Password      string
	Files         []struct {
		Name string
		Size int64
	}
	// RecipientLogin holds one "ADDRESS=PROVIDER[:VALUE]" per line: a
	// login after the password for that recipient (as kluis send
	// --recipient-login).
	RecipientLogin string `json:"recipient_login"`
	// RecipientPhone holds one "ADDRESS NUMBER" (or "ADDRESS=NUMBER")
	// per line: a code by SMS after the password for that recipient (as
	// kluis send --recipient-phone).
	RecipientPhone string `json:"recipient_phone"`
	// SpecialData marks the transfer as containing special personal data
	// (health, religion, …): the policy's special_minimum applies.
	SpecialData bool `json:"special_data"`
}

// composeError is one entry of the script's error summary: the field's id
// and the message in the page's language.
type composeError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

type composeResponse struct {
	ID          string `json:"id"`
	UploadToken string `json:"upload_token"`
	UploadURL   string `json:"upload_url"`
	MaxSize     int64  `json:"max_size"`
	Password    string `json:"password,omitempty"`
	LinkSecret  string `json:"link_secret,omitempty"`
	ExpiresText string `json:"expires_text"`
	// SentText is when the sender sent it (the transfer's creation), for
	// the summary and its print view.
	SentText   string `json:"sent_text"`
	Recipients []struct {
		Address string `json:"address"`
		Kind    string `json:"kind"`
	} `json:"recipients"`
}

func writeJSONResponse(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(true)
	_ = enc.Encode(v)
}

// createTransfer validates the compose form and creates the draft. The
// answer is the field errors in the page's language, or what the script
// needs to upload: the upload token, and the generated password or link
// secret (shown or used once; never stored).
func (h *Web) createTransfer(w http.ResponseWriter, r *http.Request) {
	lang := h.pageLang(r, false)
	translate := locale.For(lang).T
	errs := func(status int, es ...composeError) {
		writeJSONResponse(w, status, map[string]any{"errors": es})
	}
	s := h.sender(r)
	if s == nil {
		errs(http.StatusUnauthorized, composeError{Field: "", Message: translate("send.error_session")})
		return
	}
	var req composeRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxComposeBytes))
	if err := dec.Decode(&req); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			errs(http.StatusRequestEntityTooLarge, composeError{Field: "message", Message: translate("send.error_message_long")})
			return
		}
		errs(http.StatusBadRequest, composeError{Message: translate("send.error_generic")})
		return
	}
	c, err := h.svc.Create(r.Context(), composeCreateRequest(s, &req))
	if err != nil {
		setRetryAfter(w, err)
		if fs := kluis.FieldErrors(err); len(fs) > 0 {
			pr := locale.For(lang)
			es := make([]composeError, len(fs))
			for i, f := range fs {
				es[i] = composeError{Field: composeField(f, req.PasswordMode, h.svc.CanSMS()), Message: f.Text(pr)}
			}
			errs(formStatus(err), es...)
			return
		}
		switch kluis.ErrorCode(err) {
		case kluis.EUNAVAILABLE, kluis.ETOOMANYREQUESTS:
			errs(statusOf(err), composeError{Message: translate("send.error_busy")})
		case kluis.EQUOTA:
			errs(statusOf(err), composeError{Message: translate("send.error_quota")})
		default:
			if kluis.ErrorCode(err) == kluis.EINTERNAL {
				h.log.Error("web: create transfer", "err", err)
			}
			errs(statusOf(err), composeError{Message: translate("send.error_generic")})
		}
		return
	}
	out := composeResponse{ID: c.Transfer.ID, UploadToken: c.UploadToken, UploadURL: "/api/v1/uploads/", MaxSize: c.MaxSize,
		Password: c.Password, LinkSecret: c.LinkSecret, ExpiresText: locale.For(lang).Date(c.Transfer.ExpiresAt),
		SentText: locale.For(lang).Date(c.Transfer.CreatedAt)}
	for _, rc := range c.Transfer.Recipients {
		out.Recipients = append(out.Recipients, struct {
			Address string `json:"address"`
			Kind    string `json:"kind"`
		}{rc.Address, string(rc.Kind)})
	}
	writeJSONResponse(w, http.StatusCreated, out)
}

// composeCreateRequest maps the compose form to the engine's request.
// The engine checks every field (transfer.Service.Validate); the page
// only shows its field errors next to the fields.
func composeCreateRequest(s *sender.Sender, req *composeRequest) transfer.CreateRequest {
	sizes := make([]int64, 0, len(req.Files))
	for _, f := range req.Files {
		sizes = append(sizes, f.Size)
	}
	mode := kluis.PasswordMode(req.PasswordMode)
	pw := ""
	if mode == kluis.PasswordManual {
		pw = req.Password
	}
	to, cc, bcc := kluis.SplitAddressList(req.To), kluis.SplitAddressList(req.Cc), kluis.SplitAddressList(req.Bcc)
	if req.Privacy == privacyBcc {
		to, cc, bcc = nil, nil, append(append(to, cc...), bcc...)
	}
	var notify kluis.NotifyMode
	if req.NotifyDownload { // the mode's select means nothing with the box unticked
		notify = kluis.NotifyMode(req.Notify)
	}
	return transfer.CreateRequest{
		SenderEmail: s.Email, SenderName: s.Name, SenderPhone: s.Phone,
		To: to, Cc: cc, Bcc: bcc,
		Message: req.Message, Subject: req.Subject, Reference: req.Reference, Body: req.Body, ExpiresOn: req.Expires,
		Lang: req.Lang, SenderLang: s.Lang, PasswordMode: mode, Password: pw, Files: sizes,
		Options: kluis.Options{Confirm: req.Confirm, NotifyDownload: req.NotifyDownload, Notify: notify, ShowFilenames: req.ShowFilenames, SpecialData: req.SpecialData},
		Auth:    recipientAuth(req.RecipientLogin, req.RecipientPhone),
	}
}

// recipientAuth joins the compose form's login and SMS fields into the
// engine's choices per address.
func recipientAuth(logins, phones string) map[string]transfer.RecipientAuth {
	return authLines(authLines(nil, kluis.AuthPasswordLogin, logins), kluis.AuthPasswordSMS, phones)
}

// authLinesFor keeps the lines of a login or SMS field that are about
// addr: one transfer per recipient (privacySeparate) is one request per
// address, and each carries only its own recipient's choice.
func authLinesFor(text, addr string) string {
	var keep []string
	for _, line := range strings.Split(text, "\n") {
		a := strings.TrimSpace(line)
		if i := strings.IndexAny(a, "= \t"); i >= 0 {
			a = a[:i]
		}
		if a != "" && strings.EqualFold(a, strings.TrimSpace(addr)) {
			keep = append(keep, strings.TrimSpace(line))
		}
	}
	return strings.Join(keep, "\n")
}

// authLines reads the lines of the compose form's login or SMS field
// into out, through transfer.ParseRecipientAuth as kluis send's flags.
// A line with an address only is passed on without a value, so Validate
// names what is missing (login_provider_missing, phone_missing) or that
// the address is no recipient. An address already in out (a login) gets
// the number too, which Validate refuses (phone_unexpected): the sender
// chooses one.
func authLines(out map[string]transfer.RecipientAuth, method kluis.AuthMethod, text string) map[string]transfer.RecipientAuth {
	for _, line := range strings.Split(text, "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		addr, ra, err := transfer.ParseRecipientAuth(method, line)
		if err != nil {
			addr, ra = strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(line), "=")), transfer.RecipientAuth{Method: method}
		}
		if out == nil {
			out = map[string]transfer.RecipientAuth{}
		}
		if had, ok := out[addr]; ok {
			had.Phone = ra.Phone
			ra = had
		}
		out[addr] = ra
	}
	return out
}

// composeField is the compose page's field (its element id) for an
// engine field; "" for the summary only (the sender's own details come
// from the verification, not from this form).
func composeField(f kluis.FieldError, mode string, sms bool) string {
	switch f.Field {
	case transfer.FieldExpires:
		return "expires"
	case transfer.FieldPasswordMode:
		if kluis.PasswordMode(mode).Valid() {
			return "pw-" + mode
		}
		return "pw-generate"
	case transfer.FieldPassword:
		return "password"
	case transfer.FieldShowFilenames:
		return "show_filenames"
	case transfer.FieldRecipientAuth:
		if strings.HasPrefix(f.Code, "login_") {
			return "recipient_login"
		}
		if !sms { // no number field: the summary says it
			return ""
		}
		return "recipient_phone"
	case transfer.FieldSenderEmail, transfer.FieldSenderName, transfer.FieldSenderPhone:
		return ""
	}
	return f.Field
}

// preview renders the notification mail as a recipient will get it, from
// the compose form (posted into a sandboxed frame). The sender's text goes
// through the same sanitizer as the real mail.
func (h *Web) preview(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxComposeBytes)
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
		return
	}
	hd := w.Header()
	hd.Set("Cache-Control", "no-store")
	hd.Set("Content-Type", "text/html; charset=utf-8")
	lang := h.pageLang(r, false)
	translate := locale.For(lang).T
	s := h.sender(r)
	if s == nil {
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprintf(w, "<!DOCTYPE html><html lang=%q dir=%q><title>-</title><p>%s</p>", lang, lang.Dir(), htmlEscape(translate("send.error_session")))
		return
	}
	// Only the mail's own inline styles: no script, no form, no plug-in,
	// no request anywhere but images over https; framed by our own page
	// only.
	hd.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; img-src https: data:; frame-ancestors 'self'; form-action 'none'; base-uri 'none'; sandbox")
	hd.Set("X-Frame-Options", "SAMEORIGIN")
	f := r.PostForm
	rlang := mail.Lang(f.Get("lang"))
	now := h.svc.Now()
	expires := now.Add(h.svc.DefaultLimits().DefaultExpiry)
	if d, err := time.ParseInLocation(time.DateOnly, f.Get("expires"), expiryLoc); err == nil {
		expires = d.Add(23*time.Hour + 59*time.Minute)
	}
	var files []struct {
		Name string
		Size int64
	}
	_ = json.Unmarshal([]byte(f.Get("files")), &files)
	show := f.Get("show_filenames") == "1"
	var refs []mail.FileRef
	for i, fl := range files {
		ref := mail.FileRef{Index: i + 1, Count: len(files), Size: fl.Size}
		if show {
			ref.Name = fl.Name
		}
		refs = append(refs, ref)
	}
	var visible []string
	for _, k := range []string{"to", "cc"} {
		for _, item := range kluis.SplitAddressList(f.Get(k)) {
			if a, err := kluis.ParseAddress(item); err == nil {
				visible = append(visible, a)
			}
		}
	}
	base := strings.TrimSuffix(h.svc.Config().BaseURL, "/")
	if base == "" {
		base = "https://" + r.Host
	}
	access := "voorbeeldvoorbeeldvoorbee"
	name := s.Name
	if name == "" {
		name = s.Email
	}
	m, err := mail.Render(mail.KindNotify, rlang, mail.Org{Name: h.org.Name, BaseURL: base}, "preview@example.nl", mail.Notify{
		SenderName: name, SenderPhone: s.Phone, SenderEmail: s.Email,
		Subject: f.Get("subject"), BodyHTML: f.Get("body"),
		Link: base + "/r/" + access, AccessCode: "K7QM3XPT9HRWD2FA", ExpiresAt: expires,
		PasswordRequired:  f.Get("password_mode") != string(kluis.PasswordNone),
		VisibleRecipients: visible, Files: refs, HasMessage: f.Get("has_message") == "1" || len(refs) == 0,
	})
	if err != nil {
		w.WriteHeader(http.StatusOK)
		fmt.Fprintf(w, "<!DOCTYPE html><html lang=%q dir=%q><title>-</title><p>%s</p>", lang, lang.Dir(), htmlEscape(translate("send.preview_unavailable")))
		return
	}
	w.WriteHeader(http.StatusOK)
	w.Write([]byte(m.HTML))
}

func htmlEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&#34;", "'", "&#39;").Replace(s)
}
