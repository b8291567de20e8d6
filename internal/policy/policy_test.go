package policy

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kluis-nl/kluis"
)

const orgPolicy = `{
  "organisation_domains": ["gemeente.nl", "Gemeente-Twee.NL"],
  "defaults": {"max_transfer_size": "2GB", "default_expiry": "7d", "max_expiry": "30d", "max_recipients": 20},
  "rules": [
    {"name": "no private mail", "description": "Send to a work address instead",
     "senders": ["domain:gemeente.nl"], "recipients": ["gmail.com", "hotmail.com"], "action": "deny"},
    {"name": "blocked sender", "senders": ["spammer@extern.nl"], "action": "deny"},
    {"name": "care", "recipients": ["*@*.zorg.nl"], "action": "allow",
     "limits": {"password_modes": ["manual"], "allow_show_filenames": false, "max_expiry": "14d", "max_transfer_size": "1GB"}},
    {"name": "suppliers", "senders": ["*.leverancier.nl"], "recipients": ["gemeente.nl"], "action": "allow",
     "limits": {"allow_message": false, "max_transfer_size": 5000000000}},
    {"name": "partner", "senders": ["inkoop@partner.nl"], "action": "allow", "limits": {"allow_custom_text": false, "max_recipients": 2}}
  ]
}`

func mustParse(t *testing.T, s string) *Policy {
	t.Helper()
	p, err := Parse([]byte(s))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return p
}

func TestDecide(t *testing.T) {
	p := mustParse(t, orgPolicy)
	tests := []struct {
		name       string
		sender     string
		recipients []string
		// want is "" for allowed, else substrings of the refusal.
		want  []string
		rules []string
	}{
		// The relay test: outside to outside is refused, by the default rule.
		{"outside to outside", "a@extern.nl", []string{"b@elders.nl"},
			[]string{"a@extern.nl", "b@elders.nl", "default rule", "gemeente.nl, gemeente-twee.nl"}, nil},
		{"inside to outside", "medewerker@gemeente.nl", []string{"b@elders.nl"}, nil, []string{""}},
		{"outside to inside", "a@extern.nl", []string{"medewerker@gemeente.nl"}, nil, []string{""}},
		{"second organisation domain", "a@extern.nl", []string{"x@gemeente-twee.nl"}, nil, []string{""}},
		{"subdomain is inside", "a@extern.nl", []string{"x@afdeling.gemeente.nl"}, nil, []string{""}},
		{"lookalike domain is outside", "a@extern.nl", []string{"x@nepgemeente.nl"}, []string{"x@nepgemeente.nl", "default rule"}, nil},
		{"parent domain is outside", "a@extern.nl", []string{"x@nl.example"}, []string{"x@nl.example"}, nil},
		{"outside to mixed names the outside recipient", "a@extern.nl", []string{"m@gemeente.nl", "b@elders.nl"},
			[]string{"to b@elders.nl", "default rule"}, nil},
		{"several refused are all named", "a@extern.nl", []string{"b@elders.nl", "c@elders.nl", "m@gemeente.nl"},
			[]string{"to b@elders.nl", "Also refused: c@elders.nl."}, nil},
		{"address case does not matter", "A@EXTERN.NL", []string{"Medewerker@Gemeente.NL"}, nil, []string{""}},
		{"deny rule names rule and description", "medewerker@gemeente.nl", []string{"iemand@gmail.com"},
			[]string{"medewerker@gemeente.nl", "iemand@gmail.com", `rule "no private mail"`, "Send to a work address instead."}, nil},
		{"deny rule also for subdomain sender", "x@afdeling.gemeente.nl", []string{"iemand@hotmail.com"}, []string{`rule "no private mail"`}, nil},
		{"deny rule does not hit other senders", "a@gemeente-twee.nl", []string{"iemand@gmail.com"}, nil, []string{""}},
		{"deny by sender", "spammer@extern.nl", []string{"m@gemeente.nl"}, []string{`rule "blocked sender"`, "spammer@extern.nl"}, nil},
		{"address glob allows outside to outside", "a@extern.nl", []string{"arts@huisarts.zorg.nl"}, nil, []string{"care"}},
		{"address glob needs a subdomain", "a@extern.nl", []string{"arts@zorg.nl"}, []string{"arts@zorg.nl"}, nil},
		{"domain glob", "verkoop@bouw.leverancier.nl", []string{"m@gemeente.nl"}, nil, []string{"suppliers"}},
		{"first match decides", "medewerker@gemeente.nl", []string{"iemand@gmail.com", "arts@huisarts.zorg.nl"}, []string{`rule "no private mail"`}, nil},
		{"rules and default together", "inkoop@partner.nl", []string{"m@gemeente.nl", "arts@x.zorg.nl"}, nil, []string{"partner", "care"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// Refuses names exactly the recipients Decide refuses, and
			// what refused them.
			anyRefused := false
			for _, r := range tc.recipients {
				by, refused := p.Refuses(tc.sender, r)
				_, one := p.Decide(tc.sender, []string{r})
				if refused != (one != nil) {
					t.Errorf("Refuses(%s, %s) = %v, Decide says %v", tc.sender, r, refused, one)
				}
				if refused && !strings.Contains(kluis.ErrorMessage(one), strings.TrimPrefix(by, "the ")) {
					t.Errorf("Refuses names %q, Decide %q", by, kluis.ErrorMessage(one))
				}
				anyRefused = anyRefused || refused
			}
			if anyRefused != (tc.want != nil) {
				t.Errorf("Refuses refused some: %v, want %v", anyRefused, tc.want != nil)
			}
			d, err := p.Decide(tc.sender, tc.recipients)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if !slices.Equal(d.Rules, tc.rules) {
					t.Errorf("rules %q, want %q", d.Rules, tc.rules)
				}
				if d.Demo {
					t.Error("Demo with organisation domains")
				}
				return
			}
			if err == nil {
				t.Fatalf("allowed, want a refusal")
			}
			if kluis.ErrorCode(err) != kluis.EPOLICY {
				t.Errorf("code %s, want policy", kluis.ErrorCode(err))
			}
			msg := kluis.ErrorMessage(err)
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("message %q does not contain %q", msg, w)
				}
			}
		})
	}
}

func TestDecideLimits(t *testing.T) {
	p := mustParse(t, orgPolicy)
	// Defaults only.
	d, err := p.Decide("m@gemeente.nl", []string{"x@elders.nl"})
	if err != nil {
		t.Fatal(err)
	}
	want := Limits{MaxTransferSize: 2e9, DefaultExpiry: 7 * 24 * time.Hour, MaxExpiry: 30 * 24 * time.Hour,
		PasswordModes: AllPasswordModes(), AllowMessage: true, AllowCustomText: true, AllowShowFilenames: true, MaxRecipients: 20}
	if !equalLimits(d.Limits, want) {
		t.Errorf("defaults: %+v, want %+v", d.Limits, want)
	}
	if d.Source(FieldMaxRecipients) != "the default limits" {
		t.Errorf("source %q", d.Source(FieldMaxRecipients))
	}
	// A rule overrides the defaults, and may raise them.
	d, err = p.Decide("verkoop@bouw.leverancier.nl", []string{"m@gemeente.nl"})
	if err != nil {
		t.Fatal(err)
	}
	if d.Limits.MaxTransferSize != 5e9 || d.Limits.AllowMessage || d.Source(FieldAllowMessage) != `rule "suppliers"` {
		t.Errorf("suppliers: %+v %q", d.Limits, d.Source(FieldAllowMessage))
	}
	// Several recipients: the strictest over all of them.
	d, err = p.Decide("inkoop@partner.nl", []string{"m@gemeente.nl", "arts@x.zorg.nl"})
	if err != nil {
		t.Fatal(err)
	}
	want = Limits{MaxTransferSize: 1e9, DefaultExpiry: 7 * 24 * time.Hour, MaxExpiry: 14 * 24 * time.Hour,
		PasswordModes: []kluis.PasswordMode{kluis.PasswordManual}, AllowMessage: true, AllowCustomText: false, AllowShowFilenames: false, MaxRecipients: 2}
	if !equalLimits(d.Limits, want) {
		t.Errorf("combined: %+v, want %+v", d.Limits, want)
	}
	for f, src := range map[string]string{FieldMaxTransferSize: `rule "care"`, FieldPasswordModes: `rule "care"`, FieldAllowCustomText: `rule "partner"`, FieldMaxRecipients: `rule "partner"`} {
		if d.Source(f) != src {
			t.Errorf("source of %s: %q, want %q", f, d.Source(f), src)
		}
	}
	// The server's ceiling: stricter server settings win and lose their source.
	d.Cap(Limits{MaxTransferSize: 5e8, DefaultExpiry: 3 * 24 * time.Hour, MaxExpiry: 60 * 24 * time.Hour, PasswordModes: AllPasswordModes(),
		AllowMessage: true, AllowCustomText: true, AllowShowFilenames: true, MaxRecipients: 50})
	if d.Limits.MaxTransferSize != 5e8 || d.Source(FieldMaxTransferSize) != "" {
		t.Errorf("cap size: %d %q", d.Limits.MaxTransferSize, d.Source(FieldMaxTransferSize))
	}
	if d.Limits.MaxExpiry != 14*24*time.Hour || d.Source(FieldMaxExpiry) != `rule "care"` || d.Limits.DefaultExpiry != 3*24*time.Hour {
		t.Errorf("cap expiry: %+v", d.Limits)
	}
}

func equalLimits(a, b Limits) bool {
	return a.MaxTransferSize == b.MaxTransferSize && a.DefaultExpiry == b.DefaultExpiry && a.MaxExpiry == b.MaxExpiry &&
		slices.Equal(a.PasswordModes, b.PasswordModes) && a.AllowMessage == b.AllowMessage && a.AllowCustomText == b.AllowCustomText &&
		a.AllowShowFilenames == b.AllowShowFilenames && a.MaxRecipients == b.MaxRecipients
}

func TestDemo(t *testing.T) {
	for name, p := range map[string]*Policy{"Default": Default(), "nil": nil, "empty file": mustParse(t, `{}`),
		"limits only": mustParse(t, `{"defaults": {"max_recipients": 3}}`)} {
		if !p.Demo() {
			t.Errorf("%s: not Demo", name)
		}
		d, err := p.Decide("a@extern.nl", []string{"b@elders.nl", "c@nog-ergens.com"})
		if err != nil {
			t.Fatalf("%s: demo refused outside to outside: %v", name, err)
		}
		if !d.Demo || !slices.Equal(d.Limits.PasswordModes, AllPasswordModes()) || !d.Limits.AllowMessage || !d.Limits.AllowCustomText || !d.Limits.AllowShowFilenames {
			t.Errorf("%s: %+v", name, d)
		}
	}
	if l := Default().Defaults(); l.MaxTransferSize != 0 || l.MaxRecipients != 0 || len(l.PasswordModes) != 3 {
		t.Errorf("Default limits %+v: the server's settings should apply", l)
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"empty", ``, "the file is empty"},
		{"not an object", `[]`, "must be a JSON object"},
		{"syntax", "{\n  \"rules\": [,]\n}", "line 2, column 13"},
		{"truncated", `{"rules": [`, "ends in the middle"},
		{"two objects", `{} {}`, "exactly one object"},
		{"unknown top", `{"organisation_domain": []}`, `organisation_domain: unknown setting "organisation_domain"; known settings here are organisation_domains, sso_domains, defaults, rules`},
		{"unknown limit", `{"defaults": {"max_size": 1}}`, `defaults.max_size: unknown setting`},
		{"unknown in rule", `{"rules": [{"name": "a", "action": "allow", "sender": ["x.nl"]}]}`, `rules[0].sender: unknown setting`},
		{"bad domain", `{"organisation_domains": ["gemeente"]}`, `organisation_domains[0]: "gemeente" is not a domain`},
		{"domain with at", `{"organisation_domains": ["a@gemeente.nl"]}`, `organisation_domains[0]`},
		{"duplicate domain", `{"organisation_domains": ["gemeente.nl", "GEMEENTE.nl"]}`, `organisation_domains[1]: "gemeente.nl" is listed twice`},
		{"bad glob", `{"rules": [{"name": "a", "action": "allow", "recipients": ["*@[zorg.nl"]}]}`, `rules[0].recipients[0]: "*@[zorg.nl" is not a valid pattern`},
		{"bad address", `{"rules": [{"name": "a", "action": "deny", "senders": ["a@@b.nl"]}]}`, `rules[0].senders[0]: "a@@b.nl" is not a valid e-mail address`},
		{"empty pattern", `{"rules": [{"name": "a", "action": "deny", "senders": [""]}]}`, `rules[0].senders[0]: the pattern is empty`},
		{"pattern with space", `{"rules": [{"name": "a", "action": "deny", "senders": ["a b.nl"]}]}`, `rules[0].senders[0]: "a b.nl" contains a space`},
		{"patterns not a list", `{"rules": [{"name": "a", "action": "deny", "senders": "x.nl"}]}`, `rules[0].senders: must be a list`},
		{"bad size", `{"defaults": {"max_transfer_size": "2 gigabytes"}}`, `defaults.max_transfer_size: "2 gigabytes" is not a size; write for example 2GB`},
		{"zero size", `{"defaults": {"max_transfer_size": 0}}`, `defaults.max_transfer_size: must be at least 1 byte`},
		{"fraction of a byte", `{"defaults": {"max_transfer_size": 1.5}}`, `defaults.max_transfer_size: must be a size`},
		{"bad duration", `{"defaults": {"max_expiry": "a week"}}`, `defaults.max_expiry: "a week" is not a duration`},
		{"duration as number", `{"defaults": {"max_expiry": 7}}`, `defaults.max_expiry: must be a duration in quotes`},
		{"too short", `{"defaults": {"max_expiry": "5m"}}`, `defaults.max_expiry: "5m" is too short`},
		{"default over max", `{"defaults": {"default_expiry": "14d", "max_expiry": "7d"}}`, `defaults.default_expiry: 14d is longer than max_expiry (7d)`},
		{"rule default over default max", `{"defaults": {"max_expiry": "7d"}, "rules": [{"name": "a", "action": "allow", "limits": {"default_expiry": "10d"}}]}`,
			`rules[0].limits.default_expiry: 10d is longer than the default max_expiry (7d)`},
		{"unknown password mode", `{"defaults": {"password_modes": ["none", "sms"]}}`, `defaults.password_modes[1]: "sms" is not a password mode; choose none, generate or manual`},
		{"no password mode", `{"defaults": {"password_modes": []}}`, `defaults.password_modes: allow at least one password mode`},
		{"twice password mode", `{"defaults": {"password_modes": ["manual", "manual"]}}`, `defaults.password_modes[1]: "manual" is listed twice`},
		{"bool in quotes", `{"defaults": {"allow_message": "no"}}`, `defaults.allow_message: must be true or false`},
		{"recipients zero", `{"defaults": {"max_recipients": 0}}`, `defaults.max_recipients: must be a whole number from 1`},
		{"no name", `{"rules": [{"action": "allow"}]}`, `rules[0].name: every rule needs a name`},
		{"duplicate names", `{"rules": [{"name": "Extern", "action": "allow"}, {"name": "extern", "action": "deny"}]}`, `rules[1].name: the name "extern" is already used by rules[0]`},
		{"no action", `{"rules": [{"name": "a"}]}`, `rules[0].action: missing; write "action": "allow" or "action": "deny"`},
		{"bad action", `{"rules": [{"name": "a", "action": "block"}]}`, `rules[0].action: "block" is not an action`},
		{"deny with limits", `{"rules": [{"name": "a", "action": "deny", "limits": {"max_recipients": 1}}]}`, `rules[0].limits: a deny rule has no limits`},
		{"rules not a list", `{"rules": {"name": "a"}}`, `rules: must be a list of rules`},
		{"rule not an object", `{"rules": ["a"]}`, `rules[0]: must be an object`},
		{"name with line break", `{"rules": [{"name": "a\nb", "action": "allow"}]}`, `rules[0].name: must not contain line breaks`},
		{"not utf-8", "{\"rules\": [{\"name\": \"\xff\", \"action\": \"allow\"}]}", "not valid UTF-8"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.in))
			if err == nil {
				t.Fatalf("Parse(%q) succeeded", tc.in)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q\ndoes not contain %q", err, tc.want)
			}
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Errorf("error is %T, want *ParseError", err)
			}
		})
	}
}

func TestParseNormalises(t *testing.T) {
	p := mustParse(t, `{"organisation_domains": ["  Gemeente.NL ", "domain:bücher.de"],
		"rules": [{"name": "x", "action": "allow", "senders": ["Piet@Gemeente.NL", "DOMAIN:Zorg.NL", "*@*.Zorg.nl"], "limits": {"password_modes": ["manual", "none"], "max_transfer_size": "1.5GB"}}]}`)
	if !slices.Equal(p.Domains(), []string{"gemeente.nl", "xn--bcher-kva.de"}) {
		t.Errorf("domains %q", p.Domains())
	}
	if !p.Inside("x@B.BÜCHER.de") && !p.Inside("x@b.xn--bcher-kva.de") {
		t.Error("subdomain of an IDN domain is not inside")
	}
	b, err := p.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	compact := strings.Join(strings.Fields(string(b)), "")
	for _, w := range []string{`"piet@gemeente.nl"`, `"domain:zorg.nl"`, `"*@*.zorg.nl"`, `["none","manual"]`, `"max_transfer_size":1500000000`} {
		if !strings.Contains(compact, w) {
			t.Errorf("Marshal lacks %s:\n%s", w, b)
		}
	}
}

func TestMarshalRoundTrip(t *testing.T) {
	for _, in := range []string{orgPolicy, `{}`, exampleFile(t), `{"organisation_domains": ["a.nl"], "sso_domains": []}`, `{"sso_domains": ["b.nl"]}`} {
		p := mustParse(t, in)
		b, err := p.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		q, err := Parse(b)
		if err != nil {
			t.Fatalf("Parse(Marshal): %v\n%s", err, b)
		}
		b2, _ := q.Marshal()
		if !bytes.Equal(b, b2) {
			t.Errorf("round trip differs:\n%s\n%s", b, b2)
		}
	}
}

func exampleFile(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../../docs/policy.example.json")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// The example in docs/ is valid and does what its descriptions say.
func TestExampleFile(t *testing.T) {
	p := mustParse(t, exampleFile(t))
	if p.Demo() {
		t.Fatal("the example is a demo policy")
	}
	if _, err := p.Decide("a@extern.nl", []string{"b@elders.nl"}); kluis.ErrorCode(err) != kluis.EPOLICY {
		t.Errorf("example is an open relay: %v", err)
	}
	if _, err := p.Decide("m@gemeente-voorbeeld.nl", []string{"b@gmail.com"}); err == nil || !strings.Contains(err.Error(), "no private mailboxes") {
		t.Errorf("private mailbox: %v", err)
	}
	d, err := p.Decide("burger@gmail.com", []string{"info@gemeente-voorbeeld.nl"})
	if err != nil || d.Limits.MaxRecipients != 1 || d.Limits.AllowCustomText {
		t.Errorf("citizens: %+v %v", d, err)
	}
	var buf bytes.Buffer
	p.Describe(&buf)
	if !strings.Contains(buf.String(), `"care partners": allow from anyone to *@*.zorg.nl, domain:zorgkantoor.nl`) {
		t.Errorf("Describe:\n%s", buf.String())
	}
}

func TestHolderReload(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "policy.json")
	write := func(s string) {
		if err := os.WriteFile(file, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	h := NewHolder(nil)
	if !h.Get().Demo() {
		t.Fatal("a new holder without a policy is not the demo policy")
	}
	write(`{"organisation_domains": ["gemeente.nl"]}`)
	if err := h.Reload(file); err != nil {
		t.Fatal(err)
	}
	good := h.Get()
	if good.Demo() {
		t.Fatal("reload did not apply")
	}
	write(`{"organisation_domains": ["gemeente.nl"], "rules": [{"name": "x"}]}`)
	err := h.Reload(file)
	if err == nil || !strings.Contains(err.Error(), "rules[0].action") || !strings.Contains(err.Error(), file) {
		t.Fatalf("bad reload: %v", err)
	}
	if h.Get() != good {
		t.Fatal("a bad file replaced the policy in force")
	}
	os.Remove(file)
	if err := h.Reload(file); err == nil || h.Get() != good {
		t.Fatalf("missing file: %v", err)
	}
	write(strings.Repeat(" ", MaxFileSize+1))
	if err := h.Reload(file); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("huge file: %v", err)
	}
}

// The quotas (issue 11, item 6): defaults when the file names none, the
// strictest over a transfer's recipients, and only sensible values.
func TestQuotaLimits(t *testing.T) {
	d, err := Default().Decide("a@x.nl", []string{"b@y.nl"})
	if err != nil {
		t.Fatal(err)
	}
	if l := d.Limits; l.MaxOpenDrafts != DefaultMaxOpenDrafts || l.MaxBytesPerDay != DefaultMaxBytesPerDay || l.MaxReplies != DefaultMaxReplies {
		t.Errorf("defaults without a file: %+v", l)
	}
	p := mustParse(t, `{
		"defaults": {"max_open_drafts": 5, "max_bytes_per_day": "1GB", "max_replies": 3},
		"rules": [
			{"name": "scanner", "senders": ["scan@x.nl"], "action": "allow", "limits": {"max_open_drafts": 500, "max_bytes_per_day": "200GB"}},
			{"name": "strict", "recipients": ["y.nl"], "action": "allow", "limits": {"max_replies": 1}}
		]}`)
	d, err = p.Decide("scan@x.nl", []string{"b@z.nl"})
	if err != nil || d.Limits.MaxOpenDrafts != 500 || d.Limits.MaxBytesPerDay != 200_000_000_000 || d.Limits.MaxReplies != 3 {
		t.Errorf("scanner rule: %+v %v", d, err)
	}
	d, err = p.Decide("a@x.nl", []string{"b@z.nl", "c@y.nl"})
	if err != nil || d.Limits.MaxOpenDrafts != 5 || d.Limits.MaxBytesPerDay != 1_000_000_000 || d.Limits.MaxReplies != 1 || d.Source(FieldMaxReplies) != `rule "strict"` {
		t.Errorf("strictest over recipients: %+v %v", d, err)
	}
	for _, bad := range []string{
		`{"defaults": {"max_open_drafts": 0}}`,
		`{"defaults": {"max_replies": "ten"}}`,
		`{"defaults": {"max_bytes_per_day": "lots"}}`,
		`{"defaults": {"max_bytes_per_day": 0}}`,
	} {
		if _, err := Parse([]byte(bad)); err == nil {
			t.Errorf("%s: accepted", bad)
		}
	}
	var b strings.Builder
	p.Describe(&b)
	if !strings.Contains(b.String(), "5 unfinished transfers at once, 1.00 GB of files a day; 3 replies") {
		t.Errorf("describe:\n%s", b.String())
	}
}

func TestSSODomains(t *testing.T) {
	for _, tc := range []struct {
		file string
		addr string
		want bool
	}{
		{`{"organisation_domains": ["gemeente.nl"]}`, "a@gemeente.nl", true},
		{`{"organisation_domains": ["gemeente.nl"]}`, "a@wijk.gemeente.nl", true},
		{`{"organisation_domains": ["gemeente.nl"]}`, "a@burger.nl", false},
		{`{"organisation_domains": ["gemeente.nl", "ggd.nl"], "sso_domains": ["ggd.nl"]}`, "a@gemeente.nl", false},
		{`{"organisation_domains": ["gemeente.nl", "ggd.nl"], "sso_domains": ["ggd.nl"]}`, "A@GGD.NL", true},
		{`{"organisation_domains": ["gemeente.nl"], "sso_domains": []}`, "a@gemeente.nl", false},
		{`{}`, "a@gemeente.nl", false},
	} {
		if got := mustParse(t, tc.file).SSORequired(tc.addr); got != tc.want {
			t.Errorf("%s: SSORequired(%q) = %v, want %v", tc.file, tc.addr, got, tc.want)
		}
	}
	if _, err := Parse([]byte(`{"sso_domains": ["a.nl", "A.nl"]}`)); err == nil || !strings.Contains(err.Error(), "sso_domains[1]") {
		t.Fatalf("a domain listed twice: %v", err)
	}
	if _, err := Parse([]byte(`{"sso_domains": "a.nl"}`)); err == nil || !strings.Contains(err.Error(), "sso_domains") {
		t.Fatalf("not a list: %v", err)
	}
}

// TestParseAllErrors: Parse reports every problem it finds, in file
// order, each with the line it is on, not only the first one; also two
// in the limits of one rule.
func TestParseAllErrors(t *testing.T) {
	in := `{
  "organisation_domains": ["gemeente.nl", "gemeente"],
  "defaults": {"max_size": 1},
  "rules": [
    {"name": "a", "action": "block"},
    {"name": "b", "action": "allow"},
    {"name": "c", "action": "allow",
     "senders": [""]},
    {"name": "B", "action": "deny"},
    {"name": "d", "action": "allow", "limits": {"max_recipients": 0,
     "allow_message": "no"}}
  ],
  "dropoffs": {}
}`
	_, err := Parse([]byte(in))
	var pes ParseErrors
	if !errors.As(err, &pes) {
		t.Fatalf("err = %v (%T), want ParseErrors", err, err)
	}
	want := []struct {
		line int
		path string
	}{{2, "organisation_domains[1]"}, {3, "defaults.max_size"}, {5, "rules[0].action"}, {8, "rules[2].senders[0]"}, {9, "rules[3].name"},
		{10, "rules[4].limits.max_recipients"}, {11, "rules[4].limits.allow_message"}, {13, "dropoffs"}}
	if len(pes) != len(want) {
		t.Fatalf("%d errors, want %d:\n%v", len(pes), len(want), err)
	}
	for i, w := range want {
		if pes[i].Line != w.line || pes[i].Path != w.path {
			t.Errorf("error %d: line %d at %s, want line %d at %s", i, pes[i].Line, pes[i].Path, w.line, w.path)
		}
	}
	if !strings.Contains(err.Error(), "line 5: rules[0].action: \"block\" is not an action") {
		t.Errorf("the message does not name the line:\n%v", err)
	}
	var pe *ParseError
	if !errors.As(err, &pe) || pe != pes[0] {
		t.Errorf("errors.As does not give the first problem: %v", pe)
	}
	// A syntax error stops the reading: one problem, with its line.
	_, err = Parse([]byte("{\n  \"rules\": [,]\n}"))
	if !errors.As(err, &pes) || len(pes) != 1 || pes[0].Line != 2 {
		t.Errorf("syntax error: %v", err)
	}
}

// TestParseAllErrorsInLists: every drop-off point and every login service
// with a problem is reported, not only the first of the list.
func TestParseAllErrorsInLists(t *testing.T) {
	in := `{"dropoffs": [
  {"slug": "a", "team": "t"},
  {"slug": "b", "team": "t", "name": {"nl": "B"}},
  {"slug": "b", "team": "t", "name": {"nl": "B2"}}
],
"recipient_login_providers": [
  {"name": "digid", "issuer": "https://broker.example.nl", "client_id": "kluis", "client_secret_file": "s", "secret": "x"},
  {"name": "eherk", "issuer": "https://broker.example.nl", "client_id": "kluis", "client_secret_file": "s", "claim": "oid"}
]}`
	_, err := Parse([]byte(in))
	var pes ParseErrors
	if !errors.As(err, &pes) {
		t.Fatalf("err = %v, want ParseErrors", err)
	}
	var got []string
	for _, pe := range pes {
		got = append(got, fmt.Sprintf("%d %s", pe.Line, pe.Path))
	}
	want := []string{"2 dropoffs[0].name", "4 dropoffs[2].slug", "7 recipient_login_providers[0].secret", "8 recipient_login_providers[1].tenant"}
	if !slices.Equal(got, want) {
		t.Errorf("got %q\nwant %q\n%v", got, want, err)
	}
}
