package web

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/kluis-nl/kluis"
	"github.com/kluis-nl/kluis/internal/kluistest"
	"github.com/kluis-nl/kluis/internal/transfer"
)

const smsPassword = "Vrolijk-Paarse-Olifant-42"

// smsSend makes a finished transfer to burger@example.nl, verified by an
// SMS code to phone, and returns its link's base URL.
func smsSend(t *testing.T, a *TestApp, phone string) string {
	t.Helper()
	ctx := context.Background()
	c, err := a.Transfers.Create(ctx, transfer.CreateRequest{
		SenderEmail: "a.jansen@gemeente.example.nl", To: []string{"burger@example.nl"}, Lang: "nl",
		PasswordMode: kluis.PasswordManual, Password: smsPassword, Message: "Geheim bericht",
		Auth: map[string]transfer.RecipientAuth{"burger@example.nl": {Method: kluis.AuthPasswordSMS, Phone: phone}},
	})
	if err != nil {
		t.Fatal(err)
	}
	o, err := a.Transfers.AuthorizeUpload(ctx, c.UploadToken)
	if err != nil {
		t.Fatal(err)
	}
	f, err := a.Transfers.NewFile(ctx, o, "dossier.txt", "text/plain", 6)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Transfers.WriteFile(ctx, o, f.ID, 0, strings.NewReader("inhoud")); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Transfers.CompleteFile(ctx, o, f.ID); err != nil {
		t.Fatal(err)
	}
	fin, err := a.Transfers.Finish(ctx, o, c.LinkSecret)
	if err != nil {
		t.Fatal(err)
	}
	return a.URL + "/r/" + fin.Links[0].AccessID
}

// TestSMSCodePage: the right password of a recipient with an SMS code
// leads to the code page (masked number, a numeric one-time-code field),
// not to the files; wrong, empty and expired codes come back inline with
// what was typed; a new code waits for the cooldown; the right code opens
// the files; wrong passwords and wrong codes reach one lock-out.
func TestSMSCodePage(t *testing.T) {
	g := kluistest.NewSMSGateway(t)
	logs := kluistest.NewLogs()
	a := startApp(t, TestAppOptions{Args: g.Args(), Logs: logs})
	base := smsSend(t, a, "+31 6 9988 7766")
	access := strings.TrimPrefix(base, a.URL+"/r/")
	c := (&env{}).client(t)

	resp, _ := post(t, c, base+"/unlock", url.Values{"password": {smsPassword}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/r/"+access+"/code" {
		t.Fatalf("right password: %d %q, want the code page", resp.StatusCode, resp.Header.Get("Location"))
	}
	if n := len(g.Sent()); n != 1 {
		t.Fatalf("%d SMS messages after the password, want 1", n)
	}
	// The password alone opens nothing; the link and the files lead to
	// the code page.
	if resp, _ := get(t, c, base+"/open"); resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/r/"+access {
		t.Fatalf("files before the code: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if resp, _ := get(t, c, base); resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/r/"+access+"/code" {
		t.Fatalf("link before the code: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp, body := get(t, c, base+"/code")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("code page: %d", resp.StatusCode)
	}
	for _, want := range []string{"6 •••• ••66", `autocomplete="one-time-code"`, `inputmode="numeric"`, `name="resend"`, "Stuur een nieuwe code"} {
		if !strings.Contains(body, want) {
			t.Errorf("code page lacks %q\n%s", want, body)
		}
	}
	if strings.Contains(body, "9988") {
		t.Error("the code page shows the whole number")
	}

	code := g.LastCode(t)
	wrong := "000000"
	if code == wrong {
		wrong = "111111"
	}
	resp, body = post(t, c, base+"/code", url.Values{"code": {""}})
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(body, translate("nl", "unlock.code_error_empty")) {
		t.Fatalf("empty code: %d", resp.StatusCode)
	}
	resp, body = post(t, c, base+"/code", url.Values{"code": {wrong}})
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(body, translate("nl", "unlock.code_error_wrong")) ||
		!strings.Contains(body, `value="`+wrong+`"`) || !strings.Contains(body, `href="#code"`) || !strings.Contains(body, `aria-invalid="true"`) {
		t.Fatalf("wrong code: %d, want the error inline with the typed code\n%s", resp.StatusCode, body)
	}

	// A new code within the cooldown: refused, said so; after it: sent.
	resp, body = post(t, c, base+"/code", url.Values{"code": {"12"}, "resend": {"1"}})
	if resp.StatusCode != http.StatusTooManyRequests || !strings.Contains(body, translate("nl", "unlock.code_error_wait")) || !strings.Contains(body, `value="12"`) {
		t.Fatalf("resend in the cooldown: %d", resp.StatusCode)
	}
	// Past the old code's life: an expired code is told so.
	a.Clock.Advance(transfer.DefaultSMSConfig().CodeTTL + time.Second)
	resp, body = post(t, c, base+"/code", url.Values{"code": {code}})
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(body, translate("nl", "unlock.code_error_expired")) {
		t.Fatalf("expired code: %d", resp.StatusCode)
	}
	resp, _ = post(t, c, base+"/code", url.Values{"resend": {"1"}})
	if resp.StatusCode != http.StatusSeeOther || len(g.Sent()) != 2 {
		t.Fatalf("resend after the cooldown: %d, %d messages", resp.StatusCode, len(g.Sent()))
	}
	if _, body := get(t, c, base+"/code?resent"); !strings.Contains(body, translate("nl", "unlock.code_resent")) {
		t.Error("the page does not say a new code went out")
	}
	resp, _ = post(t, c, base+"/code", url.Values{"code": {g.LastCode(t)}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/r/"+access+"/open" {
		t.Fatalf("right code: %d %q\n%s", resp.StatusCode, resp.Header.Get("Location"), logs.Bytes())
	}
	if resp, body := get(t, c, base+"/open"); resp.StatusCode != http.StatusOK || !strings.Contains(body, "Geheim bericht") {
		t.Fatalf("files after the code: %d", resp.StatusCode)
	}
	// The sender's status page says when the recipient was verified
	// by SMS, with the number masked.
	se := &sendEnv{svc: a.Transfers, srv: testServer{URL: a.URL}, mailer: &mails{app: a}}
	sc := se.verify(t, "a.jansen@gemeente.example.nl")
	_, list := get(t, sc, a.URL+"/transfers")
	m := regexp.MustCompile(`href="/transfers/([A-Za-z0-9_-]+)"`).FindStringSubmatch(list)
	if m == nil {
		t.Fatalf("no transfer on My transfers:\n%s", list)
	}
	if _, page := get(t, sc, a.URL+"/transfers/"+m[1]); !strings.Contains(page, "Gecontroleerd met sms op ") || !strings.Contains(page, "(code naar &#43;31 6 •••• ••66)") || strings.Contains(page, "9988") {
		t.Errorf("status page after the code:\n%s", page)
	}
	// The code page of a verified session goes to the link (and so to
	// the files).
	if resp, _ := post(t, c, base+"/code", url.Values{"code": {g.LastCode(t)}}); resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/r/"+access {
		t.Fatalf("code again: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
}

// TestSMSLockoutAcrossPasswordAndCode: wrong passwords and wrong codes
// count together; the try that reaches the limit is told inline on the
// code page, with the time it ends.
func TestSMSLockoutAcrossPasswordAndCode(t *testing.T) {
	g := kluistest.NewSMSGateway(t)
	a := startApp(t, TestAppOptions{Args: g.Args()})
	base := smsSend(t, a, "+31 6 9988 7766")
	c := (&env{}).client(t)
	max := transfer.DefaultConfig().MaxFailures
	for range max - 2 {
		if resp, _ := post(t, c, base+"/unlock", url.Values{"password": {"fout wachtwoord"}}); resp.StatusCode != http.StatusUnprocessableEntity {
			t.Fatalf("wrong password: %d", resp.StatusCode)
		}
	}
	if resp, _ := post(t, c, base+"/unlock", url.Values{"password": {smsPassword}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("right password: %d", resp.StatusCode)
	}
	wrong := "000000"
	if g.LastCode(t) == wrong {
		wrong = "111111"
	}
	resp, body := post(t, c, base+"/code", url.Values{"code": {wrong}})
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(body, translate("nl", "unlock.code_error_wrong")) {
		t.Fatalf("wrong code %d of %d: %d", max-1, max, resp.StatusCode)
	}
	resp, body = post(t, c, base+"/code", url.Values{"code": {wrong}})
	if resp.StatusCode != http.StatusLocked || !strings.Contains(body, translate("nl", "unlock.code_error_locked")) || !strings.Contains(body, `value="`+wrong+`"`) {
		t.Fatalf("try %d: %d, want the lock-out inline\n%s", max, resp.StatusCode, body)
	}
	// Locked now for the right code too.
	resp, _ = post(t, c, base+"/code", url.Values{"code": {g.LastCode(t)}})
	if resp.StatusCode != http.StatusLocked {
		t.Fatalf("right code while locked: %d", resp.StatusCode)
	}
}
