package api_test

import (
	"bytes"
	"io"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/kluis-nl/kluis/internal/transfer"
)

// TestInterruptedPatchLeavesConnectionUsable: a PATCH that tusd ends
// because another request asks for the upload (HEAD from a resuming
// client) must not break the next request on the same keep-alive
// connection. tusd unblocks the body read with SetReadDeadline(now); when
// the body was already read to its end, net/http's background read of the
// connection fails on that deadline and cancels the connection's context
// (golang/go#70834), so every later request on it started out cancelled:
// 500 "context canceled", or 401 where the token lookup failed. Found by
// the nemesis (e2e/nemesis_test.go).
func TestInterruptedPatchLeavesConnectionUsable(t *testing.T) {
	// One segment, committed after the body's end: the window in which
	// the HEAD interrupts a PATCH whose body has been read.
	e := newAPIEnv(t, func(c *transfer.Config) { c.SegmentSize = 16 << 20 })
	// One connection at a time for the uploader, so the request after the
	// PATCH goes over the PATCH's connection if it is kept.
	uploader := &http.Client{Transport: &http.Transport{MaxConnsPerHost: 1, DisableCompression: true}}
	resumer := &http.Client{Transport: &http.Transport{DisableCompression: true}}
	tusReq := func(method, path, token string, body []byte, hdr map[string]string) *http.Request {
		var rd io.Reader
		if body != nil {
			rd = bytes.NewReader(body)
		}
		r, err := http.NewRequest(method, e.url+path, rd)
		if err != nil {
			t.Fatal(err)
		}
		r.Header.Set("Tus-Resumable", "1.0.0")
		r.Header.Set("Authorization", "Bearer "+token)
		for k, v := range hdr {
			r.Header.Set(k, v)
		}
		return r
	}
	interrupted := 0
	for round := 0; round < 60 && interrupted < 5; round++ {
		c := e.create("")
		data := randomBytes(uint64(round), 2<<20)
		resp, err := uploader.Do(tusReq("POST", "/api/v1/uploads/", c.UploadToken, nil, map[string]string{"Upload-Length": strconv.Itoa(len(data))}))
		if err != nil || resp.StatusCode != http.StatusCreated {
			t.Fatalf("tus create: %v %v", resp, err)
		}
		resp.Body.Close()
		loc := resp.Header.Get("Location")
		path := loc[len(e.url):]

		var wg sync.WaitGroup
		var patch *http.Response
		var patchBody []byte
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := uploader.Do(tusReq("PATCH", path, c.UploadToken, data,
				map[string]string{"Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"}))
			if err != nil {
				t.Errorf("PATCH: %v", err)
				return
			}
			patchBody, _ = io.ReadAll(r.Body)
			r.Body.Close()
			patch = r
		}()
		// A resuming client asks for the offset while the PATCH commits.
		time.Sleep(time.Duration(round%10) * 3 * time.Millisecond)
		if r, err := resumer.Do(tusReq("HEAD", path, c.UploadToken, nil, nil)); err == nil {
			r.Body.Close()
		}
		wg.Wait()
		if patch == nil {
			continue
		}
		if patch.StatusCode == http.StatusBadRequest && bytes.Contains(patchBody, []byte("ERR_UPLOAD_INTERRUPTED")) {
			interrupted++
		}
		// Also after a 204: the HEAD may have asked for the lock after
		// the PATCH answered and before it let go.
		// The uploader's next request: over the same connection, unless
		// the server closed it.
		r, err := uploader.Do(tusReq("HEAD", path, c.UploadToken, nil, nil))
		if err != nil {
			t.Fatalf("round %d: HEAD after the interrupted PATCH: %v", round, err)
		}
		r.Body.Close()
		if r.StatusCode != http.StatusOK {
			t.Errorf("round %d: HEAD after an interrupted PATCH on the same client: %d, want 200", round, r.StatusCode)
		}
		r, err = uploader.Do(tusReq("GET", "/api/v1/transfers/"+c.ID, c.UploadToken, nil, nil))
		if err != nil {
			t.Fatalf("round %d: GET after the interrupted PATCH: %v", round, err)
		}
		b, _ := io.ReadAll(r.Body)
		r.Body.Close()
		if r.StatusCode != http.StatusOK {
			t.Errorf("round %d: GET transfer after an interrupted PATCH on the same client: %d %s, want 200", round, r.StatusCode, b)
		}
	}
	if interrupted == 0 {
		t.Fatal("no PATCH was interrupted by the HEAD in 60 rounds: the test proved nothing")
	}
	t.Logf("%d PATCHes interrupted by a HEAD", interrupted)
}
