package segment

import (
	"bytes"
	"context"
	"io"
	"testing"

	"filippo.io/age"
)

const benchSize = 64 << 20

// BenchmarkWriter encrypts one full 64 MiB segment, written in 256 KiB
// pieces as an upload request delivers them.
func BenchmarkWriter(b *testing.B) {
	id := newIdentity(b)
	data := randBytes(256<<10, 1)
	b.SetBytes(benchSize)
	b.ReportAllocs()
	for b.Loop() {
		w, err := NewWriter(io.Discard, id.Recipient(), 0, nil)
		if err != nil {
			b.Fatal(err)
		}
		for range benchSize / len(data) {
			if _, err := w.Write(data); err != nil {
				b.Fatal(err)
			}
		}
		if _, err := w.Close(); err != nil {
			b.Fatal(err)
		}
	}
}

func benchFile(b *testing.B) (*memStore, *Manifest, *age.X25519Identity) {
	id := newIdentity(b)
	s := newStore()
	m := writeFile(b, s, id.Recipient(), randBytes(benchSize, 2), benchSize)
	return s, m, id
}

// BenchmarkFileReader reads 64 MiB sequentially in 256 KiB ReadAt calls, as
// a download does.
func BenchmarkFileReader(b *testing.B) {
	s, m, id := benchFile(b)
	p := make([]byte, 256<<10)
	b.SetBytes(benchSize)
	b.ReportAllocs()
	for b.Loop() {
		r := NewFileReader(context.Background(), m, s.open, id)
		for off := int64(0); off < r.Size(); off += int64(len(p)) {
			if _, err := r.ReadAt(p, off); err != nil && err != io.EOF {
				b.Fatal(err)
			}
		}
		r.Close()
	}
}

// BenchmarkRawAgeDecrypt is plain age.Decrypt of the same segment, the
// floor for BenchmarkFileReader.
func BenchmarkRawAgeDecrypt(b *testing.B) {
	s, m, id := benchFile(b)
	blob := s.blobs[m.Entries[0].Key]
	p := make([]byte, 256<<10)
	b.SetBytes(benchSize)
	b.ReportAllocs()
	for b.Loop() {
		r, err := age.Decrypt(bytes.NewReader(blob), id)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.CopyBuffer(io.Discard, r, p); err != nil {
			b.Fatal(err)
		}
	}
}
