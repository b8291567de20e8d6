package web

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/kluis-nl/kluis/internal/audit"
	"github.com/kluis-nl/kluis/internal/mail"
	"github.com/kluis-nl/kluis/internal/store"
)

// The texts of a queued mail that the mail queue page must never show.
const (
	stuckSubject = "Onderwerp van de kennisgeving 5531"
	stuckLink    = "https://kluis.example/r/geheime-link-4410"
)

// stuckMail queues a real notification to `to` through the outbox, then
// records three failed tries (the relay named the address in its error)
// and a next try in an hour, as the worker does; failed: then given up
// (its content erased), as after a permanent refusal.
func (e *consoleEnv) stuckMail(t *testing.T, to string, failed bool) string {
	t.Helper()
	ctx := context.Background()
	tx, err := e.app.DB.BeginTx(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	id, err := e.app.Outbox.Enqueue(ctx, tx, &mail.Message{Kind: mail.KindNotify, Lang: "nl", To: to, Subject: stuckSubject,
		Text: "Open " + stuckLink, HTML: "<p>Open " + stuckLink + "</p>"})
	if err != nil {
		t.Fatal(err)
	}
	now := e.app.Clock.Now()
	if err := tx.RetryOutbox(ctx, id, now.Add(time.Hour), 3, "450 4.2.1 <"+to+">: mailbox busy, try later"); err != nil {
		t.Fatal(err)
	}
	if failed {
		if err := tx.FailOutbox(ctx, id, now, "550 5.1.1 <"+to+">: no such user"); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	return id
}

// TestConsoleMailQueue: the administrator sees failed and waiting mails
// with the recipient and the error's addresses masked and nothing of the
// mail itself; sends a waiting mail now (it is delivered) and deletes a
// failed one with a reason; both are in the audit log with the person,
// role, IP address and reason. A failed mail cannot be retried (its
// content is gone); a drop without a reason changes nothing. The auditor
// reads the same lists without the actions.
func TestConsoleMailQueue(t *testing.T) {
	e := newConsoleEnv(t)
	ctx := context.Background()
	pending := e.stuckMail(t, "Wachtend.Persoon@example.nl", false)
	failed := e.stuckMail(t, "mislukt@voorbeeld.example", true)
	admin := e.as(t, "beheer")
	hidden := []string{"Wachtend.Persoon", "wachtend.persoon", "mislukt@", stuckSubject, stuckLink, "geheime-link"}

	check := func(who, query, want, notWant string, actions bool) string {
		t.Helper()
		resp, body := e.as(t, who).get(t, e.app.URL+"/admin/mail"+query)
		if resp.StatusCode != http.StatusOK || !strings.Contains(body, `data-mail="`+want+`"`) || strings.Contains(body, `data-mail="`+notWant+`"`) {
			t.Fatalf("%s %s: %d, want mail %s and not %s\n%s", who, query, resp.StatusCode, want, notWant, body)
		}
		for _, h := range hidden {
			if strings.Contains(body, h) {
				t.Errorf("%s %s shows %q", who, query, h)
			}
		}
		if got := strings.Contains(body, "/admin/mail/"+want+"/drop"); got != actions {
			t.Errorf("%s %s: drop link shown %v, want %v", who, query, got, actions)
		}
		return body
	}
	body := check("beheer", "", failed, pending, true) // failed by default
	if !strings.Contains(body, "m…@voorbeeld.example") || !strings.Contains(body, "550 5.1.1 &lt;m…@voorbeeld.example&gt;: no such user") {
		t.Errorf("the failed mail's masked recipient or error is missing:\n%s", body)
	}
	if strings.Contains(body, "/admin/mail/"+failed+"/retry") {
		t.Error("a failed mail offers a retry; its content is gone")
	}
	body = check("beheer", "?state=pending", pending, failed, true)
	if !strings.Contains(body, "W…@example.nl") || !strings.Contains(body, `action="/admin/mail/`+pending+`/retry"`) {
		t.Errorf("the waiting mail's masked recipient or retry is missing:\n%s", body)
	}
	check("audit", "", failed, pending, false)
	if _, body := e.as(t, "audit").get(t, e.app.URL+"/admin/mail?state=pending"); strings.Contains(body, "/retry") {
		t.Error("the auditor is offered a retry")
	}
	if resp, body := admin.get(t, e.app.URL+"/admin/mail?state=weg"); resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, translate("nl", "admin.mail_bad_state")) {
		t.Errorf("a wrong state: %d", resp.StatusCode)
	}

	// Retry: the waiting mail goes out now, once.
	resp, err := admin.PostForm(e.app.URL+"/admin/mail/"+pending+"/retry", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Request.URL.Query().Get("done") != "retried" {
		t.Fatalf("retry: %d at %s", resp.StatusCode, resp.Request.URL)
	}
	if got := e.app.Delivered(mail.KindNotify, "Wachtend.Persoon@example.nl"); len(got) != 1 || got[0].Subject != stuckSubject {
		t.Errorf("after the retry the recipient got %d mails", len(got))
	}
	if _, _, err := e.app.DB.OutboxMail(ctx, pending, e.app.Clock.Now()); err != store.ErrNotFound {
		t.Errorf("the retried mail is still queued: %v", err)
	}
	entries, err := e.app.DB.SearchAudit(ctx, store.AuditFilter{Action: audit.MailRetry, Object: pending}, 5)
	if err != nil || len(entries) != 1 || entries[0].Actor != "sender:beheer@gemeente.example" || entries[0].Role != "admin" || entries[0].IP == "" ||
		!strings.Contains(entries[0].Detail, "kind=notify state=pending attempts=3") || strings.Contains(entries[0].Detail, "@") {
		t.Errorf("retry in the audit log: %+v %v", entries, err)
	}

	// A failed mail cannot be retried: nothing changes, nothing is audited.
	resp, err = admin.PostForm(e.app.URL+"/admin/mail/"+failed+"/retry", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Request.URL.Query().Get("done") != "gone" {
		t.Errorf("retry of a failed mail ended at %s", resp.Request.URL)
	}
	if got, _ := e.app.DB.SearchAudit(ctx, store.AuditFilter{Action: audit.MailRetry, Object: failed}, 5); len(got) != 0 {
		t.Errorf("a retry that did nothing is audited: %+v", got)
	}

	// Drop: the confirmation page, then a reason is required.
	drop := e.app.URL + "/admin/mail/" + failed + "/drop"
	resp, body = admin.get(t, drop)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, translate("nl", "admin.mail_drop_failed_text")) || strings.Contains(body, "mislukt@") {
		t.Fatalf("drop page: %d\n%s", resp.StatusCode, body)
	}
	resp, err = admin.PostForm(drop, url.Values{"reason": {"kort"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("drop with a reason of 4 characters: %d", resp.StatusCode)
	}
	if _, _, err := e.app.DB.OutboxMail(ctx, failed, e.app.Clock.Now()); err != nil {
		t.Fatalf("the mail went without a reason: %v", err)
	}
	reason := "Adres bestaat niet, melding 2026-301"
	resp, err = admin.PostForm(drop, url.Values{"reason": {reason}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Request.URL.Query().Get("done") != "dropped" {
		t.Fatalf("drop ended at %s", resp.Request.URL)
	}
	if _, _, err := e.app.DB.OutboxMail(ctx, failed, e.app.Clock.Now()); err != store.ErrNotFound {
		t.Errorf("the dropped mail is still there: %v", err)
	}
	entries, err = e.app.DB.SearchAudit(ctx, store.AuditFilter{Action: audit.MailDrop, Object: failed}, 5)
	if err != nil || len(entries) != 1 || entries[0].Actor != "sender:beheer@gemeente.example" || entries[0].Role != "admin" || entries[0].Reason != reason ||
		entries[0].IP == "" || !strings.Contains(entries[0].Detail, "state=failed") {
		t.Errorf("drop in the audit log: %+v %v", entries, err)
	}
	// The auditor finds both actions on the audit page, with the person.
	_, body = e.as(t, "audit").get(t, e.app.URL+"/admin/audit?actor=sender:beheer@gemeente.example")
	for _, want := range []string{audit.MailRetry, audit.MailDrop, reason} {
		if !strings.Contains(body, want) {
			t.Errorf("the audit page lacks %q", want)
		}
	}
	// Dropping it again: gone, said so.
	if resp, _ := admin.get(t, drop); resp.StatusCode != http.StatusNotFound {
		t.Errorf("drop page of a dropped mail: %d", resp.StatusCode)
	}

	// A waiting mail dropped is never sent.
	later := e.stuckMail(t, "later@example.nl", false)
	resp, err = admin.PostForm(e.app.URL+"/admin/mail/"+later+"/drop", url.Values{"reason": {reason}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Request.URL.Query().Get("done") != "dropped" {
		t.Fatalf("drop of a waiting mail ended at %s", resp.Request.URL)
	}
	e.app.Clock.Advance(2 * time.Hour)
	if got := e.app.Delivered(mail.KindNotify, "later@example.nl"); len(got) != 0 {
		t.Errorf("a dropped mail was delivered")
	}
}
