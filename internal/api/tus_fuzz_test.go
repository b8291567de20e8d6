package api_test

import (
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	tusd "github.com/tus/tusd/v2/pkg/handler"

	"github.com/kluis-nl/kluis"
	"github.com/kluis-nl/kluis/internal/transfer"
)

// FuzzTusMetadata is security.md item 29 for tus headers and metadata:
//   - any Upload-Metadata header, parsed as tusd does and cleaned as the
//     engine does, gives a file name without '/', '\', control characters
//     or invalid UTF-8, of at most 255 bytes;
//   - POST, HEAD and PATCH on the tus endpoint with fuzzed Upload-Length,
//     Upload-Offset and Upload-Metadata never get a 5xx.
func FuzzTusMetadata(f *testing.F) {
	seeds := []struct {
		length, offset, meta string
		body                 []byte
	}{
		{"5", "0", "filename aGFsbG8udHh0,filetype dGV4dC9wbGFpbg==", []byte("hallo")},
		{"0", "0", "filename Li4vLi4vZXRjL3Bhc3N3ZA==", nil},                       // ../../etc/passwd
		{"3", "0", "filename YQBi", []byte("abc")},                                 // a NUL b
		{"3", "1", "filename Li5cLi5cd2luLmluaQ==", []byte("abc")},                 // ..\..\win.ini
		{"-1", "-1", "filename", nil},                                              // key without value
		{"99999999999999999999", "0", "filename !!!notbase64", nil},                // overflow
		{"10", "5", "name YQ0KYg==,type", []byte("0123456789")},                    // CR LF in the name
		{"2000000001", "0", "filename " + strings.Repeat("QUFB", 200), nil},        // over the limit, long name
		{"4", "0", ",,, ,filename  eA==", []byte("abcd")},                          // odd separators
		{"1", "18446744073709551615", "filename 8J+Ygg==", []byte("x")},            // emoji, huge offset
		{"7", "0", "filename " + "w6nDqcOp", []byte("1234567")},                    // UTF-8
		{"+5", "+0", "filename\taGk=", []byte("12345")},                            // signs, tab
		{"1e3", "0x0", "filename /w==", nil},                                       // invalid UTF-8 byte
		{"5", "0", "filename aGFsbG8udHh0,filename b3RoZXIudHh0", []byte("hallo")}, // duplicate key
		{"3", "3", "filename YQ==", []byte("abcdef")},                              // past the end
		{"", "", "", nil}, // no headers
		{"00005", "00", "filename YWFh", []byte("hello")},                               // leading zeros
		{" 5", "0 ", "filename YWFh", []byte("hello")},                                  // spaces
		{"5", "0", "filename " + strings.Repeat("A", 2000), []byte("hello")},            // very long
		{"5", "0", "filename LgotLg==", []byte("hello")},                                // . LF .
		{"5", "0", "filename 4oCuZXhlLnR4dA==", []byte("hello")},                        // RLO
		{"5", "0", "filename wqA=", []byte("hello")},                                    // NBSP only
		{"5", "0", "filename Lg==", []byte("hello")},                                    // "."
		{"5", "0", "filename Li4=", []byte("hello")},                                    // ".."
		{"5", "0", "filename XA==", []byte("hello")},                                    // "\"
		{"5", "0", "filename Lw==", []byte("hello")},                                    // "/"
		{"5", "0", "filename Y29uOg==", []byte("hello")},                                // "con:"
		{"5", "0", "filename " + strings.Repeat("8J+Ygg", 100), []byte("hello")},        // broken base64
		{"5", "0", "filename " + strings.Repeat("8J+Ygg==", 1), []byte("hello")},        // emoji
		{"5", "0", "filename " + strings.Repeat("4pyF", 100), []byte("hello")},          // 300 check marks
		{"5", "0", "filename " + strings.Repeat("w6k=", 1) + " extra", []byte("hello")}, // three parts
	}
	for _, s := range seeds {
		f.Add(s.length, s.offset, s.meta, s.body)
	}
	e := newAPIEnv(f, func(c *transfer.Config) { c.MaxTransferSize = 1 << 20 })
	// Fuzzed requests are often invalid on purpose: no OpenAPI check here,
	// only the status.
	e.client = &http.Client{Transport: &http.Transport{DisableCompression: true}, Timeout: 10 * time.Second}
	var c created
	uses := 0
	f.Fuzz(func(t *testing.T, length, offset, meta string, body []byte) {
		for k, v := range tusd.ParseMetadataHeader(meta) {
			for _, name := range []string{v, k} {
				checkCleanName(t, name)
			}
		}

		e.t = t
		// A transfer takes a few uploads until its size budget is spent;
		// a fresh one now and then keeps POST reaching the engine.
		if c.ID == "" || uses >= 20 {
			if c.ID != "" {
				// Revoke the spent draft: a sender may hold at most 20
				// unsent transfers at once (the open-drafts quota).
				if resp, err := e.try("POST", "/api/v1/transfers/"+c.ID+"/revoke", c.UploadToken, nil, nil); err == nil {
					resp.Body.Close()
				}
			}
			c, uses = e.create(""), 0
		}
		uses++
		hdr := func(extra map[string]string) map[string]string {
			h := map[string]string{"Tus-Resumable": "1.0.0"}
			for k, v := range extra {
				h[k] = v
			}
			return h
		}
		do := func(method, path string, h map[string]string, b []byte) *http.Response {
			t.Helper()
			var rd any
			if b != nil {
				rd = b
			}
			resp, err := e.try(method, path, c.UploadToken, h, rd)
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatalf("%s %s with Upload-Length %q, Upload-Offset %q, Upload-Metadata %q: no answer: %v",
					method, path, length, offset, meta, err)
			}
			if err != nil {
				// A header value net/http refuses to send (a line break):
				// nothing reached the server.
				return nil
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode >= 500 {
				t.Fatalf("%s %s with Upload-Length %q, Upload-Offset %q, Upload-Metadata %q: status %d",
					method, path, length, offset, meta, resp.StatusCode)
			}
			return resp
		}
		post := map[string]string{"Upload-Metadata": meta}
		if length != "" {
			post["Upload-Length"] = length
		}
		resp := do("POST", "/api/v1/uploads/", hdr(post), nil)
		if resp != nil && resp.StatusCode == http.StatusRequestEntityTooLarge {
			uses = 20
		}
		loc := "/api/v1/uploads/nonexistent"
		if resp != nil && resp.StatusCode == http.StatusCreated {
			l := resp.Header.Get("Location")
			if i := strings.Index(l, "/api/v1/uploads/"); i >= 0 {
				loc = l[i:]
			}
		}
		do("HEAD", loc, hdr(nil), nil)
		do("PATCH", loc, hdr(map[string]string{"Upload-Offset": offset, "Content-Type": "application/offset+octet-stream"}), body)
		do("HEAD", loc, hdr(nil), nil)
	})
}

func checkCleanName(t *testing.T, in string) {
	t.Helper()
	name := kluis.CleanFileName(in)
	if name == "" || len(name) > kluis.MaxFileNameLength || !utf8.ValidString(name) {
		t.Fatalf("CleanFileName(%q) = %q", in, name)
	}
	if strings.ContainsAny(name, "/\\") || name == "." || name == ".." {
		t.Fatalf("CleanFileName(%q) = %q: a path", in, name)
	}
	for _, r := range name {
		if unicode.IsControl(r) {
			t.Fatalf("CleanFileName(%q) = %q: control character %U", in, name, r)
		}
	}
}
