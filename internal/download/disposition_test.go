package download_test

import (
	"mime"
	"strings"
	"testing"
	"time"

	"github.com/kluis-nl/kluis"
	"github.com/kluis-nl/kluis/internal/download"
)

// checkDisposition asserts what every download's Content-Disposition must
// be: one line, an attachment, parseable, with a quoted fallback that holds
// no raw quote or control character, and (through filename*) the name.
func checkDisposition(t testing.TB, v, wantName string) {
	t.Helper()
	if strings.ContainsAny(v, "\r\n\x00") {
		t.Fatalf("Content-Disposition has a control character: %q", v)
	}
	for _, r := range v {
		if r >= 0x7f || r < 0x20 {
			t.Fatalf("Content-Disposition is not plain ASCII: %q", v)
		}
	}
	disp, params, err := mime.ParseMediaType(v)
	if err != nil {
		t.Fatalf("Content-Disposition %q does not parse: %v", v, err)
	}
	if disp != "attachment" {
		t.Fatalf("disposition %q, want attachment (%q)", disp, v)
	}
	if !strings.HasPrefix(v, `attachment; filename="`) {
		t.Fatalf("no quoted filename fallback: %q", v)
	}
	fallback := v[len(`attachment; filename="`):]
	end := strings.IndexByte(fallback, '"')
	if end < 0 {
		t.Fatalf("unterminated filename: %q", v)
	}
	fallback = fallback[:end]
	if strings.ContainsAny(fallback, "\\/%") || fallback == "" {
		t.Fatalf("fallback filename %q holds a path or escape character", fallback)
	}
	// mime.ParseMediaType decodes filename*= (RFC 2231) into "filename".
	if params["filename"] != wantName {
		t.Fatalf("decoded filename %q, want %q (%q)", params["filename"], wantName, v)
	}
}

func TestContentDispositionUnit(t *testing.T) {
	t.Parallel()
	for _, name := range []string{
		"rapport.pdf", `a"b.txt`, `"`, `\`, "naïve résumé.pdf", "日本語.txt", "emoji 🎉.png",
		"line\r\nbreak.txt", "Set-Cookie: x=y", "../../etc/passwd", "nul\x00byte", "%41%0d%0a.txt",
		"a; filename=evil.html", "semi;colon", "tab\there", "", " ", "...", "\x7f", "\xff\xfe invalid utf8",
		"=?utf-8?q?encoded?=", "filename*=UTF-8''x", strings.Repeat("é", 300),
	} {
		checkDisposition(t, download.ContentDisposition(name), kluis.CleanFileName(name))
	}
}

// FuzzContentDisposition: for any name, the header is one ASCII line that
// mime.ParseMediaType reads as an attachment carrying exactly the cleaned
// name (kluis.CleanFileName), and a cleaned name passes unchanged.
func FuzzContentDisposition(f *testing.F) {
	for _, s := range []string{"rapport.pdf", `a"b`, "x\r\ny", "日本語", "../x", "\x00", "%", "a;b=c", "\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		clean := kluis.CleanFileName(name)
		checkDisposition(t, download.ContentDisposition(name), clean)
		checkDisposition(t, download.ContentDisposition(clean), clean)
	})
}

// TestContentDispositionCleansName: the header helper cleans whatever name
// it is given, so no caller can put a bidirectional control into
// filename*.
func TestContentDispositionCleansName(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"factuur\u202efdp.exe": "factuurfdp.exe",
		"a\u200b\u200fb.txt":   "ab.txt",
		"../x\u2066.pdf":       "x.pdf",
	} {
		v := download.ContentDisposition(in)
		_, params, err := mime.ParseMediaType(v)
		if err != nil {
			t.Fatalf("%q: %v", v, err)
		}
		if params["filename"] != want {
			t.Errorf("ContentDisposition(%+q): filename* %+q, want %+q", in, params["filename"], want)
		}
		if strings.Contains(strings.ToUpper(v), "%E2%80%AE") {
			t.Errorf("ContentDisposition(%+q) = %q still carries U+202E", in, v)
		}
	}
}

// TestZipName: a ZIP is named after the mail's subject, cleaned of what
// file systems refuse and bounded, or after the day it was sent; never
// after an id.
func TestZipName(t *testing.T) {
	sent := time.Date(2026, 12, 5, 23, 30, 0, 0, time.UTC) // 6 December in Amsterdam
	for _, c := range []struct{ subject, want string }{
		{"Uw aanvraag bijzondere bijstand", "Uw aanvraag bijzondere bijstand.zip"},
		{"Besluit 2026/42: bezwaar?", "Besluit 2026-42- bezwaar.zip"},
		{"  ../../etc  ", "etc.zip"},
		{"a\r\nb\x00c", "a bc.zip"},
		{"", "kluis-2026-12-06.zip"},
		{" ... ", "kluis-2026-12-06.zip"},
		{strings.Repeat("é", 200), strings.Repeat("é", 80) + ".zip"},
	} {
		if got := download.ZipName(c.subject, sent); got != c.want {
			t.Errorf("ZipName(%q) = %q, want %q", c.subject, got, c.want)
		}
	}
}
