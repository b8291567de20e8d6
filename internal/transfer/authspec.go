package transfer

import (
	"errors"
	"fmt"
	"strings"

	"github.com/kluis-nl/kluis"
)

// ErrAuthSpec is a recipient's verification written without an address or
// without a value ("ADDR=VALUE").
var ErrAuthSpec = errors.New("write the recipient's e-mail address, then the value: ADDR=VALUE")

// ParseRecipientAuth reads one recipient's verification as the CLI flags
// (--recipient-phone ADDR=NUMBER) and the send form's lines ("ADDR
// NUMBER") write it, for method: the address, then the value that method
// needs: a mobile number, or for a login PROVIDER[:VALUE]
// (--recipient-login ADDR=PROVIDER[:VALUE]). The value is checked by
// Validate, which knows the policy and can say what to fix.
func ParseRecipientAuth(method kluis.AuthMethod, spec string) (addr string, ra RecipientAuth, err error) {
	spec = strings.TrimSpace(spec)
	addr, value, ok := strings.Cut(spec, "=")
	if !ok {
		// A form line: the address has no spaces, what follows may.
		if i := strings.IndexAny(spec, " \t"); i >= 0 {
			addr, value, ok = spec[:i], spec[i+1:], true
		}
	}
	addr, value = strings.TrimSpace(addr), strings.TrimSpace(value)
	if !ok || addr == "" || value == "" {
		return "", RecipientAuth{}, ErrAuthSpec
	}
	switch method {
	case kluis.AuthPasswordSMS:
		return addr, RecipientAuth{Method: method, Phone: value}, nil
	case kluis.AuthPasswordLogin:
		provider, claim, _ := strings.Cut(value, ":")
		return addr, RecipientAuth{Method: method, Login: strings.TrimSpace(provider), LoginValue: claim}, nil
	}
	return "", RecipientAuth{}, fmt.Errorf("transfer: %q takes no value", method)
}
