package download_test

import (
	"archive/zip"
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/kluis-nl/kluis"
	"github.com/kluis-nl/kluis/internal/segment"
	"github.com/kluis-nl/kluis/internal/transfer"
)

func checkDownloadHeaders(t *testing.T, h http.Header) {
	t.Helper()
	if h.Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("X-Content-Type-Options %q", h.Get("X-Content-Type-Options"))
	}
	if csp := h.Values("Content-Security-Policy"); len(csp) != 1 || csp[0] != "sandbox; default-src 'none'; frame-ancestors 'none'" {
		t.Errorf("Content-Security-Policy %q, want the download sandbox", csp)
	}
	if h.Get("Cache-Control") != "no-store" {
		t.Errorf("Cache-Control %q, want no-store", h.Get("Cache-Control"))
	}
	if ct := h.Get("Content-Type"); ct != "application/octet-stream" && ct != "application/zip" && !strings.HasPrefix(ct, "multipart/byteranges; boundary=") {
		t.Errorf("Content-Type %q: a download must never be rendered", ct)
	}
}

// TestDownloadNamesAndHeaders stores files with hostile names and
// downloads them: always an attachment, never a raw CR/LF or quote.
func TestDownloadNamesAndHeaders(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	names := []string{
		`say "hi".txt`, "naïve résumé €.pdf", "evil\r\nSet-Cookie: a=b.html", "../../../etc/passwd",
		"nul\x00byte.svg", `back\slash.txt`, "<script>alert(1)</script>.html", "%0d%0a.txt", "日本語.txt",
	}
	c := e.create("")
	var files []fileJSON
	for i, n := range names {
		f := e.put(c, n, []byte(fmt.Sprintf("<html><script>alert(%d)</script></html>", i)))
		if want := kluis.CleanFileName(n); f.Name != want {
			t.Errorf("stored name %q for %q, want %q", f.Name, n, want)
		}
		files = append(files, f)
	}
	access := e.finish(c)
	sess := e.unlock(access[0], c.Password)
	for i, f := range files {
		resp := e.req("GET", "/api/v1/session/files/"+f.ID, sess, nil, nil)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(body) != fmt.Sprintf("<html><script>alert(%d)</script></html>", i) {
			t.Fatalf("%q: status %d body %q", names[i], resp.StatusCode, body)
		}
		checkDownloadHeaders(t, resp.Header)
		checkDisposition(t, resp.Header.Get("Content-Disposition"), kluis.CleanFileName(names[i]))
	}
	resp := e.req("GET", "/api/v1/session/zip", sess, nil, nil)
	zb, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("zip: %d %v", resp.StatusCode, err)
	}
	checkDownloadHeaders(t, resp.Header)
	d, _, err := mime.ParseMediaType(resp.Header.Get("Content-Disposition"))
	if err != nil || d != "attachment" {
		t.Errorf("zip Content-Disposition %q", resp.Header.Get("Content-Disposition"))
	}
	zr, err := zip.NewReader(bytes.NewReader(zb), int64(len(zb)))
	if err != nil {
		t.Fatal(err)
	}
	for _, zf := range zr.File {
		if strings.Contains(zf.Name, "/") || strings.Contains(zf.Name, `\`) || strings.Contains(zf.Name, "..") && !strings.HasPrefix(zf.Name, "..") {
			t.Errorf("zip entry with a path: %q", zf.Name)
		}
	}
	if len(zr.File) != len(names) {
		t.Errorf("zip has %d entries, want %d", len(zr.File), len(names))
	}
}

// TestRangeEdges: Range requests at chunk (64 KiB) and segment (100,000)
// edges return exactly the asked bytes.
func TestRangeEdges(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const size = 300_001
	s := e.shared([]string{"groot.bin"}, []int{size})
	data := s.data[0]
	path := "/api/v1/session/files/" + s.files[0].ID
	cases := []struct {
		spec       string
		start, end int // inclusive
	}{
		{"bytes=0-0", 0, 0},
		{"bytes=65535-65536", 65535, 65536},
		{"bytes=65536-131071", 65536, 131071},
		{"bytes=99999-100000", 99999, 100000},
		{"bytes=100000-100000", 100000, 100000},
		{"bytes=131071-131072", 131071, 131072},
		{"bytes=196607-200000", 196607, 200000},
		{"bytes=50000-250000", 50000, 250000},
		{"bytes=299999-", 299999, size - 1},
		{"bytes=300000-300000", 300000, 300000},
		{"bytes=-1", size - 1, size - 1},
		{"bytes=-70000", size - 70000, size - 1},
		{"bytes=0-", 0, size - 1},
		{"bytes=200000-999999999", 200000, size - 1},
	}
	for _, tc := range cases {
		resp := e.req("GET", path, s.session, map[string]string{"Range": tc.spec}, nil)
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusPartialContent {
			t.Errorf("%s: status %d err %v", tc.spec, resp.StatusCode, err)
			continue
		}
		if !bytes.Equal(body, data[tc.start:tc.end+1]) {
			t.Errorf("%s: got %d bytes, content differs from [%d, %d]", tc.spec, len(body), tc.start, tc.end)
		}
		if want := fmt.Sprintf("bytes %d-%d/%d", tc.start, tc.end, size); resp.Header.Get("Content-Range") != want {
			t.Errorf("%s: Content-Range %q, want %q", tc.spec, resp.Header.Get("Content-Range"), want)
		}
		checkDownloadHeaders(t, resp.Header)
	}
	resp := e.req("GET", path, s.session, map[string]string{"Range": "bytes=300001-"}, nil)
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestedRangeNotSatisfiable {
		t.Errorf("range past the end: status %d, want 416", resp.StatusCode)
	}
	// Multiple ranges (multipart/byteranges).
	resp = e.req("GET", path, s.session, map[string]string{"Range": "bytes=0-9,99995-100004"}, nil)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusPartialContent || !bytes.Contains(body, data[99995:100005]) || !bytes.Contains(body, data[0:10]) {
		t.Errorf("multi-range: status %d", resp.StatusCode)
	}
	// The whole file, and its SHA-256 header.
	resp = e.req("GET", path, s.session, nil, nil)
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if !bytes.Equal(body, data) || resp.Header.Get("Content-Length") != strconv.Itoa(size) {
		t.Errorf("full download: %d bytes, Content-Length %q", len(body), resp.Header.Get("Content-Length"))
	}
}

// TestTamperedDownloadOverHTTP is security.md item 6 on the wire: a
// tampered file is never a clean 200 with all its bytes, and a ZIP with a
// tampered file never ends cleanly.
func TestTamperedDownloadOverHTTP(t *testing.T) {
	t.Parallel()
	const size = 350_000
	cases := []struct {
		name   string
		seg    int
		at     int
		direct bool // the first segment is checked before the status line
	}{
		{"first segment header", 0, 40, true},
		{"first segment payload", 0, 5000, true},
		{"third segment payload", 2, 50_000, false},
		{"last segment tag", 3, -1, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			s := e.shared([]string{"a.bin", "b.bin"}, []int{size, size})
			segs := e.segmentPaths(s.c.ID, s.files[0].ID)
			if len(segs) != 4 {
				t.Fatalf("%d segments, want 4", len(segs))
			}
			flip(t, segs[tc.seg], tc.at)

			resp, err := e.try("GET", "/api/v1/session/files/"+s.files[0].ID, s.session, nil, nil)
			var body []byte
			if err == nil {
				body, err = io.ReadAll(resp.Body)
				resp.Body.Close()
			} else {
				// The connection closed before the status line: fine.
				resp = &http.Response{StatusCode: -1}
				if tc.direct {
					t.Errorf("the first segment is checked before the status line, so a JSON error was expected; got %v", err)
				}
			}
			switch {
			case resp.StatusCode == -1:
			case resp.StatusCode == http.StatusOK && err == nil && len(body) == size:
				t.Fatal("a tampered file came out as a clean, complete 200")
			case resp.StatusCode == http.StatusOK && err == nil:
				t.Fatalf("a tampered file ended cleanly after %d of %d bytes", len(body), size)
			case resp.StatusCode == http.StatusOK:
				if !errors.Is(err, io.ErrUnexpectedEOF) {
					t.Logf("client error: %v", err)
				}
				if tc.direct {
					t.Errorf("the first segment is checked before the status line; got 200 and then %v", err)
				}
				if !bytes.Equal(body, s.data[0][:len(body)]) {
					t.Error("bytes before the abort are not the original ones")
				}
			default:
				if resp.StatusCode != http.StatusInternalServerError || !bytes.Contains(body, []byte(`"integrity"`)) {
					t.Errorf("status %d body %s, want 500 integrity", resp.StatusCode, body)
				}
			}
			// A Range inside the tampered segment fails too; one in an intact
			// segment still works.
			r := fmt.Sprintf("bytes=%d-%d", tc.seg*100_000+10, tc.seg*100_000+20)
			if resp, err := e.try("GET", "/api/v1/session/files/"+s.files[0].ID, s.session, map[string]string{"Range": r}, nil); err == nil {
				body, err = io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode == http.StatusPartialContent && err == nil && len(body) == 11 {
					t.Errorf("range %s in the tampered segment came out clean", r)
				}
			}
			// A Range in an intact segment: if it is served, it is right. (It
			// may also fail: the download read-ahead verifies a whole window,
			// which can reach into the tampered segment. Fail closed.)
			okStart := (tc.seg + 1) % 4 * 100_000
			ok := fmt.Sprintf("bytes=%d-%d", okStart, okStart+5)
			if resp, err := e.try("GET", "/api/v1/session/files/"+s.files[0].ID, s.session, map[string]string{"Range": ok}, nil); err == nil {
				body, err = io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode == http.StatusPartialContent && err == nil && !bytes.Equal(body, s.data[0][okStart:okStart+6]) {
					t.Errorf("range %s in an intact segment: wrong bytes", ok)
				}
				if resp.StatusCode != http.StatusPartialContent || err != nil {
					t.Logf("range %s in an intact segment refused: %d %v", ok, resp.StatusCode, err)
				}
			} else {
				t.Logf("range %s in an intact segment refused: %v", ok, err)
			}

			// ZIP: the tampered file is the second entry after the message;
			// tamper the second file instead, so the stream is well under
			// way when it meets the damage.
			segsB := e.segmentPaths(s.c.ID, s.files[1].ID)
			flip(t, segsB[tc.seg], tc.at)
			resp, err = e.try("GET", "/api/v1/session/zip", s.session, nil, nil)
			if err != nil {
				return // aborted before the status line
			}
			zb, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && err == nil {
				t.Fatalf("ZIP with tampered files ended cleanly (%d bytes)", len(zb))
			}
			if resp.StatusCode == http.StatusOK && resp.ContentLength >= 0 {
				t.Errorf("ZIP has a Content-Length (%d): a client could not tell an abort from the end", resp.ContentLength)
			}
		})
	}
}

// TestTamperedSecondFileInZip: the first file is intact, the second is
// tampered: the ZIP stream aborts (client read error), never a clean end of
// the chunked body. The first file went out whole and counts as
// downloaded; the second does not.
func TestTamperedSecondFileInZip(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	s := e.shared([]string{"goed.bin", "kapot.bin"}, []int{250_000, 250_000})
	segs := e.segmentPaths(s.c.ID, s.files[1].ID)
	flip(t, segs[1], 1000)
	resp := e.req("GET", "/api/v1/session/zip", s.session, nil, nil)
	zb, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if err == nil {
		t.Fatalf("the ZIP stream ended cleanly after %d bytes", len(zb))
	}
	if len(zb) < 250_000 {
		t.Errorf("only %d bytes before the abort; expected the intact first file to stream", len(zb))
	}
	tr, err := e.svc.Transfer(e.ctx, transfer.Owner{TransferID: s.c.ID})
	if err != nil {
		t.Fatal(err)
	}
	var got []int
	for _, d := range tr.Recipients[0].Downloads {
		got = append(got, d.FileIndex)
	}
	if len(got) != 1 || got[0] != 0 {
		t.Errorf("downloads recorded %v, want [0]: the intact first file only", got)
	}
}

// TestTamperedThirdWindowOverHTTP is the parallel read-ahead on the wire: a
// bad chunk in the third window of a file whose windows are decrypted
// ahead in parallel. The answer starts (the first segment verified), the
// intact bytes before the bad chunk may go out, and then the connection is
// cut: never a clean 200, never a byte of the bad chunk or after it.
func TestTamperedThirdWindowOverHTTP(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *transfer.Config) { c.SegmentSize = 16 << 20 })
	const size = 6 * segment.WindowSize
	s := e.shared([]string{"groot.bin"}, []int{size})
	segs := e.segmentPaths(s.c.ID, s.files[0].ID)
	if len(segs) != 1 {
		t.Fatalf("%d segments, want 1", len(segs))
	}
	badChunk := 2*segment.WindowSize/chunk + 3
	tamperChunk(t, segs[0], badChunk)

	resp := e.req("GET", "/api/v1/session/files/"+s.files[0].ID, s.session, nil, nil)
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d, want 200 (the first segment is intact)", resp.StatusCode)
	}
	if err == nil {
		t.Fatalf("the answer ended cleanly after %d of %d bytes", len(body), size)
	}
	if bad := badChunk * chunk; len(body) > bad {
		t.Fatalf("%d bytes sent: past the bad chunk at %d", len(body), bad)
	}
	if !bytes.Equal(body, s.data[0][:len(body)]) {
		t.Fatal("bytes before the abort are not the original ones")
	}
}
