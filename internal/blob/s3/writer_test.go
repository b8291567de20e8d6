package s3

import (
	"bytes"
	"errors"
	"io"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/kluis-nl/kluis/internal/blob"
	"github.com/kluis-nl/kluis/internal/blob/blobtest"
)

func uploads(t *testing.T, s *Store) []minio.ObjectMultipartInfo {
	t.Helper()
	res, err := s.core.ListMultipartUploads(t.Context(), s.bucket, s.prefix, "", "", "", 1000)
	if err != nil {
		t.Fatal(err)
	}
	return res.Uploads
}

func TestMultipart(t *testing.T) {
	s := prefixStore(t, *testConfig(t, envURL))
	const size = 12 << 20
	data := blobtest.Pattern(12, size)
	w, err := s.Create(t.Context(), "mp/blob")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort()
	for rest := data; len(rest) > 0; {
		n := min(len(rest), 1<<20+13)
		if _, err := w.Write(rest[:n]); err != nil {
			t.Fatal(err)
		}
		rest = rest[n:]
	}
	// Before Commit: one multipart upload with the two full parts, and
	// nothing visible.
	ups := uploads(t, s)
	if len(ups) != 1 || ups[0].Key != s.prefix+"mp/blob" {
		t.Fatalf("uploads before Commit: %+v", ups)
	}
	parts, err := s.core.ListObjectParts(t.Context(), s.bucket, ups[0].Key, ups[0].UploadID, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if len(parts.ObjectParts) != 2 {
		t.Fatalf("%d parts uploaded before Commit, want 2", len(parts.ObjectParts))
	}
	if _, err := s.Open(t.Context(), "mp/blob"); !errors.Is(err, blob.ErrNotFound) {
		t.Fatalf("Open before Commit: %v", err)
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	if ups := uploads(t, s); len(ups) != 0 {
		t.Fatalf("uploads after Commit: %+v", ups)
	}
	info, err := s.core.StatObject(t.Context(), s.bucket, s.prefix+"mp/blob", minio.StatObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("ETag %s (a multipart ETag ends in -3)", info.ETag)
	if !strings.HasSuffix(info.ETag, "-3") {
		t.Errorf("ETag %q: not a 3-part multipart object", info.ETag)
	}

	r, err := s.Open(t.Context(), "mp/blob")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if r.Size() != size {
		t.Fatalf("Size %d", r.Size())
	}
	const part = 5 << 20
	for _, rg := range [][2]int64{
		{part - 1, 2}, {part - 100_000, 200_000}, {2*part - 7, 14},
		{0, 1}, {size - 1, 1}, {part - 3<<20, 6 << 20}, {2*part - 1<<20, size - (2*part - 1<<20)},
		{size - 300_000, 300_000}, {part, part},
	} {
		p := make([]byte, rg[1])
		n, err := r.ReadAt(p, rg[0])
		if n != len(p) || (err != nil && !(errors.Is(err, io.EOF) && rg[0]+rg[1] == size)) {
			t.Fatalf("ReadAt(%d, %d) = %d, %v", rg[1], rg[0], n, err)
		}
		if !bytes.Equal(p, data[rg[0]:rg[0]+rg[1]]) {
			t.Fatalf("ReadAt(%d, %d): wrong bytes", rg[1], rg[0])
		}
	}
	if got := blobtest.Get(t, s, "mp/blob"); !bytes.Equal(got, data) {
		t.Fatal("whole blob differs")
	}
}

// TestWriteMemory writes 64 MiB and checks that the heap grows by about one
// part, not by the blob.
func TestWriteMemory(t *testing.T) {
	s := prefixStore(t, *testConfig(t, envURL))
	const (
		total = 64 << 20
		piece = 256 << 10
	)
	buf := blobtest.Pattern(64, piece)
	var (
		mu   sync.Mutex
		ms   runtime.MemStats
		base uint64
		peak uint64
	)
	runtime.GC()
	runtime.ReadMemStats(&ms)
	base, peak = ms.HeapInuse, ms.HeapInuse
	allocBefore := ms.TotalAlloc
	sample := func() {
		mu.Lock()
		defer mu.Unlock()
		runtime.ReadMemStats(&ms)
		peak = max(peak, ms.HeapInuse)
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { // samples between Writes too, while a part is in flight
		defer close(done)
		tk := time.NewTicker(5 * time.Millisecond)
		defer tk.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tk.C:
				sample()
			}
		}
	}()
	w, err := s.Create(t.Context(), "mem/blob")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort()
	for range total / piece {
		if _, err := w.Write(buf); err != nil {
			t.Fatal(err)
		}
		sample()
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	close(stop)
	<-done
	sample()
	growth := int64(peak) - int64(base)
	t.Logf("64 MiB written: HeapInuse %.1f MiB before, peak %.1f MiB, growth %.1f MiB; %.1f MiB allocated in all",
		float64(base)/(1<<20), float64(peak)/(1<<20), float64(growth)/(1<<20), float64(ms.TotalAlloc-allocBefore)/(1<<20))
	if growth > 16<<20 {
		t.Fatalf("heap grew by %.1f MiB while writing 64 MiB, want under 16 MiB", float64(growth)/(1<<20))
	}
	r, err := s.Open(t.Context(), "mem/blob")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if r.Size() != total {
		t.Fatalf("Size %d", r.Size())
	}
	p := make([]byte, piece)
	if _, err := r.ReadAt(p, total-piece); err != nil && !errors.Is(err, io.EOF) {
		t.Fatal(err)
	}
	if !bytes.Equal(p, buf) {
		t.Fatal("last piece differs")
	}
}
