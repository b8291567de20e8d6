package s3

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/kluis-nl/kluis/internal/blob"
	"github.com/kluis-nl/kluis/internal/blob/blobtest"
)

// Integration tests need an S3-compatible server (versitygw in CI, see
// .ci/run and /work/shared/test-services.md):
//
//	KLUIS_TEST_S3_URL            s3://kluis-test?endpoint=http://127.0.0.1:7070&region=us-east-1
//	KLUIS_TEST_S3_VERSIONED_URL  the same, for a server that can version buckets
//	                             (versitygw posix --versioning-dir DIR)
//	AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY
//
// Without them the tests skip, except under CI=true, where they fail.

const (
	envURL          = "KLUIS_TEST_S3_URL"
	envVersionedURL = "KLUIS_TEST_S3_VERSIONED_URL"
)

// testConfig returns the configuration from the environment variable, or
// skips (fails under CI).
func testConfig(t *testing.T, name string) *Config {
	t.Helper()
	raw := os.Getenv(name)
	if raw == "" {
		msg := name + " is not set: no S3 server to test against (start versitygw as .ci/run does, and set " +
			name + ", AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	cfg, err := ParseURL(raw, os.Getenv)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return cfg
}

func randName(prefix string) string {
	var b [6]byte
	rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

func adminCore(t *testing.T, cfg *Config) *minio.Core {
	t.Helper()
	c, err := newCore(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// ensureBucket creates the bucket if it is missing.
func ensureBucket(t *testing.T, c *minio.Core, bucket, region string) {
	t.Helper()
	ctx := t.Context()
	ok, err := c.BucketExists(ctx, bucket)
	if err != nil {
		t.Fatalf("BucketExists(%s): %v", bucket, err)
	}
	if ok {
		return
	}
	err = c.MakeBucket(ctx, bucket, minio.MakeBucketOptions{Region: region})
	if err != nil {
		if code, _ := errCode(err); code != "BucketAlreadyOwnedByYou" && code != "BucketAlreadyExists" {
			t.Fatalf("MakeBucket(%s): %v", bucket, err)
		}
	}
}

// wipe removes every object version and unfinished upload under prefix.
func wipe(c *minio.Core, bucket, prefix string) error {
	ctx := context.Background()
	for info := range c.ListObjectsIter(ctx, bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true, WithVersions: true}) {
		if info.Err != nil {
			return info.Err
		}
		if err := c.RemoveObject(ctx, bucket, info.Key, minio.RemoveObjectOptions{VersionID: info.VersionID}); err != nil {
			return err
		}
	}
	res, err := c.ListMultipartUploads(ctx, bucket, prefix, "", "", "", 1000)
	if err != nil {
		return err
	}
	for _, u := range res.Uploads {
		c.AbortMultipartUpload(ctx, bucket, u.Key, u.UploadID)
	}
	return nil
}

// prefixStore returns a store under a fresh prefix of the test bucket.
func prefixStore(t *testing.T, cfg Config) *Store {
	t.Helper()
	c := adminCore(t, &cfg)
	ensureBucket(t, c, cfg.Bucket, cfg.Region)
	cfg.Prefix = randName("test-") + "/"
	s, err := New(t.Context(), &cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		if err := wipe(c, cfg.Bucket, cfg.Prefix); err != nil {
			t.Logf("cleanup of %s: %v", cfg.Prefix, err)
		}
	})
	return s
}

// versionedStore returns a store in a fresh bucket with versioning on.
func versionedStore(t *testing.T, cfg Config) (*Store, *minio.Core) {
	t.Helper()
	c := adminCore(t, &cfg)
	cfg.Bucket = randName("kluis-v-")
	cfg.Prefix = ""
	ensureBucket(t, c, cfg.Bucket, cfg.Region)
	if err := c.EnableVersioning(t.Context(), cfg.Bucket); err != nil {
		t.Fatalf("EnableVersioning(%s): %v", cfg.Bucket, err)
	}
	vc, err := c.GetBucketVersioning(t.Context(), cfg.Bucket)
	if err != nil || !vc.Enabled() {
		t.Fatalf("versioning of %s: %+v, %v (is the server started with --versioning-dir?)", cfg.Bucket, vc, err)
	}
	s, err := New(t.Context(), &cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		if err := wipe(c, cfg.Bucket, ""); err != nil {
			t.Logf("cleanup of %s: %v", cfg.Bucket, err)
			return
		}
		if err := c.RemoveBucket(context.Background(), cfg.Bucket); err != nil {
			t.Logf("remove bucket %s: %v", cfg.Bucket, err)
		}
	})
	return s, c
}

func TestConformance(t *testing.T) {
	cfg := testConfig(t, envURL)
	blobtest.Run(t, func(t *testing.T) blob.Store { return prefixStore(t, *cfg) })
}

func TestConformanceVersioned(t *testing.T) {
	cfg := testConfig(t, envVersionedURL)
	blobtest.Run(t, func(t *testing.T) blob.Store {
		s, _ := versionedStore(t, *cfg)
		return s
	})
}

func TestConditionalWrites(t *testing.T) {
	s := prefixStore(t, *testConfig(t, envURL))
	if !s.ConditionalWrites() {
		t.Fatal("the server ignores If-None-Match: *; commits would fall back to a racy check")
	}
}

func TestNewMissingBucket(t *testing.T) {
	cfg := *testConfig(t, envURL)
	cfg.Bucket = randName("kluis-missing-")
	_, err := New(t.Context(), &cfg)
	if err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("New with a missing bucket: %v", err)
	}
	cfg = *testConfig(t, envURL)
	cfg.SecretKey = "wrong-secret"
	_, err = New(t.Context(), &cfg)
	if err == nil || strings.Contains(err.Error(), "wrong-secret") {
		t.Fatalf("New with a wrong secret: %v", err)
	}
	t.Logf("wrong secret: %v", err)
}

// versions lists every version and delete marker of obj.
func versions(t *testing.T, c *minio.Core, bucket, obj string) []minio.ObjectInfo {
	t.Helper()
	var out []minio.ObjectInfo
	for info := range c.ListObjectsIter(t.Context(), bucket, minio.ListObjectsOptions{Prefix: obj, Recursive: true, WithVersions: true}) {
		if info.Err != nil {
			t.Fatalf("list versions: %v", info.Err)
		}
		if info.Key == obj {
			out = append(out, info)
		}
	}
	return out
}

// TestDeleteVersioned: on a versioned bucket Delete removes every version
// and every delete marker (security.md item 19).
func TestDeleteVersioned(t *testing.T) {
	s, c := versionedStore(t, *testConfig(t, envVersionedURL))
	ctx := t.Context()
	const key = "t/abc/seg-1"

	blobtest.Put(t, s, key, []byte("ciphertext one"))
	if vs := versions(t, c, s.bucket, key); len(vs) != 1 {
		t.Fatalf("after Put: %d versions, want 1", len(vs))
	}
	if err := s.Delete(ctx, key); err != nil {
		t.Fatal(err)
	}
	if vs := versions(t, c, s.bucket, key); len(vs) != 0 {
		t.Fatalf("after Delete: %d versions remain: %+v", len(vs), vs)
	}

	// History made behind the store's back: an unconditional overwrite
	// (two versions) and a plain DELETE (a marker on top).
	blobtest.Put(t, s, key, []byte("ciphertext two"))
	if _, err := c.PutObject(ctx, s.bucket, key, strings.NewReader("three"), 5, "", "", minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := c.RemoveObject(ctx, s.bucket, key, minio.RemoveObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	vs := versions(t, c, s.bucket, key)
	markers := 0
	for _, v := range vs {
		if v.IsDeleteMarker {
			markers++
		}
	}
	t.Logf("before Delete: %d versions, %d of them delete markers", len(vs), markers)
	if len(vs) < 3 || markers < 1 {
		t.Fatalf("want ≥2 versions and a delete marker, got %+v", vs)
	}
	blobtest.Put(t, s, "t/abc/seg-2", []byte("sibling"))
	if err := s.Delete(ctx, key); err != nil {
		t.Fatal(err)
	}
	if vs := versions(t, c, s.bucket, key); len(vs) != 0 {
		t.Fatalf("after Delete: %d versions remain: %+v", len(vs), vs)
	}
	// Deleting a missing key on a versioned bucket adds no marker.
	if err := s.Delete(ctx, "never/was"); err != nil {
		t.Fatal(err)
	}
	if vs := versions(t, c, s.bucket, "never/was"); len(vs) != 0 {
		t.Fatalf("Delete of a missing key left %+v", vs)
	}
	if got := blobtest.Get(t, s, "t/abc/seg-2"); string(got) != "sibling" {
		t.Fatalf("sibling: %q", got)
	}
}

// uploads lists the unfinished multipart uploads under the store's prefix.
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

func TestCollectTempAbortsAbandonedUpload(t *testing.T) {
	s := prefixStore(t, *testConfig(t, envURL))
	ctx := t.Context()
	w, err := s.Create(ctx, "ab/seg")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort()
	data := blobtest.Pattern(9, 6<<20) // one part goes out, 1 MiB stays buffered
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if ups := uploads(t, s); len(ups) != 1 {
		t.Fatalf("uploads: %+v, want the one in progress", ups)
	}
	if n, err := s.CollectTemp(ctx, time.Now().Add(-time.Hour)); err != nil || n != 0 {
		t.Fatalf("CollectTemp(an hour ago) = %d, %v; want 0 (the upload is younger)", n, err)
	}
	// Abandoned: the writer goes away without Commit or Abort.
	n, err := s.CollectTemp(ctx, time.Now().Add(time.Hour))
	if err != nil || n != 1 {
		t.Fatalf("CollectTemp = %d, %v; want 1", n, err)
	}
	if ups := uploads(t, s); len(ups) != 0 {
		t.Fatalf("uploads after CollectTemp: %+v", ups)
	}
	if err := w.Commit(); err == nil {
		t.Fatal("Commit of a collected upload succeeded")
	} else {
		t.Logf("Commit after CollectTemp: %v", err)
	}
	if _, err := s.Open(ctx, "ab/seg"); !errors.Is(err, blob.ErrNotFound) {
		t.Fatalf("Open: %v, want ErrNotFound", err)
	}
}

// countingTransport counts GET requests for objects.
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
	blobtest.Put(t, s, "rd/blob", blobtest.Pattern(3, 3<<20))
	r, err := s.Open(t.Context(), "rd/blob")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if err := s.Delete(t.Context(), "rd/blob"); err != nil {
		t.Fatal(err)
	}
	if _, err := r.ReadAt(make([]byte, 10), 2<<20); err == nil {
		t.Fatal("ReadAt of a deleted blob succeeded")
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := r.ReadAt(make([]byte, 10), 0); err == nil {
		t.Fatal("ReadAt after Close succeeded")
	}
}

// TestFolderKeys: versitygw's posix back end keeps "a/b" as file b in
// folder a; the folder must not show up as a blob "a".
func TestFolderKeys(t *testing.T) {
	s := prefixStore(t, *testConfig(t, envURL))
	blobtest.Put(t, s, "a/b/c", []byte("x"))
	for _, k := range []string{"a", "a/b"} {
		if _, err := s.Open(t.Context(), k); !errors.Is(err, blob.ErrNotFound) {
			t.Errorf("Open(%q): %v, want ErrNotFound", k, err)
		}
		if err := s.Delete(t.Context(), k); err != nil {
			t.Errorf("Delete(%q): %v", k, err)
		}
	}
	if got := blobtest.Keys(t, s, ""); len(got) != 1 {
		t.Fatalf("List: %v", got)
	}
	if got := blobtest.Get(t, s, "a/b/c"); string(got) != "x" {
		t.Fatalf("got %q", got)
	}
}

func TestMapNoSpace(t *testing.T) {
	for _, code := range []string{"InsufficientStorage", "QuotaExceeded", "XMinioStorageFull", "XMinioAdminBucketQuotaExceeded"} {
		err := mapNoSpace(minio.ErrorResponse{Code: code, StatusCode: 403})
		if !errors.Is(err, blob.ErrNoSpace) {
			t.Errorf("%s: not ErrNoSpace", code)
		}
	}
	if errors.Is(mapNoSpace(minio.ErrorResponse{Code: "AccessDenied", StatusCode: 403}), blob.ErrNoSpace) {
		t.Error("AccessDenied mapped to ErrNoSpace")
	}
	if !errors.Is(mapNoSpace(minio.ErrorResponse{StatusCode: 507}), blob.ErrNoSpace) {
		t.Error("507 not mapped to ErrNoSpace")
	}
}
