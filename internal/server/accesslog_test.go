package server_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// accessLines returns the access-log lines ("request") that the server
// logged since the last call, decoded.
type accessLines struct {
	e    *env
	seen int
}

func (l *accessLines) requests(t *testing.T) []map[string]any {
	t.Helper()
	return l.await(t, 0)
}

// await is requests once at least n lines are there (or after 10 s): a
// line is written when the handler returns, which can be just after the
// client has read the answer.
func (l *accessLines) await(t *testing.T, n int) []map[string]any {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		all := l.e.app.Logs.Bytes()
		out := parseRequests(t, all[l.seen:])
		if len(out) >= n || time.Now().After(deadline) {
			l.seen = len(all)
			return out
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func parseRequests(t *testing.T, b []byte) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(string(b), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if m["msg"] == "request" {
			out = append(out, m)
		}
	}
	return out
}

var staticURL = regexp.MustCompile(`/static/[0-9a-f]+/kluis\.css`)

// TestAccessLog is issue 21 item 6: every access-log line names the route
// pattern (also for tus uploads, whose request a middleware replaces on
// the way to the mux: the route was empty there), the status, the bytes
// sent and received and the duration in milliseconds with a fraction; the
// lines of successful static-file requests follow --log-static (all, none,
// one in N) while failed ones are always logged.
func TestAccessLog(t *testing.T) {
	e := newEnv(t, envOptions{})
	logs := &accessLines{e: e}
	id, token := e.createTransfer(ownerEmail)
	logs.requests(t)
	_ = id
	body := bytes.Repeat([]byte("k"), 1234)
	meta := "filename " + base64.StdEncoding.EncodeToString([]byte("a.bin"))
	resp, _ := e.do("POST", "/api/v1/uploads/", token, map[string]string{"Tus-Resumable": "1.0.0", "Upload-Length": strconv.Itoa(len(body)), "Upload-Metadata": meta}, nil)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("tus create: %d", resp.StatusCode)
	}
	loc := resp.Header.Get("Location")
	path := loc[strings.Index(loc, "/api/"):]
	resp, _ = e.do("PATCH", path, token, map[string]string{"Tus-Resumable": "1.0.0", "Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"}, body)
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("tus patch: %d", resp.StatusCode)
	}
	_, page := e.do("GET", "/", "", nil, nil)
	css := staticURL.Find(page)
	if css == nil {
		t.Fatal("no stylesheet linked from the start page")
	}
	e.do("GET", string(css), "", nil, nil)
	lines := logs.await(t, 4)
	want := []struct {
		route  string
		status float64
		in     float64
	}{
		{"POST /api/v1/uploads/", 201, 0},
		{"PATCH /api/v1/uploads/{fid}", 204, float64(len(body))},
		{"GET /{$}", 200, 0},
		{"GET /static/{sum}/{name...}", 200, 0},
	}
	if len(lines) != len(want) {
		t.Fatalf("%d access-log lines, want %d: %v", len(lines), len(want), lines)
	}
	for i, w := range want {
		l := lines[i]
		if l["route"] != w.route || l["status"] != w.status || l["bytes_in"] != w.in {
			t.Errorf("line %d: route %v status %v bytes_in %v; want %s %v %v", i, l["route"], l["status"], l["bytes_in"], w.route, w.status, w.in)
		}
		if _, ok := l["duration_ms"].(float64); !ok {
			t.Errorf("line %d: duration_ms %v", i, l["duration_ms"])
		}
		if w.route == "GET /static/{sum}/{name...}" {
			if b, _ := l["bytes"].(float64); b < 100 {
				t.Errorf("static line: %v bytes", l["bytes"])
			}
		}
	}

	for _, c := range []struct {
		setting string // --log-static
		logged  int    // of 9 successful requests
	}{{"all", 9}, {"none", 0}, {"1/3", 3}} {
		e := newEnv(t, envOptions{staticLog: c.setting})
		logs := &accessLines{e: e}
		_, page := e.do("GET", "/", "", nil, nil)
		css := string(staticURL.Find(page))
		for range 9 {
			e.do("GET", css, "", nil, nil)
		}
		// A static file that is not there is always logged.
		e.do("GET", "/static/0000/geen-bestand.css", "", nil, nil)
		var ok, failed int
		// The start page, the static files this setting logs, the
		// failed one.
		for _, l := range logs.await(t, 1+c.logged+1) {
			if l["route"] != "GET /static/{sum}/{name...}" {
				continue
			}
			if l["status"] == 200.0 {
				ok++
			} else {
				failed++
			}
		}
		if ok != c.logged || failed != 1 {
			t.Errorf("--log-static %s: %d lines of 9 successful requests, %d of 1 failed; want %d and 1", c.setting, ok, failed, c.logged)
		}
	}
}
