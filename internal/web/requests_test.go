package web

import (
	"bytes"
	"context"
	"html"
	"mime/multipart"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/kluis-nl/kluis/internal/mail"
)

// postFiles posts the file request form: a message and files, as a
// browser without script does.
func postFiles(t *testing.T, c *http.Client, u, message string, files map[string][]byte) (*http.Response, string) {
	t.Helper()
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	mw.WriteField("message", message)
	for name, data := range files {
		w, _ := mw.CreateFormFile("files", name)
		w.Write(data)
	}
	mw.Close()
	resp, err := c.Post(u, mw.FormDataContentType(), &b)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body bytes.Buffer
	body.ReadFrom(resp.Body)
	return resp, body.String()
}

// TestFileRequestPages: a signed-in sender with an inbox asks for files;
// the person sends a file and a message from the link in their mail
// without script; the requester opens it only with the inbox unlocked and
// downloads the same bytes; a withdrawn link says so.
func TestFileRequestPages(t *testing.T) {
	t.Parallel()
	e := newSenderEnv(t, nil)
	ctx := context.Background()
	base := e.srv.URL
	anna := e.client(t)
	tok := e.login(t, anna, "anna@example.nl")
	has := func(t *testing.T, body, lang, key string, args ...any) {
		t.Helper()
		if !strings.Contains(html.UnescapeString(body), translate(lang, key, args...)) {
			t.Errorf("page lacks %s", key)
		}
	}

	// Without an inbox the page sends the sender to set one.
	_, body := get(t, anna, base+"/requests")
	has(t, body, "nl", "request.need_inbox")
	if resp, _ := post(t, anna, base+"/inbox", url.Values{"passphrase": {"Kanarie-Inbox-Zin-5512"}, "passphrase_again": {"Kanarie-Inbox-Zin-5512"}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("inbox: %d", resp.StatusCode)
	}
	// Bad input: an error per field.
	resp, body := post(t, anna, base+"/requests", url.Values{"address": {"geen adres"}, "message": {""}, "expires": {"2001-01-01"}})
	if resp.StatusCode != http.StatusUnprocessableEntity {
		t.Fatalf("bad request form: %d", resp.StatusCode)
	}
	has(t, body, "nl", "request.error_address_invalid")
	has(t, body, "nl", "request.error_message_empty")
	has(t, body, "nl", "request.error_expires_past")

	resp, _ = post(t, anna, base+"/requests", url.Values{"address": {"burger@example.org"}, "message": {"Stuur uw loonstroken van maart."}, "lang": {"de"}})
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(loc, "/requests/") {
		t.Fatalf("create: %d %s\n%s", resp.StatusCode, loc, e.logs.String())
	}
	reqPath := strings.TrimSuffix(loc, "?done=created")
	m := e.mails.last(mail.KindFileRequest, "burger@example.org")
	if m == nil {
		t.Fatal("no request mail")
	}
	link := regexp.MustCompile(`https?://\S+/q/[a-z0-9]+`).FindString(m.Text)
	if link == "" {
		t.Fatalf("no link in\n%s", m.Text)
	}
	qpath := link[strings.Index(link, "/q/"):]

	// The person's page: in the request's language, with what is asked.
	citizen := e.client(t)
	resp, body = get(t, citizen, base+qpath)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "Stuur uw loonstroken van maart.") {
		t.Fatalf("request page: %d", resp.StatusCode)
	}
	has(t, body, "de", "filereq.submit")
	// Nothing chosen: a clear error.
	resp, body = postFiles(t, citizen, base+qpath, " ", nil)
	if resp.StatusCode != http.StatusUnprocessableEntity {
		t.Fatalf("empty send: %d", resp.StatusCode)
	}
	has(t, body, "de", "filereq.error_empty")
	content := bytes.Repeat([]byte("loonstrook "), 30_000)
	resp, _ = postFiles(t, citizen, base+qpath, "Hier zijn ze.", map[string][]byte{"maart.pdf": content})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("send: %d\n%s", resp.StatusCode, e.logs.String())
	}
	_, body = get(t, citizen, base+qpath)
	has(t, body, "de", "filereq.sent_heading")

	// The requester: mailed, the request shows the files; opening needs
	// the inbox unlocked.
	if e.mails.last(mail.KindFileRequestDone, "anna@example.nl") == nil {
		t.Fatal("no mail to the requester")
	}
	_, body = get(t, anna, base+reqPath)
	has(t, body, "nl", "request.state_done")
	if err := e.senders.LockInbox(ctx, tok); err != nil {
		t.Fatal(err)
	}
	if resp, _ := post(t, anna, base+reqPath+"/open", nil); resp.Header.Get("Location") != "/inbox" {
		t.Fatalf("open with a locked inbox: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	if resp, _ := post(t, anna, base+"/inbox/unlock", url.Values{"passphrase": {"Kanarie-Inbox-Zin-5512"}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("unlock: %d", resp.StatusCode)
	}
	resp, _ = post(t, anna, base+reqPath+"/open", nil)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != reqPath+"/open" {
		t.Fatalf("open: %d %s\n%s", resp.StatusCode, resp.Header.Get("Location"), e.logs.String())
	}
	_, body = get(t, anna, base+reqPath+"/open")
	if !strings.Contains(body, "Hier zijn ze.") || !strings.Contains(body, "maart.pdf") {
		t.Fatalf("contents page lacks the message or the file:\n%s", body)
	}
	fid := regexp.MustCompile(regexp.QuoteMeta(reqPath) + `/files/([A-Za-z0-9_-]+)`).FindStringSubmatch(body)
	if fid == nil {
		t.Fatal("no file link")
	}
	resp, got := get(t, anna, base+reqPath+"/files/"+fid[1])
	if resp.StatusCode != http.StatusOK || got != string(content) {
		t.Fatalf("download: %d, %d bytes, equal %v", resp.StatusCode, len(got), got == string(content))
	}
	// Someone else's request is not found; another sender cannot open it.
	bob := e.client(t)
	e.login(t, bob, "bob@example.nl")
	if resp, _ := get(t, bob, base+reqPath); resp.StatusCode != http.StatusNotFound {
		t.Errorf("another sender's view: %d", resp.StatusCode)
	}

	// Withdrawn: the link says so.
	resp, _ = post(t, anna, base+"/requests", url.Values{"address": {"ander@example.org"}, "message": {"Uw paspoort"}})
	second := strings.TrimSuffix(resp.Header.Get("Location"), "?done=created")
	m2 := e.mails.last(mail.KindFileRequest, "ander@example.org")
	q2 := regexp.MustCompile(`/q/[a-z0-9]+`).FindString(m2.Text)
	if resp, _ := post(t, anna, base+second+"/revoke", nil); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("revoke: %d", resp.StatusCode)
	}
	if resp, _ := get(t, citizen, base+q2); resp.StatusCode != http.StatusNotFound && resp.StatusCode != http.StatusGone {
		t.Errorf("withdrawn link: %d", resp.StatusCode)
	}
}

// TestFileRequestSeveral: one form with several addresses makes a request
// per person; /requests says how many, and My transfers lists each person
// with their own state; one refused address makes none.
func TestFileRequestSeveral(t *testing.T) {
	t.Parallel()
	e := newSenderEnv(t, nil)
	base := e.srv.URL
	anna := e.client(t)
	e.login(t, anna, "anna@example.nl")
	if resp, _ := post(t, anna, base+"/inbox", url.Values{"passphrase": {"Kanarie-Inbox-Zin-5512"}, "passphrase_again": {"Kanarie-Inbox-Zin-5512"}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("inbox: %d", resp.StatusCode)
	}
	resp, body := post(t, anna, base+"/requests", url.Values{"address": {"burger@example.org; geen adres"}, "message": {"Stukken graag."}})
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(html.UnescapeString(body), translate("nl", "request.error_address_invalid")) {
		t.Fatalf("one bad address: %d", resp.StatusCode)
	}
	_, body = get(t, anna, base+"/transfers")
	if strings.Contains(body, "burger@example.org") {
		t.Fatal("a refused form made a request")
	}
	resp, _ = post(t, anna, base+"/requests", url.Values{"address": {"burger@example.org; Partner <partner@example.org>"}, "message": {"Stukken graag."}})
	if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusSeeOther || loc != "/requests?created=2" {
		t.Fatalf("create two: %d %s", resp.StatusCode, loc)
	}
	_, body = get(t, anna, base+"/requests?created=2")
	if !strings.Contains(html.UnescapeString(body), translate("nl", "request.created_n", "2")) {
		t.Error("the list does not say two requests were made")
	}
	_, body = get(t, anna, base+"/transfers")
	body = html.UnescapeString(body)
	for _, addr := range []string{"burger@example.org", "partner@example.org"} {
		if !regexp.MustCompile(regexp.QuoteMeta(addr) + `</a> · ` + regexp.QuoteMeta(translate("nl", "request.state_open"))).MatchString(body) {
			t.Errorf("My transfers lacks %s with its state", addr)
		}
	}
	if n := len(e.app.Delivered(mail.KindFileRequest, "")); n != 2 {
		t.Errorf("%d request mails, want 2", n)
	}
}
