package web

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/kluis-nl/kluis/internal/audit"
	"github.com/kluis-nl/kluis/internal/mail"
	"github.com/kluis-nl/kluis/internal/store"
	"github.com/kluis-nl/kluis/internal/transfer"
)

// post sends a form as b and returns the status and the page.
func (b *browser) post(t *testing.T, u string, form url.Values) (*http.Response, string) {
	t.Helper()
	resp, err := b.PostForm(u, form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(body)
}

func (e *consoleEnv) revoked(t *testing.T, id string) bool {
	t.Helper()
	rows, err := e.app.DB.SearchTransfers(context.Background(), store.TransferFilter{ID: id}, 1)
	if err != nil || len(rows) != 1 {
		t.Fatalf("transfer %s: %v %v", id, rows, err)
	}
	return rows[0].RevokedAt != nil
}

// TestConsoleBulkRevoke: the helpdesk ticks transfers in the results; the
// first post only shows what will happen (how many, which, which are left
// out); a short reason changes nothing; the confirmed post revokes each
// transfer on its own (audit entry with person, role, IP and reason; mail
// to the sender) and stops at the hourly limit, saying which were not
// done. An administrator finishes the rest.
func TestConsoleBulkRevoke(t *testing.T) {
	e := newConsoleEnv(t)
	ctx := context.Background()
	a, _ := e.sendOne(t, "een@example.nl")
	b2, _ := e.sendOne(t, "twee@example.nl")
	gone, _ := e.sendOne(t, "drie@example.nl")
	if err := e.app.Transfers.Revoke(ctx, transfer.Owner{TransferID: gone}, ""); err != nil {
		t.Fatal(err)
	}
	b := e.as(t, "balie")
	_, body := b.get(t, e.app.URL+"/admin/transfers?sender=anna@gemeente.example")
	for _, id := range []string{a, b2} {
		if !strings.Contains(body, `name="id" value="`+id+`"`) {
			t.Errorf("no checkbox for %s", id)
		}
	}
	if strings.Contains(body, `name="id" value="`+gone+`"`) {
		t.Error("a checkbox for a revoked transfer")
	}
	bulk := e.app.URL + "/admin/transfers/bulk"
	ids := url.Values{"id": {a, b2, gone}}
	resp, body := b.post(t, bulk, ids)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, translate("nl", "admin.bulk_will_revoke", 2)) {
		t.Fatalf("confirmation: %d\n%s", resp.StatusCode, body)
	}
	list := body[strings.Index(body, `id="bulk-list"`):]
	list = list[:strings.Index(list, "</ul>")]
	skipped := body[strings.Index(body, `id="bulk-skipped"`):]
	if !strings.Contains(list, a) || !strings.Contains(list, b2) || strings.Contains(list, gone) || !strings.Contains(skipped, gone) {
		t.Errorf("confirmation lists %q, leaves out %q", list, skipped)
	}
	if e.revoked(t, a) || e.revoked(t, b2) {
		t.Fatal("the confirmation page revoked something")
	}
	confirm := url.Values{"id": {a, b2}, "confirm": {"1"}, "reason": {"kort"}}
	if resp, body := b.post(t, bulk, confirm); resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, translate("nl", "admin.reason_needed")) {
		t.Errorf("short reason: %d", resp.StatusCode)
	}
	if e.revoked(t, a) || e.revoked(t, b2) {
		t.Fatal("a short reason revoked something")
	}
	for _, form := range []url.Values{{}, {"confirm": {"1"}, "reason": {"Melding 2026-200"}}} {
		if resp, _ := b.post(t, bulk, form); resp.StatusCode != http.StatusBadRequest {
			t.Errorf("bulk without transfers: %d", resp.StatusCode)
		}
	}

	// 19 of the helpdesk's 20 this hour are used: one more passes.
	now := e.app.Clock.Now()
	for i := range helpdeskRevokesPerHour - 1 {
		if err := e.app.DB.InsertAudit(ctx, &store.AuditRow{At: now.Add(-time.Duration(i) * time.Minute), Actor: "sender:balie@gemeente.example",
			Action: audit.TransferRevoke, Object: fmt.Sprintf("t%d", i), Result: audit.OK, Role: "helpdesk", Reason: "test"}); err != nil {
			t.Fatal(err)
		}
	}
	reason := "Melding 2026-200: verkeerde ontvangers"
	confirm.Set("reason", reason)
	resp, body = b.post(t, bulk, confirm)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, translate("nl", "admin.bulk_revoked_n", 1)) || !strings.Contains(body, translate("nl", "admin.bulk_limited")) {
		t.Fatalf("bulk revoke: %d\n%s", resp.StatusCode, body)
	}
	if !strings.Contains(body, `data-transfer="`+a+`" data-outcome="revoked"`) || !strings.Contains(body, `data-transfer="`+b2+`" data-outcome="limited"`) {
		t.Errorf("the results do not say which were done:\n%s", body)
	}
	if !e.revoked(t, a) || e.revoked(t, b2) {
		t.Errorf("revoked: %s %v, %s %v", a, e.revoked(t, a), b2, e.revoked(t, b2))
	}
	got, err := e.app.DB.SearchAudit(ctx, store.AuditFilter{Action: audit.TransferRevoke, Object: a}, 5)
	if err != nil || len(got) != 1 || got[0].Actor != "sender:balie@gemeente.example" || got[0].Role != "helpdesk" || got[0].Reason != reason || got[0].IP == "" {
		t.Errorf("audit of %s: %+v %v", a, got, err)
	}
	if m := e.app.Delivered(mail.KindStaffRevoked, "anna@gemeente.example"); len(m) != 1 || !strings.Contains(m[0].Text, reason) || !strings.Contains(m[0].Text, a) {
		t.Errorf("the sender got %d helpdesk mails", len(m))
	}

	// The administrator is not limited; each transfer its own entry.
	resp, body = e.as(t, "beheer").post(t, bulk, url.Values{"id": {a, b2}, "confirm": {"1"}, "reason": {reason}})
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `data-transfer="`+b2+`" data-outcome="revoked"`) || strings.Contains(body, `data-transfer="`+a+`"`) {
		t.Errorf("admin bulk: %d\n%s", resp.StatusCode, body)
	}
	if got, _ := e.app.DB.SearchAudit(ctx, store.AuditFilter{Action: audit.TransferRevoke, Object: b2}, 5); len(got) != 1 || got[0].Role != "admin" || got[0].Reason != reason {
		t.Errorf("audit of %s: %+v", b2, got)
	}
}
