package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/kluis-nl/kluis/internal/oidc/oidctest"
	"github.com/kluis-nl/kluis/internal/store"
)

// TestBrowserAdminMailAndPolicy (issue 19): an administrator signed in at
// a real OpenID provider (oidctest, with a second factor) reads the mail
// queue (failed and waiting mails, masked), deletes a failed mail with a
// reason after a first try without one, reads the policy page, tests a
// refused and an allowed pair and checks a new policy file with an error.
// Every page passes axe and reflows at 320 px, in Dutch and in English.
func TestBrowserAdminMailAndPolicy(t *testing.T) {
	cfg := t.TempDir()
	policyFile := filepath.Join(cfg, "policy.json")
	if err := os.WriteFile(policyFile, []byte(`{"organisation_domains": ["gemeente.example"],
  "rules": [{"name": "geen privémail", "recipients": ["prive.example"], "action": "deny", "description": "Stuur naar een werkadres."},
            {"name": "zorgpartners", "recipients": ["*.zorg.example"], "action": "allow", "limits": {"password_modes": ["manual"], "max_expiry": "7d"}}]}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	s, _ := startAdminServer(t, "--policy", policyFile)

	// Mails as the worker leaves them after failures: one waiting for its
	// next try, and per language one given up (content erased) that the
	// 1280 px round deletes, and one more given up.
	ctx := context.Background()
	db, err := store.Open(ctx, "", s.data)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	now := time.Now()
	failed := map[string]string{"nl": "mislukt-nl-0001", "en": "mislukt-en-0002"}
	rows := []*store.OutboxRow{{ID: "wachtend-0003", Kind: "notify", CreatedAt: now.Add(-time.Hour), NotBefore: now.Add(time.Hour), Attempts: 4,
		LastError: "421 4.7.0 <burger@example.nl>: try again later", Sealed: []byte("sealed"), RecipientMasked: "b…@example.nl"}}
	for _, id := range []string{failed["nl"], failed["en"], "blijft-0004"} { // the last stays for the 320 px pages
		at := now.Add(-time.Minute)
		rows = append(rows, &store.OutboxRow{ID: id, Kind: "confirm", CreatedAt: now.Add(-2 * time.Hour), NotBefore: at, Attempts: 1, FailedAt: &at,
			LastError: "550 5.1.1 <anna.jansen@gemeente.example>: no such user", RecipientMasked: "a…@gemeente.example"})
	}
	for _, r := range rows {
		if err := db.InsertOutbox(ctx, r); err != nil {
			t.Fatal(err)
		}
	}

	for _, width := range []int64{1280, 320} {
		suffix := "-1280"
		if width == 320 {
			suffix = "-320"
		}
		b := newBrowser(t, s.base, suffix)
		if width == 320 {
			b.viewport(320, 640)
		}
		b.open("/sso/start?next=/admin")
		b.do(chromedp.SetValue(chromedp.ID("username"), "beheer"))
		b.submit("#submit")
		if p := b.path(); p != "/admin" {
			t.Fatalf("after the sign-in: %s %q", p, b.text("main"))
		}
		page := func(name string) {
			t.Helper()
			if body := b.text("body"); strings.Contains(body, "burger@") || strings.Contains(body, "anna.jansen") {
				t.Errorf("%s%s shows a whole address", name, suffix)
			}
			b.check(name)
			if width == 320 {
				b.noSideways(name)
			}
		}
		for _, lang := range []string{"nl", "en"} {
			b.setLang(lang, "/admin")
			b.open("/admin/mail")
			if !strings.Contains(b.eval(`(document.getElementById("mail-results") || {}).textContent || ""`), "a…@gemeente.example") {
				t.Fatalf("the failed mails are not listed at %s: %q", b.path(), b.eval(`document.body.innerText`))
			}
			page("mail-failed-" + lang)
			b.open("/admin/mail?state=pending")
			if !strings.Contains(b.eval(`(document.getElementById("mail-results") || {}).textContent || ""`), "b…@example.nl") {
				t.Fatalf("the waiting mail is not listed at %s: %q", b.path(), b.eval(`document.body.innerText`))
			}
			page("mail-pending-" + lang)

			if width == 1280 {
				// Drop: first with too short a reason (an error), then with one.
				b.open("/admin/mail/" + failed[lang] + "/drop")
				page("mail-drop-" + lang)
				b.withReason(page, "mail-drop-error-"+lang, "Adres bestaat niet ("+lang+")", "done=dropped")
				page("mail-dropped-" + lang)
			} else {
				b.open("/admin/mail/wachtend-0003/drop")
				page("mail-drop-" + lang)
			}

			b.open("/admin/policy?sender=anna@gemeente.example&recipient=iemand@prive.example")
			if b.eval(`document.getElementById("policy-answer").dataset.allowed`) != "false" {
				t.Errorf("the refused pair is not refused: %q", b.text("main"))
			}
			page("policy-refused-" + lang)
			b.open("/admin/policy?sender=anna@gemeente.example&recipient=jan@huisarts.zorg.example")
			if b.eval(`document.getElementById("policy-answer").dataset.allowed`) != "true" {
				t.Errorf("the allowed pair is not allowed: %q", b.text("main"))
			}
			page("policy-allowed-" + lang)
			b.do(chromedp.SetValue(chromedp.ID("policy-text"), "{\n  \"defaults\": {\"max_expiry\": \"soms\"}\n}"))
			b.submit("form[action='/admin/policy/validate'] button[type=submit]")
			if !strings.Contains(b.text("#policy-invalid"), "defaults.max_expiry") {
				t.Errorf("the validation does not name the field: %q", b.text("main"))
			}
			page("policy-invalid-" + lang)
		}
	}
	// The drops at 1280 px: gone, each in the audit log with the person,
	// role and reason.
	for lang, id := range failed {
		if _, _, err := db.OutboxMail(ctx, id, time.Now()); err != store.ErrNotFound {
			t.Errorf("mail %s is still there: %v", id, err)
		}
		got, err := db.SearchAudit(ctx, store.AuditFilter{Action: "admin.mail_drop", Object: id}, 5)
		if err != nil || len(got) != 1 || got[0].Actor != "sender:beheer@gemeente.example" || got[0].Role != "admin" || got[0].Reason != "Adres bestaat niet ("+lang+")" {
			t.Errorf("drop of %s in the audit log: %+v %v", id, got, err)
		}
	}
}

// startAdminServer starts a server with staff sign-in at a real OpenID
// provider (oidctest) where beheer@gemeente.example is in the group
// kluis-admins (the administrator role) and signs in with a second
// factor; args are more flags of kluis serve. It returns the server and
// the provider's issuer URL.
func startAdminServer(t *testing.T, args ...string) (*server, string) {
	t.Helper()
	op := oidctest.New(t)
	op.SetUser(oidctest.User{Subject: "beheer", Email: "beheer@gemeente.example", Name: "Bea Beheer", Groups: []string{"kluis-admins"}, AMR: []string{"pwd", "mfa"}})
	secretFile := filepath.Join(t.TempDir(), "oidc.secret")
	if err := os.WriteFile(secretFile, []byte("staff-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := startBrowserServer(t, append([]string{"--oidc-issuer", op.Issuer, "--oidc-client-id", "kluis", "--oidc-client-secret-file", secretFile,
		"--oidc-role-admin", "kluis-admins"}, args...)...)
	op.AddClient("kluis", "staff-secret", s.base+"/sso/callback")
	return s, op.Issuer
}

// withReason submits the admin console's reason form first with too
// short a reason (the page must mark the field, checked as errorPage),
// then with reason, which must end at a page whose address holds done.
func (b *tab) withReason(page func(string), errorPage, reason, done string) {
	b.t.Helper()
	b.do(chromedp.SetValue(chromedp.ID("reason"), "kort"))
	b.submit("main form button[type=submit]")
	if b.eval(`document.getElementById("reason").getAttribute("aria-invalid")`) != "true" {
		b.t.Errorf("a short reason: no error at %s", b.path())
	}
	page(errorPage)
	b.do(chromedp.SetValue(chromedp.ID("reason"), reason))
	b.submit("main form button[type=submit]")
	if !strings.Contains(b.path(), done) {
		b.t.Fatalf("after the reason: %s %q", b.path(), b.text("main"))
	}
}
