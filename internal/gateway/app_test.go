package gateway_test

import (
	"crypto/x509"
	"database/sql"
	"encoding/pem"
	"html"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/kluis-nl/kluis/internal/app/apptest"
	"github.com/kluis-nl/kluis/internal/gateway"
	"github.com/kluis-nl/kluis/internal/mail"
)

// startServe starts kluis serve with the gateway as the flags configure
// it (TLS files, trusted relay), so the wiring in package app is what runs.
func startServe(t *testing.T, args ...string) (*apptest.App, *env) {
	t.Helper()
	cert, roots := selfSigned(t)
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "gw.crt"), filepath.Join(dir, "gw.key")
	key, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: key}), 0o600)
	a := apptest.Start(t, apptest.Options{Policy: testPolicy, Args: append([]string{
		"--gateway-addr", "127.0.0.1:0", "--gateway-trusted-relay", "127.0.0.1",
		"--gateway-tls-cert", certFile, "--gateway-tls-key", keyFile, "--gateway-marker", "[secure],[beveiligd]"}, args...)})
	if a.GatewayAddr() == "" {
		t.Fatal("no gateway with --gateway-addr")
	}
	return a, &env{app: a, addr: a.GatewayAddr(), roots: roots}
}

// signIn verifies email as the send page does and returns the session
// cookie.
func signIn(t *testing.T, a *apptest.App, email string) *http.Cookie {
	t.Helper()
	return signInLang(t, a, email, "nl")
}

// signInLang is signIn from pages in lang.
func signInLang(t *testing.T, a *apptest.App, email, lang string) *http.Cookie {
	t.Helper()
	pre, err := a.Senders.Start(t.Context(), "", email, "", "", lang)
	if err != nil {
		t.Fatal(err)
	}
	code := regexp.MustCompile(`\b\d{4}[ -]?\d{4}\b`).FindString(a.Mail(mail.KindVerifyCode, email).Text)
	s, err := a.Senders.Confirm(t.Context(), pre, strings.NewReplacer(" ", "", "-", "").Replace(code), "browser")
	if err != nil {
		t.Fatal(err)
	}
	return &http.Cookie{Name: "__Host-kluis-session", Value: s.Token}
}

// waiting counts the sealed passwords in the database.
func waiting(t *testing.T, a *apptest.App) int {
	t.Helper()
	return countRows(t, a, "gateway_passwords")
}

// countRows counts the rows of a table in the database.
func countRows(t *testing.T, a *apptest.App, table string) int {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+a.DataFile("kluis.db")+"?mode=ro&_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM ` + table).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func page(t *testing.T, method, u string, form url.Values, c *http.Cookie) (int, string) {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, _ := http.NewRequest(method, u, body)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if c != nil {
		req.AddCookie(c)
	}
	cl := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := cl.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

var pwLinkRE = regexp.MustCompile(`https?://[^\s"<]+/transfers/([^/\s"<]+)/password/([A-Za-z0-9_-]+)`)

func TestSenderSeesPasswordOnce(t *testing.T) {
	a, e := startServe(t)
	msg := strings.Replace(plainMail, "[vertrouwelijk] test", "[BEVEILIGD] "+canary, 1) + canary + "\n"
	if err := e.send(t, submission{from: "jan@gemeente.nl", rcpts: []string{"alice@example.org"}, msg: msg}); err != nil {
		t.Fatalf("mail refused: %v", err)
	}
	conf := a.Mail(mail.KindGatewayPassword, "jan@gemeente.nl")
	notify := a.Mail(mail.KindNotify, "alice@example.org")
	for _, m := range a.Delivered("", "") {
		if strings.Contains(m.Subject+m.Text+m.HTML, canary) {
			t.Errorf("the %s mail to %s shows the mail's subject or text", m.Kind, m.To)
		}
	}
	link := pwLinkRE.FindStringSubmatch(conf.Text)
	if link == nil || !strings.Contains(conf.HTML, link[0]) {
		t.Fatalf("no password link in the confirmation:\n%s", conf.Text)
	}
	id, token := link[1], link[2]
	base := a.URL()

	// Without a session: to the verification first, nothing shown.
	if st, _ := page(t, "GET", base+"/transfers/"+id+"/password/"+token, nil, nil); st != http.StatusSeeOther {
		t.Errorf("without a session: %d", st)
	}
	// Another sender's session: as if the transfer did not exist.
	piet := signIn(t, a, "piet@gemeente.nl")
	if st, body := page(t, "POST", base+"/transfers/"+id+"/password", url.Values{"token": {token}}, piet); st != http.StatusNotFound {
		t.Errorf("another sender: %d %s", st, body)
	}
	jan := signIn(t, a, "jan@gemeente.nl")
	// The link shows a confirmation, not the password (mail scanners
	// open links).
	st, body := page(t, "GET", base+"/transfers/"+id+"/password/"+token, nil, jan)
	if st != http.StatusOK || !strings.Contains(body, `name="token"`) {
		t.Fatalf("GET the link: %d %s", st, body)
	}
	st, body = page(t, "POST", base+"/transfers/"+id+"/password", url.Values{"token": {token}}, jan)
	if st != http.StatusOK {
		t.Fatalf("POST: %d %s", st, body)
	}
	pw := regexp.MustCompile(`<strong class="kluis-password"[^>]*>([^<]+)</strong>`).FindStringSubmatch(body)
	if pw == nil {
		t.Fatalf("no password on the page: %s", body)
	}
	password := html.UnescapeString(pw[1])
	access := accessRE.FindStringSubmatch(notify.Text)
	sess, err := a.Transfers.Unlock(t.Context(), access[1], password)
	if err != nil {
		t.Fatalf("the shown password does not open the transfer: %v", err)
	}
	c, err := a.Transfers.Contents(t.Context(), sess)
	if err != nil || !strings.Contains(c.Message, canary) || strings.Contains(strings.ToLower(c.Message), "[beveiligd]") {
		t.Fatalf("message %q, err %v", c.Message, err)
	}
	// Once: the link and the form are used up, and the sealed password
	// is gone from the database.
	if st, _ := page(t, "POST", base+"/transfers/"+id+"/password", url.Values{"token": {token}}, jan); st != http.StatusNotFound {
		t.Errorf("second POST: %d", st)
	}
	if st, _ := page(t, "GET", base+"/transfers/"+id+"/password/"+token, nil, jan); st != http.StatusNotFound {
		t.Errorf("second GET: %d", st)
	}
	if n := waiting(t, a); n != 0 {
		t.Errorf("%d waiting passwords left", n)
	}
	for _, m := range a.Delivered("", "") {
		if strings.Contains(m.Text+m.HTML, password) {
			t.Errorf("the password is in the %s mail to %s", m.Kind, m.To)
		}
	}
	if strings.Contains(a.Logs.String(), password) || strings.Contains(a.Logs.String(), token) {
		t.Error("the log shows the password or the link's token")
	}
}

func TestPasswordLinkExpires(t *testing.T) {
	a, e := startServe(t)
	msg := strings.Replace(plainMail, "[vertrouwelijk]", "[Secure]", 1)
	if err := e.send(t, submission{from: "jan@gemeente.nl", rcpts: []string{"alice@example.org"}, msg: msg}); err != nil {
		t.Fatalf("mail refused: %v", err)
	}
	link := pwLinkRE.FindStringSubmatch(a.Mail(mail.KindGatewayPassword, "jan@gemeente.nl").Text)
	if n := waiting(t, a); n != 1 {
		t.Fatalf("%d waiting passwords, want 1", n)
	}
	a.Clock.Advance(gateway.MaxPasswordWait + time.Second)
	if st, _ := page(t, "POST", a.URL()+"/transfers/"+link[1]+"/password", url.Values{"token": {link[2]}}, signIn(t, a, "jan@gemeente.nl")); st != http.StatusNotFound {
		t.Errorf("after 24 hours: %d", st)
	}
	if err := a.GatewayPasswords.Cleanup(t.Context()); err != nil {
		t.Fatal(err)
	}
	if n := waiting(t, a); n != 0 {
		t.Errorf("%d waiting passwords left after their expiry", n)
	}
}

// TestSenderLanguage: the mails to the sender of a mail are in the
// language of their last session on Kluis's pages, else the mail's
// Content-Language, else Dutch. The subject kept for a non-delivery report
// is erased by the cleanup once the transfer is sent (the app's own
// cleanup loop may have done so already).
func TestSenderLanguage(t *testing.T) {
	a, e := startServe(t)
	signInLang(t, a, "jan@gemeente.nl", "de")
	for _, c := range []struct{ from, contentLang, want string }{
		{"jan@gemeente.nl", "en-GB", "de"},
		{"piet@gemeente.nl", "fr-BE, en", "fr"},
		{"klaas@gemeente.nl", "", "nl"},
		{"anna@gemeente.nl", "xx, pl", "pl"},
	} {
		msg := strings.NewReplacer("jan@gemeente.nl", c.from, "[vertrouwelijk]", "[secure]", "Content-Type:", "Content-Language: "+c.contentLang+"\nContent-Type:").Replace(plainMail)
		if err := e.send(t, submission{from: c.from, rcpts: []string{"alice@example.org"}, msg: msg}); err != nil {
			t.Fatalf("%s: %v", c.from, err)
		}
		if got := a.Mail(mail.KindGatewayPassword, c.from).Lang; got != c.want {
			t.Errorf("%s (Content-Language %q): the password mail is in %q, want %q", c.from, c.contentLang, got, c.want)
		}
	}
	if err := a.Gateway.Cleanup(t.Context()); err != nil {
		t.Fatal(err)
	}
	if n := countRows(t, a, "mail_origins"); n != 0 {
		t.Errorf("%d subjects of sent transfers left after the cleanup", n)
	}
}
