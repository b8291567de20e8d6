package main

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
)

// requestlink ADDR VAR: sets VAR to the /q/ link in the newest file
// request mail to ADDR.
func cmdRequestLink(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 {
		ts.Fatalf("usage: requestlink ADDR VAR")
	}
	m := waitMail(ts, "file_request", args[0], nil)
	link := regexp.MustCompile(`https?://\S+/q/[a-z0-9]+`).FindString(m.Text)
	if link == "" {
		ts.Fatalf("no /q/ link in the mail:\n%s", m.Text)
	}
	ts.Setenv(args[1], link)
}

// citizenupload LINK FILE MESSAGE: the person asked sends FILE and
// MESSAGE on a file request as its page's script does: POST
// /q/{access}/start (the message; the answer names the tus endpoint and
// token), a tus upload whose first PATCH breaks off half-way (the server
// keeps what arrived), HEAD for the offset and a PATCH from there, then
// POST /q/{access}/done.
func cmdCitizenUpload(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 3 {
		ts.Fatalf("usage: citizenupload LINK FILE MESSAGE")
	}
	link, err := url.Parse(args[0])
	ts.Check(err)
	base := link.Scheme + "://" + link.Host
	data, err := os.ReadFile(ts.MkAbs(args[1]))
	ts.Check(err)
	call := func(method, u string, h map[string]string, body io.Reader) *http.Response {
		req, err := http.NewRequest(method, u, body)
		ts.Check(err)
		for k, v := range h {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		ts.Check(err)
		return resp
	}
	resp := call("POST", args[0]+"/start", map[string]string{"Content-Type": "application/x-www-form-urlencoded"},
		strings.NewReader(url.Values{"message": {args[2]}}.Encode()))
	var st struct {
		Token string `json:"token"`
		URL   string `json:"url"`
	}
	ts.Check(json.NewDecoder(resp.Body).Decode(&st))
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || st.Token == "" {
		ts.Fatalf("start: %d %+v", resp.StatusCode, st)
	}
	tus := map[string]string{"Tus-Resumable": "1.0.0", "Authorization": "Bearer " + st.Token}
	with := func(kv ...string) map[string]string {
		h := map[string]string{}
		for k, v := range tus {
			h[k] = v
		}
		for i := 0; i+1 < len(kv); i += 2 {
			h[kv[i]] = kv[i+1]
		}
		return h
	}
	resp = call("POST", base+st.URL, with("Upload-Length", strconv.Itoa(len(data)),
		"Upload-Metadata", "filename "+base64.StdEncoding.EncodeToString([]byte(filepath.Base(args[1])))), nil)
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusCreated || loc == "" {
		ts.Fatalf("tus create: %d", resp.StatusCode)
	}
	if !strings.HasPrefix(loc, "http") {
		loc = base + loc
	}
	// The first PATCH claims the whole file but its body breaks off
	// half-way, as a dropped connection does.
	half := len(data) / 2
	resp, err = http.DefaultClient.Do(func() *http.Request {
		req, err := http.NewRequest("PATCH", loc, io.MultiReader(strings.NewReader(string(data[:half])), errReader{}))
		ts.Check(err)
		req.ContentLength = int64(len(data))
		for k, v := range with("Upload-Offset", "0", "Content-Type", "application/offset+octet-stream") {
			req.Header.Set(k, v)
		}
		return req
	}())
	if err == nil {
		resp.Body.Close()
		ts.Fatalf("the broken PATCH was answered %d", resp.StatusCode)
	}
	var offset int64
	for range 100 {
		resp = call("HEAD", loc, tus, nil)
		resp.Body.Close()
		offset, _ = strconv.ParseInt(resp.Header.Get("Upload-Offset"), 10, 64)
		if resp.StatusCode == http.StatusOK && offset > 0 {
			break
		}
		// The server may still hold the upload's lock for the broken
		// request; tus clients retry.
		time.Sleep(100 * time.Millisecond)
	}
	if offset <= 0 || offset > int64(half) {
		ts.Fatalf("resume offset %d (HEAD %d), want 1..%d; the broken PATCH: %v", offset, resp.StatusCode, half, err)
	}
	fmt.Fprintf(ts.Stdout(), "resumed at %d of %d bytes\n", offset, len(data))
	resp = call("PATCH", loc, with("Upload-Offset", strconv.FormatInt(offset, 10), "Content-Type", "application/offset+octet-stream"),
		strings.NewReader(string(data[offset:])))
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		ts.Fatalf("tus PATCH from %d: %d", offset, resp.StatusCode)
	}
	resp = call("POST", args[0]+"/done", nil, nil)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		ts.Fatalf("done: %d %s", resp.StatusCode, b)
	}
}

// errReader fails like a dropped connection, after a second: the server
// has read what came before by then (on loopback), so the test does not
// depend on how fast it reads.
type errReader struct{}

func (errReader) Read([]byte) (int, error) {
	time.Sleep(time.Second)
	return 0, fmt.Errorf("connection dropped")
}
