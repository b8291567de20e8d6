package e2e

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/kluis-nl/kluis/internal/oidc/oidctest"
)

// TestBrowserRecipientLogin (issue 15, item 3): a recipient who must log
// in after the password, against a real OpenID provider (oidctest, on
// zitadel's op package; tokens are made and signed by it). A login as
// another account is refused with its own page and counts in the lock-out
// with the passwords; the right login opens the files; a replayed
// callback opens nothing; the claim value is in no log and, on disk, only
// sealed. Every new page passes axe and reflows at 320 px.
func TestBrowserRecipientLogin(t *testing.T) {
	const canary = "PSEUDO-canary-5520-qz"
	const pw = "Zomer-Appel-42!"
	op := oidctest.New(t)
	op.SetUser(oidctest.User{Subject: canary, Name: "Burger"})
	op.SetUser(oidctest.User{Subject: "PSEUDO-someone-else-0042", Name: "Ander"})
	cfg := t.TempDir()
	if err := os.WriteFile(filepath.Join(cfg, "digid.secret"), []byte("rcpt-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	policyFile := filepath.Join(cfg, "policy.json")
	if err := os.WriteFile(policyFile, fmt.Appendf(nil, `{"recipient_login_providers": [{"name": "digid", "label": "DigiD",
		"issuer": %q, "client_id": "kluis-rcpt", "client_secret_file": "digid.secret", "claim": "sub"}]}`, op.Issuer), 0o600); err != nil {
		t.Fatal(err)
	}
	s := startBrowserServer(t, "--policy", policyFile) // --max-failures 3
	op.AddClient("kluis-rcpt", "rcpt-secret", s.base+"/r/login/callback")

	newTransfer := func(files ...bool) string {
		t.Helper()
		req := map[string]any{
			"sender":          map[string]string{"email": "sender@example.nl", "name": "Sender"},
			"to":              []string{"to@example.nl"},
			"message":         "Het geheime bericht",
			"password":        password{Mode: "manual", Value: pw},
			"recipient_login": map[string]any{"to@example.nl": map[string]string{"provider": "digid", "value": canary}},
		}
		var c created
		if st, code := call(t, "POST", s.base+"/api/v1/transfers", s.senderKey(t), req, &c); st != http.StatusCreated {
			t.Fatalf("create transfer: %d %s", st, code)
		}
		if len(files) == 0 || files[0] {
			if st, code := s.plainUpload(t, &c, "dossier.txt", newSource(21, 2_000, "DOSSIER"), false); st != http.StatusCreated {
				t.Fatalf("upload: %d %s", st, code)
			}
		}
		access, _ := s.finish(t, &c)
		return access
	}
	password := func(b *tab, access, value string) {
		t.Helper()
		b.open("/r/" + access)
		b.do(chromedp.SetValue(chromedp.ID("password"), value))
		b.submit("main form button[type=submit]")
	}
	signIn := func(b *tab, subject string) {
		t.Helper()
		b.submit("#login-start")
		if !strings.HasPrefix(b.eval(`location.href`), op.Issuer+"/login") {
			t.Fatalf("the login link went to %s, not the provider's sign-in page", b.eval(`location.href`))
		}
		b.do(chromedp.SetValue(chromedp.ID("username"), subject))
		b.submit("#submit")
	}

	access := newTransfer()
	b := newBrowser(t, s.base)
	b.viewport(320, 640)
	b.setLang("en", "/r/"+access)

	// The password alone leads to the login step, not to the files.
	password(b, access, pw)
	if p := b.path(); p != "/r/"+access+"/login" {
		t.Fatalf("after the right password: %s, want the login step", p)
	}
	if main := b.text("main"); !strings.Contains(main, "Log in with DigiD") || !strings.Contains(main, "Log in to open the files") {
		t.Errorf("login page: %q", main)
	}
	b.check("login")
	b.noSideways("login")
	b.open("/r/" + access + "/open")
	if p := b.path(); strings.HasSuffix(p, "/open") {
		t.Fatal("the files opened before the login")
	}

	// Another account: refused, with its own page, and counted.
	b.open("/r/" + access + "/login")
	signIn(b, "PSEUDO-someone-else-0042")
	if !strings.HasPrefix(b.path(), "/r/login/callback") || !strings.Contains(b.text("main"), "This is not the right account") {
		t.Fatalf("a login as another account: %s %q", b.path(), b.text("main"))
	}
	replay := b.eval(`location.href`)
	b.check("login-mismatch")
	b.noSideways("login-mismatch")

	// The right account: the files open.
	signIn(b, canary)
	if !strings.Contains(b.text("main"), "You are logged in") {
		t.Fatalf("the right login: %s %q", b.path(), b.text("main"))
	}
	b.check("login-done")
	b.noSideways("login-done")
	b.submit("#login-continue")
	if p := b.path(); p != "/r/"+access+"/open" || !strings.Contains(b.text("main"), "Het geheime bericht") {
		t.Fatalf("after the login: %s %q", p, b.text("main"))
	}

	// A replayed callback (state and code used) opens nothing.
	b2 := newBrowser(t, s.base, "-replay")
	b2.open(strings.TrimPrefix(replay, s.base))
	if strings.Contains(b2.text("main"), "Het geheime bericht") || strings.Contains(b2.text("main"), "logged in") {
		t.Errorf("a replayed callback: %q", b2.text("main"))
	}

	// A transfer with only a message: the login step speaks of the
	// message, not of files.
	msgOnly := newTransfer(false)
	b4 := newBrowser(t, s.base, "-message")
	b4.setLang("en", "/r/"+msgOnly)
	password(b4, msgOnly, pw)
	if main := b4.text("main"); b4.path() != "/r/"+msgOnly+"/login" || !strings.Contains(main, "Log in to open the message") || strings.Contains(main, "files") {
		t.Errorf("message-only login page: %s %q", b4.path(), main)
	}

	// Lock-out across password and login: two wrong passwords and a
	// login as another account lock the access (--max-failures 3).
	access2 := newTransfer()
	b3 := newBrowser(t, s.base, "-lock")
	b3.setLang("en", "/r/"+access2)
	password(b3, access2, "niet-het-wachtwoord")
	password(b3, access2, "ook-niet-het-wachtwoord")
	password(b3, access2, pw)
	if p := b3.path(); p != "/r/"+access2+"/login" {
		t.Fatalf("after the right password: %s", p)
	}
	signIn(b3, "PSEUDO-someone-else-0042")
	if !strings.Contains(b3.text("main"), "blocked") {
		t.Fatalf("the third wrong try did not lock: %q", b3.text("main"))
	}
	// The link itself now says it is blocked: no password field to try.
	b3.open("/r/" + access2)
	if !strings.Contains(b3.text("main"), "blocked") {
		t.Errorf("the link after the lock: %q", b3.text("main"))
	}

	// The claim value: in no log, and only sealed on disk.
	if strings.Contains(string(s.log()), "5520") {
		t.Error("the server log holds the claim value")
	}
	s.stop(t)
	filepath.WalkDir(s.data, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if b, err := os.ReadFile(path); err == nil && strings.Contains(string(b), "canary-5520") {
			t.Errorf("%s holds the claim value", path)
		}
		return nil
	})
}

// TestBrowserSendRecipientLogin: with login services in the policy the
// send form asks for a login per recipient; the review shows it with the
// value masked, never whole. Both pages pass axe and reflow at 320 px.
func TestBrowserSendRecipientLogin(t *testing.T) {
	cfg := t.TempDir()
	if err := os.WriteFile(filepath.Join(cfg, "digid.secret"), []byte("s\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	policyFile := filepath.Join(cfg, "policy.json")
	if err := os.WriteFile(policyFile, []byte(`{"recipient_login_providers": [{"name": "digid", "label": "DigiD",
		"issuer": "https://broker.example.nl", "client_id": "kluis", "client_secret_file": "digid.secret"}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	mp := startMailpit(t)
	s := startBrowserServer(t, "--smtp", mp.smtpURL(), "--mail-from", "Kluis Test <kluis@example.nl>", "--policy", policyFile)
	b := newBrowser(t, s.base)
	verifyInBrowser(t, b, mp, "en", uniq("afzender-")+"@example.nl")
	b.viewport(320, 640)
	b.check("compose-login")
	b.noSideways("compose-login")
	b.do(chromedp.SendKeys(chromedp.CSS("#to"), "burger@example.nl"),
		chromedp.SendKeys(chromedp.CSS("#message"), "Het bericht"),
		chromedp.SendKeys(chromedp.CSS("#recipient_login"), "burger@example.nl=digid:PSEUDO-form-6610-ab"))
	b.do(chromedp.Click(chromedp.CSS("#next")))
	b.waitLong(`!document.getElementById("review").hidden || !document.getElementById("compose-errors").hidden`, 30*time.Second)
	got := b.text("#review-recipients")
	if !strings.Contains(got, "Logs in with DigiD as PS•••ab after the password") || strings.Contains(got, "6610") {
		t.Errorf("review recipients: %q (errors: %q)", got, b.eval(`document.getElementById("compose-errors-list").textContent`))
	}
	b.check("review-login")
	b.noSideways("review-login")
}
