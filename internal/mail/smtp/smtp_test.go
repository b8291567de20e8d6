package smtp

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"math/big"
	"mime"
	"mime/multipart"
	"net"
	netmail "net/mail"
	"strings"
	"sync"
	"testing"
	"time"

	gosasl "github.com/emersion/go-sasl"
	gosmtp "github.com/emersion/go-smtp"

	"github.com/kluis-nl/kluis/internal/mail"
)

func TestParseURL(t *testing.T) {
	tests := []struct {
		raw  string
		want Config
	}{
		{"smtp://relay.example.org", Config{Host: "relay.example.org", Port: 587, TLS: STARTTLS}},
		{"smtp://user:pass@relay.example.org:2525", Config{Host: "relay.example.org", Port: 2525, Username: "user", Password: "pass", TLS: STARTTLS}},
		{"smtps://u%40x.nl:p%40ss%2Fw%3Ard%23@relay.example.org", Config{Host: "relay.example.org", Port: 465, Username: "u@x.nl", Password: "p@ss/w:rd#", TLS: ImplicitTLS}},
		{"smtp://127.0.0.1:1025?tls=none", Config{Host: "127.0.0.1", Port: 1025, TLS: NoTLS}},
		{"SMTP://[::1]:25?tls=starttls", Config{Host: "::1", Port: 25, TLS: STARTTLS}},
		{"smtp://relay.example.org:587/", Config{Host: "relay.example.org", Port: 587, TLS: STARTTLS}},
	}
	for _, tt := range tests {
		got, err := ParseURL(tt.raw)
		if err != nil {
			t.Errorf("ParseURL(%q): %v", tt.raw, err)
			continue
		}
		tt.want.Timeout = DefaultTimeout
		if *got != tt.want {
			t.Errorf("ParseURL(%q) = %+v, want %+v", tt.raw, *got, tt.want)
		}
	}
}

func TestParseURLErrors(t *testing.T) {
	const secret = "Sup3rS3cret"
	bad := []string{
		"",
		"relay.example.org:587",
		"http://user:" + secret + "@relay.example.org",
		"smtp://user:" + secret + "@",
		"smtp://user:" + secret + "@relay.example.org:99999",
		"smtp://user:" + secret + "@relay.example.org:abc",
		"smtp://user:" + secret + "/x@relay.example.org",
		"smtp://user:" + secret + "#x@relay.example.org",
		"smtp://user:" + secret + "@relay.example.org/path",
		"smtp://user:" + secret + "@relay.example.org?tls=maybe",
		"smtp://user:" + secret + "@relay.example.org?foo=1",
		"smtps://user:" + secret + "@relay.example.org?tls=none",
		"smtp://:" + secret + "@relay.example.org",
		"smtp://user:" + secret + "%zz@relay.example.org",
		"smtp://user:" + secret + "@relay example.org",
	}
	for _, raw := range bad {
		_, err := ParseURL(raw)
		if err == nil {
			t.Errorf("ParseURL(%q): no error", raw)
			continue
		}
		if strings.Contains(err.Error(), secret) {
			t.Errorf("ParseURL(%q): error repeats the password: %v", raw, err)
		}
	}
}

func TestConfigStringHidesPassword(t *testing.T) {
	cfg, err := ParseURL("smtp://user:Sup3rS3cret@relay.example.org")
	if err != nil {
		t.Fatal(err)
	}
	if s := cfg.String(); strings.Contains(s, "Sup3rS3cret") || !strings.Contains(s, "relay.example.org:587") {
		t.Errorf("String() = %q", s)
	}
}

func TestNewFrom(t *testing.T) {
	cfg := &Config{Host: "127.0.0.1", Port: 25, TLS: NoTLS}
	s, err := New(cfg, "Kluis <kluis@Example.ORG>")
	if err != nil {
		t.Fatal(err)
	}
	if s.Domain() != "example.org" {
		t.Errorf("Domain() = %q", s.Domain())
	}
	for _, from := range []string{"", "Kluis", "Kluis <kluis>", "a@b.nl\r\nBcc: x@y", "kluis@"} {
		if _, err := New(cfg, from); err == nil {
			t.Errorf("New(from=%q): no error", from)
		}
	}
}

// --- an in-process SMTP server ---

type received struct {
	From     string
	Rcpts    []string
	Data     []byte
	User     string
	TLS      bool
	HelloTLS bool
}

type testServer struct {
	Addr       string
	Port       int
	mu         sync.Mutex
	msgs       []received
	rcptErr    error // returned by every RCPT
	needAuth   bool
	user, pass string
}

func (s *testServer) Messages() []received {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]received(nil), s.msgs...)
}

type session struct {
	srv  *testServer
	conn *gosmtp.Conn
	cur  received
}

func (ss *session) AuthMechanisms() []string { return []string{gosasl.Plain} }

func (ss *session) Auth(mech string) (gosasl.Server, error) {
	return gosasl.NewPlainServer(func(identity, username, password string) error {
		if username != ss.srv.user || password != ss.srv.pass {
			return gosmtp.ErrAuthFailed
		}
		ss.cur.User = username
		return nil
	}), nil
}

func (ss *session) Mail(from string, _ *gosmtp.MailOptions) error {
	if ss.srv.needAuth && ss.cur.User == "" {
		return gosmtp.ErrAuthRequired
	}
	ss.cur.From = from
	return nil
}

func (ss *session) Rcpt(to string, _ *gosmtp.RcptOptions) error {
	if ss.srv.rcptErr != nil {
		return ss.srv.rcptErr
	}
	ss.cur.Rcpts = append(ss.cur.Rcpts, to)
	return nil
}

func (ss *session) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	m := ss.cur
	m.Data = b
	_, m.TLS = ss.conn.TLSConnectionState()
	ss.srv.mu.Lock()
	ss.srv.msgs = append(ss.srv.msgs, m)
	ss.srv.mu.Unlock()
	return nil
}

func (ss *session) Reset() {
	user := ss.cur.User
	ss.cur = received{User: user}
}

func (ss *session) Logout() error { return nil }

// startServer runs an SMTP server on 127.0.0.1:0. tlsCfg nil means no
// STARTTLS is offered.
func startServer(t *testing.T, tlsCfg *tls.Config, configure func(*testServer)) *testServer {
	t.Helper()
	ts := &testServer{}
	if configure != nil {
		configure(ts)
	}
	be := gosmtp.BackendFunc(func(c *gosmtp.Conn) (gosmtp.Session, error) {
		return &session{srv: ts, conn: c}, nil
	})
	srv := gosmtp.NewServer(be)
	srv.Domain = "localhost"
	srv.TLSConfig = tlsCfg
	srv.ReadTimeout = 10 * time.Second
	srv.WriteTimeout = 10 * time.Second
	srv.ErrorLog = nopLogger{}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	ts.Addr = l.Addr().String()
	ts.Port = l.Addr().(*net.TCPAddr).Port
	return ts
}

type nopLogger struct{}

func (nopLogger) Printf(string, ...any) {}
func (nopLogger) Println(...any)        {}

// selfSigned returns a server TLS config for 127.0.0.1 and a pool that
// trusts it.
func selfSigned(t *testing.T) (*tls.Config, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "kluis test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &tls.Config{
		Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}},
		MinVersion:   tls.VersionTLS12,
	}, pool
}

func testMessage() *mail.Message {
	return &mail.Message{
		Kind:    mail.KindNotify,
		Lang:    "nl",
		To:      "ontvanger@example.nl",
		Subject: "Bestanden voor u – klaar",
		Text:    "Hallo,\n\nOpen https://kluis.example/r/abc\n",
		HTML:    "<p>Hallo,</p><p><a href=\"https://kluis.example/r/abc\">Open</a></p>",
	}
}

func send(t *testing.T, cfg *Config, m *mail.Message, id string) error {
	t.Helper()
	s, err := New(cfg, "Kluis <kluis@example.org>")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return s.Send(ctx, m, id)
}

type parsed struct {
	Header netmail.Header
	Text   string
	HTML   string
}

func parseMessage(t *testing.T, data []byte) parsed {
	t.Helper()
	msg, err := netmail.ReadMessage(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("read message: %v\n%s", err, data)
	}
	p := parsed{Header: msg.Header}
	mt, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/alternative" {
		t.Fatalf("Content-Type = %q (%v), want multipart/alternative", msg.Header.Get("Content-Type"), err)
	}
	mr := multipart.NewReader(msg.Body, params["boundary"])
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(part)
		ct, _, _ := mime.ParseMediaType(part.Header.Get("Content-Type"))
		switch ct {
		case "text/plain":
			p.Text = string(b)
		case "text/html":
			p.HTML = string(b)
		default:
			t.Errorf("unexpected part %q", ct)
		}
	}
	return p
}

func TestSendNoTLS(t *testing.T) {
	srv := startServer(t, nil, nil)
	m := testMessage()
	if err := send(t, &Config{Host: "127.0.0.1", Port: srv.Port, TLS: NoTLS}, m, "<abc123@example.org>"); err != nil {
		t.Fatal(err)
	}
	msgs := srv.Messages()
	if len(msgs) != 1 {
		t.Fatalf("%d messages arrived, want 1", len(msgs))
	}
	got := msgs[0]
	if got.From != "kluis@example.org" {
		t.Errorf("MAIL FROM %q", got.From)
	}
	if len(got.Rcpts) != 1 || got.Rcpts[0] != "ontvanger@example.nl" {
		t.Errorf("RCPT TO %q, want only ontvanger@example.nl", got.Rcpts)
	}
	p := parseMessage(t, got.Data)
	h := p.Header
	if v := h.Get("Message-Id"); v != "<abc123@example.org>" {
		t.Errorf("Message-ID %q", v)
	}
	if v := h.Get("Auto-Submitted"); v != "auto-generated" {
		t.Errorf("Auto-Submitted %q", v)
	}
	if v := h.Get(mail.OriginHeader); v != mail.OriginValue {
		t.Errorf("%s %q", mail.OriginHeader, v)
	}
	if d, err := h.Date(); err != nil || time.Since(d) > time.Minute {
		t.Errorf("Date %q: %v", h.Get("Date"), err)
	}
	if h.Get("X-Mailer") != "" || h.Get("User-Agent") != "" {
		t.Errorf("version banner: X-Mailer %q, User-Agent %q", h.Get("X-Mailer"), h.Get("User-Agent"))
	}
	to, err := h.AddressList("To")
	if err != nil || len(to) != 1 || to[0].Address != "ontvanger@example.nl" {
		t.Errorf("To %q: %v", h.Get("To"), err)
	}
	if h.Get("Cc") != "" || h.Get("Bcc") != "" {
		t.Errorf("Cc/Bcc present")
	}
	from, err := h.AddressList("From")
	if err != nil || len(from) != 1 || from[0].Address != "kluis@example.org" || from[0].Name != "Kluis" {
		t.Errorf("From %q: %v", h.Get("From"), err)
	}
	subj, err := new(mime.WordDecoder).DecodeHeader(h.Get("Subject"))
	if err != nil || subj != m.Subject {
		t.Errorf("Subject %q (%v), want %q", subj, err, m.Subject)
	}
	if strings.ReplaceAll(p.Text, "\r\n", "\n") != m.Text {
		t.Errorf("text part %q", p.Text)
	}
	if strings.ReplaceAll(p.HTML, "\r\n", "\n") != m.HTML {
		t.Errorf("HTML part %q", p.HTML)
	}
}

func TestSTARTTLSRequired(t *testing.T) {
	srv := startServer(t, nil, nil) // offers no STARTTLS
	err := send(t, &Config{Host: "127.0.0.1", Port: srv.Port, TLS: STARTTLS}, testMessage(), "<a@example.org>")
	if err == nil {
		t.Fatal("sent without STARTTLS")
	}
	if Permanent(err) {
		t.Errorf("missing STARTTLS is permanent; the mail must stay queued: %v", err)
	}
	if n := len(srv.Messages()); n != 0 {
		t.Fatalf("%d messages arrived in plain text", n)
	}
	// Only tls=none turns it off.
	cfg, err := ParseURL("smtp://127.0.0.1:" + itoa(srv.Port) + "?tls=none")
	if err != nil {
		t.Fatal(err)
	}
	if err := send(t, cfg, testMessage(), "<a@example.org>"); err != nil {
		t.Fatal(err)
	}
	if n := len(srv.Messages()); n != 1 {
		t.Fatalf("%d messages, want 1", n)
	}
}

func itoa(n int) string { return big.NewInt(int64(n)).String() }

func TestSTARTTLSWithAuth(t *testing.T) {
	tlsCfg, pool := selfSigned(t)
	srv := startServer(t, tlsCfg, func(s *testServer) {
		s.needAuth, s.user, s.pass = true, "kluis", "p@ss/w:rd"
	})
	cfg, err := ParseURL("smtp://kluis:p%40ss%2Fw%3Ard@127.0.0.1:" + itoa(srv.Port))
	if err != nil {
		t.Fatal(err)
	}

	// Without the test CA the certificate is not trusted.
	if err := send(t, cfg, testMessage(), "<a@example.org>"); err == nil {
		t.Fatal("sent to a server with an untrusted certificate")
	} else if Permanent(err) {
		t.Errorf("certificate failure is permanent: %v", err)
	}

	cfg.RootCAs = pool
	if err := send(t, cfg, testMessage(), "<b@example.org>"); err != nil {
		t.Fatal(err)
	}
	msgs := srv.Messages()
	if len(msgs) != 1 || !msgs[0].TLS || msgs[0].User != "kluis" {
		t.Fatalf("messages %+v, want one over TLS as kluis", msgs)
	}

	// A wrong password is temporary: the operator fixes it, mail goes out.
	cfg.Password = "wrong"
	err = send(t, cfg, testMessage(), "<c@example.org>")
	if err == nil {
		t.Fatal("sent with a wrong password")
	}
	if Permanent(err) || strings.Contains(err.Error(), "wrong") {
		t.Errorf("auth failure: permanent=%v err=%v", Permanent(err), err)
	}
}

func TestImplicitTLS(t *testing.T) {
	tlsCfg, pool := selfSigned(t)
	ts := &testServer{}
	be := gosmtp.BackendFunc(func(c *gosmtp.Conn) (gosmtp.Session, error) {
		return &session{srv: ts, conn: c}, nil
	})
	srv := gosmtp.NewServer(be)
	srv.Domain = "localhost"
	srv.TLSConfig = tlsCfg
	srv.ErrorLog = nopLogger{}
	l, err := tls.Listen("tcp", "127.0.0.1:0", tlsCfg)
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	cfg, err := ParseURL("smtps://127.0.0.1:" + itoa(l.Addr().(*net.TCPAddr).Port))
	if err != nil {
		t.Fatal(err)
	}
	cfg.RootCAs = pool
	if err := send(t, cfg, testMessage(), "<a@example.org>"); err != nil {
		t.Fatal(err)
	}
	if msgs := ts.Messages(); len(msgs) != 1 || !msgs[0].TLS {
		t.Fatalf("messages %+v", msgs)
	}
}

func TestHeaderInjection(t *testing.T) {
	srv := startServer(t, nil, nil)
	cfg := &Config{Host: "127.0.0.1", Port: srv.Port, TLS: NoTLS}
	m := testMessage()
	m.Subject = "Hallo\r\nBcc: x@y\r\nX-Evil: 1"
	if err := send(t, cfg, m, "<a@example.org>"); err != nil {
		t.Fatal(err)
	}
	msgs := srv.Messages()
	if len(msgs) != 1 || len(msgs[0].Rcpts) != 1 || msgs[0].Rcpts[0] != "ontvanger@example.nl" {
		t.Fatalf("messages %+v", msgs)
	}
	p := parseMessage(t, msgs[0].Data)
	if p.Header.Get("Bcc") != "" || p.Header.Get("X-Evil") != "" {
		t.Errorf("injected header:\n%s", msgs[0].Data)
	}
	subj, _ := new(mime.WordDecoder).DecodeHeader(p.Header.Get("Subject"))
	if strings.ContainsAny(subj, "\r\n") || !strings.Contains(subj, "Bcc: x@y") {
		t.Errorf("Subject %q", subj)
	}

	// A recipient with a line break, or more than one, is refused for good.
	for _, to := range []string{"a@example.nl\r\nBcc: x@y", "a@example.nl, b@example.nl", "not an address"} {
		m := testMessage()
		m.To = to
		err := send(t, cfg, m, "<b@example.org>")
		if err == nil || !Permanent(err) {
			t.Errorf("To %q: err=%v, want permanent", to, err)
		}
	}
	for _, id := range []string{"", "<x>", "<a@b>\r\nBcc: x@y", "<a b@c>"} {
		if err := send(t, cfg, testMessage(), id); err == nil {
			t.Errorf("message id %q accepted", id)
		}
	}
	if n := len(srv.Messages()); n != 1 {
		t.Errorf("%d messages, want 1", n)
	}
}

func TestPermanentVersusTemporary(t *testing.T) {
	perm := startServer(t, nil, func(s *testServer) {
		s.rcptErr = &gosmtp.SMTPError{Code: 550, EnhancedCode: gosmtp.EnhancedCode{5, 1, 1}, Message: "No such user"}
	})
	err := send(t, &Config{Host: "127.0.0.1", Port: perm.Port, TLS: NoTLS}, testMessage(), "<a@example.org>")
	if err == nil || !Permanent(err) {
		t.Errorf("550: err=%v, want permanent", err)
	}
	if err != nil && strings.Contains(err.Error(), "ontvanger@example.nl") {
		t.Errorf("error names the recipient: %v", err)
	}

	temp := startServer(t, nil, func(s *testServer) {
		s.rcptErr = &gosmtp.SMTPError{Code: 451, EnhancedCode: gosmtp.EnhancedCode{4, 3, 0}, Message: "Try later"}
	})
	err = send(t, &Config{Host: "127.0.0.1", Port: temp.Port, TLS: NoTLS}, testMessage(), "<a@example.org>")
	if err == nil || Permanent(err) {
		t.Errorf("451: err=%v, want temporary", err)
	}

	// Nobody listening: temporary.
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	err = send(t, &Config{Host: "127.0.0.1", Port: port, TLS: NoTLS}, testMessage(), "<a@example.org>")
	if err == nil || Permanent(err) {
		t.Errorf("connection refused: err=%v, want temporary", err)
	}
	if Permanent(errors.New("x")) || Permanent(nil) {
		t.Error("Permanent of a plain error")
	}
}
