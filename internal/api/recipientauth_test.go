package api_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/kluis-nl/kluis/internal/app/apptest"
	"github.com/kluis-nl/kluis/internal/kluistest"
)

// TestCreateRecipientAuth (issue 15, item 4): recipient_auth in POST
// /api/v1/transfers sets the method per recipient; the answer and the
// sender's view show it with the number masked; the engine's checks come
// back as field errors (no number, a no-password link, a number without
// SMS).
func TestCreateRecipientAuth(t *testing.T) {
	g := kluistest.NewSMSGateway(t)
	e := startAPIEnv(t, apptest.Options{Args: g.Args()})
	_, tok, err := e.senders.CreateAPIKey(e.ctx, "medewerker@gemeente.nl")
	if err != nil {
		t.Fatal(err)
	}
	type recipient struct {
		Address, Kind, Phone string
		AuthMethod           string     `json:"auth_method"`
		VerifiedAt           *time.Time `json:"verified_at"`
	}
	var out struct {
		ID         string
		Recipients []recipient
	}
	e.jsonOK(e.req("POST", "/api/v1/transfers", tok, nil, map[string]any{
		"to": []string{"burger@example.nl", "collega@example.nl"}, "password": map[string]string{"mode": "generate"},
		"recipient_auth": map[string]any{"Burger@Example.nl": map[string]string{"method": "password+sms", "phone": "+31 6 9988 7766"}},
	}), http.StatusCreated, &out)
	want := map[string]recipient{
		"burger@example.nl":  {AuthMethod: "password+sms", Phone: "+31 6 •••• ••66"},
		"collega@example.nl": {AuthMethod: "password"},
	}
	for _, r := range out.Recipients {
		if w := want[r.Address]; r.AuthMethod != w.AuthMethod || r.Phone != w.Phone {
			t.Errorf("%s: %s %q, want %s %q", r.Address, r.AuthMethod, r.Phone, w.AuthMethod, w.Phone)
		}
	}
	var view struct{ Recipients []recipient }
	e.jsonOK(e.req("GET", "/api/v1/transfers/"+out.ID, tok, nil, nil), http.StatusOK, &view)
	if len(view.Recipients) != 2 || view.Recipients[0].Phone != "+31 6 •••• ••66" {
		t.Errorf("sender's view %+v", view.Recipients)
	}

	type fieldJSON struct{ Field, Code string }
	var bad struct{ Error struct{ Fields []fieldJSON } }
	for _, tc := range []struct {
		name string
		body map[string]any
		code string
	}{
		{"no number", map[string]any{"to": []string{"burger@example.nl"}, "password": map[string]string{"mode": "generate"},
			"recipient_auth": map[string]any{"burger@example.nl": map[string]string{"method": "password+sms"}}}, "phone_missing"},
		{"no-password link", map[string]any{"to": []string{"burger@example.nl"}, "password": map[string]string{"mode": "none"},
			"recipient_auth": map[string]any{"burger@example.nl": map[string]string{"method": "password+sms", "phone": "+31612345678"}}}, "auth_needs_password"},
		{"national number", map[string]any{"to": []string{"burger@example.nl"}, "password": map[string]string{"mode": "generate"},
			"recipient_auth": map[string]any{"burger@example.nl": map[string]string{"method": "password+sms", "phone": "06 12345678"}}}, "phone_country"},
		{"number with the password only", map[string]any{"to": []string{"burger@example.nl"}, "password": map[string]string{"mode": "generate"},
			"recipient_auth": map[string]any{"burger@example.nl": map[string]string{"method": "password", "phone": "+31612345678"}}}, "phone_unexpected"},
		// Special personal data: the default policy asks an SMS code of
		// everyone, also of a recipient the request does not name.
		{"special data", map[string]any{"to": []string{"burger@example.nl"}, "password": map[string]string{"mode": "generate"},
			"options": map[string]bool{"special_data": true}}, "phone_missing"},
		{"unknown method", map[string]any{"to": []string{"burger@example.nl"}, "password": map[string]string{"mode": "generate"},
			"recipient_auth": map[string]any{"burger@example.nl": map[string]string{"method": "carrier-pigeon"}}}, "auth_method_unknown"},
		{"not a recipient", map[string]any{"to": []string{"burger@example.nl"}, "password": map[string]string{"mode": "generate"},
			"recipient_auth": map[string]any{"ander@example.nl": map[string]string{"method": "password"}}}, "auth_not_a_recipient"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bad.Error.Fields = nil
			e.jsonOK(e.req("POST", "/api/v1/transfers", tok, nil, tc.body), http.StatusBadRequest, &bad)
			if len(bad.Error.Fields) != 1 || bad.Error.Fields[0].Field != "recipient_auth" || bad.Error.Fields[0].Code != tc.code {
				t.Errorf("fields %+v, want recipient_auth %s", bad.Error.Fields, tc.code)
			}
		})
	}
}

// TestCreateRecipientAuthAndLogin: recipient_auth and recipient_login
// naming one recipient (in another case) with two methods is refused with
// a message that says to choose one.
func TestCreateRecipientAuthAndLogin(t *testing.T) {
	g := kluistest.NewSMSGateway(t)
	e := startAPIEnv(t, apptest.Options{Args: g.Args()})
	_, tok, err := e.senders.CreateAPIKey(e.ctx, "medewerker@gemeente.nl")
	if err != nil {
		t.Fatal(err)
	}
	var bad struct{ Error struct{ Message string } }
	e.jsonOK(e.req("POST", "/api/v1/transfers", tok, nil, map[string]any{
		"to": []string{"burger@example.nl"}, "password": map[string]string{"mode": "generate"},
		"recipient_auth":  map[string]any{"Burger@Example.nl": map[string]string{"method": "password+sms", "phone": "+31612345678"}},
		"recipient_login": map[string]any{"burger@example.nl": map[string]string{"provider": "digid"}},
	}), http.StatusBadRequest, &bad)
	if !strings.Contains(bad.Error.Message, "choose one") {
		t.Errorf("message %q, want it to say to choose one method", bad.Error.Message)
	}
}
