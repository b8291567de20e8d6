package policy

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kluis-nl/kluis"
)

func TestLoginProviderErrors(t *testing.T) {
	const ok = `"name": "digid", "issuer": "https://broker.example.nl", "client_id": "kluis", "client_secret_file": "s"`
	tests := []struct {
		name, providers, path, want string
	}{
		{"not a list", `{}`, "recipient_login_providers", "must be a list"},
		{"no issuer", `[{"name": "x", "client_id": "c", "client_secret_file": "s"}]`, "recipient_login_providers[0].issuer", "is required"},
		{"bad issuer", `[{"name": "x", "issuer": "login.example.nl", "client_id": "c", "client_secret_file": "s"}]`, "recipient_login_providers[0].issuer", "not an issuer URL"},
		{"no secret file", `[{"name": "x", "issuer": "https://a.nl", "client_id": "c"}]`, "recipient_login_providers[0].client_secret_file", "is required"},
		{"bad name", `[{"name": "Dig ID", "issuer": "https://a.nl", "client_id": "c", "client_secret_file": "s"}]`, "recipient_login_providers[0].name", "lower-case"},
		{"twice", `[{` + ok + `}, {` + ok + `}]`, "recipient_login_providers[1].name", "already used"},
		{"unknown claim", `[{` + ok + `, "claim": "name"}]`, "recipient_login_providers[0].claim", "cannot be matched"},
		{"email without domains", `[{` + ok + `, "claim": "email"}]`, "recipient_login_providers[0].email_domains", "authoritative"},
		{"oid without tenant", `[{` + ok + `, "claim": "oid"}]`, "recipient_login_providers[0].tenant", "unique only within its tenant"},
		{"tenant with sub", `[{` + ok + `, "tenant": "9188040d-6c67-4c5b-b112-36a304b66dad"}]`, "recipient_login_providers[0].tenant", "only applies"},
		{"unknown key", `[{` + ok + `, "secret": "x"}]`, "recipient_login_providers[0].secret", "unknown setting"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(`{"recipient_login_providers": ` + tt.providers + `}`))
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("err = %v, want a ParseError", err)
			}
			if pe.Path != tt.path || !strings.Contains(pe.Error(), tt.want) {
				t.Errorf("err = %v, want at %s saying %q", err, tt.path, tt.want)
			}
		})
	}
}

func TestLoadReadsLoginSecret(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "policy.json")
	body := `{"recipient_login_providers": [{"name": "digid", "label": "DigiD", "issuer": "https://broker.example.nl", "client_id": "kluis", "client_secret_file": "digid.secret"}]}`
	if err := os.WriteFile(file, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(file); err == nil || !strings.Contains(err.Error(), "client_secret_file") {
		t.Fatalf("Load without the secret file: %v, want an error naming client_secret_file", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "digid.secret"), []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p, err := Load(file)
	if err != nil {
		t.Fatal(err)
	}
	lp, ok := p.LoginProvider("digid")
	if !ok || lp.ClientSecret != "s3cret" || lp.Label != "DigiD" || lp.Claim != ClaimSub {
		t.Errorf("provider = %+v, %v", lp, ok)
	}
	if _, ok := p.LoginProvider("other"); ok {
		t.Error("an unknown provider was found")
	}
}

func TestLoginMatch(t *testing.T) {
	const tid = "9188040d-6c67-4c5b-b112-36a304b66dad"
	const oid = "00000000-0000-0000-66f3-3332eca7ea81"
	sub := LoginProvider{Claim: ClaimSub}
	acr := LoginProvider{Claim: ClaimSub, ACR: []string{"substantial"}}
	entra := LoginProvider{Claim: ClaimOID, Tenant: tid}
	mail := LoginProvider{Claim: ClaimEmail, EmailDomains: []string{"gemeente.nl"}}
	tests := []struct {
		name     string
		p        LoginProvider
		claims   map[string]any
		expected string
		want     bool
	}{
		{"sub", sub, map[string]any{"sub": "p-1"}, "p-1", true},
		{"other sub", sub, map[string]any{"sub": "p-2"}, "p-1", false},
		{"sub differs in case", sub, map[string]any{"sub": "P-1"}, "p-1", false},
		{"acr met", acr, map[string]any{"sub": "p-1", "acr": "substantial"}, "p-1", true},
		{"acr too low", acr, map[string]any{"sub": "p-1", "acr": "low"}, "p-1", false},
		{"oid in tenant", entra, map[string]any{"oid": strings.ToUpper(oid), "tid": tid}, oid, true},
		{"oid in another tenant", entra, map[string]any{"oid": oid, "tid": "11111111-6c67-4c5b-b112-36a304b66dad"}, oid, false},
		{"email", mail, map[string]any{"email": "A@Gemeente.nl", "email_verified": true}, "a@gemeente.nl", true},
		{"email unverified", mail, map[string]any{"email": "a@gemeente.nl", "email_verified": false}, "a@gemeente.nl", false},
		{"email other", mail, map[string]any{"email": "b@gemeente.nl"}, "a@gemeente.nl", false},
	}
	for _, tt := range tests {
		if got, why := tt.p.Match(tt.claims, tt.expected); got != tt.want {
			t.Errorf("%s: Match = %v (%s), want %v", tt.name, got, why, tt.want)
		}
	}
}

func TestLoginExpectedValue(t *testing.T) {
	mail := LoginProvider{Claim: ClaimEmail, EmailDomains: []string{"gemeente.nl"}}
	if v, err := mail.ExpectedValue("Jan@Gemeente.nl", ""); err != nil || v != "jan@gemeente.nl" {
		t.Errorf("email default = %q, %v", v, err)
	}
	if _, err := mail.ExpectedValue("jan@gmail.com", ""); !errors.Is(err, ErrLoginEmailDomain) {
		t.Errorf("email outside the provider's domains: %v", err)
	}
	if _, err := (LoginProvider{Claim: ClaimSub}).ExpectedValue("a@b.nl", " "); !errors.Is(err, ErrLoginValueMissing) {
		t.Errorf("sub without value: %v", err)
	}
	if _, err := (LoginProvider{Claim: ClaimOID, Tenant: "x"}).ExpectedValue("a@b.nl", "not-a-guid"); !errors.Is(err, ErrLoginValueInvalid) {
		t.Errorf("oid not a GUID: %v", err)
	}
}

// TestSpecialMinimumPrefersSMS: a rule that names no special_minimum keeps
// the SMS code as the default for special personal data, as before the
// login method existed (a login needs a provider the sender must choose).
func TestSpecialMinimumPrefersSMS(t *testing.T) {
	p, err := Parse([]byte(`{"defaults": {"recipient_auth": {"minimum": "password"}}}`))
	if err != nil {
		t.Fatal(err)
	}
	if got := p.Defaults().RecipientAuth.MinimumFor(true); got != kluis.AuthPasswordSMS {
		t.Errorf("special minimum = %s, want password+sms", got)
	}
	p, err = Parse([]byte(`{"defaults": {"recipient_auth": {"allowed": ["password", "password+login"]}}}`))
	if err != nil {
		t.Fatal(err)
	}
	if got := p.Defaults().RecipientAuth.MinimumFor(true); got != kluis.AuthPasswordLogin {
		t.Errorf("special minimum with only a login = %s, want password+login", got)
	}
}
