package api_test

import (
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kluis-nl/kluis/internal/transfer"
)

// heapSampler records the peak HeapInuse while it runs.
type heapSampler struct {
	base uint64
	peak atomic.Uint64
	stop chan struct{}
	wg   sync.WaitGroup
}

func startHeapSampler() *heapSampler {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	h := &heapSampler{base: ms.HeapInuse, stop: make(chan struct{})}
	h.peak.Store(ms.HeapInuse)
	h.wg.Go(func() {
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-h.stop:
				return
			case <-tick.C:
				var ms runtime.MemStats
				runtime.ReadMemStats(&ms)
				if ms.HeapInuse > h.peak.Load() {
					h.peak.Store(ms.HeapInuse)
				}
			}
		}
	})
	return h
}

// growth stops the sampler and returns the peak growth over the baseline.
func (h *heapSampler) growth() uint64 {
	close(h.stop)
	h.wg.Wait()
	if p := h.peak.Load(); p > h.base {
		return p - h.base
	}
	return 0
}

// TestBoundedMemory is a guard, not a benchmark: uploading a 64 MiB file
// and downloading it by Range requests, whole, and as a ZIP keeps the heap
// within a few buffers, whatever the file size.
func TestBoundedMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("64 MiB round trip")
	}
	const size = 64 << 20
	const limit = 32 << 20
	e := newAPIEnv(t, func(c *transfer.Config) { c.SegmentSize = 16 << 20 })
	c := e.create("groot bestand")
	o := transfer.Owner{TransferID: c.ID}

	var seed [32]byte
	seed[0] = 64
	src := io.LimitReader(rand.NewChaCha8(seed), size)
	want := sha256.New()

	h := startHeapSampler()
	f, err := e.svc.NewFile(e.ctx, o, "groot.bin", "", size)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := e.svc.WriteFile(e.ctx, o, f.ID, 0, io.TeeReader(src, want)); err != nil || n != size {
		t.Fatalf("upload: n=%d err=%v", n, err)
	}
	if _, err := e.svc.CompleteFile(e.ctx, o, f.ID); err != nil {
		t.Fatal(err)
	}
	t.Logf("upload: heap grew at most %d KiB", h.growth()>>10)
	wantSum := fmt.Sprintf("%x", want.Sum(nil))

	access := e.finish(c)
	sess := e.unlock(access[0], c.Password)
	path := "/api/v1/session/files/" + f.ID

	get := func(rng string) (string, int64) {
		t.Helper()
		hdr := map[string]string{}
		if rng != "" {
			hdr["Range"] = rng
		}
		resp := e.req("GET", path, sess, hdr, nil)
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusPartialContent {
			t.Fatalf("GET %s: %d", rng, resp.StatusCode)
		}
		s := sha256.New()
		n, err := io.Copy(s, resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return fmt.Sprintf("%x", s.Sum(nil)), n
	}

	h = startHeapSampler()
	whole := sha256.New()
	const step = 8 << 20
	for off := int64(0); off < size; off += step {
		resp := e.req("GET", path, sess, map[string]string{"Range": fmt.Sprintf("bytes=%d-%d", off, off+step-1)}, nil)
		n, err := io.Copy(whole, resp.Body)
		resp.Body.Close()
		if err != nil || n != step || resp.StatusCode != http.StatusPartialContent {
			t.Fatalf("range at %d: %d bytes, status %d, %v", off, n, resp.StatusCode, err)
		}
	}
	g := h.growth()
	t.Logf("ranges: heap grew at most %d KiB", g>>10)
	if got := fmt.Sprintf("%x", whole.Sum(nil)); got != wantSum {
		t.Fatal("ranges: content differs")
	}
	if g > limit {
		t.Errorf("ranged download grew the heap by %d MiB (limit %d MiB)", g>>20, limit>>20)
	}

	h = startHeapSampler()
	sum, n := get("")
	g = h.growth()
	t.Logf("whole file: heap grew at most %d KiB", g>>10)
	if sum != wantSum || n != size {
		t.Fatal("whole file: content differs")
	}
	if g > limit {
		t.Errorf("whole download grew the heap by %d MiB (limit %d MiB)", g>>20, limit>>20)
	}

	h = startHeapSampler()
	resp := e.req("GET", "/api/v1/session/zip", sess, nil, nil)
	zn, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	g = h.growth()
	t.Logf("zip: heap grew at most %d KiB", g>>10)
	if err != nil || zn < size {
		t.Fatalf("zip: %d bytes, %v", zn, err)
	}
	if g > limit {
		t.Errorf("ZIP download grew the heap by %d MiB (limit %d MiB)", g>>20, limit>>20)
	}
}
