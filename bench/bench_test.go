// Package bench measures Kluis's upload and download paths against their
// raw floors on the same machine, in the same run: a tus upload against
// writing and fsyncing the same bytes, a download against plain age
// decryption, and the memory one upload and ten parallel uploads take.
//
// The size is KLUIS_BENCH_SIZE (default 256MiB, so that `go test -bench .`
// stays quick; bench/run.sh uses 1GiB). Everything is written below
// KLUIS_BENCH_DIR (default the system temporary folder), raw baselines and
// the blob store alike, so both hit the same file system.
package bench

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/kluis-nl/kluis/internal/app"
	"github.com/kluis-nl/kluis/internal/blob/local"
	"github.com/kluis-nl/kluis/internal/config"
	"github.com/kluis-nl/kluis/internal/segment"
	"github.com/kluis-nl/kluis/internal/store"
	"github.com/kluis-nl/kluis/internal/transfer"
)

const (
	mib = 1 << 20
	// rawPiece is the write size of the raw baseline.
	rawPiece = 1 * mib
	// readPiece is the read size of the raw age decryption (age's chunk
	// size; see test-services.md: 8 KiB reads halve the rate).
	readPiece = 64 << 10
)

// benchSize parses KLUIS_BENCH_SIZE: a number of bytes with an optional
// KiB/MiB/GiB (or K/M/G) suffix.
func benchSize(tb testing.TB) int64 {
	v := strings.TrimSpace(os.Getenv("KLUIS_BENCH_SIZE"))
	if v == "" {
		return 256 * mib
	}
	mult := int64(1)
	for _, s := range []struct {
		suffix string
		mult   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"G", 1 << 30}, {"M", 1 << 20}, {"K", 1 << 10}} {
		if strings.HasSuffix(v, s.suffix) {
			v, mult = strings.TrimSuffix(v, s.suffix), s.mult
			break
		}
	}
	n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	if err != nil || n <= 0 {
		tb.Fatalf("KLUIS_BENCH_SIZE=%q: want e.g. 1GiB, 256MiB or 1048576", os.Getenv("KLUIS_BENCH_SIZE"))
	}
	return n * mult
}

// pattern is 1 MiB of fixed pseudo-random bytes; patternReader repeats it.
// Random, so that nothing on the way can compress it; repeated, so that
// producing the input costs a memcpy, not a generator.
var pattern = func() []byte {
	b := make([]byte, mib)
	r := rand.NewChaCha8([32]byte{'k', 'l', 'u', 'i', 's'})
	r.Read(b)
	return b
}()

// patternReader yields n bytes of pattern, without holding them.
type patternReader struct {
	n   int64 // remaining
	off int64
}

func newPatternReader(n int64) *patternReader { return &patternReader{n: n} }

func (r *patternReader) Read(p []byte) (int, error) {
	if r.n <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > r.n {
		p = p[:r.n]
	}
	c := copy(p, pattern[r.off%int64(len(pattern)):])
	r.off += int64(c)
	r.n -= int64(c)
	return c, nil
}

// ---------------------------------------------------------------------------
// The environment: one server for the whole run.

type env struct {
	dir    string // base folder: data (blob store, database) and raw files
	data   string
	srv    *httptest.Server // only its URL: the server is app's
	client *http.Client
	db     *store.DB
	svc    *transfer.Service
	apiKey string // a sender key for creating transfers
	stop   func() // ends the server and closes it
}

var (
	envOnce sync.Once
	theEnv  *env
	envErr  error
	baseDir string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if theEnv != nil {
		theEnv.close()
	}
	if baseDir != "" {
		os.RemoveAll(baseDir)
	}
	os.Exit(code)
}

// getEnv starts the in-process server (once per test binary): a real
// SQLite database and local blob store in one data folder.
func getEnv(tb testing.TB) *env {
	envOnce.Do(func() { theEnv, envErr = newEnv() })
	if envErr != nil {
		tb.Fatal(envErr)
	}
	return theEnv
}

func newEnv() (*env, error) {
	var err error
	baseDir, err = os.MkdirTemp(os.Getenv("KLUIS_BENCH_DIR"), "kluis-bench-")
	if err != nil {
		return nil, err
	}
	e, err := startEnv(baseDir, app.Options{LocalBlobs: local.Options{WrapTemp: blobTimes.wrap}})
	if err != nil {
		return nil, err
	}
	e.client = &http.Client{Transport: &http.Transport{
		DisableCompression:  true,
		MaxIdleConnsPerHost: 32,
		WriteBufferSize:     256 << 10,
		ReadBufferSize:      256 << 10,
	}}
	return e, nil
}

// startEnv runs kluis serve in this process (package app) with its data in
// dir/data, on 127.0.0.1:0 without rate limits, and makes a sender key.
func startEnv(dir string, o app.Options) (*env, error) {
	e := &env{dir: dir, data: filepath.Join(dir, "data")}
	cfg, err := config.ParseServe([]string{"--data", e.data, "--addr", "127.0.0.1:0", "--rate-limit", "0", "--rate-limit-global", "0"},
		func(string) string { return "" }, io.Discard)
	if err != nil {
		return nil, err
	}
	o.Log = slog.New(slog.DiscardHandler)
	a, err := app.New(context.Background(), cfg, o)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	e.stop = func() { cancel(); <-done; a.Close() }
	e.srv, e.db, e.svc = newURLServer(a.URL()), a.DB, a.Transfers
	if _, e.apiKey, err = a.Senders.CreateAPIKey(ctx, "bench@example.nl"); err != nil {
		e.stop()
		return nil, err
	}
	return e, nil
}

// do sends a request and decodes a JSON answer into out (if not nil).
func (e *env) do(method, path, token string, hdr map[string]string, body io.Reader, want int, out any) (*http.Response, error) {
	req, err := http.NewRequest(method, e.srv.URL+path, body)
	if err != nil {
		return nil, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	if r, ok := body.(*patternReader); ok {
		req.ContentLength = r.n
	}
	resp, err := e.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != want {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return resp, fmt.Errorf("%s %s: status %d, want %d: %s", method, path, resp.StatusCode, want, b)
	}
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			return resp, fmt.Errorf("%s %s: %w", method, path, err)
		}
	} else {
		io.Copy(io.Discard, resp.Body)
	}
	return resp, nil
}

type created struct {
	ID          string `json:"id"`
	UploadToken string `json:"upload_token"`
	LinkSecret  string `json:"link_secret"`
}

// createTransfer makes a draft transfer without a password (link secret:
// cheap scrypt, so setup stays fast).
func (e *env) createTransfer() (*created, error) {
	body := `{"sender":{"email":"bench@example.nl"},"to":["r@example.nl"],"password":{"mode":"none"}}`
	var c created
	_, err := e.do("POST", "/api/v1/transfers", e.apiKey, map[string]string{"Content-Type": "application/json"}, strings.NewReader(body), http.StatusCreated, &c)
	return &c, err
}

// tusUpload creates a tus upload of n bytes and sends it in one PATCH,
// streamed from a patternReader. It returns the file id.
func (e *env) tusUpload(token string, n int64) (string, error) {
	meta := "filename " + base64.StdEncoding.EncodeToString([]byte("bench.bin"))
	resp, err := e.do("POST", "/api/v1/uploads/", token, map[string]string{
		"Tus-Resumable": "1.0.0", "Upload-Length": strconv.FormatInt(n, 10), "Upload-Metadata": meta,
	}, nil, http.StatusCreated, nil)
	if err != nil {
		return "", err
	}
	loc := resp.Header.Get("Location")
	u, err := url.Parse(loc)
	if err != nil || loc == "" {
		return "", fmt.Errorf("tus POST: bad Location %q", loc)
	}
	fid := u.Path[strings.LastIndexByte(u.Path, '/')+1:]
	resp, err = e.do("PATCH", u.Path, token, map[string]string{
		"Tus-Resumable": "1.0.0", "Upload-Offset": "0", "Content-Type": "application/offset+octet-stream",
	}, newPatternReader(n), http.StatusNoContent, nil)
	if err != nil {
		return "", err
	}
	if got := resp.Header.Get("Upload-Offset"); got != strconv.FormatInt(n, 10) {
		return "", fmt.Errorf("tus PATCH: Upload-Offset %s, want %d", got, n)
	}
	return fid, nil
}

// removeTransferBlobs drops a transfer's blobs so that repeated uploads do
// not fill the disk (the rows stay; they are small).
func (e *env) removeTransferBlobs(id string) error {
	return os.RemoveAll(filepath.Join(e.data, "blobs", "t", id))
}

// ---------------------------------------------------------------------------
// Upload

// ioTimes adds up the wall time the blob store spends in write(2) and
// fsync(2) of blob files, through local.Options.WrapTemp (which is what
// every blob write and commit fsync goes through). BenchmarkTusUpload
// reports them, so the rest of an upload's time (reading the request,
// SHA-256, age encryption, rename, folder fsync, SQLite) is the difference.
type ioTimes struct {
	write, sync atomic.Int64 // nanoseconds
}

var blobTimes ioTimes

func (t *ioTimes) wrap(f local.TempFile) local.TempFile { return &timedFile{f: f, t: t} }

func (t *ioTimes) reset() { t.write.Store(0); t.sync.Store(0) }

type timedFile struct {
	f local.TempFile
	t *ioTimes
}

func (w *timedFile) Write(p []byte) (int, error) {
	start := time.Now()
	n, err := w.f.Write(p)
	w.t.write.Add(int64(time.Since(start)))
	return n, err
}

func (w *timedFile) Sync() error {
	start := time.Now()
	err := w.f.Sync()
	w.t.sync.Add(int64(time.Since(start)))
	return err
}

// BenchmarkRawWriteFsync is the floor for BenchmarkTusUpload: the same bytes
// written in 1 MiB pieces to a file in the data folder's file system, with
// an fsync every SegmentSize bytes (where the engine closes and fsyncs a
// segment) and at the end.
func BenchmarkRawWriteFsync(b *testing.B) {
	e := getEnv(b)
	n := benchSize(b)
	seg := transfer.DefaultConfig().SegmentSize
	b.SetBytes(n)
	var write, sync time.Duration
	for i := 0; i < b.N; i++ {
		name := filepath.Join(e.dir, fmt.Sprintf("raw-%d.bin", i))
		f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			b.Fatal(err)
		}
		r := newPatternReader(n)
		buf := make([]byte, rawPiece)
		var sinceSync int64
		for {
			m, rerr := io.ReadFull(r, buf)
			if m > 0 {
				t0 := time.Now()
				if _, err := f.Write(buf[:m]); err != nil {
					b.Fatal(err)
				}
				write += time.Since(t0)
				sinceSync += int64(m)
				if sinceSync >= seg {
					t0 = time.Now()
					if err := f.Sync(); err != nil {
						b.Fatal(err)
					}
					sync += time.Since(t0)
					sinceSync = 0
				}
			}
			if rerr != nil {
				break
			}
		}
		t0 := time.Now()
		if err := f.Sync(); err != nil {
			b.Fatal(err)
		}
		sync += time.Since(t0)
		if err := f.Close(); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		os.Remove(name)
		b.StartTimer()
	}
	b.ReportMetric(write.Seconds()/float64(b.N), "write-s/op")
	b.ReportMetric(sync.Seconds()/float64(b.N), "fsync-s/op")
}

// BenchmarkTusUpload is one tus upload of the whole size: POST (create the
// upload) and one PATCH with the body streamed; the server encrypts into
// 16 MiB segments, each fsynced, renamed and recorded in SQLite. Creating
// the transfer is not timed.
func BenchmarkTusUpload(b *testing.B) {
	e := getEnv(b)
	n := benchSize(b)
	b.SetBytes(n)
	b.StopTimer()
	var write, sync time.Duration
	for i := 0; i < b.N; i++ {
		c, err := e.createTransfer()
		if err != nil {
			b.Fatal(err)
		}
		blobTimes.reset()
		b.StartTimer()
		if _, err := e.tusUpload(c.UploadToken, n); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		write += time.Duration(blobTimes.write.Load())
		sync += time.Duration(blobTimes.sync.Load())
		if err := e.removeTransferBlobs(c.ID); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(write.Seconds()/float64(b.N), "write-s/op")
	b.ReportMetric(sync.Seconds()/float64(b.N), "fsync-s/op")
}

// BenchmarkSegmentCommit isolates the engine's write path from HTTP, tusd
// and SQLite: the bench size from memory through segment.Writer (SHA-256 +
// age) into local blobs of SegmentSize, each committed (fsync, rename,
// folder fsync). It is a diagnostic for the upload ratio:
//
//   - encrypt-only: segment.Writer into io.Discard, the CPU cost alone;
//   - serial: commit each segment before starting the next, as WriteFile
//     does today;
//   - overlapped: commit segment k in a goroutine while segment k+1 is
//     encrypted and written (at most one commit in flight, commits in
//     order), the change suggested in bench/README.md.
func BenchmarkSegmentCommit(b *testing.B) {
	e := getEnv(b)
	n := benchSize(b)
	segSize := transfer.DefaultConfig().SegmentSize
	id, err := age.GenerateX25519Identity()
	if err != nil {
		b.Fatal(err)
	}
	store, err := local.New(filepath.Join(e.dir, "segcommit"))
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	for _, mode := range []string{"encrypt-only", "serial", "overlapped"} {
		b.Run(mode, func(b *testing.B) {
			b.SetBytes(n)
			buf := make([]byte, 256<<10)
			for i := 0; i < b.N; i++ {
				src := newPatternReader(n)
				var (
					offset    int64
					hashState []byte
					pending   chan error
				)
				for seg := 0; offset < n; seg++ {
					var dst io.Writer = io.Discard
					var bw interface {
						io.Writer
						Commit() error
					}
					if mode != "encrypt-only" {
						w, err := store.Create(ctx, fmt.Sprintf("b/%d/%06d", i, seg))
						if err != nil {
							b.Fatal(err)
						}
						bw, dst = w, w
					}
					sw, err := segment.NewWriter(dst, id.Recipient(), offset, hashState)
					if err != nil {
						b.Fatal(err)
					}
					m, err := io.CopyBuffer(sw, io.LimitReader(src, segSize), buf)
					if err != nil {
						b.Fatal(err)
					}
					entry, err := sw.Close()
					if err != nil {
						b.Fatal(err)
					}
					offset += m
					hashState = entry.HashState
					switch mode {
					case "serial":
						if err := bw.Commit(); err != nil {
							b.Fatal(err)
						}
					case "overlapped":
						if pending != nil {
							if err := <-pending; err != nil {
								b.Fatal(err)
							}
						}
						pending = make(chan error, 1)
						go func(c chan error) { c <- bw.Commit() }(pending)
					}
				}
				if pending != nil {
					if err := <-pending; err != nil {
						b.Fatal(err)
					}
				}
				b.StopTimer()
				os.RemoveAll(filepath.Join(e.dir, "segcommit", "blobs", "b"))
				b.StartTimer()
			}
		})
	}
}

// ---------------------------------------------------------------------------
// Download

type downloadFixture struct {
	session string
	fid     string
	ageFile string
	id      *age.X25519Identity
}

var (
	dlOnce sync.Once
	dl     *downloadFixture
	dlErr  error
)

// getDownload uploads one file of the bench size (once per binary),
// finishes the transfer, unlocks it, and writes a plain age file of the
// same size beside it.
func getDownload(tb testing.TB) *downloadFixture {
	e := getEnv(tb)
	n := benchSize(tb)
	dlOnce.Do(func() { dl, dlErr = newDownload(e, n) })
	if dlErr != nil {
		tb.Fatal(dlErr)
	}
	return dl
}

func newDownload(e *env, n int64) (*downloadFixture, error) {
	c, err := e.createTransfer()
	if err != nil {
		return nil, err
	}
	fid, err := e.tusUpload(c.UploadToken, n)
	if err != nil {
		return nil, err
	}
	var fin struct {
		Links []struct {
			URL string `json:"url"`
		} `json:"links"`
	}
	finBody, _ := json.Marshal(map[string]string{"link_secret": c.LinkSecret})
	if _, err := e.do("POST", "/api/v1/transfers/"+c.ID+"/finish", c.UploadToken, map[string]string{"Content-Type": "application/json"}, bytes.NewReader(finBody), http.StatusOK, &fin); err != nil {
		return nil, err
	}
	if len(fin.Links) == 0 {
		return nil, fmt.Errorf("finish: no links")
	}
	u, err := url.Parse(fin.Links[0].URL)
	if err != nil {
		return nil, err
	}
	access := u.Path[strings.LastIndexByte(u.Path, '/')+1:]
	var sess struct {
		Session string `json:"session"`
	}
	unlockBody, _ := json.Marshal(map[string]string{"secret": u.Fragment})
	if _, err := e.do("POST", "/api/v1/links/"+access+"/unlock", "", map[string]string{"Content-Type": "application/json"}, bytes.NewReader(unlockBody), http.StatusOK, &sess); err != nil {
		return nil, err
	}

	// The raw floor: one age file of n plaintext bytes, on the same file
	// system, fsynced like the blobs.
	id, err := age.GenerateX25519Identity()
	if err != nil {
		return nil, err
	}
	name := filepath.Join(e.dir, "raw.age")
	f, err := os.Create(name)
	if err != nil {
		return nil, err
	}
	w, err := age.Encrypt(f, id.Recipient())
	if err != nil {
		return nil, err
	}
	if _, err := io.CopyBuffer(w, newPatternReader(n), make([]byte, 256<<10)); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	if err := f.Sync(); err != nil {
		return nil, err
	}
	if err := f.Close(); err != nil {
		return nil, err
	}
	return &downloadFixture{session: sess.Session, fid: fid, ageFile: name, id: id}, nil
}

// BenchmarkRawAgeDecrypt is the floor for BenchmarkDownload: age.Decrypt of
// an age file of the bench size (on disk, in the page cache like the blobs)
// into io.Discard with 64 KiB reads.
func BenchmarkRawAgeDecrypt(b *testing.B) {
	d := getDownload(b)
	n := benchSize(b)
	buf := make([]byte, readPiece)
	b.SetBytes(n)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		f, err := os.Open(d.ageFile)
		if err != nil {
			b.Fatal(err)
		}
		r, err := age.Decrypt(f, d.id)
		if err != nil {
			b.Fatal(err)
		}
		var got int64
		for {
			m, err := r.Read(buf)
			got += int64(m)
			if err == io.EOF {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
		}
		f.Close()
		if got != n {
			b.Fatalf("decrypted %d bytes, want %d", got, n)
		}
	}
}

// BenchmarkDownload is GET /api/v1/session/files/{fid} of the same size into
// io.Discard: session check, manifest, header pins, decryption of every
// segment, HTTP over loopback.
func BenchmarkDownload(b *testing.B) {
	e := getEnv(b)
	d := getDownload(b)
	n := benchSize(b)
	buf := make([]byte, 256<<10)
	b.SetBytes(n)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		req, _ := http.NewRequest("GET", e.srv.URL+"/api/v1/session/files/"+d.fid, nil)
		req.Header.Set("Authorization", "Bearer "+d.session)
		resp, err := e.client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("download: status %d", resp.StatusCode)
		}
		got, err := io.CopyBuffer(io.Discard, resp.Body, buf)
		resp.Body.Close()
		if err != nil {
			b.Fatal(err)
		}
		if got != n {
			b.Fatalf("downloaded %d bytes, want %d", got, n)
		}
	}
}

// ---------------------------------------------------------------------------
// Memory

// memSample is what the sampler reads: the heap spans in use (live and not
// yet collected garbage) plus goroutine stacks, and the total the runtime
// got from the OS.
func memSample() (inuse, sys uint64) {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse + m.StackInuse, m.Sys
}

// peakDuring runs fn while sampling memory every 10 ms and returns the peak
// growth over the state before (after a GC), in bytes.
func peakDuring(fn func() error) (inuse, sys uint64, err error) {
	runtime.GC()
	runtime.GC()
	base, baseSys := memSample()
	var peak, peakSys uint64 = base, baseSys
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				in, s := memSample()
				peak, peakSys = max(peak, in), max(peakSys, s)
			}
		}
	}()
	err = fn()
	close(stop)
	<-done
	in, s := memSample()
	peak, peakSys = max(peak, in), max(peakSys, s)
	return peak - base, peakSys - baseSys, err
}

// BenchmarkPeakMemory measures the memory of uploads in this process (the
// server and the loopback client together): one upload of the bench size,
// and ten parallel uploads of a tenth of it each. It reports the peak
// growth of HeapInuse+StackInuse in MiB (peak-MiB), the same per concurrent
// upload (MiB/upload), and the growth of the runtime's Sys (sys-MiB).
func BenchmarkPeakMemory(b *testing.B) {
	e := getEnv(b)
	n := benchSize(b)
	for _, tc := range []struct {
		name     string
		parallel int
	}{{"uploads=1", 1}, {"uploads=10", 10}} {
		b.Run(tc.name, func(b *testing.B) {
			size := n / int64(tc.parallel)
			b.SetBytes(size * int64(tc.parallel))
			var worst, worstSys uint64
			b.StopTimer()
			for i := 0; i < b.N; i++ {
				cs := make([]*created, tc.parallel)
				for j := range cs {
					c, err := e.createTransfer()
					if err != nil {
						b.Fatal(err)
					}
					cs[j] = c
				}
				b.StartTimer()
				inuse, sys, err := peakDuring(func() error {
					var wg sync.WaitGroup
					errs := make([]error, tc.parallel)
					for j, c := range cs {
						wg.Add(1)
						go func() {
							defer wg.Done()
							_, errs[j] = e.tusUpload(c.UploadToken, size)
						}()
					}
					wg.Wait()
					for _, err := range errs {
						if err != nil {
							return err
						}
					}
					return nil
				})
				b.StopTimer()
				if err != nil {
					b.Fatal(err)
				}
				worst, worstSys = max(worst, inuse), max(worstSys, sys)
				for _, c := range cs {
					if err := e.removeTransferBlobs(c.ID); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ReportMetric(float64(worst)/mib, "peak-MiB")
			b.ReportMetric(float64(worst)/mib/float64(tc.parallel), "MiB/upload")
			b.ReportMetric(float64(worstSys)/mib, "sys-MiB")
		})
	}
}
