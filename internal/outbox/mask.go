package outbox

import (
	"regexp"
	"strings"
	"unicode/utf8"
)

// MaskAddress is what the admin console shows of a mail's recipient: the
// first character of the local part and the domain, "b…@example.nl". The
// domain is what tells an operator where mail is stuck (one receiving
// server refusing); the person stays unnamed.
func MaskAddress(addr string) string {
	at := strings.LastIndexByte(addr, '@')
	if at <= 0 {
		return "…"
	}
	r, _ := utf8.DecodeRuneInString(addr[:at])
	return string(r) + "…" + strings.ToLower(addr[at:])
}

// addressInText finds what looks like a mail address in a relay's error
// text ("550 5.1.1 <anna@example.nl>: no such user").
var addressInText = regexp.MustCompile(`[^\s<>()\[\]"',;:]+@[A-Za-z0-9.-]+`)

// MaskAddresses masks every address in an error text the way MaskAddress
// does: a relay's last_error often names the recipient.
func MaskAddresses(text string) string {
	return addressInText.ReplaceAllStringFunc(text, MaskAddress)
}
