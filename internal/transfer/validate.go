package transfer

import (
	"errors"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/kluis-nl/kluis"
	"github.com/kluis-nl/kluis/internal/locale"
	"github.com/kluis-nl/kluis/internal/mail"
	"github.com/kluis-nl/kluis/internal/policy"
	"github.com/kluis-nl/kluis/internal/secret"
	"github.com/kluis-nl/kluis/internal/sms"
)

// The fields of a CreateRequest as field errors name them: as in the
// API's JSON, so API clients can point at what they sent. The pages map
// them to their own form fields.
const (
	FieldSenderEmail   = "sender.email"
	FieldSenderName    = "sender.name"
	FieldSenderPhone   = "sender.phone"
	FieldTo            = "to"
	FieldCc            = "cc"
	FieldBcc           = "bcc"
	FieldMessage       = "message"
	FieldSubject       = "subject"
	FieldReference     = "reference"
	FieldBody          = "body"
	FieldExpires       = "expires_at"
	FieldLang          = "lang"
	FieldPasswordMode  = "password.mode"
	FieldPassword      = "password.value"
	FieldShowFilenames = "options.show_filenames"
	FieldNotify        = "options.notify"
	FieldFiles         = "files"
	// FieldRecipientAuth is the per-recipient verification (method and
	// mobile number); the error's first argument names the address.
	FieldRecipientAuth = "recipient_auth"
)

// The codes of the field errors of Validate. They are stable: API clients
// may act on them. Each has the catalog key "validate." + code, except the
// texts that depend on the field (too long, not one line), whose key is
// "validate." + field key + "_" + code.
const (
	CodeSenderInvalid       = "sender_invalid"
	CodeNotText             = "not_text"
	CodeTooLong             = "too_long"
	CodeNotOneLine          = "not_one_line"
	CodeLangUnsupported     = "lang_unsupported"
	CodeAddressInvalid      = "address_invalid"
	CodeAddressNotAllowed   = "address_not_allowed"
	CodeAddressOutside      = "address_outside_organisation"
	CodeNoRecipients        = "no_recipients"
	CodeTooManyRecipients   = "too_many_recipients"
	CodeExpiryFormat        = "expiry_format"
	CodeExpiryPast          = "expiry_past"
	CodeExpiryTooLate       = "expiry_too_late"
	CodeMessageNotAllowed   = "message_not_allowed"
	CodeCustomTextForbidden = "custom_text_not_allowed"
	CodeFilenamesForbidden  = "show_filenames_not_allowed"
	CodePasswordModeUnknown = "password_mode_unknown"
	CodePasswordModeRefused = "password_mode_not_allowed"
	CodePasswordUnexpected  = "password_unexpected"
	CodeFileSizeInvalid     = "file_size_invalid"
	CodeFilesTooLarge       = "files_too_large"
	CodeNothingToSend       = "nothing_to_send"
	CodeTooManyFiles        = "too_many_files"
	CodeTooManyAsked        = "too_many_asked"
	CodeNotifyUnknown       = "notify_unknown"
	// Recipient verification (issue 15).
	CodeAuthUnknown      = "auth_method_unknown"
	CodeAuthNotAllowed   = "auth_method_not_allowed"
	CodeAuthNoPassword   = "auth_needs_password"
	CodeAuthNotRecipient = "auth_not_a_recipient"
	CodePhoneMissing     = "phone_missing"
	CodePhoneCountry     = "phone_country"
	CodePhoneInvalid     = "phone_invalid"
	CodePhoneUnexpected  = "phone_unexpected"
	CodeSMSUnavailable   = "sms_unavailable"
	// A login with an OpenID provider (password+login).
	CodeLoginNoPassword      = "login_needs_password"
	CodeLoginProviderMissing = "login_provider_missing"
	CodeLoginProviderUnknown = "login_provider_unknown"
	CodeLoginValueMissing    = "login_value_missing"
	CodeLoginValueInvalid    = "login_value_invalid"
	CodeLoginEmailDomain     = "login_email_domain"
	CodeLoginUnexpected      = "login_unexpected"
	// The password's own problems are secret.PasswordProblem's codes
	// (password_empty, password_too_short, ...).
)

// textKeys are the field-dependent parts of the keys of too_long,
// not_one_line and not_text.
var textKeys = map[string]string{
	FieldSenderName: "sender_name", FieldSenderPhone: "sender_phone", FieldMessage: "message",
	FieldSubject: "subject", FieldBody: "body", FieldReference: "reference",
	FieldRequestAsk: "ask",
}

// Addressee is one checked recipient.
type Addressee struct {
	Kind    kluis.RecipientKind
	Address string
	// Auth is how the recipient proves who they are; Phone (E.164) is
	// set for an SMS code.
	Auth  kluis.AuthMethod
	Phone string
	// LoginProvider and LoginValue are set for a login: the policy's
	// provider and the claim value (normalised) its login must show.
	LoginProvider string
	LoginValue    string
}

// RecipientAuth is a sender's choice of verification for one recipient.
type RecipientAuth struct {
	Method kluis.AuthMethod // "": the minimum the policy asks
	Phone  string           // the mobile number for an SMS code
	// Login is the provider (a name in the policy's
	// recipient_login_providers) and LoginValue the claim value the
	// recipient's login must show, for password+login.
	Login      string
	LoginValue string
}

// Checked is a CreateRequest that passed Validate: parsed, normalised and
// within the limits the policy decided for its recipients.
type Checked struct {
	Sender     string
	Recipients []Addressee
	Lang       string // a code of locale.All
	ExpiresAt  time.Time
	Subject    string // trimmed
	Reference  string // trimmed
	Body       string // sanitized as the mail shows it; "" when it shows nothing
	Mode       kluis.PasswordMode
	// Notify is the download-notice mode, normalised.
	Notify   kluis.NotifyMode
	Decision *policy.Decision
	req      CreateRequest
}

// checker collects the field errors of one request.
type checker struct {
	errs []kluis.FieldError
}

func (c *checker) add(field, code string, args ...any) {
	c.errs = append(c.errs, kluis.FieldError{Field: field, Code: code, Key: "validate." + code, Args: args})
}

// limit adds a refusal by a limit of d: policy when the policy set it.
func (c *checker) limit(d *policy.Decision, limitField, field, code string, args ...any) {
	c.add(field, code, args...)
	c.errs[len(c.errs)-1].Policy = d.Source(limitField)
}

// text checks free text: valid UTF-8 without NUL, at most max bytes, one
// line if asked.
func (c *checker) text(field, v string, max int, oneLine bool) {
	k := textKeys[field]
	switch {
	case !utf8.ValidString(v) || strings.ContainsRune(v, 0):
		c.errs = append(c.errs, kluis.FieldError{Field: field, Code: CodeNotText, Key: "validate." + k + "_" + CodeNotText})
	case len(v) > max:
		c.errs = append(c.errs, kluis.FieldError{Field: field, Code: CodeTooLong, Key: "validate." + k + "_" + CodeTooLong, Args: []any{max}})
	case oneLine && strings.ContainsAny(v, "\r\n"):
		c.errs = append(c.errs, kluis.FieldError{Field: field, Code: CodeNotOneLine, Key: "validate." + k + "_" + CodeNotOneLine})
	}
}

// Validate is the one place for the rules of a new transfer: addresses
// (parsed, deduplicated over To, Cc and Bcc, each checked against the
// policy, their number), texts, the recipients' language, the expiry, the
// password and the options, and the planned files. It reports every
// problem at once, each as a kluis.FieldError (kluis.Invalid: EPOLICY
// when the policy refused them all, else EINVALID). Create calls it
// first; the API and the pages only map their input to a CreateRequest.
func (s *Service) Validate(req CreateRequest) (*Checked, error) {
	now := s.now()
	c := &checker{}
	ck := &Checked{req: req}
	sender, err := kluis.ParseAddress(req.SenderEmail)
	if err != nil {
		c.add(FieldSenderEmail, CodeSenderInvalid)
	}
	ck.Sender = sender
	c.text(FieldSenderName, req.SenderName, MaxNameLength, true)
	c.text(FieldSenderPhone, req.SenderPhone, MaxPhoneLength, true)
	c.text(FieldMessage, req.Message, MaxMessageLength, false)
	ck.Subject = strings.TrimSpace(req.Subject)
	c.text(FieldSubject, ck.Subject, MaxSubjectLength, true)
	ck.Reference = strings.TrimSpace(req.Reference)
	c.text(FieldReference, ck.Reference, MaxReferenceLength, true)
	// An editor leaves markup when emptied: a body that shows no text is
	// no body, and the length that counts is what the mail will hold.
	if utf8.ValidString(req.Body) && strings.TrimSpace(mail.BodyText(req.Body)) != "" {
		ck.Body = mail.SanitizeBody(req.Body)
	} else if !utf8.ValidString(req.Body) {
		ck.Body = req.Body
	}
	c.text(FieldBody, ck.Body, MaxBodyLength, false)
	ck.Lang = string(locale.Default)
	if strings.TrimSpace(req.Lang) != "" {
		if l, ok := locale.Parse(req.Lang); ok {
			ck.Lang = string(l)
		} else {
			c.add(FieldLang, CodeLangUnsupported, strings.Join(locale.Codes(), ", "))
		}
	}
	ck.Recipients = c.recipients(s.Policy(), sender, req)
	dec, err := s.decision(sender, ck.Recipients)
	if err != nil {
		return nil, err
	}
	ck.Decision = dec
	lim := dec.Limits
	if lim.MaxRecipients > 0 && len(ck.Recipients) > lim.MaxRecipients {
		c.limit(dec, policy.FieldMaxRecipients, FieldTo, CodeTooManyRecipients, lim.MaxRecipients, len(ck.Recipients))
	}
	ck.ExpiresAt = c.expiry(dec, req, now)
	if strings.TrimSpace(req.Message) != "" && !lim.AllowMessage {
		c.limit(dec, policy.FieldAllowMessage, FieldMessage, CodeMessageNotAllowed)
	}
	if (ck.Subject != "" || ck.Body != "") && !lim.AllowCustomText {
		field := FieldSubject
		if ck.Subject == "" {
			field = FieldBody
		}
		c.limit(dec, policy.FieldAllowCustomText, field, CodeCustomTextForbidden)
	}
	if req.Options.ShowFilenames && !lim.AllowShowFilenames {
		c.limit(dec, policy.FieldAllowShowFilenames, FieldShowFilenames, CodeFilenamesForbidden)
	}
	ck.Notify = req.Options.NotifyMode()
	if m, ok := kluis.ParseNotifyMode(string(ck.Notify)); ok {
		ck.Notify = m
	} else {
		c.add(FieldNotify, CodeNotifyUnknown, string(ck.Notify))
	}
	ck.Mode = c.password(dec, req)
	c.auth(s.Policy(), sender, req, ck.Recipients, ck.Mode, s.sms != nil)
	c.files(dec, req)
	if len(c.errs) > 0 {
		if slices.ContainsFunc(c.errs, func(f kluis.FieldError) bool { return f.Policy != "" }) {
			s.log.Info("transfer refused by policy", "action", "transfer.create", "result", "policy")
		}
		return nil, kluis.Invalid(c.errs...)
	}
	return ck, nil
}

// recipients parses To, Cc and Bcc: each bad or refused address is an
// error on its own field; an address given twice counts once, in the
// first field it is in.
func (c *checker) recipients(pol *policy.Policy, sender string, req CreateRequest) []Addressee {
	var out []Addressee
	seen := map[string]bool{}
	given := 0
	for _, group := range []struct {
		kind  kluis.RecipientKind
		field string
		addrs []string
	}{{kluis.KindTo, FieldTo, req.To}, {kluis.KindCc, FieldCc, req.Cc}, {kluis.KindBcc, FieldBcc, req.Bcc}} {
		for _, a := range group.addrs {
			given++
			addr, err := kluis.ParseAddress(a)
			if err != nil {
				c.add(group.field, CodeAddressInvalid, shorten(a))
				continue
			}
			if seen[strings.ToLower(addr)] {
				continue
			}
			seen[strings.ToLower(addr)] = true
			if sender != "" {
				if by, refused := pol.Refuses(sender, addr); refused {
					code := CodeAddressNotAllowed
					if by == policy.DefaultRule {
						code = CodeAddressOutside
					}
					c.add(group.field, code, addr)
					c.errs[len(c.errs)-1].Policy = by
					continue
				}
			}
			out = append(out, Addressee{Kind: group.kind, Address: addr})
		}
	}
	if given == 0 {
		c.add(FieldTo, CodeNoRecipients)
	}
	return out
}

// decision is the policy's decision for the recipients that passed,
// capped by the server's settings; the default limits when none did, so
// the other fields are still checked.
func (s *Service) decision(sender string, rs []Addressee) (*policy.Decision, error) {
	if sender == "" || len(rs) == 0 {
		return &policy.Decision{Limits: s.DefaultLimits()}, nil
	}
	addrs := make([]string, len(rs))
	for i, r := range rs {
		addrs[i] = r.Address
	}
	return s.decide(sender, addrs)
}

// expiry is the transfer's end: the default, an instant (ExpiresAt), or
// the end of a day in Amsterdam (ExpiresOn), within the maximum.
func (c *checker) expiry(dec *policy.Decision, req CreateRequest, now time.Time) time.Time {
	lim := dec.Limits
	maxAt := now.Add(lim.MaxExpiry)
	tooLate := func() {
		c.limit(dec, policy.FieldMaxExpiry, FieldExpires, CodeExpiryTooLate, maxAt)
	}
	switch {
	case req.ExpiresOn != "":
		day, err := time.ParseInLocation(time.DateOnly, strings.TrimSpace(req.ExpiresOn), locale.Amsterdam)
		switch {
		case err != nil:
			c.add(FieldExpires, CodeExpiryFormat)
		case !day.Add(24*time.Hour - time.Minute).After(now):
			c.add(FieldExpires, CodeExpiryPast)
		case day.After(maxAt):
			tooLate()
		default:
			// The last day may be the maximum's own day: it then ends
			// at the maximum. A transfer lives at least an hour.
			at := day.Add(23*time.Hour + 59*time.Minute)
			if at.After(maxAt) {
				at = maxAt
			}
			if soon := now.Add(time.Hour); at.Before(soon) && !soon.After(maxAt) {
				at = soon
			}
			return at
		}
	case req.ExpiresAt.IsZero():
		return now.Add(lim.DefaultExpiry)
	case !req.ExpiresAt.After(now):
		c.add(FieldExpires, CodeExpiryPast)
	case req.ExpiresAt.After(maxAt):
		tooLate()
	default:
		return req.ExpiresAt
	}
	return time.Time{}
}

// password checks the mode against the policy and a manual password's
// strength, and returns the mode ("" is generate).
func (c *checker) password(dec *policy.Decision, req CreateRequest) kluis.PasswordMode {
	mode := req.PasswordMode
	if mode == "" {
		mode = kluis.PasswordGenerate
	}
	switch {
	case !mode.Valid():
		c.add(FieldPasswordMode, CodePasswordModeUnknown, string(mode))
		return mode
	case !dec.Limits.AllowsPassword(mode):
		c.limit(dec, policy.FieldPasswordModes, FieldPasswordMode, CodePasswordModeRefused)
	}
	switch {
	case req.Password != "" && (mode != kluis.PasswordManual || req.reuseSecret != ""):
		// A reply reuses the original's secret; other modes choose
		// their own.
		c.add(FieldPassword, CodePasswordUnexpected)
	case mode == kluis.PasswordManual && req.reuseSecret == "":
		switch p := secret.PasswordProblem(req.Password); p {
		case "":
		case secret.PasswordEmpty, secret.PasswordBlank:
			c.add(FieldPassword, p, secret.MinPasswordLength)
		case secret.PasswordTooShort:
			c.add(FieldPassword, p, secret.MinPasswordLength, utf8.RuneCountInString(req.Password))
		case secret.PasswordTooLong:
			c.add(FieldPassword, p, secret.MaxPasswordLength)
		default:
			c.add(FieldPassword, p)
		}
	}
	return mode
}

// auth decides each recipient's verification: the sender's choice (by
// address, any case) or the minimum of the recipient's policy rule. It
// checks the choice against that rule, a second factor against a
// no-password link (which has no password to come after), and the mobile
// numbers.
func (c *checker) auth(pol *policy.Policy, sender string, req CreateRequest, rs []Addressee, mode kluis.PasswordMode, canSMS bool) {
	byAddr := map[string]RecipientAuth{}
	for a, v := range req.Auth {
		addr, err := kluis.ParseAddress(a)
		if err != nil {
			c.add(FieldRecipientAuth, CodeAuthNotRecipient, shorten(a))
			continue
		}
		byAddr[strings.ToLower(addr)] = v
	}
	for i := range rs {
		r := &rs[i]
		key := strings.ToLower(r.Address)
		choice, chosen := byAddr[key]
		delete(byAddr, key)
		lim := pol.RecipientAuth(sender, r.Address)
		m := choice.Method
		if m == "" {
			m = lim.MinimumFor(req.Options.SpecialData)
		}
		r.Auth = m
		switch {
		case !m.Valid():
			c.add(FieldRecipientAuth, CodeAuthUnknown, r.Address, string(m))
			continue
		case !lim.Allows(m, req.Options.SpecialData):
			c.add(FieldRecipientAuth, CodeAuthNotAllowed, r.Address, string(lim.MinimumFor(req.Options.SpecialData)))
			c.errs[len(c.errs)-1].Policy = "recipient_auth"
		}
		if m != kluis.AuthPasswordLogin && chosen && (strings.TrimSpace(choice.Login) != "" || strings.TrimSpace(choice.LoginValue) != "") {
			c.add(FieldRecipientAuth, CodeLoginUnexpected, r.Address)
		}
		if m == kluis.AuthPassword {
			if chosen && strings.TrimSpace(choice.Phone) != "" {
				c.add(FieldRecipientAuth, CodePhoneUnexpected, r.Address)
			}
			continue
		}
		if m == kluis.AuthPasswordLogin {
			c.login(pol, r, choice, mode)
			continue
		}
		if mode == kluis.PasswordNone {
			c.add(FieldRecipientAuth, CodeAuthNoPassword, r.Address)
		}
		if !canSMS {
			c.add(FieldRecipientAuth, CodeSMSUnavailable, r.Address)
		}
		phone, err := sms.ParsePhone(choice.Phone)
		switch {
		case errors.Is(err, sms.ErrPhoneEmpty):
			c.add(FieldRecipientAuth, CodePhoneMissing, r.Address)
		case errors.Is(err, sms.ErrPhoneCountry):
			c.add(FieldRecipientAuth, CodePhoneCountry, r.Address)
		case err != nil:
			c.add(FieldRecipientAuth, CodePhoneInvalid, r.Address)
		}
		r.Phone = phone
	}
	for a := range byAddr {
		c.add(FieldRecipientAuth, CodeAuthNotRecipient, shorten(a))
	}
}

// login checks a password+login recipient's provider and claim value.
func (c *checker) login(pol *policy.Policy, r *Addressee, choice RecipientAuth, mode kluis.PasswordMode) {
	if mode == kluis.PasswordNone {
		c.add(FieldRecipientAuth, CodeLoginNoPassword, r.Address)
	}
	if strings.TrimSpace(choice.Phone) != "" {
		c.add(FieldRecipientAuth, CodePhoneUnexpected, r.Address)
	}
	name := strings.ToLower(strings.TrimSpace(choice.Login))
	if name == "" {
		c.add(FieldRecipientAuth, CodeLoginProviderMissing, r.Address)
		return
	}
	lp, ok := pol.LoginProvider(name)
	if !ok {
		c.add(FieldRecipientAuth, CodeLoginProviderUnknown, r.Address, shorten(name))
		return
	}
	v, err := lp.ExpectedValue(r.Address, choice.LoginValue)
	switch {
	case errors.Is(err, policy.ErrLoginValueMissing):
		c.add(FieldRecipientAuth, CodeLoginValueMissing, r.Address, lp.Label)
	case errors.Is(err, policy.ErrLoginEmailDomain):
		c.add(FieldRecipientAuth, CodeLoginEmailDomain, r.Address, lp.Label)
	case err != nil:
		c.add(FieldRecipientAuth, CodeLoginValueInvalid, r.Address, lp.Label)
	}
	r.LoginProvider, r.LoginValue = lp.Name, v
}

// files checks the planned files, when the request names them: something
// to send, within the size budget.
func (c *checker) files(dec *policy.Decision, req CreateRequest) {
	if req.Files == nil {
		return
	}
	var total int64
	for _, n := range req.Files {
		if n < 0 || total+n < total {
			c.add(FieldFiles, CodeFileSizeInvalid)
			return
		}
		total += n
	}
	if len(req.Files) == 0 && strings.TrimSpace(req.Message) == "" {
		c.add(FieldFiles, CodeNothingToSend)
	}
	if m := dec.Limits.MaxTransferSize; m > 0 && total > m {
		c.limit(dec, policy.FieldMaxTransferSize, FieldFiles, CodeFilesTooLarge, kluis.Size(total), kluis.Size(m))
	}
}

// shorten keeps bad input readable in a message: no control characters,
// at most 80 characters.
func shorten(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return -1
		}
		return r
	}, strings.TrimSpace(s))
	if utf8.RuneCountInString(s) > 80 {
		s = string([]rune(s)[:77]) + "…"
	}
	return s
}
