package secret

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"encoding/base64"
	"strings"
	"unicode"
)

// idAlphabet is the RFC 4648 base32 alphabet in lowercase: no 0, 1, 8 or 9,
// so O/0 and I/1 cannot be confused when an id is typed by hand.
const idAlphabet = "abcdefghijklmnopqrstuvwxyz234567"

var idEncoding = base32.NewEncoding(idAlphabet).WithPadding(base32.NoPadding)

const (
	idBytes = 16 // 128 bits: unguessable even as a bearer secret (security.md item 4)
	// IDLength is the length of [NewID] and [NewAccessID] values.
	IDLength = 26

	accessIDGroup = 5
)

// randomBytes never fails: since Go 1.24 crypto/rand.Read crashes the
// program rather than return an error, because continuing without
// randomness would be worse.
func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// NewID returns a fresh 128-bit id for a transfer or a file, as 26
// lowercase base32 characters.
func NewID() string {
	return idEncoding.EncodeToString(randomBytes(idBytes))
}

// NewAccessID returns a recipient's access id. It has the same format as
// [NewID] but is a bearer secret: whoever holds the link /r/ID reaches the
// transfer (and still needs the password, if there is one).
func NewAccessID() string {
	return NewID()
}

// FormatAccessID splits an id into dash-separated groups of five so that a
// person can read it out or type it without losing their place. The last
// group is shorter. [NormalizeAccessID] undoes it.
func FormatAccessID(id string) string {
	var b strings.Builder
	b.Grow(len(id) + len(id)/accessIDGroup)
	for i := 0; i < len(id); i += accessIDGroup {
		if i > 0 {
			b.WriteByte('-')
		}
		b.WriteString(id[i:min(i+accessIDGroup, len(id))])
	}
	return b.String()
}

// NormalizeAccessID turns what a person typed or pasted (any case, with
// dashes or spaces between groups) back into the canonical id. It reports
// false when the result is not 26 characters of the base32 alphabet, so
// callers can answer "not found" without touching the database.
func NormalizeAccessID(s string) (string, bool) {
	// Refuse absurd input before allocating for it.
	if len(s) > 4*IDLength {
		return "", false
	}
	var b strings.Builder
	b.Grow(IDLength)
	for _, r := range s {
		switch {
		case r == '-' || unicode.IsSpace(r):
			continue
		case 'A' <= r && r <= 'Z':
			r += 'a' - 'A'
		}
		if r > unicode.MaxASCII || strings.IndexByte(idAlphabet, byte(r)) < 0 {
			return "", false
		}
		b.WriteRune(r)
	}
	if b.Len() != IDLength {
		return "", false
	}
	return b.String(), true
}

// NewLinkSecret returns the 128-bit secret that goes in the #fragment of a
// no-password link. Fragments are copied by machines, never typed, so the
// shorter base64url (22 characters) beats base32.
func NewLinkSecret() string {
	return base64.RawURLEncoding.EncodeToString(randomBytes(16))
}

// NewToken returns a 256-bit bearer token (upload and session tokens), in
// base64url without padding (43 characters). 256 bits leave room for
// tokens that also carry key material, such as download sessions.
func NewToken() string {
	return base64.RawURLEncoding.EncodeToString(randomBytes(32))
}

// HashToken is what the database stores instead of a bearer token. A plain
// SHA-256 suffices, with no salt or stretching, because the token itself has
// 256 bits of entropy: there is nothing to brute-force.
func HashToken(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}

// Equal compares two secrets or secret hashes in constant time, so the
// response time does not leak how many leading bytes matched.
func Equal(a, b []byte) bool {
	return subtle.ConstantTimeCompare(a, b) == 1
}
