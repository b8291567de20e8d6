//go:build unix

package api_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kluis-nl/kluis/internal/kluistest"
)

// The crash tests run the server in a child process (this test binary,
// started again with crashChildEnv set), because a panic in a goroutine
// that is not the handler's is not recovered by net/http: it ends the whole
// process. Only another process can watch that happen and report it.

const crashChildEnv = "KLUIS_TEST_CRASH_CHILD"

// crashFixture is what the child prints, as one line after crashReady.
type crashFixture struct {
	URL     string         `json:"url"`
	Damaged crashTransfer  `json:"damaged"` // its file "kapot.bin" is tampered by the parent
	Large   crashTransfer  `json:"large"`   // revoked and purged during a slow read
	Sizes   map[string]int `json:"sizes"`
}

type crashTransfer struct {
	ID          string              `json:"id"`
	UploadToken string              `json:"upload_token"`
	Session     string              `json:"session"`
	Files       map[string]string   `json:"files"`    // name -> file id
	Segments    map[string][]string `json:"segments"` // name -> segment paths
}

const crashReady = "CRASH-CHILD-READY "

// crashSizes: kapot.bin spans 4 segments of 100,000 bytes; groot.bin is
// large enough that a paused reader leaves most of it unread behind full
// socket buffers.
var crashSizes = map[string]int{"kapot.bin": 350_000, "goed.bin": 250_000, "groot.bin": 16_000_000}

// TestCrashChild is the server of TestMultiRangeReadErrorKeepsServing; it
// does nothing unless started by that test.
func TestCrashChild(t *testing.T) {
	if os.Getenv(crashChildEnv) == "" {
		t.Skip("helper process of TestMultiRangeReadErrorKeepsServing")
	}
	// The server runs its purge round, woken by a revoke, as kluis serve.
	e := newAPIEnv(t)
	fx := crashFixture{URL: e.url, Sizes: crashSizes}
	mk := func(names ...string) crashTransfer {
		sizes := make([]int, len(names))
		for i, n := range names {
			sizes[i] = crashSizes[n]
		}
		s := e.shared(names, sizes)
		ct := crashTransfer{ID: s.c.ID, UploadToken: s.c.UploadToken, Session: s.session, Files: map[string]string{}, Segments: map[string][]string{}}
		for i, n := range names {
			ct.Files[n] = s.files[i].ID
			ct.Segments[n] = e.segmentPaths(s.c.ID, s.files[i].ID)
		}
		return ct
	}
	fx.Damaged = mk("kapot.bin", "goed.bin")
	fx.Large = mk("groot.bin")
	b, err := json.Marshal(fx)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("\n%s%s\n", crashReady, b)
	// Serve until the parent closes stdin.
	io.Copy(io.Discard, os.Stdin)
}

// crashChild is a running child server.
type crashChild struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stderr *kluistest.Buffer
	done   chan struct{}
	err    error
	fx     crashFixture
}

func startCrashChild(t *testing.T) *crashChild {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashChildEnv+"=1")
	c := &crashChild{cmd: cmd, stderr: &kluistest.Buffer{}, done: make(chan struct{})}
	cmd.Stderr = c.stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if c.stdin, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan []byte, 1)
	var out kluistest.Buffer
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			if rest, ok := strings.CutPrefix(sc.Text(), crashReady); ok {
				ready <- []byte(rest)
			} else {
				out.Write(append(sc.Bytes(), '\n'))
			}
		}
		c.err = cmd.Wait()
		close(c.done)
	}()
	t.Cleanup(func() {
		c.stdin.Close()
		select {
		case <-c.done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-c.done
		}
	})
	select {
	case b := <-ready:
		if err := json.Unmarshal(b, &c.fx); err != nil {
			t.Fatalf("child fixture: %v", err)
		}
	case <-c.done:
		t.Fatalf("the child server exited before it was ready (%v):\n%s\n%s", c.err, out.Bytes(), c.stderr.Bytes())
	case <-time.After(2 * time.Minute):
		t.Fatal("the child server was not ready within 2 minutes")
	}
	return c
}

// alive fails the test if the child process has died, showing its panic.
func (c *crashChild) alive(t *testing.T, after string) {
	t.Helper()
	select {
	case <-c.done:
		tail := c.stderr.Bytes()
		if i := bytes.Index(tail, []byte("panic:")); i >= 0 {
			tail = tail[i:]
		}
		if len(tail) > 3000 {
			tail = tail[:3000]
		}
		t.Fatalf("the server process died after %s (%v):\n%s", after, c.err, tail)
	case <-time.After(300 * time.Millisecond):
	}
}

// get sends a GET with the session and optional Range; client may be nil.
func (c *crashChild) get(t *testing.T, client *http.Client, path, session, rng string) (*http.Response, error) {
	t.Helper()
	req, err := http.NewRequest("GET", c.fx.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if session != "" {
		req.Header.Set("Authorization", "Bearer "+session)
	}
	if rng != "" {
		req.Header.Set("Range", rng)
	}
	if client == nil {
		client = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	}
	return client.Do(req)
}

// stillServes checks that the child answers other requests in full: its
// health check and an intact file.
func (c *crashChild) stillServes(t *testing.T) {
	t.Helper()
	resp, err := c.get(t, nil, "/healthz", "", "")
	if err != nil {
		t.Fatalf("health check: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("health check: %d", resp.StatusCode)
	}
	d := c.fx.Damaged
	resp, err = c.get(t, nil, "/api/v1/session/files/"+d.Files["goed.bin"], d.Session, "")
	if err != nil {
		t.Fatalf("intact file: %v", err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	want := randomBytes(uint64(1*31+crashSizes["goed.bin"]), crashSizes["goed.bin"])
	if err != nil || resp.StatusCode != http.StatusOK || !bytes.Equal(body, want) {
		t.Fatalf("intact file after the attack: status %d, %d bytes, %v", resp.StatusCode, len(body), err)
	}
}

// TestMultiRangeReadErrorKeepsServing is issue 11 item 1: a multi-range
// download that meets a read error (a tampered blob; blobs purged under a
// slow reader) must abort that one response, never the process, and the
// server must go on serving.
func TestMultiRangeReadErrorKeepsServing(t *testing.T) {
	if os.Getenv(crashChildEnv) != "" {
		t.Skip("in the child")
	}
	if testing.Short() {
		t.Skip("starts a server process with a 16 MB file")
	}
	t.Run("tampered blob", func(t *testing.T) {
		t.Parallel()
		c := startCrashChild(t)
		c.stillServes(t)
		d := c.fx.Damaged
		segs := d.Segments["kapot.bin"]
		if len(segs) != 4 {
			t.Fatalf("%d segments, want 4", len(segs))
		}
		// Segment 2 holds bytes 200,000-299,999: the second range starts
		// in the intact segment 1 and runs into the damage.
		flip(t, segs[2], 5000)
		resp, err := c.get(t, nil, "/api/v1/session/files/"+d.Files["kapot.bin"], d.Session, "bytes=0-10,199990-200010")
		if err == nil {
			body, rerr := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusPartialContent && rerr == nil {
				t.Errorf("a multi-range answer over a tampered segment ended cleanly (%d bytes)", len(body))
			}
		}
		c.alive(t, "a multi-range request over a tampered blob")
		c.stillServes(t)
	})

	t.Run("purged under a slow reader", func(t *testing.T) {
		t.Parallel()
		c := startCrashChild(t)
		l := c.fx.Large
		size := crashSizes["groot.bin"]
		// A small receive buffer, so the server blocks in its write while
		// most of the first range is still to come.
		dialer := &net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
			var serr error
			err := rc.Control(func(fd uintptr) {
				serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 16<<10)
			})
			if err != nil {
				return err
			}
			return serr
		}}
		slow := &http.Client{Transport: &http.Transport{DialContext: dialer.DialContext, DisableKeepAlives: true, DisableCompression: true}}
		rng := fmt.Sprintf("bytes=0-%d,%d-%d", size*3/4, size-10, size-1)
		resp, err := c.get(t, slow, "/api/v1/session/files/"+l.Files["groot.bin"], l.Session, rng)
		if err != nil {
			t.Fatalf("slow request: %v", err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusPartialContent {
			t.Fatalf("slow request: status %d", resp.StatusCode)
		}
		if _, err := io.ReadFull(resp.Body, make([]byte, 64<<10)); err != nil {
			t.Fatalf("reading the start: %v", err)
		}
		// The sender revokes; the purge (woken at once) deletes the blobs
		// while the download waits for the reader.
		req, _ := http.NewRequest("POST", c.fx.URL+"/api/v1/transfers/"+l.ID+"/revoke", nil)
		req.Header.Set("Authorization", "Bearer "+l.UploadToken)
		rv, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("revoke: %v", err)
		}
		rv.Body.Close()
		if rv.StatusCode != http.StatusOK {
			t.Fatalf("revoke: %d", rv.StatusCode)
		}
		deadline := time.Now().Add(30 * time.Second)
		for {
			left := 0
			for _, p := range l.Segments["groot.bin"] {
				if _, err := os.Stat(p); err == nil {
					left++
				}
			}
			if left == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d segments still there 30 s after the revoke", left)
			}
			time.Sleep(50 * time.Millisecond)
		}
		if n, err := io.Copy(io.Discard, resp.Body); err == nil {
			t.Errorf("the download of a purged file ended cleanly after %d more bytes", n)
		}
		c.alive(t, "a multi-range download whose blobs were purged under it")
		c.stillServes(t)
	})
}
