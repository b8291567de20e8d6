package download_test

import (
	"archive/zip"
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/kluis-nl/kluis/internal/download"
	"github.com/kluis-nl/kluis/internal/segment"
	"github.com/kluis-nl/kluis/internal/transfer"
)

// age's STREAM: 64 KiB of plaintext per chunk, 16 bytes of tag each.
const chunk, encChunk = 64 << 10, 64<<10 + 16

// tamperChunk flips a bit in chunk i of the age segment at path.
func tamperChunk(t *testing.T, path string, i int) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// The payload starts after the age header and the 16-byte nonce.
	headerLen := bytes.Index(b, []byte("\n---")) + 1
	headerLen += bytes.IndexByte(b[headerLen:], '\n') + 1 + 16
	flip(t, path, headerLen+i*encChunk+100)
}

// releasedAfter reports the first chunk at or after bad whose start (32
// bytes) shows up in body: a byte that must never have been released.
func releasedAfter(body, data []byte, bad int) (int, bool) {
	for off := bad; off+32 <= len(data); off += chunk {
		if bytes.Contains(body, data[off:off+32]) {
			return off, true
		}
	}
	return 0, false
}

// TestTamperedThirdWindowRangesAndZip is TestTamperedThirdWindowOverHTTP
// for the other paths through the parallel read-ahead: a single range, a
// multipart/byteranges answer and a ZIP. Each starts (the first segment's
// start is intact), may send the verified bytes before the bad chunk, and
// then breaks off: no byte of the bad chunk or of any chunk after it ever
// reaches the client, although the windows after it are decrypted ahead,
// and no file counts as downloaded.
func TestTamperedThirdWindowRangesAndZip(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *transfer.Config) { c.SegmentSize = 16 << 20 })
	const size = 6 * segment.WindowSize
	s := e.shared([]string{"groot.bin"}, []int{size})
	data := s.data[0]
	segs := e.segmentPaths(s.c.ID, s.files[0].ID)
	if len(segs) != 1 {
		t.Fatalf("%d segments, want 1", len(segs))
	}
	badChunk := 2*segment.WindowSize/chunk + 3 // in the third window
	bad := badChunk * chunk
	tamperChunk(t, segs[0], badChunk)

	// get fetches path and returns the status and what the client got
	// before the connection broke; it fails the test if the answer ended
	// cleanly.
	get := func(t *testing.T, path, rng string, want int) []byte {
		t.Helper()
		var h map[string]string
		if rng != "" {
			h = map[string]string{"Range": rng}
		}
		resp := e.req("GET", path, s.session, h, nil)
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Fatalf("status %d, want %d", resp.StatusCode, want)
		}
		if off, ok := releasedAfter(body, data, bad); ok {
			t.Fatalf("bytes at %d (bad chunk at %d) reached the client", off, bad)
		}
		if err == nil {
			t.Fatalf("the answer ended cleanly after %d bytes", len(body))
		}
		return body
	}
	// prefix checks that body from data[start:start+32] on is data from
	// start, ending before the bad chunk.
	prefix := func(t *testing.T, body []byte, start int) {
		t.Helper()
		at := bytes.Index(body, data[start:start+32])
		if at < 0 {
			t.Fatalf("the bytes at %d never came (%d bytes got)", start, len(body))
		}
		got := body[at:]
		if start+len(got) > bad {
			t.Fatalf("%d bytes from %d: past the bad chunk at %d", len(got), start, bad)
		}
		if !bytes.Equal(got, data[start:start+len(got)]) {
			t.Fatal("bytes before the abort are not the original ones")
		}
	}
	file := "/api/v1/session/files/" + s.files[0].ID
	t.Run("range", func(t *testing.T) {
		body := get(t, file, "bytes=1000-", http.StatusPartialContent)
		if len(body) > bad-1000 {
			t.Fatalf("%d bytes from 1000: past the bad chunk at %d", len(body), bad)
		}
		if !bytes.Equal(body, data[1000:1000+len(body)]) {
			t.Fatal("bytes before the abort are not the original ones")
		}
	})
	t.Run("multipart", func(t *testing.T) {
		body := get(t, file, "bytes=0-99,1000-", http.StatusPartialContent)
		prefix(t, body, 1000)
	})
	t.Run("zip", func(t *testing.T) {
		body := get(t, "/api/v1/session/zip", "", http.StatusOK)
		prefix(t, body, 0)
	})
	tr, err := e.svc.Transfer(e.ctx, transfer.Owner{TransferID: s.c.ID})
	if err != nil {
		t.Fatal(err)
	}
	if d := tr.Recipients[0].Downloads; len(d) != 0 {
		t.Errorf("downloads recorded %+v for a file never sent whole", d)
	}
}

// stallWriter is a ResponseWriter that takes allow bytes and then holds
// every Write until release is closed, as a client that stops reading
// holds the server's writes once the socket buffers are full.
type stallWriter struct {
	header  http.Header
	allow   int
	release chan struct{}

	mu      sync.Mutex
	buf     bytes.Buffer
	stalled bool
}

func (w *stallWriter) Header() http.Header { return w.header }
func (w *stallWriter) WriteHeader(int)     {}

func (w *stallWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	room := w.allow - w.buf.Len()
	w.mu.Unlock()
	if room < len(p) {
		w.mu.Lock()
		w.stalled = true
		w.mu.Unlock()
		<-w.release
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}

func (w *stallWriter) state() (written int, stalled bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Len(), w.stalled
}

// TestDownloadMemoryPerAnswer: what one answer holds of a file is bounded,
// however far the client is behind. A client that stops reading (the
// writes below stall) makes the server stop reading the stored data: the
// bytes read from the blob store run ahead of the bytes sent by at most
// segment.Depth windows of segment.WindowSize, plus the segments'
// verification reads (a header and a final chunk each), which the test
// allows one more window for. Bytes read and not sent are bytes held in
// memory, so this bounds the answer's memory: for a whole file, a range,
// several ranges and a ZIP.
func TestDownloadMemoryPerAnswer(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *transfer.Config) { c.SegmentSize = 16 << 20 })
	const size = 40 << 20
	s := e.shared([]string{"groot.bin"}, []int{size})
	sess, err := e.svc.OpenSession(e.ctx, s.session)
	if err != nil {
		t.Fatal(err)
	}
	bound := int64(segment.Depth()+1) * segment.WindowSize
	log := slog.New(slog.DiscardHandler)
	cases := []struct {
		name, rng string
		zip       bool
		want      []byte // the file's bytes the answer carries, in order
	}{
		{name: "whole file", want: s.data[0]},
		{name: "range", rng: "bytes=20000000-39999999", want: s.data[0][20_000_000:40_000_000]},
		{name: "multipart", rng: "bytes=0-99,5000000-", want: s.data[0][5_000_000:]},
		{name: "zip", zip: true, want: s.data[0]},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := &stallWriter{header: http.Header{}, allow: 3 * segment.WindowSize / 2, release: make(chan struct{})}
			r := httptest.NewRequest("GET", "/", nil)
			if tc.rng != "" {
				r.Header.Set("Range", tc.rng)
			}
			before := e.blobs.read.Load()
			done := make(chan error, 1)
			go func() {
				if tc.zip {
					done <- download.ServeZip(w, r, e.svc, sess, log)
				} else {
					done <- download.ServeFile(w, r, e.svc, sess, s.files[0].ID, log)
				}
			}()
			// Wait until the answer has stalled and its reads below have
			// stopped; a slow machine only makes the count lower.
			last, since := int64(-1), time.Now()
			for deadline := time.Now().Add(30 * time.Second); ; {
				if time.Now().After(deadline) {
					close(w.release)
					t.Fatal("the answer never stalled")
				}
				read := e.blobs.read.Load() - before
				_, stalled := w.state()
				if read != last {
					last, since = read, time.Now()
				} else if stalled && time.Since(since) > 300*time.Millisecond {
					break
				}
				time.Sleep(10 * time.Millisecond)
			}
			written, _ := w.state()
			ahead := last - int64(written)
			close(w.release)
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			if ahead > bound {
				t.Errorf("%d bytes read from the store ahead of the %d sent; at most %d (%d windows of %d and one for verification)",
					ahead, written, bound, segment.Depth(), segment.WindowSize)
			}
			got := w.buf.Bytes()
			if tc.zip {
				zr, err := zip.NewReader(bytes.NewReader(got), int64(len(got)))
				if err != nil {
					t.Fatal(err)
				}
				for _, f := range zr.File {
					if f.Name != "groot.bin" {
						continue
					}
					rc, err := f.Open()
					if err != nil {
						t.Fatal(err)
					}
					got, err = io.ReadAll(rc)
					if err != nil {
						t.Fatal(err)
					}
				}
			}
			// A whole file or one range is the bytes alone; several ranges
			// carry them in a part.
			if !bytes.Contains(got, tc.want) || (tc.rng == "" || tc.name == "range") && len(got) != len(tc.want) {
				t.Fatalf("the answer (%d bytes) does not carry the file's %d bytes", len(got), len(tc.want))
			}
		})
	}
}
