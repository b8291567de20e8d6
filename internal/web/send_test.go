package web

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	kpolicy "github.com/kluis-nl/kluis/internal/policy"
	"github.com/kluis-nl/kluis/internal/sender"
	"github.com/kluis-nl/kluis/internal/transfer"
)

var codeRE = regexp.MustCompile(`\b(\d{6,8})\b`)

// lastCode is the verification code in the last mail sent.
func (m *mails) lastCode(t *testing.T) string {
	t.Helper()
	last := m.last("", "")
	if last == nil {
		t.Fatal("no verification mail")
	}
	code := codeRE.FindString(last.Text)
	if code == "" {
		t.Fatalf("no code in mail text:\n%s", last.Text)
	}
	return code
}

type sendEnv struct {
	svc    *transfer.Service
	srv    testServer
	mailer *mails
}

func newSendEnv(t *testing.T, pol *kpolicy.Policy) *sendEnv {
	t.Helper()
	a := startApp(t, TestAppOptions{})
	if pol != nil {
		a.Policy.Set(pol)
	}
	return &sendEnv{svc: a.Transfers, srv: testServer{URL: a.URL}, mailer: &mails{app: a}}
}

func (e *sendEnv) client() *http.Client {
	return (&env{}).client(nil)
}

// verify runs the verification forms and returns a client with a session.
func (e *sendEnv) verify(t *testing.T, email string) *http.Client {
	return e.verifyAs(t, "A. Jansen", email)
}

func (e *sendEnv) verifyAs(t *testing.T, name, email string) *http.Client {
	t.Helper()
	c := e.client()
	resp, body := post(t, c, e.srv.URL+"/send/verify", url.Values{"name": {name}, "email": {email}, "phone": {"058 123 4567"}, "next": {"/send"}})
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `action="/send/confirm"`) {
		t.Fatalf("verify: %d\n%s", resp.StatusCode, body)
	}
	resp, _ = post(t, c, e.srv.URL+"/send/confirm", url.Values{"code": {e.mailer.lastCode(t)}, "next": {"/send"}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("confirm: %d", resp.StatusCode)
	}
	return c
}

func summaryLinks(body string) []string {
	var out []string
	i := strings.Index(body, "data-error-summary")
	if i < 0 {
		return nil
	}
	summary, _, _ := strings.Cut(body[i:], "</ul>")
	for _, m := range regexp.MustCompile(`href="#([a-z_-]+)"`).FindAllStringSubmatch(summary, -1) {
		out = append(out, m[1])
	}
	return out
}

func TestSendDetailsAndVerification(t *testing.T) {
	e := newSendEnv(t, nil)
	c := e.client()
	resp, body := get(t, c, e.srv.URL+"/send?next=/transfers")
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `action="/send/verify"`) || !strings.Contains(body, `name="next" value="/transfers"`) {
		t.Fatalf("details page: %d %s", resp.StatusCode, body)
	}
	// Each wrong field is named in the summary and linked to.
	resp, body = post(t, c, e.srv.URL+"/send/verify", url.Values{"name": {""}, "email": {"geen adres"}, "phone": {"bel me"}})
	if resp.StatusCode != http.StatusUnprocessableEntity {
		t.Fatalf("bad details: %d", resp.StatusCode)
	}
	if got := strings.Join(summaryLinks(body), ","); got != "name,email,phone" {
		t.Errorf("error summary links %q, want name,email,phone", got)
	}
	if !strings.Contains(body, `aria-invalid="true"`) || !strings.Contains(body, "Vul uw naam in.") {
		t.Error("fields not marked invalid or message missing")
	}
	// A good start: the code page, and the verify cookie as the API sets it.
	resp, body = post(t, c, e.srv.URL+"/send/verify", url.Values{"name": {"A. Jansen"}, "email": {"a.jansen@example.nl"}, "next": {"/transfers"}})
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "a.jansen@example.nl") || !strings.Contains(body, `name="resend"`) {
		t.Fatalf("code page: %d", resp.StatusCode)
	}
	var vc *http.Cookie
	for _, ck := range resp.Cookies() {
		if ck.Name == verifyCookie {
			vc = ck
		}
	}
	if vc == nil || !vc.HttpOnly || !vc.Secure || vc.SameSite != http.SameSiteStrictMode {
		t.Fatalf("verify cookie %+v", vc)
	}
	code := e.mailer.lastCode(t)
	wrong := strings.Repeat("0", len(code))
	if wrong == code {
		wrong = strings.Repeat("1", len(code))
	}
	resp, body = post(t, c, e.srv.URL+"/send/confirm", url.Values{"code": {wrong}, "next": {"/transfers"}})
	if resp.StatusCode != http.StatusUnprocessableEntity || strings.Join(summaryLinks(body), ",") != "code" {
		t.Fatalf("wrong code: %d %v", resp.StatusCode, summaryLinks(body))
	}
	resp, _ = post(t, c, e.srv.URL+"/send/confirm", url.Values{"code": {code}, "next": {"/transfers"}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/transfers" {
		t.Fatalf("confirm: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	var sc *http.Cookie
	for _, ck := range resp.Cookies() {
		if ck.Name == senderSessionCookie {
			sc = ck
		}
	}
	if sc == nil || !sc.HttpOnly || !sc.Secure || sc.SameSite != http.SameSiteLaxMode || sc.Path != "/" || sc.MaxAge <= 0 {
		t.Fatalf("session cookie %+v", sc)
	}
	// Verified: /send is the compose page, and next is followed at once.
	resp, body = get(t, c, e.srv.URL+"/send")
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `id="send-data"`) || !strings.Contains(body, `action="/logout"`) {
		t.Fatalf("compose page: %d", resp.StatusCode)
	}
	if !strings.Contains(body, "a.jansen@example.nl") {
		t.Error("compose page does not say who sends")
	}
	resp, _ = get(t, c, e.srv.URL+"/send?next=/transfers")
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/transfers" {
		t.Errorf("verified /send?next=/transfers: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
}

// TestSendNextIsLocal: the next parameter never leads to another site.
func TestSendNextIsLocal(t *testing.T) {
	for in, want := range map[string]string{
		"":                        "/send",
		"/transfers":              "/transfers",
		"//evil.example/x":        "/send",
		"/\\evil.example":         "/send",
		"https://evil.example/":   "/send",
		"javascript:alert(1)":     "/send",
		"/x\r\nSet-Cookie: a=b":   "/send",
		"transfers":               "/send",
		"/transfers?x=https://ev": "/transfers",
	} {
		if got := nextPath(in); got != want {
			t.Errorf("nextPath(%q) = %q, want %q", in, got, want)
		}
	}
	e := newSendEnv(t, nil)
	c := e.client()
	post(t, c, e.srv.URL+"/send/verify", url.Values{"name": {"A"}, "email": {"a@example.nl"}, "next": {"//evil.example"}})
	resp, _ := post(t, c, e.srv.URL+"/send/confirm", url.Values{"code": {e.mailer.lastCode(t)}, "next": {"//evil.example"}})
	if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusSeeOther || loc != "/send" {
		t.Errorf("confirm with next=//evil.example: %d to %q", resp.StatusCode, loc)
	}
}

func postJSON(t *testing.T, c *http.Client, u string, v any) (int, map[string]any) {
	t.Helper()
	b, _ := json.Marshal(v)
	resp, err := c.Post(u, "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatalf("%s: %d, not JSON: %v", u, resp.StatusCode, err)
	}
	return resp.StatusCode, out
}

func fieldErrors(out map[string]any) map[string]string {
	m := map[string]string{}
	es, _ := out["errors"].([]any)
	for _, e := range es {
		e := e.(map[string]any)
		f, _ := e["field"].(string)
		msg, _ := e["message"].(string)
		if m[f] != "" {
			m[f] += " | "
		}
		m[f] += msg
	}
	return m
}

func compose(over map[string]any) map[string]any {
	req := map[string]any{
		"to": "burger@example.nl", "cc": "", "bcc": "", "message": "Hierbij de stukken.", "expires": "",
		"lang": "nl", "password_mode": "generate", "files": []map[string]any{{"Name": "a.pdf", "Size": 1000}},
	}
	for k, v := range over {
		req[k] = v
	}
	return req
}

func TestSendTransferValidation(t *testing.T) {
	e := newSendEnv(t, nil)
	anon := e.client()
	if st, out := postJSON(t, anon, e.srv.URL+"/send/transfer", compose(nil)); st != http.StatusUnauthorized || fieldErrors(out)[""] == "" {
		t.Errorf("without a session: %d %v", st, out)
	}
	c := e.verify(t, "a.jansen@example.nl")

	// Every bad address is named, in its own field's error.
	st, out := postJSON(t, c, e.srv.URL+"/send/transfer", compose(map[string]any{
		"to":  "Piet <piet@example.nl>; geen-adres\nklaas@example.nl",
		"cc":  "x@, jansen@example.nl",
		"bcc": "archief@@example.nl",
	}))
	errs := fieldErrors(out)
	if st != http.StatusUnprocessableEntity {
		t.Fatalf("bad addresses: %d %v", st, out)
	}
	for field, want := range map[string]string{"to": "geen-adres", "cc": "x@", "bcc": "archief@@example.nl"} {
		if !strings.Contains(errs[field], want) {
			t.Errorf("error for %s = %q, want it to name %q", field, errs[field], want)
		}
	}
	if strings.Contains(errs["to"], "piet@") || strings.Contains(errs["to"], "klaas@") {
		t.Errorf("good addresses named as bad: %q", errs["to"])
	}

	// Size over the policy's limit, no recipients, a weak manual password,
	// a date past the maximum, a subject with a line break: one error each.
	st, out = postJSON(t, c, e.srv.URL+"/send/transfer", compose(map[string]any{
		"to": "", "password_mode": "manual", "password": "welkom01", "expires": "2999-01-01", "subject": "a\nb",
		"files": []map[string]any{{"Name": "groot.iso", "Size": int64(3) << 40}},
	}))
	errs = fieldErrors(out)
	if st != http.StatusUnprocessableEntity {
		t.Fatalf("bad form: %d", st)
	}
	for _, f := range []string{"to", "files", "password", "expires", "subject"} {
		if errs[f] == "" {
			t.Errorf("no error for %s (got %v)", f, errs)
		}
	}
	if !strings.Contains(errs["files"], "GB") {
		t.Errorf("size error does not give the sizes: %q", errs["files"])
	}

	// English page: English messages.
	req, _ := http.NewRequest("POST", e.srv.URL+"/send/transfer", strings.NewReader(`{"to":"nope","password_mode":"generate","lang":"en","message":"x"}`))
	req.Header.Set("Content-Type", "application/json")
	req.AddCookie(&http.Cookie{Name: langCookie, Value: "en"})
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var en map[string]any
	json.NewDecoder(resp.Body).Decode(&en)
	resp.Body.Close()
	if got := fieldErrors(en)["to"]; !strings.Contains(got, "is not a valid e-mail address") {
		t.Errorf("English error %q", got)
	}

	// Good: the upload token and the generated password, once.
	st, out = postJSON(t, c, e.srv.URL+"/send/transfer", compose(map[string]any{"cc": "cc@example.nl", "bcc": "bcc@example.nl", "body": "<b>Hallo</b>"}))
	if st != http.StatusCreated || out["upload_token"] == "" || out["password"] == "" || out["upload_url"] != "/api/v1/uploads/" {
		t.Fatalf("create: %d %v", st, out)
	}
	if rs, _ := out["recipients"].([]any); len(rs) != 3 {
		t.Errorf("recipients %v", out["recipients"])
	}
}

// TestSendPolicyRefusal: a recipient the organisation's policy refuses is
// named in the To field's error.
func TestSendPolicyRefusal(t *testing.T) {
	pol, err := kpolicy.Parse([]byte(`{"organisation_domains": ["gemeente.example.nl"]}`))
	if err != nil {
		t.Fatal(err)
	}
	e := newSendEnv(t, pol)
	c := e.verify(t, "burger@example.com")
	st, out := postJSON(t, c, e.srv.URL+"/send/transfer", compose(map[string]any{"to": "loket@gemeente.example.nl; buurman@example.org"}))
	errs := fieldErrors(out)
	if st != http.StatusUnprocessableEntity || !strings.Contains(errs["to"], "buurman@example.org") || strings.Contains(errs["to"], "loket@") {
		t.Fatalf("policy refusal: %d %v", st, errs)
	}
	if st, _ := postJSON(t, c, e.srv.URL+"/send/transfer", compose(map[string]any{"to": "loket@gemeente.example.nl"})); st != http.StatusCreated {
		t.Errorf("allowed recipient: %d", st)
	}
}

// TestSendPreview: the preview is the real notification mail, with the
// sender's text sanitized as in the mail, in a frame that runs nothing.
func TestSendPreview(t *testing.T) {
	e := newSendEnv(t, nil)
	c := e.verify(t, "a.jansen@example.nl")
	resp, body := post(t, c, e.srv.URL+"/send/preview", url.Values{
		"subject": {"Uw stukken"}, "lang": {"en"}, "password_mode": {"generate"}, "to": {"burger@example.nl"},
		"body":  {`<b>vet</b> <i>schuin</i> <u>onder</u> <s>door</s><script>alert(1)</script><img src=x onerror="alert(2)"><a href="javascript:alert(3)">klik</a>`},
		"files": {`[{"Name":"geheim.pdf","Size":1000}]`},
	})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("preview: %d", resp.StatusCode)
	}
	for _, want := range []string{"<b>vet</b>", "<i>schuin</i>", "<u>onder</u>", "<s>door</s>", "A. Jansen", "burger@example.nl", "password"} {
		if !strings.Contains(body, want) {
			t.Errorf("preview lacks %q", want)
		}
	}
	for _, bad := range []string{"<script", "onerror", "javascript:", "geheim.pdf"} {
		if strings.Contains(body, bad) {
			t.Errorf("preview contains %q", bad)
		}
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "sandbox") || !strings.Contains(csp, "default-src 'none'") {
		t.Errorf("preview CSP %q", csp)
	}
	// Not verified: no preview.
	if resp, _ := post(t, e.client(), e.srv.URL+"/send/preview", url.Values{"body": {"x"}}); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("preview without session: %d", resp.StatusCode)
	}
}

// TestSendPageDataEscaped: the sender's name goes into the page's JSON
// data block; it cannot end the script element.
func TestSendPageDataEscaped(t *testing.T) {
	e := newSendEnv(t, nil)
	c := e.verifyAs(t, `Jan</script><script>alert(1)</script>`, "jan@example.nl")
	resp, body := get(t, c, e.srv.URL+"/send")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("compose page: %d", resp.StatusCode)
	}
	if strings.Contains(body, "<script>alert(1)") {
		t.Error("the sender's name broke out of the data block")
	}
	i := strings.Index(body, `id="send-data">`)
	j := strings.Index(body[i:], "</script>")
	var d map[string]any
	if err := json.Unmarshal([]byte(body[i+len(`id="send-data">`):i+j]), &d); err != nil {
		t.Fatalf("data block is not JSON: %v", err)
	}
	if got := d["Sender"].(map[string]any)["name"]; got != `Jan</script><script>alert(1)</script>` {
		t.Errorf("name in the data block %q", got)
	}
}

// TestSendChangeAddressWaits: asking for a code for another address in the
// same browser within the cooldown is refused on the details form (the
// address as typed, the wait explained), not shown as a code page for an
// address no code went to.
func TestSendChangeAddressWaits(t *testing.T) {
	e := newSendEnv(t, nil)
	c := e.client()
	resp, _ := post(t, c, e.srv.URL+"/send/verify", url.Values{"name": {"A. Jansen"}, "email": {"a.jansen@example.nl"}, "next": {"/send"}})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("first code: %d", resp.StatusCode)
	}
	resp, body := post(t, c, e.srv.URL+"/send/verify", url.Values{"name": {"A. Jansen"}, "email": {"b.jansen@example.nl"}, "next": {"/send"}})
	if resp.StatusCode != http.StatusTooManyRequests || strings.Join(summaryLinks(body), ",") != "email" ||
		!strings.Contains(body, "Wacht een minuut voordat u een code vraagt voor een ander adres") || !strings.Contains(body, `value="b.jansen@example.nl"`) {
		t.Fatalf("other address within the cooldown: %d %v\n%s", resp.StatusCode, summaryLinks(body), body)
	}
	// The same address: the code page, the code sent still works.
	resp, body = post(t, c, e.srv.URL+"/send/verify", url.Values{"name": {"A. Jansen"}, "email": {"a.jansen@example.nl"}, "next": {"/send"}, "resend": {"1"}})
	if resp.StatusCode != http.StatusTooManyRequests || !strings.Contains(body, `action="/send/confirm"`) {
		t.Fatalf("resend within the cooldown: %d", resp.StatusCode)
	}
	resp, _ = post(t, c, e.srv.URL+"/send/confirm", url.Values{"code": {e.mailer.lastCode(t)}, "next": {"/send"}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("confirm: %d", resp.StatusCode)
	}
}

// TestSendCodeMailLimit: past the code-mail limit for an address, a new
// browser asking for a code gets the details form with the reason and a
// Retry-After (429), in its language.
func TestSendCodeMailLimit(t *testing.T) {
	e := newSendEnv(t, nil)
	for i := 0; i < sender.DefaultConfig().CodeMails.Burst; i++ {
		resp, _ := post(t, e.client(), e.srv.URL+"/send/verify", url.Values{"name": {"A"}, "email": {"a@example.nl"}})
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("code %d: %d", i+1, resp.StatusCode)
		}
	}
	resp, body := post(t, e.client(), e.srv.URL+"/send/verify", url.Values{"name": {"A"}, "email": {"a@example.nl"}})
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" ||
		strings.Join(summaryLinks(body), ",") != "email" || !strings.Contains(body, "te veel codes naar dit adres") {
		t.Fatalf("past the limit: %d Retry-After %q\n%s", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
}

// TestSendNotifyMode: the form's download-notice mode reaches Validate
// with the box ticked (a bad one is refused and named), and means nothing
// without it.
func TestSendNotifyMode(t *testing.T) {
	e := newSendEnv(t, nil)
	c := e.verify(t, "a.jansen@example.nl")
	st, out := postJSON(t, c, e.srv.URL+"/send/transfer", compose(map[string]any{"notify_download": true, "notify": "often"}))
	named := false
	for _, msg := range fieldErrors(out) {
		named = named || strings.Contains(msg, "often")
	}
	if st != http.StatusUnprocessableEntity || !named {
		t.Errorf("bad mode with the box ticked: %d %v, want 422 naming it", st, out)
	}
	st, out = postJSON(t, c, e.srv.URL+"/send/transfer", compose(map[string]any{"notify_download": false, "notify": "often"}))
	if st == http.StatusUnprocessableEntity {
		t.Errorf("mode without the box: %d %v, want it ignored", st, out)
	}
}

// TestSendStepCounter (issue 13, item 9: the counter stopped at "2 of 3"
// and went on with "3 of 4"): every step of the send flow counts out of
// the same total, and the steps 1 to that total each appear.
func TestSendStepCounter(t *testing.T) {
	re := regexp.MustCompile(`\{\{t "send.step" (\d+) (\d+)\}\}`)
	files, err := filepath.Glob("templates/pages/*.html")
	if err != nil {
		t.Fatal(err)
	}
	totals, steps := map[string]bool{}, map[string]bool{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range re.FindAllStringSubmatch(string(b), -1) {
			totals[m[2]], steps[m[1]] = true, true
		}
	}
	if len(totals) != 1 {
		t.Fatalf("the send steps count out of different totals: %v", totals)
	}
	for total := range totals {
		n, _ := strconv.Atoi(total)
		for i := 1; i <= n; i++ {
			if !steps[strconv.Itoa(i)] {
				t.Errorf("no page is step %d of %d", i, n)
			}
		}
	}
}
