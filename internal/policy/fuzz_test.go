package policy

import (
	"bytes"
	"os"
	"testing"
)

// FuzzParse: Parse never panics; whatever it accepts marshals to a file
// that parses back to the same policy, and Decide never panics on it.
func FuzzParse(f *testing.F) {
	f.Add([]byte(orgPolicy))
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"defaults": {"max_transfer_size": "1e3GB", "default_expiry": "1.5d"}}`))
	if b, err := os.ReadFile("../../docs/policy.example.json"); err == nil {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		p, err := Parse(in)
		if err != nil {
			if p != nil {
				t.Fatal("a policy with an error")
			}
			return
		}
		b, err := p.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		q, err := Parse(b)
		if err != nil {
			t.Fatalf("Parse(Marshal(p)): %v\n%s", err, b)
		}
		b2, _ := q.Marshal()
		if !bytes.Equal(b, b2) {
			t.Fatalf("round trip differs:\n%s\n%s", b, b2)
		}
		for _, s := range []string{"a@gemeente.nl", "x@extern.nl", "Y@Sub.Zorg.NL"} {
			p.Decide(s, []string{"b@gemeente.nl", "c@elders.nl", "d@a.zorg.nl"})
		}
	})
}
