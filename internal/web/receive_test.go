package web

import (
	"html"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/kluis-nl/kluis"
	"github.com/kluis-nl/kluis/internal/locale"
	"github.com/kluis-nl/kluis/internal/secret"
)

// TestReceiveCodeForm: a code that names no transfer shows the form again
// with the error and what was typed (issue 13, item 6: it used to end on
// the broken-link page and lose the input); the short receive code leads
// to the same password form as the link, and on its own opens nothing.
func TestReceiveCodeForm(t *testing.T) {
	e := newEnv(t)
	s := e.send(t, kluis.PasswordManual, "correct horse battery", "Bericht", nil)
	if len(s.code) != secret.ReceiveCodeLength {
		t.Fatalf("receive code %q", s.code)
	}
	c := e.client(t)

	for _, typed := range []string{
		secret.FormatAccessID(secret.NewAccessID()),       // an old-style code that was never issued
		secret.FormatReceiveCode(secret.NewReceiveCode()), // a short code that was never issued
		"K7QM-3XPT-9HRW", // too short
	} {
		resp, body := post(t, c, e.srv.URL+"/receive", url.Values{"code": {typed}})
		if resp.StatusCode != http.StatusUnprocessableEntity {
			t.Errorf("code %q: %d %q, want the form again (422)", typed, resp.StatusCode, resp.Header.Get("Location"))
			continue
		}
		if !strings.Contains(body, `href="#code"`) || !strings.Contains(body, `aria-invalid="true"`) {
			t.Errorf("code %q: no inline error", typed)
		}
		if !strings.Contains(body, `value="`+html.EscapeString(typed)+`"`) {
			t.Errorf("code %q: the form lost what was typed", typed)
		}
	}

	// The code as printed, typed in small letters with spaces.
	typed := strings.ReplaceAll(strings.ToLower(secret.FormatReceiveCode(s.code)), "-", " ")
	resp, _ := post(t, c, e.srv.URL+"/receive", url.Values{"code": {typed}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/r/"+s.code {
		t.Fatalf("receive code: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	base := e.srv.URL + "/r/" + s.code
	// The code alone opens nothing: the password is still needed.
	if resp, _ := get(t, c, base+"/open"); resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/r/"+s.code {
		t.Fatalf("open by code without the password: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp, body := get(t, c, base)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `name="password"`) {
		t.Fatalf("password page by code: %d", resp.StatusCode)
	}
	if resp, _ := post(t, c, base+"/unlock", url.Values{"password": {"wrong password!"}}); resp.StatusCode != http.StatusUnprocessableEntity {
		t.Fatalf("wrong password by code: %d", resp.StatusCode)
	}
	resp, _ = post(t, c, base+"/unlock", url.Values{"password": {"correct horse battery"}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/r/"+s.code+"/open" {
		t.Fatalf("unlock by code: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if resp, body := get(t, c, base+"/open"); resp.StatusCode != http.StatusOK || !strings.Contains(body, "Bericht") {
		t.Fatalf("open by code: %d", resp.StatusCode)
	}

	// Old mails showed the access id as the code: it still works.
	resp, _ = post(t, c, e.srv.URL+"/receive", url.Values{"code": {strings.ToUpper(secret.FormatAccessID(s.access))}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/r/"+s.access {
		t.Fatalf("access id as code: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}

	// Revoked: the code leads to the page that says so, not to "wrong code".
	if err := e.svc.Revoke(t.Context(), s.owner, ""); err != nil {
		t.Fatal(err)
	}
	resp, _ = post(t, c, e.srv.URL+"/receive", url.Values{"code": {s.code}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/r/"+s.code {
		t.Fatalf("revoked code: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if resp, _ := get(t, c, base); resp.StatusCode != http.StatusGone {
		t.Errorf("revoked code's page: %d", resp.StatusCode)
	}
}

// TestMessageOnlyLinkPages: for a transfer with only a message, the pages
// around the contents speak of the message, not of files, in every
// language: the password form, the no-password page, and the expired,
// revoked and access-ended pages (which still know it after the purge).
// A transfer with files keeps the files' texts.
func TestMessageOnlyLinkPages(t *testing.T) {
	e := newSenderEnv(t, nil)
	msg := e.send(t, kluis.PasswordManual, "Zeven-Groene-Appels", "Uw afspraak is op dinsdag.", nil)
	files := e.send(t, kluis.PasswordManual, "Zeven-Groene-Appels", "Zie de bijlage.", map[string][]byte{"brief.pdf": []byte("%PDF")})
	linkOnly := e.send(t, kluis.PasswordNone, "", "Alleen een bericht.", nil)
	c := e.client(t)
	has := func(what, body, lang, key string, args ...any) {
		t.Helper()
		if !strings.Contains(body, html.EscapeString(translate(lang, key, args...))) {
			t.Errorf("%s (%s) lacks %s %q", what, lang, key, translate(lang, key, args...))
		}
	}
	hasNot := func(what, body, lang, key string, args ...any) {
		t.Helper()
		if strings.Contains(body, html.EscapeString(translate(lang, key, args...))) {
			t.Errorf("%s (%s) says %s %q", what, lang, key, translate(lang, key, args...))
		}
	}
	for _, lang := range locale.All {
		l := string(lang)
		resp, body := getLang(t, c, e.srv.URL+"/r/"+msg.access, l)
		wantStatus(t, "password page", resp, body, http.StatusOK)
		has("message-only password page", body, l, "unlock.intro_message")
		hasNot("message-only password page", body, l, "unlock.intro")
		_, body = getLang(t, c, e.srv.URL+"/r/"+msg.code, l)
		has("message-only password page by code", body, l, "unlock.intro_message")
		_, body = getLang(t, c, e.srv.URL+"/r/"+files.access, l)
		has("password page with files", body, l, "unlock.intro")
		hasNot("password page with files", body, l, "unlock.intro_message")
		_, body = getLang(t, c, e.srv.URL+"/r/"+linkOnly.access, l)
		has("message-only no-password page", body, l, "fragment.heading_message")
		has("message-only no-password page", body, l, "fragment.intro_message")
		hasNot("message-only no-password page", body, l, "fragment.intro")
	}

	// Too many wrong passwords lock the link: the locked page speaks of
	// the message too.
	locked := e.send(t, kluis.PasswordManual, "Zeven-Groene-Appels", "Vergrendeld.", nil)
	isLocked := false
	for i := 0; i < 20 && !isLocked; i++ {
		_, body := post(t, c, e.srv.URL+"/r/"+locked.access+"/unlock", url.Values{"password": {"niet het wachtwoord"}})
		isLocked = strings.Contains(body, html.EscapeString(translate("nl", "locked.title")))
	}
	if !isLocked {
		t.Fatal("twenty wrong passwords did not lock the link")
	}
	for _, lang := range locale.All {
		l := string(lang)
		_, body := getLang(t, c, e.srv.URL+"/r/"+locked.access, l)
		has("message-only locked page", body, l, "locked.text_message")
		has("message-only locked page", body, l, "locked.contact_message")
		hasNot("message-only locked page", body, l, "locked.text")
		hasNot("message-only locked page", body, l, "locked.contact")
	}

	// One recipient's access ends; then the transfer is revoked; then a
	// third one expires.
	if err := e.svc.Revoke(t.Context(), msg.owner, "burger@example.nl"); err != nil {
		t.Fatal(err)
	}
	for _, lang := range locale.All {
		l := string(lang)
		resp, body := getLang(t, c, e.srv.URL+"/r/"+msg.access, l)
		wantStatus(t, "access ended", resp, body, http.StatusGone)
		has("access ended", body, l, "gone.access_ended_message")
		has("access ended", body, l, "gone.revoked_title_message")
		hasNot("access ended", body, l, "gone.access_ended")
	}
	if err := e.svc.Revoke(t.Context(), files.owner, ""); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.Revoke(t.Context(), linkOnly.owner, ""); err != nil {
		t.Fatal(err)
	}
	for _, lang := range locale.All {
		l := string(lang)
		resp, body := getLang(t, c, e.srv.URL+"/r/"+linkOnly.access, l)
		wantStatus(t, "revoked", resp, body, http.StatusGone)
		for _, key := range []string{"gone.revoked_title_message", "gone.deleted_message", "gone.what_now_message"} {
			has("message-only revoked page", body, l, key)
		}
		for _, key := range []string{"gone.revoked_title", "gone.deleted", "gone.what_now"} {
			hasNot("message-only revoked page", body, l, key)
		}
		_, body = getLang(t, c, e.srv.URL+"/r/"+files.access, l)
		has("revoked page with files", body, l, "gone.revoked_title")
		hasNot("revoked page with files", body, l, "gone.revoked_title_message")
	}

	expiring := e.send(t, kluis.PasswordManual, "Zeven-Groene-Appels", "Verloopt.", nil)
	lk, err := e.svc.Lookup(t.Context(), expiring.access)
	if err != nil {
		t.Fatal(err)
	}
	e.app.Clock.Advance(lk.ExpiresAt.Sub(e.app.Clock.Now()) + time.Hour)
	for _, lang := range locale.All {
		l := string(lang)
		resp, body := getLang(t, c, e.srv.URL+"/r/"+expiring.access, l)
		wantStatus(t, "expired", resp, body, http.StatusGone)
		has("message-only expired page", body, l, "gone.expired_title_message")
		has("message-only expired page", body, l, "gone.deleted_message")
		hasNot("message-only expired page", body, l, "gone.expired_title")
	}
}
