package gateway

import (
	"strings"
	"testing"

	"github.com/kluis-nl/kluis"
)

func TestRoute(t *testing.T) {
	const dom = "secure.example.nl"
	for _, c := range []struct {
		in     string
		want   string
		routed bool
		err    string // part of the reason; "" for none
	}{
		{in: "alice@example.org", want: "alice@example.org"},
		{in: "alice@secure.example.nl.example.org", want: "alice@secure.example.nl.example.org"},
		{in: "alice=example.org@secure.example.nl", want: "alice@example.org", routed: true},
		{in: "alice=example.org@SECURE.example.NL", want: "alice@example.org", routed: true},
		{in: "j.de.vries=sub.example.co.uk@secure.example.nl", want: "j.de.vries@sub.example.co.uk", routed: true},
		// The last = splits: a local part with = of its own stays whole.
		{in: "a=b=example.org@secure.example.nl", want: "a=b@example.org", routed: true},
		{in: "info=gemeente.nl@secure.example.nl", want: "info@gemeente.nl", routed: true},
		// Internationalised domains are written in ASCII.
		{in: "jan=bücher.example@secure.example.nl", want: "jan@xn--bcher-kva.example", routed: true},
		{in: "alice@secure.example.nl", routed: true, err: "does not say to whom"},
		{in: "=example.org@secure.example.nl", routed: true, err: "does not say to whom"},
		{in: "alice=@secure.example.nl", routed: true, err: "does not say to whom"},
		{in: "alice%example.org@secure.example.nl", routed: true, err: "does not say to whom"},
		{in: "alice=localhost@secure.example.nl", routed: true, err: "not a domain name"},
		{in: "alice=exa_mple.org@secure.example.nl", routed: true, err: "not a domain name"},
		{in: "alice=example..org@secure.example.nl", routed: true, err: "not a valid address"},
		{in: "alice=secure.example.nl@secure.example.nl", routed: true, err: "loop"},
		{in: "x=a=secure.example.nl@secure.example.nl", routed: true, err: "loop"},
		{in: "alice=sub.secure.example.nl@secure.example.nl", routed: true, err: "loop"},
		{in: "al ice=example.org@secure.example.nl", routed: true, err: "not a valid address"},
	} {
		got, routed, err := route(c.in, dom)
		if routed != c.routed {
			t.Errorf("%s: routed %v, want %v", c.in, routed, c.routed)
		}
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s: error %v, want one about %q", c.in, err, c.err)
			} else if !strings.Contains(err.Error(), dom) {
				t.Errorf("%s: the reason %q does not name the domain to write", c.in, err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%s: %q, %v; want %q", c.in, got, err, c.want)
		}
	}
	// No gateway domain: nothing is routed.
	if got, routed, err := route("alice=example.org@secure.example.nl", ""); routed || err != nil || got != "alice=example.org@secure.example.nl" {
		t.Errorf("without a domain: %q %v %v", got, routed, err)
	}
}

// FuzzRoute: whatever the address, route either leaves it alone, refuses
// it with a reason, or gives one valid address that is not at the
// gateway's domain (so a routed mail cannot come back to the gateway).
func FuzzRoute(f *testing.F) {
	for _, s := range []string{"alice=example.org@secure.example.nl", "a=b=c.nl@secure.example.nl", "x@secure.example.nl", "=@secure.example.nl", "a=secure.example.nl@secure.example.nl"} {
		f.Add(s)
	}
	const dom = "secure.example.nl"
	f.Fuzz(func(t *testing.T, in string) {
		in = strings.ToLower(in)
		got, routed, err := route(in, dom)
		switch {
		case !routed:
			if err != nil || got != in {
				t.Fatalf("%q not routed: %q %v", in, got, err)
			}
		case err != nil:
			if got != "" || err.Error() == "" {
				t.Fatalf("%q refused but gives %q", in, got)
			}
		default:
			if p, perr := kluis.ParseAddress(got); perr != nil || p != got {
				t.Fatalf("%q routed to %q, not a valid address (%v)", in, got, perr)
			}
			if strings.HasSuffix(got, "@"+dom) || strings.HasSuffix(got, "."+dom) {
				t.Fatalf("%q routed back to the gateway: %q", in, got)
			}
		}
	})
}
