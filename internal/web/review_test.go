package web

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	kpolicy "github.com/kluis-nl/kluis/internal/policy"
)

// countTransfers is how many transfers the sender has (drafts included).
func (e *sendEnv) countTransfers(t *testing.T, email string) int {
	t.Helper()
	ts, err := e.svc.SenderTransfers(context.Background(), email)
	if err != nil {
		t.Fatal(err)
	}
	return len(ts)
}

// TestSendReviewWithoutScript: the compose form posted as a plain form
// (no JavaScript) goes to the review, which shows every recipient with
// what they get and creates nothing; Back brings the values into the form
// again; a bad address comes back at its field with what was typed.
func TestSendReviewWithoutScript(t *testing.T) {
	e := newSendEnv(t, nil)
	c := e.verify(t, "a.jansen@example.nl")
	form := url.Values{
		"to": {"burger@example.nl"}, "cc": {"buur@example.nl"}, "bcc": {"archief@example.nl"},
		"message": {"Hierbij de stukken."}, "subject": {"Uw aanvraag"}, "body": {"Beste mevrouw,\n\nZie de bijlage."},
		"expires": {""}, "lang": {"en"}, "password_mode": {"generate"}, "confirm": {"on"}, "files": {"besluit.pdf"},
	}
	resp, body := post(t, c, e.srv.URL+"/send/review", form)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("review: %d\n%s", resp.StatusCode, body)
	}
	for _, want := range []string{`id="review-heading"`, "burger@example.nl", "buur@example.nl", "archief@example.nl",
		"besluit.pdf", "Uw aanvraag", "<p>Beste mevrouw,</p><p>Zie de bijlage.</p>", "Hierbij de stukken.",
		"Ziet de andere adressen bij Aan en Cc.", "Ziet geen adres van een andere ontvanger.", "English",
		`name="step" value="edit"`} {
		if !strings.Contains(body, want) {
			t.Errorf("review lacks %q", want)
		}
	}
	if strings.Contains(body, `id="start"`) {
		t.Error("the review without JavaScript offers a start button it cannot keep")
	}
	if n := e.countTransfers(t, "a.jansen@example.nl"); n != 0 {
		t.Errorf("the review created %d transfers", n)
	}

	// Back: the compose form with the values as they were.
	back := url.Values{}
	for k, v := range form {
		back[k] = v
	}
	back.Set("step", "edit")
	resp, body = post(t, c, e.srv.URL+"/send/review", back)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `action="/send/review"`) {
		t.Fatalf("back: %d", resp.StatusCode)
	}
	for _, want := range []string{">burger@example.nl</textarea>", ">buur@example.nl</textarea>", `value="Uw aanvraag"`, ">Hierbij de stukken.</textarea>"} {
		if !strings.Contains(body, want) {
			t.Errorf("compose form after Back lacks %q", want)
		}
	}

	// A bad Cc address: the form again, the error at the field, the
	// address as typed.
	form.Set("cc", "geen-adres")
	resp, body = post(t, c, e.srv.URL+"/send/review", form)
	if resp.StatusCode != http.StatusUnprocessableEntity {
		t.Fatalf("bad address: %d", resp.StatusCode)
	}
	if got := summaryLinks(body); len(got) != 1 || got[0] != "cc" {
		t.Errorf("error summary links %v, want [cc]", got)
	}
	if !strings.Contains(body, `id="cc-error">`) || !strings.Contains(body, ">geen-adres</textarea>") || !strings.Contains(body, `aria-invalid="true"`) {
		t.Error("the Cc field does not show its error with the address kept")
	}
	if n := e.countTransfers(t, "a.jansen@example.nl"); n != 0 {
		t.Errorf("a refused review created %d transfers", n)
	}
}

// TestSendReviewPrivacy: two external addresses in To/Cc bring the
// warning and the choice; Bcc makes every address Bcc (at the review and
// at create); one transfer per recipient lists each address.
func TestSendReviewPrivacy(t *testing.T) {
	pol, err := kpolicy.Parse([]byte(`{"organisation_domains": ["gemeente.example.nl"]}`))
	if err != nil {
		t.Fatal(err)
	}
	e := newSendEnv(t, pol)
	c := e.verify(t, "medewerker@gemeente.example.nl")
	two := map[string]any{"to": "burger@example.org; collega@gemeente.example.nl", "cc": "buur@example.com"}
	st, out := postJSON(t, c, e.srv.URL+"/send/review", compose(two))
	if st != http.StatusOK {
		t.Fatalf("review: %d %v", st, out)
	}
	html, _ := out["html"].(string)
	if out["choose"] != true || !strings.Contains(html, `id="privacy-warning"`) {
		t.Fatalf("no privacy warning for two external addresses: %v", out)
	}
	warning, _, _ := strings.Cut(html[strings.Index(html, `id="privacy-warning"`):], "</ul>")
	if !strings.Contains(warning, "burger@example.org") || !strings.Contains(warning, "buur@example.com") || strings.Contains(warning, "collega@") {
		t.Errorf("the warning lists the wrong addresses:\n%s", warning)
	}
	// One external address (the colleague is inside): no warning.
	st, out = postJSON(t, c, e.srv.URL+"/send/review", compose(map[string]any{"to": "burger@example.org; collega@gemeente.example.nl"}))
	if html, _ := out["html"].(string); st != http.StatusOK || out["choose"] != false || strings.Contains(html, "privacy-warning") {
		t.Errorf("a warning for one external address: %d %v", st, out["choose"])
	}
	// As Bcc: nobody sees another address, here and in what is created.
	st, out = postJSON(t, c, e.srv.URL+"/send/review", compose(map[string]any{"to": two["to"], "cc": two["cc"], "privacy": "bcc"}))
	html, _ = out["html"].(string)
	if st != http.StatusOK || strings.Contains(html, "Ziet de andere adressen") || strings.Count(html, "Ziet geen adres") != 3 {
		t.Errorf("review as Bcc: %d\n%s", st, html)
	}
	st, out = postJSON(t, c, e.srv.URL+"/send/transfer", compose(map[string]any{"to": two["to"], "cc": two["cc"], "privacy": "bcc"}))
	if st != http.StatusCreated {
		t.Fatalf("create as Bcc: %d %v", st, out)
	}
	rs, _ := out["recipients"].([]any)
	if len(rs) != 3 {
		t.Fatalf("recipients %v", rs)
	}
	for _, r := range rs {
		if k := r.(map[string]any)["kind"]; k != "bcc" {
			t.Errorf("recipient %v is not Bcc", r)
		}
	}
	// One transfer per recipient: the review lists all three to create.
	st, out = postJSON(t, c, e.srv.URL+"/send/review", compose(map[string]any{"to": two["to"], "cc": two["cc"], "privacy": "separate"}))
	sep, _ := out["separate"].([]any)
	if st != http.StatusOK || len(sep) != 3 {
		t.Errorf("separate: %d %v", st, out["separate"])
	}
	if n := e.countTransfers(t, "medewerker@gemeente.example.nl"); n != 1 {
		t.Errorf("%d transfers after the reviews and one create, want 1", n)
	}
}

// TestSendReference: the sender's own reference goes through the compose
// form: the review shows it, Back keeps it, a bad one is an error at its
// field, and My transfers (list and status page) show it once created.
func TestSendReference(t *testing.T) {
	e := newSendEnv(t, nil)
	c := e.verify(t, "a.jansen@example.nl")
	form := url.Values{
		"to": {"burger@example.nl"}, "message": {"Hierbij de stukken."}, "reference": {"Zaak 2026-0042"},
		"expires": {""}, "lang": {"nl"}, "password_mode": {"generate"}, "files": {"besluit.pdf"},
	}
	resp, body := post(t, c, e.srv.URL+"/send/review", form)
	wantStatus(t, "review", resp, body, http.StatusOK)
	if !strings.Contains(body, "<dd>Zaak 2026-0042</dd>") || !strings.Contains(body, `name="reference" value="Zaak 2026-0042"`) {
		t.Errorf("the review does not show or keep the reference:\n%s", body)
	}
	back := url.Values{}
	for k, v := range form {
		back[k] = v
	}
	back.Set("step", "edit")
	_, body = post(t, c, e.srv.URL+"/send/review", back)
	if !strings.Contains(body, `id="reference"`) || !strings.Contains(body, `value="Zaak 2026-0042"`) {
		t.Error("the compose form after Back lost the reference")
	}
	form.Set("reference", "Zaak\n42")
	resp, body = post(t, c, e.srv.URL+"/send/review", form)
	wantStatus(t, "bad reference", resp, body, http.StatusUnprocessableEntity)
	if got := summaryLinks(body); len(got) != 1 || got[0] != "reference" {
		t.Errorf("error summary links %v, want [reference]", got)
	}

	st, out := postJSON(t, c, e.srv.URL+"/send/transfer", compose(map[string]any{"reference": "Zaak 2026-0042"}))
	if st != http.StatusCreated && st != http.StatusOK {
		t.Fatalf("create: %d %v", st, out)
	}
	_, body = get(t, c, e.srv.URL+"/transfers")
	if !strings.Contains(body, "Ref. Zaak 2026-0042") {
		t.Errorf("My transfers does not show the reference:\n%s", body)
	}
	id := regexp.MustCompile(`href="/transfers/([^"?/]+)"`).FindStringSubmatch(body)
	if id == nil {
		t.Fatal("no transfer in the list")
	}
	_, body = get(t, c, e.srv.URL+"/transfers/"+id[1])
	if !strings.Contains(body, "<dd>Zaak 2026-0042</dd>") {
		t.Errorf("the status page does not show the reference:\n%s", body)
	}
}

// TestSendReviewNotifyMode: the download-notice mode chosen on the form is
// what the review shows and what Back and Start keep (without JavaScript
// it used to fall back to the default mode).
func TestSendReviewNotifyMode(t *testing.T) {
	e := newSendEnv(t, nil)
	c := e.verify(t, "a.jansen@example.nl")
	form := url.Values{
		"to": {"burger@example.nl"}, "message": {"Hierbij de stukken."}, "expires": {""}, "lang": {"nl"},
		"password_mode": {"generate"}, "files": {"besluit.pdf"}, "notify_download": {"on"}, "notify": {"summary"},
	}
	resp, body := post(t, c, e.srv.URL+"/send/review", form)
	wantStatus(t, "review", resp, body, http.StatusOK)
	if !strings.Contains(body, translate("nl", "send.notify_summary")) || !strings.Contains(body, `name="notify" value="summary"`) {
		t.Errorf("the review does not show or keep the notice mode:\n%s", body)
	}
	back := url.Values{}
	for k, v := range form {
		back[k] = v
	}
	back.Set("step", "edit")
	_, body = post(t, c, e.srv.URL+"/send/review", back)
	if !strings.Contains(body, `<option value="summary" selected>`) {
		t.Error("the compose form after Back lost the notice mode")
	}
	form.Del("notify_download")
	_, body = post(t, c, e.srv.URL+"/send/review", form)
	if strings.Contains(body, translate("nl", "send.notify_summary")) {
		t.Error("the review shows a notice mode with notices off")
	}
}
