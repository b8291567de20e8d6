package transfer_test

import (
	"io"
	"math/rand/v2"
	"runtime"
	"runtime/debug"
	"sync"
	"testing"
	"time"

	"github.com/kluis-nl/kluis/internal/scan/scantest"
)

// TestScanMemoryBounded: a 300 MB clean file is scanned at finish with a
// heap that does not grow with the file: the scan streams the decrypted
// segments to clamd in chunks. Measured as the peak heap in use during
// Finish, sampled, against a bound far below the file size.
func TestScanMemoryBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("300 MB: not in -short")
	}
	const size = 300 << 20
	d := scantest.Start(t, scantest.Options{StreamMaxLength: "400M"})
	e := newScanEnv(t, d)
	c := e.create(createOpts{})
	f, err := e.svc.NewFile(e.ctx, owner(c), "groot.bin", "application/octet-stream", size)
	if err != nil {
		t.Fatal(err)
	}
	src := io.LimitReader(rand.NewChaCha8([32]byte{1}), size)
	if n, err := e.svc.WriteFile(e.ctx, owner(c), f.ID, 0, src); err != nil || n != size {
		t.Fatalf("write: %d, %v", n, err)
	}
	if _, err := e.svc.CompleteFile(e.ctx, owner(c), f.ID); err != nil {
		t.Fatal(err)
	}
	// Garbage between two collections is not what the bound is about: with
	// the default GOGC the heap may double before a collection, which made
	// the figure depend on what earlier tests left live. A low GC percent
	// keeps the sampled heap close to what the scan really holds.
	defer debug.SetGCPercent(debug.SetGCPercent(10))
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapInuse
	var peak uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapInuse)
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()
	e.finish(c)
	close(stop)
	wg.Wait()
	grew := int64(peak) - int64(base)
	t.Logf("heap in use: %d MiB before finish, peak %d MiB during the scan of %d MiB", base>>20, peak>>20, size>>20)
	if grew > 64<<20 {
		t.Fatalf("the heap grew by %d MiB while scanning a %d MiB file", grew>>20, size>>20)
	}
}
