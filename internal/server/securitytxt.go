package server

import (
	"net/http"
	"net/url"
	"strings"
	"time"
)

// SecurityTxt is the content of /.well-known/security.txt (RFC 9116).
type SecurityTxt struct {
	// Contact is a mailto:, https: or tel: URI. Empty: mailto:security@ the
	// host of the base URL (kluis serve warns that it should be set).
	Contact string
	// Policy is the URL of the vulnerability disclosure policy; optional.
	Policy string
	// Expires is when the file stops being valid. Zero: one year after
	// the handler was made (the process start).
	Expires time.Time
	// Languages defaults to "nl, en".
	Languages string
}

// DefaultSecurityContact is the Contact used when none is configured.
func DefaultSecurityContact(baseURL string) string {
	host := "localhost"
	if u, err := url.Parse(baseURL); err == nil && u.Hostname() != "" {
		host = u.Hostname()
	}
	return "mailto:security@" + host
}

// Text renders the file for a service at baseURL.
func (s SecurityTxt) Text(baseURL string) string {
	contact := s.Contact
	if contact == "" {
		contact = DefaultSecurityContact(baseURL)
	}
	langs := s.Languages
	if langs == "" {
		langs = "nl, en"
	}
	var b strings.Builder
	line := func(k, v string) {
		// Field values are one line: configuration cannot add fields.
		v = strings.NewReplacer("\r", "", "\n", "").Replace(v)
		b.WriteString(k + ": " + v + "\n")
	}
	line("Contact", contact)
	line("Expires", s.Expires.UTC().Format(time.RFC3339))
	line("Preferred-Languages", langs)
	line("Canonical", strings.TrimRight(baseURL, "/")+"/.well-known/security.txt")
	if s.Policy != "" {
		line("Policy", s.Policy)
	}
	return b.String()
}

func (s SecurityTxt) handler(baseURL string) http.Handler {
	if s.Expires.IsZero() {
		s.Expires = time.Now().UTC().Truncate(time.Second).AddDate(1, 0, 0)
	}
	body := []byte(s.Text(baseURL))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "public, max-age=86400")
		w.Write(body)
	})
}
