// Package devbox is the development mailbox: without SMTP, mail is kept
// here and shown at /dev/mailbox.
//
// It holds the last MaxEntries mails in memory only. It is meant for a
// developer's own machine, because everyone who can reach the page can read
// every link in every mail: [Allowed] refuses it at start unless the server
// is plainly local, and [Guard] answers only direct loopback requests.
package devbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/kluis-nl/kluis/internal/clientip"
	"github.com/kluis-nl/kluis/internal/mail"
)

// MaxEntries is how many mails the box keeps; older ones are dropped.
const MaxEntries = 500

// Entry is one kept mail.
type Entry struct {
	ID        string    `json:"id"`
	MessageID string    `json:"message_id"`
	Time      time.Time `json:"time"`
	Kind      string    `json:"kind"`
	Lang      string    `json:"lang"`
	To        string    `json:"to"`
	Subject   string    `json:"subject"`
	Text      string    `json:"text"`
	HTML      string    `json:"html"`
}

// Box is the development mailbox. It is safe for concurrent use.
type Box struct {
	mu      sync.Mutex
	seq     int
	entries []Entry // oldest first
	now     func() time.Time
}

// New returns an empty box.
func New() *Box { return &Box{now: time.Now} }

// Send keeps m. A second mail with the same Message-ID (the outbox's resend
// after a crash) is dropped, as a receiving mail server may do.
func (b *Box) Send(ctx context.Context, m *mail.Message, messageID string) error {
	if m == nil {
		return errors.New("devbox: no message")
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if messageID != "" {
		for _, e := range b.entries {
			if e.MessageID == messageID {
				return nil
			}
		}
	}
	b.seq++
	b.entries = append(b.entries, Entry{
		ID:        strconv.Itoa(b.seq),
		MessageID: messageID,
		Time:      b.now().UTC(),
		Kind:      string(m.Kind),
		Lang:      m.Lang,
		To:        m.To,
		Subject:   m.Subject,
		Text:      m.Text,
		HTML:      m.HTML,
	})
	if n := len(b.entries) - MaxEntries; n > 0 {
		clear(b.entries[:n])
		b.entries = append(b.entries[:0], b.entries[n:]...)
	}
	return nil
}

// SMS is the box as an SMS gateway: each text message becomes an entry
// of kind "sms" (To the number, Text the message), under the same rules
// as mails: only a plainly local server has a box, and only loopback
// requests read it. For a development setup without an SMS gateway.
func (b *Box) SMS() *SMSSender { return &SMSSender{b: b} }

// SMSSender keeps text messages in a Box; see Box.SMS.
type SMSSender struct{ b *Box }

// Send keeps the message.
func (s *SMSSender) Send(ctx context.Context, to, text string) error {
	s.b.mu.Lock()
	defer s.b.mu.Unlock()
	s.b.seq++
	s.b.entries = append(s.b.entries, Entry{ID: strconv.Itoa(s.b.seq), Time: s.b.now().UTC(), Kind: "sms", To: to, Subject: "SMS", Text: text})
	if len(s.b.entries) > MaxEntries {
		s.b.entries = s.b.entries[len(s.b.entries)-MaxEntries:]
	}
	return nil
}

// List returns the kept mails, newest first.
func (b *Box) List() []Entry {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]Entry, len(b.entries))
	for i, e := range b.entries {
		out[len(out)-1-i] = e
	}
	return out
}

func (b *Box) get(id string) (Entry, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, e := range b.entries {
		if e.ID == id {
			return e, true
		}
	}
	return Entry{}, false
}

// Handler serves GET /dev/mailbox (an HTML list), /dev/mailbox.json,
// /dev/mailbox/{id}.txt and /dev/mailbox/{id}.html, behind [Guard]. Mount
// it at "/dev/" or at those exact paths.
func (b *Box) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /dev/mailbox", b.serveList)
	mux.HandleFunc("GET /dev/mailbox/{$}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/dev/mailbox", http.StatusFound)
	})
	mux.HandleFunc("GET /dev/mailbox.json", b.serveJSON)
	mux.HandleFunc("GET /dev/mailbox/{file}", b.serveOne)
	return Guard(mux)
}

func commonHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
}

var listPage = template.Must(template.New("list").Parse(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Development mailbox</title>
</head>
<body>
<h1>Development mailbox</h1>
<p><strong>Mail is not delivered.</strong> No SMTP relay is configured (--smtp), so Kluis keeps the last {{.Max}} mails here, in memory only. <a href="/dev/mailbox.json">JSON</a></p>
{{if .Entries}}
<table>
<thead><tr><th>Time (UTC)</th><th>Kind</th><th>To</th><th>Subject</th><th>View</th></tr></thead>
<tbody>
{{range .Entries}}<tr>
<td>{{.Time.Format "2006-01-02 15:04:05"}}</td>
<td>{{.Kind}}</td>
<td>{{.To}}</td>
<td>{{.Subject}}</td>
<td><a href="/dev/mailbox/{{.ID}}.txt">text</a>{{if .HTML}} <a href="/dev/mailbox/{{.ID}}.html">HTML</a>{{end}}</td>
</tr>
{{end}}</tbody>
</table>
{{else}}
<p>No mail yet.</p>
{{end}}
</body>
</html>
`))

func (b *Box) serveList(w http.ResponseWriter, r *http.Request) {
	commonHeaders(w)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
	if err := listPage.Execute(w, struct {
		Max     int
		Entries []Entry
	}{MaxEntries, b.List()}); err != nil {
		// Headers are gone; nothing more to tell the client.
		return
	}
}

func (b *Box) serveJSON(w http.ResponseWriter, r *http.Request) {
	commonHeaders(w)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
	entries := b.List()
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(struct {
		Entries []Entry `json:"entries"`
	}{entries})
}

// HTMLPolicy is the Content-Security-Policy of a mail's HTML view: a
// sandbox without scripts, forms or same origin, so mail HTML cannot run
// anything; images load from anywhere, inline styles apply as in a mail
// client.
const HTMLPolicy = "sandbox; default-src 'none'; img-src *; style-src 'unsafe-inline'; frame-ancestors 'none'"

func (b *Box) serveOne(w http.ResponseWriter, r *http.Request) {
	file := r.PathValue("file")
	id, ext, ok := strings.Cut(file, ".")
	if !ok {
		http.NotFound(w, r)
		return
	}
	e, found := b.get(id)
	if !found {
		http.NotFound(w, r)
		return
	}
	commonHeaders(w)
	switch ext {
	case "txt":
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Content-Security-Policy", "sandbox; default-src 'none'; frame-ancestors 'none'")
		fmt.Fprintf(w, "To: %s\nSubject: %s\nMessage-ID: %s\nDate: %s\nKind: %s\n\n%s",
			e.To, e.Subject, e.MessageID, e.Time.Format(time.RFC1123Z), e.Kind, e.Text)
	case "html":
		if e.HTML == "" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Content-Security-Policy", HTMLPolicy)
		w.Write([]byte(e.HTML))
	default:
		http.NotFound(w, r)
	}
}

// The development mailbox shows every link and code Kluis mails, so it must
// never be reachable from outside the developer's machine. The whole rule is
// here, in two halves, for every view of the box:
//
//   - at start ([Allowed]): no SMTP relay, listening on loopback, a loopback
//     http base URL and no trusted reverse proxy. A public base URL or a
//     proxy means the server is (or will be) published, and then there must
//     be a real relay instead;
//   - per request ([Guard], applied by [Box.Handler]): the peer is a loopback
//     address, the request carries no forwarding header (a proxy on the same
//     host connects from loopback too) and it is addressed to a loopback
//     host name (a DNS-rebinding page reaches loopback under its own name):
//     clientip.LocalRequest, the rule of every view that only the machine
//     itself may see.

// Setup is the server configuration [Allowed] decides on.
type Setup struct {
	SMTP           bool           // an SMTP relay is configured
	ListenAddr     string         // the address the server listens on, HOST:PORT
	BaseURL        string         // the public address used in links
	TrustedProxies []netip.Prefix // reverse proxies whose X-Forwarded-For is believed
}

// Allowed reports whether the development mailbox may be used with s; the
// error says what to change.
func Allowed(s Setup) error {
	if s.SMTP {
		return errors.New("the development mailbox is only for use without SMTP, but --smtp is set; mail goes to the relay")
	}
	host := s.ListenAddr
	if h, _, err := net.SplitHostPort(s.ListenAddr); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if !clientip.LoopbackHost(host) {
		shown := host
		if shown == "" {
			shown = "all interfaces"
		}
		return fmt.Errorf("without --smtp, mail is kept in the development mailbox at /dev/mailbox, where anyone who reaches the server can read it; "+
			"that is only allowed when listening on loopback (127.0.0.1, ::1 or localhost), but the listen address %q is %s; "+
			"configure --smtp (and --mail-from) to deliver mail, or listen on 127.0.0.1", s.ListenAddr, shown)
	}
	u, err := url.Parse(s.BaseURL)
	if err != nil || u.Scheme != "http" || !clientip.LoopbackHost(u.Hostname()) {
		return fmt.Errorf("without --smtp, mail is kept in the development mailbox at /dev/mailbox, which is only for a developer's own machine; "+
			"--base-url %q is not a loopback http address (such as http://127.0.0.1:8080, the default), so this looks like a published installation; "+
			"configure --smtp (and --mail-from) to deliver mail", s.BaseURL)
	}
	if len(s.TrustedProxies) > 0 {
		return errors.New("without --smtp, mail is kept in the development mailbox at /dev/mailbox, which is only for a developer's own machine; " +
			"--trusted-proxy is set, so requests arrive through a reverse proxy and the mailbox could be published; " +
			"configure --smtp (and --mail-from) to deliver mail, or remove --trusted-proxy")
	}
	return nil
}

// Guard serves next only to requests made directly on this machine
// (clientip.LocalRequest); others get 403.
func Guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !clientip.LocalRequest(r) {
			commonHeaders(w)
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.WriteHeader(http.StatusForbidden)
			w.Write([]byte("The development mailbox answers only requests made directly on this machine (loopback, no proxy).\n"))
			return
		}
		next.ServeHTTP(w, r)
	})
}
