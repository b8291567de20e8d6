package config

import (
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
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
