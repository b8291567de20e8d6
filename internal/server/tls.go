package server

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"time"
)

// TLSConfig is the server's TLS configuration per the NCSC-NL ICT-beveiligingsrichtlijnen
// voor TLS (version 2.1): TLS 1.3 and 1.2 only; for TLS 1.2 only the
// "good" cipher suites (ECDHE key exchange with AES-GCM or ChaCha20-Poly1305
// AEAD; no CBC, no RSA key exchange, no SHA-1 MACs); curves X25519 and the
// NIST P-256 and P-384 curves, with the hybrid post-quantum X25519MLKEM768
// preferred on TLS 1.3. TLS 1.3's cipher suites are Go's fixed set
// (AES-GCM and ChaCha20-Poly1305), all "good". Go has no TLS compression and
// no renegotiation on the server side.
func TLSConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		CipherSuites: []uint16{
			tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
			tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
			tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
			tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
		},
		CurvePreferences: []tls.CurveID{tls.X25519MLKEM768, tls.X25519, tls.CurveP256, tls.CurveP384},
		NextProtos:       []string{"h2", "http/1.1"},
	}
}

// TLSListener wraps ln in TLS with the certificate chain and key from the
// given PEM files. The files are read now (an error says which one failed)
// and read again when they change (checked at most once a minute), so a
// renewed certificate is picked up without a restart.
func TLSListener(ln net.Listener, certFile, keyFile string, log *slog.Logger) (net.Listener, error) {
	c, err := newCertReloader(certFile, keyFile, log)
	if err != nil {
		return nil, err
	}
	cfg := TLSConfig()
	cfg.GetCertificate = c.get
	return tls.NewListener(ln, cfg), nil
}

// LoadCertificate loads a PEM certificate chain and key with an error that
// names the files.
func LoadCertificate(certFile, keyFile string) (*tls.Certificate, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("TLS certificate %s and key %s: %w", certFile, keyFile, err)
	}
	return &cert, nil
}

type certReloader struct {
	certFile, keyFile string
	log               *slog.Logger

	mu      sync.Mutex
	cert    *tls.Certificate
	stamp   [2]time.Time
	checked time.Time
}

func newCertReloader(certFile, keyFile string, log *slog.Logger) (*certReloader, error) {
	c := &certReloader{certFile: certFile, keyFile: keyFile, log: log}
	cert, err := LoadCertificate(certFile, keyFile)
	if err != nil {
		return nil, err
	}
	c.cert, c.stamp, c.checked = cert, c.stamps(), time.Now()
	return c, nil
}

func (c *certReloader) stamps() [2]time.Time {
	var s [2]time.Time
	for i, f := range []string{c.certFile, c.keyFile} {
		if fi, err := os.Stat(f); err == nil {
			s[i] = fi.ModTime()
		}
	}
	return s
}

func (c *certReloader) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if time.Since(c.checked) < time.Minute {
		return c.cert, nil
	}
	c.checked = time.Now()
	if s := c.stamps(); s != c.stamp {
		cert, err := LoadCertificate(c.certFile, c.keyFile)
		if err != nil {
			// Half-written files during a renewal: keep serving the old
			// certificate and try again later.
			if c.log != nil {
				c.log.Warn("TLS certificate changed but cannot be loaded; keeping the old one", "err", err)
			}
			return c.cert, nil
		}
		c.cert, c.stamp = cert, s
		if c.log != nil {
			c.log.Info("TLS certificate reloaded", "file", c.certFile)
		}
	}
	return c.cert, nil
}

// ReloadingTLSConfig is TLSConfig with the certificate of the PEM files,
// read again when they change (as in TLSListener), for a listener that
// starts TLS itself: the mail gateway's STARTTLS.
func ReloadingTLSConfig(certFile, keyFile string, log *slog.Logger) (*tls.Config, error) {
	c, err := newCertReloader(certFile, keyFile, log)
	if err != nil {
		return nil, err
	}
	cfg := TLSConfig()
	cfg.GetCertificate, cfg.NextProtos = c.get, nil
	return cfg, nil
}
