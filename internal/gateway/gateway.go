// Package gateway is Kluis's SMTP gateway (issue 18): the organisation's
// mail server routes mail whose subject carries a marker ("[secure]") to
// it, and the gateway turns that mail into a transfer through the same
// engine paths the API uses (transfer.Service: validation, policy, quota,
// malware scan, outbox). The text of the mail becomes the confidential
// message, its attachments the files (streamed straight into segments),
// its To, Cc and Bcc the recipients, each with a link of their own; the
// transfer is protected by a generated password that goes to the sender
// through a Confirmer, never in a mail.
//
// Trust: a connection is trusted when it comes from a relay in
// Config.TrustedRelays, or when it authenticates with SMTP AUTH PLAIN
// using the sender's API key (user name: the sender's address). Mail is
// taken only after STARTTLS. Refusals are answered in the SMTP session
// with a 5xx code and a reason in English, so the mail server returns the
// mail to its sender instead of dropping it.
package gateway

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/kluis-nl/kluis/internal/sender"
	"github.com/kluis-nl/kluis/internal/store"
	"github.com/kluis-nl/kluis/internal/transfer"
)

// DefaultMarkers are the subject markers taken when none are configured.
var DefaultMarkers = []string{"[vertrouwelijk]", "[secure]"}

// Config is the gateway's configuration (flags --gateway-…).
type Config struct {
	// Domain is the name the gateway greets with, and the domain through
	// which a mail can be addressed instead of marked (route.go:
	// alice=example.org@Domain is alice@example.org).
	Domain string
	// TrustedRelays are the networks whose mail servers may hand over
	// mail without authenticating (an organisation's own on-premises
	// server; the weaker option, see docs/gateway.md).
	TrustedRelays []netip.Prefix
	// Markers start the subject of a mail to be taken (case-insensitive);
	// empty: DefaultMarkers.
	Markers []string
	// TLS is offered with STARTTLS; mail is refused before it.
	TLS *tls.Config
	// MaxMessageBytes bounds a whole mail as it arrives (with the MIME
	// encoding's overhead); 0: derived from the engine's transfer limit.
	MaxMessageBytes int64
	// MaxRecipients bounds RCPT TO commands per mail; 0: 100.
	MaxRecipients int
	// ClientNames pin the TLS client certificates of connectors that may
	// hand over mail like a trusted relay (Exchange Online's outbound
	// connector, whose addresses all tenants share): the certificate's
	// subject CN or one of its DNS names must be one of them, and it must
	// chain to ClientCAs (nil: the system's roots).
	ClientNames []string
	ClientCAs   *x509.CertPool
	// MaxHops bounds the Received headers of a mail: more is a mail
	// going round in a loop; 0: DefaultMaxHops.
	MaxHops int
	// ClaimLease is how long a mail being taken is held against another
	// delivery of the same mail without being renewed (the gateway renews
	// it while the mail streams in); after it, a delivery of the same mail
	// takes over from a gateway that stopped. 0: DefaultClaimLease.
	ClaimLease time.Duration
}

// DefaultMaxHops is the default of Config.MaxHops (Postfix's
// hopcount_limit is 50 too).
const DefaultMaxHops = 50

// DefaultClaimLease is the default of Config.ClaimLease.
const DefaultClaimLease = 2 * time.Minute

// DedupeWindow is how long a taken mail is remembered by its sender and
// Message-ID: the same mail handed over again within it makes no second
// transfer. Mail servers give up retrying after about five days.
const DedupeWindow = 7 * 24 * time.Hour

// Confirmation is what the sender of a taken mail must learn: the
// generated password of the new transfer. Password is the only copy.
type Confirmation struct {
	TransferID string
	Sender     string
	Lang       string
	Password   string
}

// Confirmer hands the password of a new transfer to its sender (the
// confirmation mail with a one-time link, issue 18 item 3).
type Confirmer interface {
	// Confirm queues the sender's confirmation in tx, the transaction
	// that finishes the transfer (transfer.FinishHook), and returns the
	// outbox ids of the mails it queued: they go out only when the
	// transfer is ready (after its malware scan), and a transfer the scan
	// refuses gets none.
	Confirm(ctx context.Context, tx *store.Tx, c Confirmation) ([]string, error)
}

// Deps are what the gateway is built from.
type Deps struct {
	Transfers *transfer.Service
	Senders   *sender.Service
	Confirmer Confirmer
	// DB keeps the mails being taken and taken (dedupe, crash safety).
	DB     *store.DB
	Config Config
	Log    *slog.Logger
	// Now is the clock; nil: time.Now.
	Now func() time.Time
}

// Gateway is the SMTP server.
type Gateway struct {
	svc     *transfer.Service
	senders *sender.Service
	cfg     Config
	log     *slog.Logger
	srv     *smtp.Server
	conf    Confirmer
	db      *store.DB
	now     func() time.Time
	via     string // the domain mail can be addressed through (route.go); "" for none
}

// New builds the gateway; it does not listen yet (Serve).
func New(d Deps) (*Gateway, error) {
	if d.Transfers == nil || d.Senders == nil || d.DB == nil {
		return nil, errors.New("gateway: the engine, the sender service and the database are required")
	}
	if d.Confirmer == nil {
		return nil, errors.New("gateway: a confirmer for the sender's password is required")
	}
	if d.Config.TLS == nil {
		return nil, errors.New("gateway: a TLS certificate is required (mail is taken only after STARTTLS)")
	}
	cfg := d.Config
	if len(cfg.Markers) == 0 {
		cfg.Markers = DefaultMarkers
	}
	for i, m := range cfg.Markers {
		cfg.Markers[i] = strings.ToLower(strings.TrimSpace(m))
		if cfg.Markers[i] == "" {
			return nil, errors.New("gateway: an empty subject marker would take every mail")
		}
	}
	cfg.Domain = strings.ToLower(strings.TrimSuffix(strings.TrimSpace(cfg.Domain), "."))
	if cfg.Domain == "" {
		cfg.Domain = "localhost"
	}
	if cfg.MaxRecipients == 0 {
		cfg.MaxRecipients = 100
	}
	if cfg.MaxHops == 0 {
		cfg.MaxHops = DefaultMaxHops
	}
	if cfg.ClaimLease <= 0 {
		cfg.ClaimLease = DefaultClaimLease
	}
	if cfg.MaxMessageBytes == 0 {
		// base64 makes 4 bytes of 3, with line ends; plus room for
		// headers and the text.
		cfg.MaxMessageBytes = d.Transfers.Config().MaxTransferSize/3*4*78/76 + 10<<20
	}
	log := d.Log
	if log == nil {
		log = slog.Default()
	}
	now := d.Now
	if now == nil {
		now = time.Now
	}
	if len(cfg.ClientNames) > 0 {
		// Asked for, verified when given: other peers go on without one
		// (relays, AUTH), and a certificate that does not verify ends
		// the handshake.
		t := cfg.TLS.Clone()
		t.ClientAuth = tls.VerifyClientCertIfGiven
		t.ClientCAs = cfg.ClientCAs
		cfg.TLS = t
		for i, n := range cfg.ClientNames {
			cfg.ClientNames[i] = strings.ToLower(strings.TrimSpace(n))
		}
	}
	g := &Gateway{svc: d.Transfers, senders: d.Senders, cfg: cfg, log: log, conf: d.Confirmer, db: d.DB, now: now, via: routingDomain(cfg.Domain)}
	srv := smtp.NewServer(smtp.BackendFunc(g.newSession))
	srv.Domain = cfg.Domain
	srv.TLSConfig = cfg.TLS
	srv.MaxMessageBytes = cfg.MaxMessageBytes
	srv.MaxRecipients = cfg.MaxRecipients
	srv.MaxLineLength = 4000
	srv.ReadTimeout = 5 * time.Minute
	srv.WriteTimeout = time.Minute
	srv.AllowInsecureAuth = false
	srv.ErrorLog = slogAdapter{log}
	g.srv = srv
	return g, nil
}

// Serve answers SMTP on ln until ctx ends; then it stops accepting, closes
// the connections and returns nil.
func (g *Gateway) Serve(ctx context.Context, ln net.Listener) error {
	g.log.Info("mail gateway listening", "addr", ln.Addr().String(), "trusted_relays", len(g.cfg.TrustedRelays))
	done := make(chan error, 1)
	go func() { done <- g.srv.Serve(ln) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := g.srv.Shutdown(sctx); err != nil {
		g.srv.Close()
	}
	if err := <-done; err != nil && !errors.Is(err, smtp.ErrServerClosed) {
		return fmt.Errorf("mail gateway: %w", err)
	}
	return nil
}

// pinnedPeer reports whether the TLS peer presented a verified client
// certificate with a pinned name, and which.
func (g *Gateway) pinnedPeer(st tls.ConnectionState) (string, bool) {
	if len(g.cfg.ClientNames) == 0 || len(st.VerifiedChains) == 0 || len(st.PeerCertificates) == 0 {
		return "", false
	}
	c := st.PeerCertificates[0]
	names := append([]string{c.Subject.CommonName}, c.DNSNames...)
	for _, n := range names {
		n = strings.ToLower(n)
		for _, p := range g.cfg.ClientNames {
			if n != "" && n == p {
				return n, true
			}
		}
	}
	return "", false
}

// trusted reports whether the peer is a configured relay.
func (g *Gateway) trusted(addr net.Addr) bool {
	ap, err := netip.ParseAddrPort(addr.String())
	if err != nil {
		return false
	}
	ip := ap.Addr().Unmap()
	for _, p := range g.cfg.TrustedRelays {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

type slogAdapter struct{ log *slog.Logger }

func (a slogAdapter) Printf(format string, v ...any) {
	a.log.Warn("mail gateway", "err", fmt.Sprintf(format, v...))
}
func (a slogAdapter) Println(v ...any) { a.log.Warn("mail gateway", "err", fmt.Sprint(v...)) }
