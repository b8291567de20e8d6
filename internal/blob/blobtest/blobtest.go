// Package blobtest is the conformance suite of blob.Store: every
// implementation (blob/local now, S3 later) runs Run in its tests, so that
// the rest of Kluis can rely on the contract in package blob and not on one
// store's habits.
package blobtest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kluis-nl/kluis/internal/blob"
)

// Run runs the suite. newStore must return a new, empty store for each call;
// every subtest gets its own, because some (CollectTemp) affect the whole
// store.
func Run(t *testing.T, newStore func(t *testing.T) blob.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s blob.Store)
	}{
		{"RoundTrip", testRoundTrip},
		{"ReadAt", testReadAt},
		{"InvisibleBeforeCommit", testInvisibleBeforeCommit},
		{"AbortLeavesNothing", testAbortLeavesNothing},
		{"AbortAfterCommit", testAbortAfterCommit},
		{"NoOverwrite", testNoOverwrite},
		{"NoOverwriteConcurrent", testNoOverwriteConcurrent},
		{"InvalidKeys", testInvalidKeys},
		{"Delete", testDelete},
		{"List", testList},
		{"ListPrefix", testListPrefix},
		{"CollectTempKeepsYoungWrites", testCollectTempKeepsYoung},
		{"CollectTempRemovesOldWrites", testCollectTempRemovesOld},
		{"CollectTempIgnoresFinished", testCollectTempIgnoresFinished},
		{"Large", testLarge},
		{"ConcurrentWriters", testConcurrentWriters},
		{"CanceledContext", testCanceledContext},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.fn(t, newStore(t))
		})
	}
}

// Pattern returns n reproducible pseudo-random bytes for seed; different
// seeds give different bytes, so a mix-up between blobs shows.
func Pattern(seed uint64, n int) []byte {
	b := make([]byte, n)
	rand.NewChaCha8(seedBytes(seed)).Read(b)
	return b
}

func seedBytes(seed uint64) [32]byte {
	var s [32]byte
	for i := range 8 {
		s[i] = byte(seed >> (8 * i))
	}
	return s
}

// Put stores data under key and fails the test on any error.
func Put(t testing.TB, s blob.Store, key string, data []byte) {
	t.Helper()
	w, err := s.Create(t.Context(), key)
	if err != nil {
		t.Fatalf("Create(%q): %v", key, err)
	}
	if _, err := w.Write(data); err != nil {
		w.Abort()
		t.Fatalf("Write(%q): %v", key, err)
	}
	if err := w.Commit(); err != nil {
		t.Fatalf("Commit(%q): %v", key, err)
	}
}

// Get reads the whole blob under key and fails the test on any error.
func Get(t testing.TB, s blob.Store, key string) []byte {
	t.Helper()
	r, err := s.Open(t.Context(), key)
	if err != nil {
		t.Fatalf("Open(%q): %v", key, err)
	}
	defer r.Close()
	b, err := io.ReadAll(io.NewSectionReader(r, 0, r.Size()))
	if err != nil {
		t.Fatalf("read %q: %v", key, err)
	}
	if int64(len(b)) != r.Size() {
		t.Fatalf("read %q: got %d bytes, Size says %d", key, len(b), r.Size())
	}
	return b
}

// Keys lists the keys under prefix, with their Info.
func Keys(t testing.TB, s blob.Store, prefix string) map[string]blob.Info {
	t.Helper()
	m := map[string]blob.Info{}
	err := s.List(t.Context(), prefix, func(i blob.Info) error {
		if _, dup := m[i.Key]; dup {
			t.Errorf("List(%q): %q reported twice", prefix, i.Key)
		}
		m[i.Key] = i
		return nil
	})
	if err != nil {
		t.Fatalf("List(%q): %v", prefix, err)
	}
	return m
}

func sortedKeys(m map[string]blob.Info) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

func assertNotFound(t *testing.T, s blob.Store, key string) {
	t.Helper()
	r, err := s.Open(t.Context(), key)
	if err == nil {
		r.Close()
		t.Fatalf("Open(%q): found, want blob.ErrNotFound", key)
	}
	if !errors.Is(err, blob.ErrNotFound) {
		t.Fatalf("Open(%q): %v, want blob.ErrNotFound", key, err)
	}
}

func assertEmpty(t *testing.T, s blob.Store) {
	t.Helper()
	if ks := Keys(t, s, ""); len(ks) != 0 {
		t.Fatalf("List: %v, want nothing", sortedKeys(ks))
	}
}

func testRoundTrip(t *testing.T, s blob.Store) {
	for i, n := range []int{0, 1, 4095, 4096, 4097, 100_000} {
		key := fmt.Sprintf("rt/%d", n)
		data := Pattern(uint64(i), n)
		w, err := s.Create(t.Context(), key)
		if err != nil {
			t.Fatal(err)
		}
		// Uneven pieces: a store must not depend on write sizes.
		for rest, step := data, 1; len(rest) > 0; step = step*3 + 1 {
			m := min(step, len(rest))
			if k, err := w.Write(rest[:m]); err != nil || k != m {
				t.Fatalf("Write(%d bytes) = %d, %v", m, k, err)
			}
			rest = rest[m:]
		}
		if err := w.Commit(); err != nil {
			t.Fatalf("Commit(%q): %v", key, err)
		}
		if got := Get(t, s, key); !bytes.Equal(got, data) {
			t.Fatalf("%q: read back %d bytes that differ from the %d written", key, len(got), n)
		}
		if info, ok := Keys(t, s, key)[key]; !ok || info.Size != int64(n) {
			t.Fatalf("List(%q): %+v (found %v), want size %d", key, info, ok, n)
		}
	}
}

func testReadAt(t *testing.T, s blob.Store) {
	const size = 10_000
	data := Pattern(7, size)
	Put(t, s, "readat", data)
	r, err := s.Open(t.Context(), "readat")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if r.Size() != size {
		t.Fatalf("Size() = %d, want %d", r.Size(), size)
	}
	for _, tc := range []struct {
		off    int64
		n      int
		want   int  // bytes read
		errEOF bool // io.EOF required (a short read must explain itself)
	}{
		{0, 100, 100, false},
		{1, 100, 100, false},
		{4095, 2, 2, false},
		{size / 2, 1000, 1000, false},
		{size - 100, 100, 100, false},
		{size - 1, 1, 1, false},
		{size - 5, 10, 5, true},
		{0, size + 1, size, true},
		{size, 1, 0, true},
		{size + 1000, 1, 0, true},
	} {
		p := make([]byte, tc.n)
		n, err := r.ReadAt(p, tc.off)
		if n != tc.want {
			t.Errorf("ReadAt(%d bytes at %d) = %d bytes, want %d", tc.n, tc.off, n, tc.want)
		}
		if tc.errEOF && !errors.Is(err, io.EOF) {
			t.Errorf("ReadAt(%d bytes at %d): err %v, want io.EOF", tc.n, tc.off, err)
		}
		if !tc.errEOF && err != nil && !(errors.Is(err, io.EOF) && n == tc.n) {
			t.Errorf("ReadAt(%d bytes at %d): %v", tc.n, tc.off, err)
		}
		if n > 0 && !bytes.Equal(p[:n], data[tc.off:tc.off+int64(n)]) {
			t.Errorf("ReadAt(%d bytes at %d): wrong bytes", tc.n, tc.off)
		}
	}
	// ReadAt must be safe for parallel use (io.ReaderAt): downloads of
	// several ranges read the same blob at once.
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := range 8 {
		wg.Go(func() {
			off := int64(i * 1000)
			p := make([]byte, 1000)
			if _, err := r.ReadAt(p, off); err != nil && !errors.Is(err, io.EOF) {
				errs <- err
				return
			}
			if !bytes.Equal(p, data[off:off+1000]) {
				errs <- fmt.Errorf("parallel ReadAt at %d: wrong bytes", off)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func testInvisibleBeforeCommit(t *testing.T, s blob.Store) {
	w, err := s.Create(t.Context(), "pending/x")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(Pattern(1, 5000)); err != nil {
		t.Fatal(err)
	}
	assertNotFound(t, s, "pending/x")
	assertEmpty(t, s)
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	if got := Get(t, s, "pending/x"); !bytes.Equal(got, Pattern(1, 5000)) {
		t.Fatal("read back differs")
	}
}

func testAbortLeavesNothing(t *testing.T, s blob.Store) {
	w, err := s.Create(t.Context(), "ab/x")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(Pattern(2, 10_000)); err != nil {
		t.Fatal(err)
	}
	if err := w.Abort(); err != nil {
		t.Fatalf("Abort: %v", err)
	}
	if err := w.Abort(); err != nil {
		t.Fatalf("second Abort: %v", err)
	}
	if _, err := w.Write([]byte("more")); err == nil {
		t.Fatal("Write after Abort succeeded")
	}
	if err := w.Commit(); err == nil {
		t.Fatal("Commit after Abort succeeded")
	}
	assertNotFound(t, s, "ab/x")
	assertEmpty(t, s)
	// The key is still free.
	Put(t, s, "ab/x", []byte("second"))
	if got := Get(t, s, "ab/x"); string(got) != "second" {
		t.Fatalf("got %q", got)
	}
}

func testAbortAfterCommit(t *testing.T, s blob.Store) {
	w, err := s.Create(t.Context(), "k")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("kept")); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	// Callers defer Abort right after Create; it must not undo a commit.
	if err := w.Abort(); err != nil {
		t.Fatalf("Abort after Commit: %v", err)
	}
	if _, err := w.Write([]byte("x")); err == nil {
		t.Fatal("Write after Commit succeeded")
	}
	if got := Get(t, s, "k"); string(got) != "kept" {
		t.Fatalf("got %q, want %q", got, "kept")
	}
}

func testNoOverwrite(t *testing.T, s blob.Store) {
	Put(t, s, "t/seg", []byte("original"))
	// A store may refuse at Create or at Commit; either way the original
	// stays.
	w, err := s.Create(t.Context(), "t/seg")
	if err == nil {
		if _, err := w.Write([]byte("replacement")); err != nil {
			t.Fatal(err)
		}
		if err := w.Commit(); err == nil {
			t.Fatal("Commit onto an existing key succeeded; blobs are immutable")
		}
		if err := w.Abort(); err != nil {
			t.Fatalf("Abort after failed Commit: %v", err)
		}
	}
	if got := Get(t, s, "t/seg"); string(got) != "original" {
		t.Fatalf("got %q, want %q", got, "original")
	}
	if ks := Keys(t, s, ""); len(ks) != 1 || ks["t/seg"].Size != int64(len("original")) {
		t.Fatalf("List: %+v", ks)
	}
}

func testNoOverwriteConcurrent(t *testing.T, s blob.Store) {
	const n = 8
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		winners []int
	)
	ws := make([]blob.Writer, n)
	for i := range n {
		w, err := s.Create(t.Context(), "race")
		if err != nil {
			continue // refused at Create: allowed
		}
		if _, err := w.Write(Pattern(uint64(100+i), 3000)); err != nil {
			t.Fatal(err)
		}
		ws[i] = w
	}
	for i, w := range ws {
		if w == nil {
			continue
		}
		wg.Go(func() {
			if w.Commit() == nil {
				mu.Lock()
				winners = append(winners, i)
				mu.Unlock()
			}
			w.Abort()
		})
	}
	wg.Wait()
	if len(winners) != 1 {
		t.Fatalf("%d commits of the same key succeeded, want exactly 1", len(winners))
	}
	if got := Get(t, s, "race"); !bytes.Equal(got, Pattern(uint64(100+winners[0]), 3000)) {
		t.Fatal("stored bytes are not those of the writer whose Commit succeeded")
	}
}

// InvalidKeys are keys every store must refuse. Keys come from server ids
// only, but a store checks anyway (security.md item 9).
var InvalidKeys = []string{
	"",
	"../x",
	"..",
	".",
	"a/../b",
	"a/./b",
	"/abs",
	"a/",
	"a//b",
	`a\b`,
	"a\x00b",
	"A",
	"a b",
	"-a",
	"_a",
	"é",
	"a.tmp",
	strings.Repeat("a", 65),                 // one part too long
	strings.Repeat("a/", 8) + "a",           // nine parts
	strings.Repeat("abcdefgh/", 200)[:1799], // very long
}

func testInvalidKeys(t *testing.T, s blob.Store) {
	ctx := t.Context()
	for _, key := range InvalidKeys {
		if blob.ValidKey(key) {
			t.Fatalf("blob.ValidKey(%q) = true; the suite's list is wrong", key)
		}
		if w, err := s.Create(ctx, key); err == nil {
			w.Abort()
			t.Errorf("Create(%q) succeeded", key)
		}
		if r, err := s.Open(ctx, key); err == nil {
			r.Close()
			t.Errorf("Open(%q) succeeded", key)
		}
		if err := s.Delete(ctx, key); err == nil {
			t.Errorf("Delete(%q) succeeded", key)
		}
	}
	assertEmpty(t, s)
	// Longest valid key: the store must take it.
	long := strings.TrimSuffix(strings.Repeat(strings.Repeat("z", 64)+"/", 8), "/")
	if !blob.ValidKey(long) {
		t.Fatal("long key is invalid; the suite is out of date")
	}
	Put(t, s, long, []byte("long"))
	if got := Get(t, s, long); string(got) != "long" {
		t.Fatalf("got %q", got)
	}
}

func testDelete(t *testing.T, s blob.Store) {
	ctx := t.Context()
	Put(t, s, "d/a", []byte("a"))
	Put(t, s, "d/b", []byte("b"))
	if err := s.Delete(ctx, "d/a"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	assertNotFound(t, s, "d/a")
	if err := s.Delete(ctx, "d/a"); err != nil {
		t.Fatalf("second Delete: %v", err)
	}
	if err := s.Delete(ctx, "never/was"); err != nil {
		t.Fatalf("Delete of a missing key: %v", err)
	}
	// "d" is a prefix of blobs, not a blob: deleting it deletes nothing.
	if err := s.Delete(ctx, "d"); err != nil {
		t.Fatalf("Delete(%q): %v", "d", err)
	}
	if got := sortedKeys(Keys(t, s, "")); !slices.Equal(got, []string{"d/b"}) {
		t.Fatalf("List after Delete: %v, want [d/b]", got)
	}
	if got := Get(t, s, "d/b"); string(got) != "b" {
		t.Fatalf("sibling: got %q", got)
	}
	if err := s.Delete(ctx, "d/b"); err != nil {
		t.Fatal(err)
	}
	assertEmpty(t, s)
	// A deleted key can be used again.
	Put(t, s, "d/a", []byte("again"))
	if got := Get(t, s, "d/a"); string(got) != "again" {
		t.Fatalf("got %q", got)
	}
}

func testList(t *testing.T, s blob.Store) {
	assertEmpty(t, s)
	start := time.Now()
	Put(t, s, "l/1", Pattern(1, 10))
	Put(t, s, "l/2", Pattern(2, 0))
	Put(t, s, "l/sub/3", Pattern(3, 3333))
	ks := Keys(t, s, "")
	want := map[string]int64{"l/1": 10, "l/2": 0, "l/sub/3": 3333}
	if got := sortedKeys(ks); len(got) != len(want) {
		t.Fatalf("List: %v", got)
	}
	for k, size := range want {
		info, ok := ks[k]
		if !ok {
			t.Fatalf("List: %q missing", k)
		}
		if info.Key != k || info.Size != size {
			t.Errorf("List: %+v, want key %q size %d", info, k, size)
		}
		// Generous: an object store's clock is not ours.
		if d := info.ModTime.Sub(start); d < -time.Hour || d > time.Hour {
			t.Errorf("List: %q ModTime %v, test started %v", k, info.ModTime, start)
		}
	}
	// fn's error stops the listing and reaches the caller.
	stop := errors.New("stop")
	calls := 0
	err := s.List(t.Context(), "", func(blob.Info) error { calls++; return stop })
	if !errors.Is(err, stop) {
		t.Fatalf("List with failing fn: %v, want %v", err, stop)
	}
	if calls != 1 {
		t.Fatalf("List called fn %d times after it failed, want 1", calls)
	}
}

func testListPrefix(t *testing.T, s blob.Store) {
	for _, k := range []string{"t1/s0", "t1/s1", "t10/s0", "t2/s0", "t2/x/y", "u"} {
		Put(t, s, k, []byte(k))
	}
	for _, tc := range []struct {
		prefix string
		want   []string
	}{
		{"", []string{"t1/s0", "t1/s1", "t10/s0", "t2/s0", "t2/x/y", "u"}},
		{"t1/", []string{"t1/s0", "t1/s1"}},
		{"t1", []string{"t1/s0", "t1/s1", "t10/s0"}},
		{"t1/s1", []string{"t1/s1"}},
		{"t2/x/", []string{"t2/x/y"}},
		{"t2/x", []string{"t2/x/y"}},
		{"t", []string{"t1/s0", "t1/s1", "t10/s0", "t2/s0", "t2/x/y"}},
		{"u", []string{"u"}},
		{"zzz", nil},
		{"t3/", nil},
		{"../", nil},
	} {
		if got := sortedKeys(Keys(t, s, tc.prefix)); !slices.Equal(got, tc.want) {
			t.Errorf("List(%q) = %v, want %v", tc.prefix, got, tc.want)
		}
	}
}

func testCollectTempKeepsYoung(t *testing.T, s blob.Store) {
	ctx := t.Context()
	Put(t, s, "c/done", []byte("done"))
	w, err := s.Create(ctx, "c/busy")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort()
	if _, err := w.Write(Pattern(3, 10_000)); err != nil {
		t.Fatal(err)
	}
	n, err := s.CollectTemp(ctx, time.Now().Add(-time.Hour))
	if err != nil {
		t.Fatalf("CollectTemp: %v", err)
	}
	if n != 0 {
		t.Fatalf("CollectTemp removed %d writes younger than the cutoff", n)
	}
	if _, err := w.Write(Pattern(4, 10_000)); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(); err != nil {
		t.Fatalf("Commit after CollectTemp: %v", err)
	}
	want := append(Pattern(3, 10_000), Pattern(4, 10_000)...)
	if got := Get(t, s, "c/busy"); !bytes.Equal(got, want) {
		t.Fatal("read back differs")
	}
	if got := Get(t, s, "c/done"); string(got) != "done" {
		t.Fatalf("got %q", got)
	}
}

func testCollectTempRemovesOld(t *testing.T, s blob.Store) {
	ctx := t.Context()
	Put(t, s, "c/done", []byte("done"))
	w, err := s.Create(ctx, "c/abandoned")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort()
	data := Pattern(5, 100_000)
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	// How many it counts depends on the store (one that buffers a small
	// write has nothing to remove yet), but a second pass finds nothing.
	if _, err := s.CollectTemp(ctx, time.Now().Add(time.Hour)); err != nil {
		t.Fatalf("CollectTemp: %v", err)
	}
	if n, err := s.CollectTemp(ctx, time.Now().Add(time.Hour)); err != nil || n != 0 {
		t.Fatalf("second CollectTemp = %d, %v; want 0, nil", n, err)
	}
	// Committed blobs are not unfinished writes.
	if got := Get(t, s, "c/done"); string(got) != "done" {
		t.Fatalf("committed blob after CollectTemp: %q", got)
	}
	if got := sortedKeys(Keys(t, s, "")); !slices.Equal(got, []string{"c/done"}) {
		t.Fatalf("List after CollectTemp: %v", got)
	}
	// The collected writer must not produce a partial blob: its Commit
	// either fails (nothing visible) or stores every byte written.
	if err := w.Commit(); err != nil {
		assertNotFound(t, s, "c/abandoned")
	} else if got := Get(t, s, "c/abandoned"); !bytes.Equal(got, data) {
		t.Fatalf("Commit after CollectTemp stored %d bytes that differ from the %d written", len(got), len(data))
	}
}

func testCollectTempIgnoresFinished(t *testing.T, s blob.Store) {
	ctx := t.Context()
	Put(t, s, "f/committed", Pattern(6, 10_000))
	w, err := s.Create(ctx, "f/aborted")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(Pattern(7, 10_000)); err != nil {
		t.Fatal(err)
	}
	if err := w.Abort(); err != nil {
		t.Fatal(err)
	}
	n, err := s.CollectTemp(ctx, time.Now().Add(time.Hour))
	if err != nil || n != 0 {
		t.Fatalf("CollectTemp = %d, %v; want 0, nil (commit and abort leave nothing to collect)", n, err)
	}
	if got := Get(t, s, "f/committed"); !bytes.Equal(got, Pattern(6, 10_000)) {
		t.Fatal("committed blob changed")
	}
}

func testLarge(t *testing.T, s blob.Store) {
	const (
		piece = 1 << 20
		total = 20 * piece
	)
	w, err := s.Create(t.Context(), "large/blob")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort()
	// Generated piece by piece: the suite holds 1 MiB, not 20.
	src := rand.NewChaCha8(seedBytes(42))
	h := sha256.New()
	buf := make([]byte, piece)
	for range total / piece {
		src.Read(buf)
		h.Write(buf)
		if n, err := w.Write(buf); err != nil || n != piece {
			t.Fatalf("Write = %d, %v", n, err)
		}
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	want := h.Sum(nil)

	r, err := s.Open(t.Context(), "large/blob")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if r.Size() != total {
		t.Fatalf("Size() = %d, want %d", r.Size(), total)
	}
	// Odd-sized reads, so they straddle whatever the store's units are.
	h.Reset()
	if _, err := io.CopyBuffer(h, io.NewSectionReader(r, 0, r.Size()), make([]byte, piece+7)); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(h.Sum(nil), want) {
		t.Fatal("read back differs")
	}
	if info := Keys(t, s, "large/")["large/blob"]; info.Size != total {
		t.Fatalf("List size %d, want %d", info.Size, total)
	}
}

func testConcurrentWriters(t *testing.T, s blob.Store) {
	const (
		writers = 16
		size    = 64 << 10
	)
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for i := range writers {
		wg.Go(func() {
			key := fmt.Sprintf("cc/%d/seg", i)
			data := Pattern(uint64(1000+i), size)
			w, err := s.Create(context.Background(), key)
			if err != nil {
				errs <- err
				return
			}
			// Small pieces, so the writers interleave.
			for off := 0; off < size; off += 4096 {
				if _, err := w.Write(data[off : off+4096]); err != nil {
					w.Abort()
					errs <- fmt.Errorf("%s: %w", key, err)
					return
				}
			}
			if err := w.Commit(); err != nil {
				errs <- fmt.Errorf("%s: %w", key, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		return
	}
	for i := range writers {
		key := fmt.Sprintf("cc/%d/seg", i)
		if got := Get(t, s, key); !bytes.Equal(got, Pattern(uint64(1000+i), size)) {
			t.Errorf("%s: read back differs", key)
		}
	}
	if n := len(Keys(t, s, "cc/")); n != writers {
		t.Errorf("List: %d blobs, want %d", n, writers)
	}
}

func testCanceledContext(t *testing.T, s blob.Store) {
	Put(t, s, "x", []byte("x"))
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if w, err := s.Create(ctx, "y"); err == nil {
		w.Abort()
		t.Error("Create with a canceled context succeeded")
	}
	err := s.List(ctx, "", func(blob.Info) error { return nil })
	if err == nil {
		t.Error("List with a canceled context succeeded")
	}
	assertNotFound(t, s, "y")
}
