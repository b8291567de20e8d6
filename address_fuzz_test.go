package kluis

import (
	"strings"
	"testing"
)

// FuzzParseAddressList is security.md item 29 for recipient lists: any
// pasted text gives no panic; every address returned parses again to
// itself, holds no line break or control character, and fits the limit.
func FuzzParseAddressList(f *testing.F) {
	for _, s := range []string{
		"a@example.nl",
		"Piet <p@example.nl>; \"Jansen, Piet\" <pj@example.nl>, c@EXAMPLE.NL\n d@bücher.de",
		"a@example.nl\r\nBcc: victim@example.nl",
		"\"a;b\"@example.nl",
		"<a@example.nl",
		"a@@example.nl, @example.nl, a@, a@localhost",
		"=?utf-8?q?Piet?= <p@example.nl>",
		"a@xn--bcher-kva.de;A@Example.NL",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		addrs, errs := ParseAddressList(s)
		for _, err := range errs {
			if msg := ErrorMessage(err); strings.ContainsAny(msg, "\r\n") {
				t.Errorf("error message with a line break: %q", msg)
			}
		}
		seen := map[string]bool{}
		for _, a := range addrs {
			if strings.ContainsAny(a, "\r\n\x00") {
				t.Fatalf("address with a line break or NUL: %q", a)
			}
			for _, r := range a {
				if r < 0x20 || r == 0x7f {
					t.Fatalf("address with a control character: %q", a)
				}
			}
			if len(a) > MaxAddressLength {
				t.Fatalf("address of %d bytes", len(a))
			}
			again, err := ParseAddress(a)
			if err != nil {
				t.Fatalf("%q (from %q) does not parse again: %v", a, s, err)
			}
			if again != a {
				t.Fatalf("%q parses again to %q", a, again)
			}
			k := strings.ToLower(a)
			if seen[k] {
				t.Fatalf("duplicate %q", a)
			}
			seen[k] = true
		}
	})
}
