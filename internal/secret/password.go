package secret

import (
	"crypto/rand"
	"math"
	"math/big"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	"github.com/kluis-nl/kluis"
	"github.com/trustelem/zxcvbn/frequency"
)

const (
	// MinPasswordLength is ASVS 5.0's minimum (6.2.1), counted in runes as
	// people count characters. ASVS 4.0.3 asked for 12; see security.md item 8.
	MinPasswordLength = 8
	// MaxPasswordLength is far above ASVS's "at least 64 accepted", and low
	// enough that a pasted novel cannot make scrypt hash megabytes. Longer
	// passwords are refused, never truncated: truncation would silently
	// weaken what the sender believes they chose.
	MaxPasswordLength = 256

	// commonPasswordCount is how much of zxcvbn's list (most common first)
	// the blocklist takes: ASVS asks for at least the top 3,000.
	commonPasswordCount = 3000
)

// Problems of a transfer password, as PasswordProblem names them. They
// are stable codes: the engine's field errors carry them.
const (
	PasswordNotText  = "password_not_text"  // not valid UTF-8
	PasswordEmpty    = "password_empty"     // nothing typed
	PasswordBlank    = "password_blank"     // spaces only
	PasswordTooShort = "password_too_short" // under MinPasswordLength characters
	PasswordTooLong  = "password_too_long"  // over MaxPasswordLength characters
	PasswordCommon   = "password_common"    // on the blocklist
)

// PasswordProblem returns what is wrong with pw as a transfer password,
// one of the Password* codes, or "" when it may be used. There are no
// character-class rules: they push people to predictable patterns
// (Welkom01!) without adding strength, so length and a blocklist do the work.
func PasswordProblem(pw string) string {
	switch n := utf8.RuneCountInString(pw); {
	case !utf8.ValidString(pw):
		return PasswordNotText
	case pw == "":
		return PasswordEmpty
	case strings.TrimFunc(pw, unicode.IsSpace) == "":
		return PasswordBlank
	case n < MinPasswordLength:
		return PasswordTooShort
	case n > MaxPasswordLength:
		return PasswordTooLong
	case IsCommonPassword(pw):
		return PasswordCommon
	}
	return ""
}

// CheckPassword reports whether pw may be used as a transfer password
// (PasswordProblem). The error is a [kluis.EINVALID] whose message says,
// in English, what to change; the engine shows its field errors instead.
func CheckPassword(pw string) error {
	n := utf8.RuneCountInString(pw)
	switch PasswordProblem(pw) {
	case PasswordNotText:
		return kluis.Errorf(kluis.EINVALID, "The password contains characters that are not valid text. Type or paste it again.")
	case PasswordEmpty:
		return kluis.Errorf(kluis.EINVALID, "Enter a password of at least %d characters.", MinPasswordLength)
	case PasswordBlank:
		return kluis.Errorf(kluis.EINVALID, "The password cannot consist of spaces only. Use at least %d characters.", MinPasswordLength)
	case PasswordTooShort:
		return kluis.Errorf(kluis.EINVALID, "The password is too short: use at least %d characters (this one has %d).", MinPasswordLength, n)
	case PasswordTooLong:
		return kluis.Errorf(kluis.EINVALID, "The password is too long: use at most %d characters (this one has %d).", MaxPasswordLength, n)
	case PasswordCommon:
		return kluis.Errorf(kluis.EINVALID, "This password is on a list of commonly used passwords that attackers try first. Choose another one, for example a few unrelated words.")
	}
	return nil
}

// dutchCommonPasswords adds what an English-language list misses for our
// users: Dutch words and the patterns that "at least one capital and one
// digit" rules taught people. Only entries of 8 or more characters matter,
// as shorter ones fail the length check first.
var dutchCommonPasswords = []string{
	"welkom01", "welkom123", "welkom1234", "welkom2024", "welkom2025", "welkom2026",
	"welkomwelkom", "wachtwoord", "wachtwoord1", "wachtwoord01", "wachtwoord12",
	"wachtwoord123", "wachtwoord!", "wachtwoord2025", "wachtwoord2026",
	"geheim123", "geheim01", "geheimpje", "hallo123", "hallohallo", "hoihoi123",
	"nederland", "nederland1", "nederland123", "holland1", "amsterdam", "amsterdam1",
	"rotterdam", "rotterdam010", "utrecht030", "feyenoord", "feyenoord1", "ajaxajax",
	"ajax1900", "psveindhoven", "oranje123", "voetbal1", "voetbal123", "schatje1",
	"liefde123", "prinses1", "kabouter", "zomer2025", "winter2025", "lente2025",
	"herfst2025", "maandag1", "januari1", "welkom!!", "qwerty123", "azerty123",
}

var commonPasswords = sync.OnceValue(func() map[string]struct{} {
	list := frequency.FrequencyLists["passwords"]
	list = list[:min(commonPasswordCount, len(list))]
	m := make(map[string]struct{}, len(list)+len(dutchCommonPasswords))
	for _, p := range list {
		m[strings.ToLower(p)] = struct{}{}
	}
	for _, p := range dutchCommonPasswords {
		m[strings.ToLower(p)] = struct{}{}
	}
	return m
})

// IsCommonPassword reports whether pw, ignoring case and surrounding
// spaces, is among the 3,000 most common passwords in zxcvbn's list or our
// Dutch additions. Case is ignored because "Password123" is tried as early
// as "password123" by any guessing tool.
func IsCommonPassword(pw string) bool {
	_, ok := commonPasswords()[strings.ToLower(strings.TrimFunc(pw, unicode.IsSpace))]
	return ok
}

// passwordAlphabet is lowercase letters and digits without the look-alikes
// 0/o, 1/l/i, so a password survives being read out over the phone: 31
// symbols.
const passwordAlphabet = "abcdefghjkmnpqrstuvwxyz23456789"

const (
	passwordGroups    = 5
	passwordGroupSize = 4
)

// GeneratePassword returns a random password of 5 groups of 4 characters
// separated by dashes, such as "7kqm-wz3t-h9xe-n4rb-p2sd". Each of the 20
// characters is drawn uniformly from 31 symbols, giving 20·log2(31) ≈ 99.1
// bits ([GeneratedPasswordBits]); the dashes add none, they only help people
// keep their place. Use [NormalizeGeneratedPassword] on what a recipient
// typed before unlocking a transfer whose password was generated.
func GeneratePassword() string {
	var b strings.Builder
	b.Grow(passwordGroups*(passwordGroupSize+1) - 1)
	limit := big.NewInt(int64(len(passwordAlphabet)))
	for g := range passwordGroups {
		if g > 0 {
			b.WriteByte('-')
		}
		for range passwordGroupSize {
			// rand.Int is uniform (no modulo bias) and cannot fail with
			// crypto/rand's reader since Go 1.24.
			n, err := rand.Int(rand.Reader, limit)
			if err != nil {
				panic("secret: crypto/rand failed: " + err.Error())
			}
			b.WriteByte(passwordAlphabet[n.Int64()])
		}
	}
	return b.String()
}

// GeneratedPasswordBits is the entropy of a [GeneratePassword] result.
func GeneratedPasswordBits() float64 {
	return passwordGroups * passwordGroupSize * math.Log2(float64(len(passwordAlphabet)))
}

// NormalizeGeneratedPassword turns what a person typed for a generated
// password (any case, with or without dashes or spaces) into the exact form
// [GeneratePassword] returned, which is what the identity was wrapped with.
// It reports false when the input cannot be a generated password; the
// caller should then try it unchanged, as the sender may have typed their
// own.
func NormalizeGeneratedPassword(s string) (string, bool) {
	const n = passwordGroups * passwordGroupSize
	if len(s) > 4*n {
		return "", false
	}
	chars := make([]byte, 0, n)
	for _, r := range s {
		if r == '-' || unicode.IsSpace(r) {
			continue
		}
		r = unicode.ToLower(r)
		if r > unicode.MaxASCII || strings.IndexByte(passwordAlphabet, byte(r)) < 0 {
			return "", false
		}
		chars = append(chars, byte(r))
	}
	if len(chars) != n {
		return "", false
	}
	var b strings.Builder
	for g := range passwordGroups {
		if g > 0 {
			b.WriteByte('-')
		}
		b.Write(chars[g*passwordGroupSize : (g+1)*passwordGroupSize])
	}
	return b.String(), true
}
