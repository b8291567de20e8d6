package api_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/kluis-nl/kluis/internal/app/apptest"
	"github.com/kluis-nl/kluis/internal/policy"
)

const apiPolicy = `{
  "organisation_domains": ["gemeente.nl"],
  "defaults": {"max_recipients": 5, "max_expiry": "14d"},
  "rules": [
    {"name": "no private mail", "description": "Send to a work address instead.", "recipients": ["gmail.com"], "action": "deny"},
    {"name": "care", "recipients": ["*@*.zorg.nl"], "action": "allow", "limits": {"allow_message": false, "password_modes": ["manual"]}}
  ]
}`

// A transfer the policy refuses is 403 with code "policy" and a message
// naming the address (the rule is in the field errors: TestCreateFieldErrors);
// a limit of a rule likewise; the rest is created. GET /api/v1/config tells the UI and CLI the defaults.
func TestPolicyAPI(t *testing.T) {
	e := startAPIEnv(t, apptest.Options{Policy: apiPolicy})
	key := func(addr string) string {
		_, k, err := e.senders.CreateAPIKey(e.ctx, addr)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	outside, inside := key("iemand@extern.nl"), key("medewerker@gemeente.nl")
	create := func(tok string, body map[string]any) *http.Response {
		if _, ok := body["password"]; !ok {
			body["password"] = map[string]string{"mode": "manual", "value": "Vrolijk-Paarse-Olifant-42"}
		}
		return e.req("POST", "/api/v1/transfers", tok, nil, body)
	}
	refused := []struct {
		name  string
		tok   string
		body  map[string]any
		parts []string
	}{
		{"relay", outside, map[string]any{"to": []string{"b@elders.nl"}},
			[]string{"b@elders.nl", "address of the organisation"}},
		{"mixed", outside, map[string]any{"to": []string{"m@gemeente.nl"}, "cc": []string{"b@elders.nl"}}, []string{"b@elders.nl"}},
		{"deny rule", inside, map[string]any{"to": []string{"x@gmail.com"}}, []string{"x@gmail.com", "organisation's rules do not allow"}},
		{"message", outside, map[string]any{"to": []string{"arts@praktijk.zorg.nl"}, "message": "geheim"}, []string{"confidential message is not allowed"}},
		{"password mode", outside, map[string]any{"to": []string{"arts@praktijk.zorg.nl"}, "password": map[string]string{"mode": "generate"}}, []string{"password choice"}},
		{"recipients", inside, map[string]any{"to": []string{"a@x.nl", "b@x.nl", "c@x.nl", "d@x.nl", "e@x.nl", "f@x.nl"}}, []string{"at most 5 recipients"}},
		{"expiry", inside, map[string]any{"to": []string{"a@x.nl"}, "expires_at": e.svc.Now().AddDate(0, 0, 20)}, []string{"at the latest"}},
	}
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			code, msg, _ := apiError(t, create(tc.tok, tc.body), http.StatusForbidden)
			if code != "policy" {
				t.Errorf("code %q, want policy", code)
			}
			for _, p := range tc.parts {
				if !strings.Contains(msg, p) {
					t.Errorf("message %q does not contain %q", msg, p)
				}
			}
		})
	}
	for _, ok := range []struct {
		tok string
		to  string
	}{{outside, "m@gemeente.nl"}, {inside, "b@elders.nl"}, {outside, "arts@praktijk.zorg.nl"}} {
		e.jsonOK(create(ok.tok, map[string]any{"to": []string{ok.to}}), http.StatusCreated, nil)
	}

	var cfg struct {
		Demo    bool     `json:"demo"`
		Domains []string `json:"organisation_domains"`
		Limits  struct {
			MaxTransferSize int64    `json:"max_transfer_size"`
			MaxExpiryDays   int      `json:"max_expiry_days"`
			DefaultDays     int      `json:"default_expiry_days"`
			PasswordModes   []string `json:"password_modes"`
			MaxRecipients   int      `json:"max_recipients"`
			AllowMessage    bool     `json:"allow_message"`
		} `json:"limits"`
	}
	e.jsonOK(e.req("GET", "/api/v1/config", "", nil, nil), http.StatusOK, &cfg)
	if cfg.Demo || len(cfg.Domains) != 1 || cfg.Domains[0] != "gemeente.nl" || cfg.Limits.MaxRecipients != 5 || cfg.Limits.MaxExpiryDays != 14 ||
		cfg.Limits.DefaultDays != 7 || cfg.Limits.MaxTransferSize != e.cfg.MaxTransferSize || len(cfg.Limits.PasswordModes) != 3 || !cfg.Limits.AllowMessage {
		t.Errorf("config %+v", cfg)
	}

	// Back to the demo: everything allowed, and /api/v1/config says so.
	e.app.Policy.Set(policy.Default())
	e.jsonOK(create(outside, map[string]any{"to": []string{"b@elders.nl"}}), http.StatusCreated, nil)
	cfg.Domains = nil
	e.jsonOK(e.req("GET", "/api/v1/config", "", nil, nil), http.StatusOK, &cfg)
	if !cfg.Demo || cfg.Domains != nil || cfg.Limits.MaxRecipients != e.cfg.MaxRecipients {
		t.Errorf("demo config %+v", cfg)
	}
}
