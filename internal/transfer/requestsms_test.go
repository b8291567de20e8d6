package transfer_test

import (
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/kluis-nl/kluis"
	"github.com/kluis-nl/kluis/internal/app/apptest"
	"github.com/kluis-nl/kluis/internal/kluistest"
	"github.com/kluis-nl/kluis/internal/mail"
	"github.com/kluis-nl/kluis/internal/store"
	"github.com/kluis-nl/kluis/internal/transfer"
)

// requestWithMobile asks burger@example.org (with canaryPhone) and
// tweede@example.org (without a number) for files, and returns the two
// requests and their links.
func (e *env) requestWithMobile(t testing.TB) ([]*transfer.FileRequest, []string) {
	t.Helper()
	inbox, _ := age.GenerateX25519Identity()
	frs, links, err := e.svc.CreateFileRequests(e.ctx, transfer.FileRequestInput{Requester: requester, RequesterName: "Mia Medewerker",
		Inbox: inbox.Recipient().String(), Address: "burger@example.org; tweede@example.org", Message: "Stuur uw loonstroken.",
		Mobiles: map[string]string{"Burger@Example.org": canaryPhone}, Lang: "uk", RequesterLang: "nl"})
	if err != nil {
		t.Fatalf("create file requests: %v", err)
	}
	if len(frs) != 2 || frs[0].Address != "burger@example.org" {
		t.Fatalf("requests: %+v", frs)
	}
	return frs, links
}

// waitSMS waits (up to 20 s) until the SMS of request id is no longer
// queued, and returns the request.
func (e *env) waitSMS(t testing.TB, id string) *transfer.FileRequest {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		fr, err := e.svc.FileRequestOf(e.ctx, requester, id)
		if err != nil {
			t.Fatal(err)
		}
		if fr.SMS != store.SMSQueued || time.Now().After(deadline) {
			return fr
		}
	}
}

var urlRE = regexp.MustCompile(`https?://\S+`)

// TestFileRequestSMS: a person with a mobile number gets the personal
// link by SMS through the outbox, in their language, with the
// organisation and the requester's name and nothing else of the request;
// the link in it works. The requester sees per person that it was sent,
// with the number masked.
func TestFileRequestSMS(t *testing.T) {
	t.Parallel()
	for _, pg := range []bool{false, true} {
		name := "sqlite"
		if pg {
			name = "postgres"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			g := newGateway(t)
			e := smsEnv(t, g, pg)
			frs, links := e.requestWithMobile(t)
			if frs[0].SMS != store.SMSQueued || frs[0].Mobile != "+31 6 •••• ••66" || frs[1].SMS != "" || frs[1].Mobile != "" {
				t.Fatalf("views: %+v %+v", frs[0], frs[1])
			}
			e.runMail(t)
			fr := e.waitSMS(t, frs[0].ID)
			if fr.SMS != store.SMSSent || fr.SMSAt == nil || fr.Mobile != "+31 6 •••• ••66" {
				t.Fatalf("after sending: %+v", fr)
			}
			if g.count() != 1 {
				t.Fatalf("%d SMS sent, want 1", g.count())
			}
			g.mu.Lock()
			m := g.sent[0]
			g.mu.Unlock()
			if m.To != "+31699887766" {
				t.Errorf("SMS to %q", m.To)
			}
			if !strings.Contains(m.Text, "Gemeente Test") || !strings.Contains(m.Text, "Mia Medewerker") || !strings.Contains(m.Text, "просить") {
				t.Errorf("SMS text %q: want the organisation and the requester, in Ukrainian", m.Text)
			}
			urls := urlRE.FindAllString(m.Text, -1)
			if len(urls) != 1 || urls[0] != links[0] {
				t.Fatalf("SMS text %q: want exactly the link %s", m.Text, links[0])
			}
			rest := strings.Replace(m.Text, links[0], "", 1)
			if strings.Contains(rest, "loonstroken") || strings.Contains(m.Text, "kq_") || regexp.MustCompile(`[A-Za-z0-9_-]{16,}`).MatchString(rest) {
				t.Errorf("SMS text %q carries more than the link", m.Text)
			}
			// The link works: the page and an upload on it.
			access := links[0][strings.LastIndex(links[0], "/q/")+3:]
			if got, err := e.svc.FileRequestByLink(e.ctx, access); err != nil || got.ID != frs[0].ID {
				t.Fatalf("the SMS's link: %v %+v", err, got)
			}
			up, err := e.svc.StartFileRequest(e.ctx, access, "hier zijn ze")
			if err != nil {
				t.Fatal(err)
			}
			e.upload(up.Owner, "loonstrook.pdf", []byte("inhoud"), 1000, 1000)
			if err := e.svc.FinishFileRequest(e.ctx, access); err != nil {
				t.Fatal(err)
			}
			if fr, _ := e.svc.FileRequestOf(e.ctx, requester, frs[1].ID); fr.SMS != "" {
				t.Errorf("the person without a number: SMS %q", fr.SMS)
			}
		})
	}
}

// TestFileRequestSMSFailed: a gateway that refuses the message (4xx) makes
// the SMS failed at once (no retries for a day), and the requester sees it.
func TestFileRequestSMSFailed(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "unknown number", http.StatusUnprocessableEntity)
	}))
	t.Cleanup(srv.Close)
	e := openEnv(t, apptest.Options{Clock: kluistest.NewClock(), Args: []string{
		"--sms-url", srv.URL + "/send", "--sms-body", `{"to": {{.To}}, "text": {{.Text}}}`}})
	frs, _ := e.requestWithMobile(t)
	e.runMail(t)
	if fr := e.waitSMS(t, frs[0].ID); fr.SMS != store.SMSFailed || fr.SMSAt == nil {
		t.Fatalf("after a refusal: %+v", fr)
	}
	// The mail with the link went out all the same.
	if n := len(e.app.Delivered("file_request", "burger@example.org")); n != 1 {
		t.Errorf("%d request mails, want 1", n)
	}
	if e.logs.Contains("9988") {
		t.Error("the log holds the number")
	}
}

// TestFileRequestMobileRefused: a number is refused, naming the field
// "mobile", when no gateway is set, when it lacks the country code, when
// it has no address on a request to several people, and when its address
// is not asked.
func TestFileRequestMobileRefused(t *testing.T) {
	t.Parallel()
	inbox, _ := age.GenerateX25519Identity()
	in := func(addr string, mobiles map[string]string) transfer.FileRequestInput {
		return transfer.FileRequestInput{Requester: requester, Inbox: inbox.Recipient().String(), Address: addr,
			Message: "Stuur uw loonstroken.", Mobiles: mobiles}
	}
	check := func(t *testing.T, e *env, in transfer.FileRequestInput, code string) {
		t.Helper()
		_, _, err := e.svc.CreateFileRequests(e.ctx, in)
		fe := kluis.FieldErrors(err)
		if len(fe) != 1 || fe[0].Field != transfer.FieldRequestMobile || fe[0].Code != code {
			t.Errorf("%v: %v %+v, want %s on field mobile", in.Mobiles, err, fe, code)
		}
	}
	// With an SMTP relay there is no development mailbox, so no SMS
	// gateway without --sms-url.
	none := openEnv(t, apptest.Options{Clock: kluistest.NewClock(), Args: []string{"--smtp", apptest.NoRelay}})
	check(t, none, in("burger@example.org", map[string]string{"": "+31612345678"}), transfer.CodeMobileUnavailable)
	// Without a gateway a request without a number still works.
	if _, _, err := none.svc.CreateFileRequests(none.ctx, in("burger@example.org", map[string]string{"": " "})); err != nil {
		t.Errorf("an empty number: %v", err)
	}
	e := smsEnv(t, newGateway(t), false)
	check(t, e, in("burger@example.org", map[string]string{"": "06 12345678"}), transfer.CodePhoneCountry)
	check(t, e, in("burger@example.org", map[string]string{"burger@example.org": "+31 6 12 ab"}), transfer.CodePhoneInvalid)
	check(t, e, in("a@example.org; b@example.org", map[string]string{"": "+31612345678"}), transfer.CodeMobileOneAddress)
	check(t, e, in("a@example.org", map[string]string{"b@example.org": "+31612345678"}), transfer.CodeMobileNotAsked)
	if frs, _, err := e.svc.CreateFileRequests(e.ctx, in("burger@example.org", map[string]string{"": "0031 6 12345678"})); err != nil || frs[0].Mobile != "+31 6 •••• ••78" {
		t.Errorf("a number without address on a request to one person: %v %+v", err, frs)
	}
}

// TestFileRequestPhoneSealed: the number is in no log and, in the data
// folder, only sealed (under the master key, purpose request.phone); the
// link is not in plain in the outbox while the SMS waits; the purge
// forgets the number.
func TestFileRequestPhoneSealed(t *testing.T) {
	t.Parallel()
	g := newGateway(t)
	e := smsEnv(t, g, false)
	frs, links := e.requestWithMobile(t)
	access := links[0][strings.LastIndex(links[0], "/q/")+3:]
	canaries := []string{"699887766", "6 9988 7766", "9988", access}
	look := func(when string) {
		t.Helper()
		for _, c := range canaries {
			if e.logs.Contains(c) {
				t.Errorf("%s: the log holds %q", when, c)
			}
		}
		walkFiles(t, e.dir, func(path string, b []byte) {
			for _, c := range canaries {
				if strings.Contains(string(b), c) {
					t.Errorf("%s: %s holds %q", when, path, c)
				}
			}
		})
	}
	look("queued")
	row, err := e.db.FileRequest(e.ctx, frs[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	if p, err := e.keys.Open("request.phone", row.ID, row.PhoneSealed); err != nil || string(p) != "+31699887766" {
		t.Fatalf("the sealed number: %q %v", p, err)
	}
	e.runMail(t)
	if fr := e.waitSMS(t, frs[0].ID); fr.SMS != store.SMSSent {
		t.Fatalf("SMS %q", fr.SMS)
	}
	look("sent")
	if err := e.svc.RevokeFileRequest(e.ctx, requester, frs[0].ID); err != nil {
		t.Fatal(err)
	}
	if _, err := e.db.PurgeFileRequests(e.ctx, e.clock.Now()); err != nil {
		t.Fatal(err)
	}
	fr, err := e.svc.FileRequestOf(e.ctx, requester, frs[0].ID)
	if err != nil || fr.Mobile != "" || fr.SMS != store.SMSSent {
		t.Errorf("purged: %v %+v", err, fr)
	}
}

// TestFileRequestSMSWithdrawn: a request withdrawn while its SMS still
// waits in the queue sends no SMS (its link no longer works); the SMS is
// given up with the reason, and the requester's page says it was not sent.
func TestFileRequestSMSWithdrawn(t *testing.T) {
	t.Parallel()
	g := newGateway(t)
	e := smsEnv(t, g, false)
	frs, _ := e.requestWithMobile(t)
	if err := e.svc.RevokeFileRequest(e.ctx, requester, frs[0].ID); err != nil {
		t.Fatal(err)
	}
	e.runMail(t)
	fr := e.waitSMS(t, frs[0].ID)
	if fr.SMS != store.SMSFailed || fr.SMSAt == nil {
		t.Fatalf("after withdrawing: %+v", fr)
	}
	if n := g.count(); n != 0 {
		t.Fatalf("%d SMS sent for a withdrawn request, want 0", n)
	}
	if !e.logs.Contains("the file request was withdrawn; the SMS was not sent") {
		t.Error("the log does not say why the SMS was not sent")
	}
	if e.logs.Contains("9988") {
		t.Error("the log holds the number")
	}
}

// TestFileRequestSMSDropped: an administrator who deletes a waiting SMS
// from the mail queue (the console's drop, outbox.Outbox.Drop as the app
// wires it) makes the requester's page say "not sent", not "waiting".
func TestFileRequestSMSDropped(t *testing.T) {
	t.Parallel()
	g := newGateway(t)
	e := smsEnv(t, g, false)
	frs, _ := e.requestWithMobile(t)
	waiting, err := e.app.DB.ListOutbox(e.ctx, store.OutboxFilter{}, e.svc.Now(), 50)
	if err != nil {
		t.Fatal(err)
	}
	var id string
	for _, m := range waiting {
		if m.Kind == string(mail.KindSMSFileRequest) {
			id = m.ID
		}
	}
	if id == "" {
		t.Fatalf("no waiting SMS in the queue: %+v", waiting)
	}
	tx, err := e.app.DB.BeginTx(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.app.Outbox.Drop(e.ctx, tx, id, e.svc.Now()); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if fr, err := e.svc.FileRequestOf(e.ctx, requester, frs[0].ID); err != nil || fr.SMS != store.SMSFailed {
		t.Fatalf("after dropping the SMS: %+v %v", fr, err)
	}
	e.runMail(t)
	if n := g.count(); n != 0 {
		t.Fatalf("%d SMS sent after it was dropped", n)
	}
}
