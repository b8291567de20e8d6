package main

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kluis-nl/kluis/internal/kluistest"
)

// startServe runs kluis serve in this process on a free loopback port with
// a fresh data folder. It returns the address the server prints, or the
// error with which it refused to start; a started server is stopped when
// the test ends.
func startServe(t *testing.T, env map[string]string, args ...string) (url string, log *kluistest.Buffer, err error) {
	t.Helper()
	getenv := func(k string) string { return env[k] }
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	log = &kluistest.Buffer{}
	done := make(chan error, 1)
	all := append([]string{"--data", t.TempDir(), "--addr", "127.0.0.1:0"}, args...)
	go func() {
		err := runServe(ctx, all, getenv, pw, log)
		pw.CloseWithError(io.EOF)
		done <- err
	}()
	urlc := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		const prefix = "Kluis is running at "
		for sc.Scan() {
			if i := strings.Index(sc.Text(), prefix); i >= 0 {
				if f := strings.Fields(sc.Text()[i+len(prefix):]); len(f) > 0 {
					select {
					case urlc <- strings.TrimSuffix(f[0], "/"):
					default:
					}
				}
			}
		}
		io.Copy(io.Discard, pr)
	}()
	select {
	case u := <-urlc:
		t.Cleanup(func() {
			cancel()
			select {
			case <-done:
			case <-time.After(15 * time.Second):
				t.Error("kluis serve did not stop within 15 s")
			}
		})
		return u, log, nil
	case err := <-done:
		cancel()
		if err == nil {
			t.Fatal("kluis serve ended without an error before it was ready")
		}
		return "", log, err
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatalf("kluis serve printed no address within 30 s; log:\n%s", log)
	}
	return "", nil, nil
}

// getWith sends GET url with the given headers and returns the status.
func getWith(t *testing.T, url string, hdr map[string]string) int {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		if k == "Host" {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// TestDevMailboxNotPublished (issue 11 item 2): without --smtp the
// development mailbox exists only for a loopback http base URL with no
// trusted proxy, and answers only direct loopback requests. A setup that
// looks public refuses to start instead of serving every mail's link to
// whoever the proxy forwards.
func TestDevMailboxNotPublished(t *testing.T) {
	for _, c := range []struct {
		name string
		args []string
		want string // in the start-up error
	}{
		{"behind a proxy with a public base URL", []string{"--base-url", "https://kluis.example.nl", "--trusted-proxy", "127.0.0.1"}, "--smtp"},
		{"public base URL", []string{"--base-url", "https://kluis.example.nl"}, "--base-url"},
		{"https base URL on loopback", []string{"--base-url", "https://127.0.0.1:8443"}, "--base-url"},
		{"trusted proxy", []string{"--trusted-proxy", "127.0.0.1"}, "--trusted-proxy"},
	} {
		t.Run(c.name, func(t *testing.T) {
			url, _, err := startServe(t, nil, c.args...)
			if err == nil {
				st := getWith(t, url+"/dev/mailbox.json", map[string]string{"X-Forwarded-For": "203.0.113.9"})
				t.Fatalf("kluis serve %v started without --smtp; /dev/mailbox.json for X-Forwarded-For 203.0.113.9: %d", c.args, st)
			}
			if !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "--smtp") {
				t.Errorf("error %q does not name %s and --smtp", err, c.want)
			}
		})
	}

	// The default setup has the mailbox, for direct loopback requests only.
	url, _, err := startServe(t, nil)
	if err != nil {
		t.Fatal(err)
	}
	if st := getWith(t, url+"/dev/mailbox.json", nil); st != http.StatusOK {
		t.Fatalf("direct loopback request: %d, want 200", st)
	}
	for _, hdr := range []map[string]string{
		{"X-Forwarded-For": "203.0.113.9"},
		{"Forwarded": "for=203.0.113.9"},
		{"X-Real-Ip": "203.0.113.9"},
		// A DNS-rebinding page reaches loopback under its own host name.
		{"Host": "attacker.example:80"},
	} {
		for _, p := range []string{"/dev/mailbox", "/dev/mailbox.json", "/dev/mailbox/1.txt"} {
			if st := getWith(t, url+p, hdr); st != http.StatusForbidden {
				t.Errorf("%s with %v: %d, want 403", p, hdr, st)
			}
		}
	}
}

// TestEmptySecretFileRefused (issue 11 item 2): an empty or unreadable
// KLUIS_SMTP_FILE (a systemd credential left empty) stops the start with an
// error naming the variable, instead of silently using the development
// mailbox.
func TestEmptySecretFileRefused(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "smtp")
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{empty, filepath.Join(dir, "missing")} {
		url, _, err := startServe(t, map[string]string{"KLUIS_SMTP_FILE": f})
		if err == nil {
			t.Fatalf("KLUIS_SMTP_FILE=%s: started at %s", f, url)
		}
		if !strings.Contains(err.Error(), "KLUIS_SMTP_FILE") {
			t.Errorf("KLUIS_SMTP_FILE=%s: error %q does not name the variable", f, err)
		}
	}
}

// securityTxtExpires fetches /.well-known/security.txt and returns its
// Expires field.
func securityTxtExpires(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url + "/.well-known/security.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "Expires: "); ok {
			return v
		}
	}
	t.Fatalf("security.txt without Expires:\n%s", b)
	return ""
}

// TestSecurityTxtExpiresConfigured (issue 11 item 17): security.txt's
// Expires is the configured date, not a date that moves with the clock;
// an expired or nearly expired date is warned about at start; without the
// setting the date is fixed at start (the start day plus one year) and
// logged.
func TestSecurityTxtExpiresConfigured(t *testing.T) {
	day := time.Now().UTC().AddDate(0, 6, 0).Format("2006-01-02")
	url, log, err := startServe(t, map[string]string{"KLUIS_SECURITY_TXT_EXPIRES": day})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := securityTxtExpires(t, url), day+"T00:00:00Z"; got != want {
		t.Errorf("Expires %s, want the configured %s", got, want)
	}
	for _, w := range []string{"security.txt expires in", "security.txt expired", "more than a year ahead", "no --security-txt-expires"} {
		if strings.Contains(log.String(), w) {
			t.Errorf("a configured date half a year ahead was warned about (%q):\n%s", w, log)
		}
	}

	at := time.Now().UTC().AddDate(0, 0, 10).Truncate(time.Second).Format(time.RFC3339)
	url, log, err = startServe(t, nil, "--security-txt-expires", at)
	if err != nil {
		t.Fatal(err)
	}
	if got := securityTxtExpires(t, url); got != at {
		t.Errorf("Expires %s, want the configured %s", got, at)
	}
	if !strings.Contains(log.String(), "security.txt expires in 10 days") {
		t.Errorf("no warning for an Expires 10 days ahead:\n%s", log)
	}

	past := time.Now().UTC().AddDate(0, 0, -3).Format("2006-01-02")
	url, log, err = startServe(t, nil, "--security-txt-expires", past)
	if err != nil {
		t.Fatal(err)
	}
	if got := securityTxtExpires(t, url); got != past+"T00:00:00Z" {
		t.Errorf("Expires %s, want the configured %s", got, past)
	}
	if !strings.Contains(log.String(), `"level":"ERROR"`) || !strings.Contains(log.String(), "security.txt expired on "+past) {
		t.Errorf("an expired security.txt was not reported loudly:\n%s", log)
	}

	url, log, err = startServe(t, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := time.Now().UTC().Truncate(24*time.Hour).AddDate(1, 0, 0).Format(time.RFC3339)
	got := securityTxtExpires(t, url)
	if got != want && time.Now().UTC().Format("15:04") != "00:00" {
		t.Errorf("default Expires %s, want the start day plus a year, %s", got, want)
	}
	if !strings.Contains(log.String(), got) || !strings.Contains(log.String(), "--security-txt-expires") {
		t.Errorf("the default Expires %s was not logged with the flag that sets it:\n%s", got, log)
	}

	if _, _, err := startServe(t, nil, "--security-txt-expires", "31-12-2027"); err == nil || !strings.Contains(err.Error(), "security-txt-expires") {
		t.Errorf("a date in the wrong form: %v", err)
	}
}

// TestDeployNeedsRelay (issue 11 item 2): the shipped configuration
// (deploy/kluis.env.example with the unit's credentials) cannot fall back
// to the development mailbox: an empty smtp credential stops the start
// naming KLUIS_SMTP_FILE, and without the credential kluis serve refuses
// to start.
func TestDeployNeedsRelay(t *testing.T) {
	env := envFile(t, repoFile(t, "deploy/kluis.env.example"))
	env["KLUIS_DATA"] = t.TempDir()
	env["KLUIS_ADDR"] = "127.0.0.1:0"
	empty := filepath.Join(t.TempDir(), "smtp")
	os.WriteFile(empty, nil, 0o400)
	env["KLUIS_SMTP_FILE"] = empty
	getenv := func(k string) string { return env[k] }
	var out kluistest.Buffer
	err := runServe(context.Background(), nil, getenv, &out, &out)
	if err == nil || !strings.Contains(err.Error(), "KLUIS_SMTP_FILE") {
		t.Errorf("empty smtp credential: %v", err)
	}
	delete(env, "KLUIS_SMTP_FILE")
	err = runServe(context.Background(), nil, getenv, &out, &out)
	if err == nil || !strings.Contains(err.Error(), "--smtp") {
		t.Errorf("without a relay: %v", err)
	}
}
