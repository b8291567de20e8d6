package api_test

import (
	"bytes"
	"encoding/base64"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/kluis-nl/kluis"
	"github.com/kluis-nl/kluis/internal/mail"
)

// login verifies addr through the API as the command line does and
// returns the session token.
func (e *apiEnv) login(addr string) string {
	e.t.Helper()
	var v struct {
		Verification string `json:"verification"`
	}
	e.jsonOK(e.req("POST", "/api/v1/verify", "", nil, map[string]string{"email": addr, "name": "Mia Medewerker", "lang": "nl"}), 202, &v)
	ms := e.app.Delivered(mail.KindVerifyCode, addr)
	code := regexp.MustCompile(`\b\d{8}\b`).FindString(ms[len(ms)-1].Text)
	var c struct {
		Token string `json:"token"`
	}
	e.jsonOK(e.req("POST", "/api/v1/verify/confirm", "", nil, map[string]string{"code": code, "verification": v.Verification, "client": "cli"}), 200, &c)
	return c.Token
}

type fileRequestJSON struct {
	ID             string `json:"id"`
	Address        string `json:"address"`
	State          string `json:"state"`
	Message        string `json:"message"`
	Files          int    `json:"files"`
	SentAtDeadline bool   `json:"sent_at_deadline"`
	Result         *struct {
		Transfer string     `json:"transfer"`
		OpenedAt *time.Time `json:"opened_at"`
	} `json:"result"`
}

// TestFileRequestAPI: a sender sets an inbox passphrase with a session
// token, asks two people for files with an API key (one request each, all
// or nothing), one of them uploads over tus and sends; the sender sees the
// status per person and opens the result with the passphrase (and only
// with it), downloading the same bytes; withdrawing the other request.
// The passphrase reaches no log.
func TestFileRequestAPI(t *testing.T) {
	t.Parallel()
	e := newAPIEnv(t)
	const staff = "medewerker@example.nl"
	const pass = "Inbox-Zin-Voor-De-API-7"
	_, key, err := e.senders.CreateAPIKey(e.ctx, staff)
	if err != nil {
		t.Fatal(err)
	}
	_, otherKey, err := e.senders.CreateAPIKey(e.ctx, "collega@example.nl")
	if err != nil {
		t.Fatal(err)
	}
	var inbox struct {
		Exists    bool   `json:"exists"`
		Recipient string `json:"recipient"`
	}
	e.jsonOK(e.req("GET", "/api/v1/inbox", key, nil, nil), 200, &inbox)
	if inbox.Exists {
		t.Fatal("a new sender has an inbox")
	}
	ask := map[string]any{"to": []string{"burger@example.org", "partner@example.org"}, "message": "Stuur uw stukken.",
		"ask": []string{"loonstrook van maart", "kopie ID-bewijs"}, "lang": "uk",
		"expires_on": e.clock.Now().Add(72 * time.Hour).Format("2006-01-02")}
	if code, msg, _ := apiError(t, e.req("POST", "/api/v1/requests", key, nil, ask), 409); code != "conflict" || !strings.Contains(msg, "inbox passphrase") {
		t.Errorf("request without an inbox: %s %q", code, msg)
	}
	// An API key cannot set the passphrase; a session can, once, by the
	// password rules.
	apiError(t, e.req("POST", "/api/v1/inbox", key, nil, map[string]string{"passphrase": pass}), 403)
	tok := e.login(staff)
	apiError(t, e.req("POST", "/api/v1/inbox", tok, nil, map[string]string{"passphrase": "kort"}), 400)
	e.jsonOK(e.req("POST", "/api/v1/inbox", tok, nil, map[string]string{"passphrase": pass}), 200, &inbox)
	if !inbox.Exists || !strings.HasPrefix(inbox.Recipient, "age1") {
		t.Fatalf("inbox after setting: %+v", inbox)
	}
	apiError(t, e.req("POST", "/api/v1/inbox", tok, nil, map[string]string{"passphrase": pass}), 409)
	// The API session keeps no unlocked inbox.
	if _, err := e.senders.InboxIdentity(e.ctx, tok); kluis.ErrorCode(err) != kluis.ELOCKED {
		t.Errorf("the session after setting the passphrase through the API: %v, want locked", err)
	}

	// One bad address: nothing is made, and the error names the field.
	bad := map[string]any{"to": []string{"burger@example.org", "geen-adres"}, "message": "x"}
	if code, msg, _ := apiError(t, e.req("POST", "/api/v1/requests", key, nil, bad), 400); code != "invalid" || !strings.Contains(msg, "geen-adres") {
		t.Errorf("a bad address: %s %q", code, msg)
	}
	var list struct {
		Requests []fileRequestJSON `json:"requests"`
	}
	e.jsonOK(e.req("GET", "/api/v1/requests", key, nil, nil), 200, &list)
	if len(list.Requests) != 0 {
		t.Fatalf("a refused request left %d", len(list.Requests))
	}
	var made struct {
		Requests []fileRequestJSON `json:"requests"`
	}
	e.jsonOK(e.req("POST", "/api/v1/requests", key, nil, ask), 201, &made)
	if len(made.Requests) != 2 || made.Requests[0].Address != "burger@example.org" || made.Requests[1].Address != "partner@example.org" {
		t.Fatalf("made: %+v", made.Requests)
	}
	wantMsg := "Stuur uw stukken.\n\n- loonstrook van maart\n- kopie ID-bewijs"
	for _, r := range made.Requests {
		if r.State != "open" || r.Message != wantMsg {
			t.Errorf("request %+v", r)
		}
	}
	citizen, partner := made.Requests[0], made.Requests[1]

	// The citizen: the link from the mail, then the page's steps (start,
	// tus, done) through the engine and the tus endpoint.
	m := e.app.Delivered(mail.KindFileRequest, "burger@example.org")
	access := regexp.MustCompile(`/q/([a-z0-9]+)`).FindStringSubmatch(m[0].Text)[1]
	up, err := e.svc.StartFileRequest(e.ctx, access, "Hier zijn ze.")
	if err != nil {
		t.Fatal(err)
	}
	data := randomBytes(17, 300_000)
	meta := "filename " + base64.StdEncoding.EncodeToString([]byte("loonstrook.pdf"))
	resp := e.req("POST", "/api/v1/uploads/", up.Token, map[string]string{"Tus-Resumable": "1.0.0", "Upload-Length": "300000",
		"Upload-Metadata": meta, "Content-Type": "application/offset+octet-stream"}, data[:100_000])
	resp.Body.Close()
	loc, _ := url.Parse(resp.Header.Get("Location"))
	resp = e.req("PATCH", loc.Path, up.Token, map[string]string{"Tus-Resumable": "1.0.0", "Upload-Offset": "100000",
		"Content-Type": "application/offset+octet-stream"}, data[100_000:])
	resp.Body.Close()
	if resp.StatusCode != 204 {
		t.Fatalf("tus PATCH: %d", resp.StatusCode)
	}
	if err := e.svc.FinishFileRequest(e.ctx, access); err != nil {
		t.Fatal(err)
	}

	// Status per person.
	e.jsonOK(e.req("GET", "/api/v1/requests", key, nil, nil), 200, &list)
	states := map[string]string{}
	for _, r := range list.Requests {
		states[r.Address] = r.State
	}
	if states["burger@example.org"] != "done" || states["partner@example.org"] != "open" {
		t.Errorf("states: %v", states)
	}
	var got fileRequestJSON
	e.jsonOK(e.req("GET", "/api/v1/requests/"+citizen.ID, key, nil, nil), 200, &got)
	if got.Result == nil || got.Result.Transfer == "" || got.Files != 1 || got.Result.OpenedAt != nil {
		t.Fatalf("done request: %+v", got)
	}
	apiError(t, e.req("GET", "/api/v1/requests/"+citizen.ID, otherKey, nil, nil), 404)

	// Opening: a colleague's key, a request without result and a wrong
	// passphrase get nothing; the right passphrase (with the API key: it
	// is kept nowhere) gives a download session.
	open := func(token, id, pw string) *http.Response {
		return e.req("POST", "/api/v1/requests/"+id+"/open", token, nil, map[string]string{"passphrase": pw})
	}
	apiError(t, open(otherKey, citizen.ID, pass), 404)
	apiError(t, open(key, partner.ID, pass), 404)
	if code, _, _ := apiError(t, open(key, citizen.ID, pass+"x"), 401); code != "wrong_password" {
		t.Errorf("wrong passphrase: %s", code)
	}
	var sess struct {
		Session string `json:"session"`
	}
	e.jsonOK(open(key, citizen.ID, pass), 200, &sess)
	var contents struct {
		Message string `json:"message"`
		Files   []struct {
			ID   string `json:"id"`
			Name string `json:"name"`
		} `json:"files"`
	}
	e.jsonOK(e.req("GET", "/api/v1/session", sess.Session, nil, nil), 200, &contents)
	if contents.Message != "Hier zijn ze." || len(contents.Files) != 1 || contents.Files[0].Name != "loonstrook.pdf" {
		t.Fatalf("contents: %+v", contents)
	}
	resp = e.req("GET", "/api/v1/session/files/"+contents.Files[0].ID, sess.Session, nil, nil)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !bytes.Equal(body, data) {
		t.Fatalf("download: %d bytes, want the %d sent", len(body), len(data))
	}
	e.jsonOK(e.req("GET", "/api/v1/requests/"+citizen.ID, key, nil, nil), 200, &got)
	if got.Result == nil || got.Result.OpenedAt == nil {
		t.Errorf("opened_at after opening: %+v", got.Result)
	}

	// Withdrawing the other request: once.
	got = fileRequestJSON{}
	e.jsonOK(e.req("POST", "/api/v1/requests/"+partner.ID+"/revoke", key, nil, nil), 200, &got)
	if got.State != "revoked" || got.Message != "" {
		t.Errorf("withdrawn: %+v", got)
	}
	apiError(t, e.req("POST", "/api/v1/requests/"+partner.ID+"/revoke", key, nil, nil), 409)
	apiError(t, e.req("POST", "/api/v1/requests/"+citizen.ID+"/revoke", otherKey, nil, nil), 404)

	if e.logs.Contains(pass) {
		t.Error("the inbox passphrase is in the log")
	}
}

// TestFileRequestAPISentAtDeadline: a person uploads but never presses
// Done; after the deadline's purge round the request is done, with
// sent_at_deadline, and a result the requester can open.
func TestFileRequestAPISentAtDeadline(t *testing.T) {
	t.Parallel()
	e := newAPIEnv(t)
	const staff = "medewerker@example.nl"
	tok := e.login(staff)
	e.jsonOK(e.req("POST", "/api/v1/inbox", tok, nil, map[string]string{"passphrase": "Inbox-Zin-Voor-De-API-8"}), 200, nil)
	var made struct {
		Requests []fileRequestJSON `json:"requests"`
	}
	e.jsonOK(e.req("POST", "/api/v1/requests", tok, nil, map[string]any{"to": []string{"burger@example.org"}, "message": "Stuur uw stukken."}), 201, &made)
	m := e.app.Delivered(mail.KindFileRequest, "burger@example.org")
	access := regexp.MustCompile(`/q/([a-z0-9]+)`).FindStringSubmatch(m[0].Text)[1]
	up, err := e.svc.StartFileRequest(e.ctx, access, "")
	if err != nil {
		t.Fatal(err)
	}
	f, err := e.svc.AddRequestFile(e.ctx, up, "loonstrook.pdf", "application/pdf", bytes.NewReader(randomBytes(3, 10_000)))
	if err != nil || !f.Complete {
		t.Fatalf("upload: %v %+v", err, f)
	}
	var got fileRequestJSON
	e.jsonOK(e.req("GET", "/api/v1/requests/"+made.Requests[0].ID, tok, nil, nil), 200, &got)
	if got.State != "open" || got.SentAtDeadline || got.Result != nil {
		t.Fatalf("before the deadline: %+v", got)
	}
	fr, err := e.svc.FileRequestOf(e.ctx, staff, made.Requests[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	e.clock.Set(fr.ExpiresAt.Add(time.Second))
	if _, err := e.svc.Purge(e.ctx); err != nil {
		t.Fatal(err)
	}
	e.jsonOK(e.req("GET", "/api/v1/requests/"+made.Requests[0].ID, tok, nil, nil), 200, &got)
	if got.State != "done" || !got.SentAtDeadline || got.Files != 1 || got.Result == nil || got.Result.Transfer == "" {
		t.Fatalf("after the deadline: %+v", got)
	}
}

// TestInboxPassphraseAPI: a session changes its inbox passphrase with the
// old one; an API key cannot; a wrong old one is refused; the recipient
// stays, the new passphrase opens, and the sender is mailed.
func TestInboxPassphraseAPI(t *testing.T) {
	t.Parallel()
	e := newAPIEnv(t)
	const staff = "medewerker@example.nl"
	const pass, newPass = "Inbox-Zin-Voor-De-API-9", "Nieuwe-Zin-Voor-De-API-3"
	tok := e.login(staff)
	var before, after struct {
		Recipient string `json:"recipient"`
	}
	e.jsonOK(e.req("POST", "/api/v1/inbox", tok, nil, map[string]string{"passphrase": pass}), 200, &before)
	_, key, err := e.senders.CreateAPIKey(e.ctx, staff)
	if err != nil {
		t.Fatal(err)
	}
	change := func(token, old, nw string) *http.Response {
		return e.req("POST", "/api/v1/inbox/passphrase", token, nil, map[string]string{"passphrase": old, "new_passphrase": nw})
	}
	apiError(t, change(key, pass, newPass), 403)
	if code, _, _ := apiError(t, change(tok, pass+"x", newPass), 401); code != "wrong_password" {
		t.Errorf("wrong old passphrase: %s", code)
	}
	apiError(t, change(tok, pass, "kort"), 400)
	e.jsonOK(change(tok, pass, newPass), 200, &after)
	if after.Recipient == "" || after.Recipient != before.Recipient {
		t.Errorf("recipient %q, was %q", after.Recipient, before.Recipient)
	}
	if ms := e.app.Delivered(mail.KindInboxPassphrase, staff); len(ms) != 1 {
		t.Errorf("%d notices", len(ms))
	}
	if err := e.senders.UnlockInbox(e.ctx, tok, newPass); err != nil {
		t.Errorf("unlock with the new passphrase: %v", err)
	}
	if e.logs.Contains(pass) || e.logs.Contains(newPass) {
		t.Error("a passphrase is in the log")
	}
}

// TestFileRequestAPIMobile: a request with a mobile number sends the link
// by SMS too (here the development mailbox's SMS), and the request shows
// the SMS per person: masked number, sent. A number without country code
// is refused naming the field mobile, and nothing is made.
func TestFileRequestAPIMobile(t *testing.T) {
	t.Parallel()
	e := newAPIEnv(t)
	const staff = "medewerker@example.nl"
	tok := e.login(staff)
	var inbox struct {
		Exists bool `json:"exists"`
	}
	e.jsonOK(e.req("POST", "/api/v1/inbox", tok, nil, map[string]string{"passphrase": "Inbox-Zin-Voor-De-API-7"}), 200, &inbox)
	bad := map[string]any{"to": []string{"burger@example.org"}, "message": "Stuur uw stukken.",
		"mobile": map[string]string{"burger@example.org": "06 99887766"}}
	resp := e.req("POST", "/api/v1/requests", tok, nil, bad)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 400 || !strings.Contains(string(b), `"field":"mobile"`) || !strings.Contains(string(b), "country code") {
		t.Errorf("a number without country code: %d %s", resp.StatusCode, b)
	}
	type smsJSON struct {
		To    string     `json:"to"`
		State string     `json:"state"`
		At    *time.Time `json:"at"`
	}
	var made struct {
		Requests []struct {
			ID      string   `json:"id"`
			Address string   `json:"address"`
			SMS     *smsJSON `json:"sms"`
		} `json:"requests"`
	}
	ask := map[string]any{"to": []string{"burger@example.org", "partner@example.org"}, "message": "Stuur uw stukken.",
		"mobile": map[string]string{"Burger@example.org": "+31 6 9988 7766"}}
	e.jsonOK(e.req("POST", "/api/v1/requests", tok, nil, ask), 201, &made)
	if len(made.Requests) != 2 || made.Requests[0].SMS == nil || made.Requests[0].SMS.State != "queued" ||
		made.Requests[0].SMS.To != "+31 6 •••• ••66" || made.Requests[1].SMS != nil {
		t.Fatalf("made: %+v", made.Requests)
	}
	// The outbox runs in the API's environment: wait for the SMS.
	sms := e.app.Delivered("sms", "+31699887766")
	if len(sms) != 1 || !strings.Contains(sms[0].Text, "/q/") {
		t.Fatalf("SMS: %+v", sms)
	}
	var one struct {
		SMS *smsJSON `json:"sms"`
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		e.jsonOK(e.req("GET", "/api/v1/requests/"+made.Requests[0].ID, tok, nil, nil), 200, &one)
		if one.SMS != nil && one.SMS.State != "queued" || time.Now().After(deadline) {
			break
		}
	}
	if one.SMS == nil || one.SMS.State != "sent" || one.SMS.At == nil || one.SMS.To != "+31 6 •••• ••66" {
		t.Errorf("after sending: %+v", one.SMS)
	}
	if e.logs.Contains("9988") {
		t.Error("the log holds the number")
	}
}
