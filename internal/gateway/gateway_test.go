package gateway_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"errors"
	"io"
	"io/fs"
	"math/big"
	"net"
	"net/netip"
	"net/smtp"
	"net/textproto"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kluis-nl/kluis/internal/app/apptest"
	"github.com/kluis-nl/kluis/internal/gateway"
	"github.com/kluis-nl/kluis/internal/mail"
	"github.com/kluis-nl/kluis/internal/scan/scantest"
	"github.com/kluis-nl/kluis/internal/store"
	"github.com/kluis-nl/kluis/internal/transfer"
)

const testPolicy = `{"organisation_domains": ["gemeente.nl"], "rules": [
 {"name": "no-competitor", "recipients": ["concurrent.nl"], "action": "deny"}]}`

// confirmations is the receiving end of the gateway's Confirmer: it holds
// the password the sender's confirmation carries.
type confirmations struct {
	mu   sync.Mutex
	list []gateway.Confirmation
}

func (c *confirmations) Confirm(_ context.Context, _ *store.Tx, x gateway.Confirmation) ([]string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.list = append(c.list, x)
	return nil, nil
}

func (c *confirmations) all() []gateway.Confirmation {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]gateway.Confirmation(nil), c.list...)
}

type env struct {
	app   *apptest.App
	addr  string
	roots *x509.CertPool
	conf  *confirmations
	gw    *gateway.Gateway
}

type setup struct {
	relays []string // trusted relay prefixes; default 127.0.0.0/8
	engine func(*transfer.Config)
	lease  time.Duration
	db     string   // apptest.Options.DB: "" SQLite
	args   []string // more kluis serve flags
	// pinned connector certificates
	clientNames []string
	clientCAs   *x509.CertPool
}

func start(t *testing.T, s setup) *env {
	t.Helper()
	a := apptest.Start(t, apptest.Options{Policy: testPolicy, Engine: s.engine, Args: s.args, DB: s.db})
	cert, roots := selfSigned(t)
	if s.relays == nil {
		s.relays = []string{"127.0.0.0/8"}
	}
	var prefixes []netip.Prefix
	for _, r := range s.relays {
		prefixes = append(prefixes, netip.MustParsePrefix(r))
	}
	conf := &confirmations{}
	g, err := gateway.New(gateway.Deps{Transfers: a.Transfers, Senders: a.Senders, Confirmer: conf, DB: a.DB, Now: a.Clock.Now, Log: a.Logs.Logger(),
		Config: gateway.Config{Domain: "kluis.test", TrustedRelays: prefixes, ClaimLease: s.lease, ClientNames: s.clientNames, ClientCAs: s.clientCAs,
			TLS: &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}}})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("gateway: %v", err)
		}
	})
	return &env{app: a, addr: ln.Addr().String(), roots: roots, conf: conf, gw: g}
}

func selfSigned(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "kluis.test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"kluis.test"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(c)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: c}, roots
}

type submission struct {
	noTLS      bool
	clientCert *tls.Certificate // presented in the TLS handshake
	user, pass string           // SMTP AUTH PLAIN when user is set
	from       string
	rcpts      []string
	msg        string
}

// send submits a mail with Go's SMTP client and returns the server's
// refusal, if any (a *textproto.Error).
func (e *env) send(t *testing.T, s submission) error {
	t.Helper()
	c, err := smtp.Dial(e.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if !s.noTLS {
		tc := &tls.Config{ServerName: "kluis.test", RootCAs: e.roots}
		if s.clientCert != nil {
			tc.Certificates = []tls.Certificate{*s.clientCert}
		}
		if err := c.StartTLS(tc); err != nil {
			return err
		}
	}
	if s.user != "" {
		if err := c.Auth(smtp.PlainAuth("", s.user, s.pass, "127.0.0.1")); err != nil {
			return err
		}
	}
	if err := c.Mail(s.from); err != nil {
		return err
	}
	for _, r := range s.rcpts {
		if err := c.Rcpt(r); err != nil {
			return err
		}
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := io.WriteString(w, strings.ReplaceAll(s.msg, "\n", "\r\n")); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	return c.Quit()
}

func code(t *testing.T, err error) int {
	t.Helper()
	var te *textproto.Error
	if !errors.As(err, &te) {
		t.Fatalf("want an SMTP refusal, got %v", err)
	}
	return te.Code
}

func b64(b []byte) string {
	s := base64.StdEncoding.EncodeToString(b)
	var out strings.Builder
	for len(s) > 76 {
		out.WriteString(s[:76] + "\n")
		s = s[76:]
	}
	out.WriteString(s)
	return out.String()
}

func pseudo(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*31) ^ seed ^ byte(i>>9)
	}
	return b
}

const canary = "KANARIE7f3a91"

// A mail as Outlook and Thunderbird write one: text and HTML versions
// (the HTML with an inline image and a script), two attachments with
// non-ASCII names (RFC 2231 and RFC 2047), and a forwarded mail with an
// attachment of its own inside, a level deeper.
func realMail(from string, pdf, img, deep []byte) string {
	return `From: "Jan de Vries" <` + from + `>
To: Alice <alice@example.org>
Cc: bob@example.org
Subject: =?utf-8?q?=5BSecure=5D_Dossier_=C3=A9=C3=A9n_` + canary + `?=
Message-ID: <abc123@gemeente.nl>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="outer"

--outer
Content-Type: multipart/alternative; boundary="alt"

--alt
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: quoted-printable

Beste Alice,

Hierbij het dossier =C3=A9=C3=A9n ` + canary + `.
--alt
Content-Type: multipart/related; boundary="rel"

--rel
Content-Type: text/html; charset=utf-8

<p>Beste Alice,</p><script>alert(1)</script><p>dossier ` + canary + `</p><img src="cid:logo">
--rel
Content-Type: image/png
Content-ID: <logo>
Content-Disposition: inline
Content-Transfer-Encoding: base64

` + b64(img) + `
--rel--
--alt--
--outer
Content-Type: application/pdf
Content-Disposition: attachment; filename*=utf-8''r%C3%A9sum%C3%A9%20%E2%82%AC.pdf
Content-Transfer-Encoding: base64

` + b64(pdf) + `
--outer
Content-Type: multipart/mixed; boundary="inner"

--inner
Content-Type: application/octet-stream; name="=?iso-8859-1?q?bijlage_=E9=E9n.bin?="
Content-Disposition: attachment
Content-Transfer-Encoding: base64

` + b64(deep) + `
--inner--
--outer--
`
}

var accessRE = regexp.MustCompile(`/r/([A-Za-z0-9_-]{16,})`)

// openAs opens the transfer as the recipient addr with the link in text
// (their notification) and the password, and returns what it holds.
func openAs(t *testing.T, e *env, addr, text, password string) (*transfer.Session, *transfer.Contents) {
	t.Helper()
	access := accessRE.FindStringSubmatch(text)
	if access == nil {
		t.Fatalf("no link in the mail to %s:\n%s", addr, text)
	}
	sess, err := e.app.Transfers.Unlock(t.Context(), access[1], password)
	if err != nil {
		t.Fatalf("unlock as %s: %v", addr, err)
	}
	c, err := e.app.Transfers.Contents(t.Context(), sess)
	if err != nil {
		t.Fatal(err)
	}
	return sess, c
}

func TestMailBecomesTransfer(t *testing.T) {
	e := start(t, setup{})
	pdf, img, deep := pseudo(300_000, 1), pseudo(5_000, 2), pseudo(250_001, 3)
	err := e.send(t, submission{from: "jan@gemeente.nl", rcpts: []string{"alice@example.org", "bob@example.org", "carol@example.org"},
		msg: realMail("jan@gemeente.nl", pdf, img, deep)})
	if err != nil {
		t.Fatalf("mail refused: %v", err)
	}
	cs := e.conf.all()
	if len(cs) != 1 || cs[0].Sender != "jan@gemeente.nl" || len(cs[0].Password) < 20 {
		t.Fatalf("confirmations: %+v", cs)
	}
	want := map[string][]byte{"résumé €.pdf": pdf, "bijlage één.bin": deep, "attachment-1.png": img}
	kinds := map[string]string{"alice@example.org": "to", "bob@example.org": "cc", "carol@example.org": "bcc"}
	for addr, kind := range kinds {
		m := e.app.Mail(mail.KindNotify, addr)
		for _, s := range []string{m.Subject, m.Text, m.HTML} {
			if strings.Contains(s, canary) || strings.Contains(s, "Dossier") {
				t.Errorf("the notification to %s shows the confidential subject or text", addr)
			}
		}
		sess, c := openAs(t, e, addr, m.Text, cs[0].Password)
		if !strings.HasPrefix(c.Message, "Dossier één "+canary+"\n\nBeste Alice,") || strings.Contains(c.Message, "[Secure]") {
			t.Errorf("message: %q", c.Message)
		}
		if strings.Contains(c.Message, "alert") || strings.Contains(c.Message, "<p>") {
			t.Errorf("the HTML version was taken as well: %q", c.Message)
		}
		for _, r := range c.Transfer.Recipients {
			if r.Address == "carol@example.org" && addr != "carol@example.org" {
				t.Errorf("%s sees the Bcc recipient", addr)
			}
			if r.Address == addr && string(r.Kind) != kind {
				t.Errorf("%s is %s, want %s", addr, r.Kind, kind)
			}
		}
		if len(c.Files) != len(want) {
			t.Fatalf("files: %+v", c.Files)
		}
		for _, f := range c.Files {
			body, ok := want[f.Name]
			if !ok {
				t.Errorf("unexpected file %q", f.Name)
				continue
			}
			_, fr, err := e.app.Transfers.OpenFile(t.Context(), sess, f.ID)
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(io.NewSectionReader(fr, 0, fr.Size()))
			fr.Close()
			if err != nil || !bytes.Equal(got, body) {
				t.Errorf("%s for %s: %d bytes, err %v; not byte-identical", f.Name, addr, len(got), err)
			}
		}
	}
	if strings.Contains(e.app.Logs.String(), canary) || strings.Contains(e.app.Logs.String(), cs[0].Password) {
		t.Error("the log shows the subject, text or password")
	}
	// Nothing in plain on disk: not the subject or text, not the names,
	// not a piece of a file.
	err = filepath.WalkDir(e.app.Dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, s := range [][]byte{[]byte(canary), []byte("résumé"), pdf[1000:1064], deep[5000:5064]} {
			if bytes.Contains(b, s) {
				t.Errorf("%s holds %q in plain", path, s[:6])
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

const plainMail = `From: jan@gemeente.nl
To: alice@example.org
Subject: [vertrouwelijk] test
Content-Type: text/plain

Hallo.
`

func TestRefusals(t *testing.T) {
	e := start(t, setup{engine: func(c *transfer.Config) { c.MaxTransferSize = 100_000 }})
	big := "From: jan@gemeente.nl\nTo: alice@example.org\nSubject: [secure] big\nContent-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/plain\n\nhi\n--b\nContent-Type: application/octet-stream\nContent-Disposition: attachment; filename=big.bin\nContent-Transfer-Encoding: base64\n\n" +
		b64(pseudo(300_000, 9)) + "\n--b--\n"
	winmail := "From: jan@gemeente.nl\nTo: alice@example.org\nSubject: [secure] rtf\nContent-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/plain\n\nhi\n--b\nContent-Type: application/ms-tnef; name=winmail.dat\nContent-Transfer-Encoding: base64\n\nAAAA\n--b--\n"
	for _, tc := range []struct {
		name string
		s    submission
		code int
	}{
		{"no STARTTLS", submission{noTLS: true, from: "jan@gemeente.nl", rcpts: []string{"alice@example.org"}, msg: plainMail}, 530},
		{"sender outside the organisation", submission{from: "jan@elders.nl", rcpts: []string{"alice@example.org"}, msg: strings.ReplaceAll(plainMail, "gemeente.nl", "elders.nl")}, 550},
		{"recipient refused by policy", submission{from: "jan@gemeente.nl", rcpts: []string{"x@concurrent.nl"}, msg: plainMail}, 550},
		{"From header is not the envelope sender", submission{from: "piet@gemeente.nl", rcpts: []string{"alice@example.org"}, msg: plainMail}, 550},
		{"no marker", submission{from: "jan@gemeente.nl", rcpts: []string{"alice@example.org"}, msg: strings.Replace(plainMail, "[vertrouwelijk] ", "", 1)}, 550},
		{"marker not at the start", submission{from: "jan@gemeente.nl", rcpts: []string{"alice@example.org"}, msg: strings.Replace(plainMail, "[vertrouwelijk] test", "test [secure]", 1)}, 550},
		{"winmail.dat", submission{from: "jan@gemeente.nl", rcpts: []string{"alice@example.org"}, msg: winmail}, 554},
		{"over the size limit", submission{from: "jan@gemeente.nl", rcpts: []string{"alice@example.org"}, msg: big}, 552},
		{"broken base64", submission{from: "jan@gemeente.nl", rcpts: []string{"alice@example.org"}, msg: strings.Replace(winmail, "application/ms-tnef; name=winmail.dat", "application/pdf; name=a.pdf", 1)[:len(winmail)-20] + "!!!!\n--b--\n"}, 554},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := e.send(t, tc.s)
			if got := code(t, err); got != tc.code {
				t.Errorf("code %d (%v), want %d", got, err, tc.code)
			}
		})
	}
	// Nothing of a refused mail is kept: no transfer, no mail.
	for _, s := range []string{"jan@gemeente.nl", "piet@gemeente.nl", "jan@elders.nl"} {
		ts, err := e.app.Transfers.SenderTransfers(t.Context(), s)
		if err != nil {
			t.Fatal(err)
		}
		if len(ts) != 0 {
			t.Errorf("%s has %d transfers after refusals", s, len(ts))
		}
	}
	if n := len(e.app.Delivered("", "")); n != 0 {
		t.Errorf("%d mails sent for refused mail", n)
	}
	if len(e.conf.all()) != 0 {
		t.Error("a refused mail was confirmed")
	}
}

func TestAuthWithAPIKey(t *testing.T) {
	// No trusted relay: every peer must authenticate.
	e := start(t, setup{relays: []string{"10.9.0.0/16"}})
	_, key, err := e.app.Senders.CreateAPIKey(t.Context(), "jan@gemeente.nl")
	if err != nil {
		t.Fatal(err)
	}
	_, other, err := e.app.Senders.CreateAPIKey(t.Context(), "piet@gemeente.nl")
	if err != nil {
		t.Fatal(err)
	}
	ok := submission{user: "jan@gemeente.nl", pass: key, from: "jan@gemeente.nl", rcpts: []string{"alice@example.org"}, msg: plainMail}
	for _, tc := range []struct {
		name   string
		change func(*submission)
		code   int
	}{
		{"untrusted relay without AUTH", func(s *submission) { s.user = "" }, 530},
		{"wrong key", func(s *submission) { s.pass = key + "x" }, 535},
		{"not an API key", func(s *submission) { s.pass = "hunter2hunter2" }, 535},
		{"another sender's key", func(s *submission) { s.pass = other }, 535},
		{"key of the user, other envelope sender", func(s *submission) { s.from = "piet@gemeente.nl" }, 550},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := ok
			tc.change(&s)
			if got := code(t, e.send(t, s)); got != tc.code {
				t.Errorf("code %d, want %d", got, tc.code)
			}
		})
	}
	if err := e.send(t, ok); err != nil {
		t.Fatalf("with the right key: %v", err)
	}
	if cs := e.conf.all(); len(cs) != 1 || cs[0].Sender != "jan@gemeente.nl" {
		t.Fatalf("confirmations: %+v", cs)
	}
	e.app.Mail(mail.KindNotify, "alice@example.org")
	if strings.Contains(e.app.Logs.String(), key) {
		t.Error("the API key is in the log")
	}
}

// TestInfectedAttachment: a marked mail whose attachment has malware (the
// EICAR test file, found by Debian's real clamd with scantest's signature
// database) is refused with 554 5.7.1 naming the finding; no transfer is
// kept and no recipient gets a mail. The same mail without it goes out.
func TestInfectedAttachment(t *testing.T) {
	d := scantest.Start(t, scantest.Options{})
	e := start(t, setup{args: []string{"--clamd", d.Unix()}})
	infected := "From: jan@gemeente.nl\nTo: alice@example.org\nSubject: [secure] stukken\nContent-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/plain\n\nHierbij de stukken.\n--b\nContent-Type: application/octet-stream\nContent-Disposition: attachment; filename=eicar.com\nContent-Transfer-Encoding: base64\n\n" +
		b64([]byte(scantest.EICAR)) + "\n--b--\n"
	err := e.send(t, submission{from: "jan@gemeente.nl", rcpts: []string{"alice@example.org"}, msg: infected})
	if got := code(t, err); got != 554 || !strings.Contains(err.Error(), "5.7.1") || !strings.Contains(err.Error(), "EICAR") {
		t.Fatalf("infected attachment: %v, want 554 5.7.1 naming the finding", err)
	}
	ts, err := e.app.Transfers.SenderTransfers(t.Context(), "jan@gemeente.nl")
	if err != nil {
		t.Fatal(err)
	}
	if len(ts) != 0 {
		t.Errorf("%d transfers kept after the refusal", len(ts))
	}
	if n := len(e.app.Delivered(mail.KindNotify, "alice@example.org")); n != 0 {
		t.Errorf("%d notifications for a refused mail", n)
	}
	// The confirmation is made only in the transaction that makes the
	// transfer ready, after the scan (TestInfectedNoConfirmation).
	if cs := e.conf.all(); len(cs) != 0 {
		t.Errorf("%d password confirmations for a refused mail", len(cs))
	}
	// Clean: sent.
	if err := e.send(t, submission{from: "jan@gemeente.nl", rcpts: []string{"alice@example.org"}, msg: plainMail}); err != nil {
		t.Fatalf("clean mail: %v", err)
	}
	if n := len(e.app.Delivered(mail.KindNotify, "alice@example.org")); n != 1 {
		t.Errorf("%d notifications for the clean mail, want 1", n)
	}
}
