// Package syslog sends the application log and the audit log to a syslog
// receiver (an organisation's SIEM) in the format of RFC 5424, over UDP
// (RFC 5426), TCP (RFC 6587, octet counting) or TLS (RFC 5425).
//
// The application log goes through Handler, which never blocks a request:
// lines wait in a bounded queue and are dropped (and counted, and the
// count reported) when the receiver is too slow or away. Audit entries are
// not sent from the request: a forwarder (package audit) reads committed
// entries from the database in chain order and sends them with Send, so an
// entry that rolled back is never sent and one sent while the receiver was
// away is sent again later.
package syslog

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// Severity is RFC 5424's severity (0 emergency … 7 debug).
type Severity int

// The severities Kluis uses.
const (
	Error   Severity = 3
	Warning Severity = 4
	Notice  Severity = 5
	Info    Severity = 6
	Debug   Severity = 7
)

// AuditFacility is RFC 5424's facility 13, "log audit": audit entries are
// sent with it whatever the application log's facility is, so a SIEM can
// route them apart.
const AuditFacility = 13

// facilities are the names --syslog-facility accepts.
var facilities = map[string]int{
	"kern": 0, "user": 1, "mail": 2, "daemon": 3, "auth": 4, "syslog": 5, "lpr": 6, "news": 7,
	"uucp": 8, "cron": 9, "authpriv": 10, "ftp": 11, "ntp": 12, "audit": 13, "alert": 14, "clock": 15,
	"local0": 16, "local1": 17, "local2": 18, "local3": 19, "local4": 20, "local5": 21, "local6": 22, "local7": 23,
}

// ParseFacility returns the number of a facility name (daemon, local0 …).
func ParseFacility(name string) (int, error) {
	f, ok := facilities[strings.ToLower(strings.TrimSpace(name))]
	if !ok {
		return 0, fmt.Errorf("unknown syslog facility %q: use daemon, auth, authpriv, audit or local0 … local7", name)
	}
	return f, nil
}

// Config says where and how to send.
type Config struct {
	// Addr is udp://HOST:PORT, tcp://HOST:PORT or tls://HOST:PORT.
	Addr string
	// CAFile, for tls, holds the PEM certificates the receiver's
	// certificate must chain to; empty: the system's roots.
	CAFile   string
	Facility int    // of the application log
	AppName  string // RFC 5424 APP-NAME; default "kluis"
	Hostname string // default: os.Hostname
	// Timeout bounds dialling and each write; default 5 s.
	Timeout time.Duration
}

// ParseAddr checks a receiver address and returns its network (udp, tcp
// or tls) and HOST:PORT.
func ParseAddr(addr string) (network, hostport string, err error) {
	u, err := url.Parse(addr)
	if err != nil || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil {
		return "", "", fmt.Errorf("syslog address %q: give udp://HOST:PORT, tcp://HOST:PORT or tls://HOST:PORT", addr)
	}
	switch u.Scheme {
	case "udp", "tcp", "tls":
	default:
		return "", "", fmt.Errorf("syslog address %q: the scheme must be udp, tcp or tls (tls://HOST:6514 for RFC 5425)", addr)
	}
	if _, port, err := net.SplitHostPort(u.Host); err != nil || port == "" {
		return "", "", fmt.Errorf("syslog address %q: give a port, e.g. %s://%s:%s", addr, u.Scheme, u.Host, map[string]string{"udp": "514", "tcp": "601", "tls": "6514"}[u.Scheme])
	}
	return u.Scheme, u.Host, nil
}

// Message is one syslog message before framing.
type Message struct {
	Facility int
	Severity Severity
	Time     time.Time
	MsgID    string // at most 32 printable ASCII characters
	// SeqID, if positive, is sent as RFC 5424's registered structured data
	// [meta sequenceId="N"] (the audit entry's id).
	SeqID int64
	Body  []byte
}

// Writer sends messages to one receiver, reconnecting as needed. It is
// safe for concurrent use.
type Writer struct {
	network, hostport string
	tls               *tls.Config
	facility          int
	app, host, procid string
	timeout           time.Duration

	mu   sync.Mutex
	conn net.Conn
}

// New checks cfg and returns a writer; it does not connect yet.
func New(cfg Config) (*Writer, error) {
	network, hostport, err := ParseAddr(cfg.Addr)
	if err != nil {
		return nil, err
	}
	w := &Writer{network: network, hostport: hostport, facility: cfg.Facility, app: cfg.AppName,
		host: cfg.Hostname, procid: strconv.Itoa(os.Getpid()), timeout: cfg.Timeout}
	if cfg.Facility < 0 || cfg.Facility > 23 {
		return nil, fmt.Errorf("syslog facility %d: must be 0 to 23", cfg.Facility)
	}
	if w.app == "" {
		w.app = "kluis"
	}
	if w.host == "" {
		w.host, _ = os.Hostname()
	}
	if w.timeout <= 0 {
		w.timeout = 5 * time.Second
	}
	if cfg.CAFile != "" && network != "tls" {
		return nil, errors.New("a syslog CA file needs a tls:// address")
	}
	if network == "tls" {
		host, _, _ := net.SplitHostPort(hostport)
		w.tls = &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
		if cfg.CAFile != "" {
			pem, err := os.ReadFile(cfg.CAFile)
			if err != nil {
				return nil, fmt.Errorf("syslog CA file: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("syslog CA file %s: no PEM certificate in it", cfg.CAFile)
			}
			w.tls.RootCAs = pool
		}
	}
	return w, nil
}

// Facility is the application log's facility.
func (w *Writer) Facility() int { return w.facility }

// Send writes msgs in order. On an error the connection is dropped (the
// next Send dials again) and the error returned; over TCP and TLS some of
// msgs may have arrived, so a caller that retries sends them again.
func (w *Writer) Send(ctx context.Context, msgs ...Message) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.conn != nil && w.network != "udp" && !peerOpen(w.conn) {
		_ = w.conn.Close()
		w.conn = nil
	}
	if w.conn == nil {
		d := net.Dialer{Timeout: w.timeout}
		var c net.Conn
		var err error
		switch w.network {
		case "tls":
			td := tls.Dialer{NetDialer: &d, Config: w.tls}
			c, err = td.DialContext(ctx, "tcp", w.hostport)
		default:
			c, err = d.DialContext(ctx, w.network, w.hostport)
		}
		if err != nil {
			return fmt.Errorf("syslog: %w", err)
		}
		w.conn = c
	}
	var buf bytes.Buffer
	for _, m := range msgs {
		line := w.format(m)
		buf.Reset()
		if w.network == "udp" {
			// One message per datagram; RFC 5426 asks receivers for at
			// least 2048 bytes, so longer lines are cut (use tcp or tls
			// for long lines).
			if len(line) > maxDatagram {
				line = line[:maxDatagram]
			}
			buf.Write(line)
		} else {
			buf.WriteString(strconv.Itoa(len(line)))
			buf.WriteByte(' ')
			buf.Write(line)
		}
		_ = w.conn.SetWriteDeadline(time.Now().Add(w.timeout))
		if _, err := w.conn.Write(buf.Bytes()); err != nil {
			_ = w.conn.Close()
			w.conn = nil
			return fmt.Errorf("syslog: %w", err)
		}
	}
	return nil
}

const maxDatagram = 2048

// peerOpen reports whether the receiver has not closed the connection. A
// syslog receiver never writes, so a read that does not time out at once
// means it has gone (EOF, reset). Without this check the first write after
// a receiver's restart is taken by the kernel and lost; this catches every
// receiver that closed its side, not a host that vanished (plain syslog
// over TCP has no acknowledgements: see docs/operations.md).
func peerOpen(c net.Conn) bool {
	_ = c.SetReadDeadline(time.Now().Add(time.Millisecond))
	var b [1]byte
	_, err := c.Read(b[:])
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// Close closes the connection, if any.
func (w *Writer) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.conn == nil {
		return nil
	}
	err := w.conn.Close()
	w.conn = nil
	return err
}

// format is RFC 5424: <PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID SD MSG.
func (w *Writer) format(m Message) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "<%d>1 ", m.Facility*8+int(m.Severity))
	t := m.Time
	if t.IsZero() {
		t = time.Now()
	}
	b.WriteString(t.UTC().Format("2006-01-02T15:04:05.000000Z07:00"))
	b.WriteByte(' ')
	b.WriteString(header(w.host, 255))
	b.WriteByte(' ')
	b.WriteString(header(w.app, 48))
	b.WriteByte(' ')
	b.WriteString(header(w.procid, 128))
	b.WriteByte(' ')
	b.WriteString(header(m.MsgID, 32))
	b.WriteByte(' ')
	if m.SeqID > 0 && m.SeqID <= 2147483647 {
		fmt.Fprintf(&b, `[meta sequenceId="%d"]`, m.SeqID)
	} else {
		b.WriteByte('-')
	}
	if len(m.Body) > 0 {
		b.WriteByte(' ')
		// MSG: valid UTF-8 without line breaks, so that receivers that
		// split on newlines (and humans reading the file) see one entry.
		body := bytes.ToValidUTF8(bytes.TrimRight(m.Body, "\r\n"), []byte("\uFFFD"))
		body = bytes.ReplaceAll(body, []byte("\n"), []byte(" "))
		b.Write(bytes.ReplaceAll(body, []byte("\r"), []byte(" ")))
	}
	return b.Bytes()
}

// header makes v a header field: printable ASCII without spaces (33–126),
// at most max characters, "-" when empty.
func header(v string, max int) string {
	var b strings.Builder
	for _, r := range v {
		if b.Len() >= max {
			break
		}
		if r < 33 || r > 126 || r == utf8.RuneError {
			r = '_'
		}
		b.WriteRune(r)
	}
	if b.Len() == 0 {
		return "-"
	}
	return b.String()
}
