// Package sms sends the one-time codes of the recipients' second factor
// through a configurable HTTP gateway, and parses and masks the mobile
// numbers they go to.
//
// # Gateway
//
// [HTTP] is one request per message: a URL and method, headers from a
// secret file, and a body made from a template with {{.To}} and
// {{.Text}}, encoded as JSON or as a form. Any 2xx answer is success. The
// production code knows no provider; docs/sms.md shows two.
//
// # Numbers
//
// [ParsePhone] accepts international numbers as people write them and
// returns them in E.164 form; [Mask] shows one without most of its digits.
package sms

import (
	"errors"
	"strings"
)

// Phone number problems. Each names what to fix.
var (
	ErrPhoneEmpty   = errors.New("sms: no mobile number")
	ErrPhoneCountry = errors.New("sms: the number must start with + and the country code")
	ErrPhoneInvalid = errors.New("sms: not a phone number")
)

// ParsePhone returns the E.164 form (+ and 8 to 15 digits) of a number
// written with spaces, dashes, dots or brackets, or starting with 00. A
// national number (06…) is refused: the country is unknown.
func ParsePhone(s string) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", ErrPhoneEmpty
	}
	if strings.HasPrefix(s, "00") {
		s = "+" + s[2:]
	}
	if !strings.HasPrefix(s, "+") {
		return "", ErrPhoneCountry
	}
	var b strings.Builder
	b.WriteByte('+')
	for _, r := range s[1:] {
		switch {
		case r >= '0' && r <= '9':
			b.WriteRune(r)
		case r == ' ' || r == '-' || r == '.' || r == '(' || r == ')':
		default:
			return "", ErrPhoneInvalid
		}
	}
	out := b.String()
	if n := len(out) - 1; n < 8 || n > 15 || out[1] == '0' {
		return "", ErrPhoneInvalid
	}
	return out, nil
}

// Mask shows an E.164 number with only the country code, the digit after
// it and the last two digits: +31612345678 is "+31 6 •••• ••78". It is
// what pages, mails, the API and logs show of a number.
func Mask(e164 string) string {
	d := strings.TrimPrefix(e164, "+")
	if len(d) < 6 {
		return "•••"
	}
	hidden := len(d) - 5
	var b strings.Builder
	b.WriteString("+" + d[:2] + " " + d[2:3] + " ")
	for i := 0; i < hidden; i++ {
		if i > 0 && (hidden-i)%4 == 2 {
			b.WriteByte(' ')
		}
		b.WriteString("•")
	}
	b.WriteString(d[len(d)-2:])
	return b.String()
}
