package config

import (
	"io"
	"strings"
	"testing"
	"time"
)

// The statements' details (issue 13 item 7): set from flags or the
// environment, checked, and reported when missing.
func TestAbout(t *testing.T) {
	t.Parallel()
	c, err := ParseServe([]string{"--org-name", "Gemeente Voorbeeld", "--org-phone", "14 058",
		"--dpo-email", "fg@voorbeeld.nl", "--accessibility-status", "b", "--accessibility-audit-date", "2026-03-01",
		"--accessibility-statement-date", "2026-04-01", "--accessibility-report-url", "https://voorbeeld.nl/rapport.pdf"},
		env(map[string]string{"KLUIS_ORG_EMAIL": "info@voorbeeld.nl", "KLUIS_ORG_URL": "https://voorbeeld.nl/contact"}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	a := c.About
	want := About{Email: "info@voorbeeld.nl", Phone: "14 058", URL: "https://voorbeeld.nl/contact", Controller: "Gemeente Voorbeeld",
		DPOEmail: "fg@voorbeeld.nl", A11yStatus: "B", A11yAuditDate: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC),
		A11yStatementDate: time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC), A11yReportURL: "https://voorbeeld.nl/rapport.pdf"}
	if a != want {
		t.Fatalf("got %+v\nwant %+v", a, want)
	}
	if m := a.Missing(time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)); len(m) != 0 {
		t.Errorf("nothing is missing, yet: %q", m)
	}
	if m := a.Missing(time.Date(2029, 3, 2, 0, 0, 0, 0, time.UTC)); len(m) != 1 || !strings.Contains(m[0], "three years") {
		t.Errorf("an audit older than three years: %q", m)
	}

	c, err = ParseServe([]string{"--controller", "College van B&W"}, env(nil), io.Discard)
	if err != nil || c.About.Controller != "College van B&W" {
		t.Fatalf("controller: %q, %v", c.About.Controller, err)
	}

	// The defaults say plainly what is not configured.
	c, err = ParseServe(nil, env(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.About.Controller != "Kluis" {
		t.Errorf("controller defaults to --org-name: %q", c.About.Controller)
	}
	m := strings.Join(c.About.Missing(time.Now()), "\n")
	for _, flag := range []string{"--org-email", "--dpo-email", "--accessibility-status", "--accessibility-statement-date"} {
		if !strings.Contains(m, flag) {
			t.Errorf("the warnings do not name %s:\n%s", flag, m)
		}
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--org-email", "Info <info@voorbeeld.nl>"}, "just the address"},
		{[]string{"--dpo-email", "fg"}, "just the address"},
		{[]string{"--org-phone", "bel ons"}, "in digits"},
		{[]string{"--dpo-phone", "+31 58 1234 5678 ext. 9"}, "in digits"},
		{[]string{"--org-url", "http://voorbeeld.nl"}, "https URL"},
		{[]string{"--controller", "a\nb"}, "one line"},
		{[]string{"--accessibility-status", "E"}, "A, B, C or D"},
		{[]string{"--accessibility-status", "A"}, "needs --accessibility-audit-date"},
		{[]string{"--accessibility-statement-date", "2999-01-01"}, "in the future"},
		{[]string{"--accessibility-audit-date", "gisteren"}, "not a date"},
		{[]string{"--accessibility-report-url", "https://voorbeeld.nl/r.pdf"}, "needs --accessibility-audit-date"},
	} {
		_, err := ParseServe(tc.args, env(nil), io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseServe(%q) = %v, want an error mentioning %q", tc.args, err, tc.want)
		}
	}
}
