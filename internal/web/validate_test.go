package web

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/kluis-nl/kluis/internal/locale"
	kpolicy "github.com/kluis-nl/kluis/internal/policy"
)

// validatePolicy refuses one domain and gives care
// providers stricter limits than the defaults the compose page shows, so
// only the engine's decision per recipient knows them.
const validatePolicy = `{
  "organisation_domains": ["gemeente.example.nl"],
  "rules": [
    {"name": "geen privé-mail", "recipients": ["example.org"], "action": "deny", "description": "Stuur naar een werkadres."},
    {"name": "zorg", "recipients": ["*@*.zorg.example.nl"], "action": "allow",
     "limits": {"max_expiry": "2d", "password_modes": ["manual"]}}
  ]
}`

// postJSONLang posts v as the compose script does, on a page in lang.
func postJSONLang(t *testing.T, c *http.Client, u string, lang locale.Lang, v any) (int, map[string]any) {
	t.Helper()
	b, _ := json.Marshal(v)
	req, _ := http.NewRequest("POST", u, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	req.AddCookie(&http.Cookie{Name: langCookie, Value: string(lang)})
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatalf("%s: %d, not JSON: %v", u, resp.StatusCode, err)
	}
	return resp.StatusCode, out
}

// fragment is a key's text up to its first argument: what every message
// of that key contains, whatever the arguments.
func fragment(l locale.Lang, key string) string {
	s := locale.For(l).Format(key)
	if i := strings.IndexByte(s, '%'); i >= 0 {
		s = s[:i]
	}
	return s
}

// TestComposeErrorsInPageLanguage (issue 12, item 1): the compose page
// shows every refusal in its own language, also the limits only the
// engine knows (a policy rule for some recipients), never an English
// sentence of the engine wrapped in a Dutch one.
func TestComposeErrorsInPageLanguage(t *testing.T) {
	pol, err := kpolicy.Parse([]byte(validatePolicy))
	if err != nil {
		t.Fatal(err)
	}
	e := newSendEnv(t, pol)
	c := e.verify(t, "medewerker@gemeente.example.nl")
	inFive := e.svc.Now().In(expiryLoc).Add(5 * 24 * time.Hour).Format(time.DateOnly)
	// English sentences of the engine, as they were before: none may reach
	// a Dutch page.
	english := []string{"not allowed", "organisation policy", "expiry date", "e-mail address", "Password mode", "at most"}
	for _, lang := range []locale.Lang{locale.NL, locale.EN} {
		other := locale.EN
		if lang == locale.EN {
			other = locale.NL
		}
		for _, tc := range []struct {
			name string
			over map[string]any
			want map[string][]string // field: keys whose text the message holds
		}{
			{"refused address and a bad date", map[string]any{"to": "loket@gemeente.example.nl; buurman@example.org", "expires": "2025-02-31"},
				map[string][]string{"to": {"validate.address_not_allowed"}, "expires": {"validate.expiry_format"}}},
			{"a rule's limits", map[string]any{"to": "arts@praktijk.zorg.example.nl", "expires": inFive, "password_mode": "generate"},
				map[string][]string{"expires": {"validate.expiry_too_late"}, "pw-generate": {"validate.password_mode_not_allowed"}}},
		} {
			t.Run(string(lang)+"/"+tc.name, func(t *testing.T) {
				st, out := postJSONLang(t, c, e.srv.URL+"/send/transfer", lang, compose(tc.over))
				errs := fieldErrors(out)
				if st != http.StatusUnprocessableEntity {
					t.Fatalf("status %d, want 422: %v", st, out)
				}
				for field, keys := range tc.want {
					for _, k := range keys {
						if f := fragment(lang, k); f == "" || f == k || !strings.Contains(errs[field], f) {
							t.Errorf("%s: %q, want the text of %s (%q)", field, errs[field], k, f)
						}
					}
				}
				if len(errs) != len(tc.want) {
					t.Errorf("errors on %d fields, want %d: %v", len(errs), len(tc.want), errs)
				}
				all := strings.Join(func() []string {
					var ms []string
					for _, m := range errs {
						ms = append(ms, m)
					}
					return ms
				}(), " | ")
				if strings.Contains(all, "buurman") != (tc.name == "refused address and a bad date") {
					t.Errorf("the refused address is not named, or named where it should not be: %q", all)
				}
				for _, k := range []string{"validate.address_not_allowed", "validate.expiry_format", "validate.expiry_too_late", "validate.password_mode_not_allowed"} {
					if f := fragment(other, k); f != "" && strings.Contains(all, f) {
						t.Errorf("the %s page holds the %s text of %s: %q", lang, other, k, all)
					}
				}
				if lang == locale.NL {
					for _, en := range english {
						if strings.Contains(all, en) {
							t.Errorf("the Dutch page holds English %q: %q", en, all)
						}
					}
				}
			})
		}
	}
}
