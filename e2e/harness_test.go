// Package e2e tests the kluis binary as a separate OS process over real
// TCP: uploads over tus and plain PUT, interruptions (TCP reset, SIGKILL,
// SIGTERM), revocation, the size limit, and that no secret reaches the log
// or the data folder in plain.
package e2e

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

var kluisBin string

// raceBuild: the server under test is built with -race (KLUIS_E2E_RACE=1).
var raceBuild = os.Getenv("KLUIS_E2E_RACE") == "1"

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "kluis-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	kluisBin = filepath.Join(dir, "kluis")
	// KLUIS_E2E_RACE=1 builds the server with the race detector, so the
	// e2e flows check the server itself for data races (CI runs a subset
	// this way); every server's log is then searched for race reports.
	buildArgs := []string{"build", "-o", kluisBin}
	if raceBuild {
		buildArgs = append(buildArgs, "-race")
	}
	if raceBuild {
		// Reports are read from each server's log (checkRaces), which
		// knows the upstream ones; the exit status stays the program's.
		os.Setenv("GORACE", "exitcode=0")
	}
	build := exec.Command("go", append(buildArgs, "../cmd/kluis")...)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: building kluis:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// bigSize is the size of the "large file" cases.
func bigSize() int64 {
	if testing.Short() {
		return 30_000_000
	}
	return 300_000_000
}

func uniq(prefix string) string {
	b := make([]byte, 8)
	rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// ---------------------------------------------------------------------------
// Server process

type server struct {
	cmd     *exec.Cmd
	base    string // http://127.0.0.1:PORT
	addr    string // 127.0.0.1:PORT
	data    string
	logPath string
	done    chan struct{}
	waitErr error
	apiKey  string // a verified sender's key, made on first use
}

// senderKey returns an API key for sender@example.nl, issued with
// `kluis admin apikey create` on the server's data folder, as an
// administrator would for a back-office script.
func (s *server) senderKey(t *testing.T) string {
	t.Helper()
	if s.apiKey != "" {
		return s.apiKey
	}
	out, err := exec.Command(kluisBin, "admin", "apikey", "create", "--sender", "sender@example.nl", "--data", s.data).Output()
	if err != nil {
		t.Fatalf("kluis admin apikey create: %v", err)
	}
	s.apiKey = strings.TrimSpace(string(out))
	if !strings.HasPrefix(s.apiKey, "kluis_ak_") {
		t.Fatalf("kluis admin apikey create printed %q", s.apiKey)
	}
	return s.apiKey
}

// startServer runs `kluis serve` on data as its own process. Its stderr (the
// JSON log) goes to a file; it is stopped in t.Cleanup (SIGTERM, SIGKILL
// after 10 s).
func startServer(t *testing.T, data string, args ...string) *server {
	t.Helper()
	s, err := launchServer(t, data, args...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// launchServer is startServer that returns an error, instead of failing
// the test, when the process ends or stays silent before it is ready.
func launchServer(t *testing.T, data string, args ...string) (*server, error) {
	t.Helper()
	logf, err := os.CreateTemp(t.TempDir(), "stderr-*.log")
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(kluisBin, append([]string{"serve", "--data", data, "--addr", "127.0.0.1:0"}, args...)...)
	cmd.Stdout, cmd.Stderr = pw, logf
	cmd.Env = append(os.Environ(), "KLUIS_LOG_LEVEL=debug")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	s := &server{cmd: cmd, data: data, logPath: logf.Name(), done: make(chan struct{})}
	go func() { s.waitErr = cmd.Wait(); close(s.done) }()
	urlc := make(chan string, 1)
	go func() {
		defer pr.Close()
		sc := bufio.NewScanner(pr)
		const prefix = "Kluis is running at "
		for sc.Scan() {
			if i := strings.Index(sc.Text(), prefix); i >= 0 {
				f := strings.Fields(sc.Text()[i+len(prefix):])
				if len(f) > 0 {
					select {
					case urlc <- strings.TrimSuffix(f[0], "/"):
					default:
					}
				}
			}
		}
	}()
	t.Cleanup(func() {
		s.stop(t)
		if raceBuild {
			s.checkRaces(t)
		}
	})
	select {
	case u := <-urlc:
		s.base = u
		s.addr = strings.TrimPrefix(u, "http://")
	case <-s.done:
		return s, fmt.Errorf("kluis serve exited before it was ready (%v); log:\n%s", s.waitErr, s.log())
	case <-time.After(30 * time.Second):
		return s, fmt.Errorf("kluis serve printed no URL within 30 s; log:\n%s", s.log())
	}
	return s, nil
}

// checkRaces fails the test for each data race the race detector
// reported in the server's log (only with KLUIS_E2E_RACE=1). Reports whose
// every frame of ours is absent (both accesses inside tusd's request
// context, an open upstream bug: github.com/tus/tusd/issues/1192) are
// logged, not failed.
func (s *server) checkRaces(t *testing.T) {
	for _, report := range raceReports(s.log()) {
		if upstreamTusRace(report) {
			t.Logf("known upstream data race in tusd (tus/tusd#1192), not in Kluis's code:\n%s", report)
			continue
		}
		t.Errorf("the race detector found a data race in kluis serve (%s):\n%s", s.addr, report)
	}
}

// raceReports splits a log into the race detector's reports.
func raceReports(log []byte) []string {
	const start, sep = "WARNING: DATA RACE", "=================="
	var out []string
	for {
		i := bytes.Index(log, []byte(start))
		if i < 0 {
			return out
		}
		log = log[i:]
		end := bytes.Index(log, []byte(sep))
		if end < 0 {
			end = len(log)
		}
		out = append(out, string(log[:end]))
		log = log[end:]
	}
}

// upstreamTusRace: a report where both accesses happen in tusd's
// handler package (the innermost frame that is not the runtime's).
func upstreamTusRace(report string) bool {
	if i := regexp.MustCompile(`(?m)^\s*Goroutine \d+ .*created at:`).FindStringIndex(report); i != nil {
		report = report[:i[0]] // the two accesses' stacks, not where their goroutines began
	}
	accesses := regexp.MustCompile(`(?m)^\s*(?:Previous )?(?:[Rr]ead|[Ww]rite) at 0x[0-9a-f]+ by .*:$`).Split(report, -1)
	if len(accesses) != 3 {
		return false
	}
	for _, stack := range accesses[1:] {
		top := ""
		for line := range strings.Lines(stack) {
			line = strings.TrimSpace(line)
			if line == "" || strings.HasPrefix(line, "/") || strings.HasPrefix(line, "<") ||
				strings.HasPrefix(line, "runtime.") || strings.HasPrefix(line, "sync/atomic.") || strings.HasPrefix(line, "internal/race.") {
				continue
			}
			top = line
			break
		}
		if !strings.HasPrefix(top, "github.com/tus/tusd/v2/pkg/handler.") {
			return false
		}
	}
	return true
}

func (s *server) log() []byte {
	b, _ := os.ReadFile(s.logPath)
	return b
}

func (s *server) exited() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// stop ends the process politely (SIGTERM), forcefully after 10 s.
func (s *server) stop(t *testing.T) {
	if s.exited() {
		return
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		t.Errorf("kluis serve (%s) did not stop within 10 s of SIGTERM; killing it", s.addr)
		s.cmd.Process.Kill()
		<-s.done
	}
}

// kill9 kills the process with SIGKILL and waits for it.
func (s *server) kill9(t *testing.T) {
	t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("SIGKILL: %v", err)
	}
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		t.Fatal("process did not die after SIGKILL")
	}
	var ee *exec.ExitError
	if !errors.As(s.waitErr, &ee) {
		t.Fatalf("wait after SIGKILL: %v", s.waitErr)
	}
	if ws, ok := ee.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("process ended with %v, not by SIGKILL", s.waitErr)
	}
}

// ---------------------------------------------------------------------------
// Deterministic file content

const blockSize = 64 << 10

// source is a deterministic pseudo-random file of any size: block i (64
// KiB) is a ChaCha8 stream seeded by (seed, i), so any range can be made
// without the rest. markers are written over the stream at their offsets.
type source struct {
	seed    uint64
	size    int64
	markers map[int64][]byte

	once sync.Once
	sum  [32]byte
}

func newSource(seed uint64, size int64, marker string) *source {
	s := &source{seed: seed, size: size, markers: map[int64][]byte{}}
	if marker != "" {
		m := []byte(marker)
		for _, off := range []int64{0, size / 2, size - int64(len(m))} {
			if off >= 0 && off+int64(len(m)) <= size {
				s.markers[off] = m
			}
		}
	}
	return s
}

func (s *source) block(i int64, buf []byte) []byte {
	var seed [32]byte
	binary.LittleEndian.PutUint64(seed[0:], s.seed)
	binary.LittleEndian.PutUint64(seed[8:], uint64(i))
	copy(seed[16:], "kluis-e2e-source")
	buf = buf[:blockSize]
	mrand.NewChaCha8(seed).Read(buf)
	start := i * blockSize
	for off, m := range s.markers {
		for j := range m {
			if p := off + int64(j) - start; p >= 0 && p < blockSize {
				buf[p] = m[j]
			}
		}
	}
	if end := s.size - start; end < blockSize {
		buf = buf[:max(end, 0)]
	}
	return buf
}

// ReadAt returns the source's bytes at off.
func (s *source) ReadAt(p []byte, off int64) (int, error) {
	n := 0
	buf := make([]byte, blockSize)
	for n < len(p) && off+int64(n) < s.size {
		pos := off + int64(n)
		b := s.block(pos/blockSize, buf)
		n += copy(p[n:], b[pos%blockSize:])
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (s *source) bytesAt(off, n int64) []byte {
	p := make([]byte, n)
	if _, err := s.ReadAt(p, off); err != nil {
		panic(fmt.Sprintf("source.ReadAt(%d, %d): %v", off, n, err))
	}
	return p
}

// reader streams the source from off to the end, one block in memory.
func (s *source) reader(off int64) io.Reader {
	return &srcReader{s: s, off: off, blk: -1, buf: make([]byte, blockSize)}
}

type srcReader struct {
	s   *source
	off int64
	blk int64
	buf []byte
	cur []byte
}

func (r *srcReader) Read(p []byte) (int, error) {
	if r.off >= r.s.size {
		return 0, io.EOF
	}
	if b := r.off / blockSize; b != r.blk {
		r.cur, r.blk = r.s.block(b, r.buf), b
	}
	n := copy(p, r.cur[r.off%blockSize:])
	r.off += int64(n)
	return n, nil
}

func (s *source) sha256() [32]byte {
	s.once.Do(func() {
		h := sha256.New()
		if _, err := io.CopyBuffer(h, s.reader(0), make([]byte, blockSize)); err != nil {
			panic(err)
		}
		copy(s.sum[:], h.Sum(nil))
	})
	return s.sum
}

func (s *source) hexSum() string { h := s.sha256(); return hex.EncodeToString(h[:]) }

// countingReader counts the bytes read from r (what the HTTP client took to
// send).
type countingReader struct {
	r io.Reader
	n atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// gateReader passes r through until pauseAt bytes, then closes paused and
// trickles (1 KiB every 50 ms) until stop is closed, then fails.
type gateReader struct {
	r       io.Reader
	pauseAt int64
	n       atomic.Int64
	paused  chan struct{}
	stop    chan struct{}
	once    sync.Once
}

func newGate(r io.Reader, pauseAt int64) *gateReader {
	return &gateReader{r: r, pauseAt: pauseAt, paused: make(chan struct{}), stop: make(chan struct{})}
}

var errGateStopped = errors.New("gate stopped")

func (g *gateReader) Read(p []byte) (int, error) {
	n := g.n.Load()
	if n >= g.pauseAt {
		g.once.Do(func() { close(g.paused) })
		select {
		case <-g.stop:
			return 0, errGateStopped
		case <-time.After(50 * time.Millisecond):
		}
		p = p[:min(len(p), 1024)]
	} else if rest := g.pauseAt - n; int64(len(p)) > rest {
		p = p[:rest]
	}
	m, err := g.r.Read(p)
	g.n.Add(int64(m))
	return m, err
}

// ---------------------------------------------------------------------------
// JSON API client

var hc = &http.Client{Transport: &http.Transport{DisableCompression: true, MaxIdleConnsPerHost: 8}}

type apiErr struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// call sends a JSON request and decodes the answer into out (on 2xx) and
// returns the status and, on errors, the error code.
func call(t *testing.T, method, u, token string, body, out any) (int, string) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, u, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", method, u, err)
	}
	if resp.StatusCode >= 300 {
		var e apiErr
		if err := json.Unmarshal(b, &e); err != nil {
			t.Fatalf("%s %s: %d with a body that is not a JSON error: %q", method, u, resp.StatusCode, b)
		}
		return resp.StatusCode, e.Error.Code
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: decoding %q: %v", method, u, b, err)
		}
	}
	return resp.StatusCode, ""
}

type created struct {
	ID          string `json:"id"`
	State       string `json:"state"`
	UploadToken string `json:"upload_token"`
	Password    string `json:"password"`
	LinkSecret  string `json:"link_secret"`
	MaxSize     int64  `json:"max_size"`
}

type password struct {
	Mode  string `json:"mode"`
	Value string `json:"value,omitempty"`
}

func (s *server) create(t *testing.T, pw password, message string) *created {
	t.Helper()
	req := map[string]any{
		"sender":   map[string]string{"email": "sender@example.nl", "name": "Sender", "phone": "0612345678"},
		"to":       []string{"to@example.nl"},
		"message":  message,
		"password": pw,
	}
	var c created
	if st, code := call(t, "POST", s.base+"/api/v1/transfers", s.senderKey(t), req, &c); st != http.StatusCreated {
		t.Fatalf("create transfer: %d %s", st, code)
	}
	if c.ID == "" || c.UploadToken == "" {
		t.Fatalf("create transfer: incomplete answer %+v", c)
	}
	return &c
}

type link struct {
	Address string `json:"address"`
	Kind    string `json:"kind"`
	URL     string `json:"url"`
}

// finish finishes the transfer and returns the first link's access id and
// fragment.
func (s *server) finish(t *testing.T, c *created) (access, fragment string) {
	t.Helper()
	var body any
	if c.LinkSecret != "" {
		body = map[string]string{"link_secret": c.LinkSecret}
	}
	var out struct {
		State string `json:"state"`
		Links []link `json:"links"`
	}
	if st, code := call(t, "POST", s.base+"/api/v1/transfers/"+c.ID+"/finish", c.UploadToken, body, &out); st != http.StatusOK {
		t.Fatalf("finish: %d %s", st, code)
	}
	if len(out.Links) == 0 {
		t.Fatal("finish: no links")
	}
	u := out.Links[0].URL
	i := strings.Index(u, "/r/")
	if i < 0 {
		t.Fatalf("finish: link %q has no /r/", u)
	}
	access, fragment, _ = strings.Cut(u[i+3:], "#")
	return access, fragment
}

func (s *server) unlock(t *testing.T, access, secret string) string {
	t.Helper()
	var out struct {
		Session string `json:"session"`
	}
	if st, code := call(t, "POST", s.base+"/api/v1/links/"+access+"/unlock", "", map[string]string{"secret": secret}, &out); st != http.StatusOK {
		t.Fatalf("unlock: %d %s", st, code)
	}
	if out.Session == "" {
		t.Fatal("unlock: no session")
	}
	return out.Session
}

type fileJSON struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	Size     int64  `json:"size"`
	SHA256   string `json:"sha256"`
	Complete bool   `json:"complete"`
}

type contents struct {
	Message string     `json:"message"`
	Files   []fileJSON `json:"files"`
}

func (s *server) contents(t *testing.T, session string) *contents {
	t.Helper()
	var c contents
	if st, code := call(t, "GET", s.base+"/api/v1/session", session, nil, &c); st != http.StatusOK {
		t.Fatalf("session contents: %d %s", st, code)
	}
	return &c
}

func (c *contents) file(t *testing.T, name string) fileJSON {
	t.Helper()
	for _, f := range c.Files {
		if f.Name == name {
			return f
		}
	}
	t.Fatalf("no file named %q in %+v", name, c.Files)
	return fileJSON{}
}

// download fetches a whole file and checks it against src: status, size,
// SHA-256 of the bytes, the Kluis-SHA256 header and the sha256 in f.
func (s *server) download(t *testing.T, session string, f fileJSON, src *source) {
	t.Helper()
	req, _ := http.NewRequest("GET", s.base+"/api/v1/session/files/"+f.ID, nil)
	req.Header.Set("Authorization", "Bearer "+session)
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("download %s: %v", f.Name, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1000))
		t.Fatalf("download %s: %d %s", f.Name, resp.StatusCode, b)
	}
	h := sha256.New()
	n, err := io.CopyBuffer(h, resp.Body, make([]byte, 1<<20))
	if err != nil {
		t.Fatalf("download %s: after %d bytes: %v", f.Name, n, err)
	}
	got := hex.EncodeToString(h.Sum(nil))
	want := src.hexSum()
	if n != src.size || got != want {
		t.Errorf("download %s: got %d bytes sha256 %s, want %d bytes %s", f.Name, n, got, src.size, want)
	}
	if f.Size != src.size {
		t.Errorf("%s: API size %d, want %d", f.Name, f.Size, src.size)
	}
	if f.SHA256 != want {
		t.Errorf("%s: API sha256 %s, want %s", f.Name, f.SHA256, want)
	}
	if hv := resp.Header.Get("Kluis-SHA256"); hv != want {
		t.Errorf("%s: Kluis-SHA256 %s, want %s", f.Name, hv, want)
	}
}

// getRange asks for one Range of a file and checks the 206 answer against
// src. spec is the Range value after "bytes="; first and last the byte
// positions it means.
func (s *server) getRange(t *testing.T, session string, f fileJSON, src *source, spec string, first, last int64) {
	t.Helper()
	req, _ := http.NewRequest("GET", s.base+"/api/v1/session/files/"+f.ID, nil)
	req.Header.Set("Authorization", "Bearer "+session)
	req.Header.Set("Range", "bytes="+spec)
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("range %s of %s: %v", spec, f.Name, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("range %s of %s: %v", spec, f.Name, err)
	}
	if resp.StatusCode != http.StatusPartialContent {
		t.Errorf("range %s of %s (size %d): status %d, want 206", spec, f.Name, src.size, resp.StatusCode)
		return
	}
	wantCR := fmt.Sprintf("bytes %d-%d/%d", first, last, src.size)
	if cr := resp.Header.Get("Content-Range"); cr != wantCR {
		t.Errorf("range %s of %s: Content-Range %q, want %q", spec, f.Name, cr, wantCR)
	}
	if cl := resp.Header.Get("Content-Length"); cl != strconv.FormatInt(last-first+1, 10) {
		t.Errorf("range %s of %s: Content-Length %s, want %d", spec, f.Name, cl, last-first+1)
	}
	want := src.bytesAt(first, last-first+1)
	if !bytes.Equal(body, want) {
		t.Errorf("range %s of %s: %d bytes differ from the source's %d bytes at %d", spec, f.Name, len(body), len(want), first)
	}
}

// plainUpload sends src in one PUT. length -1 sends it chunked.
func (s *server) plainUpload(t *testing.T, c *created, name string, src *source, chunked bool) (int, string) {
	t.Helper()
	var body io.Reader = src.reader(0)
	req, _ := http.NewRequest("PUT", s.base+"/api/v1/transfers/"+c.ID+"/files", body)
	req.ContentLength = src.size
	if src.size == 0 {
		req.Body = http.NoBody
	}
	if chunked {
		req.ContentLength = -1
	}
	req.Header.Set("Authorization", "Bearer "+c.UploadToken)
	req.Header.Set("Kluis-File-Name", url.PathEscape(name))
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("plain upload %s: %v", name, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		var e apiErr
		json.Unmarshal(b, &e)
		return resp.StatusCode, e.Error.Code
	}
	return resp.StatusCode, ""
}

// ---------------------------------------------------------------------------
// tus 1.0 client

type tusClient struct {
	hc       *http.Client
	token    string
	lastHead http.Header // headers of the last HEAD answer
}

func newTus(token string, client *http.Client) *tusClient {
	if client == nil {
		client = hc
	}
	return &tusClient{hc: client, token: token}
}

func (c *tusClient) req(method, u string, body io.Reader) *http.Request {
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		panic(err)
	}
	req.Header.Set("Tus-Resumable", "1.0.0")
	req.Header.Set("Authorization", "Bearer "+c.token)
	return req
}

// create makes an upload and returns its URL (the Location header) and the
// status.
func (c *tusClient) create(base string, size int64, name string) (string, int, error) {
	req := c.req("POST", base+"/api/v1/uploads/", nil)
	req.Header.Set("Upload-Length", strconv.FormatInt(size, 10))
	req.Header.Set("Upload-Metadata", "filename "+base64.StdEncoding.EncodeToString([]byte(name)))
	resp, err := c.hc.Do(req)
	if err != nil {
		return "", 0, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.Header.Get("Location"), resp.StatusCode, nil
}

func (c *tusClient) head(u string) (offset int64, status int, err error) {
	resp, err := c.hc.Do(c.req("HEAD", u, nil))
	if err != nil {
		return 0, 0, err
	}
	resp.Body.Close()
	c.lastHead = resp.Header
	if resp.StatusCode != http.StatusOK {
		return 0, resp.StatusCode, nil
	}
	offset, err = strconv.ParseInt(resp.Header.Get("Upload-Offset"), 10, 64)
	return offset, resp.StatusCode, err
}

type patchResult struct {
	status int
	offset int64 // Upload-Offset of the answer
	sent   int64 // bytes the client took from body
	body   string
	err    error
}

// patch sends length bytes of body at offset.
func (c *tusClient) patch(u string, offset int64, body io.Reader, length int64) patchResult {
	cr := &countingReader{r: body}
	req := c.req("PATCH", u, cr)
	req.ContentLength = length
	if length == 0 {
		req.Body = http.NoBody
	}
	req.Header.Set("Upload-Offset", strconv.FormatInt(offset, 10))
	req.Header.Set("Content-Type", "application/offset+octet-stream")
	resp, err := c.hc.Do(req)
	res := patchResult{err: err}
	if err == nil {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		res.status, res.body = resp.StatusCode, string(b)
		res.offset, _ = strconv.ParseInt(resp.Header.Get("Upload-Offset"), 10, 64)
	}
	res.sent = cr.n.Load()
	return res
}

// upload sends src over tus in one PATCH per element of splits (offsets
// where a new request starts) and returns the upload URL.
func (c *tusClient) upload(t *testing.T, base, name string, src *source, splits ...int64) string {
	t.Helper()
	loc, st, err := c.create(base, src.size, name)
	if err != nil || st != http.StatusCreated || loc == "" {
		t.Fatalf("tus create %s: %d %q %v", name, st, loc, err)
	}
	if src.size == 0 {
		return loc
	}
	bounds := append(append([]int64{0}, splits...), src.size)
	for i := 0; i+1 < len(bounds); i++ {
		from, to := bounds[i], bounds[i+1]
		r := c.patch(loc, from, io.LimitReader(src.reader(from), to-from), to-from)
		if r.err != nil || r.status != http.StatusNoContent || r.offset != to {
			t.Fatalf("tus PATCH %s [%d,%d): status %d offset %d err %v body %q", name, from, to, r.status, r.offset, r.err, r.body)
		}
	}
	return loc
}

// rebase points an upload URL at another server (same path).
func rebase(loc, base string) string {
	u, err := url.Parse(loc)
	if err != nil {
		panic(err)
	}
	return base + u.Path
}

// ---------------------------------------------------------------------------
// TCP proxy that cuts connections with a reset

type proxy struct {
	ln     net.Listener
	target string
	// cutAt, if > 0, is armed for the next connection: after that many
	// client→server bytes on it, both sides are closed with RST. One-shot.
	cutAt atomic.Int64
	// cutTotal, if > 0, cuts whichever connection carries the client→server
	// byte at that position of forwarded (all connections together), with
	// RST. One-shot. For browsers, which reuse connections, so that "the
	// next connection" is not the upload.
	cutTotal      atomic.Int64
	cutTotalStall atomic.Int64 // nanoseconds to stall before the cutTotal reset
	stall         atomic.Int64 // nanoseconds to stall (forward nothing) before the reset
	forwarded     atomic.Int64 // client→server bytes written to the server, all connections
	lastConn      atomic.Int64 // client→server bytes of the most recent cut connection
	cuts          atomic.Int64
	wg            sync.WaitGroup
}

func newProxy(t *testing.T, target string) *proxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target}
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(func() { ln.Close(); p.wg.Wait() })
	return p
}

func (p *proxy) base() string { return "http://" + p.ln.Addr().String() }

func (p *proxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.wg.Add(1)
		go func() { defer p.wg.Done(); p.handle(c.(*net.TCPConn)) }()
	}
}

func (p *proxy) handle(client *net.TCPConn) {
	defer client.Close()
	sc, err := net.Dial("tcp", p.target)
	if err != nil {
		return
	}
	srv := sc.(*net.TCPConn)
	defer srv.Close()
	cutAt := p.cutAt.Swap(0)
	stall := time.Duration(p.stall.Swap(0))
	var once sync.Once
	reset := func() {
		once.Do(func() {
			client.SetLinger(0)
			srv.SetLinger(0)
			client.Close()
			srv.Close()
		})
	}
	go func() {
		io.Copy(client, srv)
		client.CloseWrite()
	}()
	buf := make([]byte, 64<<10)
	var n int64
	for {
		m, err := client.Read(buf)
		if m > 0 {
			chunk := buf[:m]
			cut := cutAt > 0 && n+int64(m) >= cutAt
			if ct := p.cutTotal.Load(); !cut && ct > 0 {
				if tot := p.forwarded.Load(); tot+int64(m) >= ct && p.cutTotal.CompareAndSwap(ct, 0) {
					cut, cutAt = true, n+min(int64(m), max(0, ct-tot))
					stall = time.Duration(p.cutTotalStall.Load())
				}
			}
			if cut {
				chunk = chunk[:cutAt-n]
			}
			w, werr := srv.Write(chunk)
			n += int64(w)
			p.forwarded.Add(int64(w))
			if cut {
				p.lastConn.Store(n)
				time.Sleep(stall)
				p.cuts.Add(1)
				reset()
				return
			}
			if werr != nil {
				reset()
				return
			}
		}
		if err != nil {
			srv.CloseWrite()
			return
		}
	}
}

// ---------------------------------------------------------------------------
// Leak checks

// assertNotInLogs checks that none of secrets occurs in any of the servers'
// logs.
func assertNotInLogs(t *testing.T, servers []*server, secrets ...string) {
	t.Helper()
	for _, s := range servers {
		log := s.log()
		if len(log) == 0 {
			t.Errorf("log of %s is empty: the leak check would prove nothing", s.addr)
		}
		for _, sec := range secrets {
			if sec == "" {
				continue
			}
			if bytes.Contains(log, []byte(sec)) {
				t.Errorf("secret %q appears in the server log %s", sec, s.logPath)
			}
		}
	}
}

// assertNotInData reads every file under dir as bytes and checks that none
// of secrets occurs in it. Returns how many files and bytes it read.
func assertNotInData(t *testing.T, dir string, secrets ...string) (files int, total int64) {
	t.Helper()
	var pats [][]byte
	longest := 0
	for _, s := range secrets {
		if s != "" {
			pats = append(pats, []byte(s))
			longest = max(longest, len(s))
		}
	}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // removed while walking (temp files)
			}
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		f, err := os.Open(path)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		defer f.Close()
		files++
		buf := make([]byte, 4<<20)
		keep := 0
		for {
			n, rerr := io.ReadFull(f, buf[keep:])
			total += int64(n)
			win := buf[:keep+n]
			for _, p := range pats {
				if bytes.Contains(win, p) {
					t.Errorf("secret %q appears in %s", p, path)
				}
			}
			if rerr != nil {
				break
			}
			keep = min(longest-1, len(win))
			copy(buf, win[len(win)-keep:])
		}
		return nil
	})
	if err != nil {
		t.Errorf("walking %s: %v", dir, err)
	}
	if files == 0 {
		t.Errorf("no files in %s: the leak check would prove nothing", dir)
	}
	return files, total
}

// blobFiles lists the regular files under data/blobs/t/<transferID>.
func blobFiles(t *testing.T, data, transferID string) []string {
	t.Helper()
	var out []string
	root := filepath.Join(data, "blobs", "t", transferID)
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if d.Type().IsRegular() {
			out = append(out, path)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("walking %s: %v", root, err)
	}
	return out
}

// tmpFiles lists the regular files under data/tmp.
func tmpFiles(t *testing.T, data string) []string {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(data, "tmp"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		if e.Type().IsRegular() {
			out = append(out, e.Name())
		}
	}
	return out
}

func mb(n int64) string { return fmt.Sprintf("%.2f MB", float64(n)/1e6) }
