package outbox

import "testing"

func TestMaskAddress(t *testing.T) {
	for in, want := range map[string]string{
		"Anna.Jansen@Example.NL": "A…@example.nl",
		"é@voorbeeld.nl":         "é…@voorbeeld.nl",
		"geen-adres":             "…",
		"@example.nl":            "…",
	} {
		if got := MaskAddress(in); got != want {
			t.Errorf("MaskAddress(%q) = %q, want %q", in, got, want)
		}
	}
	for in, want := range map[string]string{
		"550 5.1.1 <anna@example.nl>: no such user":                  "550 5.1.1 <a…@example.nl>: no such user",
		"dial tcp 10.0.0.1:25: connection refused":                   "dial tcp 10.0.0.1:25: connection refused",
		"452 too many recipients: bob@x.nl, carol.de.vries@y.org ok": "452 too many recipients: b…@x.nl, c…@y.org ok",
	} {
		if got := MaskAddresses(in); got != want {
			t.Errorf("MaskAddresses(%q) = %q, want %q", in, got, want)
		}
	}
}
