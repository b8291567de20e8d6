package server_test

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kluis-nl/kluis/internal/config"
	"github.com/kluis-nl/kluis/internal/server"
)

// selfSigned writes a P-256 certificate for 127.0.0.1 and its key.
func selfSigned(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "kluis test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// TestTLS serves the whole handler with server.TLSListener and
// server.Serve, as kluis serve --tls-cert does.
func TestTLS(t *testing.T) {
	e := newEnv(t, envOptions{})
	certFile, keyFile, pool := selfSigned(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tln, err := server.TLSListener(ln, certFile, keyFile, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- server.Serve(ctx, tln, e.handler, server.ServeOptions{ShutdownTimeout: 2 * time.Second, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	}()
	t.Cleanup(func() { cancel(); <-done })
	addr := ln.Addr().String()

	handshake := func(cfg *tls.Config) (*tls.ConnectionState, error) {
		cfg.RootCAs, cfg.ServerName = pool, "127.0.0.1"
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, cfg)
		if err != nil {
			return nil, err
		}
		defer c.Close()
		st := c.ConnectionState()
		return &st, nil
	}
	refused := []struct {
		name string
		cfg  *tls.Config
	}{
		{"TLS 1.0", &tls.Config{MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS10}},
		{"TLS 1.1", &tls.Config{MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11}},
		{"TLS 1.2 ECDHE AES-CBC-SHA", &tls.Config{MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA}}},
		{"TLS 1.2 ECDHE AES-CBC-SHA256", &tls.Config{MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256}}},
		{"TLS 1.2 RSA key exchange", &tls.Config{MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{tls.TLS_RSA_WITH_AES_128_GCM_SHA256, tls.TLS_RSA_WITH_AES_256_GCM_SHA384}}},
		{"TLS 1.2 only P-521", &tls.Config{MaxVersion: tls.VersionTLS12, CurvePreferences: []tls.CurveID{tls.CurveP521}}},
	}
	for _, c := range refused {
		if st, err := handshake(c.cfg); err == nil {
			t.Errorf("%s accepted (version %x, suite %s)", c.name, st.Version, tls.CipherSuiteName(st.CipherSuite))
		}
	}
	accepted := []struct {
		name    string
		cfg     *tls.Config
		version uint16
	}{
		{"TLS 1.2 ECDHE-ECDSA-AES128-GCM", &tls.Config{MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256}}, tls.VersionTLS12},
		{"TLS 1.2 ECDHE-ECDSA-AES256-GCM", &tls.Config{MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384}}, tls.VersionTLS12},
		{"TLS 1.2 ECDHE-ECDSA-CHACHA20", &tls.Config{MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256}}, tls.VersionTLS12},
		{"TLS 1.3", &tls.Config{MinVersion: tls.VersionTLS13}, tls.VersionTLS13},
		{"default client", &tls.Config{}, tls.VersionTLS13},
	}
	for _, c := range accepted {
		st, err := handshake(c.cfg)
		if err != nil {
			t.Errorf("%s refused: %v", c.name, err)
			continue
		}
		if st.Version != c.version {
			t.Errorf("%s: version %x, want %x", c.name, st.Version, c.version)
		}
	}

	// Over TLS every answer carries HSTS for at least a year, over HTTP/1.1
	// and HTTP/2.
	for _, h2 := range []bool{false, true} {
		client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: h2}}
		for _, path := range []string{"/healthz", "/api/v1/me", "/bestaat-niet", "/"} {
			resp, err := client.Get("https://" + addr + path)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if h2 && resp.ProtoMajor != 2 {
				t.Errorf("%s: %s, want HTTP/2", path, resp.Proto)
			}
			checkHeaders(t, "TLS "+path, resp, true)
		}
	}
}

func TestTLSConfig(t *testing.T) {
	c := server.TLSConfig()
	if c.MinVersion != tls.VersionTLS12 {
		t.Errorf("MinVersion %x", c.MinVersion)
	}
	for _, id := range c.CipherSuites {
		name := tls.CipherSuiteName(id)
		if !strings.HasPrefix(name, "TLS_ECDHE_") || !(strings.Contains(name, "_GCM_") || strings.Contains(name, "CHACHA20_POLY1305")) {
			t.Errorf("cipher suite %s is not ECDHE with an AEAD", name)
		}
		for _, s := range tls.InsecureCipherSuites() {
			if s.ID == id {
				t.Errorf("insecure suite %s", name)
			}
		}
	}
	if len(c.CipherSuites) != 6 {
		t.Errorf("%d suites, want the 6 NCSC-NL good ECDHE AEAD suites", len(c.CipherSuites))
	}
}

func TestSecurityTxt(t *testing.T) {
	e := newEnv(t, envOptions{sectxt: server.SecurityTxt{Contact: "mailto:security@example.nl", Policy: "https://example.nl/cvd"}})
	check := func(e *env, wantContact string, wantPolicy bool) {
		t.Helper()
		resp, b := e.do("GET", "/.well-known/security.txt", "", nil, nil)
		if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain; charset=utf-8") {
			t.Fatalf("%d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		fields := map[string][]string{}
		sc := bufio.NewScanner(strings.NewReader(string(b)))
		for sc.Scan() {
			line := sc.Text()
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			k, v, ok := strings.Cut(line, ": ")
			if !ok {
				t.Fatalf("line %q is not a field", line)
			}
			fields[strings.ToLower(k)] = append(fields[strings.ToLower(k)], v)
		}
		if c := fields["contact"]; len(c) == 0 || c[0] != wantContact {
			t.Errorf("Contact %v, want %s", c, wantContact)
		}
		if len(fields["expires"]) != 1 {
			t.Fatalf("Expires %v: must appear once", fields["expires"])
		}
		exp, err := time.Parse(time.RFC3339, fields["expires"][0])
		if err != nil || !exp.After(time.Now().AddDate(0, 11, 0)) || exp.After(time.Now().AddDate(1, 0, 1)) {
			t.Errorf("Expires %q: want about a year ahead (RFC 9116 advises at most a year)", fields["expires"][0])
		}
		if c := fields["canonical"]; len(c) != 1 || c[0] != e.svc.Config().BaseURL+"/.well-known/security.txt" {
			t.Errorf("Canonical %v", c)
		}
		if l := fields["preferred-languages"]; len(l) != 1 || l[0] != "nl, en" {
			t.Errorf("Preferred-Languages %v", l)
		}
		if (len(fields["policy"]) == 1) != wantPolicy {
			t.Errorf("Policy %v", fields["policy"])
		}
	}
	check(e, "mailto:security@example.nl", true)
	check(newEnv(t, envOptions{}), "mailto:security@127.0.0.1", false)
}

func TestServeFlags(t *testing.T) {
	certFile, keyFile, _ := selfSigned(t)
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	dir := t.TempDir()
	parse := func(e map[string]string, args ...string) (*config.Serve, error) {
		return config.ParseServe(append([]string{"--data", dir}, args...), env(e), io.Discard)
	}
	c, err := parse(nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.RateLimit != 60 || c.RateLimitGlobal != 1200 || len(c.TrustedProxies) != 0 || c.TLSCert != "" {
		t.Errorf("defaults: %+v", c)
	}
	if fmt.Sprint(c.Lockouts) != "[15m0s 1h0m0s 24h0m0s]" || c.LockoutHoldAfter != 50 || c.MaxFailures != 10 {
		t.Errorf("lock-out defaults: %v, hold after %d, max failures %d", c.Lockouts, c.LockoutHoldAfter, c.MaxFailures)
	}
	// The single duration of older versions still works: every lock that long.
	if c, err := parse(map[string]string{"KLUIS_LOCKOUT": "1h"}); err != nil || fmt.Sprint(c.Lockouts) != "[1h0m0s]" {
		t.Errorf("--lockout 1h: %v %v", c, err)
	}
	if c, err := parse(nil, "--lockout", "5m, 30m,2d", "--lockout-hold-after", "0"); err != nil || fmt.Sprint(c.Lockouts) != "[5m0s 30m0s 48h0m0s]" || c.LockoutHoldAfter != 0 {
		t.Errorf("--lockout 5m,30m,2d: %v %v", c, err)
	}
	c, err = parse(map[string]string{"KLUIS_TRUSTED_PROXY": "10.0.0.0/8"}, "--trusted-proxy", "192.0.2.1", "--trusted-proxy", "2001:db8::/32,172.16.0.0/12")
	if err != nil {
		t.Fatal(err)
	}
	if got := c.TrustedProxies; len(got) != 3 || got[0].String() != "192.0.2.1/32" {
		t.Errorf("flags replace the environment: %v", got)
	}
	c, err = parse(map[string]string{"KLUIS_TRUSTED_PROXY": "10.0.0.0/8, ::1"})
	if err != nil || len(c.TrustedProxies) != 2 {
		t.Errorf("environment list: %v %v", c, err)
	}
	c, err = parse(nil, "--tls-cert", certFile, "--tls-key", keyFile, "--addr", "127.0.0.1:8443")
	if err != nil {
		t.Fatal(err)
	}
	if c.BaseURL != "https://127.0.0.1:8443" {
		t.Errorf("base URL with TLS: %s", c.BaseURL)
	}
	for _, bad := range [][]string{
		{"--trusted-proxy", "10.0.0.0/33"},
		{"--rate-limit", "-1"},
		{"--rate-limit", "60", "--rate-limit-global", "600"}, // less than 20 clients' worth
		{"--lockout", "15m,,1h"},
		{"--lockout", "0"},
		{"--lockout-hold-after", "5"}, // below --max-failures 10
		{"--tls-cert", certFile},
		{"--tls-key", keyFile},
		{"--tls-cert", certFile, "--tls-key", filepath.Join(dir, "missing.pem")},
		{"--tls-cert", keyFile, "--tls-key", certFile},
		{"--security-contact", "security@example.nl"},
		{"--security-contact", "http://example.nl/security"},
		{"--security-policy-url", "http://example.nl/cvd"},
	} {
		if _, err := parse(nil, bad...); err == nil {
			t.Errorf("%v accepted", bad)
		} else {
			t.Logf("%v: %v", bad, err)
		}
	}
	for _, good := range []string{"mailto:security@example.nl", "https://example.nl/security", "tel:+31201234567"} {
		if _, err := parse(nil, "--security-contact", good); err != nil {
			t.Errorf("%s: %v", good, err)
		}
	}
}

// TestSecurityTxtExpires (issue 11 item 17): the configured Expires is
// served as given, whenever the file is fetched; the default is fixed to
// the start day plus a year; the start-up check tells expired, soon and
// too far apart.
func TestSecurityTxtExpires(t *testing.T) {
	at := time.Date(2027, 6, 30, 0, 0, 0, 0, time.UTC)
	e := newEnv(t, envOptions{sectxt: server.SecurityTxt{Contact: "mailto:security@example.nl", Expires: at}})
	for i := 0; i < 2; i++ {
		_, b := e.do("GET", "/.well-known/security.txt", "", nil, nil)
		if !strings.Contains(string(b), "\nExpires: 2027-06-30T00:00:00Z\n") {
			t.Fatalf("fetch %d: %s", i, b)
		}
	}
	now := time.Date(2026, 3, 14, 15, 9, 26, 0, time.UTC)
	if got := server.DefaultSecurityTxtExpires(now); !got.Equal(time.Date(2027, 3, 14, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("default %s", got)
	}
	if a, b := server.DefaultSecurityTxtExpires(now), server.DefaultSecurityTxtExpires(now.Add(8*time.Hour)); !a.Equal(b) {
		t.Errorf("the default moves within a day: %s, %s", a, b)
	}
	for _, c := range []struct {
		expires time.Time
		want    string
		expired bool
	}{
		{now.AddDate(0, 6, 0), "", false},
		{server.DefaultSecurityTxtExpires(now), "", false},
		{now.AddDate(0, 0, 29), "expires in 29 days", false},
		{time.Date(2026, 3, 20, 0, 0, 0, 0, time.UTC), "expires in 5 days (on 2026-03-20)", false},
		{now.Add(time.Minute), "expires in 0 days", false},
		{now, "expired on 2026-03-14T15:09:26Z", true},
		{time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), "expired on 2026-01-01", true},
		{now.AddDate(2, 0, 0), "more than a year ahead", false},
	} {
		msg, expired := server.SecurityTxt{Expires: c.expires}.ExpiresProblem(now)
		if expired != c.expired || (c.want == "") != (msg == "") || !strings.Contains(msg, c.want) {
			t.Errorf("Expires %s: %q, %v; want %q, %v", c.expires, msg, expired, c.want, c.expired)
		}
		if msg != "" && !strings.Contains(msg, "--security-txt-expires") {
			t.Errorf("Expires %s: %q does not say how to fix it", c.expires, msg)
		}
	}
}
