package segment

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync/atomic"
	"testing"

	"filippo.io/age"

	"github.com/kluis-nl/kluis/internal/blob"
)

// memStore is the test's blob store: committed blobs by key.
type memStore struct {
	blobs map[string][]byte
	opens atomic.Int64
}

type memBlob struct{ *bytes.Reader }

func (memBlob) Close() error { return nil }

func newStore() *memStore { return &memStore{blobs: map[string][]byte{}} }

func (s *memStore) open(_ context.Context, key string) (blob.Reader, error) {
	b, ok := s.blobs[key]
	if !ok {
		return nil, blob.ErrNotFound
	}
	s.opens.Add(1)
	return memBlob{bytes.NewReader(b)}, nil
}

func newIdentity(t testing.TB) *age.X25519Identity {
	t.Helper()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func randBytes(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 42))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// setMaxSize lowers the segment bound for one test.
func setMaxSize(t *testing.T, n int64) {
	old := maxSize
	maxSize = n
	t.Cleanup(func() { maxSize = old })
}

// writeSegment encrypts one segment continuing m, stores it under key and
// appends it. Writes come in odd-sized pieces to exercise age's buffering.
func writeSegment(t testing.TB, s *memStore, m *Manifest, r age.Recipient, data []byte, key string) Entry {
	t.Helper()
	var buf bytes.Buffer
	w, err := NewWriter(&buf, r, m.Size(), m.HashState())
	if err != nil {
		t.Fatal(err)
	}
	for p := data; len(p) > 0; {
		k := min(len(p), 7777)
		if _, err := w.Write(p[:k]); err != nil {
			t.Fatal(err)
		}
		p = p[k:]
	}
	e, err := w.Close()
	if err != nil {
		t.Fatal(err)
	}
	if e.CipherSize != int64(buf.Len()) {
		t.Fatalf("CipherSize %d, wrote %d", e.CipherSize, buf.Len())
	}
	e.Key = key
	s.blobs[key] = buf.Bytes()
	if err := m.Append(e); err != nil {
		t.Fatal(err)
	}
	return e
}

// writeFile stores data as segments of the given sizes.
func writeFile(t testing.TB, s *memStore, r age.Recipient, data []byte, sizes ...int) *Manifest {
	t.Helper()
	m := &Manifest{}
	off := 0
	for i, n := range sizes {
		writeSegment(t, s, m, r, data[off:off+n], fmt.Sprintf("f/%d", i))
		off += n
	}
	if off != len(data) {
		t.Fatalf("sizes cover %d of %d bytes", off, len(data))
	}
	return m
}

// writeRolling stores data the way an upload does: one writer after the
// other, rolling over on ErrSegmentFull.
func writeRolling(t *testing.T, s *memStore, r age.Recipient, data []byte) *Manifest {
	t.Helper()
	m := &Manifest{}
	for len(data) > 0 {
		var buf bytes.Buffer
		w, err := NewWriter(&buf, r, m.Size(), m.HashState())
		if err != nil {
			t.Fatal(err)
		}
		n, err := w.Write(data)
		if err != nil && !errors.Is(err, ErrSegmentFull) {
			t.Fatal(err)
		}
		if (err != nil) != (n < len(data)) || w.Remaining() != maxSize-int64(n) || w.Written() != int64(n) {
			t.Fatalf("Write = %d, %v of %d; Remaining %d", n, err, len(data), w.Remaining())
		}
		if err != nil {
			if _, err := w.Write([]byte{1}); !errors.Is(err, ErrSegmentFull) {
				t.Fatalf("write to a full segment: %v", err)
			}
		}
		data = data[n:]
		e, err := w.Close()
		if err != nil {
			t.Fatal(err)
		}
		e.Key = fmt.Sprintf("r/%d", len(m.Entries))
		s.blobs[e.Key] = buf.Bytes()
		if err := m.Append(e); err != nil {
			t.Fatal(err)
		}
	}
	return m
}

func readAll(t *testing.T, s *memStore, m *Manifest, id age.Identity) []byte {
	t.Helper()
	r := NewFileReader(context.Background(), m, s.open, id)
	defer r.Close()
	got, err := io.ReadAll(io.NewSectionReader(r, 0, r.Size()))
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func checkFile(t *testing.T, s *memStore, m *Manifest, id age.Identity, data []byte) {
	t.Helper()
	if m.Size() != int64(len(data)) {
		t.Fatalf("Size %d, want %d", m.Size(), len(data))
	}
	if got := readAll(t, s, m, id); !bytes.Equal(got, data) {
		t.Fatalf("read %d bytes, differ from the %d written", len(got), len(data))
	}
	want := sha256.Sum256(data)
	sum, err := m.Sum()
	if err != nil || !bytes.Equal(sum, want[:]) {
		t.Fatalf("Sum = %x, %v; want %x", sum, err, want)
	}
	sum, err = Verify(context.Background(), m, s.open, id)
	if err != nil || !bytes.Equal(sum, want[:]) {
		t.Fatalf("Verify = %x, %v; want %x", sum, err, want)
	}
	// Through the stored form, as the caller will use it.
	m2, err := Unmarshal(m.Marshal())
	if err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, s, m2, id); !bytes.Equal(got, data) {
		t.Fatal("read after Unmarshal differs")
	}
}

func TestHeaderCapture(t *testing.T) {
	id := newIdentity(t)
	for _, n := range []int{0, 1, 65536, 200000} {
		var buf bytes.Buffer
		w, err := NewWriter(&buf, id.Recipient(), 0, nil)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(randBytes(n, 1))
		e, err := w.Close()
		if err != nil {
			t.Fatal(err)
		}
		hdr, err := age.ExtractHeader(bytes.NewReader(buf.Bytes()))
		if err != nil {
			t.Fatal(err)
		}
		if e.HeaderLen != int64(len(hdr))+16 {
			t.Fatalf("HeaderLen %d, header is %d bytes + 16 nonce", e.HeaderLen, len(hdr))
		}
		sum := sha256.Sum256(buf.Bytes()[:e.HeaderLen])
		if !bytes.Equal(sum[:], e.HeaderHash) {
			t.Fatal("HeaderHash is not the hash of the header and nonce")
		}
		if e.CipherSize != int64(buf.Len()) || e.CipherSize != cipherSize(e.HeaderLen, int64(n)) {
			t.Fatalf("CipherSize %d, file %d, formula %d", e.CipherSize, buf.Len(), cipherSize(e.HeaderLen, int64(n)))
		}
		if e.Size != int64(n) {
			t.Fatalf("Size %d, want %d", e.Size, n)
		}
	}
}

func TestRoundTrip(t *testing.T) {
	id := newIdentity(t)
	for _, sizes := range [][]int{
		{}, {1}, {65535}, {65536}, {65537},
		{100000, 1, 65536},
		{65536, 65536}, {1, 1, 1}, {131072, 65537, 3},
	} {
		t.Run(fmt.Sprint(sizes), func(t *testing.T) {
			total := 0
			for _, n := range sizes {
				total += n
			}
			data := randBytes(total, uint64(total))
			s := newStore()
			m := writeFile(t, s, id.Recipient(), data, sizes...)
			checkFile(t, s, m, id, data)
		})
	}
}

func TestRollOverMaxSize(t *testing.T) {
	setMaxSize(t, 3*65536+5)
	id := newIdentity(t)
	data := randBytes(700001, 3)
	s := newStore()
	m := writeRolling(t, s, id.Recipient(), data)
	if len(m.Entries) != 4 || m.Entries[0].Size != maxSize || m.Entries[3].Size != 700001-3*maxSize {
		t.Fatalf("unexpected segments: %+v", m.Entries)
	}
	checkFile(t, s, m, id, data)

	// Exactly full: the last write fits and is not refused.
	s = newStore()
	data = randBytes(int(maxSize), 4)
	m = writeRolling(t, s, id.Recipient(), data)
	if len(m.Entries) != 1 {
		t.Fatalf("%d segments for exactly maxSize", len(m.Entries))
	}
	checkFile(t, s, m, id, data)
}

func TestReadAtEdges(t *testing.T) {
	id := newIdentity(t)
	sizes := []int{100000, 1, 65536, 200000}
	data := randBytes(100000+1+65536+200000, 5)
	s := newStore()
	m := writeFile(t, s, id.Recipient(), data, sizes...)
	size := int64(len(data))

	var offs []int64
	for c := int64(0); c <= size+65536; c += 65536 {
		offs = append(offs, c-1, c, c+1)
	}
	for _, e := range m.Entries {
		for _, c := range []int64{e.Offset, e.end(), e.Offset + 65536} {
			offs = append(offs, c-2, c-1, c, c+1)
		}
	}
	offs = append(offs, size-1, size, size+1, size+1000)

	r := NewFileReader(context.Background(), m, s.open, id)
	defer r.Close()
	for _, off := range offs {
		if off < 0 {
			continue
		}
		for _, n := range []int{0, 1, 2, 65535, 65536, 65537, 256 << 10, len(data) + 10} {
			p := make([]byte, n)
			got, err := r.ReadAt(p, off)
			want := max(0, min(int64(n), size-off))
			if int64(got) != want {
				t.Fatalf("ReadAt(%d, %d) = %d, want %d (%v)", n, off, got, want, err)
			}
			if int64(got) < int64(n) && err != io.EOF {
				t.Fatalf("ReadAt(%d, %d) short read with %v", n, off, err)
			}
			if got == n && err != nil && err != io.EOF {
				t.Fatalf("ReadAt(%d, %d): %v", n, off, err)
			}
			if got > 0 && !bytes.Equal(p[:got], data[off:off+int64(got)]) {
				t.Fatalf("ReadAt(%d, %d): wrong data", n, off)
			}
		}
	}
	if _, err := r.ReadAt(make([]byte, 1), -1); err == nil {
		t.Fatal("negative offset accepted")
	}
}

func TestSequentialReadsKeepSegmentOpen(t *testing.T) {
	id := newIdentity(t)
	data := randBytes(3*65536*4+17, 6)
	s := newStore()
	m := writeFile(t, s, id.Recipient(), data, 3*65536*2, 3*65536*2+17)
	r := NewFileReader(context.Background(), m, s.open, id)
	if _, err := io.Copy(io.Discard, io.NewSectionReader(r, 0, r.Size())); err != nil {
		t.Fatal(err)
	}
	if n := s.opens.Load(); n != 2 {
		t.Fatalf("%d blob opens for 2 segments read sequentially", n)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := r.ReadAt(make([]byte, 1), 0); err == nil {
		t.Fatal("read after Close")
	}
}

func TestEmptyFile(t *testing.T) {
	id := newIdentity(t)
	s := newStore()
	m := &Manifest{}
	checkFile(t, s, m, id, nil)
	if m.HashState() != nil {
		t.Fatal("HashState of an empty file")
	}
	r := NewFileReader(context.Background(), m, s.open, id)
	if n, err := r.ReadAt(make([]byte, 10), 0); n != 0 || err != io.EOF {
		t.Fatalf("ReadAt on empty file = %d, %v", n, err)
	}
	// A writer closed without data makes an entry the manifest refuses.
	w, err := NewWriter(io.Discard, id.Recipient(), 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	e, err := w.Close()
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Append(e); err == nil {
		t.Fatal("empty segment appended")
	}
}

func TestResumeHashState(t *testing.T) {
	id := newIdentity(t)
	data := randBytes(300000, 7)
	s := newStore()

	m := &Manifest{}
	writeSegment(t, s, m, id.Recipient(), data[:123457], "a")
	stored := m.Marshal()

	// Another instance, after a crash: only the stored manifest survives.
	m2, err := Unmarshal(stored)
	if err != nil {
		t.Fatal(err)
	}
	writeSegment(t, s, m2, id.Recipient(), data[123457:123458], "b")
	m3, err := Unmarshal(m2.Marshal())
	if err != nil {
		t.Fatal(err)
	}
	writeSegment(t, s, m3, id.Recipient(), data[123458:], "c")
	checkFile(t, s, m3, id, data)

	// A hash state that does not belong to the offset is refused.
	if _, err := NewWriter(io.Discard, id.Recipient(), 5, m.HashState()); err == nil {
		t.Fatal("writer accepted a hash state for another offset")
	}
	if _, err := NewWriter(io.Discard, id.Recipient(), 5, nil); err == nil {
		t.Fatal("writer accepted a non-zero offset for a new file")
	}
	if _, err := NewWriter(io.Discard, id.Recipient(), 0, []byte("junk")); err == nil {
		t.Fatal("writer accepted a junk hash state")
	}
}

// Each segment is a standard age file: the age library (and so the age tool)
// decrypts it with nothing but the identity.
func TestInteroperability(t *testing.T) {
	id := newIdentity(t)
	data := randBytes(100000+1+65536, 8)
	s := newStore()
	m := writeFile(t, s, id.Recipient(), data, 100000, 1, 65536)
	var all []byte
	for _, e := range m.Entries {
		r, err := age.Decrypt(bytes.NewReader(s.blobs[e.Key]), id)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(r)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(b, data[e.Offset:e.end()]) {
			t.Fatalf("segment %s decrypts to other data", e.Key)
		}
		all = append(all, b...)
	}
	if !bytes.Equal(all, data) {
		t.Fatal("concatenated segments differ from the file")
	}
}

// expectIntegrity reads the whole file in 64 KiB pieces and requires an
// ErrIntegrity error, with every byte handed out before it being genuine.
func expectIntegrity(t *testing.T, s *memStore, m *Manifest, id age.Identity, data []byte) {
	t.Helper()
	r := NewFileReader(context.Background(), m, s.open, id)
	defer r.Close()
	var failed bool
	for off := int64(0); off < r.Size(); off += 65536 {
		p := make([]byte, 65536)
		n, err := r.ReadAt(p, off)
		if !bytes.Equal(p[:n], data[off:off+int64(n)]) {
			t.Fatalf("tampered bytes released at offset %d", off)
		}
		if err != nil && err != io.EOF {
			if !errors.Is(err, ErrIntegrity) {
				t.Fatalf("error without ErrIntegrity: %v", err)
			}
			failed = true
		}
	}
	// One error is enough to reset a download; a full read must fail too.
	if _, err := io.ReadAll(io.NewSectionReader(r, 0, r.Size())); !errors.Is(err, ErrIntegrity) {
		t.Fatalf("full read: %v", err)
	}
	if !failed {
		t.Fatal("no piece failed")
	}
	if _, err := Verify(context.Background(), m, s.open, id); !errors.Is(err, ErrIntegrity) {
		t.Fatalf("Verify: %v", err)
	}
}

func TestTamper(t *testing.T) {
	id := newIdentity(t)
	const n0, n1 = 50000, 3*65536 + 1000 // segment 1 has 4 chunks
	data := randBytes(n0+n1, 9)

	// repin updates the manifest entry to match the tampered blob, as if
	// the attacker could also rewrite the manifest's sizes and header hash:
	// then age's own checks must catch it.
	repin := func(e *Entry, b []byte) {
		e.CipherSize = int64(len(b))
		hdr, err := age.ExtractHeader(bytes.NewReader(b))
		if err == nil && len(b) >= len(hdr)+16 {
			e.HeaderLen = int64(len(hdr)) + 16
		}
		sum := sha256.Sum256(b[:min(int64(len(b)), e.HeaderLen)])
		e.HeaderHash = sum[:]
	}
	const enc = 65536 + 16
	cases := []struct {
		name   string
		mutate func(b []byte, e *Entry) []byte
	}{
		{"flip first chunk", func(b []byte, e *Entry) []byte { b[e.HeaderLen+100] ^= 1; return b }},
		{"flip second chunk", func(b []byte, e *Entry) []byte { b[e.HeaderLen+enc+5] ^= 0x80; return b }},
		{"flip last tag", func(b []byte, e *Entry) []byte { b[len(b)-1] ^= 1; return b }},
		{"flip nonce", func(b []byte, e *Entry) []byte { b[e.HeaderLen-1] ^= 1; return b }},
		{"drop last byte", func(b []byte, e *Entry) []byte { return b[:len(b)-1] }},
		{"drop last chunk", func(b []byte, e *Entry) []byte { return b[:e.HeaderLen+3*enc] }},
		{"append bytes", func(b []byte, e *Entry) []byte { return append(b, 0, 1, 2) }},
		{"append chunk", func(b []byte, e *Entry) []byte { return append(b, b[e.HeaderLen:e.HeaderLen+enc]...) }},
		{"swap chunks", func(b []byte, e *Entry) []byte {
			c0 := bytes.Clone(b[e.HeaderLen : e.HeaderLen+enc])
			copy(b[e.HeaderLen:], b[e.HeaderLen+enc:e.HeaderLen+2*enc])
			copy(b[e.HeaderLen+enc:], c0)
			return b
		}},
		{"header change", func(b []byte, e *Entry) []byte { b[30] ^= 1; return b }},
		{"header MAC", func(b []byte, e *Entry) []byte { b[e.HeaderLen-16-10] ^= 1; return b }},
		{"foreign segment", func(b []byte, e *Entry) []byte {
			var buf bytes.Buffer
			w, _ := NewWriter(&buf, newIdentity(t).Recipient(), 0, nil)
			w.Write(data[n0:])
			w.Close()
			return buf.Bytes()
		}},
	}
	for _, tc := range cases {
		for _, deep := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/repinned=%v", tc.name, deep), func(t *testing.T) {
				s := newStore()
				m := writeFile(t, s, id.Recipient(), data, n0, n1)
				e := &m.Entries[1]
				b := tc.mutate(bytes.Clone(s.blobs[e.Key]), e)
				s.blobs[e.Key] = b
				if deep {
					repin(e, b)
				}
				expectIntegrity(t, s, m, id, data)
			})
		}
	}

	t.Run("missing blob", func(t *testing.T) {
		s := newStore()
		m := writeFile(t, s, id.Recipient(), data, n0, n1)
		delete(s.blobs, m.Entries[1].Key)
		expectIntegrity(t, s, m, id, data)
	})
}

// A store that fails is not reported as tampering.
func TestStoreErrorIsNotIntegrity(t *testing.T) {
	id := newIdentity(t)
	data := randBytes(200000, 10)
	s := newStore()
	m := writeFile(t, s, id.Recipient(), data, 200000)
	boom := errors.New("disk on fire")
	open := func(ctx context.Context, key string) (blob.Reader, error) {
		br, err := s.open(ctx, key)
		return failingBlob{br, boom}, err
	}
	r := NewFileReader(context.Background(), m, open, id)
	defer r.Close()
	_, err := r.ReadAt(make([]byte, 10), 70000)
	if !errors.Is(err, boom) || errors.Is(err, ErrIntegrity) {
		t.Fatalf("got %v", err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	r = NewFileReader(ctx, m, s.open, id)
	if _, err := r.ReadAt(make([]byte, 10), 0); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v", err)
	}
	if _, err := Verify(ctx, m, s.open, id); !errors.Is(err, context.Canceled) || errors.Is(err, ErrIntegrity) {
		t.Fatalf("Verify cancelled: %v", err)
	}
}

// failingBlob serves the header and then fails.
type failingBlob struct {
	blob.Reader
	err error
}

func (f failingBlob) ReadAt(p []byte, off int64) (int, error) {
	if off >= 1000 {
		return 0, f.err
	}
	return f.Reader.ReadAt(p, off)
}

func TestManifestAttacks(t *testing.T) {
	id := newIdentity(t)
	data := randBytes(3*70000, 11)
	s := newStore()
	m := writeFile(t, s, id.Recipient(), data, 70000, 70000, 70000)

	edit := func(f func(w *wireManifest)) []byte {
		var w wireManifest
		if err := json.Unmarshal(m.Marshal()[1:], &w); err != nil {
			t.Fatal(err)
		}
		f(&w)
		b, _ := json.Marshal(w)
		return append([]byte{1}, b...)
	}
	bad := map[string][]byte{
		"dropped segment": edit(func(w *wireManifest) {
			w.Entries = append(w.Entries[:1], w.Entries[2:]...)
		}),
		"dropped segment, offsets fixed": edit(func(w *wireManifest) {
			w.Entries = append(w.Entries[:1], w.Entries[2:]...)
			w.Entries[1].Offset = 70000
		}),
		"dropped last segment's state": edit(func(w *wireManifest) {
			w.Entries[2].HashState = w.Entries[1].HashState
		}),
		"swapped entries": edit(func(w *wireManifest) {
			w.Entries[1], w.Entries[2] = w.Entries[2], w.Entries[1]
		}),
		"replayed entry": edit(func(w *wireManifest) {
			e := w.Entries[0]
			e.Offset = 70000
			w.Entries[1] = e
		}),
		"size grown":  edit(func(w *wireManifest) { w.Entries[2].Size++ }),
		"cipher size": edit(func(w *wireManifest) { w.Entries[2].CipherSize++ }),
		"no key":      edit(func(w *wireManifest) { w.Entries[0].Key = "" }),
		"same key":    edit(func(w *wireManifest) { w.Entries[1].Key = w.Entries[0].Key }),
		"short hash":  edit(func(w *wireManifest) { w.Entries[1].HeaderHash = w.Entries[1].HeaderHash[:31] }),
		"bad state":   edit(func(w *wireManifest) { w.Entries[1].HashState = []byte("x") }),
		"too big":     edit(func(w *wireManifest) { w.Entries[0].Size = MaxSize + 1 }),
		"unknown version": func() []byte {
			b := m.Marshal()
			b[0] = 2
			return b
		}(),
		"empty":    {},
		"not json": []byte("\x01{"),
		"trailing": append(m.Marshal(), []byte(" {}")...),
	}
	for name, b := range bad {
		if _, err := Unmarshal(b); !errors.Is(err, ErrIntegrity) {
			t.Errorf("%s: Unmarshal = %v", name, err)
		}
	}

	// Entry 2's key pointing at entry 1's blob: the manifest itself is
	// well formed, the blob is the wrong one.
	m2, err := Unmarshal(m.Marshal())
	if err != nil {
		t.Fatal(err)
	}
	m2.Entries[1].Key = m2.Entries[0].Key
	expectIntegrity(t, s, m2, id, data)

	// A blob swapped for another one of the same file, same size.
	s.blobs[m.Entries[1].Key], s.blobs[m.Entries[2].Key] = s.blobs[m.Entries[2].Key], s.blobs[m.Entries[1].Key]
	expectIntegrity(t, s, m, id, data)
}

func TestAppendLimits(t *testing.T) {
	m := &Manifest{}
	h := sha256.New()
	for i := range MaxSegments {
		h.Write([]byte{byte(i)})
		hh := sha256.Sum256([]byte(fmt.Sprint(i)))
		e := Entry{Key: fmt.Sprint(i), Offset: int64(i), Size: 1, HeaderLen: 200,
			CipherSize: cipherSize(200, 1), HeaderHash: hh[:], HashState: marshalHash(h)}
		if err := m.Append(e); err != nil {
			t.Fatalf("entry %d: %v", i, err)
		}
	}
	h.Write([]byte{0})
	e := Entry{Offset: MaxSegments, Size: 1, HeaderLen: 200, CipherSize: cipherSize(200, 1),
		HeaderHash: make([]byte, 32), HashState: marshalHash(h)}
	if err := m.Append(e); !errors.Is(err, ErrTooManySegments) {
		t.Fatalf("Append past MaxSegments: %v", err)
	}
	if _, err := Unmarshal(m.Marshal()); err != nil {
		t.Fatal(err)
	}

	m = &Manifest{}
	if err := m.Append(Entry{Offset: 1, Size: 1}); err == nil {
		t.Fatal("gap accepted")
	}
	e.Offset = 0
	if err := m.Append(e); err == nil {
		t.Fatal("hash state of 4097 bytes accepted for a 1-byte file")
	}
}

func TestConcurrentReadAt(t *testing.T) {
	id := newIdentity(t)
	data := randBytes(300000, 13)
	s := newStore()
	m := writeFile(t, s, id.Recipient(), data, 100000, 100000, 100000)
	r := NewFileReader(context.Background(), m, s.open, id)
	defer r.Close()
	done := make(chan error)
	for g := range 4 {
		go func() {
			p := make([]byte, 30000)
			for off := int64(g * 1000); off < 300000; off += 30000 {
				n, err := r.ReadAt(p, off)
				if (err != nil && err != io.EOF) || !bytes.Equal(p[:n], data[off:off+int64(n)]) {
					done <- fmt.Errorf("ReadAt at %d: %v", off, err)
					return
				}
			}
			done <- nil
		}()
	}
	for range 4 {
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
}
