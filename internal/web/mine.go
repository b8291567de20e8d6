package web

// My transfers: a verified sender's own transfers, the status per
// recipient, revoke, extend, and logging out. The sender proves their
// address with the __Host-kluis-session cookie (verification at /send);
// another sender's transfer is "not found", like an id that does not
// exist.

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/kluis-nl/kluis"
	"github.com/kluis-nl/kluis/internal/sender"
	"github.com/kluis-nl/kluis/internal/transfer"
)

// dateLayout is the value format of <input type="date">.
const dateLayout = "2006-01-02"

// amsterdam is the time zone of the dates senders pick, as in the mails.
var amsterdam = func() *time.Location {
	if loc, err := time.LoadLocation("Europe/Amsterdam"); err == nil {
		return loc
	}
	return time.FixedZone("CET", 3600)
}()

// verifiedSender returns the sender of the session cookie, or sends the
// browser to the verification page, which comes back to next afterwards.
func (h *Web) verifiedSender(w http.ResponseWriter, r *http.Request, next string) *sender.Sender {
	s := h.sender(r)
	if s == nil {
		w.Header().Set("Cache-Control", "no-store")
		http.Redirect(w, r, "/send?next="+url.QueryEscape(next), http.StatusSeeOther)
		return nil
	}
	return s
}

// mineRow is one line of the list.
type mineRow struct {
	ID         string
	Title      string // subject, else the first file's name when shown, else ""
	Reference  string
	Files      int
	Size       int64
	HasMessage bool
	Created    time.Time
	Expires    time.Time
	State      kluis.State
	StateKey   string // catalog key of the state
	Recipients int
	Reply      bool
	// Replies is how many replies the recipients sent to it.
	Replies int
}

type minePage struct {
	Email string
	Rows  []mineRow
	// Next is the query value of the page of older transfers, or "";
	// Later is set on every page but the first.
	Next  string
	Later bool
	// Requests are the sender's most recent file requests, one per
	// person asked, on the first page; Now is the time their states are
	// shown at.
	Requests []*transfer.FileRequest
	Now      time.Time
}

// mineRequests is how many file requests My transfers lists.
const mineRequests = 10

// mine lists the sender's transfers, newest first, a page at a time
// (?before= names where a page starts), so a sender with thousands of
// transfers still gets the page at once.
func (h *Web) mine(w http.ResponseWriter, r *http.Request) {
	s := h.verifiedSender(w, r, "/transfers")
	if s == nil {
		return
	}
	cursor := r.URL.Query().Get("before")
	ovs, next, err := h.svc.SenderOverviewPage(r.Context(), s.Email, cursor)
	if kluis.ErrorCode(err) == kluis.EINVALID {
		// Not a page of ours (edited by hand): the first page.
		http.Redirect(w, r, "/transfers", http.StatusSeeOther)
		return
	}
	if err != nil {
		h.linkError(w, r, "", err)
		return
	}
	now := h.svc.Now()
	p := minePage{Email: s.Email, Next: next, Later: cursor != ""}
	for _, ov := range ovs {
		row := mineRow{ID: ov.ID, Title: ov.Subject, Reference: ov.Reference, Files: len(ov.Files), HasMessage: ov.HasMessage, Created: ov.CreatedAt, Expires: ov.ExpiresAt,
			State: shownState(ov, now), Recipients: len(ov.Recipients), Reply: ov.ReplyTo != "", Replies: ov.ReplyCount}
		row.StateKey = stateKey(row.State)
		for _, f := range ov.Files {
			row.Size += max(f.Size, 0)
		}
		if row.Title == "" && len(ov.Files) > 0 {
			row.Title = ov.Files[0].Name
		}
		if k := ov.Kept; k != nil {
			row.Files, row.Size = k.Count, k.Size
			if row.Title == "" {
				row.Title = k.First
			}
		}
		p.Rows = append(p.Rows, row)
	}
	if cursor == "" {
		frs, err := h.svc.FileRequests(r.Context(), s.Email)
		if err != nil {
			h.linkError(w, r, "", err)
			return
		}
		p.Requests, p.Now = frs[:min(len(frs), mineRequests)], now
	}
	h.render(w, r, http.StatusOK, "transfers", h.newView(r, p))
}

// recipientStatus is one recipient on the detail page.
type recipientStatus struct {
	ID          int64
	Address     string
	Kind        kluis.RecipientKind
	KindKey     string // catalog key of Cc or Bcc; "" for To
	NotifiedAt  *time.Time
	OpenedAt    *time.Time
	RevokedAt   *time.Time
	LockedUntil *time.Time // only while the lock lasts
	Held        bool       // locked until the sender unblocks it
	Downloads   []downloadStatus
	// Method is how the recipient verifies; Phone the masked number of
	// an SMS code, Login the label of the login provider; VerifiedAt the
	// last pass of the second factor.
	Method     kluis.AuthMethod
	Phone      string
	Login      string
	VerifiedAt *time.Time
	// PasswordOnly: the password only (the lower level), on a transfer
	// with a password.
	PasswordOnly bool
}

type downloadStatus struct {
	All   bool   // all files as one ZIP
	Name  string // when the sender chose to show file names
	Index int    // 1-based
	Of    int    // how many files the transfer has (had, once purged)
	At    time.Time
}

// fileRow is one file on the detail page.
type fileRow struct {
	Number int // 1-based
	Name   string
	Size   int64
}

// replyRow is a recipient's reply on the detail page.
type replyRow struct {
	// Open is the sender's own path of the reply.
	Open     string
	From     string
	Name     string
	At       time.Time
	StateKey string
}

// detailPage is the status page of one transfer.
type detailPage struct {
	Email     string
	ID        string
	Title     string
	Reference string
	State     kluis.State
	StateKey  string
	Live      bool
	Created   time.Time
	Expires   time.Time
	RevokedAt *time.Time
	PurgedAt  *time.Time
	// ScanUntil: while the transfer waits for its malware scan, when the
	// wait ends (nothing is sent then).
	ScanUntil *time.Time
	// Refused is why the malware scan stopped the transfer, or nil.
	Refused    *transfer.ScanRefusal
	Recipients []recipientStatus
	Files      []fileRow
	NamesShown bool
	HasMessage bool
	TotalSize  int64
	// KeptFiles is how many files a purged transfer had (its label).
	KeptFiles int
	Reply     bool
	Replies   []replyRow
	// Extend form: <input type="date"> bounds and value.
	ExtendMin, ExtendMax, ExtendValue string
	ExtendMaxDate                     time.Time
	// Done is the catalog key of what just succeeded, or "".
	Done string
}

// owned finds the sender's own transfer from the path, or answers.
func (h *Web) owned(w http.ResponseWriter, r *http.Request) (*sender.Sender, transfer.Owner, bool) {
	id := r.PathValue("id")
	s := h.verifiedSender(w, r, "/transfers/"+url.PathEscape(id))
	if s == nil {
		return nil, transfer.Owner{}, false
	}
	o, err := h.svc.AuthorizeSender(r.Context(), id, s.Email)
	if err != nil {
		if kluis.ErrorCode(err) == kluis.ENOTFOUND {
			h.render(w, r, http.StatusNotFound, "problem", h.newView(r, problemPage{Title: "mine.notfound_title", Text: "mine.notfound_text", Back: "/transfers", BackText: "mine.back_list"}))
			return nil, o, false
		}
		h.linkError(w, r, "", err)
		return nil, o, false
	}
	return s, o, true
}

// detailData builds the status page of a transfer.
func (h *Web) detailData(r *http.Request, s *sender.Sender, o transfer.Owner) (*detailPage, error) {
	ov, err := h.svc.Overview(r.Context(), o)
	if err != nil {
		return nil, err
	}
	now := h.svc.Now()
	p := &detailPage{
		Email: s.Email, ID: ov.ID, Title: ov.Subject, Reference: ov.Reference, State: shownState(ov, now), Created: ov.CreatedAt, Expires: ov.ExpiresAt,
		RevokedAt: ov.RevokedAt, PurgedAt: ov.PurgedAt, NamesShown: ov.NamesShown, HasMessage: ov.HasMessage,
		Reply: ov.ReplyTo != "", Refused: ov.Refused,
	}
	p.StateKey = stateKey(p.State)
	if p.State == kluis.StateScanning {
		until, err := h.svc.ScanWaitUntil(r.Context(), o)
		if err != nil {
			return nil, err
		}
		if !until.IsZero() {
			p.ScanUntil = &until
		}
	}
	for _, rp := range ov.Replies {
		p.Replies = append(p.Replies, replyRow{Open: replyBase(o, rp.ID), From: rp.From, Name: rp.Name, At: rp.At, StateKey: stateKey(rp.State)})
	}
	p.Live = p.State == kluis.StateReady || p.State == kluis.StateDraft || p.State == kluis.StateUploading || p.State == kluis.StateScanning
	for _, f := range ov.Files {
		p.TotalSize += max(f.Size, 0)
		p.Files = append(p.Files, fileRow{Number: f.Index + 1, Name: f.Name, Size: f.Size})
	}
	if k := ov.Kept; k != nil {
		p.KeptFiles, p.TotalSize = k.Count, k.Size
	}
	fileCount := max(len(ov.Files), p.KeptFiles)
	names := map[int]string{}
	for _, f := range ov.Files {
		names[f.Index] = f.Name
	}
	for _, rc := range ov.Recipients {
		st := recipientStatus{ID: rc.ID, Address: rc.Address, Kind: rc.Kind, NotifiedAt: rc.NotifiedAt, OpenedAt: rc.OpenedAt, RevokedAt: rc.RevokedAt}
		switch rc.Kind {
		case kluis.KindCc:
			st.KindKey = "mine.kind_cc"
		case kluis.KindBcc:
			st.KindKey = "mine.kind_bcc"
		}
		if rc.LockedUntil != nil && now.Before(*rc.LockedUntil) {
			st.LockedUntil = rc.LockedUntil
		}
		st.Held = rc.HeldAt != nil
		st.Method, st.Phone, st.VerifiedAt = rc.AuthMethod, rc.Phone, rc.VerifiedAt
		st.PasswordOnly = rc.AuthMethod == kluis.AuthPassword && ov.PasswordMode != kluis.PasswordNone
		if rc.Login != "" {
			st.Login = rc.Login
			if lp, ok := h.svc.Policy().LoginProvider(rc.Login); ok && lp.Label != "" {
				st.Login = lp.Label
			}
		}
		for _, d := range rc.Downloads {
			ds := downloadStatus{All: d.FileIndex < 0, Index: d.FileIndex + 1, Of: max(fileCount, d.FileIndex+1), At: d.At, Name: d.Name}
			if ds.Name == "" {
				ds.Name = names[d.FileIndex]
			}
			st.Downloads = append(st.Downloads, ds)
		}
		p.Recipients = append(p.Recipients, st)
	}
	// The expiry can move to any day from tomorrow up to the limit.
	maxAt := now.Add(ov.MaxExpiry)
	p.ExtendMin = now.In(amsterdam).AddDate(0, 0, 1).Format(dateLayout)
	p.ExtendMax = maxAt.In(amsterdam).Format(dateLayout)
	p.ExtendMaxDate = maxAt
	p.ExtendValue = ov.ExpiresAt.In(amsterdam).Format(dateLayout)
	if p.ExtendValue < p.ExtendMin {
		p.ExtendValue = p.ExtendMin
	}
	return p, nil
}

// shownState is the state a sender's pages show (Overview.SenderState).
func shownState(ov *transfer.Overview, now time.Time) kluis.State {
	return ov.SenderState(now)
}

// stateKey is the catalog key of a state's label.
func stateKey(st kluis.State) string {
	switch st {
	case kluis.StateDraft, kluis.StateUploading:
		return "mine.state_draft"
	case kluis.StateReady:
		return "mine.state_ready"
	case kluis.StateExpired:
		return "mine.state_expired"
	case kluis.StateRevoked:
		return "mine.state_revoked"
	case kluis.StateScanning:
		return "mine.state_scanning"
	case kluis.StateFailed:
		return "mine.state_failed"
	default:
		return "mine.state_purged"
	}
}

var doneKeys = map[string]string{
	"revoked":     "mine.done_revoked",
	"revoked_one": "mine.done_revoked_one",
	// Nobody had been sent a link, so the revoke mailed nobody.
	"revoked_nomail":     "mine.done_revoked_nomail",
	"revoked_one_nomail": "mine.done_revoked_one_nomail",
	"extended":           "mine.done_extended",
	"unlocked":           "mine.done_unlocked",
}

// detail is the status page of one transfer.
func (h *Web) detail(w http.ResponseWriter, r *http.Request) {
	s, o, ok := h.owned(w, r)
	if !ok {
		return
	}
	p, err := h.detailData(r, s, o)
	if err != nil {
		h.linkError(w, r, "", err)
		return
	}
	p.Done = doneKeys[r.URL.Query().Get("done")]
	h.render(w, r, http.StatusOK, "transfer", h.newView(r, p))
}

// senderCtx names the sender as the actor of audit entries.
func senderCtx(r *http.Request, s *sender.Sender) *http.Request {
	return r.WithContext(s.AuditContext(r.Context()))
}

// ownedAction starts a POST on the sender's own transfer: a bounded form
// body, the owner check, the detail data and the detail page's path to
// return to. On false the answer has been written.
func (h *Web) ownedAction(w http.ResponseWriter, r *http.Request) (*sender.Sender, transfer.Owner, *detailPage, string, bool) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	s, o, ok := h.owned(w, r)
	if !ok {
		return nil, o, nil, "", false
	}
	p, err := h.detailData(r, s, o)
	if err != nil {
		h.linkError(w, r, "", err)
		return nil, o, nil, "", false
	}
	return s, o, p, "/transfers/" + url.PathEscape(o.TransferID), true
}

// revokePage is the confirmation step of a revoke.
type revokePage struct {
	ID        string
	Title     string
	Recipient *recipientStatus // nil: everyone
	// Mails is how many recipients the revocation will mail: only those
	// who were sent their link, so the page promises no other mail.
	Mails int
}

// revoke ends the transfer for everyone, or for one recipient. The first
// POST shows what will happen; the second (confirm=yes) does it.
func (h *Web) revoke(w http.ResponseWriter, r *http.Request) {
	s, o, p, back, ok := h.ownedAction(w, r)
	if !ok {
		return
	}
	var target *recipientStatus
	if v := r.PostFormValue("recipient"); v != "" {
		id, _ := strconv.ParseInt(v, 10, 64)
		for i := range p.Recipients {
			if p.Recipients[i].ID == id {
				target = &p.Recipients[i]
			}
		}
		if target == nil {
			h.render(w, r, http.StatusNotFound, "problem", h.newView(r, problemPage{Title: "mine.no_recipient_title", Text: "mine.no_recipient_text", Back: back, BackText: "mine.back_detail"}))
			return
		}
	}
	if !p.Live || (target != nil && target.RevokedAt != nil) {
		// Already over: nothing left to revoke; show the state.
		http.Redirect(w, r, back, http.StatusSeeOther)
		return
	}
	rp := revokePage{ID: o.TransferID, Title: p.Title, Recipient: target}
	for i := range p.Recipients {
		rc := &p.Recipients[i]
		if rc.NotifiedAt != nil && rc.RevokedAt == nil && (target == nil || rc == target) {
			rp.Mails++
		}
	}
	if r.PostFormValue("confirm") != "yes" {
		v := h.newView(r, rp)
		v.Here = back
		h.render(w, r, http.StatusOK, "transfer_revoke", v)
		return
	}
	address, done := "", "revoked"
	if target != nil {
		address, done = target.Address, "revoked_one"
	}
	if rp.Mails == 0 {
		// The page after it says what the confirmation said: no mail.
		done += "_nomail"
	}
	if err := h.svc.Revoke(senderCtx(r, s).Context(), o, address); err != nil {
		if kluis.ErrorCode(err) == kluis.ECONFLICT {
			http.Redirect(w, r, back, http.StatusSeeOther)
			return
		}
		h.linkError(w, r, "", err)
		return
	}
	http.Redirect(w, r, back+"?done="+done, http.StatusSeeOther)
}

// extend moves the expiry to the end of the chosen day (Amsterdam time),
// within the limit of this transfer.
func (h *Web) extend(w http.ResponseWriter, r *http.Request) {
	s, o, p, back, ok := h.ownedAction(w, r)
	if !ok {
		return
	}
	if !p.Live {
		http.Redirect(w, r, back, http.StatusSeeOther)
		return
	}
	input := strings.TrimSpace(r.PostFormValue("expires"))
	fail := func(key string) {
		p.ExtendValue = input
		v := h.newView(r, p)
		v.Here = back
		v.Errors = []fieldError{{Field: "expires", Key: key}}
		h.render(w, r, http.StatusUnprocessableEntity, "transfer", v)
	}
	if input == "" {
		fail("mine.extend_error_empty")
		return
	}
	day, err := time.ParseInLocation(dateLayout, input, amsterdam)
	if err != nil {
		fail("mine.extend_error_format")
		return
	}
	switch {
	case input < p.ExtendMin:
		fail("mine.extend_error_early")
		return
	case input > p.ExtendMax:
		fail("mine.extend_error_late")
		return
	}
	// The end of that day, but never past the limit (on the last day).
	expires := day.AddDate(0, 0, 1).Add(-time.Minute)
	if expires.After(p.ExtendMaxDate) {
		expires = p.ExtendMaxDate.Truncate(time.Minute)
	}
	if err := h.svc.Extend(senderCtx(r, s).Context(), o, expires); err != nil {
		switch kluis.ErrorCode(err) {
		case kluis.EINVALID, kluis.EPOLICY:
			fail("mine.extend_error_late")
		case kluis.ECONFLICT, kluis.EEXPIRED, kluis.EREVOKED:
			http.Redirect(w, r, back, http.StatusSeeOther)
		default:
			h.linkError(w, r, "", err)
		}
		return
	}
	http.Redirect(w, r, back+"?done=extended", http.StatusSeeOther)
}

// logout ends the sender's session on the server and in the browser.
// An SSO session then ends at the provider too (its end-session
// endpoint), so the next sign-in on this computer asks again.
func (h *Web) logout(w http.ResponseWriter, r *http.Request) {
	next := "/logout"
	if c, err := r.Cookie(senderSessionCookie); err == nil && c.Value != "" && h.senders != nil {
		if u := h.ssoLogoutURL(h.sender(r)); u != "" {
			next = u
		}
		if err := h.senders.Logout(r.Context(), c.Value); err != nil {
			h.linkError(w, r, "", err)
			return
		}
	}
	http.SetCookie(w, &http.Cookie{Name: senderSessionCookie, Value: "", Path: "/", MaxAge: -1, Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode})
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, next, http.StatusSeeOther)
}

// loggedOut confirms the logout (issue 13, item 9: the start page alone
// left the sender unsure whether it worked).
func (h *Web) loggedOut(w http.ResponseWriter, r *http.Request) {
	h.render(w, r, http.StatusOK, "problem", h.newView(r, problemPage{Title: "mine.logged_out_title", Text: "mine.logged_out_text", Back: "/", BackText: "mine.logged_out_back"}))
}
