package kluis

import (
	"net/mail"
	"strings"
	"unicode"

	"golang.org/x/net/idna"
)

// MaxAddressLength is the longest e-mail address accepted (RFC 5321 path limit).
const MaxAddressLength = 254

// ParseAddress validates one e-mail address, with or without a display
// name, and returns the bare address with the domain in lower case and in
// its ASCII (punycode) form. The error message names the input and says
// what is wrong.
func ParseAddress(s string) (string, error) {
	in := strings.TrimSpace(s)
	if in == "" {
		return "", Errorf(EINVALID, "An e-mail address is empty.")
	}
	if strings.ContainsAny(in, "\r\n\x00") {
		return "", Errorf(EINVALID, "%q is not a valid e-mail address: it contains a line break or control character.", printable(in))
	}
	a, err := mail.ParseAddress(in)
	if err != nil {
		return "", Errorf(EINVALID, "%q is not a valid e-mail address. Write it as name@example.nl.", printable(in))
	}
	at := strings.LastIndexByte(a.Address, '@')
	if at <= 0 || at == len(a.Address)-1 {
		return "", Errorf(EINVALID, "%q is not a valid e-mail address. Write it as name@example.nl.", printable(in))
	}
	local, domain := a.Address[:at], a.Address[at+1:]
	ascii, err := idna.Lookup.ToASCII(strings.ToLower(domain))
	if err != nil || !strings.Contains(ascii, ".") || strings.HasSuffix(ascii, ".") {
		return "", Errorf(EINVALID, "%q has no valid domain after the @.", printable(in))
	}
	for _, r := range local {
		if unicode.IsControl(r) || unicode.IsSpace(r) {
			return "", Errorf(EINVALID, "%q is not a valid e-mail address.", printable(in))
		}
	}
	addr := local + "@" + ascii
	// net/mail unquotes a quoted local part ("a,b"@x.nl gives a,b@x.nl),
	// which is no longer one valid address in a header or a pasted list.
	// Keep only addresses that stand on their own (found by
	// FuzzParseAddressList).
	if p, err := mail.ParseAddress(addr); err != nil || p.Address != addr || p.Name != "" {
		return "", Errorf(EINVALID, "%q is not supported: write the address without quotes or special characters before the @.", printable(in))
	}
	if len(addr) > MaxAddressLength {
		return "", Errorf(EINVALID, "%q is too long for an e-mail address.", printable(in))
	}
	return addr, nil
}

// SplitAddressList splits a pasted list on ';', ',' and line breaks, keeping
// separators that sit inside quotes or angle brackets ("Jansen, Piet"
// <p@x.nl>). Empty items are dropped.
func SplitAddressList(s string) []string {
	var out []string
	var cur strings.Builder
	inQuote, inAngle := false, false
	flush := func() {
		if t := strings.TrimSpace(cur.String()); t != "" {
			out = append(out, t)
		}
		cur.Reset()
	}
	for _, r := range s {
		switch {
		case r == '"' && !inAngle:
			inQuote = !inQuote
		case r == '<' && !inQuote:
			inAngle = true
		case r == '>' && !inQuote:
			inAngle = false
		case (r == ';' || r == ',' || r == '\n' || r == '\r') && !inQuote && !inAngle:
			flush()
			continue
		}
		cur.WriteRune(r)
	}
	flush()
	return out
}

// ParseAddressList parses a pasted list of addresses. It returns the valid
// bare addresses (deduplicated, in order) and one error per bad item.
func ParseAddressList(s string) ([]string, []error) {
	var addrs []string
	var errs []error
	seen := map[string]bool{}
	for _, item := range SplitAddressList(s) {
		a, err := ParseAddress(item)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if !seen[strings.ToLower(a)] {
			seen[strings.ToLower(a)] = true
			addrs = append(addrs, a)
		}
	}
	return addrs, errs
}

// printable shortens and sanitises user input for an error message.
func printable(s string) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return -1
		}
		return r
	}, s)
	if len(s) > 80 {
		s = s[:77] + "..."
	}
	return s
}
