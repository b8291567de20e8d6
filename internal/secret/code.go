package secret

import (
	"encoding/base32"
	"strings"
	"unicode"
)

// codeAlphabet is Crockford's base32: digits and capitals without I, L, O
// and U, so no two symbols look alike and what a person misreads as I, L or
// O still means the digit (see [NormalizeReceiveCode]).
const codeAlphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

var codeEncoding = base32.NewEncoding(codeAlphabet).WithPadding(base32.NoPadding)

const (
	codeBytes = 10 // 80 bits (docs/security.md: guessing under the global rate limit)
	// ReceiveCodeLength is the length of a [NewReceiveCode] value.
	ReceiveCodeLength = 16
	// ReceiveCodeBits is the entropy of a receive code.
	ReceiveCodeBits = 8 * codeBytes

	codeGroup = 4
)

// NewReceiveCode returns a recipient's receive code: 80 bits from
// crypto/rand as 16 Crockford base32 characters. It is a second, shorter
// name for the recipient's link, for people who type it from a printed or
// read-out mail at /receive. Like the link it only leads to the password
// (or link secret) form; it never opens a transfer on its own. It is
// stored only as a keyed hash ([Keyring.MAC]), since 80 bits are fewer
// than an access id's 128.
func NewReceiveCode() string {
	return codeEncoding.EncodeToString(randomBytes(codeBytes))
}

// FormatReceiveCode writes a code in groups of four separated by dashes
// ("K7QM-3XPT-9HRW-D2FA"), to read out or type without losing one's place.
func FormatReceiveCode(code string) string {
	var b strings.Builder
	for i := 0; i < len(code); i += codeGroup {
		if i > 0 {
			b.WriteByte('-')
		}
		b.WriteString(code[i:min(i+codeGroup, len(code))])
	}
	return b.String()
}

// NormalizeReceiveCode turns what a person typed into the canonical code:
// case, spaces and dashes do not matter, and I and L count as 1, O as 0
// (Crockford's rule for misread symbols). It reports false unless the
// result is 16 characters of the alphabet, so callers can answer "wrong
// code" without touching the database.
func NormalizeReceiveCode(s string) (string, bool) {
	if len(s) > 4*ReceiveCodeLength {
		return "", false
	}
	var b strings.Builder
	b.Grow(ReceiveCodeLength)
	for _, r := range s {
		if r == '-' || unicode.IsSpace(r) {
			continue
		}
		if 'a' <= r && r <= 'z' {
			r -= 'a' - 'A'
		}
		switch r {
		case 'I', 'L':
			r = '1'
		case 'O':
			r = '0'
		}
		if r > unicode.MaxASCII || strings.IndexByte(codeAlphabet, byte(r)) < 0 {
			return "", false
		}
		b.WriteRune(r)
	}
	if b.Len() != ReceiveCodeLength {
		return "", false
	}
	return b.String(), true
}
