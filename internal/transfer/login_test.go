package transfer_test

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kluis-nl/kluis"
	"github.com/kluis-nl/kluis/internal/app/apptest"
	"github.com/kluis-nl/kluis/internal/audit"
	"github.com/kluis-nl/kluis/internal/kluistest"
	"github.com/kluis-nl/kluis/internal/oidc/oidctest"
	"github.com/kluis-nl/kluis/internal/secret"
	"github.com/kluis-nl/kluis/internal/store/storetest"
	"github.com/kluis-nl/kluis/internal/transfer"
)

// canaryPseudonym is the claim value the sender gives: a broker's
// pseudonym, as DigiD brokers return.
const canaryPseudonym = "PSEUDO-canary-7731-kx"

// loginEnv is an engine whose policy lists the real OpenID provider op
// (oidctest) as "digid", matching on sub; its recipients come back at
// base + transfer.LoginCallbackPath.
func loginEnv(t testing.TB, tune ...func(*transfer.Config)) (*env, *oidctest.Provider) {
	t.Helper()
	return loginEnvWith(t, "", "", tune...)
}

// loginEnvOn is loginEnv on the database db ("" for SQLite).
func loginEnvOn(t testing.TB, db string, tune ...func(*transfer.Config)) (*env, *oidctest.Provider) {
	t.Helper()
	return loginEnvWith(t, db, "", tune...)
}

// loginEnvWith is loginEnvOn with more settings of the provider (JSON
// members, starting with a comma).
func loginEnvWith(t testing.TB, db, extra string, tune ...func(*transfer.Config)) (*env, *oidctest.Provider) {
	t.Helper()
	op := oidctest.New(t)
	const base = "http://127.0.0.1:8080"
	op.AddClient("kluis-rcpt", "rcpt-secret", base+transfer.LoginCallbackPath)
	op.SetUser(oidctest.User{Subject: canaryPseudonym, Name: "Burger"})
	op.SetUser(oidctest.User{Subject: "PSEUDO-someone-else-0042", Name: "Ander"})
	secretFile := filepath.Join(t.TempDir(), "digid.secret")
	if err := os.WriteFile(secretFile, []byte("rcpt-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	pol := fmt.Sprintf(`{"recipient_login_providers": [{"name": "digid", "label": "DigiD (test)", "issuer": %q,
		"client_id": "kluis-rcpt", "client_secret_file": %q, "claim": "sub"%s}]}`, op.Issuer, secretFile, extra)
	e := openEnv(t, apptest.Options{DB: db, Clock: kluistest.NewClock(), Policy: pol, Args: []string{"--base-url", base}}, tune...)
	return e, op
}

// loginTransfer is a finished transfer to one recipient who logs in with
// digid as canaryPseudonym, and that recipient's access id.
func (e *env) loginTransfer(t testing.TB) (*transfer.Created, string) {
	t.Helper()
	c, err := e.svc.Create(e.ctx, transfer.CreateRequest{
		SenderEmail: "afzender@example.nl", To: []string{"burger@example.nl"}, PasswordMode: kluis.PasswordManual,
		Password: "Vrolijk-Paarse-Olifant-42", Message: "Geheim bericht", Subject: "Uw dossier",
		Auth: map[string]transfer.RecipientAuth{"burger@example.nl": {Method: kluis.AuthPasswordLogin, Login: "DigiD", LoginValue: canaryPseudonym}},
	})
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	e.upload(owner(c), "dossier.pdf", []byte("inhoud van het dossier"))
	return c, e.finish(c).Links[0].AccessID
}

// atProvider follows authURL to the provider's sign-in page, signs in as
// subject and returns the state and code the provider sends back.
func atProvider(t testing.TB, authURL, subject string) (state, code string) {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	var back *url.URL
	c := &http.Client{Jar: jar, CheckRedirect: func(r *http.Request, _ []*http.Request) error {
		if r.URL.Path == transfer.LoginCallbackPath {
			back = r.URL
			return http.ErrUseLastResponse
		}
		return nil
	}}
	resp, err := c.Get(authURL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp, err = oidctest.SignIn(c, resp.Request.URL.String(), subject); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if back == nil {
		t.Fatalf("the provider did not send the browser back (%s)", resp.Status)
	}
	return back.Query().Get("state"), back.Query().Get("code")
}

// TestLoginOpensTransfer: the right password leaves the session pending;
// a login whose sub matches opens it, and the audit says how. On SQLite
// and PostgreSQL.
func TestLoginOpensTransfer(t *testing.T) {
	forEachDB(t, func(t *testing.T, _ envMaker) {
		db := ""
		if strings.HasSuffix(t.Name(), "postgres") {
			db = storetest.Postgres(t)
		}
		testLoginOpens(t, db)
	})
}

func testLoginOpens(t *testing.T, db string) {
	e, _ := loginEnvOn(t, db)
	rec := e.withAudit()
	c, access := e.loginTransfer(t)
	p := e.pending(t, access)
	if p.Method() != kluis.AuthPasswordLogin {
		t.Fatalf("method = %s", p.Method())
	}
	lp, err := e.svc.LoginProvider(p)
	if err != nil || lp.Label != "DigiD (test)" {
		t.Fatalf("provider = %+v, %v", lp, err)
	}
	binding := secret.NewToken()
	authURL, err := e.svc.BeginLogin(e.ctx, p, binding)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"code_challenge_method=S256", "nonce=", "state="} {
		if !strings.Contains(authURL, want) {
			t.Errorf("authorization URL lacks %s: %s", want, authURL)
		}
	}
	state, code := atProvider(t, authURL, canaryPseudonym)
	res, err := e.svc.FinishLogin(e.ctx, binding, state, code)
	if err != nil {
		t.Fatalf("finish: %v", err)
	}
	if res.TransferID != c.Transfer.ID || res.Provider != "digid" {
		t.Errorf("result = %+v", res)
	}
	s, err := e.svc.OpenSession(e.ctx, p.Token)
	if err != nil {
		t.Fatalf("the session did not open after the login: %v", err)
	}
	cs, err := e.svc.Contents(e.ctx, s)
	if err != nil || len(cs.Files) != 1 || cs.Message != "Geheim bericht" {
		t.Fatalf("contents = %+v, %v", cs, err)
	}
	if b, err := e.readFile(s, cs.Files[0].ID); err != nil || string(b) != "inhoud van het dossier" {
		t.Errorf("read = %q, %v", b, err)
	}
	tr, err := e.svc.Transfer(e.ctx, owner(c))
	if err != nil {
		t.Fatal(err)
	}
	r := tr.Recipients[0]
	if r.VerifiedAt == nil || r.Login != "digid" || r.LoginValue != transfer.MaskLoginValue(canaryPseudonym) || strings.Contains(r.LoginValue, "7731") {
		t.Errorf("recipient view = login %q value %q verified %v", r.Login, r.LoginValue, r.VerifiedAt)
	}
	found := false
	for _, ev := range e.auditEntries(rec) {
		found = found || (ev.Action == audit.RecipientUnlock && ev.Result == audit.OK && ev.Detail == "method=password+login provider=digid")
	}
	if !found {
		t.Error("no audit event of the open with its method and provider")
	}
}

// TestLoginMismatchCounts: a login as another account is refused and is a
// wrong try in the recipient's count; the session stays pending.
func TestLoginMismatchCounts(t *testing.T) {
	t.Parallel()
	e, _ := loginEnv(t)
	c, access := e.loginTransfer(t)
	p := e.pending(t, access)
	binding := secret.NewToken()
	authURL, err := e.svc.BeginLogin(e.ctx, p, binding)
	if err != nil {
		t.Fatal(err)
	}
	state, code := atProvider(t, authURL, "PSEUDO-someone-else-0042")
	_, err = e.svc.FinishLogin(e.ctx, binding, state, code)
	wantCode(t, err, kluis.EWRONGSECRET)
	if _, err := e.svc.OpenSession(e.ctx, p.Token); kluis.ErrorCode(err) != kluis.EUNAUTHORIZED {
		t.Fatalf("a refused login opened the session: %v", err)
	}
	tr, err := e.svc.Transfer(e.ctx, owner(c))
	if err != nil {
		t.Fatal(err)
	}
	if f := tr.Recipients[0].Failures; f != 1 {
		t.Errorf("failures = %d, want 1 (the refused login)", f)
	}
	if e.logs.Count("recipient login does not match") != 1 || e.logs.Count("wrong recipient attempt") != 1 {
		t.Errorf("the refusal is not logged:\n%s", e.logs)
	}
}

// TestLoginLockoutWithPasswords: wrong passwords and a refused login
// count in one lock-out.
func TestLoginLockoutWithPasswords(t *testing.T) {
	t.Parallel()
	e, _ := loginEnv(t, func(c *transfer.Config) { c.MaxFailures = 3 })
	_, access := e.loginTransfer(t)
	for range 2 {
		_, err := e.svc.Unlock(e.ctx, access, "verkeerd-wachtwoord-1")
		wantCode(t, err, kluis.EWRONGSECRET)
	}
	p := e.pending(t, access)
	binding := secret.NewToken()
	authURL, err := e.svc.BeginLogin(e.ctx, p, binding)
	if err != nil {
		t.Fatal(err)
	}
	state, code := atProvider(t, authURL, "PSEUDO-someone-else-0042")
	_, err = e.svc.FinishLogin(e.ctx, binding, state, code)
	wantCode(t, err, kluis.ELOCKED)
	_, err = e.svc.Unlock(e.ctx, access, "Vrolijk-Paarse-Olifant-42")
	wantCode(t, err, kluis.ELOCKED)
}

// TestLoginStateOnce: a callback works once, only in the browser that
// began it, and a login left at the provider too long is refused.
func TestLoginStateOnce(t *testing.T) {
	t.Parallel()
	e, _ := loginEnv(t)
	_, access := e.loginTransfer(t)
	p := e.pending(t, access)
	binding := secret.NewToken()
	authURL, err := e.svc.BeginLogin(e.ctx, p, binding)
	if err != nil {
		t.Fatal(err)
	}
	state, code := atProvider(t, authURL, canaryPseudonym)
	// Another browser (another binding) with the right state and code.
	_, err = e.svc.FinishLogin(e.ctx, secret.NewToken(), state, code)
	wantCode(t, err, kluis.EUNAUTHORIZED)
	// The state was used up by that try: the real browser must begin again.
	_, err = e.svc.FinishLogin(e.ctx, binding, state, code)
	wantCode(t, err, kluis.EUNAUTHORIZED)

	authURL, err = e.svc.BeginLogin(e.ctx, p, binding)
	if err != nil {
		t.Fatal(err)
	}
	state, code = atProvider(t, authURL, canaryPseudonym)
	if _, err := e.svc.FinishLogin(e.ctx, binding, state, code); err != nil {
		t.Fatal(err)
	}
	// Replayed callback.
	_, err = e.svc.FinishLogin(e.ctx, binding, state, code)
	wantCode(t, err, kluis.EUNAUTHORIZED)
	_, err = e.svc.FinishLogin(e.ctx, binding, "", code)
	wantCode(t, err, kluis.EUNAUTHORIZED)
	tr, err := e.svc.Transfer(e.ctx, transfer.Owner{TransferID: p.TransferID()})
	if err != nil {
		t.Fatal(err)
	}
	if f := tr.Recipients[0].Failures; f != 0 {
		t.Errorf("failures = %d: refused states must not count as tries", f)
	}
}

// TestLoginValueOnlySealed: the claim value is in no log and, in the
// data folder (SQLite database and WAL), only sealed.
func TestLoginValueOnlySealed(t *testing.T) {
	t.Parallel()
	e, _ := loginEnv(t)
	_, access := e.loginTransfer(t)
	p := e.pending(t, access)
	binding := secret.NewToken()
	authURL, err := e.svc.BeginLogin(e.ctx, p, binding)
	if err != nil {
		t.Fatal(err)
	}
	state, code := atProvider(t, authURL, canaryPseudonym)
	if _, err := e.svc.FinishLogin(e.ctx, binding, state, code); err != nil {
		t.Fatal(err)
	}
	for _, c := range []string{"canary-7731", "7731"} {
		if e.logs.Contains(c) {
			t.Errorf("log holds the claim value (%q)", c)
		}
	}
	walkFiles(t, e.dir, func(path string, b []byte) {
		if strings.Contains(string(b), "canary-7731") {
			t.Errorf("%s holds the claim value", path)
		}
	})
}

// TestValidateRecipientLogin: the login choices Validate refuses.
func TestValidateRecipientLogin(t *testing.T) {
	t.Parallel()
	e, _ := loginEnv(t)
	for _, c := range []struct {
		name string
		mode kluis.PasswordMode
		auth transfer.RecipientAuth
		code string
	}{
		{"no provider", kluis.PasswordGenerate, transfer.RecipientAuth{Method: kluis.AuthPasswordLogin, LoginValue: "x"}, transfer.CodeLoginProviderMissing},
		{"unknown provider", kluis.PasswordGenerate, transfer.RecipientAuth{Method: kluis.AuthPasswordLogin, Login: "eherkenning", LoginValue: "x"}, transfer.CodeLoginProviderUnknown},
		{"no value", kluis.PasswordGenerate, transfer.RecipientAuth{Method: kluis.AuthPasswordLogin, Login: "digid"}, transfer.CodeLoginValueMissing},
		{"no-password link", kluis.PasswordNone, transfer.RecipientAuth{Method: kluis.AuthPasswordLogin, Login: "digid", LoginValue: "x"}, transfer.CodeLoginNoPassword},
		{"login without the method", kluis.PasswordGenerate, transfer.RecipientAuth{Method: kluis.AuthPassword, Login: "digid", LoginValue: "x"}, transfer.CodeLoginUnexpected},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := e.svc.Validate(transfer.CreateRequest{SenderEmail: "afzender@example.nl", To: []string{"a@example.nl"}, PasswordMode: c.mode,
				Auth: map[string]transfer.RecipientAuth{"a@example.nl": c.auth}})
			var ke *kluis.Error
			if !errors.As(err, &ke) {
				t.Fatalf("err = %v, want field errors", err)
			}
			found := false
			for _, f := range ke.Fields {
				found = found || (f.Code == c.code && f.Field == transfer.FieldRecipientAuth)
			}
			if !found {
				t.Errorf("errors = %v, want code %s", ke.Fields, c.code)
			}
		})
	}
}

// TestLoginRequiredACR: a provider that asks for an acr refuses (and
// counts) a login of the right account at a lower level.
func TestLoginRequiredACR(t *testing.T) {
	t.Parallel()
	e, op := loginEnvWith(t, "", `, "acr": ["urn:eidas:substantial"]`)
	op.SetUser(oidctest.User{Subject: canaryPseudonym, ACR: "urn:eidas:low"})
	c, access := e.loginTransfer(t)
	p := e.pending(t, access)
	binding := secret.NewToken()
	login := func() error {
		authURL, err := e.svc.BeginLogin(e.ctx, p, binding)
		if err != nil {
			t.Fatal(err)
		}
		state, code := atProvider(t, authURL, canaryPseudonym)
		_, err = e.svc.FinishLogin(e.ctx, binding, state, code)
		return err
	}
	wantCode(t, login(), kluis.EWRONGSECRET)
	tr, err := e.svc.Transfer(e.ctx, owner(c))
	if err != nil {
		t.Fatal(err)
	}
	if f := tr.Recipients[0].Failures; f != 1 {
		t.Errorf("failures = %d, want 1", f)
	}
	op.SetUser(oidctest.User{Subject: canaryPseudonym, ACR: "urn:eidas:substantial"})
	if err := login(); err != nil {
		t.Fatalf("a login at the required level: %v", err)
	}
}
