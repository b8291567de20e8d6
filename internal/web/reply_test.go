package web

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/kluis-nl/kluis"
	"github.com/kluis-nl/kluis/internal/mail"
	kpolicy "github.com/kluis-nl/kluis/internal/policy"
	"github.com/kluis-nl/kluis/internal/transfer"
)

type replyFile struct {
	name string
	data []byte
}

// postReply sends the reply form as a browser does: message first, then
// the file field (once per file, or one empty part when none is chosen).
func postReply(t *testing.T, c *http.Client, u, message string, files ...replyFile) (*http.Response, string) {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	mw.WriteField("message", message)
	if len(files) == 0 {
		w, _ := mw.CreateFormFile("files", "")
		w.Write(nil)
	}
	for _, f := range files {
		w, _ := mw.CreateFormFile("files", f.name)
		w.Write(f.data)
	}
	mw.Close()
	resp, err := c.Post(u, mw.FormDataContentType(), &buf)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func TestReplyPages(t *testing.T) {
	e := newSenderEnv(t, nil)
	s := e.send(t, kluis.PasswordManual, "Zeven-Groene-Appels", "Wilt u het formulier terugsturen?", map[string][]byte{"formulier.pdf": []byte("leeg formulier")})
	base := e.srv.URL + "/r/" + s.access

	// Without a download session: to the link's page first.
	anon := e.client(t)
	resp, body := get(t, anon, base+"/reply")
	wantStatus(t, "reply without session", resp, body, http.StatusSeeOther)
	if resp.Header.Get("Location") != "/r/"+s.access {
		t.Errorf("reply without session redirects to %q", resp.Header.Get("Location"))
	}
	resp, body = postReply(t, anon, base+"/reply", "hallo")
	wantStatus(t, "post reply without session", resp, body, http.StatusSeeOther)

	rc := e.client(t)
	resp, body = post(t, rc, base+"/unlock", url.Values{"password": {s.secret}})
	wantStatus(t, "unlock", resp, body, http.StatusSeeOther)
	_, body = get(t, rc, base+"/open")
	if !strings.Contains(body, `href="/r/`+s.access+`/reply"`) {
		t.Error("the open page has no reply link")
	}
	for _, lang := range []string{"nl", "en"} {
		resp, body = getLang(t, rc, base+"/reply", lang)
		wantStatus(t, "reply form "+lang, resp, body, http.StatusOK)
		for _, want := range []string{"a.jansen@gemeente.example.nl", `enctype="multipart/form-data"`, `name="message"`, `type="file"`, translate(lang, "reply.protected_password")} {
			if !strings.Contains(body, want) {
				t.Errorf("reply form (%s) lacks %q", lang, want)
			}
		}
	}

	// Nothing to send: a field error, and no transfer made.
	resp, body = postReply(t, rc, base+"/reply", "  ")
	wantStatus(t, "empty reply", resp, body, http.StatusUnprocessableEntity)
	if !strings.Contains(body, `href="#message"`) || !strings.Contains(body, translate("nl", "reply.error_empty")) {
		t.Error("empty reply: no linked error")
	}

	// A message and two files.
	big := bytes.Repeat([]byte("0123456789"), 30_000)
	resp, body = postReply(t, rc, base+"/reply", "Hierbij het ingevulde formulier.\r\nMet groet.",
		replyFile{"ingevuld.pdf", []byte("%PDF ingevuld")}, replyFile{"../bijlage.bin", big})
	wantStatus(t, "reply", resp, body, http.StatusOK)
	for _, want := range []string{"Uw antwoord is verstuurd", "ingevuld.pdf", "bijlage.bin", "a.jansen@gemeente.example.nl"} {
		if !strings.Contains(body, want) {
			t.Errorf("confirmation lacks %q", want)
		}
	}
	m := e.mails.last(mail.KindNotify, "a.jansen@gemeente.example.nl")
	if m == nil {
		t.Fatal("no mail to the sender")
	}
	found := regexp.MustCompile(`/r/([^\s#/]+)`).FindStringSubmatch(m.Text)
	if found == nil {
		t.Fatalf("no link in the mail:\n%s", m.Text)
	}
	access := found[1]
	rs, err := e.svc.Unlock(context.Background(), access, s.secret)
	if err != nil {
		t.Fatalf("the sender cannot open the reply with their password: %v", err)
	}
	c, err := e.svc.Contents(context.Background(), rs)
	if err != nil {
		t.Fatal(err)
	}
	if c.Message != "Hierbij het ingevulde formulier.\nMet groet." || c.Transfer.SenderEmail != "burger@example.nl" || len(c.Files) != 2 {
		t.Fatalf("reply: %q from %s, %d files", c.Message, c.Transfer.SenderEmail, len(c.Files))
	}
	if c.Files[1].Name != "bijlage.bin" || c.Files[1].Size != int64(len(big)) {
		t.Errorf("second file: %+v", c.Files[1])
	}

	// The reply is the recipient's transfer; the original sender is its
	// one recipient.
	if mine, _ := e.svc.SenderTransfers(context.Background(), "burger@example.nl"); len(mine) != 1 || mine[0].Recipients[0].Address != "a.jansen@gemeente.example.nl" {
		t.Errorf("reply transfers: %+v", mine)
	}

	// The original sender's status page lists the reply.
	sc := e.client(t)
	e.login(t, sc, "a.jansen@gemeente.example.nl")
	_, body = get(t, sc, e.srv.URL+"/transfers/"+s.owner.TransferID)
	if !strings.Contains(body, "Antwoord van burger@example.nl op") {
		t.Error("the sender's status page does not list the reply")
	}

	// After a revoke, no reply.
	if err := e.svc.Revoke(context.Background(), s.owner, ""); err != nil {
		t.Fatal(err)
	}
	resp, body = postReply(t, rc, base+"/reply", "nog iets")
	wantStatus(t, "reply after revoke", resp, body, http.StatusGone)
}

// TestReplyTooLarge: over the budget gives a field error, and the half
// reply is gone.
func TestReplyTooLarge(t *testing.T) {
	e := newSenderEnv(t, func(c *transfer.Config) { c.MaxTransferSize = 100_000 })
	s := e.send(t, kluis.PasswordGenerate, "", "", map[string][]byte{"a.txt": []byte("a")})
	base := e.srv.URL + "/r/" + s.access
	rc := e.client(t)
	resp, body := post(t, rc, base+"/unlock", url.Values{"password": {s.secret}})
	wantStatus(t, "unlock", resp, body, http.StatusSeeOther)

	for _, size := range []int{100_001, 3_000_000} { // over the budget; over the body limit
		resp, body = postReply(t, rc, base+"/reply", "groot", replyFile{"groot.bin", bytes.Repeat([]byte{7}, size)})
		wantStatus(t, fmt.Sprint("too large ", size), resp, body, http.StatusUnprocessableEntity)
		if !strings.Contains(body, `href="#files"`) || !strings.Contains(body, translate("nl", "reply.error_too_large")) || !strings.Contains(body, ">groot</textarea>") {
			t.Errorf("size %d: no linked error, or the message was lost: %.400s", size, body)
		}
	}
	files := make([]replyFile, transfer.MaxReplyFiles+1)
	for i := range files {
		files[i] = replyFile{fmt.Sprintf("f%d.txt", i), []byte("x")}
	}
	resp, body = postReply(t, rc, base+"/reply", "veel", files...)
	wantStatus(t, "too many", resp, body, http.StatusUnprocessableEntity)
	if !strings.Contains(body, translate("nl", "reply.error_too_many")) {
		t.Error("too many files: no error")
	}
	if mine, _ := e.svc.SenderTransfers(context.Background(), "burger@example.nl"); len(mine) != 0 {
		t.Errorf("refused replies left %d transfers", len(mine))
	}
}

// TestReplyRateLimit is issue 11, item 6: one recipient sent 30 replies in
// 3.4 s. The reply pages are rate-limited per client (default: bursts of
// ReplyBurst, then ReplyPerMinute a minute), answered with a page in the
// visitor's language, 429 and Retry-After; a refused reply makes nothing.
func TestReplyRateLimit(t *testing.T) {
	e := newSenderEnvWith(t, nil, nil)
	s := e.send(t, kluis.PasswordGenerate, "", "", map[string][]byte{"a.txt": []byte("a")})
	base := e.srv.URL + "/r/" + s.access
	rc := e.client(t)
	resp, body := post(t, rc, base+"/unlock", url.Values{"password": {s.secret}})
	wantStatus(t, "unlock", resp, body, http.StatusSeeOther)
	for i := range ReplyBurst - 1 {
		resp, body = get(t, rc, base+"/reply")
		wantStatus(t, fmt.Sprint("reply form ", i), resp, body, http.StatusOK)
	}
	resp, body = postReply(t, rc, base+"/reply", "antwoord")
	wantStatus(t, "reply within the burst", resp, body, http.StatusOK)
	for _, lang := range []string{"nl", "en"} {
		resp, body = getLang(t, rc, base+"/reply", lang)
		wantStatus(t, "reply form over the limit", resp, body, http.StatusTooManyRequests)
		if !strings.Contains(body, translate(lang, "reply.too_fast_title")) || resp.Header.Get("Retry-After") == "" {
			t.Errorf("%s: over the limit without its page or Retry-After: %.300s", lang, body)
		}
	}
	resp, body = postReply(t, rc, base+"/reply", "nog een")
	wantStatus(t, "reply over the limit", resp, body, http.StatusTooManyRequests)
	if mine, _ := e.svc.SenderTransfers(context.Background(), "burger@example.nl"); len(mine) != 1 {
		t.Errorf("%d replies made, want 1", len(mine))
	}
}

// TestReplyLimitPage: past the policy's replies per recipient and transfer
// the reply page says so (429), in the visitor's language.
func TestReplyLimitPage(t *testing.T) {
	e := newSenderEnv(t, nil)
	p, err := kpolicy.Parse([]byte(`{"defaults": {"max_replies": 1}}`))
	if err != nil {
		t.Fatal(err)
	}
	e.app.Policy.Set(p)
	s := e.send(t, kluis.PasswordGenerate, "", "", map[string][]byte{"a.txt": []byte("a")})
	base := e.srv.URL + "/r/" + s.access
	rc := e.client(t)
	resp, body := post(t, rc, base+"/unlock", url.Values{"password": {s.secret}})
	wantStatus(t, "unlock", resp, body, http.StatusSeeOther)
	resp, body = postReply(t, rc, base+"/reply", "antwoord")
	wantStatus(t, "first reply", resp, body, http.StatusOK)
	resp, body = postReply(t, rc, base+"/reply", "nog een", replyFile{"b.txt", []byte("b")})
	wantStatus(t, "second reply", resp, body, http.StatusTooManyRequests)
	if !strings.Contains(body, translate("nl", "reply.limit_title")) {
		t.Errorf("second reply: no limit page: %.300s", body)
	}
	if mine, _ := e.svc.SenderTransfers(context.Background(), "burger@example.nl"); len(mine) != 1 {
		t.Errorf("%d replies made, want 1", len(mine))
	}
}
