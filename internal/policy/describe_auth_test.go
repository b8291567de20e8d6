package policy

import (
	"strings"
	"testing"
)

// Describe lists the recipient login providers (what senders write and
// what must match) and each rule's recipient verification.
func TestDescribeRecipientAuth(t *testing.T) {
	p := mustParse(t, `{"organisation_domains": ["gemeente.nl"],
		"recipient_login_providers": [
		  {"name": "digid", "label": "DigiD", "issuer": "https://broker.example.nl", "client_id": "kluis",
		   "client_secret_file": "x", "claim": "sub", "acr": ["substantieel", "hoog"]},
		  {"name": "entra", "label": "Werkaccount", "issuer": "https://login.microsoftonline.com/11111111-2222-3333-4444-555555555555/v2.0",
		   "client_id": "c", "client_secret_file": "y", "claim": "oid", "tenant": "11111111-2222-3333-4444-555555555555"}],
		"rules": [{"name": "zorg", "action": "allow", "recipients": ["*@zorg.nl"],
		  "limits": {"recipient_auth": {"minimum": "password+sms", "special_default": true}}}]}`)
	var b strings.Builder
	p.Describe(&b)
	out := b.String()
	for _, want := range []string{
		"Recipient login providers (--recipient-login ADDR=NAME:VALUE):",
		`digid: "DigiD", issuer https://broker.example.nl, client kluis, claim sub must match the sender's value; acr substantieel or hoog`,
		`entra: "Werkaccount", issuer https://login.microsoftonline.com/`,
		"claim oid in tenant 11111111-2222-3333-4444-555555555555 must match",
		"  recipient verification: password, password+sms, password+login allowed; at least password; with special personal data at least password+sms\n",
		"     recipient verification: password+sms, password+login allowed; at least password+sms; with special personal data at least password+sms (marked by default on the send form)\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("Describe lacks %q:\n%s", want, out)
		}
	}
	b.Reset()
	mustParse(t, `{}`).Describe(&b)
	if !strings.Contains(b.String(), "Recipient login providers: none") {
		t.Errorf("Describe without providers:\n%s", b.String())
	}
}
