package e2e

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"testing"
)

// TestRoundTrip uploads files of edge sizes over tus and over the plain
// PUT, downloads them whole and in ranges at chunk (64 KiB) and segment
// (16 MiB) edges, and checks that no secret of the transfer reached the log
// or the data folder.
func TestRoundTrip(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	srv := startServer(t, data)

	pw := uniq("pw-canary-")
	msg := uniq("msg-canary-")
	fname := uniq("fn-canary-")
	marker := uniq("mk-canary-")
	c := srv.create(t, password{Mode: "manual", Value: pw}, msg)
	tus := newTus(c.UploadToken, nil)

	sizes := []int64{0, 1, 65535, 65536, 65537, bigSize()}
	type up struct {
		name string
		src  *source
	}
	var ups []up
	for i, n := range sizes {
		src := newSource(uint64(1000+i), n, marker)
		name := fmt.Sprintf("%s-tus-%d.bin", fname, n)
		var splits []int64
		if n == 65537 {
			// Two requests, so a segment boundary falls at 65535, just
			// before the second 64 KiB chunk.
			splits = []int64{65535}
		}
		tus.upload(t, srv.base, name, src, splits...)
		ups = append(ups, up{name, src})

		src = newSource(uint64(2000+i), n, marker)
		name = fmt.Sprintf("%s-plain-%d é.bin", fname, n)
		if st, code := srv.plainUpload(t, c, name, src, false); st != http.StatusCreated {
			t.Fatalf("plain upload of %d bytes: %d %s", n, st, code)
		}
		ups = append(ups, up{name, src})
	}
	// One chunked plain upload (no Content-Length).
	chunked := newSource(3000, 3<<20+5, marker)
	chunkedName := fname + "-chunked.bin"
	if st, code := srv.plainUpload(t, c, chunkedName, chunked, true); st != http.StatusCreated {
		t.Fatalf("chunked plain upload: %d %s", st, code)
	}
	ups = append(ups, up{chunkedName, chunked})

	access, frag := srv.finish(t, c)
	if frag != "" {
		t.Errorf("a password transfer's link has a fragment %q", frag)
	}
	session := srv.unlock(t, access, pw)
	cont := srv.contents(t, session)
	if cont.Message != msg {
		t.Errorf("message %q, want %q", cont.Message, msg)
	}
	if len(cont.Files) != len(ups) {
		t.Fatalf("%d files listed, want %d", len(cont.Files), len(ups))
	}
	for _, u := range ups {
		f := cont.file(t, u.name)
		if !f.Complete {
			t.Errorf("%s not complete", u.name)
		}
		srv.download(t, session, f, u.src)
	}

	// Ranges.
	const seg = 16 << 20
	for _, u := range ups {
		f := cont.file(t, u.name)
		n := u.src.size
		type rg struct {
			spec        string
			first, last int64
		}
		var rs []rg
		add := func(first, last int64) {
			if first >= 0 && first <= last && last < n {
				rs = append(rs, rg{fmt.Sprintf("%d-%d", first, last), first, last})
			}
		}
		for _, o := range []int64{65535, 65536, 65537, seg - 1, seg, seg + 1, 2*seg - 1, 2 * seg, 2*seg + 1} {
			add(o, o)     // one byte
			add(o-5, o+5) // around it
		}
		add(65530, 65545)
		add(0, 0)
		add(seg-100_000, seg+100_000)   // spans a segment boundary
		add(seg-10, 2*seg+10)           // spans two boundaries (16 MiB + 20 bytes)
		add(65535-70_000, 65535+70_000) // spans chunks
		add(2*65536-1, 2*65536)         // chunk edge
		if n > 0 {
			rs = append(rs, rg{"-10", max(n-10, 0), n - 1})                                      // suffix
			rs = append(rs, rg{fmt.Sprintf("%d-", max(n-100_000, 0)), max(n-100_000, 0), n - 1}) // open
			rs = append(rs, rg{fmt.Sprintf("%d-%d", n-1, n+1000), n - 1, n - 1})                 // past the end
		}
		if n > 1 {
			rs = append(rs, rg{fmt.Sprintf("%d-", n/2), n / 2, n - 1})
		}
		if n < 1<<20 {
			continue // the small files: only whole downloads above, plus below
		}
		for _, r := range rs {
			srv.getRange(t, session, f, u.src, r.spec, r.first, r.last)
		}
	}
	// Small files: every range that fits.
	for _, u := range ups {
		n := u.src.size
		if n == 0 || n >= 1<<20 {
			continue
		}
		f := cont.file(t, u.name)
		for _, r := range [][2]int64{{0, 0}, {n - 1, n - 1}, {65534, 65536}, {65535, 65535}, {65536, 65536}, {65530, n - 1}} {
			if r[0] >= 0 && r[1] < n && r[0] <= r[1] {
				srv.getRange(t, session, f, u.src, fmt.Sprintf("%d-%d", r[0], r[1]), r[0], r[1])
			}
		}
		srv.getRange(t, session, f, u.src, "-10", max(n-10, 0), n-1)
		srv.getRange(t, session, f, u.src, fmt.Sprintf("%d-", n/2), n/2, n-1)
	}

	srv.stop(t)
	if !bytes.Contains(srv.log(), []byte(c.ID)) {
		t.Errorf("positive control: the transfer id %s is not in the log; is the log captured?", c.ID)
	}
	bigName := fmt.Sprintf("%s-tus-%d.bin", fname, bigSize())
	plainName := fmt.Sprintf("%s-plain-%d é.bin", fname, bigSize())
	assertNotInLogs(t, []*server{srv}, pw, msg, fname, marker, access, session, c.UploadToken,
		base64.StdEncoding.EncodeToString([]byte(bigName)), url.PathEscape(plainName))
	files, total := assertNotInData(t, data, pw, msg, fname, marker, access, session, c.UploadToken,
		base64.StdEncoding.EncodeToString([]byte(bigName)), url.PathEscape(plainName))
	t.Logf("leak check read %d files, %s", files, mb(total))
}
