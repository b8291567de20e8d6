package web

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/kluis-nl/kluis/internal/audit"
	"github.com/kluis-nl/kluis/internal/sender"
	"github.com/kluis-nl/kluis/internal/store"
)

// TestConsolePostsPerRole: every console route that takes a POST, with
// each role, a staff sign-in without a role, a mailed-code session and no
// session. A refused post changes nothing; the allowed ones answer with
// their page (the forms here are incomplete where acting would change
// something, so the answer is the form with what to fix).
func TestConsolePostsPerRole(t *testing.T) {
	e := newConsoleEnv(t)
	ctx := context.Background()
	id, _ := e.sendOne(t, "burger@example.nl")
	keyID, _, err := e.app.Senders.CreateAPIKey(ctx, "script@gemeente.example")
	if err != nil {
		t.Fatal(err)
	}
	posts := []struct {
		path   string
		form   url.Values
		allow  []string
		status int // of an allowed role
	}{
		{"/admin/transfers/" + id + "/revoke", url.Values{"reason": {"kort"}}, []string{"beheer", "balie"}, http.StatusBadRequest},
		{"/admin/transfers/bulk", url.Values{"id": {id}}, []string{"beheer", "balie"}, http.StatusOK},
		{"/admin/transfers/bulk", url.Values{"id": {id}, "confirm": {"1"}, "reason": {"kort"}}, []string{"beheer", "balie"}, http.StatusBadRequest},
		{"/admin/keys", url.Values{"sender": {"script@gemeente.example"}, "name": {"Zaaksysteem"}, "days": {"30"}}, []string{"beheer"}, http.StatusBadRequest},
		{"/admin/keys/" + keyID, url.Values{"action": {"revoke"}, "reason": {"kort"}}, []string{"beheer"}, http.StatusBadRequest},
	}
	for _, p := range posts {
		for _, who := range []string{"beheer", "audit", "balie", "geen", "zonder-mfa", "code"} {
			b := e.mailedCode(t)
			if who != "code" {
				b = e.as(t, who)
			}
			resp, body := b.post(t, e.app.URL+p.path, p.form)
			want := http.StatusForbidden
			if strings.Contains(strings.Join(p.allow, " "), who) {
				want = p.status
			}
			if resp.StatusCode != want {
				t.Errorf("POST %s as %s: %d, want %d\n%s", p.path, who, resp.StatusCode, want, body)
			}
		}
		c := newBrowser()
		c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
		resp, _ := c.post(t, e.app.URL+p.path, p.form)
		if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(loc, "/sso/start?next=") {
			t.Errorf("POST %s without a session: %d to %q", p.path, resp.StatusCode, loc)
		}
	}
	if e.revoked(t, id) {
		t.Error("a refused or incomplete post revoked the transfer")
	}
	keys, err := e.app.Senders.APIKeys(ctx)
	if err != nil || len(keys) != 1 || keys[0].RevokedAt != nil || !keys[0].ExpiresAt.After(e.app.Clock.Now()) {
		t.Errorf("a refused or incomplete post changed the keys: %v", err)
	}
}

var keySecret = regexp.MustCompile(`id="key-secret"[^>]*>(` + sender.APIKeyPrefix + `[^<]+)<`)

// TestConsoleKeys: the administrator makes a key (shown once, never
// again, never in the list), sees it listed with owner, name, dates and
// last use; a script signs in with it; expiring and revoking take a
// reason and are audited with person, role, IP and reason; the key then
// stops working. Bad input says what to fix and makes nothing.
func TestConsoleKeys(t *testing.T) {
	e := newConsoleEnv(t)
	ctx := context.Background()
	b := e.as(t, "beheer")
	keys := e.app.URL + "/admin/keys"
	resp, body := b.post(t, keys, url.Values{"sender": {"geen adres"}, "name": {""}, "days": {"400"}, "reason": {"kort"}})
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("bad form: %d", resp.StatusCode)
	}
	for _, k := range []string{"admin.key_bad_sender", "admin.key_bad_name", "admin.key_bad_days", "admin.reason_needed"} {
		if !strings.Contains(body, translate("nl", k)) {
			t.Errorf("the bad form does not say %s", k)
		}
	}
	if got, _ := e.app.Senders.APIKeys(ctx); len(got) != 0 {
		t.Fatalf("a bad form made %d keys", len(got))
	}
	reason := "Wijziging 2026-77: koppeling zaaksysteem"
	// Post/Redirect/Get: the post answers with a redirect to the list,
	// which shows the secret this once.
	b.visited = nil
	resp, body = b.post(t, keys, url.Values{"sender": {"Zaaksysteem@Gemeente.example"}, "name": {"Zaaksysteem Noord"}, "days": {"30"}, "reason": {reason}})
	m := keySecret.FindStringSubmatch(body)
	if resp.StatusCode != http.StatusOK || resp.Request.Method != http.MethodGet || resp.Request.URL.Path != "/admin/keys" || len(b.visited) != 1 ||
		m == nil || resp.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("create: %d %s %s after %v, %q\n%s", resp.StatusCode, resp.Request.Method, resp.Request.URL, b.visited, resp.Header.Get("Cache-Control"), body)
	}
	secret := m[1]
	// Reloading the page neither shows the key again nor makes another.
	if _, body := b.get(t, keys); strings.Contains(body, secret) || keySecret.MatchString(body) {
		t.Error("the reloaded page shows the key again")
	}
	list, err := e.app.Senders.APIKeys(ctx)
	if err != nil || len(list) != 1 {
		t.Fatalf("keys: %v %v", list, err)
	}
	k := list[0]
	if k.Email != "Zaaksysteem@gemeente.example" || k.Name != "Zaaksysteem Noord" || !k.ExpiresAt.Equal(e.app.Clock.Now().Add(30*24*time.Hour)) {
		t.Errorf("key: %+v", k)
	}
	// The secret works, and is never shown again.
	s, err := e.app.Senders.Authenticate(ctx, secret)
	if err != nil || s.KeyID != k.ID {
		t.Fatalf("the new key does not work: %v", err)
	}
	for _, path := range []string{"/admin/keys", "/admin/keys/" + k.ID} {
		_, body := b.get(t, e.app.URL+path)
		if strings.Contains(body, secret) || strings.Contains(body, secret[len(sender.APIKeyPrefix):len(sender.APIKeyPrefix)+12]) {
			t.Errorf("%s shows the secret", path)
		}
		if !strings.Contains(body, k.ID) || !strings.Contains(body, "Zaaksysteem Noord") || !strings.Contains(body, "Zaaksysteem@gemeente.example") {
			t.Errorf("%s does not show the key", path)
		}
	}
	_, body = b.get(t, keys)
	row := body[strings.Index(body, `data-key="`+k.ID+`"`):]
	row = row[:strings.Index(row, "</tr>")]
	if !strings.Contains(row, `data-state="active"`) || strings.Contains(row, translate("nl", "admin.key_never_used")) {
		t.Errorf("the row does not show an active, used key: %s", row)
	}
	created, err := e.app.DB.SearchAudit(ctx, store.AuditFilter{Action: audit.APIKeyCreate, Object: k.ID}, 2)
	if err != nil || len(created) != 1 || created[0].Actor != "sender:beheer@gemeente.example" || created[0].Role != "admin" || created[0].Reason != reason || created[0].IP == "" {
		t.Errorf("audit of the creation: %+v %v", created, err)
	}

	// Expire it, with a reason.
	page := e.app.URL + "/admin/keys/" + k.ID
	if resp, _ := b.post(t, page, url.Values{"action": {"expire"}, "reason": {""}}); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("expire without a reason: %d", resp.StatusCode)
	}
	resp, body = b.post(t, page, url.Values{"action": {"expire"}, "reason": {"Zaaksysteem Noord is uitgezet"}})
	if resp.StatusCode != http.StatusOK || resp.Request.URL.Query().Get("done") != "expired" || !strings.Contains(body, `data-key="`+k.ID+`" data-state="expired"`) {
		t.Fatalf("expire: %d at %s", resp.StatusCode, resp.Request.URL)
	}
	if _, err := e.app.Senders.Authenticate(ctx, secret); err == nil {
		t.Error("an expired key still works")
	}
	if resp, _ := b.post(t, page, url.Values{"action": {"revoke"}, "reason": {"Nogmaals intrekken"}}); resp.StatusCode != http.StatusOK {
		// Revoking an expired key is allowed: it marks it as known to others.
		t.Errorf("revoke after expire: %d", resp.StatusCode)
	}
	if resp, _ := b.post(t, page, url.Values{"action": {"revoke"}, "reason": {"Nogmaals intrekken"}}); resp.StatusCode != http.StatusConflict {
		t.Errorf("revoke twice: %d", resp.StatusCode)
	}
	for _, action := range []string{audit.APIKeyExpire, audit.APIKeyRevoke} {
		got, err := e.app.DB.SearchAudit(ctx, store.AuditFilter{Action: action, Object: k.ID}, 2)
		if err != nil || len(got) != 1 || got[0].Actor != "sender:beheer@gemeente.example" || got[0].Role != "admin" || got[0].Reason == "" || got[0].IP == "" {
			t.Errorf("audit of %s: %+v %v", action, got, err)
		}
	}
	if resp, _ := b.get(t, e.app.URL+"/admin/keys/onbekend"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("unknown key: %d", resp.StatusCode)
	}
}

// TestConsoleKeyFlash: the new key's secret rides from the post to the
// page after the redirect in a one-time flash bound to the session that
// made it: the post itself shows nothing, the flash works once, and
// another session of the same administrator holding the flash cookie sees
// nothing.
func TestConsoleKeyFlash(t *testing.T) {
	e := newConsoleEnv(t)
	ctx := context.Background()
	b := e.as(t, "beheer")
	keys := e.app.URL + "/admin/keys"
	form := url.Values{"sender": {"script@gemeente.example"}, "name": {"Koppeling"}, "days": {"30"}, "reason": {"Wijziging 2026-80: koppeling"}}
	noFollow := *b.Client
	noFollow.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	post := func(c *http.Client) (*http.Cookie, string) {
		t.Helper()
		resp, err := c.PostForm(keys, form)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/admin/keys#key-created" || strings.Contains(string(body), sender.APIKeyPrefix) {
			t.Fatalf("create: %d to %q\n%s", resp.StatusCode, resp.Header.Get("Location"), body)
		}
		for _, c := range resp.Cookies() {
			if c.Name == keyFlashCookie {
				if !c.Secure || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.MaxAge <= 0 || strings.Contains(c.Value, sender.APIKeyPrefix) {
					t.Errorf("flash cookie: %+v", c)
				}
				return c, string(body)
			}
		}
		t.Fatalf("create sets no flash cookie: %v", resp.Header["Set-Cookie"])
		return nil, ""
	}
	flash, _ := post(&noFollow)
	_, body := b.get(t, keys)
	m := keySecret.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("the page after the redirect does not show the key:\n%s", body)
	}
	if s, err := e.app.Senders.Authenticate(ctx, m[1]); err != nil || s.Email != "script@gemeente.example" {
		t.Fatalf("the key shown does not work: %v", err)
	}
	// The same flash again (a browser that kept the cookie): nothing.
	u, _ := url.Parse(keys)
	b.Jar.SetCookies(u, []*http.Cookie{flash})
	if _, body := b.get(t, keys); keySecret.MatchString(body) {
		t.Error("the flash worked twice")
	}

	// A flash made in one session opens in no other, not even the same
	// administrator's.
	flash, _ = post(&noFollow)
	other := newBrowser()
	if resp, body := e.signIn(t, other, "beheer", "/"); resp.StatusCode != http.StatusOK {
		t.Fatalf("second sign-in: %d\n%s", resp.StatusCode, body)
	}
	other.Jar.SetCookies(u, []*http.Cookie{flash})
	if _, body := other.get(t, keys); keySecret.MatchString(body) {
		t.Error("another session opened the flash")
	}
	if list, err := e.app.Senders.APIKeys(ctx); err != nil || len(list) != 2 {
		t.Errorf("%d keys, want 2 (one per post, none per page view): %v", len(list), err)
	}
}
