package web

import (
	"html"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
)

// statementItem returns the text of the element with attr="name" on a
// page, tags removed and entities decoded.
func statementItem(t *testing.T, body, attr, name string) string {
	t.Helper()
	m := regexp.MustCompile(`(?s)` + attr + `="` + regexp.QuoteMeta(name) + `">(.*?)</(li|p)>`).FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no %s=%q on the page", attr, name)
	}
	return html.UnescapeString(regexp.MustCompile(`<[^>]*>`).ReplaceAllString(m[1], ""))
}

func getPage(t *testing.T, c *http.Client, url, lang string) string {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("Accept-Language", lang)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d", url, resp.StatusCode)
	}
	return string(b)
}

// Issue 13 item 7: the privacy and accessibility statements show the
// organisation, its contacts, controller, data protection officer and the
// accessibility status and dates as configured, and every period the
// privacy statement gives follows the flag that sets it.
func TestStatementsShowTheConfiguration(t *testing.T) {
	a := startApp(t, TestAppOptions{Args: []string{
		"--default-expiry", "3d", "--max-expiry", "9d", "--retention", "45d", "--audit-retention", "200d",
		"--session-ttl", "2d", "--verify-ttl", "12d",
		"--org-email", "info@voorbeeld.example.nl", "--org-phone", "+31 58 123 4567", "--org-url", "https://voorbeeld.example.nl/contact",
		"--controller", "College van burgemeester en wethouders van Voorbeeld",
		"--dpo-email", "fg@voorbeeld.example.nl", "--dpo-phone", "14 058",
		"--accessibility-status", "B", "--accessibility-audit-date", "2026-03-02",
		"--accessibility-statement-date", "2026-04-15", "--accessibility-report-url", "https://voorbeeld.example.nl/rapport.pdf",
	}})
	c := &http.Client{}
	for _, tc := range []struct {
		lang                                           string
		content, record, audit, download, sender, code []string
		status, statementDate                          string
		notOld                                         []string
	}{
		{lang: "nl",
			content: []string{"normaal 3 dagen", "hoogstens 9 dagen"}, record: []string{"nog 45 dagen"}, audit: []string{"200 dagen"},
			download: []string{"hoogstens 2 dagen"}, sender: []string{"12 dagen lang"}, code: []string{"10 minuten"},
			status: "Status B", statementDate: "15 april 2026",
			notOld: []string{"nog niet mogelijk"}},
		{lang: "en",
			content: []string{"normally 3 days", "at most 9 days"}, record: []string{"for 45 days"}, audit: []string{"for 200 days"},
			download: []string{"at most 2 days"}, sender: []string{"for 12 days"}, code: []string{"10 minutes"},
			status: "Status B", statementDate: "15 April 2026",
			notOld: []string{"not possible yet"}},
	} {
		p := getPage(t, c, a.URL+"/privacy", tc.lang)
		for item, want := range map[string][]string{"content": tc.content, "record": tc.record, "audit": tc.audit,
			"cookie-download": tc.download, "cookie-sender": tc.sender, "code": tc.code} {
			got := statementItem(t, p, "data-retention", item)
			for _, w := range want {
				if !strings.Contains(got, w) {
					t.Errorf("privacy (%s), %s: %q does not say %q", tc.lang, item, got, w)
				}
			}
		}
		for _, want := range []string{"College van burgemeester en wethouders van Voorbeeld", `href="mailto:info@voorbeeld.example.nl"`,
			`href="tel:+31581234567"`, `href="https://voorbeeld.example.nl/contact"`, `href="mailto:fg@voorbeeld.example.nl"`,
			`href="tel:14058"`, "autoriteitpersoonsgegevens.nl"} {
			if !strings.Contains(html.UnescapeString(p), want) {
				t.Errorf("privacy (%s): no %q", tc.lang, want)
			}
		}
		if strings.Contains(p, "data-not-configured") {
			t.Errorf("privacy (%s) says something is not configured", tc.lang)
		}

		s := getPage(t, c, a.URL+"/accessibility", tc.lang)
		if got := statementItem(t, s, "data-status", "B"); !strings.Contains(got, tc.status) || !strings.Contains(got, "2026") {
			t.Errorf("accessibility (%s): status %q", tc.lang, got)
		}
		for _, want := range []string{tc.statementDate, `href="https://voorbeeld.example.nl/rapport.pdf"`, `href="mailto:info@voorbeeld.example.nl"`,
			"nationaleombudsman.nl", strings.TrimPrefix(a.URL, "http://")} {
			if !strings.Contains(s, want) {
				t.Errorf("accessibility (%s): no %q", tc.lang, want)
			}
		}
		for _, old := range tc.notOld {
			if strings.Contains(s, old) {
				t.Errorf("accessibility (%s) still claims %q", tc.lang, old)
			}
		}
	}
}

// Without configuration the statements say plainly what is missing, give
// the defaults' periods, and never claim that sending does not work or
// that no page needs JavaScript.
func TestStatementsSayWhatIsNotConfigured(t *testing.T) {
	a := startApp(t, TestAppOptions{})
	c := &http.Client{}
	for _, lang := range []string{"nl", "en"} {
		p := getPage(t, c, a.URL+"/privacy", lang)
		for _, what := range []string{"contact", "dpo"} {
			statementItem(t, p, "data-not-configured", what)
		}
		if !strings.Contains(p, "Gemeente Voorbeeld") {
			t.Errorf("privacy (%s): the controller defaults to the organisation name", lang)
		}
		days := map[string]string{"nl": " dagen", "en": " days"}[lang]
		for item, n := range map[string]string{"content": "7", "record": "30", "audit": "365", "cookie-sender": "30"} {
			if got := statementItem(t, p, "data-retention", item); !strings.Contains(got, n+days) {
				t.Errorf("privacy (%s), %s: %q does not give the default %s%s", lang, item, got, n, days)
			}
		}
		s := getPage(t, c, a.URL+"/accessibility", lang)
		statementItem(t, s, "data-not-configured", "contact")
		if got := statementItem(t, s, "data-status", ""); !strings.Contains(got, "Gemeente Voorbeeld") {
			t.Errorf("accessibility (%s): status without configuration: %q", lang, got)
		}
		js := statementItem(t, s, "data-claim", "javascript")
		for _, bad := range []string{"Sending files from the website is not possible", "Versturen vanaf de website is nog niet mogelijk", "The pages also work without JavaScript", "De pagina’s werken ook zonder JavaScript"} {
			if strings.Contains(s, bad) {
				t.Errorf("accessibility (%s) claims %q", lang, bad)
			}
		}
		if !strings.Contains(js, "JavaScript") {
			t.Errorf("accessibility (%s): javascript claim %q", lang, js)
		}
	}
}
