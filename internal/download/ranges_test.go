package download_test

import (
	"bytes"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/kluis-nl/kluis/internal/transfer"
)

// TestMultiRangeAnswers: Kluis writes multipart/byteranges itself (RFC 9110
// section 14.6): each part carries its Content-Range and exactly those
// bytes, the answer has a Content-Length that matches, overlapping and
// nearby ranges are joined, and too many parts get the whole file.
func TestMultiRangeAnswers(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const size = 300_001
	s := e.shared([]string{"groot.bin"}, []int{size})
	data := s.data[0]
	path := "/api/v1/session/files/" + s.files[0].ID
	far := func(n int) string {
		var parts []string
		for i := range n {
			parts = append(parts, fmt.Sprintf("%d-%d", i*30_000, i*30_000+9))
		}
		return "bytes=" + strings.Join(parts, ",")
	}
	type part struct{ first, last int }
	cases := []struct {
		name, rng string
		status    int
		parts     []part // nil with 200: the whole file
	}{
		{"two ranges", "bytes=0-9,99995-100004", 206, []part{{0, 9}, {99995, 100004}}},
		{"out of order", "bytes=200000-200009,5-14", 206, []part{{5, 14}, {200000, 200009}}},
		{"across segments", "bytes=99990-100009,199990-200009,299990-", 206, []part{{99990, 100009}, {199990, 200009}, {299990, 300000}}},
		{"overlapping are joined", "bytes=0-99,50-149", 206, []part{{0, 149}}},
		{"nearby are joined", "bytes=0-9,30-39", 206, []part{{0, 39}}},
		{"a suffix and a prefix", "bytes=-10,0-9", 206, []part{{0, 9}, {size - 10, size - 1}}},
		{"one past the end is left out", "bytes=0-9,400000-400010", 206, []part{{0, 9}}},
		{"eight parts", far(8), 206, []part{{0, 9}, {30000, 30009}, {60000, 60009}, {90000, 90009}, {120000, 120009}, {150000, 150009}, {180000, 180009}, {210000, 210009}}},
		{"nine parts: the whole file", far(9), 200, nil},
		{"many tiny ranges joined into one", "bytes=" + strings.Repeat("0-0,", 500) + "1-1", 200, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp := e.req("GET", path, s.session, map[string]string{"Range": tc.rng}, nil)
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil || resp.StatusCode != tc.status {
				t.Fatalf("status %d, %v; want %d", resp.StatusCode, err, tc.status)
			}
			checkDownloadHeaders(t, resp.Header)
			if cl := resp.Header.Get("Content-Length"); cl != strconv.Itoa(len(body)) {
				t.Errorf("Content-Length %s, body %d bytes", cl, len(body))
			}
			if tc.parts == nil {
				if !bytes.Equal(body, data) {
					t.Errorf("want the whole file, got %d bytes", len(body))
				}
				return
			}
			mt, params, err := mime.ParseMediaType(resp.Header.Get("Content-Type"))
			if err != nil {
				t.Fatal(err)
			}
			if len(tc.parts) == 1 {
				p := tc.parts[0]
				if mt != "application/octet-stream" || resp.Header.Get("Content-Range") != fmt.Sprintf("bytes %d-%d/%d", p.first, p.last, size) || !bytes.Equal(body, data[p.first:p.last+1]) {
					t.Errorf("single part: %s, Content-Range %q, %d bytes; want %v", mt, resp.Header.Get("Content-Range"), len(body), p)
				}
				return
			}
			if mt != "multipart/byteranges" || params["boundary"] == "" {
				t.Fatalf("Content-Type %q", resp.Header.Get("Content-Type"))
			}
			mr := multipart.NewReader(bytes.NewReader(body), params["boundary"])
			for i := 0; ; i++ {
				pt, err := mr.NextPart()
				if err == io.EOF {
					if i != len(tc.parts) {
						t.Errorf("%d parts, want %d", i, len(tc.parts))
					}
					break
				}
				if err != nil {
					t.Fatalf("part %d: %v", i, err)
				}
				if i >= len(tc.parts) {
					t.Fatalf("more parts than %d", len(tc.parts))
				}
				want := tc.parts[i]
				got, _ := io.ReadAll(pt)
				if cr := pt.Header.Get("Content-Range"); cr != fmt.Sprintf("bytes %d-%d/%d", want.first, want.last, size) {
					t.Errorf("part %d: Content-Range %q, want %v", i, cr, want)
				}
				if pt.Header.Get("Content-Type") != "application/octet-stream" {
					t.Errorf("part %d: Content-Type %q", i, pt.Header.Get("Content-Type"))
				}
				if !bytes.Equal(got, data[want.first:want.last+1]) {
					t.Errorf("part %d: %d bytes that differ from %v", i, len(got), want)
				}
			}
			// HEAD announces the same length.
			hr := e.req("HEAD", path, s.session, map[string]string{"Range": tc.rng}, nil)
			hr.Body.Close()
			if hr.StatusCode != tc.status || hr.Header.Get("Content-Length") != strconv.Itoa(len(body)) {
				t.Errorf("HEAD: %d, Content-Length %q; GET sent %d bytes", hr.StatusCode, hr.Header.Get("Content-Length"), len(body))
			}
		})
	}
}

// TestRangeRefusals: a Range that does not parse, or lies past the end, is
// 416 with "bytes */size", as http.ServeContent answered.
func TestRangeRefusals(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	s := &shared{c: e.create("")}
	s.files = append(s.files, e.put(s.c, "a.bin", randomBytes(7, 1000)))
	// An empty file, through the engine: the API's plain upload wants a
	// body.
	o := transfer.Owner{TransferID: s.c.ID}
	empty, err := e.svc.NewFile(e.ctx, o, "leeg.bin", "application/octet-stream", 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.CompleteFile(e.ctx, o, empty.ID); err != nil {
		t.Fatal(err)
	}
	s.files = append(s.files, fileJSON{ID: empty.ID})
	s.session = e.unlock(e.finish(s.c)[0], s.c.Password)
	for _, tc := range []struct {
		file int
		rng  string
	}{
		{0, "bytes=1000-"}, {0, "bytes=5000-6000,2000-3000"}, {0, "bytes=5-3"}, {0, "bytes=abc"},
		{0, "bytes=1-2,x"}, {0, "items=0-1"}, {0, "bytes=--1"}, {0, "bytes=-0"}, {1, "bytes=0-"}, {1, "bytes=-5"},
	} {
		resp := e.req("GET", "/api/v1/session/files/"+s.files[tc.file].ID, s.session, map[string]string{"Range": tc.rng}, nil)
		resp.Body.Close()
		want := fmt.Sprintf("bytes */%d", []int{1000, 0}[tc.file])
		if resp.StatusCode != http.StatusRequestedRangeNotSatisfiable || resp.Header.Get("Content-Range") != want {
			t.Errorf("%q on %d bytes: %d, Content-Range %q; want 416 and %q", tc.rng, []int{1000, 0}[tc.file], resp.StatusCode, resp.Header.Get("Content-Range"), want)
		}
	}
	// An empty file, whole.
	resp := e.req("GET", "/api/v1/session/files/"+s.files[1].ID, s.session, nil, nil)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || len(body) != 0 || resp.Header.Get("Content-Length") != "0" {
		t.Errorf("empty file: %d, %d bytes, Content-Length %q", resp.StatusCode, len(body), resp.Header.Get("Content-Length"))
	}
}

// TestConditionalDownloads: conditional requests get what http.ServeContent
// gave a download, which has no validator: If-Range never matches (the
// whole file), If-None-Match matches only "*" (304), If-Match fails unless
// "*" (412), and the date conditions are ignored.
func TestConditionalDownloads(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const size = 120_000
	s := e.shared([]string{"a.bin"}, []int{size})
	path := "/api/v1/session/files/" + s.files[0].ID
	const date = "Mon, 02 Jan 2006 15:04:05 GMT"
	for _, tc := range []struct {
		header map[string]string
		status int
		length int // body bytes
	}{
		{map[string]string{"Range": "bytes=0-9", "If-Range": `"abc"`}, 200, size},
		{map[string]string{"Range": "bytes=0-9", "If-Range": date}, 200, size},
		{map[string]string{"Range": "bytes=0-9,100-109", "If-Range": `W/"abc"`}, 200, size},
		{map[string]string{"If-Range": `"abc"`}, 200, size},
		{map[string]string{"If-None-Match": "*"}, 304, 0},
		{map[string]string{"If-None-Match": `"abc", *`}, 304, 0},
		{map[string]string{"If-None-Match": `"abc"`}, 200, size},
		{map[string]string{"If-None-Match": `"abc"`, "Range": "bytes=0-9"}, 206, 10},
		{map[string]string{"If-None-Match": `bad, *`}, 200, size},
		{map[string]string{"If-Match": `"abc"`}, 412, 0},
		{map[string]string{"If-Match": `"abc", *`}, 200, size},
		{map[string]string{"If-Match": "*", "Range": "bytes=0-9"}, 206, 10},
		{map[string]string{"If-Modified-Since": date}, 200, size},
		{map[string]string{"If-Unmodified-Since": date}, 200, size},
	} {
		resp := e.req("GET", path, s.session, tc.header, nil)
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != tc.status || len(body) != tc.length {
			t.Errorf("%v: %d with %d bytes (%v); want %d with %d", tc.header, resp.StatusCode, len(body), err, tc.status, tc.length)
		}
		if tc.status == 200 && !bytes.Equal(body, s.data[0]) {
			t.Errorf("%v: the body is not the file", tc.header)
		}
	}
}
