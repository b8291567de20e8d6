package api

// File requests through the API (issue 17, part 3): a verified sender
// (session token or API key) asks one or more addresses for files, follows
// each person's status, withdraws a request, and opens what was sent.
//
// Opening needs the inbox passphrase in the request body. The server
// unwraps the inbox identity with it for this one request and keeps
// neither: not the passphrase, not the inbox identity (unlike the web's
// unlock, nothing goes on a session row). What it returns is a download
// session of the one result, as /links/{access}/unlock does for a
// transfer. The wrapped inbox key is never handed out: with it, whoever
// holds a stolen API key or session token could guess the passphrase
// offline, at any speed, instead of within the shared unlock limit
// (docs/security.md, "File requests through the API").

import (
	"net/http"
	"time"

	"github.com/kluis-nl/kluis"
	"github.com/kluis-nl/kluis/internal/sender"
	"github.com/kluis-nl/kluis/internal/transfer"
)

type fileRequestCreate struct {
	// To are the addresses asked; each gets a request of its own.
	To      []string `json:"to"`
	Message string   `json:"message"`
	Ask     []string `json:"ask"`
	// ExpiresOn is the last day (YYYY-MM-DD, Europe/Amsterdam) the
	// person can send; empty: the default expiry.
	ExpiresOn string `json:"expires_on"`
	Lang      string `json:"lang"`
	// Mobile maps addresses of To to mobile numbers, which also get the
	// link by SMS; the key "" is the only address of a request to one.
	Mobile map[string]string `json:"mobile"`
}

type fileRequestJSON struct {
	ID        string     `json:"id"`
	Address   string     `json:"address"`
	State     string     `json:"state"`
	Lang      string     `json:"lang"`
	Message   string     `json:"message,omitempty"`
	CreatedAt time.Time  `json:"created_at"`
	ExpiresAt time.Time  `json:"expires_at"`
	DoneAt    *time.Time `json:"done_at,omitempty"`
	// SentAtDeadline: what the person uploaded was sent at the deadline,
	// because they never pressed Done (done_at is then the moment sent).
	SentAtDeadline bool       `json:"sent_at_deadline,omitempty"`
	RevokedAt      *time.Time `json:"revoked_at,omitempty"`
	MaxSize        int64      `json:"max_size"`
	MaxFiles       int        `json:"max_files"`
	// Files is how many files were sent (or are uploading).
	Files int `json:"files"`
	// Result is what was sent, once it was: the transfer and until when
	// it can be opened.
	Result *fileRequestResult `json:"result,omitempty"`
	// SMS is the SMS with the link, when a mobile number was given.
	SMS *fileRequestSMS `json:"sms,omitempty"`
}

type fileRequestSMS struct {
	To    string     `json:"to,omitempty"` // masked
	State string     `json:"state"`
	At    *time.Time `json:"at,omitempty"`
}

type fileRequestResult struct {
	Transfer  string     `json:"transfer"`
	ExpiresAt time.Time  `json:"expires_at"`
	OpenedAt  *time.Time `json:"opened_at,omitempty"`
}

func (a *API) fileRequestView(f *transfer.FileRequest) fileRequestJSON {
	out := fileRequestJSON{ID: f.ID, Address: f.Address, State: f.State(a.svc.Now()), Lang: f.Lang, Message: f.Message,
		CreatedAt: f.CreatedAt, ExpiresAt: f.ExpiresAt, DoneAt: f.DoneAt, SentAtDeadline: f.AtDeadline(), RevokedAt: f.RevokedAt,
		MaxSize: f.MaxSize, MaxFiles: f.MaxFiles, Files: f.Files}
	if f.SMS != "" {
		out.SMS = &fileRequestSMS{To: f.Mobile, State: f.SMS, At: f.SMSAt}
	}
	if f.Result != nil && f.DoneAt != nil {
		out.Result = &fileRequestResult{Transfer: f.Result.ID, ExpiresAt: f.Result.ExpiresAt}
		for _, r := range f.Result.Recipients {
			if r.OpenedAt != nil {
				out.Result.OpenedAt = r.OpenedAt
			}
		}
	}
	return out
}

func (a *API) createFileRequests(w http.ResponseWriter, r *http.Request, s *sender.Sender) {
	var req fileRequestCreate
	if err := decode(w, r, &req); err != nil {
		a.Error(w, r, err)
		return
	}
	inbox, err := a.senders.InboxRecipient(r.Context(), s.Email)
	if kluis.ErrorCode(err) == kluis.ENOTFOUND {
		err = kluis.Errorf(kluis.ECONFLICT, "Set an inbox passphrase first (POST /api/v1/inbox, kluis inbox, or the Inbox page): what is sent on a request is encrypted for your inbox.")
	}
	if err != nil {
		a.Error(w, r, err)
		return
	}
	addrs := ""
	for _, t := range req.To {
		addrs += t + "\n"
	}
	frs, _, err := a.svc.CreateFileRequests(r.Context(), transfer.FileRequestInput{
		Requester: s.Email, RequesterName: s.Name, Inbox: inbox.String(), Address: addrs,
		Message: req.Message, Ask: req.Ask, ExpiresOn: req.ExpiresOn, Lang: req.Lang, RequesterLang: s.Lang,
		Mobiles: req.Mobile,
	})
	if err != nil {
		a.Error(w, r, err)
		return
	}
	out := make([]fileRequestJSON, len(frs))
	for i, f := range frs {
		out[i] = a.fileRequestView(f)
	}
	writeJSON(w, http.StatusCreated, map[string]any{"requests": out})
}

func (a *API) listFileRequests(w http.ResponseWriter, r *http.Request, s *sender.Sender) {
	frs, err := a.svc.FileRequests(r.Context(), s.Email)
	if err != nil {
		a.Error(w, r, err)
		return
	}
	out := []fileRequestJSON{}
	for _, f := range frs {
		out = append(out, a.fileRequestView(f))
	}
	writeJSON(w, http.StatusOK, map[string]any{"requests": out})
}

func (a *API) getFileRequest(w http.ResponseWriter, r *http.Request, s *sender.Sender) {
	f, err := a.svc.FileRequestOf(r.Context(), s.Email, r.PathValue("id"))
	if err != nil {
		a.Error(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, a.fileRequestView(f))
}

func (a *API) revokeFileRequest(w http.ResponseWriter, r *http.Request, s *sender.Sender) {
	if err := a.svc.RevokeFileRequest(r.Context(), s.Email, r.PathValue("id")); err != nil {
		a.Error(w, r, err)
		return
	}
	a.getFileRequest(w, r, s)
}

type openRequest struct {
	Passphrase string `json:"passphrase"`
}

// openFileRequest opens what was sent on a request with the inbox
// passphrase, for this one call, and answers with a download session.
func (a *API) openFileRequest(w http.ResponseWriter, r *http.Request, s *sender.Sender) {
	var req openRequest
	if err := decode(w, r, &req); err != nil {
		a.Error(w, r, err)
		return
	}
	// Not found before the passphrase: an unknown or unsent request costs
	// no unlock try.
	if _, err := a.svc.FileRequestLink(r.Context(), s.Email, r.PathValue("id")); err != nil {
		a.Error(w, r, err)
		return
	}
	if req.Passphrase == "" {
		a.Error(w, r, kluis.Errorf(kluis.EINVALID, "Give your inbox passphrase in the field passphrase."))
		return
	}
	id, err := a.senders.OpenInbox(r.Context(), s, req.Passphrase)
	if err != nil {
		a.Error(w, r, err)
		return
	}
	sess, err := a.svc.OpenFileRequest(r.Context(), s.Email, r.PathValue("id"), id)
	if err != nil {
		a.Error(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, unlockResponse{Session: sess.Token, ExpiresAt: sess.ExpiresAt})
}

type inboxCreate struct {
	Passphrase string `json:"passphrase"`
}

type inboxJSON struct {
	Exists    bool   `json:"exists"`
	Recipient string `json:"recipient,omitempty"`
}

// inbox is the state of the sender's inbox key: whether it exists, and
// its public recipient. An API key may ask (and create requests).
func (a *API) inbox(w http.ResponseWriter, r *http.Request, s *sender.Sender) {
	rcp, err := a.senders.InboxRecipient(r.Context(), s.Email)
	if kluis.ErrorCode(err) == kluis.ENOTFOUND {
		writeJSON(w, http.StatusOK, inboxJSON{})
		return
	}
	if err != nil {
		a.Error(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, inboxJSON{Exists: true, Recipient: rcp.String()})
}

// createInbox sets the inbox passphrase of a sender session (not an API
// key: the passphrase is set by the person, once).
type inboxPassphraseChange struct {
	Passphrase    string `json:"passphrase"`
	NewPassphrase string `json:"new_passphrase"`
}

// changeInboxPassphrase puts a new passphrase on the sender's inbox key
// (a session, not an API key): the old one is required, and its try
// counts as an unlock's. Response: the inbox, as GET.
func (a *API) changeInboxPassphrase(w http.ResponseWriter, r *http.Request, s *sender.Sender) {
	var req inboxPassphraseChange
	if err := decode(w, r, &req); err != nil {
		a.Error(w, r, err)
		return
	}
	if err := a.senders.ChangeInboxPassphrase(r.Context(), senderToken(r), req.Passphrase, req.NewPassphrase); err != nil {
		a.Error(w, r, err)
		return
	}
	a.inbox(w, r, s)
}

func (a *API) createInbox(w http.ResponseWriter, r *http.Request, s *sender.Sender) {
	var req inboxCreate
	if err := decode(w, r, &req); err != nil {
		a.Error(w, r, err)
		return
	}
	if err := a.senders.CreateInbox(r.Context(), senderToken(r), req.Passphrase); err != nil {
		a.Error(w, r, err)
		return
	}
	// CreateInbox leaves the session unlocked, as the web's inbox page
	// wants; an API client opens with the passphrase each time, so its
	// session keeps nothing.
	if err := a.senders.LockInbox(r.Context(), senderToken(r)); err != nil {
		a.Error(w, r, err)
		return
	}
	a.inbox(w, r, s)
}
