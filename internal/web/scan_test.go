package web

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/kluis-nl/kluis"
	"github.com/kluis-nl/kluis/internal/kluistest"
	"github.com/kluis-nl/kluis/internal/locale"
	"github.com/kluis-nl/kluis/internal/mail"
	"github.com/kluis-nl/kluis/internal/ratelimit"
	"github.com/kluis-nl/kluis/internal/scan/scantest"
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
