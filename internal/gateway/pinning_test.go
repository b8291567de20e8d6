package gateway_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/kluis-nl/kluis/internal/mail"
)

// testCA is a certificate authority that issues client certificates.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func newCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return &testCA{cert: c, key: key}
}

func (ca *testCA) pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.cert)
	return p
}

// client issues a client certificate with subject CN cn and DNS names.
func (ca *testCA) client(t *testing.T, cn string, dns ...string) *tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn}, DNSNames: dns,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// TestPinnedConnector: a connector (Exchange Online) that presents a
// client certificate with a pinned name, chaining to the configured CA,
// may hand over mail from an address that is no trusted relay. A
// certificate with another name, none at all, or one from another CA is
// not trusted.
func TestPinnedConnector(t *testing.T) {
	ca := newCA(t, "Test CA")
	e := start(t, setup{relays: []string{"10.9.0.0/16"}, clientNames: []string{"Mail.Gemeente.NL"}, clientCAs: ca.pool()})
	ok := submission{from: "jan@gemeente.nl", rcpts: []string{"alice@example.org"}, msg: plainMail, clientCert: ca.client(t, "mail.gemeente.nl")}
	if err := e.send(t, ok); err != nil {
		t.Fatalf("the pinned connector: %v", err)
	}
	e.app.Mail(mail.KindNotify, "alice@example.org")
	byDNS := ok
	byDNS.clientCert = ca.client(t, "Connector", "mail.gemeente.nl")
	if err := e.send(t, byDNS); err != nil {
		t.Fatalf("the pinned name as DNS name: %v", err)
	}
	if !strings.Contains(e.app.Logs.String(), "connector:mail.gemeente.nl") {
		t.Error("the audit actor does not name the connector")
	}
	other := ok
	other.clientCert = ca.client(t, "mail.elders.nl", "mail.elders.nl")
	if got := code(t, e.send(t, other)); got != 530 {
		t.Errorf("another name: %d, want 530", got)
	}
	none := ok
	none.clientCert = nil
	if got := code(t, e.send(t, none)); got != 530 {
		t.Errorf("no client certificate: %d, want 530", got)
	}
	foreign := ok
	foreign.clientCert = newCA(t, "Other CA").client(t, "mail.gemeente.nl")
	if err := e.send(t, foreign); err == nil {
		t.Error("a certificate with the pinned name from another CA was accepted")
	}
	if n := len(e.conf.all()); n != 2 {
		t.Errorf("%d mails taken, want 2", n)
	}
}
