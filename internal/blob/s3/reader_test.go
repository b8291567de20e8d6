package s3

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/kluis-nl/kluis/internal/blob/blobtest"
	"github.com/kluis-nl/kluis/internal/segment"
)

type countingTransport struct {
	rt   http.RoundTripper
	gets atomic.Int64
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	// Object reads: a GET with a Range, or one without a query (listings
	// and bucket look-ups have one).
	if r.Method == http.MethodGet && (r.Header.Get("Range") != "" || r.URL.RawQuery == "") {
		c.gets.Add(1)
	}
	return c.rt.RoundTrip(r)
}

func TestReadAheadGETs(t *testing.T) {
	cfg := *testConfig(t, envURL)
	rt, err := minio.DefaultTransport(cfg.Secure)
	if err != nil {
		t.Fatal(err)
	}
	ct := &countingTransport{rt: rt}
	cfg.Transport = ct
	s := prefixStore(t, cfg)
	const (
		size  = 8 << 20
		chunk = 64 << 10
	)
	data := blobtest.Pattern(8, size)
	blobtest.Put(t, s, "ra/blob", data)
	before := ct.gets.Load()
	r, err := s.Open(t.Context(), "ra/blob") // its GET is the first stream
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	p := make([]byte, chunk)
	for off := int64(0); off < size; off += chunk {
		n, err := r.ReadAt(p, off)
		if n != chunk || (err != nil && !(errors.Is(err, io.EOF) && off+chunk == size)) {
			t.Fatalf("ReadAt(%d) = %d, %v", off, n, err)
		}
		if !bytes.Equal(p, data[off:off+chunk]) {
			t.Fatalf("ReadAt(%d): wrong bytes", off)
		}
	}
	gets := ct.gets.Load() - before
	t.Logf("Open and a sequential read of 8 MiB in 64 KiB ReadAt calls: %d GET requests (%d calls)", gets, size/chunk)
	if gets > 2 {
		t.Fatalf("%d GETs for 128 sequential 64 KiB reads, want at most 2 (one stream)", gets)
	}
	// Unaligned 256 KiB reads straddling the windows.
	before = ct.gets.Load()
	p = make([]byte, 256<<10)
	for off := int64(12345); off+int64(len(p)) <= size; off += int64(len(p)) {
		if _, err := r.ReadAt(p, off); err != nil && !errors.Is(err, io.EOF) {
			t.Fatal(err)
		}
		if !bytes.Equal(p, data[off:off+int64(len(p))]) {
			t.Fatalf("ReadAt(%d): wrong bytes", off)
		}
	}
	t.Logf("sequential read in unaligned 256 KiB calls: %d GETs", ct.gets.Load()-before)
	if g := ct.gets.Load() - before; g > 3 {
		t.Fatalf("%d GETs, want at most 3 (a window for the seek, then a stream)", g)
	}
	// age's pattern for a segment: the header, the final chunk, then the
	// payload in order; the far read must not cost the stream.
	r2, err := s.Open(t.Context(), "ra/blob")
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	before = ct.gets.Load()
	for _, rg := range [][2]int64{{0, 200}, {size - 65552, 65552}} {
		p := make([]byte, rg[1])
		if n, err := r2.ReadAt(p, rg[0]); n != len(p) || (err != nil && !errors.Is(err, io.EOF)) || !bytes.Equal(p, data[rg[0]:rg[0]+rg[1]]) {
			t.Fatalf("ReadAt(%d, %d) = %d, %v", rg[1], rg[0], n, err)
		}
	}
	p = make([]byte, 65552)
	for off := int64(200); off < size-65552; off += int64(len(p)) {
		k := min(int64(len(p)), size-65552-off)
		if n, err := r2.ReadAt(p[:k], off); n != int(k) || err != nil || !bytes.Equal(p[:k], data[off:off+k]) {
			t.Fatalf("ReadAt(%d, %d) = %d, %v", k, off, n, err)
		}
	}
	t.Logf("header, final chunk, then the payload: %d GETs after Open", ct.gets.Load()-before)
	if g := ct.gets.Load() - before; g > 1 {
		t.Fatalf("%d GETs after Open, want 1 (the final chunk)", g)
	}
}

// goroutines waits briefly for the count to settle at or below want.
func goroutines(want int) int {
	n := runtime.NumGoroutine()
	for i := 0; i < 100 && n > want; i++ {
		time.Sleep(10 * time.Millisecond)
		n = runtime.NumGoroutine()
	}
	return n
}

// TestReaderCloseStopsStream: Close ends the background stream (which is
// blocked on a full queue after one small read), leaves no goroutine, and
// later reads fail.
func TestReaderCloseStopsStream(t *testing.T) {
	s := prefixStore(t, *testConfig(t, envURL))
	blobtest.Put(t, s, "cl/blob", blobtest.Pattern(5, 12<<20))
	// Let the HTTP transport's connection goroutines of the Put settle.
	time.Sleep(100 * time.Millisecond)
	base := runtime.NumGoroutine()
	for range 3 {
		r, err := s.Open(t.Context(), "cl/blob")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.ReadAt(make([]byte, 100), 0); err != nil {
			t.Fatal(err)
		}
		// A seek that starts a second stream, replacing the first.
		if _, err := r.ReadAt(make([]byte, 100), 6<<20); err != nil {
			t.Fatal(err)
		}
		if _, err := r.ReadAt(make([]byte, 100), 6<<20+100); err != nil {
			t.Fatal(err)
		}
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := r.ReadAt(make([]byte, 10), 0); err == nil {
			t.Fatal("ReadAt after Close succeeded")
		}
	}
	if n := goroutines(base); n > base {
		buf := make([]byte, 1<<20)
		t.Fatalf("%d goroutines after Close, %d before Open:\n%s", n, base, buf[:runtime.Stack(buf, true)])
	}
}

// truncatingTransport cuts the bodies of object GETs after limit bytes
// with an error, as a dropped connection does.
type truncatingTransport struct {
	rt    http.RoundTripper
	limit int64
}

func (c *truncatingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := c.rt.RoundTrip(r)
	if err == nil && r.Method == http.MethodGet && r.URL.RawQuery == "" && resp.StatusCode/100 == 2 {
		resp.Body = &cutBody{rc: resp.Body, left: c.limit}
	}
	return resp, err
}

type cutBody struct {
	rc   io.ReadCloser
	left int64
}

func (b *cutBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		return 0, errors.New("connection reset (test)")
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.rc.Read(p)
	b.left -= int64(n)
	return n, err
}

func (b *cutBody) Close() error { return b.rc.Close() }

// TestReaderStreamError: a stream that breaks off surfaces as an error of
// the read that needs the missing bytes, never as short data; the next
// read tries again with a new request.
func TestReaderStreamError(t *testing.T) {
	cfg := *testConfig(t, envURL)
	rt, err := minio.DefaultTransport(cfg.Secure)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Transport = &truncatingTransport{rt: rt, limit: 3<<20 + 12345}
	s := prefixStore(t, cfg)
	const size = 8 << 20
	data := blobtest.Pattern(6, size)
	blobtest.Put(t, s, "er/blob", data)
	r, err := s.Open(t.Context(), "er/blob")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	p := make([]byte, 64<<10)
	var off int64
	for ; off < size; off += int64(len(p)) {
		n, err := r.ReadAt(p, off)
		if err != nil && !(errors.Is(err, io.EOF) && off+int64(n) == size) {
			t.Logf("ReadAt(%d): %d bytes, %v", off, n, err)
			if n == len(p) {
				t.Fatal("error with a full read")
			}
			break
		}
		if !bytes.Equal(p[:n], data[off:off+int64(n)]) {
			t.Fatalf("ReadAt(%d): wrong bytes", off)
		}
	}
	if off >= size || off < 3<<20 {
		t.Fatalf("the broken stream was noticed at %d, want at 3 MiB (and not beyond the blob)", off)
	}
	// The retry is a new request (a ranged window, then a stream).
	n, err := r.ReadAt(p, off)
	if n != len(p) || err != nil || !bytes.Equal(p, data[off:off+int64(n)]) {
		t.Fatalf("ReadAt(%d) after the error = %d, %v", off, n, err)
	}
}

func TestReaderAfterDelete(t *testing.T) {
	s := prefixStore(t, *testConfig(t, envURL))
	blobtest.Put(t, s, "rd/blob", blobtest.Pattern(3, 8<<20))
	r, err := s.Open(t.Context(), "rd/blob")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if err := s.Delete(t.Context(), "rd/blob"); err != nil {
		t.Fatal(err)
	}
	// Beyond what the stream of Open serves (CacheWindows ahead), so the
	// read needs a request of its own.
	if _, err := r.ReadAt(make([]byte, 10), 6<<20); err == nil {
		t.Fatal("ReadAt of a deleted blob succeeded")
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := r.ReadAt(make([]byte, 10), 0); err == nil {
		t.Fatal("ReadAt after Close succeeded")
	}
}

// ageReads reads like age's DecryptReaderAt: each ReadAt below is one
// encrypted chunk (64 KiB and its 16-byte tag).
type ageReads struct{ r io.ReaderAt }

func (a ageReads) ReadAt(p []byte, off int64) (int, error) {
	const enc = 64<<10 + 16
	n := 0
	for n < len(p) {
		k, err := a.r.ReadAt(p[n:min(len(p), n+enc)], off+int64(n))
		n += k
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// TestParallelReadsShareTheStream: a download decrypts several windows of
// a segment at once (segment.ReadAhead), so reads arrive out of order a
// few MiB apart. They are served by the one stream Open started: the
// chunks it passes for a read further on are kept for the reads behind,
// instead of each of those costing a ranged GET (a new connection on
// versitygw) or a new stream.
func TestParallelReadsShareTheStream(t *testing.T) {
	cfg := *testConfig(t, envURL)
	rt, err := minio.DefaultTransport(cfg.Secure)
	if err != nil {
		t.Fatal(err)
	}
	ct := &countingTransport{rt: rt}
	cfg.Transport = ct
	s := prefixStore(t, cfg)
	const size = 16<<20 + 1000
	data := blobtest.Pattern(9, size)
	blobtest.Put(t, s, "par/blob", data)
	before := ct.gets.Load()
	r, err := s.Open(t.Context(), "par/blob")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ra := segment.NewReadAhead(ageReads{r}, 0, size)
	defer ra.Close()
	got, err := io.ReadAll(ra)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read %d bytes, %v", len(got), err)
	}
	gets := ct.gets.Load() - before
	t.Logf("16 MiB read by %d parallel windows: %d GET requests", segment.Depth(), gets)
	if gets > 2 {
		t.Fatalf("%d GETs, want at most 2: the stream of Open, and one spare", gets)
	}
}
