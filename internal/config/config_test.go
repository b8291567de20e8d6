package config

import (
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestDefaults(t *testing.T) {
	t.Parallel()
	c, err := ParseServe(nil, env(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.Addr != "127.0.0.1:8080" || c.DataDir != "kluis-data" || c.BaseURL != "http://127.0.0.1:8080" || !c.BaseURLDefaulted {
		t.Fatalf("got %+v", c)
	}
	if c.MaxTransferSize != 2_000_000_000 || c.DefaultExpiry != 7*24*time.Hour || c.MaxExpiry != 30*24*time.Hour {
		t.Fatalf("limits: %+v", c)
	}
	if c.MasterKeyFile != filepath.Join("kluis-data", "master.key") {
		t.Fatalf("master key file %q", c.MasterKeyFile)
	}
	if !strings.Contains(c.MailFrom, "<kluis@") {
		t.Fatalf("mail from %q", c.MailFrom)
	}
}

func TestBodyLimits(t *testing.T) {
	t.Parallel()
	c, err := ParseServe(nil, env(nil), io.Discard)
	if err != nil || c.BodyTimeout != 30*time.Second || c.MinBodyRate != 1000 {
		t.Fatalf("defaults: %v, %v, %v", c.BodyTimeout, c.MinBodyRate, err)
	}
	c, err = ParseServe([]string{"--min-body-rate", "2KiB/s"}, env(map[string]string{"KLUIS_BODY_TIMEOUT": "1m", "KLUIS_MIN_BODY_RATE": "0"}), io.Discard)
	if err != nil || c.BodyTimeout != time.Minute || c.MinBodyRate != 2048 {
		t.Fatalf("set: %v, %v, %v", c.BodyTimeout, c.MinBodyRate, err)
	}
}

func TestPrecedence(t *testing.T) {
	t.Parallel()
	e := env(map[string]string{"KLUIS_ADDR": "127.0.0.1:9000", "KLUIS_MAX_EXPIRY": "60d"})
	c, err := ParseServe([]string{"--addr", "127.0.0.1:9001"}, e, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.Addr != "127.0.0.1:9001" {
		t.Fatalf("flag should win over environment: %q", c.Addr)
	}
	if c.MaxExpiry != 60*24*time.Hour {
		t.Fatalf("environment should win over default: %v", c.MaxExpiry)
	}
}

func TestSecretFromFile(t *testing.T) {
	t.Parallel()
	f := filepath.Join(t.TempDir(), "smtp")
	if err := os.WriteFile(f, []byte("smtp://u:p@mail.example.nl:587\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := ParseServe(nil, env(map[string]string{"KLUIS_SMTP_FILE": f}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.SMTP != "smtp://u:p@mail.example.nl:587" {
		t.Fatalf("SMTP from file = %q (one trailing newline dropped)", c.SMTP)
	}
	if _, err := ParseServe(nil, env(map[string]string{"KLUIS_SMTP_FILE": f, "KLUIS_SMTP": "x"}), io.Discard); err == nil {
		t.Fatal("both KLUIS_SMTP and KLUIS_SMTP_FILE accepted")
	}
}

// TestEmptySecretFile: an empty or unreadable *_FILE secret stops the
// start with an error that names the variable and never shows a value.
func TestEmptySecretFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	blank := filepath.Join(dir, "blank")
	os.WriteFile(empty, nil, 0o600)
	os.WriteFile(blank, []byte(" \r\n\n"), 0o600)
	for _, name := range []string{"KLUIS_SMTP_FILE", "KLUIS_DB_FILE", "KLUIS_METRICS_TOKEN_FILE"} {
		for _, f := range []string{empty, blank, filepath.Join(dir, "missing"), dir} {
			_, err := ParseServe(nil, env(map[string]string{name: f}), io.Discard)
			if err == nil || !strings.HasPrefix(err.Error(), name+": ") {
				t.Errorf("%s=%s: %v, want an error naming %s", name, f, err, name)
			}
		}
	}
}

func TestBadInput(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--addr", "localhost"}, "HOST:PORT"},
		{[]string{"--addr", "127.0.0.1:99999"}, "port"},
		{[]string{"--base-url", "ftp://x"}, "http(s)"},
		{[]string{"--max-transfer-size", "lots"}, "not a size"},
		{[]string{"--default-expiry", "40d"}, "longer than --max-expiry"},
		{[]string{"--max-expiry", "-1d"}, "not a duration"},
		{[]string{"--log-level", "loud"}, "debug, info, warn or error"},
		{[]string{"--mail-from", "nobody"}, "Name <address"},
		{[]string{"--body-timeout", "500ms"}, "at least 1s"},
		{[]string{"--min-body-rate", "fast"}, "not a rate"},
		{[]string{"--min-body-rate", "-1KB"}, "not a rate"},
		{[]string{"--log-static", "some"}, "all, none, or 1/N"},
		{[]string{"--log-static", "1/0"}, "all, none, or 1/N"},
		{[]string{"--syslog-addr", "siem:514"}, "udp://HOST:PORT, tcp://HOST:PORT or tls://HOST:PORT"},
		{[]string{"--syslog-addr", "tcp://siem"}, "give a port"},
		{[]string{"--syslog-addr", "tcp://siem:601", "--syslog-facility", "local8"}, "local0 … local7"},
		{[]string{"--syslog-addr", "tcp://siem:601", "--syslog-send", "all"}, "log, audit or log,audit"},
		{[]string{"--syslog-addr", "tcp://siem:601", "--syslog-ca-file", "/x.pem"}, "needs a tls:// address"},
		{[]string{"--syslog-ca-file", "/x.pem"}, "needs --syslog-addr"},
		{[]string{"--gateway-addr", "127.0.0.1:2525", "--gateway-domain", "secure example.nl"}, "--gateway-domain"},
		{[]string{"--gateway-addr", "127.0.0.1:2525", "--gateway-domain", "localhost"}, "give a domain name"},
		{[]string{"extra"}, "unexpected argument"},
	} {
		_, err := ParseServe(tc.args, env(nil), io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseServe(%q) = %v, want an error mentioning %q", tc.args, err, tc.want)
		}
	}
}

func TestHelp(t *testing.T) {
	t.Parallel()
	var out strings.Builder
	_, err := ParseServe([]string{"--help"}, env(nil), &out)
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("err = %v", err)
	}
	for _, want := range []string{"--addr", "KLUIS_ADDR", "--smtp", "KLUIS_SMTP_FILE", "--max-transfer-size"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("help lacks %q", want)
		}
	}
}

// TestLogStatic: --log-static (KLUIS_LOG_STATIC) says which successful
// static-file requests get an access-log line: all (the default), none,
// or one in N.
func TestLogStatic(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		env  map[string]string
		want int
	}{
		{nil, nil, 0},
		{[]string{"--log-static", "all"}, nil, 0},
		{[]string{"--log-static", "none"}, nil, -1},
		{[]string{"--log-static", "1/100"}, nil, 100},
		{[]string{"--log-static", "1/1"}, nil, 0},
		{nil, map[string]string{"KLUIS_LOG_STATIC": "1/10"}, 10},
	} {
		c, err := ParseServe(tc.args, env(tc.env), io.Discard)
		if err != nil {
			t.Errorf("ParseServe(%q, %v): %v", tc.args, tc.env, err)
		} else if c.LogStatic != tc.want {
			t.Errorf("ParseServe(%q, %v): LogStatic %d, want %d", tc.args, tc.env, c.LogStatic, tc.want)
		}
	}
}

func TestOIDC(t *testing.T) {
	t.Parallel()
	secret := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secret, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(t.TempDir(), "empty")
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	base := []string{"--oidc-issuer", "https://login.example.nl/realms/gemeente", "--oidc-client-id", "kluis", "--oidc-client-secret-file", secret}
	c, err := ParseServe(append(base, "--oidc-role-admin", "kluis-admins, 0f1e-id", "--oidc-role-helpdesk", "servicedesk", "--oidc-scopes", "email,offline_access"), env(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	rp, m := c.OIDC()
	if rp.ClientSecret != "s3cret" || rp.RedirectURL != "http://127.0.0.1:8080/sso/callback" || strings.Join(rp.Scopes, " ") != "email offline_access" {
		t.Fatalf("relying party: %+v", rp)
	}
	if strings.Join(m.Groups["admin"], "|") != "kluis-admins|0f1e-id" || strings.Join(m.Groups["helpdesk"], "|") != "servicedesk" || len(m.Groups["auditor"]) != 0 {
		t.Fatalf("groups: %v", m.Groups)
	}
	if len(m.MFA) != 2 || m.MFA[0] != "admin" || m.MFA[1] != "auditor" || !slices.Contains(m.AMR, "mfa") {
		t.Fatalf("MFA on by default for admin and auditor: %+v", m)
	}
	if c.OIDCSessionMax != 12*time.Hour || !c.SSO() {
		t.Fatalf("session max %v", c.OIDCSessionMax)
	}
	c, err = ParseServe([]string{"--oidc-issuer", "http://127.0.0.1:9999", "--oidc-client-id", "kluis", "--oidc-mfa-roles", "none"},
		env(map[string]string{"KLUIS_OIDC_CLIENT_SECRET": "from-env", "KLUIS_OIDC_SESSION_MAX": "1h"}), io.Discard)
	if err != nil || c.OIDCClientSecret != "from-env" || len(c.OIDCMFARoles) != 0 || c.OIDCSessionMax != time.Hour {
		t.Fatalf("loopback http issuer with the secret from the environment: %+v, %v", c, err)
	}
	if c, err := ParseServe(nil, env(nil), io.Discard); err != nil || c.SSO() {
		t.Fatalf("no SSO by default: %v", err)
	}

	for _, tc := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{[]string{"--oidc-client-id", "kluis"}, nil, "need --oidc-issuer"},
		{[]string{"--oidc-role-admin", "x"}, nil, "need --oidc-issuer"},
		{[]string{"--oidc-issuer", "http://login.example.nl", "--oidc-client-id", "k", "--oidc-client-secret-file", secret}, nil, "use https"},
		{[]string{"--oidc-issuer", "login.example.nl", "--oidc-client-id", "k", "--oidc-client-secret-file", secret}, nil, "issuer URL"},
		{[]string{"--oidc-issuer", "https://login.example.nl", "--oidc-client-secret-file", secret}, nil, "--oidc-client-id is required"},
		{[]string{"--oidc-issuer", "https://login.example.nl", "--oidc-client-id", "k"}, nil, "--oidc-client-secret-file is required"},
		{[]string{"--oidc-issuer", "https://login.example.nl", "--oidc-client-id", "k", "--oidc-client-secret-file", empty}, nil, "is empty"},
		{[]string{"--oidc-issuer", "https://login.example.nl", "--oidc-client-id", "k", "--oidc-client-secret-file", secret + "x"}, nil, "no such file"},
		{base, map[string]string{"KLUIS_OIDC_CLIENT_SECRET": "x"}, "not both"},
		{append(base, "--oidc-mfa-roles", "admin,boss"), nil, `unknown role "boss"`},
		{append(base, "--oidc-amr", ""), nil, "needs --oidc-acr or --oidc-amr"},
		{append(base, "--oidc-session-max", "0s"), nil, "--oidc-session-max must be positive"},
		{append(base, "--oidc-claim-email", " "), nil, "--oidc-claim-email must not be empty"},
	} {
		_, err := ParseServe(tc.args, env(tc.env), io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: got %v, want an error with %q", tc.args, err, tc.want)
		}
	}
}
