// Package smtp sends mail through an SMTP relay with go-mail.
//
// The relay is given as a URL (the --smtp flag):
//
//	smtp://user:password@host:587            STARTTLS, required (the default)
//	smtps://user:password@host:465           implicit TLS
//	smtp://host:1025?tls=none                no TLS at all; only when asked for
//
// STARTTLS is mandatory for smtp:// URLs: against a server that does not
// offer it, sending fails and the mail stays queued in the outbox. There is
// no fallback to plaintext. Certificates are always verified.
//
// Each message goes to exactly one recipient: the To header and the SMTP
// envelope hold m.To and nothing else.
package smtp

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	netmail "net/mail"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	gomail "github.com/wneessen/go-mail"

	"github.com/kluis-nl/kluis/internal/mail"
)

// TLSMode says how the connection to the relay is protected.
type TLSMode string

const (
	// STARTTLS upgrades a plain connection and refuses to go on without it.
	STARTTLS TLSMode = "starttls"
	// ImplicitTLS speaks TLS from the first byte (smtps://, port 465).
	ImplicitTLS TLSMode = "implicit"
	// NoTLS sends in the clear. Only with ?tls=none, for a relay on loopback
	// or a test sink.
	NoTLS TLSMode = "none"
)

// DefaultTimeout bounds each network step of one delivery.
const DefaultTimeout = 30 * time.Second

// Config is a parsed relay URL.
type Config struct {
	Host     string
	Port     int
	Username string
	Password string
	TLS      TLSMode
	// RootCAs verifies the relay's certificate; nil means the system roots.
	RootCAs *x509.CertPool
	// Timeout bounds each network step; zero means DefaultTimeout.
	Timeout time.Duration
}

// String returns the URL with the password left out, for logs.
func (c *Config) String() string {
	u := url.URL{Scheme: "smtp", Host: c.Host + ":" + strconv.Itoa(c.Port)}
	if c.TLS == ImplicitTLS {
		u.Scheme = "smtps"
	}
	if c.Username != "" {
		if c.Password != "" {
			u.User = url.UserPassword(c.Username, "xxxxx")
		} else {
			u.User = url.User(c.Username)
		}
	}
	if c.TLS == NoTLS {
		u.RawQuery = "tls=none"
	}
	return u.String()
}

const urlHelp = "expected smtp://user:password@host:587 (STARTTLS), smtps://user:password@host:465 (TLS) or smtp://host:port?tls=none; percent-encode special characters in the user name and password (@ as %40, / as %2F, : as %3A)"

// ParseURL parses a relay URL. Its errors say what to fix and never repeat
// the password.
func ParseURL(raw string) (*Config, error) {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return nil, errors.New("smtp URL is empty; " + urlHelp)
	}
	// url.Parse's own errors quote the whole URL, password included, so
	// they are not passed on.
	u, err := url.Parse(raw)
	if err != nil {
		return nil, errors.New("smtp URL cannot be parsed; " + urlHelp)
	}
	cfg := &Config{Timeout: DefaultTimeout}
	switch strings.ToLower(u.Scheme) {
	case "smtp":
		cfg.TLS, cfg.Port = STARTTLS, gomail.DefaultPortTLS
	case "smtps":
		cfg.TLS, cfg.Port = ImplicitTLS, gomail.DefaultPortSSL
	case "":
		return nil, errors.New("smtp URL has no scheme; " + urlHelp)
	default:
		return nil, fmt.Errorf("smtp URL scheme %q is not supported; %s", u.Scheme, urlHelp)
	}
	if u.Opaque != "" {
		return nil, errors.New("smtp URL must start with " + u.Scheme + "://; " + urlHelp)
	}
	if u.Path != "" && u.Path != "/" {
		return nil, errors.New("smtp URL must not have a path (is a / in the password not percent-encoded as %2F?); " + urlHelp)
	}
	if u.Fragment != "" {
		return nil, errors.New("smtp URL must not have a fragment (is a # in the password not percent-encoded as %23?); " + urlHelp)
	}
	cfg.Host = u.Hostname()
	if cfg.Host == "" {
		return nil, errors.New("smtp URL has no host name; " + urlHelp)
	}
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("smtp URL port %q is not a number from 1 to 65535", p)
		}
		cfg.Port = n
	}
	if u.User != nil {
		cfg.Username = u.User.Username()
		cfg.Password, _ = u.User.Password()
		if cfg.Username == "" {
			return nil, errors.New("smtp URL has a password but no user name; " + urlHelp)
		}
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return nil, errors.New("smtp URL query cannot be parsed; the only option is ?tls=none")
	}
	for k, v := range q {
		switch k {
		case "tls":
			if len(v) != 1 {
				return nil, errors.New("smtp URL: give tls= once")
			}
			switch strings.ToLower(v[0]) {
			case "none":
				if cfg.TLS == ImplicitTLS {
					return nil, errors.New("smtp URL: tls=none contradicts smtps://; use smtp://host:port?tls=none for a relay without TLS")
				}
				cfg.TLS = NoTLS
			case "starttls":
				if cfg.TLS == ImplicitTLS {
					return nil, errors.New("smtp URL: tls=starttls contradicts smtps://; use smtp:// for STARTTLS")
				}
			case "implicit", "tls":
				if cfg.TLS != ImplicitTLS {
					return nil, errors.New("smtp URL: for implicit TLS use smtps://host:465")
				}
			default:
				return nil, fmt.Errorf("smtp URL: tls=%q is not known; STARTTLS is the default for smtp://, use tls=none only to turn TLS off", v[0])
			}
		default:
			return nil, fmt.Errorf("smtp URL option %q is not known; the only option is ?tls=none", k)
		}
	}
	return cfg, nil
}

// Sender delivers mail through one relay. It is safe for concurrent use;
// each Send makes its own connection.
type Sender struct {
	cfg    Config
	from   *netmail.Address
	domain string
}

// New returns a Sender that sends as from ("Name <address>" or a bare
// address).
func New(cfg *Config, from string) (*Sender, error) {
	if cfg == nil {
		return nil, errors.New("smtp: no relay configured")
	}
	if cfg.Host == "" || cfg.Port == 0 {
		return nil, errors.New("smtp: relay host and port are required")
	}
	switch cfg.TLS {
	case STARTTLS, ImplicitTLS, NoTLS:
	case "":
		return nil, errors.New("smtp: relay TLS mode is not set")
	default:
		return nil, fmt.Errorf("smtp: unknown TLS mode %q", cfg.TLS)
	}
	addr, err := netmail.ParseAddress(from)
	if err != nil {
		return nil, fmt.Errorf("mail from address %q is not valid (expected \"Name <name@example.org>\" or name@example.org): %v", from, err)
	}
	at := strings.LastIndexByte(addr.Address, '@')
	if at <= 0 || at == len(addr.Address)-1 {
		return nil, fmt.Errorf("mail from address %q has no domain", from)
	}
	c := *cfg
	if c.Timeout <= 0 {
		c.Timeout = DefaultTimeout
	}
	return &Sender{cfg: c, from: addr, domain: strings.ToLower(addr.Address[at+1:])}, nil
}

// Domain is the domain of the from address: use it for Message-IDs.
func (s *Sender) Domain() string { return s.domain }

// From is the parsed from address.
func (s *Sender) From() *netmail.Address { return s.from }

// Send delivers m to m.To alone. messageID is the full Message-ID header
// value ("<id@domain>"); the outbox keeps it stable across retries. Use
// [Permanent] on the error to tell a rejection from a failure worth
// retrying.
func (s *Sender) Send(ctx context.Context, m *mail.Message, messageID string) error {
	msg, err := s.build(m, messageID)
	if err != nil {
		return &sendError{permanent: true, err: err}
	}
	client, err := s.client()
	if err != nil {
		return &sendError{err: err}
	}
	if err := client.DialAndSendWithContext(ctx, msg); err != nil {
		return classify(err)
	}
	return nil
}

func (s *Sender) client() (*gomail.Client, error) {
	opts := []gomail.Option{
		gomail.WithPort(s.cfg.Port),
		gomail.WithTimeout(s.cfg.Timeout),
		gomail.WithTLSConfig(&tls.Config{
			ServerName: s.cfg.Host,
			MinVersion: tls.VersionTLS12,
			RootCAs:    s.cfg.RootCAs,
		}),
	}
	switch s.cfg.TLS {
	case STARTTLS:
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSMandatory))
	case ImplicitTLS:
		opts = append(opts, gomail.WithSSL())
	case NoTLS:
		opts = append(opts, gomail.WithTLSPolicy(gomail.NoTLS))
	}
	if s.cfg.Username != "" {
		// Auto-discovery never offers PLAIN or LOGIN over a connection
		// without TLS, so a password is not sent in the clear.
		opts = append(opts,
			gomail.WithSMTPAuth(gomail.SMTPAuthAutoDiscover),
			gomail.WithUsername(s.cfg.Username),
			gomail.WithPassword(s.cfg.Password))
	}
	c, err := gomail.NewClient(s.cfg.Host, opts...)
	if err != nil {
		return nil, fmt.Errorf("smtp client: %w", err)
	}
	return c, nil
}

func (s *Sender) build(m *mail.Message, messageID string) (*gomail.Msg, error) {
	if m == nil {
		return nil, errors.New("no message")
	}
	if strings.ContainsAny(m.To, "\r\n") {
		return nil, errors.New("recipient address contains a line break")
	}
	to, err := netmail.ParseAddress(m.To)
	if err != nil {
		return nil, fmt.Errorf("recipient address is not valid: %v", err)
	}
	id := strings.TrimSuffix(strings.TrimPrefix(messageID, "<"), ">")
	if id == "" || strings.ContainsAny(id, "<> \t\r\n") || !strings.Contains(id, "@") {
		return nil, fmt.Errorf("message id %q is not of the form <id@domain>", messageID)
	}
	msg := gomail.NewMsg(gomail.WithNoDefaultUserAgent(), gomail.WithCharset(gomail.CharsetUTF8))
	msg.FromMailAddress(s.from)
	msg.ToMailAddress(&netmail.Address{Name: oneLine(to.Name), Address: to.Address})
	msg.Subject(subject(m.Subject))
	msg.SetMessageIDWithValue(id)
	msg.SetDate()
	msg.SetGenHeader(gomail.Header("Auto-Submitted"), "auto-generated")
	// The mail gateway never takes Kluis's own mails (a loop).
	msg.SetGenHeader(gomail.Header(mail.OriginHeader), mail.OriginValue)
	msg.SetBodyString(gomail.TypeTextPlain, m.Text)
	if m.HTML != "" {
		msg.AddAlternativeString(gomail.TypeTextHTML, m.HTML)
	}
	return msg, nil
}

// subject returns the Subject header value that shows a reader exactly s
// (one line). go-mail encodes a subject only when it has a character
// outside printable ASCII, so "=?utf-8?b?…?=" typed by a sender would go
// out raw and every mail client would decode it into other text (a
// different subject than the sender wrote, chosen by whoever typed it).
// A subject with "=?" in it is therefore sent wholly as encoded words, in
// which that text is only data.
func subject(s string) string {
	s = oneLine(s)
	if !strings.Contains(s, "=?") {
		return s
	}
	return encodedWords(s)
}

// encodedWords writes s as RFC 2047 "B" encoded words of at most 75
// characters (45 bytes of text each, cut between characters), separated by
// spaces, which decoders drop between encoded words and go-mail may fold
// at.
func encodedWords(s string) string {
	const chunk = 45 // "=?UTF-8?B?" + 60 base64 characters + "?=" = 72
	var words []string
	for len(s) > 0 {
		n := min(len(s), chunk)
		for n < len(s) && !utf8.RuneStart(s[n]) {
			n--
		}
		words = append(words, "=?UTF-8?B?"+base64.StdEncoding.EncodeToString([]byte(s[:n]))+"?=")
		s = s[n:]
	}
	return strings.Join(words, " ")
}

// oneLine turns every control character into a space, so header values
// stay one header.
func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
}

// sendError carries whether a failure is permanent. The outbox finds it
// through the Permanent method, so it need not import this package.
type sendError struct {
	permanent bool
	err       error
}

func (e *sendError) Error() string   { return "smtp: " + e.err.Error() }
func (e *sendError) Unwrap() error   { return e.err }
func (e *sendError) Permanent() bool { return e.permanent }

// Permanent reports whether err means the mail will never be accepted as it
// is: a 5xx reply to RCPT TO or to the message itself, or a message that
// cannot be built (an invalid recipient). Everything else, including a
// relay that is down, refuses TLS or rejects the login, is temporary: the
// outbox retries, so fixing the configuration delivers the queued mail.
func Permanent(err error) bool {
	var p interface{ Permanent() bool }
	return errors.As(err, &p) && p.Permanent()
}

func classify(err error) error {
	var se *gomail.SendError
	if errors.As(err, &se) {
		code := se.ErrorCode()
		perm := code >= 500 && code < 600
		switch se.Reason {
		case gomail.ErrSMTPRcptTo, gomail.ErrSMTPData, gomail.ErrSMTPDataClose, gomail.ErrWriteContent:
		default:
			// A 5xx to MAIL FROM or a connection check is about the
			// relay's configuration, not this mail.
			perm = false
		}
		return &sendError{permanent: perm, err: errors.New(stripRecipients(err.Error()))}
	}
	return &sendError{err: err}
}

// stripRecipients drops go-mail's list of affected recipients from an error
// text: addresses belong in neither logs nor the outbox's last_error.
func stripRecipients(s string) string {
	const marker = ", affected recipient(s): "
	i := strings.Index(s, marker)
	if i < 0 {
		return s
	}
	rest := s[i+len(marker):]
	if j := strings.Index(rest, ", affected message ID: "); j >= 0 {
		return s[:i] + rest[j:]
	}
	return s[:i]
}
