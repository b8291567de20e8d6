package e2e

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestRevoke revokes a ready transfer: its link, unlock and an existing
// session answer 410 "revoked" at once, and its blobs are gone within
// ~20 s. An access id never issued is 404 "not_found".
func TestRevoke(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	srv := startServer(t, data)

	pw := uniq("pw-canary-")
	msg := uniq("msg-canary-")
	name := uniq("fn-canary-") + ".bin"
	marker := uniq("mk-canary-")
	c := srv.create(t, password{Mode: "manual", Value: pw}, msg)
	src := newSource(50, 20<<20+1, marker) // two segments
	newTus(c.UploadToken, nil).upload(t, srv.base, name, src)
	access, _ := srv.finish(t, c)
	session := srv.unlock(t, access, pw)
	f := srv.contents(t, session).file(t, name)
	srv.download(t, session, f, src)

	// A second transfer (no password) that stays: its blobs must survive
	// the purge of the first.
	other := srv.create(t, password{Mode: "none"}, msg)
	otherSrc := newSource(51, 100_000, marker)
	if st, code := srv.plainUpload(t, other, name, otherSrc, false); st != http.StatusCreated {
		t.Fatalf("plain upload: %d %s", st, code)
	}
	otherAccess, frag := srv.finish(t, other)
	if frag != other.LinkSecret {
		t.Errorf("link fragment %q, want the link secret from create", frag)
	}

	if n := len(blobFiles(t, data, c.ID)); n < 2 {
		t.Fatalf("%d blobs before revoke, want ≥ 2: is the layout blobs/t/<id>/?", n)
	}
	if st, code := call(t, "POST", srv.base+"/api/v1/transfers/"+c.ID+"/revoke", c.UploadToken, nil, nil); st != http.StatusOK {
		t.Fatalf("revoke: %d %s", st, code)
	}
	revokedAt := time.Now()

	want410 := func(what string, st int, code string) {
		t.Helper()
		if st != http.StatusGone || code != "revoked" {
			t.Errorf("%s after revoke: %d %q, want 410 \"revoked\"", what, st, code)
		}
	}
	st, code := call(t, "GET", srv.base+"/api/v1/links/"+access, "", nil, nil)
	want410("GET link", st, code)
	st, code = call(t, "POST", srv.base+"/api/v1/links/"+access+"/unlock", "", map[string]string{"secret": pw}, nil)
	want410("unlock", st, code)
	st, code = call(t, "GET", srv.base+"/api/v1/session", session, nil, nil)
	want410("session contents", st, code)
	st, code = call(t, "GET", srv.base+"/api/v1/session/files/"+f.ID, session, nil, nil)
	want410("session file download", st, code)
	st, code = rangeStatus(t, srv.base+"/api/v1/session/files/"+f.ID, session, "bytes=0-9")
	want410("session range download", st, code)
	st, code = call(t, "GET", srv.base+"/api/v1/session/zip", session, nil, nil)
	want410("session zip", st, code)

	// The purge (woken by revoke) removes the blobs.
	var left []string
	for {
		left = blobFiles(t, data, c.ID)
		if len(left) == 0 || time.Since(revokedAt) > 20*time.Second {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if len(left) > 0 {
		t.Errorf("20 s after revoke, %d blobs of the transfer remain: %v", len(left), left)
	} else {
		t.Logf("blobs gone %v after revoke", time.Since(revokedAt).Round(time.Millisecond))
	}
	// Still revoked (not "not found") after the purge.
	st, code = call(t, "GET", srv.base+"/api/v1/links/"+access, "", nil, nil)
	want410("GET link after purge", st, code)

	// The other transfer is untouched.
	if len(blobFiles(t, data, other.ID)) == 0 {
		t.Error("the purge removed another transfer's blobs")
	}
	otherSession := srv.unlock(t, otherAccess, other.LinkSecret)
	srv.download(t, otherSession, srv.contents(t, otherSession).file(t, name), otherSrc)

	// Never issued: same format as a real access id.
	unknown := strings.Repeat("a", len(access))
	if unknown == access {
		unknown = strings.Repeat("b", len(access))
	}
	st, code = call(t, "GET", srv.base+"/api/v1/links/"+unknown, "", nil, nil)
	if st != http.StatusNotFound || code != "not_found" {
		t.Errorf("unknown access id: %d %q, want 404 \"not_found\"", st, code)
	}
	st, code = call(t, "POST", srv.base+"/api/v1/links/"+unknown+"/unlock", "", map[string]string{"secret": pw}, nil)
	if st != http.StatusNotFound || code != "not_found" {
		t.Errorf("unlock of an unknown access id: %d %q, want 404 \"not_found\"", st, code)
	}

	srv.stop(t)
	secrets := []string{pw, msg, name, marker, access, session, otherAccess, otherSession, other.LinkSecret, c.UploadToken, other.UploadToken}
	assertNotInLogs(t, []*server{srv}, secrets...)
	assertNotInData(t, data, secrets...)
}

func rangeStatus(t *testing.T, u, session, rng string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", u, nil)
	req.Header.Set("Authorization", "Bearer "+session)
	req.Header.Set("Range", rng)
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	code := ""
	if i := strings.Index(string(b), `"code":"`); i >= 0 {
		code, _, _ = strings.Cut(string(b[i+8:]), `"`)
	}
	return resp.StatusCode, code
}

// TestSizeLimit runs a server with --max-transfer-size 20MB: a tus upload
// declaring more is refused at creation, and a chunked plain upload of 70
// MB is refused with 413 after about the limit, leaving nothing behind.
func TestSizeLimit(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	srv := startServer(t, data, "--max-transfer-size", "20MB")
	const limit = 20_000_000

	c := srv.create(t, password{Mode: "generate"}, "")
	if c.MaxSize != limit {
		t.Errorf("max_size %d, want %d", c.MaxSize, limit)
	}
	tc := newTus(c.UploadToken, nil)
	_, st, err := tc.create(srv.base, 30_000_000, "big.bin")
	if err != nil || st != http.StatusRequestEntityTooLarge {
		t.Errorf("tus create of 30 MB: %d %v, want 413", st, err)
	}

	// Chunked PUT of 70 MB through a pipe; count what the server took.
	src := newSource(60, 70_000_000, "")
	pr, pw := io.Pipe()
	var consumed atomic.Int64
	writerDone := make(chan error, 1)
	go func() {
		r := src.reader(0)
		buf := make([]byte, 32<<10)
		for {
			n, err := r.Read(buf)
			if n > 0 {
				if _, werr := pw.Write(buf[:n]); werr != nil {
					writerDone <- werr
					return
				}
				consumed.Add(int64(n))
			}
			if err != nil {
				pw.Close()
				writerDone <- nil
				return
			}
		}
	}()
	req, _ := http.NewRequest("PUT", srv.base+"/api/v1/transfers/"+c.ID+"/files", pr)
	req.ContentLength = -1
	req.Header.Set("Authorization", "Bearer "+c.UploadToken)
	req.Header.Set("Kluis-File-Name", url.PathEscape("too big.bin"))
	start := time.Now()
	resp, err := hc.Do(req)
	var status int
	var code string
	if err == nil {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		status = resp.StatusCode
		if i := strings.Index(string(b), `"code":"`); i >= 0 {
			code, _, _ = strings.Cut(string(b[i+8:]), `"`)
		}
	}
	pr.CloseWithError(io.ErrClosedPipe) // in case the transport left it open
	select {
	case werr := <-writerDone:
		if werr == nil {
			t.Errorf("the whole 70 MB body was consumed")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the body writer did not stop")
	}
	n := consumed.Load()
	t.Logf("chunked 70 MB PUT: status %d code %q err %v after %v; body bytes consumed %s (limit %s)",
		status, code, err, time.Since(start).Round(time.Millisecond), mb(n), mb(limit))
	if err != nil || status != http.StatusRequestEntityTooLarge || code != "too_large" {
		t.Errorf("chunked PUT over the limit: %d %q %v, want 413 too_large", status, code, err)
	}
	// The server reads up to the limit and one byte more; kernel socket
	// buffers and the client's own buffers hold a few MB beyond that.
	if n > limit+12<<20 {
		t.Errorf("%d body bytes were consumed, far past the %d byte limit", n, limit)
	}
	if n < limit {
		t.Errorf("only %d bytes were consumed before 413; the limit is %d", n, limit)
	}

	// Nothing of it is kept.
	deadline := time.Now().Add(5 * time.Second)
	for len(blobFiles(t, data, c.ID)) > 0 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if left := blobFiles(t, data, c.ID); len(left) > 0 {
		t.Errorf("after the refused upload, %d blobs remain: %v", len(left), left)
	}
	if left := tmpFiles(t, data); len(left) > 0 {
		t.Errorf("after the refused upload, temp files remain: %v", left)
	}
	var tr struct {
		ID    string `json:"id"`
		State string `json:"state"`
	}
	if st, code := call(t, "GET", srv.base+"/api/v1/transfers/"+c.ID, c.UploadToken, nil, &tr); st != http.StatusOK || tr.ID != c.ID {
		t.Fatalf("GET transfer after the refused upload: %d %s %+v", st, code, tr)
	}

	// The budget is intact: a file just under the limit fits, one more
	// byte does not.
	fits := newSource(61, limit-1, "")
	tc.upload(t, srv.base, "fits.bin", fits)
	if _, st, _ := tc.create(srv.base, 2, "over.bin"); st != http.StatusRequestEntityTooLarge {
		t.Errorf("tus create of 2 bytes with 1 byte of budget left: %d, want 413", st)
	}
	access, _ := srv.finish(t, c)
	session := srv.unlock(t, access, c.Password)
	srv.download(t, session, srv.contents(t, session).file(t, "fits.bin"), fits)
}
