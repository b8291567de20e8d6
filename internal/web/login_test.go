package web

import (
	"net/http"
	"strings"
	"testing"

	"github.com/kluis-nl/kluis"
	kpolicy "github.com/kluis-nl/kluis/internal/policy"
	"github.com/kluis-nl/kluis/internal/transfer"
)

// TestSendRecipientLogin: the compose form offers a login after the
// password when the policy lists providers; the review shows the provider
// and the value masked; the transfer is made with it; a bad line is a
// field error on the login field.
func TestSendRecipientLogin(t *testing.T) {
	pol, err := kpolicy.Parse([]byte(`{"recipient_login_providers": [{"name": "digid", "label": "DigiD",
		"issuer": "https://broker.example.nl", "client_id": "kluis", "client_secret_file": "x"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	e := newSendEnv(t, pol)
	c := e.verify(t, "medewerker@gemeente.example.nl")
	if _, body := get(t, c, e.srv.URL+"/send"); !strings.Contains(body, `id="recipient_login"`) || !strings.Contains(body, "DigiD") {
		t.Fatal("the compose form has no login field")
	}
	const value = "PSEUDO-review-8812-x"
	req := compose(map[string]any{"recipient_login": "burger@example.nl=digid:" + value})
	st, out := postJSON(t, c, e.srv.URL+"/send/review", req)
	html, _ := out["html"].(string)
	if st != http.StatusOK || !strings.Contains(html, "Logt na het wachtwoord in met DigiD als PS•••-x") || strings.Contains(html, "8812") {
		t.Fatalf("review: %d %v", st, out)
	}
	st, out = postJSON(t, c, e.srv.URL+"/send/transfer", req)
	if st != http.StatusCreated {
		t.Fatalf("create: %d %v", st, out)
	}
	id, _ := out["id"].(string)
	tr, err := e.svc.Transfer(t.Context(), transfer.Owner{TransferID: id})
	if err != nil {
		t.Fatal(err)
	}
	if r := tr.Recipients[0]; r.AuthMethod != kluis.AuthPasswordLogin || r.Login != "digid" || r.LoginValue != "PS•••-x" {
		t.Errorf("the created recipient: %s %q %q", r.AuthMethod, r.Login, r.LoginValue)
	}
	for _, bad := range []string{"burger@example.nl=eherkenning:x", "burger@example.nl", "burger@example.nl=digid"} {
		st, out = postJSON(t, c, e.srv.URL+"/send/review", compose(map[string]any{"recipient_login": bad}))
		if st != http.StatusUnprocessableEntity || fieldErrors(out)["recipient_login"] == "" {
			t.Errorf("%q: %d %v", bad, st, out)
		}
	}
	// Without providers in the policy the field is not offered.
	plain := newSendEnv(t, nil)
	if _, body := get(t, plain.verify(t, "medewerker@gemeente.example.nl"), plain.srv.URL+"/send"); strings.Contains(body, `id="recipient_login"`) {
		t.Error("a login field without providers")
	}
}
