package segment

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"
)

func FuzzUnmarshal(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte("\x01{}"))
	f.Add([]byte("\x01{\"e\":[]}"))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Unmarshal(b)
		if err != nil {
			if !errors.Is(err, ErrIntegrity) {
				t.Fatalf("error without ErrIntegrity: %v", err)
			}
			return
		}
		// Whatever is accepted is a well-formed file and survives a round trip.
		var end int64
		for _, e := range m.Entries {
			if e.Offset != end || e.Size <= 0 || e.Size > maxSize {
				t.Fatalf("accepted a bad entry: %+v", e)
			}
			end = e.end()
		}
		if _, err := m.Sum(); err != nil {
			t.Fatal(err)
		}
		m2, err := Unmarshal(m.Marshal())
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(m2.Marshal(), m.Marshal()) {
			t.Fatal("round trip changed the manifest")
		}
	})
}

// FuzzFileReader mutates one stored segment (flip, truncate, append) and
// requires every read to give either an ErrIntegrity error or exactly the
// original plaintext.
func FuzzFileReader(f *testing.F) {
	f.Add(uint32(0), byte(0), uint32(0), []byte(nil), false)
	f.Add(uint32(300), byte(1), uint32(0), []byte(nil), true)
	f.Add(uint32(0), byte(0), uint32(1), []byte(nil), true)
	f.Add(uint32(0), byte(0), uint32(65552), []byte(nil), true)
	f.Add(uint32(0), byte(0), uint32(0), []byte{0}, false)
	f.Add(uint32(70000), byte(0x80), uint32(0), []byte(nil), true)

	id := newIdentity(f)
	data := randBytes(70000+1000, 12)
	base := newStore()
	m := writeFile(f, base, id.Recipient(), data, 70000, 1000)

	f.Fuzz(func(t *testing.T, pos uint32, mask byte, cut uint32, extra []byte, second bool) {
		s := newStore()
		for k, v := range base.blobs {
			s.blobs[k] = bytes.Clone(v)
		}
		key := m.Entries[0].Key
		if second {
			key = m.Entries[1].Key
		}
		b := s.blobs[key]
		cut %= uint32(len(b))
		b[int(pos%uint32(len(b)))] ^= mask
		b = append(b[:len(b)-int(cut)], extra...)
		s.blobs[key] = b
		// Cutting a byte and appending the same one changes nothing.
		changed := !bytes.Equal(b, base.blobs[key])

		r := NewFileReader(context.Background(), m, s.open, id)
		defer r.Close()
		failed := false
		for _, piece := range []int64{65536, 100000} {
			for off := int64(0); off < r.Size(); off += piece {
				p := make([]byte, piece)
				n, err := r.ReadAt(p, off)
				if !bytes.Equal(p[:n], data[off:off+int64(n)]) {
					t.Fatalf("wrong bytes released at %d", off)
				}
				if err != nil && err != io.EOF {
					if !errors.Is(err, ErrIntegrity) {
						t.Fatalf("error without ErrIntegrity: %v", err)
					}
					failed = true
				}
			}
		}
		if changed && !failed {
			t.Fatal("mutated segment read without error")
		}
		if !changed && failed {
			t.Fatal("unchanged segment failed")
		}
	})
}
