package config

import (
	"errors"
	"fmt"
	"net/mail"
	"net/url"
	"regexp"
	"strings"
	"time"
)

// About is what the privacy statement (AVG article 13) and the
// accessibility statement say about the organisation. Every field may be
// empty; Missing lists what is.
type About struct {
	Email, Phone, URL  string // the organisation's contact
	Controller         string // the controller; ParseServe sets --org-name when empty
	DPOEmail, DPOPhone string // the data protection officer

	A11yStatus        string    // "", A, B, C or D (the model statement's status)
	A11yStatementDate time.Time // zero: not given
	A11yAuditDate     time.Time // zero: no audit
	A11yReportURL     string
}

// a11yAuditValid is how long an audit supports status A or B in the model
// statement (digitoegankelijk.nl: at most three years old).
const a11yAuditValid = 3 * 365 * 24 * time.Hour

var phoneRE = regexp.MustCompile(`^\+?[0-9][0-9 ()-]{2,22}[0-9]$`)

func (a *About) validate(orgName string, now time.Time) error {
	for _, f := range []struct{ flag, v string }{{"--org-email", a.Email}, {"--dpo-email", a.DPOEmail}} {
		if f.v == "" {
			continue
		}
		if m, err := mail.ParseAddress(f.v); err != nil || m.Address != f.v || m.Name != "" {
			return fmt.Errorf("%s %q: give just the address, such as privacy@gemeente.example.nl", f.flag, f.v)
		}
	}
	for _, f := range []struct{ flag, v string }{{"--org-phone", a.Phone}, {"--dpo-phone", a.DPOPhone}} {
		if f.v != "" && !phoneRE.MatchString(f.v) {
			return fmt.Errorf("%s %q: give the number in digits, spaces and dashes, such as 14 058 or +31 58 123 4567", f.flag, f.v)
		}
	}
	for _, f := range []struct{ flag, v string }{{"--org-url", a.URL}, {"--accessibility-report-url", a.A11yReportURL}} {
		if f.v == "" {
			continue
		}
		if u, err := url.Parse(f.v); err != nil || u.Scheme != "https" || u.Host == "" || strings.ContainsAny(f.v, " \r\n") {
			return fmt.Errorf("%s %q: give an absolute https URL", f.flag, f.v)
		}
	}
	if strings.ContainsAny(a.Controller, "\r\n") || len(a.Controller) > 200 {
		return errors.New("--controller: give a name on one line, at most 200 characters")
	}
	if a.Controller == "" {
		a.Controller = orgName
	}
	a.A11yStatus = strings.ToUpper(strings.TrimSpace(a.A11yStatus))
	switch a.A11yStatus {
	case "", "C", "D":
	case "A", "B":
		if a.A11yAuditDate.IsZero() {
			return fmt.Errorf("--accessibility-status %s needs --accessibility-audit-date: status A and B rest on an audit of all requirements (WCAG-EM) at most three years old", a.A11yStatus)
		}
	default:
		return fmt.Errorf("--accessibility-status %q: give A, B, C or D, as in the model accessibility statement", a.A11yStatus)
	}
	for _, f := range []struct {
		flag string
		v    time.Time
	}{{"--accessibility-statement-date", a.A11yStatementDate}, {"--accessibility-audit-date", a.A11yAuditDate}} {
		if f.v.After(now) {
			return fmt.Errorf("%s %s is in the future: give the day it happened", f.flag, f.v.Format("2006-01-02"))
		}
	}
	if a.A11yReportURL != "" && a.A11yAuditDate.IsZero() {
		return errors.New("--accessibility-report-url needs --accessibility-audit-date: the day of the audit it reports")
	}
	return nil
}

// Missing returns one sentence per statement detail that is not
// configured, for the warnings at start: each says what the page shows
// instead and which flag to set.
func (a *About) Missing(now time.Time) []string {
	var out []string
	if a.Email == "" && a.Phone == "" && a.URL == "" {
		out = append(out, "no organisation contact configured: the privacy and accessibility statements say contact details are not configured; set --org-email, --org-phone or --org-url")
	}
	if a.DPOEmail == "" && a.DPOPhone == "" {
		out = append(out, "no data protection officer configured: the privacy statement says so; set --dpo-email or --dpo-phone (AVG article 13(1)(b))")
	}
	if a.A11yStatus == "" {
		out = append(out, "no --accessibility-status configured: the accessibility statement says no compliance status has been determined")
	}
	if a.A11yStatementDate.IsZero() {
		out = append(out, "no --accessibility-statement-date configured: the accessibility statement gives no date")
	}
	if (a.A11yStatus == "A" || a.A11yStatus == "B") && now.Sub(a.A11yAuditDate) > a11yAuditValid {
		out = append(out, "--accessibility-audit-date is more than three years ago: status "+a.A11yStatus+" needs a newer audit")
	}
	return out
}
