package segment

import (
	"bytes"
	"errors"
	"testing"
)

// entriesOf stores m one entry at a time, as Kluis does since migration
// 0009: the head after each Append, and each entry as it was stored.
func entriesOf(t *testing.T, m *Manifest) (Head, []Entry) {
	t.Helper()
	var h Head
	var out []Entry
	for _, e := range m.Entries {
		e.Prev = nil
		next, err := h.Append(&e)
		if err != nil {
			t.Fatal(err)
		}
		got, err := UnmarshalEntry(MarshalEntry(e))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, got)
		h = next
	}
	h2, err := UnmarshalHead(h.Marshal())
	if err != nil {
		t.Fatal(err)
	}
	return h2, out
}

// TestHeadAndEntries: a file stored one entry at a time reads back as the
// same file, and any entry dropped, swapped, repeated or taken from
// another file fails Assemble with ErrIntegrity.
func TestHeadAndEntries(t *testing.T) {
	s, id := newStore(), newIdentity(t)
	data := randBytes(500_000, 1)
	m := writeFile(t, s, id.Recipient(), data, 100_000, 150_000, 1, 249_999)
	h, es := entriesOf(t, m)
	if h.Count != 4 || h.Size != int64(len(data)) {
		t.Fatalf("head %+v", h)
	}
	got, err := Assemble(h, es)
	if err != nil {
		t.Fatal(err)
	}
	if sum, _ := got.Sum(); !bytes.Equal(sum, mustSum(t, m)) {
		t.Fatal("assembled file has another checksum")
	}
	if hs, _ := h.Sum(); !bytes.Equal(hs, mustSum(t, m)) {
		t.Fatal("head has another checksum")
	}
	checkFile(t, s, got, id, data)
	// A second file with the same sizes, for foreign entries.
	m2 := writeFile(t, newStore(), id.Recipient(), data, 100_000, 150_000, 1, 249_999)
	h2, es2 := entriesOf(t, m2)
	bad := map[string]func() (Head, []Entry){
		"dropped middle": func() (Head, []Entry) { return h, append(append([]Entry{}, es[:1]...), es[2:]...) },
		"dropped last":   func() (Head, []Entry) { return h, es[:3] },
		"swapped":        func() (Head, []Entry) { return h, []Entry{es[0], es[2], es[1], es[3]} },
		"repeated":       func() (Head, []Entry) { return h, []Entry{es[0], es[1], es[1], es[3]} },
		"foreign entry":  func() (Head, []Entry) { return h, []Entry{es[0], es2[1], es[2], es[3]} },
		"foreign head":   func() (Head, []Entry) { return h2, es },
		"older head": func() (Head, []Entry) {
			var old Head
			for i := range 3 {
				e := es[i]
				old, _ = old.Append(&e)
			}
			return old, es
		},
	}
	for name, mk := range bad {
		h, es := mk()
		if _, err := Assemble(h, es); !errors.Is(err, ErrIntegrity) {
			t.Errorf("%s: %v, want ErrIntegrity", name, err)
		}
	}
	// Append checks the offset and the count.
	e := es[1]
	if _, err := h.Append(&e); err == nil {
		t.Error("appended an entry at the wrong offset")
	}
	if _, err := (Head{Count: MaxSegments}).Append(&e); !errors.Is(err, ErrTooManySegments) {
		t.Errorf("append past MaxSegments: %v", err)
	}
}

func mustSum(t *testing.T, m *Manifest) []byte {
	t.Helper()
	s, err := m.Sum()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// FuzzStoredEntry: whatever UnmarshalEntry and UnmarshalHead accept is well
// formed, survives a round trip, and a head with its one entry either
// assembles into a file that ends where the head says or is refused with
// ErrIntegrity.
func FuzzStoredEntry(f *testing.F) {
	f.Add([]byte("\x01{}"), []byte("\x01{\"n\":0,\"s\":0}"))
	f.Add([]byte("\x01{\"k\":\"f/0\",\"o\":0,\"s\":5,\"c\":205,\"h\":\"DybsGaBJ0bYFupGvvedSZzE+PfOJxNUXITrxLECCt1o=\",\"hl\":184,\"hs\":\"c2hhA2oJ5me7Z66FPG7zcqVP9TpRDlJ/mwVojB+D2atb4M0Z4JB42GQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAF\"}"),
		[]byte("\x01{\"n\":1,\"s\":5,\"hs\":\"c2hhA2oJ5me7Z66FPG7zcqVP9TpRDlJ/mwVojB+D2atb4M0Z4JB42GQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAF\",\"l\":\"DybsGaBJ0bYFupGvvedSZzE+PfOJxNUXITrxLECCt1o=\"}"))
	f.Fuzz(func(t *testing.T, eb, hb []byte) {
		e, eerr := UnmarshalEntry(eb)
		if eerr != nil && !errors.Is(eerr, ErrIntegrity) {
			t.Fatalf("entry error without ErrIntegrity: %v", eerr)
		}
		if eerr == nil {
			if e2, err := UnmarshalEntry(MarshalEntry(e)); err != nil || !bytes.Equal(MarshalEntry(e2), MarshalEntry(e)) {
				t.Fatalf("entry round trip: %v", err)
			}
		}
		h, herr := UnmarshalHead(hb)
		if herr != nil && !errors.Is(herr, ErrIntegrity) {
			t.Fatalf("head error without ErrIntegrity: %v", herr)
		}
		if herr == nil {
			if h2, err := UnmarshalHead(h.Marshal()); err != nil || !bytes.Equal(h2.Marshal(), h.Marshal()) {
				t.Fatalf("head round trip: %v", err)
			}
		}
		if eerr != nil || herr != nil {
			return
		}
		m, err := Assemble(h, []Entry{e})
		if err != nil {
			if !errors.Is(err, ErrIntegrity) {
				t.Fatalf("assemble error without ErrIntegrity: %v", err)
			}
			return
		}
		if m.Size() != h.Size || len(m.Entries) != 1 {
			t.Fatalf("assembled %d entries ending at %d, head says %d", len(m.Entries), m.Size(), h.Size)
		}
	})
}
