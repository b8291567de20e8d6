package bench

// The S3 benchmark: a Kluis upload and download through `kluis serve
// --storage s3://...` (a separate process, as in production) against raw
// multipart PUT and GET of the same bytes to the same S3 server with the
// same client library, part size and client settings, in the same run.
// bench/s3.sh sets it up (versitygw, the kluis binary) and prints the
// ratios; without KLUIS_BENCH_S3_URL and KLUIS_BENCH_KLUIS_BIN it skips.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/kluis-nl/kluis/internal/blob/s3"
	"github.com/kluis-nl/kluis/internal/transfer"
)

// s3Env is one `kluis serve` process on S3 storage and a raw client of the
// same bucket.
type s3Env struct {
	env                 // do(), createTransfer(), tusUpload() against the process
	cmd    *exec.Cmd    // kluis serve
	core   *minio.Core  // raw client: the one Kluis's s3 package builds
	bucket string       //
	prefix string       // everything of this run is under it
	part   int64        // multipart part size, as Kluis uses it
	stderr bytes.Buffer // the server's log, shown on failure
}

func startS3Env(b *testing.B) *s3Env {
	raw, bin := os.Getenv("KLUIS_BENCH_S3_URL"), os.Getenv("KLUIS_BENCH_KLUIS_BIN")
	if raw == "" || bin == "" {
		b.Skip("S3 benchmark: run bash bench/s3.sh (it sets KLUIS_BENCH_S3_URL and KLUIS_BENCH_KLUIS_BIN)")
	}
	ctx := context.Background()
	var rnd [6]byte
	rand.Read(rnd[:])
	e := &s3Env{prefix: "bench-" + hex.EncodeToString(rnd[:]), part: s3.DefaultPartSize}
	u, err := url.Parse(raw)
	if err != nil {
		b.Fatal(err)
	}
	e.bucket = u.Host
	storage := "s3://" + e.bucket + "/" + e.prefix + "?" + u.RawQuery
	cfg, err := s3.ParseURL(storage, os.Getenv)
	if err != nil {
		b.Fatal(err)
	}
	// The bucket must exist before Kluis's store opens it (a versitygw
	// started by bench/s3.sh has none yet).
	lookup := minio.BucketLookupDNS
	if cfg.PathStyle {
		lookup = minio.BucketLookupPath
	}
	mk, err := minio.New(cfg.Endpoint, &minio.Options{Creds: credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, cfg.SessionToken),
		Secure: cfg.Secure, Region: cfg.Region, BucketLookup: lookup})
	if err != nil {
		b.Fatal(err)
	}
	if ok, err := mk.BucketExists(ctx, e.bucket); err != nil {
		b.Fatal(err)
	} else if !ok {
		if err := mk.MakeBucket(ctx, e.bucket, minio.MakeBucketOptions{Region: cfg.Region}); err != nil {
			b.Fatal(err)
		}
	}
	st, err := s3.New(ctx, cfg)
	if err != nil {
		b.Fatal(err)
	}
	e.core = &minio.Core{Client: st.Client()}

	dir, err := os.MkdirTemp(os.Getenv("KLUIS_BENCH_DIR"), "kluis-bench-s3-")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(dir) })
	e.dir, e.data = dir, filepath.Join(dir, "data")
	e.cmd = exec.Command(bin, "serve", "--addr", "127.0.0.1:0", "--data", e.data, "--storage", storage,
		"--log-level", "warn", "--rate-limit", "0", "--rate-limit-global", "0", "--max-transfer-size", "100GiB")
	e.cmd.Env = append(os.Environ(), "KLUIS_DB=", "KLUIS_SMTP=")
	stdout, err := e.cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	e.cmd.Stderr = &e.stderr
	if err := e.cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { e.stop(b) })
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if rest, ok := strings.CutPrefix(sc.Text(), "Kluis is running at "); ok {
				addr <- strings.TrimSuffix(strings.Fields(rest)[0], "/")
			}
		}
	}()
	select {
	case a := <-addr:
		e.srv = newURLServer(a)
	case <-time.After(30 * time.Second):
		b.Fatalf("kluis serve did not start:\n%s", e.stderr.String())
	}
	e.client = &http.Client{Transport: &http.Transport{
		DisableCompression:  true,
		MaxIdleConnsPerHost: 32,
		WriteBufferSize:     256 << 10,
		ReadBufferSize:      256 << 10,
	}}
	// A sender key, made with the admin command beside the running server.
	out, err := exec.Command(bin, "admin", "apikey", "create", "--sender", "bench@example.nl", "--data", e.data).Output()
	if err != nil {
		b.Fatalf("apikey create: %v", err)
	}
	e.apiKey = strings.TrimSpace(string(out))
	return e
}

func (e *s3Env) stop(b *testing.B) {
	if e.cmd.Process != nil {
		e.cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { e.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			e.cmd.Process.Kill()
			<-done
		}
	}
	// Leave the bucket as it was: every object (and version) of this run.
	ctx := context.Background()
	objs := e.core.Client.ListObjects(ctx, e.bucket, minio.ListObjectsOptions{Prefix: e.prefix + "/", Recursive: true, WithVersions: true})
	for err := range e.core.Client.RemoveObjects(ctx, e.bucket, objs, minio.RemoveObjectsOptions{}) {
		b.Logf("clean-up: %v", err.Err)
	}
}

// rss reads a field (VmRSS, VmHWM) of the server's /proc status in KiB.
func (e *s3Env) rss(field string) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", e.cmd.Process.Pid))
	if err != nil {
		return -1
	}
	for _, l := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(l, field+":"); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				n, _ := strconv.ParseInt(f[0], 10, 64)
				return n
			}
		}
	}
	return -1
}

// sampleRSS samples the server's resident memory every 5 ms until stop is
// called, and returns the resident size before and the highest seen (MiB).
func (e *s3Env) sampleRSS() (stop func() (before, peak float64)) {
	before := e.rss("VmRSS")
	var max atomic.Int64
	max.Store(before)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				if v := e.rss("VmRSS"); v > max.Load() {
					max.Store(v)
				}
			}
		}
	}()
	return func() (float64, float64) {
		close(done)
		wg.Wait()
		return float64(before) / 1024, float64(max.Load()) / 1024
	}
}

// rawPut is a multipart upload of n bytes as Kluis's s3 writer does it:
// one part buffered at a time, parts sent one after the other.
func (e *s3Env) rawPut(ctx context.Context, key string, n int64) error {
	id, err := e.core.NewMultipartUpload(ctx, e.bucket, key, minio.PutObjectOptions{})
	if err != nil {
		return err
	}
	buf := make([]byte, e.part)
	src := newPatternReader(n)
	var parts []minio.CompletePart
	for num := 1; ; num++ {
		m, err := io.ReadFull(src, buf)
		if m == 0 {
			break
		}
		if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
			return err
		}
		p, err := e.core.PutObjectPart(ctx, e.bucket, key, id, num, bytes.NewReader(buf[:m]), int64(m), minio.PutObjectPartOptions{})
		if err != nil {
			e.core.AbortMultipartUpload(ctx, e.bucket, key, id)
			return err
		}
		parts = append(parts, minio.CompletePart{PartNumber: num, ETag: p.ETag})
	}
	_, err = e.core.CompleteMultipartUpload(ctx, e.bucket, key, id, parts, minio.PutObjectOptions{})
	return err
}

// partWriter is a multipart upload fed by Write, sent as Kluis's s3
// writer sends it: one part buffered, a full part sent when more bytes
// arrive, the rest at close.
type partWriter struct {
	e     *s3Env
	ctx   context.Context
	key   string
	id    string
	buf   []byte
	parts []minio.CompletePart
}

func (w *partWriter) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		if int64(len(w.buf)) == w.e.part {
			if err := w.flush(); err != nil {
				return n, err
			}
		}
		m := min(len(p), int(w.e.part)-len(w.buf))
		w.buf = append(w.buf, p[:m]...)
		p, n = p[m:], n+m
	}
	return n, nil
}

func (w *partWriter) flush() error {
	if w.id == "" {
		id, err := w.e.core.NewMultipartUpload(w.ctx, w.e.bucket, w.key, minio.PutObjectOptions{})
		if err != nil {
			return err
		}
		w.id = id
	}
	num := len(w.parts) + 1
	p, err := w.e.core.PutObjectPart(w.ctx, w.e.bucket, w.key, w.id, num, bytes.NewReader(w.buf), int64(len(w.buf)), minio.PutObjectPartOptions{})
	if err != nil {
		w.e.core.AbortMultipartUpload(w.ctx, w.e.bucket, w.key, w.id)
		return err
	}
	w.parts = append(w.parts, minio.CompletePart{PartNumber: num, ETag: p.ETag})
	w.buf = w.buf[:0]
	return nil
}

func (w *partWriter) close() error {
	if err := w.flush(); err != nil {
		return err
	}
	_, err := w.e.core.CompleteMultipartUpload(w.ctx, w.e.bucket, w.key, w.id, w.parts, minio.PutObjectOptions{})
	return err
}

// rawEncryptPut age-encrypts n bytes to rcp and sends the ciphertext as
// one multipart upload (partWriter).
func (e *s3Env) rawEncryptPut(ctx context.Context, key string, n int64, rcp age.Recipient) error {
	pw := &partWriter{e: e, ctx: ctx, key: key, buf: make([]byte, 0, e.part)}
	w, err := age.Encrypt(pw, rcp)
	if err != nil {
		return err
	}
	if _, err := io.CopyBuffer(w, newPatternReader(n), make([]byte, 64<<10)); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	return pw.close()
}

// BenchmarkS3 runs, in this order so that each Kluis figure is measured
// right after its floor: RawPut (multipart PUT of N bytes, 5 MiB parts, as
// Kluis writes a segment), RawPutSegmented (the same bytes as 16 MiB
// objects, Kluis's layout), RawEncryptPut (the same bytes age-encrypted
// into 16 MiB objects as they are sent), Upload (tus POST and one PATCH of N bytes to
// kluis serve, which encrypts into 16 MiB segments, each its own multipart
// object), RawGet (GET of the raw object into io.Discard), RawGetSegmented (GET of
// the 16 MiB objects one after the other), RawGetDecrypt (GET and age
// decryption of the RawEncryptPut objects) and Download (GET
// of the Kluis file: manifest, header pins, streamed blob reads,
// decryption). The Kluis figures also report the server process's resident
// memory: rss-before-MiB, rss-peak-MiB (sampled every 5 ms).
func BenchmarkS3(b *testing.B) {
	e := startS3Env(b)
	n := benchSize(b)
	ctx := context.Background()
	rawKey := e.prefix + "/raw.bin"
	var fid, session string

	b.Run("RawPut", func(b *testing.B) {
		b.SetBytes(n)
		for i := 0; i < b.N; i++ {
			if err := e.rawPut(ctx, rawKey, n); err != nil {
				b.Fatal(err)
			}
		}
	})
	// The same bytes in Kluis's object layout: one object per 16 MiB
	// segment, each its own multipart upload (diagnostic: shows what the
	// layout costs on this S3 server, apart from Kluis's own work).
	segSize := transfer.DefaultConfig().SegmentSize
	b.Run("RawPutSegmented", func(b *testing.B) {
		b.SetBytes(n)
		for i := 0; i < b.N; i++ {
			for k, off := 0, int64(0); off < n; k, off = k+1, off+segSize {
				if err := e.rawPut(ctx, fmt.Sprintf("%s/rawseg/%06d", e.prefix, k), min(segSize, n-off)); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
	// The floor of the upload's work without Kluis: age encryption of the
	// same bytes into 16 MiB segments, each sent as its own multipart
	// upload; RawGetDecrypt reads these objects back.
	id, err := age.GenerateX25519Identity()
	if err != nil {
		b.Fatal(err)
	}
	b.Run("RawEncryptPut", func(b *testing.B) {
		b.SetBytes(n)
		for i := 0; i < b.N; i++ {
			for k, off := 0, int64(0); off < n; k, off = k+1, off+segSize {
				if err := e.rawEncryptPut(ctx, fmt.Sprintf("%s/rawage/%06d", e.prefix, k), min(segSize, n-off), id.Recipient()); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
	b.Run("Upload", func(b *testing.B) {
		b.SetBytes(n)
		for i := 0; i < b.N; i++ {
			b.StopTimer()
			c, err := e.createTransfer()
			if err != nil {
				b.Fatal(err)
			}
			stop := e.sampleRSS()
			b.StartTimer()
			fid, err = e.tusUpload(c.UploadToken, n)
			b.StopTimer()
			before, peak := stop()
			if err != nil {
				b.Fatalf("%v\n%s", err, e.stderr.String())
			}
			b.ReportMetric(before, "rss-before-MiB")
			b.ReportMetric(peak, "rss-peak-MiB")
			session, err = e.finishAndUnlock(c)
			if err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
		}
	})
	b.Run("RawGet", func(b *testing.B) {
		buf := make([]byte, 256<<10)
		b.SetBytes(n)
		for i := 0; i < b.N; i++ {
			obj, _, _, err := e.core.GetObject(ctx, e.bucket, rawKey, minio.GetObjectOptions{})
			if err != nil {
				b.Fatal(err)
			}
			got, err := io.CopyBuffer(io.Discard, obj, buf)
			obj.Close()
			if err != nil || got != n {
				b.Fatalf("raw GET: %d bytes, %v", got, err)
			}
		}
	})
	b.Run("RawGetSegmented", func(b *testing.B) {
		buf := make([]byte, 256<<10)
		b.SetBytes(n)
		for i := 0; i < b.N; i++ {
			var got int64
			for k, off := 0, int64(0); off < n; k, off = k+1, off+segSize {
				obj, _, _, err := e.core.GetObject(ctx, e.bucket, fmt.Sprintf("%s/rawseg/%06d", e.prefix, k), minio.GetObjectOptions{})
				if err != nil {
					b.Fatal(err)
				}
				m, err := io.CopyBuffer(io.Discard, obj, buf)
				obj.Close()
				if err != nil {
					b.Fatal(err)
				}
				got += m
			}
			if got != n {
				b.Fatalf("raw segmented GET: %d bytes, want %d", got, n)
			}
		}
	})
	// The floor of the download's work without Kluis: a GET of each
	// age-encrypted 16 MiB segment in turn, decrypted as it streams in.
	b.Run("RawGetDecrypt", func(b *testing.B) {
		buf := make([]byte, 64<<10)
		b.SetBytes(n)
		for i := 0; i < b.N; i++ {
			var got int64
			for k, off := 0, int64(0); off < n; k, off = k+1, off+segSize {
				obj, _, _, err := e.core.GetObject(ctx, e.bucket, fmt.Sprintf("%s/rawage/%06d", e.prefix, k), minio.GetObjectOptions{})
				if err != nil {
					b.Fatal(err)
				}
				r, err := age.Decrypt(obj, id)
				if err != nil {
					b.Fatal(err)
				}
				m, err := io.CopyBuffer(io.Discard, r, buf)
				obj.Close()
				if err != nil {
					b.Fatal(err)
				}
				got += m
			}
			if got != n {
				b.Fatalf("raw GET and decrypt: %d bytes, want %d", got, n)
			}
		}
	})
	b.Run("Download", func(b *testing.B) {
		if session == "" {
			b.Fatal("no upload to download")
		}
		buf := make([]byte, 256<<10)
		b.SetBytes(n)
		for i := 0; i < b.N; i++ {
			b.StopTimer()
			stop := e.sampleRSS()
			b.StartTimer()
			req, _ := http.NewRequest("GET", e.srv.URL+"/api/v1/session/files/"+fid, nil)
			req.Header.Set("Authorization", "Bearer "+session)
			resp, err := e.client.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			if resp.StatusCode != http.StatusOK {
				b.Fatalf("download: status %d\n%s", resp.StatusCode, e.stderr.String())
			}
			got, err := io.CopyBuffer(io.Discard, resp.Body, buf)
			resp.Body.Close()
			b.StopTimer()
			before, peak := stop()
			b.StartTimer()
			if err != nil || got != n {
				b.Fatalf("download: %d bytes, %v", got, err)
			}
			b.ReportMetric(before, "rss-before-MiB")
			b.ReportMetric(peak, "rss-peak-MiB")
		}
		// The whole run's high-water mark of the server (the kernel's).
		b.ReportMetric(float64(e.rss("VmHWM"))/1024, "rss-hwm-MiB")
	})
}

// finishAndUnlock finishes a transfer (no password) and returns a download
// session for its link.
func (e *s3Env) finishAndUnlock(c *created) (string, error) {
	var fin struct {
		Links []struct {
			URL string `json:"url"`
		} `json:"links"`
	}
	finBody, _ := json.Marshal(map[string]string{"link_secret": c.LinkSecret})
	if _, err := e.do("POST", "/api/v1/transfers/"+c.ID+"/finish", c.UploadToken, map[string]string{"Content-Type": "application/json"}, bytes.NewReader(finBody), http.StatusOK, &fin); err != nil {
		return "", err
	}
	if len(fin.Links) == 0 {
		return "", errors.New("finish: no links")
	}
	u, err := url.Parse(fin.Links[0].URL)
	if err != nil {
		return "", err
	}
	access := u.Path[strings.LastIndexByte(u.Path, '/')+1:]
	var sess struct {
		Session string `json:"session"`
	}
	body, _ := json.Marshal(map[string]string{"secret": u.Fragment})
	if _, err := e.do("POST", "/api/v1/links/"+access+"/unlock", "", map[string]string{"Content-Type": "application/json"}, bytes.NewReader(body), http.StatusOK, &sess); err != nil {
		return "", err
	}
	return sess.Session, nil
}

// newURLServer stands for a server at base: env.do only reads its URL.
func newURLServer(base string) *httptest.Server { return &httptest.Server{URL: base} }
