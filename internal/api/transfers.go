package api

import (
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/kluis-nl/kluis"
	"github.com/kluis-nl/kluis/internal/audit"
	"github.com/kluis-nl/kluis/internal/sender"
	"github.com/kluis-nl/kluis/internal/transfer"
)

type createRequest struct {
	Sender struct {
		Email string `json:"email"`
		Name  string `json:"name"`
		Phone string `json:"phone"`
	} `json:"sender"`
	To        []string       `json:"to"`
	Cc        []string       `json:"cc"`
	Bcc       []string       `json:"bcc"`
	Message   string         `json:"message"`
	Subject   string         `json:"subject"`
	Reference string         `json:"reference"`
	Body      string         `json:"body"`
	ExpiresAt *time.Time     `json:"expires_at"`
	Lang      string         `json:"lang"`
	Password  passwordChoice `json:"password"`
	Options   kluis.Options  `json:"options"`
	// RecipientAuth is the verification per recipient address; a
	// recipient not named gets the minimum of the policy.
	RecipientAuth map[string]recipientAuthJSON `json:"recipient_auth"`
	// RecipientLogin: per recipient address, the login after the password
	// (method password+login).
	RecipientLogin map[string]loginChoice `json:"recipient_login"`
}

// recipientAuthJSON is one recipient's verification in a create request:
// the method, and the mobile number for password+sms.
type recipientAuthJSON struct {
	Method kluis.AuthMethod `json:"method"`
	Phone  string           `json:"phone"`
}

// loginChoice is a recipient's login: a provider of the policy's
// recipient_login_providers and the claim value the login must show.
type loginChoice struct {
	Provider string `json:"provider"`
	Value    string `json:"value"`
}

type passwordChoice struct {
	Mode  kluis.PasswordMode `json:"mode"`
	Value string             `json:"value"`
}

type recipientJSON struct {
	Address    string     `json:"address"`
	Kind       string     `json:"kind"`
	Status     string     `json:"status,omitempty"`
	NotifiedAt *time.Time `json:"notified_at,omitempty"`
	OpenedAt   *time.Time `json:"opened_at,omitempty"`
	RevokedAt  *time.Time `json:"revoked_at,omitempty"`
	URL        string     `json:"url,omitempty"`
	// Downloads is for the sender's view only.
	Downloads []downloadJSON `json:"downloads,omitempty"`
	// AuthMethod, Phone (masked) and VerifiedAt: how the recipient
	// verifies; the sender's view only.
	AuthMethod kluis.AuthMethod `json:"auth_method,omitempty"`
	Phone      string           `json:"phone,omitempty"`
	VerifiedAt *time.Time       `json:"verified_at,omitempty"`
	// Login is the provider of a recipient who logs in after the
	// password, with the claim value masked.
	Login *loginChoice `json:"login,omitempty"`
}

type downloadJSON struct {
	FileIndex int       `json:"file_index"` // 0-based; -1: all files as ZIP
	Name      string    `json:"name,omitempty"`
	At        time.Time `json:"at"`
}

type transferJSON struct {
	ID           string             `json:"id"`
	State        kluis.State        `json:"state"`
	CreatedAt    time.Time          `json:"created_at"`
	ExpiresAt    time.Time          `json:"expires_at"`
	FinishedAt   *time.Time         `json:"finished_at,omitempty"`
	RevokedAt    *time.Time         `json:"revoked_at,omitempty"`
	PasswordMode kluis.PasswordMode `json:"password_mode"`
	Options      kluis.Options      `json:"options"`
	Sender       senderJSON         `json:"sender"`
	Recipients   []recipientJSON    `json:"recipients"`
}

type senderJSON struct {
	Email string `json:"email"`
	Name  string `json:"name"`
	Phone string `json:"phone"`
}

func downloadsJSON(ds []kluis.Download) []downloadJSON {
	var out []downloadJSON
	for _, d := range ds {
		out = append(out, downloadJSON{FileIndex: d.FileIndex, Name: d.Name, At: d.At})
	}
	return out
}

func recipientStatus(r kluis.Recipient) string {
	switch {
	case r.RevokedAt != nil:
		return "revoked"
	case len(r.Downloads) > 0:
		return "downloaded"
	case r.OpenedAt != nil:
		return "opened"
	case r.NotifiedAt != nil:
		return "notified"
	}
	return "pending"
}

func transferView(t *kluis.Transfer, now time.Time) transferJSON {
	out := transferJSON{
		ID: t.ID, State: t.EffectiveState(now), CreatedAt: t.CreatedAt, ExpiresAt: t.ExpiresAt,
		FinishedAt: t.FinishedAt, RevokedAt: t.RevokedAt, PasswordMode: t.PasswordMode, Options: t.Options,
		Sender:     senderJSON{Email: t.SenderEmail, Name: t.SenderName, Phone: t.SenderPhone},
		Recipients: []recipientJSON{},
	}
	for _, r := range t.Recipients {
		out.Recipients = append(out.Recipients, recipientJSON{
			Address: r.Address, Kind: string(r.Kind), Status: recipientStatus(r),
			NotifiedAt: r.NotifiedAt, OpenedAt: r.OpenedAt, RevokedAt: r.RevokedAt,
			Downloads:  downloadsJSON(r.Downloads),
			AuthMethod: r.AuthMethod, Phone: r.Phone, VerifiedAt: r.VerifiedAt,
		})
		if r.Login != "" {
			out.Recipients[len(out.Recipients)-1].Login = &loginChoice{Provider: r.Login, Value: r.LoginValue}
		}
	}
	return out
}

type createResponse struct {
	transferJSON
	UploadToken string `json:"upload_token"`
	UploadURL   string `json:"upload_url"`
	MaxSize     int64  `json:"max_size"`
	Password    string `json:"password,omitempty"`
	LinkSecret  string `json:"link_secret,omitempty"`
}

func (a *API) createTransfer(w http.ResponseWriter, r *http.Request, s *sender.Sender) {
	var req createRequest
	if err := decode(w, r, &req); err != nil {
		a.Error(w, r, err)
		return
	}
	// The sender is who verified, not who the body says.
	if req.Sender.Email != "" && !strings.EqualFold(strings.TrimSpace(req.Sender.Email), s.Email) {
		a.Error(w, r, kluis.Errorf(kluis.EFORBIDDEN, "You verified %s; you cannot send as %s.", s.Email, req.Sender.Email))
		return
	}
	name, phone := s.Name, s.Phone
	if req.Sender.Name != "" {
		name = req.Sender.Name
	}
	if req.Sender.Phone != "" {
		phone = req.Sender.Phone
	}
	cr := transfer.CreateRequest{
		SenderEmail: s.Email, SenderName: name, SenderPhone: phone,
		To: req.To, Cc: req.Cc, Bcc: req.Bcc,
		Message: req.Message, Subject: req.Subject, Reference: req.Reference, Body: req.Body,
		Lang: req.Lang, SenderLang: s.Lang, PasswordMode: req.Password.Mode, Password: req.Password.Value, Options: req.Options,
	}
	if req.ExpiresAt != nil {
		cr.ExpiresAt = *req.ExpiresAt
	}
	if len(req.RecipientAuth) > 0 {
		cr.Auth = map[string]transfer.RecipientAuth{}
		for addr, v := range req.RecipientAuth {
			cr.Auth[authKey(addr)] = transfer.RecipientAuth{Method: v.Method, Phone: v.Phone}
		}
	}
	for addr, l := range req.RecipientLogin {
		if cr.Auth == nil {
			cr.Auth = map[string]transfer.RecipientAuth{}
		}
		addr = authKey(addr)
		ra := cr.Auth[addr]
		if ra.Method != "" && ra.Method != kluis.AuthPasswordLogin {
			a.Error(w, r, kluis.Errorf(kluis.EINVALID, "recipient_auth gives %s the method %s, recipient_login a login: choose one (a login is method %s).", addr, ra.Method, kluis.AuthPasswordLogin))
			return
		}
		ra.Method, ra.Login, ra.LoginValue = kluis.AuthPasswordLogin, l.Provider, l.Value
		cr.Auth[addr] = ra
	}
	c, err := a.svc.Create(r.Context(), cr)
	if err != nil {
		a.Error(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, createResponse{
		transferJSON: transferView(c.Transfer, a.svc.Now()),
		UploadToken:  c.UploadToken,
		UploadURL:    "/api/v1/uploads/",
		MaxSize:      c.MaxSize,
		Password:     c.Password,
		LinkSecret:   c.LinkSecret,
	})
}

type ownerKey struct{}

// owner checks, before any handler runs, that the caller owns the transfer
// in the path: by its upload token, or as the verified sender who made it.
func (a *API) owner(next func(http.ResponseWriter, *http.Request, transfer.Owner)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		actor := audit.UploadToken
		o, err := a.svc.AuthorizeUpload(r.Context(), bearer(r))
		if err != nil {
			s, serr := a.senders.Authenticate(r.Context(), senderToken(r))
			if serr != nil {
				a.Error(w, r, kluis.Errorf(kluis.EUNAUTHORIZED, "Sign in as the sender (verify your e-mail address) or give the transfer's upload token."))
				return
			}
			o, err = a.svc.AuthorizeSender(r.Context(), id, s.Email)
			if err != nil {
				a.Error(w, r, err)
				return
			}
			actor = s.AuditActor()
		}
		if o.TransferID != id {
			// Another transfer's token: say nothing about this one.
			a.Error(w, r, kluis.Errorf(kluis.ENOTFOUND, "This transfer does not exist."))
			return
		}
		ctx := audit.WithActor(context.WithValue(r.Context(), ownerKey{}, o), actor)
		next(w, r.WithContext(ctx), o)
	}
}

// transferStatus is the owner's view of one transfer: the Transfer
// object and the sender's own reference, which only the sender's views
// show (kept after a revoke or expiry like the subject, for the minimal
// record's retention).
type transferStatus struct {
	transferJSON
	Reference string `json:"reference,omitempty"`
	// ScanRefusal says why the malware scan stopped the transfer before
	// it was sent (state failed, also after the purge).
	ScanRefusal *scanRefusalJSON `json:"scan_refusal,omitempty"`
}

type scanRefusalJSON struct {
	Reason  string `json:"reason"`
	File    int    `json:"file,omitempty"`
	Files   int    `json:"files,omitempty"`
	Name    string `json:"name,omitempty"`
	Finding string `json:"finding,omitempty"`
}

func (a *API) getTransfer(w http.ResponseWriter, r *http.Request, o transfer.Owner) {
	ov, err := a.svc.Overview(r.Context(), o)
	if err != nil {
		a.Error(w, r, err)
		return
	}
	out := transferStatus{transferJSON: transferView(ov.Transfer, a.svc.Now()), Reference: ov.Reference}
	if x := ov.Refused; x != nil {
		out.State = kluis.StateFailed
		out.ScanRefusal = &scanRefusalJSON{Reason: x.Reason, File: x.File, Files: x.Files, Name: x.Name, Finding: x.Finding}
	}
	writeJSON(w, http.StatusOK, out)
}

type finishRequest struct {
	LinkSecret string `json:"link_secret"`
}

type finishResponse struct {
	transferJSON
	Links []recipientJSON `json:"links"`
	// UnscannedFiles are the numbers (from 1) of the files that went out
	// without a malware scan by policy (fail-open, or too large with
	// --scan-too-large pass), so the client can warn its sender.
	UnscannedFiles []int `json:"unscanned_files,omitempty"`
}

func (a *API) finish(w http.ResponseWriter, r *http.Request, o transfer.Owner) {
	var req finishRequest
	if r.ContentLength != 0 {
		if err := decode(w, r, &req); err != nil {
			a.Error(w, r, err)
			return
		}
	}
	f, err := a.svc.Finish(r.Context(), o, req.LinkSecret)
	if err != nil {
		a.Error(w, r, err)
		return
	}
	out := finishResponse{transferJSON: transferView(f.Transfer, a.svc.Now()), Links: []recipientJSON{}, UnscannedFiles: f.Unscanned}
	for _, l := range f.Links {
		out.Links = append(out.Links, recipientJSON{Address: l.Recipient.Address, Kind: string(l.Recipient.Kind), URL: l.URL})
	}
	writeJSON(w, http.StatusOK, out)
}

type revokeRequest struct {
	Recipient string `json:"recipient"`
}

func (a *API) revoke(w http.ResponseWriter, r *http.Request, o transfer.Owner) {
	var req revokeRequest
	if r.ContentLength != 0 {
		if err := decode(w, r, &req); err != nil {
			a.Error(w, r, err)
			return
		}
	}
	if err := a.svc.Revoke(r.Context(), o, req.Recipient); err != nil {
		a.Error(w, r, err)
		return
	}
	a.getTransfer(w, r, o)
}

type extendRequest struct {
	ExpiresAt time.Time `json:"expires_at"`
}

func (a *API) extend(w http.ResponseWriter, r *http.Request, o transfer.Owner) {
	var req extendRequest
	if err := decode(w, r, &req); err != nil {
		a.Error(w, r, err)
		return
	}
	if err := a.svc.Extend(r.Context(), o, req.ExpiresAt); err != nil {
		a.Error(w, r, err)
		return
	}
	a.getTransfer(w, r, o)
}

// erase deletes the minimal record of a finished (expired, revoked or
// purged) transfer at once: the sender's right to erasure.
func (a *API) erase(w http.ResponseWriter, r *http.Request, o transfer.Owner) {
	if err := a.svc.Erase(r.Context(), o); err != nil {
		a.Error(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// authKey is the key of a recipient in recipient_auth and recipient_login:
// addresses compare without case, so both fields name one recipient alike.
func authKey(addr string) string { return strings.ToLower(strings.TrimSpace(addr)) }
