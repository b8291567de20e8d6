package api_test

import (
	"archive/zip"
	"bytes"
	"io"
	"mime"
	"net/http"
	"strings"
	"testing"
)

// TestInvisibleCharactersInNames: bidirectional controls and other
// invisible characters in a client's file name are gone from the stored
// name, the session's file list, the download's Content-Disposition (both
// filename and filename*) and the ZIP's entry names. With U+202E
// "factuur<RLO>fdp.exe" would show as "factuurexe.pdf".
func TestInvisibleCharactersInNames(t *testing.T) {
	t.Parallel()
	e := newAPIEnv(t)
	cases := []struct{ in, want string }{
		{"factuur\u202efdp.exe", "factuurfdp.exe"},
		{"\u2067rapport\u2069.pdf", "rapport.pdf"},
		{"zero\u200bwidth\u2060join\ufeff.txt", "zerowidthjoin.txt"},
		{"soft\u00adhyphen\u061c.txt", "softhyphen.txt"},
		{"hangul\u3164filler.txt", "hangulfiller.txt"},
		{"tag\U000e0041s.txt", "tags.txt"},
		{"wide\u3000\u2003 space   .txt", "wide space .txt"},
	}
	c := e.create("")
	var ids []string
	for _, tc := range cases {
		f := e.put(c, tc.in, []byte(tc.in))
		if f.Name != tc.want {
			t.Errorf("stored name %+q for %+q, want %+q", f.Name, tc.in, tc.want)
		}
		ids = append(ids, f.ID)
	}
	access := e.finish(c)
	sess := e.unlock(access[0], c.Password)

	var contents struct {
		Files []fileJSON `json:"files"`
	}
	e.jsonOK(e.req("GET", "/api/v1/session", sess, nil, nil), http.StatusOK, &contents)
	if len(contents.Files) != len(cases) {
		t.Fatalf("%d files listed, want %d", len(contents.Files), len(cases))
	}
	for i, f := range contents.Files {
		if f.Name != cases[i].want {
			t.Errorf("listed name %+q, want %+q", f.Name, cases[i].want)
		}
	}
	for i, id := range ids {
		resp := e.req("GET", "/api/v1/session/files/"+id, sess, nil, nil)
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		// The header's form is tested in package download; here, the name
		// it carries: plain ASCII, with the cleaned name in filename*.
		v := resp.Header.Get("Content-Disposition")
		_, params, err := mime.ParseMediaType(v)
		if err != nil || params["filename"] != cases[i].want || strings.IndexFunc(v, func(r rune) bool { return r >= 0x7f }) >= 0 {
			t.Errorf("Content-Disposition %q (%v), want filename %+q", v, err, cases[i].want)
		}
	}
	resp := e.req("GET", "/api/v1/session/zip", sess, nil, nil)
	zb, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("zip: %d %v", resp.StatusCode, err)
	}
	zr, err := zip.NewReader(bytes.NewReader(zb), int64(len(zb)))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, zf := range zr.File {
		got[zf.Name] = true
	}
	for _, tc := range cases {
		if !got[tc.want] {
			t.Errorf("zip has no entry %+q; entries %v", tc.want, got)
		}
	}
}
