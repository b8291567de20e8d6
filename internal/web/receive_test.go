package web

import (
	"html"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/kluis-nl/kluis"
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
