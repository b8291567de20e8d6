package server

import (
	"fmt"
	"math"
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
	// Expires is when the file stops being valid (--security-txt-expires).
	// Zero: DefaultSecurityTxtExpires at the time the handler is made.
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

// DefaultSecurityTxtExpires is the Expires used when none is configured:
// the start of now's day (UTC) plus a year. It is fixed for the life of the
// process and the same for every instance started on one day, but it moves
// with each restart, so it says nothing about anyone having checked the
// contact: configure the date instead.
func DefaultSecurityTxtExpires(now time.Time) time.Time {
	return now.UTC().Truncate(24*time.Hour).AddDate(1, 0, 0)
}

// ExpiresProblem describes what is wrong with s.Expires at now, for the
// start-up log: expired (then expired is true), less than 30 days away, or
// more than a year ahead (RFC 9116 advises less). "" when it is fine.
func (s SecurityTxt) ExpiresProblem(now time.Time) (msg string, expired bool) {
	when := s.Expires.UTC().Format(time.RFC3339)
	if s.Expires.UTC().Truncate(24 * time.Hour).Equal(s.Expires.UTC()) {
		when = s.Expires.UTC().Format("2006-01-02")
	}
	left := s.Expires.Sub(now)
	switch {
	case left <= 0:
		return "security.txt expired on " + when + ": finders of a vulnerability are told to distrust its contact details; check them and set --security-txt-expires to a date up to a year ahead", true
	case left < 30*24*time.Hour:
		days := int(math.Round(left.Hours() / 24))
		return fmt.Sprintf("security.txt expires in %d days (on %s): check its contact details and set --security-txt-expires to a date up to a year ahead", days, when), false
	case left > 366*24*time.Hour:
		return "security.txt Expires " + when + " is more than a year ahead; RFC 9116 advises less, so that the contact details are checked at least yearly: set --security-txt-expires to a date less than a year ahead", false
	}
	return "", false
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
		s.Expires = DefaultSecurityTxtExpires(time.Now())
	}
	body := []byte(s.Text(baseURL))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "public, max-age=86400")
		w.Write(body)
	})
}
