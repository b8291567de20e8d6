package web

import (
	"context"
	"html"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/kluis-nl/kluis"
	"github.com/kluis-nl/kluis/internal/mail"
	"github.com/kluis-nl/kluis/internal/secret"
)

// TestInboxPages: a sender sets the inbox passphrase, locks and unlocks the
// inbox, and sees only their own; a new session starts locked. The
// passphrase is never put back into a page.
func TestInboxPages(t *testing.T) {
	t.Parallel()
	e := newSenderEnv(t, nil)
	ctx := context.Background()
	const pass = "Kanarie-Inbox-Zin-5512"
	anna := e.client(t)
	tok := e.login(t, anna, "anna@example.nl")
	base := e.srv.URL
	has := func(t *testing.T, body, key string) {
		t.Helper()
		if !strings.Contains(html.UnescapeString(body), translate("nl", key)) {
			t.Errorf("page lacks %s", key)
		}
	}

	resp, body := get(t, anna, base+"/inbox")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /inbox: %d", resp.StatusCode)
	}
	has(t, body, "inbox.create_heading")

	for _, c := range []struct {
		pass, again, key string
	}{
		{"Kort-7x", "Kort-7x", "inbox.error_too_short"},
		{"", "", "inbox.error_empty"},
		{"wachtwoord123", "wachtwoord123", "inbox.error_common"},
		{pass, pass + "x", "inbox.error_mismatch"},
	} {
		resp, body := post(t, anna, base+"/inbox", url.Values{"passphrase": {c.pass}, "passphrase_again": {c.again}})
		if resp.StatusCode != http.StatusUnprocessableEntity {
			t.Errorf("%q/%q: status %d, want 422", c.pass, c.again, resp.StatusCode)
		}
		has(t, body, c.key)
		if c.pass != "" && strings.Contains(body, c.pass) {
			t.Errorf("the page shows the passphrase %q again", c.pass)
		}
	}
	if st, _ := e.senders.InboxState(ctx, tok); st.Exists {
		t.Fatal("a refused passphrase made an inbox")
	}

	resp, _ = post(t, anna, base+"/inbox", url.Values{"passphrase": {pass}, "passphrase_again": {pass}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/inbox?done=created" {
		t.Fatalf("create: %d %s\n%s", resp.StatusCode, resp.Header.Get("Location"), e.logs.String())
	}
	_, body = get(t, anna, base+"/inbox?done=created")
	has(t, body, "inbox.done_created")
	has(t, body, "inbox.unlocked_text")
	st, err := e.senders.InboxState(ctx, tok)
	if err != nil || !st.Unlocked || !strings.Contains(body, st.Recipient) {
		t.Fatalf("state %+v, %v; the page shows the public key: %v", st, err, strings.Contains(body, st.Recipient))
	}

	resp, _ = post(t, anna, base+"/inbox/lock", nil)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("lock: %d", resp.StatusCode)
	}
	if _, err := e.senders.InboxIdentity(ctx, tok); kluis.ErrorCode(err) != kluis.ELOCKED {
		t.Fatalf("after the lock button: %v", err)
	}
	_, body = get(t, anna, base+"/inbox?done=locked")
	has(t, body, "inbox.unlock_heading")

	resp, body = post(t, anna, base+"/inbox/unlock", url.Values{"passphrase": {pass + "!"}})
	if resp.StatusCode != http.StatusUnprocessableEntity {
		t.Fatalf("wrong passphrase: %d", resp.StatusCode)
	}
	has(t, body, "inbox.error_wrong")
	resp, _ = post(t, anna, base+"/inbox/unlock", url.Values{"passphrase": {pass}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/inbox?done=unlocked" {
		t.Fatalf("unlock: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	if _, err := e.senders.InboxIdentity(ctx, tok); err != nil {
		t.Fatalf("after unlocking: %v", err)
	}

	// Another sender sees their own (empty) inbox.
	bob := e.client(t)
	e.login(t, bob, "bob@example.nl")
	_, body = get(t, bob, base+"/inbox")
	has(t, body, "inbox.create_heading")
	if strings.Contains(body, st.Recipient) {
		t.Error("another sender's page shows anna's key")
	}

	// Logging out locks it; the next session starts locked.
	if resp, _ := post(t, anna, base+"/logout", nil); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("logout: %d", resp.StatusCode)
	}
	if _, err := e.senders.InboxIdentity(ctx, tok); kluis.ErrorCode(err) != kluis.EUNAUTHORIZED {
		t.Fatalf("after logout: %v", err)
	}
	resp, _ = get(t, anna, base+"/inbox")
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("GET /inbox after logout: %d, want the verification", resp.StatusCode)
	}
	tok2 := e.login(t, anna, "anna@example.nl")
	_, body = get(t, anna, base+"/inbox")
	has(t, body, "inbox.unlock_heading")
	if _, err := e.senders.InboxIdentity(ctx, tok2); kluis.ErrorCode(err) != kluis.ELOCKED {
		t.Fatalf("new session: %v, want locked", err)
	}
}

// TestInboxTextsNameTheLimits: the error texts state the limits of
// secret.CheckPassword in words; they must move with them.
func TestInboxTextsNameTheLimits(t *testing.T) {
	t.Parallel()
	for _, lang := range []string{"nl", "en"} {
		for key, n := range map[string]int{
			"inbox.error_empty": secret.MinPasswordLength, "inbox.error_too_short": secret.MinPasswordLength,
			"inbox.passphrase_hint": secret.MinPasswordLength, "inbox.create_text": secret.MinPasswordLength,
			"inbox.error_too_long": secret.MaxPasswordLength,
		} {
			if !strings.Contains(translate(lang, key), " "+strconv.Itoa(n)+" ") {
				t.Errorf("%s %s does not name %d", lang, key, n)
			}
		}
	}
}

// TestInboxChangePassphrasePage: the inbox page changes the passphrase
// with the current one; each refusal has its own text, and none puts a
// passphrase back into the page. The inbox key stays, the new passphrase
// unlocks, and the sender is mailed.
func TestInboxChangePassphrasePage(t *testing.T) {
	t.Parallel()
	e := newSenderEnv(t, nil)
	ctx := context.Background()
	const pass, newPass = "Kanarie-Inbox-Zin-5512", "Nieuwe-Kanarie-Zin-8830"
	anna := e.client(t)
	tok := e.login(t, anna, "anna@example.nl")
	base := e.srv.URL
	if err := e.senders.CreateInbox(ctx, tok, pass); err != nil {
		t.Fatal(err)
	}
	before, _ := e.senders.InboxState(ctx, tok)
	_, body := get(t, anna, base+"/inbox")
	if !strings.Contains(html.UnescapeString(body), translate("nl", "inbox.change_heading")) {
		t.Fatal("the inbox page has no form to change the passphrase")
	}
	for _, c := range []struct {
		old, nw, again, key string
	}{
		{pass, "Kort-7x", "Kort-7x", "inbox.error_too_short"},
		{pass, newPass, newPass + "x", "inbox.error_mismatch"},
		{pass, pass, pass, "inbox.error_same"},
		{pass + "!", newPass, newPass, "inbox.error_wrong"},
	} {
		resp, body := post(t, anna, base+"/inbox/passphrase", url.Values{"old_passphrase": {c.old}, "new_passphrase": {c.nw}, "new_passphrase_again": {c.again}})
		if resp.StatusCode < 400 {
			t.Errorf("%s: status %d", c.key, resp.StatusCode)
		}
		if !strings.Contains(html.UnescapeString(body), translate("nl", c.key)) {
			t.Errorf("page lacks %s", c.key)
		}
		if strings.Contains(body, pass) || strings.Contains(body, newPass) {
			t.Errorf("%s: the page shows a passphrase again", c.key)
		}
	}
	resp, _ := post(t, anna, base+"/inbox/passphrase", url.Values{"old_passphrase": {pass}, "new_passphrase": {newPass}, "new_passphrase_again": {newPass}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/inbox?done=changed" {
		t.Fatalf("change: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	_, body = get(t, anna, base+"/inbox?done=changed")
	if !strings.Contains(html.UnescapeString(body), translate("nl", "inbox.done_changed")) {
		t.Error("no confirmation")
	}
	if e.mails.last(mail.KindInboxPassphrase, "anna@example.nl") == nil {
		t.Error("no notice mail")
	}
	if err := e.senders.LockInbox(ctx, tok); err != nil {
		t.Fatal(err)
	}
	if err := e.senders.UnlockInbox(ctx, tok, newPass); err != nil {
		t.Fatalf("unlock with the new passphrase: %v", err)
	}
	if after, _ := e.senders.InboxState(ctx, tok); after.Recipient != before.Recipient {
		t.Errorf("the inbox key changed: %s, was %s", after.Recipient, before.Recipient)
	}
}
