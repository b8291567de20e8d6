package server_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kluis-nl/kluis/internal/server"
)

// testTimeouts are short, so that a slow client is cut within a second or
// two; every check allows several times that (the machine may be busy),
// and without the limits the same client would hang until the test's own
// 20 s guard.
var testTimeouts = server.Timeouts{
	Header:      500 * time.Millisecond,
	Body:        time.Second,
	MinBodyRate: 20_000,
	Drain:       500 * time.Millisecond,
	Idle:        2 * time.Second,
}

// cutWithin is the longest a slow client may stay connected in these tests.
const cutWithin = 6 * time.Second

// served is e's handler behind server.Serve on a real loopback socket,
// plain or with TLS (as kluis serve --tls-cert runs it).
type served struct {
	addr string
	tls  bool
	pool *x509.CertPool
}

func serveReal(t *testing.T, e *env, withTLS bool, to server.Timeouts) *served {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &served{addr: ln.Addr().String(), tls: withTLS}
	var l net.Listener = ln
	if withTLS {
		certFile, keyFile, pool := selfSigned(t)
		if l, err = server.TLSListener(ln, certFile, keyFile, nil); err != nil {
			t.Fatal(err)
		}
		s.pool = pool
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- server.Serve(ctx, l, e.handler, server.ServeOptions{
			ShutdownTimeout: 2 * time.Second, Timeouts: to, Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return s
}

// dial opens a raw connection speaking HTTP/1.1 (over TLS when served so).
func (s *served) dial(t *testing.T) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", s.addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if s.tls {
		tc := tls.Client(c, &tls.Config{RootCAs: s.pool, ServerName: "127.0.0.1", NextProtos: []string{"http/1.1"}})
		tc.SetDeadline(time.Now().Add(5 * time.Second))
		if err := tc.Handshake(); err != nil {
			t.Fatal(err)
		}
		tc.SetDeadline(time.Time{})
		c = tc
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// client is an HTTP client for s; h2 asks for HTTP/2 over TLS.
func (s *served) client(h2 bool) *http.Client {
	tr := &http.Transport{DisableCompression: true}
	if s.tls {
		tr.TLSClientConfig = &tls.Config{RootCAs: s.pool}
		tr.ForceAttemptHTTP2 = h2
	}
	return &http.Client{Transport: tr}
}

func (s *served) url(path string) string {
	if s.tls {
		return "https://" + s.addr + path
	}
	return "http://" + s.addr + path
}

// waitClosed reads c until the server ends the connection and returns how
// long that took and what the server sent. It gives up after 20 s.
func waitClosed(c net.Conn, start time.Time) (time.Duration, string, error) {
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	var got bytes.Buffer
	_, err := io.Copy(&got, c)
	d := time.Since(start)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return d, got.String(), fmt.Errorf("the connection was still open after %s", d.Round(time.Second))
	}
	return d, got.String(), nil
}

// trickle writes p to c a few bytes at a time, every interval, until
// stop is closed or a write fails.
func trickle(c net.Conn, p []byte, n int, interval time.Duration, stop <-chan struct{}) {
	for len(p) > 0 {
		k := min(n, len(p))
		if _, err := c.Write(p[:k]); err != nil {
			return
		}
		p = p[k:]
		select {
		case <-stop:
			return
		case <-time.After(interval):
		}
	}
}

// TestSlowClientsCut (issue 11 item 8): a client that sends its head, its
// body, or the rest of a body the handler does not read too slowly is cut
// off after the configured time, over plain HTTP and over TLS, on real
// sockets. Before, a stalled body on /api/v1/verify stayed open for
// minutes, and GET / with Content-Length: 100000 and no body hung.
func TestSlowClientsCut(t *testing.T) {
	e := newEnv(t, envOptions{})
	for _, withTLS := range []bool{false, true} {
		s := serveReal(t, e, withTLS, testTimeouts)
		name := "http"
		if withTLS {
			name = "https"
		}
		t.Run(name, func(t *testing.T) {
			if withTLS {
				t.Run("silent TLS handshake", func(t *testing.T) {
					c, err := net.DialTimeout("tcp", s.addr, 5*time.Second)
					if err != nil {
						t.Fatal(err)
					}
					defer c.Close()
					d, _, err := waitClosed(c, time.Now())
					if err != nil || d > cutWithin {
						t.Errorf("silent client before the handshake: closed after %s (%v)", d, err)
					}
				})
			}
			t.Run("slow head", func(t *testing.T) {
				c := s.dial(t)
				start := time.Now()
				fmt.Fprintf(c, "POST /api/v1/verify HTTP/1.1\r\nHost: %s\r\n", s.addr)
				stop := make(chan struct{})
				defer close(stop)
				go trickle(c, []byte("X-Slow: "+strings.Repeat("a", 1000)), 1, 200*time.Millisecond, stop)
				d, _, err := waitClosed(c, start)
				if err != nil || d > cutWithin {
					t.Errorf("head sent a byte every 200 ms: closed after %s (%v)", d, err)
				}
			})
			t.Run("stalled body", func(t *testing.T) {
				c := s.dial(t)
				start := time.Now()
				fmt.Fprintf(c, "POST /api/v1/verify HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"email\":", s.addr)
				d, got, err := waitClosed(c, start)
				if err != nil || d > cutWithin {
					t.Errorf("body stalled after 9 of 100 bytes: closed after %s (%v)", d, err)
				}
				t.Logf("stalled body: %s, answer %q", d.Round(10*time.Millisecond), firstLine(got))
			})
			t.Run("trickled body", func(t *testing.T) {
				c := s.dial(t)
				start := time.Now()
				fmt.Fprintf(c, "POST /api/v1/verify HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n", s.addr)
				stop := make(chan struct{})
				defer close(stop)
				// 50 bytes every 100 ms: never a gap as long as Body, but
				// 500 bytes a second, far below MinBodyRate.
				go trickle(c, bytes.Repeat([]byte(" "), 100000), 50, 100*time.Millisecond, stop)
				d, _, err := waitClosed(c, start)
				if err != nil || d > cutWithin {
					t.Errorf("body at 500 bytes/s: closed after %s (%v)", d, err)
				}
			})
			t.Run("unread body", func(t *testing.T) {
				c := s.dial(t)
				start := time.Now()
				fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: %s\r\nContent-Length: 100000\r\n\r\n", s.addr)
				d, got, err := waitClosed(c, start)
				if err != nil || d > cutWithin {
					t.Errorf("GET / announcing 100000 body bytes, sending none: closed after %s (%v)", d, err)
				}
				if !strings.HasPrefix(got, "HTTP/1.1 200 ") {
					t.Errorf("GET / got no page: %q", firstLine(got))
				}
			})
		})
	}
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\r\n")
	return l
}

// TestSlowBodyHTTP2 (issue 11 item 8): over HTTP/2 (TLS) a stalled request
// body is cut off too: the stream ends although the connection would live on.
func TestSlowBodyHTTP2(t *testing.T) {
	e := newEnv(t, envOptions{})
	s := serveReal(t, e, true, testTimeouts)
	pr, pw := io.Pipe()
	defer pw.Close()
	go pw.Write([]byte(`{"email":`))
	req, err := http.NewRequest("POST", s.url("/api/v1/verify"), pr)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	start := time.Now()
	resp, err := s.client(true).Do(req.WithContext(ctx))
	if err == nil {
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.ProtoMajor != 2 {
			t.Fatalf("%s, want HTTP/2", resp.Proto)
		}
		t.Logf("HTTP/2 stalled body: %s after %s", resp.Status, time.Since(start).Round(10*time.Millisecond))
	}
	if d := time.Since(start); ctx.Err() != nil || d > cutWithin {
		t.Errorf("HTTP/2 body stalled after 9 bytes: ended after %s (%v)", d, err)
	}
}

// TestLongUploadsKeepWorking (issue 11 item 8): there is no limit on the
// whole request. An upload that lasts many times the body timeout but keeps
// above the minimum rate completes, plainly (PUT) and over tus, on HTTP/1.1,
// over TLS and on HTTP/2; a tus upload cut for being too slow keeps what
// arrived and resumes.
func TestLongUploadsKeepWorking(t *testing.T) {
	e := newEnv(t, envOptions{})
	const size = 2_000_000 // about 2 s at the paced rate: twice the body window
	data := make([]byte, size)
	rand.Read(data)
	sum := sha256.Sum256(data)
	for _, v := range []struct {
		name    string
		tls, h2 bool
	}{{"http", false, false}, {"https", true, false}, {"h2", true, true}} {
		t.Run(v.name, func(t *testing.T) {
			s := serveReal(t, e, v.tls, testTimeouts)
			client := s.client(v.h2)
			fe := e.fixture(t).e
			id, token := fe.createTransfer(ownerEmail)

			// A plain PUT at about 1 MB/s, 50 times the minimum rate.
			req, _ := http.NewRequest("PUT", s.url("/api/v1/transfers/"+id+"/files"), paced(data, 100_000, 100*time.Millisecond))
			req.ContentLength = size
			req.Header.Set("Authorization", "Bearer "+token)
			req.Header.Set("Kluis-File-Name", "groot.bin")
			req.Header.Set("Content-Type", "application/octet-stream")
			start := time.Now()
			resp, b := send(t, client, req)
			if resp.StatusCode != http.StatusCreated {
				t.Fatalf("PUT over %s: %s %s", time.Since(start), resp.Status, b)
			}
			if v.h2 && resp.ProtoMajor != 2 {
				t.Errorf("PUT: %s, want HTTP/2", resp.Proto)
			}
			if d := time.Since(start); d < testTimeouts.Body*3/2 {
				t.Fatalf("the paced upload took only %s, not longer than the body window; the test proves nothing", d)
			}

			// tus: create, send a first part too slowly (cut), resume at
			// the offset the server kept, finish at a good rate.
			req, _ = http.NewRequest("POST", s.url("/api/v1/uploads/"), nil)
			req.Header.Set("Authorization", "Bearer "+token)
			req.Header.Set("Tus-Resumable", "1.0.0")
			req.Header.Set("Upload-Length", strconv.Itoa(size))
			req.Header.Set("Upload-Metadata", "filename "+base64.StdEncoding.EncodeToString([]byte("tus.bin")))
			resp, b = send(t, client, req)
			if resp.StatusCode != http.StatusCreated {
				t.Fatalf("tus create: %s %s", resp.Status, b)
			}
			loc, _ := url.Parse(resp.Header.Get("Location"))
			fid := loc.Path[strings.LastIndexByte(loc.Path, '/')+1:]
			patch := func(offset int, body io.Reader, n int) *http.Response {
				req, _ := http.NewRequest("PATCH", s.url("/api/v1/uploads/"+fid), body)
				req.ContentLength = int64(n)
				req.Header.Set("Authorization", "Bearer "+token)
				req.Header.Set("Tus-Resumable", "1.0.0")
				req.Header.Set("Upload-Offset", strconv.Itoa(offset))
				req.Header.Set("Content-Type", "application/offset+octet-stream")
				resp, err := client.Do(req)
				if err != nil {
					return nil
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				return resp
			}
			// 300 KB fast, then 1 KB every 200 ms (5 KB/s, a quarter of the
			// minimum rate).
			slowStart := time.Now()
			patch(0, io.MultiReader(bytes.NewReader(data[:300_000]), paced(data[300_000:], 1000, 200*time.Millisecond)), size)
			if d := time.Since(slowStart); d > cutWithin {
				t.Errorf("the slow PATCH lasted %s", d)
			}
			req, _ = http.NewRequest("HEAD", s.url("/api/v1/uploads/"+fid), nil)
			req.Header.Set("Authorization", "Bearer "+token)
			req.Header.Set("Tus-Resumable", "1.0.0")
			resp, _ = send(t, client, req)
			off, err := strconv.Atoi(resp.Header.Get("Upload-Offset"))
			if err != nil || off < 300_000 || off >= size {
				t.Fatalf("after the cut: %s, Upload-Offset %q; want what arrived (at least 300000)", resp.Status, resp.Header.Get("Upload-Offset"))
			}
			if resp := patch(off, paced(data[off:], 100_000, 100*time.Millisecond), size-off); resp == nil || resp.StatusCode != http.StatusNoContent {
				t.Fatalf("resume at %d: %v", off, resp)
			}
			files := fe.filesOf(id, token)
			if len(files) != 2 {
				t.Fatalf("%d files, want 2", len(files))
			}
			for _, f := range files {
				if f.Size != size || f.SHA256 != hex.EncodeToString(sum[:]) {
					t.Errorf("%s: %d bytes, sha256 %s; want %d, %x", f.Name, f.Size, f.SHA256, size, sum)
				}
			}
		})
	}
}

// fileInfo is a file as the recipient's session lists it.
type fileInfo struct {
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// filesOf finishes transfer id, opens it as its recipient and returns its
// files with the sizes and checksums the server computed.
func (e *env) filesOf(id, token string) []fileInfo {
	e.t.Helper()
	var fin struct {
		Links []struct {
			URL string `json:"url"`
		} `json:"links"`
	}
	e.must(http.StatusOK, "POST", "/api/v1/transfers/"+id+"/finish", token, nil, nil, &fin)
	u, _ := url.Parse(fin.Links[0].URL)
	access := u.Path[strings.LastIndexByte(u.Path, '/')+1:]
	var s struct {
		Session string `json:"session"`
	}
	e.must(http.StatusOK, "POST", "/api/v1/links/"+access+"/unlock", "", nil, map[string]string{"secret": password}, &s)
	var v struct {
		Files []fileInfo `json:"files"`
	}
	e.must(http.StatusOK, "GET", "/api/v1/session", s.Session, nil, nil, &v)
	return v.Files
}

// paced reads p in pieces of n bytes, one every interval.
func paced(p []byte, n int, interval time.Duration) io.Reader {
	pr, pw := io.Pipe()
	go func() {
		for len(p) > 0 {
			k := min(n, len(p))
			if _, err := pw.Write(p[:k]); err != nil {
				return
			}
			p = p[k:]
			time.Sleep(interval)
		}
		pw.Close()
	}()
	return bufio.NewReaderSize(pr, n)
}

func send(t *testing.T, c *http.Client, req *http.Request) (*http.Response, []byte) {
	t.Helper()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}
