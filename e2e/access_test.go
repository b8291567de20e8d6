package e2e

import (
	"bytes"
	"net/http"
	"testing"
	"time"
)

// TestAccessBoundaries checks that tokens and sessions reach only their own
// transfer, and tus's offset and length rules.
func TestAccessBoundaries(t *testing.T) {
	t.Parallel()
	srv := startServer(t, t.TempDir())
	a := srv.create(t, password{Mode: "generate"}, "a")
	b := srv.create(t, password{Mode: "generate"}, "b")
	if a.Password == "" {
		t.Fatal("generate mode returned no password")
	}
	ta, tb := newTus(a.UploadToken, nil), newTus(b.UploadToken, nil)
	src := newSource(70, 200_000, "")
	loc, st, err := ta.create(srv.base, src.size, "a.bin")
	if err != nil || st != http.StatusCreated {
		t.Fatalf("tus create: %d %v", st, err)
	}
	if r := ta.patch(loc, 0, bytes.NewReader(src.bytesAt(0, 100_000)), 100_000); r.err != nil || r.status != http.StatusNoContent || r.offset != 100_000 {
		t.Fatalf("first PATCH: %d %d %v", r.status, r.offset, r.err)
	}

	// Another transfer's token.
	if _, st, _ := tb.head(loc); st != http.StatusNotFound {
		t.Errorf("HEAD with another transfer's token: %d, want 404", st)
	}
	if r := tb.patch(loc, 100_000, bytes.NewReader(src.bytesAt(100_000, 10)), 10); r.status != http.StatusNotFound {
		t.Errorf("PATCH with another transfer's token: %d %v, want 404", r.status, r.err)
	}
	if _, st, _ := newTus("", nil).head(loc); st != http.StatusUnauthorized {
		t.Errorf("HEAD without a token: %d, want 401", st)
	}
	if st, _ := call(t, "GET", srv.base+"/api/v1/transfers/"+a.ID, b.UploadToken, nil, nil); st != http.StatusNotFound {
		t.Errorf("GET transfer with another transfer's token: %d, want 404", st)
	}

	// Wrong offset, and more bytes than Upload-Length.
	if r := ta.patch(loc, 99_999, bytes.NewReader(src.bytesAt(99_999, 10)), 10); r.status != http.StatusConflict {
		t.Errorf("PATCH at a wrong offset: %d %v, want 409", r.status, r.err)
	}
	over := append(src.bytesAt(100_000, 100_000), 1, 2, 3)
	if r := ta.patch(loc, 100_000, bytes.NewReader(over), int64(len(over))); r.status != http.StatusRequestEntityTooLarge {
		t.Errorf("PATCH past Upload-Length: %d %v, want 413", r.status, r.err)
	}
	if off, _, _ := ta.head(loc); off != 100_000 {
		t.Errorf("offset after refused PATCHes: %d, want 100000", off)
	}
	// Finish with an incomplete file.
	if st, code := call(t, "POST", srv.base+"/api/v1/transfers/"+a.ID+"/finish", a.UploadToken, nil, nil); st != http.StatusConflict {
		t.Errorf("finish with an incomplete file: %d %s, want 409", st, code)
	}
	if r := ta.patch(loc, 100_000, bytes.NewReader(src.bytesAt(100_000, 100_000)), 100_000); r.status != http.StatusNoContent || r.offset != src.size {
		t.Fatalf("last PATCH: %d %d %v", r.status, r.offset, r.err)
	}
	accessA, _ := srv.finish(t, a)
	// No uploads after finish.
	if _, st, _ := ta.create(srv.base, 10, "late.bin"); st != http.StatusConflict {
		t.Errorf("tus create after finish: %d, want 409", st)
	}
	if st, code := srv.plainUpload(t, a, "late.bin", newSource(71, 10, ""), false); st != http.StatusConflict {
		t.Errorf("plain upload after finish: %d %s, want 409", st, code)
	}

	bsrc := newSource(72, 1000, "")
	if st, code := srv.plainUpload(t, b, "b.bin", bsrc, false); st != http.StatusCreated {
		t.Fatalf("plain upload: %d %s", st, code)
	}
	accessB, _ := srv.finish(t, b)

	// Wrong password, then the right one.
	if st, code := call(t, "POST", srv.base+"/api/v1/links/"+accessA+"/unlock", "", map[string]string{"secret": b.Password}, nil); st != http.StatusUnauthorized || code != "wrong_password" {
		t.Errorf("unlock with a wrong password: %d %q, want 401 wrong_password", st, code)
	}
	sa := srv.unlock(t, accessA, a.Password)
	sb := srv.unlock(t, accessB, b.Password)
	fa := srv.contents(t, sa).file(t, "a.bin")
	fb := srv.contents(t, sb).file(t, "b.bin")
	srv.download(t, sa, fa, src)
	if st, _ := call(t, "GET", srv.base+"/api/v1/session/files/"+fb.ID, sa, nil, nil); st != http.StatusNotFound {
		t.Errorf("download of another transfer's file with this session: %d, want 404", st)
	}
	if st, _ := call(t, "GET", srv.base+"/api/v1/session", "not-a-session", nil, nil); st != http.StatusUnauthorized {
		t.Errorf("contents with a bogus session: %d, want 401", st)
	}
	// An upload token is not a session, and a session is not an upload token.
	if st, _ := call(t, "GET", srv.base+"/api/v1/session", a.UploadToken, nil, nil); st != http.StatusUnauthorized {
		t.Errorf("contents with an upload token: %d, want 401", st)
	}
	if st, _ := call(t, "GET", srv.base+"/api/v1/transfers/"+a.ID, sa, nil, nil); st != http.StatusUnauthorized {
		t.Errorf("GET transfer with a session token: %d, want 401", st)
	}
}

// TestPlainUploadBrokenOff cuts a plain PUT with a TCP reset: nothing of it
// is kept (a plain upload cannot resume).
func TestPlainUploadBrokenOff(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	srv := startServer(t, data)
	px := newProxy(t, srv.addr)
	c := srv.create(t, password{Mode: "generate"}, "only a message remains")
	src := newSource(80, 30_000_000, "")
	proxied := &server{base: px.base()}
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	px.cutAt.Store(20 << 20) // past the first 16 MiB segment
	px.stall.Store(int64(300 * time.Millisecond))
	req, _ := http.NewRequest("PUT", proxied.base+"/api/v1/transfers/"+c.ID+"/files", src.reader(0))
	req.ContentLength = src.size
	req.Header.Set("Authorization", "Bearer "+c.UploadToken)
	req.Header.Set("Kluis-File-Name", "cut.bin")
	resp, err := client.Do(req)
	if err == nil {
		resp.Body.Close()
		t.Fatalf("the cut PUT got an answer: %d", resp.StatusCode)
	}
	if px.cuts.Load() != 1 {
		t.Fatal("the proxy did not cut")
	}
	// Wait until the server has finished the request (its access log line).
	deadline := time.Now().Add(10 * time.Second)
	for !bytes.Contains(srv.log(), []byte(`"route":"PUT /api/v1/transfers/{id}/files"`)) {
		if time.Now().After(deadline) {
			t.Fatal("the server did not finish the broken PUT within 10 s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if left := blobFiles(t, data, c.ID); len(left) > 0 {
		t.Errorf("after a broken plain upload %d blobs remain: %v", len(left), left)
	}
	if left := tmpFiles(t, data); len(left) > 0 {
		t.Errorf("after a broken plain upload temp files remain: %v", left)
	}
	access, _ := srv.finish(t, c)
	s := srv.unlock(t, access, c.Password)
	if cont := srv.contents(t, s); len(cont.Files) != 0 {
		t.Errorf("the broken plain upload is listed: %+v", cont.Files)
	}
}
