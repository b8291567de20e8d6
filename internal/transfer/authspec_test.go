package transfer_test

import (
	"errors"
	"testing"

	"github.com/kluis-nl/kluis"
	"github.com/kluis-nl/kluis/internal/transfer"
)

func TestParseRecipientAuth(t *testing.T) {
	for _, tc := range []struct {
		spec, addr, phone string
		err               bool
	}{
		{"burger@example.nl=+31 6 12345678", "burger@example.nl", "+31 6 12345678", false},
		{" burger@example.nl  +31 6 12345678 ", "burger@example.nl", "+31 6 12345678", false},
		{"burger@example.nl\t+31612345678", "burger@example.nl", "+31612345678", false},
		{"burger@example.nl", "", "", true},
		{"burger@example.nl=", "", "", true},
		{"=+31612345678", "", "", true},
	} {
		addr, ra, err := transfer.ParseRecipientAuth(kluis.AuthPasswordSMS, tc.spec)
		if tc.err {
			if !errors.Is(err, transfer.ErrAuthSpec) {
				t.Errorf("%q: err %v, want ErrAuthSpec", tc.spec, err)
			}
			continue
		}
		if err != nil || addr != tc.addr || ra.Method != kluis.AuthPasswordSMS || ra.Phone != tc.phone {
			t.Errorf("%q: %q %+v %v", tc.spec, addr, ra, err)
		}
	}
	for spec, want := range map[string]transfer.RecipientAuth{
		"burger@example.nl=digid:PSEUDO:1": {Method: kluis.AuthPasswordLogin, Login: "digid", LoginValue: "PSEUDO:1"},
		"burger@example.nl=entra":          {Method: kluis.AuthPasswordLogin, Login: "entra"},
		"burger@example.nl digid: abc ":    {Method: kluis.AuthPasswordLogin, Login: "digid", LoginValue: " abc"},
	} {
		addr, ra, err := transfer.ParseRecipientAuth(kluis.AuthPasswordLogin, spec)
		if err != nil || addr != "burger@example.nl" || ra != want {
			t.Errorf("login %q: %q %+v %v", spec, addr, ra, err)
		}
	}
	if _, _, err := transfer.ParseRecipientAuth(kluis.AuthPassword, "a@example.nl=x"); err == nil {
		t.Error("the password only took a value")
	}
}
