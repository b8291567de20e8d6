package web

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kluis-nl/kluis"
	"github.com/kluis-nl/kluis/internal/audit"
	"github.com/kluis-nl/kluis/internal/mail"
	"github.com/kluis-nl/kluis/internal/oidc/oidctest"
	"github.com/kluis-nl/kluis/internal/store"
	"github.com/kluis-nl/kluis/internal/transfer"
)

// consoleEnv is a server with staff sign-in at a real OpenID provider and
// one member of staff per role: beheer (admin), audit (auditor), balie
// (helpdesk), geen (signed in, no role) and zonder-mfa (admin group
// without a second factor).
type consoleEnv struct {
	*ssoEnv
	browsers map[string]*browser
}

func newConsoleEnv(t *testing.T) *consoleEnv {
	t.Helper()
	op := oidctest.New(t)
	a := startApp(t, TestAppOptions{
		Args: []string{"--oidc-issuer", op.Issuer, "--oidc-client-id", "kluis", "--oidc-role-admin", "kluis-admins",
			"--oidc-role-auditor", "kluis-audit", "--oidc-role-helpdesk", "servicedesk"},
		Env:    map[string]string{"KLUIS_OIDC_CLIENT_SECRET": "kluis-secret"},
		Policy: consolePolicyFile,
	})
	op.AddClient("kluis", "kluis-secret", a.URL+"/sso/callback")
	mfa := []string{"pwd", "mfa"}
	op.SetUser(oidctest.User{Subject: "beheer", Email: "beheer@gemeente.example", Name: "Bea Beheer", Groups: []string{"kluis-admins"}, AMR: mfa})
	op.SetUser(oidctest.User{Subject: "audit", Email: "audit@gemeente.example", Name: "Ad Audit", Groups: []string{"kluis-audit"}, AMR: mfa})
	op.SetUser(oidctest.User{Subject: "balie", Email: "balie@gemeente.example", Name: "Bo Balie", Groups: []string{"servicedesk"}, AMR: []string{"pwd"}})
	op.SetUser(oidctest.User{Subject: "geen", Email: "geen@gemeente.example", Name: "Gert Geen", AMR: mfa})
	op.SetUser(oidctest.User{Subject: "zonder-mfa", Email: "zonder@gemeente.example", Name: "Zeno Zonder", Groups: []string{"kluis-admins"}, AMR: []string{"pwd"}})
	e := &consoleEnv{ssoEnv: &ssoEnv{app: a, op: op}, browsers: map[string]*browser{}}
	return e
}

// consolePolicyFile is the console tests' policy: the organisation's
// domain, a deny rule and an allow rule with limits of its own.
const consolePolicyFile = `{
  "organisation_domains": ["gemeente.example"],
  "rules": [
    {"name": "geen privémail", "recipients": ["prive.example"], "action": "deny", "description": "Stuur naar een werkadres."},
    {"name": "zorgpartners", "recipients": ["*.zorg.example"], "action": "allow",
     "limits": {"password_modes": ["manual"], "max_expiry": "7d", "allow_show_filenames": false}}
  ]
}
`

// as returns a browser signed in as subject (once per subject).
func (e *consoleEnv) as(t *testing.T, subject string) *browser {
	t.Helper()
	if b, ok := e.browsers[subject]; ok {
		return b
	}
	b := newBrowser()
	if resp, body := e.signIn(t, b, subject, "/"); resp.StatusCode != http.StatusOK {
		t.Fatalf("sign-in of %s: %d\n%s", subject, resp.StatusCode, body)
	}
	e.browsers[subject] = b
	return b
}

// mailedCode returns a browser with a mailed-code session of an outside
// sender: no roles.
func (e *consoleEnv) mailedCode(t *testing.T) *browser {
	t.Helper()
	if b, ok := e.browsers["code"]; ok {
		return b
	}
	ctx := context.Background()
	pre, err := e.app.Senders.Start(ctx, "", "burger@example.nl", "", "", "nl")
	if err != nil {
		t.Fatal(err)
	}
	got := e.app.Delivered(mail.KindVerifyCode, "burger@example.nl")
	if len(got) == 0 {
		t.Fatal("no verification mail")
	}
	s, err := e.app.Senders.Confirm(ctx, pre, codePattern.FindString(got[0].Text), "browser")
	if err != nil {
		t.Fatal(err)
	}
	b := newBrowser()
	u, _ := url.Parse(e.app.URL)
	b.Jar.SetCookies(u, []*http.Cookie{{Name: senderSessionCookie, Value: s.Token, Path: "/"}})
	e.browsers["code"] = b
	return b
}

// secrets are the texts of a transfer the console must never show.
var secrets = []string{"Geheim onderwerp 7731", "Het geheime bericht 5512", "belastingaangifte-2026.pdf", "Anna Afzender", "ZAAK-99881"}

// sendOne makes a finished transfer from a staff address to recipient,
// with a subject, message, reference, file and sender name that must stay
// out of the console.
func (e *consoleEnv) sendOne(t *testing.T, recipient string) (id string, hidden []string) {
	t.Helper()
	ctx := context.Background()
	svc := e.app.Transfers
	c, err := svc.Create(ctx, transfer.CreateRequest{
		SenderEmail: "anna@gemeente.example", SenderName: secrets[3], To: []string{recipient},
		Subject: secrets[0], Message: secrets[1], Reference: secrets[4], Lang: "nl", PasswordMode: kluis.PasswordGenerate,
	})
	if err != nil {
		t.Fatal(err)
	}
	o, err := svc.AuthorizeUpload(ctx, c.UploadToken)
	if err != nil {
		t.Fatal(err)
	}
	data := []byte("inhoud van het bestand 4471")
	f, err := svc.NewFile(ctx, o, secrets[2], "application/pdf", int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.WriteFile(ctx, o, f.ID, 0, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.CompleteFile(ctx, o, f.ID); err != nil {
		t.Fatal(err)
	}
	fin, err := svc.Finish(ctx, o, c.LinkSecret)
	if err != nil {
		t.Fatal(err)
	}
	hidden = append([]string{c.Password, c.LinkSecret, c.UploadToken, fin.Links[0].AccessID, fin.Links[0].Code, string(data)}, secrets...)
	return o.TransferID, hidden
}

// TestConsoleRolesPerRoute: every console route with each role, with a
// staff sign-in without a role, with a mailed-code session and with no
// session at all.
func TestConsoleRolesPerRoute(t *testing.T) {
	e := newConsoleEnv(t)
	id, _ := e.sendOne(t, "burger@example.nl")
	revoke := "/admin/transfers/" + id + "/revoke"
	keyID, _, err := e.app.Senders.CreateAPIKey(context.Background(), "script@gemeente.example")
	if err != nil {
		t.Fatal(err)
	}
	e.mailedCode(t) // before a mail is stuck: it waits for an empty queue
	pending, failed := e.stuckMail(t, "wachtend@example.nl", false), e.stuckMail(t, "mislukt@example.nl", true)
	routes := []struct {
		path  string
		allow []string
	}{
		{"/admin", []string{"beheer", "audit", "balie"}},
		{"/admin/transfers?sender=anna@gemeente.example", []string{"beheer", "balie"}},
		{revoke, []string{"beheer", "balie"}},
		{"/admin/audit", []string{"beheer", "audit"}},
		{"/admin/audit/export?format=csv", []string{"beheer", "audit"}},
		{"/admin/stats", []string{"beheer", "audit"}},
		{"/admin/keys", []string{"beheer"}},
		{"/admin/keys/" + keyID, []string{"beheer"}},
		{"/admin/mail", []string{"beheer", "audit"}},
		{"/admin/mail?state=pending", []string{"beheer", "audit"}},
		{"/admin/mail/" + pending + "/drop", []string{"beheer"}},
		{"/admin/mail/" + failed + "/drop", []string{"beheer"}},
		{"/admin/policy", []string{"beheer", "audit", "balie"}},
		{"/admin/policy?sender=anna@gemeente.example&recipient=burger@example.nl", []string{"beheer", "audit", "balie"}},
	}
	lang := "nl"
	for _, rt := range routes {
		for _, who := range []string{"beheer", "audit", "balie", "geen", "zonder-mfa", "code"} {
			var b *browser
			if who == "code" {
				b = e.mailedCode(t)
			} else {
				b = e.as(t, who)
			}
			resp, body := b.get(t, e.app.URL+rt.path)
			allowed := strings.Contains(strings.Join(rt.allow, " "), who)
			switch {
			case allowed && resp.StatusCode != http.StatusOK:
				t.Errorf("%s as %s: %d, want 200\n%s", rt.path, who, resp.StatusCode, body)
			case !allowed && resp.StatusCode != http.StatusForbidden:
				t.Errorf("%s as %s: %d, want 403", rt.path, who, resp.StatusCode)
			case !allowed:
				// zonder-mfa's admin role was withheld for want of a
				// second factor, and every page is for admins too.
				want := map[string]string{"zonder-mfa": "admin.forbidden_mfa", "code": "admin.forbidden_code"}[who]
				if want == "" {
					want = "admin.forbidden_role"
				}
				if !strings.Contains(body, translate(lang, want)) {
					t.Errorf("%s as %s: the 403 page does not say %s\n%s", rt.path, who, want, body)
				}
			}
		}
		// No session: to the staff sign-in, coming back here.
		c := newBrowser()
		c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
		resp, _ := c.get(t, e.app.URL+rt.path)
		if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(loc, "/sso/start?next=") {
			t.Errorf("%s without a session: %d to %q", rt.path, resp.StatusCode, loc)
		}
	}
	// A revocation posted by a role without the right changes nothing.
	for _, who := range []string{"audit", "geen", "zonder-mfa"} {
		resp, err := e.as(t, who).PostForm(e.app.URL+revoke, url.Values{"reason": {"Verzoek van de afzender"}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("POST %s as %s: %d", revoke, who, resp.StatusCode)
		}
	}
	if rows, _ := e.app.DB.SearchTransfers(context.Background(), store.TransferFilter{ID: id}, 1); len(rows) != 1 || rows[0].RevokedAt != nil {
		t.Fatalf("the transfer was revoked by a refused request: %+v", rows)
	}
	// Neither are the mail queue's actions nor a policy check, and no
	// mail changed.
	for _, who := range []string{"audit", "balie", "geen", "zonder-mfa", "code"} {
		b := e.mailedCode(t)
		if who != "code" {
			b = e.as(t, who)
		}
		for _, path := range []string{"/admin/mail/" + pending + "/retry", "/admin/mail/" + pending + "/drop", "/admin/mail/" + failed + "/drop"} {
			resp, err := b.PostForm(e.app.URL+path, url.Values{"reason": {"Verzoek van de afzender"}})
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusForbidden {
				t.Errorf("POST %s as %s: %d", path, who, resp.StatusCode)
			}
		}
	}
	for _, who := range []string{"geen", "zonder-mfa", "code"} {
		b := e.mailedCode(t)
		if who != "code" {
			b = e.as(t, who)
		}
		resp, err := b.PostForm(e.app.URL+"/admin/policy/validate", url.Values{"text": {"{}"}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("POST /admin/policy/validate as %s: %d", who, resp.StatusCode)
		}
	}
	for _, m := range []string{pending, failed} {
		if got, _, err := e.app.DB.OutboxMail(context.Background(), m, e.app.Clock.Now()); err != nil || got.Attempts != 3 {
			t.Errorf("mail %s after refused requests: %+v %v", m, got, err)
		}
	}
	if got, _ := e.app.DB.SearchAudit(context.Background(), store.AuditFilter{Action: audit.MailDrop}, 5); len(got) != 0 {
		t.Errorf("refused requests left audit entries: %+v", got)
	}
	// The menu shows what the role opens, and nothing else.
	_, body := e.as(t, "balie").get(t, e.app.URL+"/admin")
	if !strings.Contains(body, `href="/admin/transfers"`) || strings.Contains(body, `href="/admin/audit"`) || strings.Contains(body, `href="/admin/stats"`) ||
		strings.Contains(body, `href="/admin/mail"`) || !strings.Contains(body, `href="/admin/policy"`) {
		t.Errorf("the helpdesk's menu:\n%s", body)
	}
	_, body = e.as(t, "audit").get(t, e.app.URL+"/admin")
	if strings.Contains(body, `href="/admin/transfers"`) || !strings.Contains(body, `href="/admin/audit"`) || !strings.Contains(body, `href="/admin/stats"`) ||
		!strings.Contains(body, `href="/admin/mail"`) || !strings.Contains(body, `href="/admin/policy"`) {
		t.Errorf("the auditor's menu:\n%s", body)
	}
}

// TestConsoleTransferSearchMetadataOnly: the search finds a transfer by
// id, sender, recipient, state and date, and shows none of its content:
// no subject, message, reference, file name, sender name, password, link
// secret, code or file bytes. A wrong date says what to fix.
func TestConsoleTransferSearchMetadataOnly(t *testing.T) {
	e := newConsoleEnv(t)
	id, hidden := e.sendOne(t, "Burger@Example.nl")
	other, _ := e.sendOne(t, "iemand@example.nl")
	today := e.app.Clock.Now().UTC().Format(time.DateOnly)
	b := e.as(t, "balie")
	for _, q := range []string{
		"id=" + id,
		"sender=ANNA@gemeente.example&recipient=burger@example.nl",
		"recipient=burger@example.nl&state=ready",
		"sender=anna@gemeente.example&from=" + today + "&to=" + today,
	} {
		resp, body := b.get(t, e.app.URL+"/admin/transfers?"+q)
		if resp.StatusCode != http.StatusOK || !strings.Contains(body, `data-transfer="`+id+`"`) {
			t.Errorf("?%s: %d, transfer %s not listed\n%s", q, resp.StatusCode, id, body)
		}
		if q != "sender=anna@gemeente.example&from="+today+"&to="+today && strings.Contains(body, `data-transfer="`+other+`"`) {
			t.Errorf("?%s lists the other transfer", q)
		}
		for _, h := range hidden {
			if h != "" && strings.Contains(body, h) {
				t.Errorf("?%s shows %q", q, h)
			}
		}
	}
	for _, q := range []string{"state=revoked&id=" + id, "recipient=niemand@example.nl", "to=2001-01-01"} {
		_, body := b.get(t, e.app.URL+"/admin/transfers?"+q)
		if strings.Contains(body, `data-transfer="`+id+`"`) || !strings.Contains(body, translate("nl", "admin.no_results")) {
			t.Errorf("?%s lists the transfer, or does not say nothing was found", q)
		}
	}
	for q, key := range map[string]string{"from=gisteren": "admin.bad_date", "from=2026-12-31&to=2026-01-01": "admin.bad_date", "state=weg": "admin.bad_state", "before=x": "admin.bad_page"} {
		resp, body := b.get(t, e.app.URL+"/admin/transfers?"+q)
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, translate("nl", key)) {
			t.Errorf("?%s: %d, no %s", q, resp.StatusCode, key)
		}
	}
	// The revoke page shows the same metadata, and no content either.
	_, body := b.get(t, e.app.URL+"/admin/transfers/"+id+"/revoke")
	for _, h := range hidden {
		if h != "" && strings.Contains(body, h) {
			t.Errorf("the revoke page shows %q", h)
		}
	}
	if resp, _ := b.get(t, e.app.URL+"/admin/transfers/bestaat-niet/revoke"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("revoke page of an unknown id: %d", resp.StatusCode)
	}
}

// TestConsoleRevokeAuditedAndLimited: the helpdesk revokes with a reason;
// the recipient is told; the audit log names the person, role, IP address
// and reason, and the auditor finds it on the audit page and in both
// exports (which are audited too). Without a reason nothing happens, and
// past the hourly limit the helpdesk is refused.
func TestConsoleRevokeAuditedAndLimited(t *testing.T) {
	e := newConsoleEnv(t)
	ctx := context.Background()
	id, _ := e.sendOne(t, "burger@example.nl")
	b := e.as(t, "balie")
	revoke := e.app.URL + "/admin/transfers/" + id + "/revoke"

	resp, err := b.PostForm(revoke, url.Values{"reason": {"kort"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("a reason of 4 characters: %d", resp.StatusCode)
	}
	reason := "Melding 2026-118: verkeerde ontvanger"
	resp, err = b.PostForm(revoke, url.Values{"reason": {reason}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Request.URL.Query().Get("done") != "revoked" {
		t.Fatalf("revoke: %d at %s", resp.StatusCode, resp.Request.URL)
	}
	rows, err := e.app.DB.SearchTransfers(ctx, store.TransferFilter{ID: id}, 1)
	if err != nil || len(rows) != 1 || rows[0].RevokedAt == nil {
		t.Fatalf("not revoked: %+v %v", rows, err)
	}
	if got := e.app.Delivered(mail.KindRevoked, "burger@example.nl"); len(got) != 1 {
		t.Errorf("the recipient got %d revocation mails", len(got))
	}
	entries, err := e.app.DB.SearchAudit(ctx, store.AuditFilter{Action: audit.TransferRevoke, Object: id}, 5)
	if err != nil || len(entries) != 1 {
		t.Fatalf("audit: %d entries, %v", len(entries), err)
	}
	a := entries[0]
	if a.Actor != "sender:balie@gemeente.example" || a.Role != "helpdesk" || a.Reason != reason || a.IP == "" || a.Result != audit.OK {
		t.Errorf("audit entry: %+v", a)
	}
	// Again: already revoked, said so, no second entry.
	resp, err = b.PostForm(revoke, url.Values{"reason": {reason}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Request.URL.Query().Get("done") != "already" {
		t.Errorf("second revoke ended at %s", resp.Request.URL)
	}

	// The auditor sees it, filtered, and exports it.
	au := e.as(t, "audit")
	_, body := au.get(t, e.app.URL+"/admin/audit?action=transfer.revoke&actor=sender:balie@gemeente.example")
	if !strings.Contains(body, reason) || !strings.Contains(body, "helpdesk") || !strings.Contains(body, `data-audit="`+strconv.FormatInt(a.ID, 10)+`"`) {
		t.Errorf("the audit page does not show the revocation:\n%s", body)
	}
	if strings.Contains(body, "transfer.create") {
		t.Error("the filtered audit page shows other actions")
	}
	resp, csvBody := au.get(t, e.app.URL+"/admin/audit/export?format=csv&object="+id+"&action=transfer.revoke")
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/csv") {
		t.Fatalf("CSV export: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	recs, err := csv.NewReader(strings.NewReader(csvBody)).ReadAll()
	if err != nil || len(recs) != 2 || recs[1][3] != audit.TransferRevoke || recs[1][8] != "helpdesk" || recs[1][9] != reason {
		t.Fatalf("CSV export: %v %q", err, recs)
	}
	resp, jsonBody := au.get(t, e.app.URL+"/admin/audit/export?format=json&object="+id)
	var n int
	for line := range strings.Lines(jsonBody) {
		var en audit.Entry
		if err := json.Unmarshal([]byte(line), &en); err != nil || en.Object != id {
			t.Errorf("JSON line %q: %v", line, err)
		}
		n++
	}
	if resp.StatusCode != http.StatusOK || n < 3 { // create, finish, revoke at least
		t.Errorf("JSON export: %d, %d entries", resp.StatusCode, n)
	}
	if resp, _ := au.get(t, e.app.URL+"/admin/audit/export?format=xml"); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("export as xml: %d", resp.StatusCode)
	}
	exports, err := e.app.DB.SearchAudit(ctx, store.AuditFilter{Action: audit.AuditExport}, 10)
	if err != nil || len(exports) != 2 || exports[0].Actor != "sender:audit@gemeente.example" || exports[0].Role != "auditor" ||
		!strings.Contains(exports[1].Detail, "object:"+id) {
		t.Errorf("exports in the audit log: %v", err)
		for _, x := range exports {
			t.Logf("%+v", x)
		}
	}

	// The hourly limit: 20 revocations by balie in the last hour.
	now := e.app.Clock.Now()
	for i := range helpdeskRevokesPerHour {
		if err := e.app.DB.InsertAudit(ctx, &store.AuditRow{At: now.Add(-time.Duration(i) * time.Minute), Actor: "sender:balie@gemeente.example",
			Action: audit.TransferRevoke, Object: fmt.Sprintf("t%d", i), Result: audit.OK, Role: "helpdesk", Reason: "test"}); err != nil {
			t.Fatal(err)
		}
	}
	id2, _ := e.sendOne(t, "burger@example.nl")
	resp, err = b.PostForm(e.app.URL+"/admin/transfers/"+id2+"/revoke", url.Values{"reason": {reason}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests {
		t.Errorf("past the limit: %d", resp.StatusCode)
	}
	// An administrator is not limited.
	resp, err = e.as(t, "beheer").PostForm(e.app.URL+"/admin/transfers/"+id2+"/revoke", url.Values{"reason": {reason}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Request.URL.Query().Get("done") != "revoked" {
		t.Errorf("admin revoke: %d at %s", resp.StatusCode, resp.Request.URL)
	}
	if got, _ := e.app.DB.SearchAudit(ctx, store.AuditFilter{Action: audit.TransferRevoke, Object: id2}, 5); len(got) != 1 || got[0].Role != "admin" {
		t.Errorf("admin's revocation in the audit log: %+v", got)
	}
}

// TestConsoleStatsMatchDatabase: the figures of today on the statistics
// page are the counts made from the database.
func TestConsoleStatsMatchDatabase(t *testing.T) {
	e := newConsoleEnv(t)
	ctx := context.Background()
	for _, to := range []string{"een@example.nl", "twee@example.nl", "drie@example.nl"} {
		e.sendOne(t, to)
	}
	// One more created, never sent.
	if _, err := e.app.Transfers.Create(ctx, transfer.CreateRequest{SenderEmail: "anna@gemeente.example", SenderName: "Anna", To: []string{"vier@example.nl"},
		Lang: "nl", PasswordMode: kluis.PasswordGenerate}); err != nil {
		t.Fatal(err)
	}
	now := e.app.Clock.Now().UTC()
	today := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC)
	count := map[string]int64{}
	err := e.app.DB.AuditSince(ctx, today, func(a *store.AuditRow) error {
		count[a.Action]++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	made, err := e.app.DB.SearchTransfers(ctx, store.TransferFilter{From: today}, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(made) != 4 || count[audit.TransferCreate] != 4 || count[audit.TransferFinish] != 3 {
		t.Fatalf("the database: %d transfers, %v", len(made), count)
	}
	resp, body := e.as(t, "audit").get(t, e.app.URL+"/admin/stats")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/admin/stats: %d", resp.StatusCode)
	}
	for _, sel := range []string{`data-day="` + today.Format(time.DateOnly) + `"`, `data-month="` + today.Format("2006-01") + `"`} {
		i := strings.Index(body, sel)
		if i < 0 {
			t.Fatalf("no row %s:\n%s", sel, body)
		}
		row := body[i : i+strings.Index(body[i:], "</tr>")]
		for metric, want := range map[string]int64{"created": int64(len(made)), "sent": count[audit.TransferFinish], "files": count[audit.FileComplete],
			"downloads": count[audit.FileDownload] + count[audit.ZipDownload], "lockouts": count[audit.RecipientLocked]} {
			m := regexp.MustCompile(`data-metric="` + metric + `">(\d+)<`).FindStringSubmatch(row)
			if m == nil || m[1] != strconv.FormatInt(want, 10) {
				t.Errorf("%s %s: %v, the database says %d", sel, metric, m, want)
			}
		}
	}
	// The chart: one bar per day, today's as high as the highest.
	if n := strings.Count(body, `class="kluis-chart__bar"`); n != statsDays {
		t.Errorf("%d bars, want %d", n, statsDays)
	}
	if !strings.Contains(body, translate("nl", "admin.chart_desc", count[audit.TransferFinish])) {
		t.Error("the chart's description does not give the highest day")
	}
}
