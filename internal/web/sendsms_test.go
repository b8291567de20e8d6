package web

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/kluis-nl/kluis"
	"github.com/kluis-nl/kluis/internal/kluistest"
	kpolicy "github.com/kluis-nl/kluis/internal/policy"
	"github.com/kluis-nl/kluis/internal/transfer"
)

// TestSendRecipientPhone: with an SMS gateway the compose form asks for
// mobile numbers per recipient and offers "special personal data"
// (ticked by the policy's special_default); the review shows the number
// masked and the password-only recipient as the lower level; the
// transfer is made with the number; the policy's minimum for special
// personal data is a field error on the number field that names the
// recipient; the plain form (no JavaScript) keeps both fields through
// the review.
func TestSendRecipientPhone(t *testing.T) {
	g := kluistest.NewSMSGateway(t)
	a := startApp(t, TestAppOptions{Args: g.Args()})
	pol, err := kpolicy.Parse([]byte(`{"organisation_domains": ["gemeente.example.nl"],
		"defaults": {"recipient_auth": {"special_default": true}}}`))
	if err != nil {
		t.Fatal(err)
	}
	a.Policy.Set(pol)
	e := &sendEnv{svc: a.Transfers, srv: testServer{URL: a.URL}, mailer: &mails{app: a}}
	c := e.verify(t, "medewerker@gemeente.example.nl")
	_, body := get(t, c, e.srv.URL+"/send")
	for _, want := range []string{`id="recipient_phone"`, `name="special_data" aria-describedby="special_data-hint" checked`} {
		if !strings.Contains(body, want) {
			t.Errorf("compose form lacks %q", want)
		}
	}

	req := compose(map[string]any{"to": "burger@example.nl, collega@gemeente.example.nl", "special_data": true,
		"recipient_phone": "Burger@example.nl +31 6 9988 7766\n collega@gemeente.example.nl=+31612345678"})
	st, out := postJSON(t, c, e.srv.URL+"/send/review", req)
	html, _ := out["html"].(string)
	if st != http.StatusOK || !strings.Contains(html, "Krijgt na het wachtwoord een code per sms op &#43;31 6 •••• ••66") || strings.Contains(html, "9988") {
		t.Fatalf("review: %d %v", st, out)
	}
	if !strings.Contains(html, translate("nl", "send.sum_special")) {
		t.Error("the review does not say special personal data")
	}
	st, out = postJSON(t, c, e.srv.URL+"/send/transfer", req)
	if st != http.StatusCreated {
		t.Fatalf("create: %d %v", st, out)
	}
	id, _ := out["id"].(string)
	tr, err := e.svc.Transfer(t.Context(), transfer.Owner{TransferID: id})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range tr.Recipients {
		if r.AuthMethod != kluis.AuthPasswordSMS || !strings.HasPrefix(r.Phone, "+31 6 ") || strings.Contains(r.Phone, "9988") {
			t.Errorf("%s: %s %q", r.Address, r.AuthMethod, r.Phone)
		}
	}
	if !tr.Options.SpecialData {
		t.Error("the transfer is not marked as special personal data")
	}
	// The sender's status page says per recipient how they verify.
	if resp, body := get(t, c, e.srv.URL+"/transfers/"+id); resp.StatusCode != http.StatusOK ||
		!strings.Contains(body, "Krijgt na het wachtwoord een code per sms op &#43;31 6 •••• ••66: nog niet gecontroleerd") || strings.Contains(body, "9988") {
		t.Errorf("status page: %d\n%s", resp.StatusCode, body)
	}

	// Special personal data without a number: the default minimum for it
	// is the SMS code, said at the number field with the address.
	st, out = postJSON(t, c, e.srv.URL+"/send/review", compose(map[string]any{"special_data": true}))
	if msg := fieldErrors(out)["recipient_phone"]; st != http.StatusUnprocessableEntity || !strings.Contains(msg, "burger@example.nl") {
		t.Errorf("special data without a number: %d %v", st, out)
	}
	// Without the mark, the password only is allowed and shown as the
	// lower level.
	st, out = postJSON(t, c, e.srv.URL+"/send/review", compose(nil))
	if html, _ := out["html"].(string); st != http.StatusOK || !strings.Contains(html, translate("nl", "send.review_password_only")) {
		t.Errorf("password only: %d %v", st, out)
	}
	st, out = postJSON(t, c, e.srv.URL+"/send/transfer", compose(nil))
	if id, _ := out["id"].(string); st != http.StatusCreated {
		t.Errorf("password only: %d %v", st, out)
	} else if _, body := get(t, c, e.srv.URL+"/transfers/"+id); !strings.Contains(body, translate("nl", "mine.auth_password")) {
		t.Errorf("status page of a password-only recipient:\n%s", body)
	}
	for bad, code := range map[string]string{
		"burger@example.nl 0612345678": "validate.phone_country", "burger@example.nl": "validate.phone_missing",
		"iemand@example.nl +31612345678": "validate.auth_not_a_recipient", "burger@example.nl +31 6 12": "validate.phone_invalid",
	} {
		st, out = postJSON(t, c, e.srv.URL+"/send/review", compose(map[string]any{"recipient_phone": bad}))
		if st != http.StatusUnprocessableEntity || fieldErrors(out)["recipient_phone"] == "" {
			t.Errorf("%q: %d %v, want %s", bad, st, out, code)
		}
	}
	// A number and a login for one recipient: one is refused.
	st, out = postJSON(t, c, e.srv.URL+"/send/review", compose(map[string]any{"recipient_phone": "burger@example.nl +31612345678", "recipient_login": "burger@example.nl=digid:x"}))
	if st != http.StatusUnprocessableEntity {
		t.Errorf("number and login: %d %v", st, out)
	}

	// One transfer per recipient: each carries its own number only.
	sep := compose(map[string]any{"to": "burger@example.nl, ander@example.nl", "privacy": "separate",
		"recipient_phone": "burger@example.nl +31612345678\nander@example.nl +31687654321"})
	if st, out := postJSON(t, c, e.srv.URL+"/send/review", sep); st != http.StatusOK {
		t.Errorf("separate: %d %v", st, out)
	}
	if got := authLinesFor("burger@example.nl +31612345678\nANDER@example.nl=+31687654321\n", "ander@example.nl"); got != "ANDER@example.nl=+31687654321" {
		t.Errorf("authLinesFor: %q", got)
	}

	// Without JavaScript: the review page carries the number in its
	// hidden fields for Back and shows it masked.
	resp, body := post(t, c, e.srv.URL+"/send/review", url.Values{"to": {"burger@example.nl"}, "message": {"Hallo"}, "lang": {"nl"},
		"password_mode": {"generate"}, "recipient_phone": {"burger@example.nl +31699887766"}, "special_data": {"on"}})
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "&#43;31 6 •••• ••66") || !strings.Contains(body, `name="special_data" value="on"`) ||
		!strings.Contains(body, `name="recipient_phone" value="burger@example.nl &#43;31699887766"`) {
		t.Errorf("plain review: %d\n%s", resp.StatusCode, body)
	}
}
