package web

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"html"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kluis-nl/kluis"
	"github.com/kluis-nl/kluis/internal/kluistest"
	"github.com/kluis-nl/kluis/internal/locale"
	"github.com/kluis-nl/kluis/internal/mail"
	"github.com/kluis-nl/kluis/internal/ratelimit"
	"github.com/kluis-nl/kluis/internal/scan/scantest"
	"github.com/kluis-nl/kluis/internal/transfer"
)

// TestReplyInfected: a recipient who replies with a file that has malware
// (replies are inbound, so --scan inbound scans them) gets the reply form
// back with a plain message in their language next to the file field and
// their message kept; the reply is deleted whole and the original sender
// is not notified. The old page answered with the generic link error.
func TestReplyInfected(t *testing.T) {
	d := scantest.Start(t, scantest.Options{})
	logs := kluistest.NewLogs()
	a := startApp(t, TestAppOptions{Args: []string{"--clamd", d.Unix(), "--scan", "inbound"}, Logs: logs,
		ReplyLimiter: ratelimit.New(ratelimit.Config{PerMinute: 6000, Burst: 1000, GlobalPerMinute: 60000})})
	e := &senderEnv{env: &env{app: a, svc: a.Transfers, srv: testServer{URL: a.URL}, web: a.Web, logs: logs}, senders: a.Senders, mails: &mails{app: a}}
	s := e.send(t, kluis.PasswordManual, "Zeven-Groene-Appels", "Wilt u het formulier terugsturen?", map[string][]byte{"formulier.pdf": []byte("leeg formulier")})
	base := e.srv.URL + "/r/" + s.access
	rc := e.client(t)
	resp, body := post(t, rc, base+"/unlock", url.Values{"password": {s.secret}})
	wantStatus(t, "unlock", resp, body, http.StatusSeeOther)

	bad := []byte("%PDF-1.4 ingevuld " + scantest.Marker + " einde")
	resp, body = postReply(t, rc, base+"/reply", "Hierbij het formulier.", replyFile{"ingevuld.pdf", []byte("%PDF schoon")}, replyFile{"bijlage.pdf", bad})
	wantStatus(t, "reply with malware", resp, body, http.StatusUnprocessableEntity)
	if !strings.Contains(body, `href="#files"`) || !strings.Contains(body, translate("nl", "reply.error_infected")) {
		t.Errorf("reply with malware: no plain message at the file field:\n%.2000s", body)
	}
	if !strings.Contains(body, ">Hierbij het formulier.</textarea>") {
		t.Error("reply with malware: the message was lost")
	}
	if mine, _ := e.svc.SenderTransfers(context.Background(), "burger@example.nl"); len(mine) != 0 {
		t.Errorf("the refused reply left %d transfers", len(mine))
	}
	if m := e.mails.last(mail.KindNotify, "a.jansen@gemeente.example.nl"); m != nil {
		t.Errorf("the sender was notified of a refused reply: %s", m.Subject)
	}

	// Without the file the reply goes out.
	resp, body = postReply(t, rc, base+"/reply", "Hierbij het formulier.", replyFile{"ingevuld.pdf", []byte("%PDF schoon")})
	wantStatus(t, "clean reply", resp, body, http.StatusOK)
	if m := e.mails.last(mail.KindNotify, "a.jansen@gemeente.example.nl"); m == nil {
		t.Error("the sender was not notified of the clean reply")
	}
}

// TestDetailBeingChecked: the status page of a transfer that waits for its
// malware scan (clamd down, fail-closed) says that its files are being
// checked, until when, and links to itself to check again: the send
// summary's "being checked" without JavaScript. When clamd is back and the
// retry has run, the page shows the transfer as sent.
func TestDetailBeingChecked(t *testing.T) {
	d := scantest.Start(t, scantest.Options{})
	logs := kluistest.NewLogs()
	a := startApp(t, TestAppOptions{Args: []string{"--clamd", d.Unix(), "--scan-wait", "2h"}, Logs: logs})
	e := &senderEnv{env: &env{app: a, svc: a.Transfers, srv: testServer{URL: a.URL}, web: a.Web, logs: logs}, senders: a.Senders, mails: &mails{app: a}}
	d.Stop(t)
	s := e.send(t, kluis.PasswordManual, "Zeven-Groene-Appels", "", map[string][]byte{"verslag.pdf": []byte("%PDF schoon verslag")})
	c := e.client(t)
	e.login(t, c, "a.jansen@gemeente.example.nl")
	page := e.srv.URL + "/transfers/" + s.owner.TransferID
	for _, lang := range []string{"nl", "en"} {
		resp, body := getLang(t, c, page, lang)
		wantStatus(t, "status page while waiting ("+lang+")", resp, body, http.StatusOK)
		until := locale.For(locale.Lang(lang)).Date(a.Clock.Now().Add(2 * time.Hour))
		for _, want := range []string{translate(lang, "mine.state_scanning"), translate(lang, "mine.scanning_text"),
			`href="/transfers/` + s.owner.TransferID + `">` + translate(lang, "mine.check_again") + `<`, until} {
			if !strings.Contains(body, want) {
				t.Errorf("%s: the waiting status page lacks %q", lang, want)
			}
		}
	}
	if m := e.mails.last(mail.KindNotify, "burger@example.nl"); m != nil {
		t.Fatal("the recipient was notified while the transfer waits for its scan")
	}

	d.Start(t)
	a.Clock.Advance(time.Minute)
	if n, err := a.Transfers.RetryScans(context.Background()); err != nil || n != 1 {
		t.Fatalf("retry: %d transfers, %v", n, err)
	}
	resp, body := getLang(t, c, page, "nl")
	wantStatus(t, "status page after the scan", resp, body, http.StatusOK)
	if strings.Contains(body, `id="scan-status"`) || !strings.Contains(body, translate("nl", "mine.state_ready")) {
		t.Errorf("after the scan the page still says it waits, or not that it was sent:\n%.3000s", body)
	}
}

// TestDetailRefused: the status page of a transfer the malware scan
// stopped says plainly, in Dutch and English, that the virus check refused
// it, which file (by number, by name when the sender showed names) and
// what was found, also after the purge erased its content; it used to
// read "revoked". Both ways: the wait for clamd that ends in a refusal,
// and the refusal at finish after which the sender's client revoked the
// transfer (as the send page and kluis send do).
func TestDetailRefused(t *testing.T) {
	d := scantest.Start(t, scantest.Options{})
	logs := kluistest.NewLogs()
	a := startApp(t, TestAppOptions{Args: []string{"--clamd", d.Unix(), "--scan-wait", "2h"}, Logs: logs})
	e := &senderEnv{env: &env{app: a, svc: a.Transfers, srv: testServer{URL: a.URL}, web: a.Web, logs: logs}, senders: a.Senders, mails: &mails{app: a}}
	ctx := context.Background()
	c := e.client(t)
	e.login(t, c, "a.jansen@gemeente.example.nl")
	check := func(name, id string, wants map[string][]string) {
		t.Helper()
		for lang, want := range wants {
			resp, body := getLang(t, c, e.srv.URL+"/transfers/"+id, lang)
			wantStatus(t, name+" ("+lang+")", resp, body, http.StatusOK)
			want = append(want, translate(lang, "mine.state_failed"), translate(lang, "mine.refused_not_sent"))
			for _, w := range want {
				if !strings.Contains(body, w) {
					t.Errorf("%s (%s): the status page lacks %q", name, lang, w)
				}
			}
			if strings.Contains(body, translate(lang, "mine.state_revoked")) {
				t.Errorf("%s (%s): the status page says revoked", name, lang)
			}
		}
	}

	// Waited for clamd, then refused by the retry; purged.
	d.Stop(t)
	s := e.send(t, kluis.PasswordManual, "Zeven-Groene-Appels", "", map[string][]byte{"a.txt": []byte("schoon"), "b.com": []byte(scantest.EICAR)})
	d.Start(t)
	a.Clock.Advance(time.Minute)
	if _, err := a.Transfers.RetryScans(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Transfers.Purge(ctx); err != nil {
		t.Fatal(err)
	}
	check("refused after the wait", s.owner.TransferID, map[string][]string{
		"nl": {translate("nl", "mine.refused_infected", "bestand 2 van 2"), "Kluis-Test-EICAR", translate("nl", "mine.refused_do_not_open")},
		"en": {translate("en", "mine.refused_infected", "file 2 of 2"), "Kluis-Test-EICAR", translate("en", "mine.refused_do_not_open")},
	})

	// Refused at finish, names shown; the client revokes; purged.
	cr, err := a.Transfers.Create(ctx, transfer.CreateRequest{SenderEmail: "a.jansen@gemeente.example.nl", To: []string{"burger@example.nl"},
		Lang: "nl", PasswordMode: kluis.PasswordGenerate, Options: kluis.Options{ShowFilenames: true}})
	if err != nil {
		t.Fatal(err)
	}
	o, err := a.Transfers.AuthorizeUpload(ctx, cr.UploadToken)
	if err != nil {
		t.Fatal(err)
	}
	f, err := a.Transfers.NewPlainFile(ctx, o, "factuur.com", "application/octet-stream", -1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Transfers.WriteFile(ctx, o, f.ID, 0, strings.NewReader(scantest.EICAR)); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Transfers.CompleteFile(ctx, o, f.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Transfers.Finish(ctx, o, ""); kluis.ErrorCode(err) != kluis.EINFECTED {
		t.Fatalf("finish: %v, want infected", err)
	}
	if err := a.Transfers.Revoke(ctx, o, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Transfers.Purge(ctx); err != nil {
		t.Fatal(err)
	}
	check("refused at finish", o.TransferID, map[string][]string{
		"nl": {translate("nl", "mine.refused_infected", "bestand 1 van 1 (factuur.com)")},
		"en": {translate("en", "mine.refused_infected", "file 1 of 1 (factuur.com)")},
	})
	// The list says it too.
	resp, body := getLang(t, c, e.srv.URL+"/transfers", "en")
	wantStatus(t, "list", resp, body, http.StatusOK)
	if strings.Count(body, translate("en", "mine.state_failed")) != 2 {
		t.Errorf("the list does not show both refused transfers as not sent:\n%.3000s", body)
	}
}

// TestFileRequestInfected: what a citizen sends on a file request is
// inbound, so --scan inbound scans it (it was scanned only with --scan
// all). A file with malware sent through the request page without script
// is refused with the page's plain message in the request's language; the
// requester is not mailed and never gets the file; sending again without
// it sends what is left.
func TestFileRequestInfected(t *testing.T) {
	e, anna, logs, reqPath, qpath := infectedRequestSetup(t, "de")
	base := e.srv.URL
	citizen := e.client(t)

	resp, body := postFiles(t, citizen, base+qpath, "Hier.", map[string][]byte{"maart.pdf": []byte("%PDF loonstrook maart"), "april.pdf": []byte("%PDF " + scantest.Marker)})
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(html.UnescapeString(body), translate("de", "filereq.error_infected")) {
		t.Fatalf("request upload with malware: %d, want 422 with the German message\n%.2000s", resp.StatusCode, body)
	}
	if m := e.mails.last(mail.KindFileRequestDone, "anna@example.nl"); m != nil {
		t.Fatal("the requester was mailed about a refused upload")
	}
	// Again without the file: what was uploaded before is sent.
	resp, _ = postFiles(t, citizen, base+qpath, "Hier, zonder april.", nil)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("send again: %d\n%s", resp.StatusCode, logs.String())
	}
	if e.mails.last(mail.KindFileRequestDone, "anna@example.nl") == nil {
		t.Fatal("the requester was not mailed")
	}
	if resp, _ := post(t, anna, base+reqPath+"/open", nil); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("open: %d", resp.StatusCode)
	}
	_, body = get(t, anna, base+reqPath+"/open")
	if !strings.Contains(body, "maart.pdf") || strings.Contains(body, "april.pdf") {
		t.Errorf("the requester's page should list maart.pdf and not the refused april.pdf:\n%.3000s", body)
	}
}

// infectedRequestSetup starts a server that scans inbound files with a
// real clamd, signs anna@example.nl in with an inbox, and has her ask
// burger@example.org for files in lang. It returns anna's client, the
// request's page and the citizen's link (path only).
func infectedRequestSetup(t *testing.T, lang string) (e *senderEnv, anna *http.Client, logs *kluistest.Logs, reqPath, qpath string) {
	t.Helper()
	d := scantest.Start(t, scantest.Options{})
	logs = kluistest.NewLogs()
	a := startApp(t, TestAppOptions{Args: []string{"--clamd", d.Unix(), "--scan", "inbound"}, Logs: logs,
		ReplyLimiter: ratelimit.New(ratelimit.Config{PerMinute: 6000, Burst: 1000, GlobalPerMinute: 60000})})
	e = &senderEnv{env: &env{app: a, svc: a.Transfers, srv: testServer{URL: a.URL}, web: a.Web, logs: logs}, senders: a.Senders, mails: &mails{app: a}}
	base := e.srv.URL
	anna = e.client(t)
	e.login(t, anna, "anna@example.nl")
	if resp, _ := post(t, anna, base+"/inbox", url.Values{"passphrase": {"Kanarie-Inbox-Zin-5512"}, "passphrase_again": {"Kanarie-Inbox-Zin-5512"}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("inbox: %d", resp.StatusCode)
	}
	resp, _ := post(t, anna, base+"/requests", url.Values{"address": {"burger@example.org"}, "message": {"Stuur uw loonstroken."}, "lang": {lang}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("create request: %d", resp.StatusCode)
	}
	reqPath = strings.TrimSuffix(resp.Header.Get("Location"), "?done=created")
	qpath = regexp.MustCompile(`/q/[a-z0-9]+`).FindString(e.mails.last(mail.KindFileRequest, "burger@example.org").Text)
	return e, anna, logs, reqPath, qpath
}

// TestFileRequestInfectedScripted: the request page with script takes
// three steps (start, the tus upload, done). A citizen who uploads the
// EICAR test file that way, next to a clean file, is refused at done with
// the page's message in the request's language (JSON, as the script
// reads it); the requester is not mailed, the request stays open, and
// sending again without the file sends the clean one.
func TestFileRequestInfectedScripted(t *testing.T) {
	e, _, logs, _, qpath := infectedRequestSetup(t, "fr")
	base := e.srv.URL
	citizen := e.client(t)

	// The script's steps.
	start := func() string {
		t.Helper()
		resp, body := post(t, citizen, base+qpath+"/start", url.Values{"message": {"Voici."}})
		var up struct{ Token, URL string }
		if resp.StatusCode != http.StatusOK || json.Unmarshal([]byte(body), &up) != nil || up.Token == "" {
			t.Fatalf("start: %d %s", resp.StatusCode, body)
		}
		return up.Token
	}
	upload := func(token, name string, data []byte) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, base+"/api/v1/uploads/", bytes.NewReader(data))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Tus-Resumable", "1.0.0")
		req.Header.Set("Upload-Length", strconv.Itoa(len(data)))
		req.Header.Set("Upload-Metadata", "filename "+base64.StdEncoding.EncodeToString([]byte(name)))
		req.Header.Set("Content-Type", "application/offset+octet-stream")
		resp, err := citizen.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated || resp.Header.Get("Upload-Offset") != strconv.Itoa(len(data)) {
			t.Fatalf("tus upload of %s: %d, offset %q", name, resp.StatusCode, resp.Header.Get("Upload-Offset"))
		}
	}
	done := func() (*http.Response, string) {
		t.Helper()
		return post(t, citizen, base+qpath+"/done", nil)
	}

	token := start()
	upload(token, "mars.pdf", []byte("%PDF fiche de paie mars"))
	upload(token, "avril.com", []byte(scantest.EICAR))
	resp, body := done()
	var refused struct {
		Error struct{ Code, Message string }
	}
	if resp.StatusCode != http.StatusUnprocessableEntity || json.Unmarshal([]byte(body), &refused) != nil ||
		refused.Error.Code != "infected" || refused.Error.Message != translate("fr", "filereq.error_infected") {
		t.Fatalf("done with EICAR: %d %s, want 422 infected with the French message", resp.StatusCode, body)
	}
	if m := e.mails.last(mail.KindFileRequestDone, "anna@example.nl"); m != nil {
		t.Fatal("the requester was mailed about a refused upload")
	}

	// Sending again: what is left (the clean file) goes to the requester.
	resp, body = done()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("done again without the infected file: %d %s\n%s", resp.StatusCode, body, logs.String())
	}
	if e.mails.last(mail.KindFileRequestDone, "anna@example.nl") == nil {
		t.Fatal("the requester was not mailed after the clean send")
	}
}
