package api_test

import (
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/kluis-nl/kluis/internal/app/apptest"
	"github.com/kluis-nl/kluis/internal/locale"
)

// literal is the longest piece of a catalog text between its arguments:
// what every message of that key contains.
func literal(l locale.Lang, key string) string {
	best := ""
	for _, p := range regexp.MustCompile(`%(\[\d+\])?[a-z]`).Split(locale.For(l).Format(key), -1) {
		if len(p) > len(best) {
			best = p
		}
	}
	return best
}

// TestCreateFieldErrors (issue 12, item 1): POST /api/v1/transfers
// reports every problem field by field, with a stable code, the catalog
// key and the message in the request's language (English by default);
// the status stays that of the error's code.
func TestCreateFieldErrors(t *testing.T) {
	e := startAPIEnv(t, apptest.Options{Policy: apiPolicy})
	_, tok, err := e.senders.CreateAPIKey(e.ctx, "medewerker@gemeente.nl")
	if err != nil {
		t.Fatal(err)
	}
	type fieldJSON struct{ Field, Code, Key, Message, Policy string }
	type errorJSON struct {
		Error struct {
			Code, Message string
			Fields        []fieldJSON
		}
	}
	type want struct{ field, code, policy string }
	bad := map[string]any{
		"to":         []string{"x@gmail.com", "niet-een-adres"},
		"cc":         []string{"a@gemeente.nl"},
		"expires_at": e.svc.Now().AddDate(0, 0, 20),
		"password":   map[string]string{"mode": "manual", "value": "kort"},
	}
	refused := map[string]any{"to": []string{"x@gmail.com"}, "password": map[string]string{"mode": "generate"}}
	for _, tc := range []struct {
		name   string
		accept string
		lang   locale.Lang
		body   map[string]any
		status int
		code   string
		want   []want
	}{
		{"several, English by default", "", locale.EN, bad, http.StatusBadRequest, "invalid", []want{
			{"to", "address_not_allowed", `rule "no private mail"`}, {"to", "address_invalid", ""},
			{"expires_at", "expiry_too_late", "the default limits"}, {"password.value", "password_too_short", ""}}},
		{"several in Dutch", "nl-NL,nl;q=0.9,en;q=0.5", locale.NL, bad, http.StatusBadRequest, "invalid", []want{
			{"to", "address_not_allowed", `rule "no private mail"`}, {"to", "address_invalid", ""},
			{"expires_at", "expiry_too_late", "the default limits"}, {"password.value", "password_too_short", ""}}},
		{"a language the API does not speak", "de", locale.EN, refused, http.StatusForbidden, "policy", []want{
			{"to", "address_not_allowed", `rule "no private mail"`}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var hdr map[string]string
			if tc.accept != "" {
				hdr = map[string]string{"Accept-Language": tc.accept}
			}
			var out errorJSON
			e.jsonOK(e.req("POST", "/api/v1/transfers", tok, hdr, tc.body), tc.status, &out)
			if out.Error.Code != tc.code {
				t.Errorf("code %q, want %q", out.Error.Code, tc.code)
			}
			if len(out.Error.Fields) != len(tc.want) {
				t.Fatalf("fields %+v, want %v", out.Error.Fields, tc.want)
			}
			var texts []string
			for i, w := range tc.want {
				f := out.Error.Fields[i]
				if f.Field != w.field || f.Code != w.code || f.Policy != w.policy || f.Key != "validate."+w.code {
					t.Errorf("field %d = %+v, want %v", i, f, w)
				}
				if lit := literal(tc.lang, f.Key); lit == "" || !strings.Contains(f.Message, lit) {
					t.Errorf("%s: message %q is not the %s text (%q)", f.Code, f.Message, tc.lang, lit)
				}
				texts = append(texts, f.Message)
			}
			if out.Error.Message != strings.Join(texts, " ") {
				t.Errorf("message %q, want the fields' messages", out.Error.Message)
			}
			if !strings.Contains(out.Error.Fields[0].Message, "x@gmail.com") {
				t.Errorf("the refused address is not named: %q", out.Error.Fields[0].Message)
			}
		})
	}
}
