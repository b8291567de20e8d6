package e2e

// The nemesis's clients: workers that create transfers, upload, finish,
// download, revoke and ask for verification codes against whichever
// incarnation of the server is up, and the history they record.

import (
	"archive/zip"
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
)

// nemSender is the verified sender of every transfer (by API key).
const nemSender = "sender@example.nl"

// nemesis is one variant's run: the server process, the clients' shared
// state and what the checker needs.
type nemesis struct {
	t    *testing.T
	cfg  nemConfig
	mp   *mailpit
	data string
	addr string // 127.0.0.1:PORT, the same for every incarnation
	base string
	args []string

	// PostgreSQL + S3 variant.
	dsn                     string
	mc                      *minio.Client
	bucket, prefix, storage string

	apiKey string

	srvMu     sync.Mutex
	srv       *server
	servers   []*server
	startedAt time.Time
	epoch     atomic.Int64 // incarnation: +1 per kill
	// up is closed while the server runs: kill replaces it with an open
	// one before the SIGKILL, start closes it (see waitUp).
	up chan struct{}

	tr   *http.Transport
	hc   *http.Client
	hist *history

	draining atomic.Bool
	// aborted is set when the run ends early (a fatal error in the test's
	// goroutine): workers then stop at their next request or pause, and
	// nothing they see counts.
	aborted atomic.Bool

	mu       sync.Mutex
	xfers    []*xfer
	verifies map[string]outcome // sender verifications: address → outcome of POST /verify
	canaries []string           // must never appear in plain in logs or the data folder
	fig      figures
	failures map[string]int  // by kind
	pending  *leftovers      // what the collector must remove after the last kill
	seen     map[string]bool // orphans and temporary writes seen after kills

	mailMu    sync.Mutex
	mailCache map[string]*mpMessage // by Mailpit ID

	// cutUnlocks counts, per access id, the unlocks in a row whose answer
	// was lost (see unlock).
	cutUnlocks map[string]int
}

// figures are the run's numbers for the closing report.
type figures struct {
	kills       int
	restartTime time.Duration

	transfers, ghostCreates          int
	filesTus, filesPlain, filesGhost int
	bytesUp, bytesSent               int64
	clientCuts, resumes, headChecks  int
	interrupted                      int
	finished, finishUnknown, blocked int
	revoked, revokeUnknown           int
	downloads, zips, pages           int
	bytesDown                        int64
	verifies, verifyUnknown          int
	unknownOps, ops, unsent          int
	cutLocks                         int // links locked by unlocks cut off before their check
	finishWaited                     int
	refusalProbes                    int
	integrityChecks                  int
	collectChecks, collectUnchecked  int
	orphansSeen, tempsSeen           int
	mails, deliveries, duplicates    int
	purged                           int
	failedStarts                     int
}

// outcome is what the client knows of a state-changing request.
type outcome int

const (
	oNone    outcome = iota // not tried
	oUnknown                // in flight at a kill (or cut): may or may not have happened
	oAcked                  // a 2xx answer was fully received
	oSeen                   // unknown at first, later seen to have happened
)

// xfer is what the client knows of one transfer it created.
type xfer struct {
	mu          sync.Mutex
	worker      int
	id          string
	token       string
	pwMode      string
	secret      string // password or link secret
	linkSecret  string
	recipients  []string
	message     string
	subject     string
	lang        string
	opts        nemOptions
	expiresAt   time.Time
	files       []*xfile
	ghostsTus   int // tus POSTs whose answer was lost: a file nobody knows may exist
	ghostsPlain int // PUTs whose answer was lost
	// links that had --max-failures unlocks in a row cut off (may lock),
	// and links seen locked so
	cutLockable, cutLocked int

	finish   outcome
	links    map[string]string // address → link, from the finish answer or the mail
	revoke   outcome
	revokeAt time.Time // when the acknowledged revoke was answered

	downloads []dlRec
	abandoned string // why the lifecycle stopped early
}

type nemOptions struct {
	Confirm        bool `json:"confirm"`
	NotifyDownload bool `json:"notify_download"`
	// Notify is "each" with NotifyDownload: the checker expects a notice
	// per file (notify_download alone now means one per recipient).
	Notify        string `json:"notify,omitempty"`
	ShowFilenames bool   `json:"show_filenames"`
	RemindExpiry  bool   `json:"remind_expiry"`
}

// xfile is one upload attempt.
type xfile struct {
	name     string
	src      *source
	plain    bool
	id       string
	created  outcome // tus POST, or for plain the PUT itself
	acked    int64   // highest offset the server reported
	maxEnd   int64   // highest offset the client ever sent bytes up to
	complete outcome
}

// dlRec is one whole download of a file: alone, or in a ZIP (one record
// per file the ZIP holds).
type dlRec struct {
	addr  string
	index int
	acked bool // the whole body arrived and verified; false: cut by a kill
	zip   int  // in a ZIP: how many files it held; 0 for a file alone
}

// leftovers are what a collect after a kill must remove.
type leftovers struct {
	at      time.Time
	orphans []string // blob keys no manifest lists
	temps   []string // temporary files (local) or multipart uploads (S3)
}

func newNemesis(t *testing.T, cfg nemConfig) *nemesis {
	tr := &http.Transport{DisableCompression: true, MaxIdleConnsPerHost: 32, ResponseHeaderTimeout: 2 * time.Minute}
	n := &nemesis{
		t: t, cfg: cfg,
		mp:         startMailpitWith(t, "--max", "0"),
		data:       t.TempDir(),
		addr:       freePort(t),
		tr:         tr,
		hc:         &http.Client{Transport: tr, Timeout: 3 * time.Minute, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
		verifies:   map[string]outcome{},
		failures:   map[string]int{},
		seen:       map[string]bool{},
		mailCache:  map[string]*mpMessage{},
		up:         make(chan struct{}),
		cutUnlocks: map[string]int{},
	}
	n.base = "http://" + n.addr
	n.args = []string{"--addr", n.addr, "--smtp", n.mp.smtpURL(), "--mail-from", "Kluis Nemesis <kluis@example.nl>",
		"--rate-limit", "0", "--rate-limit-global", "0", "--temp-max-age", "1s", "--default-expiry", "1d", "--max-expiry", "1d"}
	n.hist = newHistory(t, histPath(t, cfg))
	t.Cleanup(func() { n.tr.CloseIdleConnections() })
	return n
}

// failf records a violation of kind (a short name, counted for the report)
// and fails the test. It may be called from any goroutine.
func (n *nemesis) failf(kind, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if n.aborted.Load() {
		n.hist.event("after-abort", map[string]any{"kind": kind, "msg": msg})
		return
	}
	n.mu.Lock()
	n.failures[kind]++
	c := n.failures[kind]
	n.mu.Unlock()
	n.hist.event("failure", map[string]any{"kind": kind, "msg": msg})
	if c <= 10 {
		n.t.Errorf("%s [%s] %s (history %s)", n.cfg.variant, kind, msg, n.hist.path)
	} else if c == 11 {
		n.t.Errorf("%s [%s] more of the same; see the history %s", n.cfg.variant, kind, n.hist.path)
	}
}

func (n *nemesis) count(f func(*figures)) {
	n.mu.Lock()
	f(&n.fig)
	n.mu.Unlock()
}

func (n *nemesis) canary(s ...string) {
	n.mu.Lock()
	n.canaries = append(n.canaries, s...)
	n.mu.Unlock()
}

// ---------------------------------------------------------------------------
// History

// history is the clients' record, one JSON object a line.
type history struct {
	path string
	mu   sync.Mutex
	f    *os.File
	w    *bufio.Writer
	seq  int64
}

func newHistory(t *testing.T, path string) *history {
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	h := &history{path: path, f: f, w: bufio.NewWriterSize(f, 1<<16)}
	t.Cleanup(func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		h.w.Flush()
		h.f.Close()
	})
	return h
}

type opRec struct {
	Seq     int64          `json:"seq"`
	Worker  int            `json:"w"`
	Op      string         `json:"op"`
	XID     string         `json:"tid,omitempty"`
	Start   time.Time      `json:"start"`
	End     time.Time      `json:"end"`
	Epoch   [2]int64       `json:"epoch"`
	Outcome string         `json:"outcome"` // ok, refused, unknown
	Status  int            `json:"status,omitempty"`
	Code    string         `json:"code,omitempty"`
	Err     string         `json:"err,omitempty"`
	Detail  map[string]any `json:"detail,omitempty"`
}

func (h *history) add(r *opRec) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.seq++
	r.Seq = h.seq
	b, _ := json.Marshal(r)
	h.w.Write(b)
	h.w.WriteByte('\n')
}

func (h *history) event(kind string, detail map[string]any) {
	now := time.Now()
	h.add(&opRec{Worker: -1, Op: kind, Start: now, End: now, Outcome: "event", Detail: detail})
}

// ---------------------------------------------------------------------------
// Requests

// result is one request's answer as the client saw it.
type result struct {
	status int
	code   string // error code: JSON, or tus's ERR_… text (lower case, without ERR_)
	msg    string
	body   []byte
	hdr    http.Header
	sent   int64 // request body bytes the transport took
	err    error // no complete answer: the outcome is unknown
}

func (r *result) ok() bool      { return r.err == nil && r.status >= 200 && r.status < 300 }
func (r *result) unknown() bool { return r.err != nil }

func (r *result) String() string {
	if r.err != nil {
		return "no answer (" + r.err.Error() + ")"
	}
	s := strconv.Itoa(r.status)
	if r.code != "" {
		s += " " + r.code
	}
	if r.msg != "" {
		s += " (" + r.msg + ")"
	}
	return s
}

var errClientCut = errors.New("upload cut by the client")

// cutReader fails after n bytes: a client that breaks off an upload.
type cutReader struct {
	r io.Reader
	n int64
}

func (c *cutReader) Read(p []byte) (int, error) {
	if c.n <= 0 {
		return 0, errClientCut
	}
	if int64(len(p)) > c.n {
		p = p[:c.n]
	}
	m, err := c.r.Read(p)
	c.n -= int64(m)
	return m, err
}

// waitUp returns once the server runs again, after a request found it
// down. A request that cannot connect tells nothing about the server, so
// the loops that give up after so many attempts spend none while it is
// down: how long a restart takes (the checks with the server down, then
// the start) depends on the load of the machine, not on Kluis.
func (n *nemesis) waitUp() {
	n.srvMu.Lock()
	up := n.up
	n.srvMu.Unlock()
	for {
		select {
		case <-up:
			return
		case <-time.After(100 * time.Millisecond):
			if n.aborted.Load() {
				return
			}
		}
	}
}

// send does one request and records it. body may be nil. A worker id of -1
// is the checker.
func (n *nemesis) send(worker int, op string, x *xfer, req *http.Request, detail map[string]any) result {
	if worker >= 0 && n.aborted.Load() {
		runtime.Goexit() // the run ended early; see nemesis.aborted
	}
	var cr *countingReader
	if req.Body != nil && req.Body != http.NoBody {
		cr = &countingReader{r: req.Body}
		req.Body = io.NopCloser(cr)
	}
	rec := &opRec{Worker: worker, Op: op, Start: time.Now(), Detail: detail}
	rec.Epoch[0] = n.epoch.Load()
	if x != nil {
		rec.XID = x.id
	}
	var res result
	resp, err := n.hc.Do(req)
	if err == nil {
		res.status, res.hdr = resp.StatusCode, resp.Header
		res.body, err = io.ReadAll(resp.Body)
		resp.Body.Close()
	}
	if cr != nil {
		res.sent = cr.n.Load()
	}
	rec.End = time.Now()
	rec.Epoch[1] = n.epoch.Load()
	var oe *net.OpError
	if err != nil && errors.As(err, &oe) && oe.Op == "dial" {
		// No connection: the server is down (restarting) and never saw
		// the request. That is as definite as a 503, and handled as one.
		res.status, res.code, res.msg = http.StatusServiceUnavailable, "unsent", err.Error()
		rec.Outcome, rec.Status, rec.Code = "unsent", res.status, res.code
		err = nil
		n.hist.add(rec)
		n.count(func(f *figures) { f.ops++; f.unsent++ })
		n.waitUp()
		return res
	}
	if err != nil {
		res.err = err
		rec.Outcome, rec.Err = "unknown", err.Error()
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			n.failf("hang", "%s %s: no answer within the client's timeout: %v", req.Method, req.URL.Path, err)
		}
	} else {
		if res.status >= 300 {
			res.code, res.msg = errCode(res.body)
			rec.Outcome = "refused"
		} else {
			rec.Outcome = "ok"
		}
		rec.Status, rec.Code = res.status, res.code
	}
	if res.sent > 0 {
		if rec.Detail == nil {
			rec.Detail = map[string]any{}
		}
		rec.Detail["sent"] = res.sent
	}
	n.hist.add(rec)
	n.count(func(f *figures) {
		f.ops++
		if res.err != nil {
			f.unknownOps++
		}
		f.bytesSent += res.sent
	})
	return res
}

// errCode reads an error body: JSON from the API, text from tusd.
func errCode(b []byte) (code, msg string) {
	var e apiErr
	if json.Unmarshal(b, &e) == nil && e.Error.Code != "" {
		return e.Error.Code, e.Error.Message
	}
	s := strings.TrimSpace(string(b))
	if rest, ok := strings.CutPrefix(s, "ERR_"); ok {
		c, m, _ := strings.Cut(rest, ":")
		return strings.ToLower(c), strings.TrimSpace(m)
	}
	if len(s) > 200 {
		s = s[:200]
	}
	return "", s
}

func (n *nemesis) newReq(method, path, token string, body any) *http.Request {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			panic(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, n.base+path, rd)
	if err != nil {
		panic(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return req
}

// ---------------------------------------------------------------------------
// Workers

type worker struct {
	n   *nemesis
	id  int
	rng *mrand.Rand
}

func (n *nemesis) newWorker(i int) *worker {
	return &worker{n: n, id: i, rng: mrand.New(mrand.NewPCG(n.cfg.seed, uint64(i)+1))}
}

// run does lifecycles until ctx ends (no more kills); the one under way
// is finished.
func (w *worker) run(ctx context.Context) {
	for ctx.Err() == nil {
		w.lifecycle()
	}
}

// pause waits a little before trying again (the server is restarting).
func (w *worker) pause() {
	if w.n.aborted.Load() {
		runtime.Goexit() // the run ended early; see nemesis.aborted
	}
	time.Sleep(time.Duration(50+w.rng.IntN(100)) * time.Millisecond)
}

// retry runs f until it reports done; f returns true when it is done. It
// gives up (a failure) after two minutes without an answer.
func (w *worker) until(what string, f func() (done bool)) bool {
	deadline := time.Now().Add(2 * time.Minute)
	for !f() {
		if time.Now().After(deadline) {
			w.n.failf("stuck", "%s: no definite answer for 2 minutes", what)
			return false
		}
		w.pause()
	}
	return true
}

func (w *worker) hexTag() string {
	var b [6]byte
	for i := range b {
		b[i] = byte(w.rng.Uint32())
	}
	return hex.EncodeToString(b[:])
}

// lifecycle takes one transfer from creation as far as its dice say.
func (w *worker) lifecycle() {
	n := w.n
	if w.rng.Float64() < 0.15 {
		w.verify()
	}
	x := w.create()
	if x == nil {
		return
	}
	nfiles := w.rng.IntN(4)
	if nfiles == 0 && x.message == "" {
		nfiles = 1
	}
	for i := range nfiles {
		plain := w.rng.Float64() < 0.25
		f := &xfile{name: fmt.Sprintf("nem-fn-%s-%d.bin", w.hexTag(), i), plain: plain}
		marker := "nem-mk-" + w.hexTag()
		size := w.fileSize(plain)
		if size < 4*int64(len(marker)) {
			marker = "" // the three copies would overlap
		}
		f.src = newSource(w.rng.Uint64(), size, marker)
		n.canary(f.name)
		if marker != "" {
			n.canary(marker)
		}
		var ok bool
		if plain {
			ok = w.plainUpload(x, f)
		} else {
			ok = w.tusUpload(x, f)
		}
		if !ok {
			return
		}
	}
	if w.rng.Float64() < 0.05 {
		w.revoke(x) // before finish: no mail
		return
	}
	if !w.finish(x) {
		return
	}
	for _, r := range x.recipients {
		if w.rng.Float64() < 0.6 {
			w.receive(x, r)
		}
	}
	if w.rng.Float64() < 0.3 {
		w.revoke(x)
	}
}

// fileSize: mostly small files, some of a few MB, a few across the 16 MiB
// segment bound (so a kill mid-request can lose an open segment after a
// committed one).
func (w *worker) fileSize(plain bool) int64 {
	switch p := w.rng.Float64(); {
	case p < 0.08:
		return w.rng.Int64N(100)
	case p < 0.70:
		return 100 + w.rng.Int64N(300_000)
	case p < 0.95 || plain:
		return 300_000 + w.rng.Int64N(5_000_000)
	default:
		return 16<<20 - 100_000 + w.rng.Int64N(20<<20)
	}
}

// verify asks for a sender verification code for a fresh address: the
// acknowledged request must end in exactly one mail.
func (w *worker) verify() {
	n := w.n
	addr := "v-" + w.hexTag() + "@example.nl"
	body := map[string]string{"email": addr, "name": "Nemesis " + w.hexTag(), "lang": []string{"nl", "en"}[w.rng.IntN(2)]}
	r := n.send(w.id, "verify", nil, n.newReq("POST", "/api/v1/verify", "", body), map[string]any{"email": addr})
	o := oNone
	switch {
	case r.ok():
		o = oAcked
	case r.unknown():
		o = oUnknown
	case r.status == http.StatusServiceUnavailable:
	default:
		n.failf("verify", "POST /verify for %s: %s", addr, r.String())
	}
	if o != oNone {
		n.mu.Lock()
		n.verifies[addr] = o
		if o == oAcked {
			n.fig.verifies++
		} else {
			n.fig.verifyUnknown++
		}
		n.mu.Unlock()
	}
}

func (w *worker) create() *xfer {
	n := w.n
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		tag := w.hexTag()
		x := &xfer{
			worker:  w.id,
			subject: "nem " + tag,
			lang:    []string{"nl", "en"}[w.rng.IntN(2)],
			links:   map[string]string{},
			opts: nemOptions{
				Confirm: w.rng.Float64() < 0.5, NotifyDownload: w.rng.Float64() < 0.5,
				ShowFilenames: w.rng.Float64() < 0.3, RemindExpiry: w.rng.Float64() < 0.3,
			},
		}
		if x.opts.NotifyDownload {
			x.opts.Notify = "each"
		}
		for i := range 1 + w.rng.IntN(3) {
			x.recipients = append(x.recipients, fmt.Sprintf("r%d-%s@example.nl", i, tag))
		}
		if w.rng.Float64() < 0.8 {
			x.message = "nem-msg-" + w.hexTag() + " Geachte heer, hierbij de stukken. ëï"
		}
		pw := password{Mode: "none"}
		switch p := w.rng.Float64(); {
		case p < 0.25:
			pw.Mode = "generate"
		case p < 0.35:
			pw = password{Mode: "manual", Value: "Nemesis-" + w.hexTag()}
		}
		x.pwMode = pw.Mode
		expiry := 6 * time.Hour
		if w.rng.Float64() < 0.35 {
			expiry = 8*time.Second + time.Duration(w.rng.Int64N(int64(50*time.Second)))
		}
		req := map[string]any{
			"to": x.recipients[:1], "cc": x.recipients[1:],
			"message": x.message, "subject": x.subject, "lang": x.lang,
			"expires_at": time.Now().Add(expiry).UTC().Format(time.RFC3339Nano),
			"password":   pw, "options": x.opts,
		}
		var out struct {
			ID          string    `json:"id"`
			State       string    `json:"state"`
			ExpiresAt   time.Time `json:"expires_at"`
			UploadToken string    `json:"upload_token"`
			Password    string    `json:"password"`
			LinkSecret  string    `json:"link_secret"`
		}
		r := n.send(w.id, "create", nil, n.newReq("POST", "/api/v1/transfers", n.apiKey, req), map[string]any{"subject": x.subject})
		switch {
		case r.ok():
			if err := json.Unmarshal(r.body, &out); err != nil || out.ID == "" || out.UploadToken == "" || out.State != "draft" {
				n.failf("create", "create answered %d with %q", r.status, r.body)
				return nil
			}
			x.id, x.token, x.expiresAt, x.linkSecret = out.ID, out.UploadToken, out.ExpiresAt, out.LinkSecret
			switch pw.Mode {
			case "none":
				x.secret = out.LinkSecret
			case "generate":
				x.secret = out.Password
			default:
				x.secret = pw.Value
			}
			if x.secret == "" {
				n.failf("create", "create (%s) returned no secret: %q", pw.Mode, r.body)
				return nil
			}
			n.canary(x.secret, x.token, x.subject)
			if x.message != "" {
				n.canary(x.message)
			}
			n.mu.Lock()
			n.xfers = append(n.xfers, x)
			n.fig.transfers++
			n.mu.Unlock()
			return x
		case r.unknown():
			// Perhaps created; nobody knows its id or token. The checker
			// finds it in the sender's list: it must never become ready.
			n.count(func(f *figures) { f.ghostCreates++ })
		case r.status == http.StatusServiceUnavailable:
		default:
			n.failf("create", "POST /transfers: %s", r.String())
			return nil
		}
		w.pause()
	}
	n.failf("stuck", "worker %d: no transfer created in 2 minutes", w.id)
	return nil
}

// gone reports whether a refusal of x is expected: x expired or was
// revoked (as far as the client knows, or perhaps).
func (x *xfer) gone(margin time.Duration) bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.revoke != oNone || time.Now().After(x.expiresAt.Add(-margin))
}

// refusedAsGone checks a 410 (or, for the tus and upload routes of a
// purged transfer, 401/404) against what the client knows.
func (w *worker) refusedAsGone(x *xfer, what string, r result) {
	if !x.gone(time.Second) {
		w.n.failf("refused", "%s of %s: %s, but the transfer neither expired nor was revoked", what, x.id, r.String())
	}
}

// isGone is a refusal that means expired or revoked (or purged: the
// upload token is cleared, so the owner routes say 401).
func isGone(r result) bool {
	return r.status == http.StatusGone || r.status == http.StatusUnauthorized || r.status == http.StatusNotFound
}

func (w *worker) tusUpload(x *xfer, f *xfile) bool {
	n := w.n
	var loc string
	for attempt := 0; loc == ""; attempt++ {
		req, _ := http.NewRequest("POST", n.base+"/api/v1/uploads/", nil)
		req.Header.Set("Tus-Resumable", "1.0.0")
		req.Header.Set("Authorization", "Bearer "+x.token)
		req.Header.Set("Upload-Length", strconv.FormatInt(f.src.size, 10))
		req.Header.Set("Upload-Metadata", "filename "+base64.StdEncoding.EncodeToString([]byte(f.name))+",filetype "+base64.StdEncoding.EncodeToString([]byte("application/octet-stream")))
		r := n.send(w.id, "tus-create", x, req, map[string]any{"size": f.src.size})
		switch {
		case r.status == http.StatusCreated:
			u, err := url.Parse(r.hdr.Get("Location"))
			if err != nil || !strings.HasPrefix(u.Path, "/api/v1/uploads/") {
				n.failf("tus", "tus create: Location %q", r.hdr.Get("Location"))
				return false
			}
			loc = u.Path
		case r.unknown():
			// A file row may exist that nobody knows of.
			x.mu.Lock()
			x.ghostsTus++
			x.mu.Unlock()
			n.count(func(f *figures) { f.filesGhost++ })
			w.pause()
		case r.status == http.StatusServiceUnavailable:
			w.pause()
		case isGone(r):
			w.refusedAsGone(x, "tus create", r)
			return false
		default:
			n.failf("tus", "tus create for %s: %s", x.id, r.String())
			return false
		}
		if attempt > 100 {
			n.failf("stuck", "tus create for %s: 100 attempts", x.id)
			return false
		}
	}
	f.id = strings.TrimPrefix(loc, "/api/v1/uploads/")
	f.created = oAcked
	x.mu.Lock()
	x.files = append(x.files, f)
	x.mu.Unlock()
	size := f.src.size
	off := int64(0)
	if size == 0 {
		// tusd finishes an empty upload at creation.
		f.complete = oAcked
		n.count(func(fg *figures) { fg.filesTus++ })
		return true
	}
	afterHead, mismatches := false, 0
	for rounds := 0; off < size; rounds++ {
		if rounds > 5000 {
			n.failf("stuck", "upload %s: 5000 PATCH rounds", f.id)
			return false
		}
		chunk := size - off
		if w.rng.Float64() < 0.5 {
			chunk = min(chunk, 64<<10+w.rng.Int64N(8<<20))
		}
		var body io.Reader = io.LimitReader(f.src.reader(off), chunk)
		cut := int64(-1)
		if chunk > 1 && w.rng.Float64() < 0.08 {
			cut = 1 + w.rng.Int64N(chunk-1)
			body = &cutReader{r: body, n: cut}
		}
		req, _ := http.NewRequest("PATCH", n.base+loc, body)
		req.ContentLength = chunk
		req.Header.Set("Tus-Resumable", "1.0.0")
		req.Header.Set("Authorization", "Bearer "+x.token)
		req.Header.Set("Upload-Offset", strconv.FormatInt(off, 10))
		req.Header.Set("Content-Type", "application/offset+octet-stream")
		r := n.send(w.id, "patch", x, req, map[string]any{"fid": f.id, "offset": off, "len": chunk, "cut": cut})
		f.maxEnd = max(f.maxEnd, off+r.sent)
		switch {
		case r.status == http.StatusNoContent:
			got, err := strconv.ParseInt(r.hdr.Get("Upload-Offset"), 10, 64)
			if err != nil || got != off+chunk {
				n.failf("tus-offset", "PATCH %s at %d with %d bytes: 204 with Upload-Offset %q, want %d", f.id, off, chunk, r.hdr.Get("Upload-Offset"), off+chunk)
				return false
			}
			off, f.acked = got, got
			afterHead, mismatches = false, 0
			continue
		case r.unknown():
			if cut >= 0 {
				n.count(func(f *figures) { f.clientCuts++ })
			}
		case r.status == http.StatusConflict && r.code == "mismatched_offset":
			// Right after a HEAD this happens when an earlier request of
			// this upload, which the client broke off, still reached the
			// server and stored what it had sent after the HEAD answered.
			// HEAD again; again and again would be a fault.
			if afterHead {
				mismatches++
				if mismatches > 5 {
					n.failf("tus-offset", "PATCH %s at the offset %d that HEAD reported: %s, 5 times in a row", f.id, off, r.String())
					return false
				}
			}
		case r.status == http.StatusServiceUnavailable || r.status == http.StatusLocked:
		case r.status == http.StatusBadRequest && r.code == "upload_interrupted":
			// tusd lets the newest request for an upload win: a request
			// whose client already broke off (a cut above) can still
			// arrive at the server after the next one started, and ends
			// it. It keeps what arrived; resume.
			n.count(func(f *figures) { f.interrupted++ })
		case isGone(r):
			w.refusedAsGone(x, "PATCH", r)
			return false
		default:
			n.failf("tus", "PATCH %s at %d: %s", f.id, off, r.String())
			return false
		}
		h, ok := w.head(x, f)
		if !ok {
			return false
		}
		off, f.acked = h, h
		afterHead = true
		n.count(func(f *figures) { f.resumes++ })
	}
	f.complete = oAcked
	n.count(func(fg *figures) { fg.filesTus++; fg.bytesUp += size })
	return true
}

// head asks for the upload's offset until it gets an answer, and checks it:
// never below what the server reported before (committed data is never
// lost), never beyond what the client sent.
func (w *worker) head(x *xfer, f *xfile) (int64, bool) {
	n := w.n
	var off int64 = -1
	ok := w.until("HEAD "+f.id, func() bool {
		req, _ := http.NewRequest("HEAD", n.base+"/api/v1/uploads/"+f.id, nil)
		req.Header.Set("Tus-Resumable", "1.0.0")
		req.Header.Set("Authorization", "Bearer "+x.token)
		r := n.send(w.id, "head", x, req, map[string]any{"fid": f.id})
		switch {
		case r.status == http.StatusOK:
			v, err := strconv.ParseInt(r.hdr.Get("Upload-Offset"), 10, 64)
			if err != nil {
				n.failf("tus", "HEAD %s: Upload-Offset %q", f.id, r.hdr.Get("Upload-Offset"))
				off = -2
				return true
			}
			off = v
			return true
		case r.unknown(), r.status == http.StatusServiceUnavailable, r.status == http.StatusLocked:
			return false
		case isGone(r):
			w.refusedAsGone(x, "HEAD", r)
			off = -2
			return true
		default:
			n.failf("tus", "HEAD %s: %s", f.id, r.String())
			off = -2
			return true
		}
	})
	if !ok || off < 0 {
		return 0, false
	}
	n.count(func(f *figures) { f.headChecks++ })
	if off < f.acked {
		n.failf("tus-lost", "upload %s: HEAD reports offset %d after the server had reported %d: committed bytes were lost", f.id, off, f.acked)
		return 0, false
	}
	if off > f.maxEnd {
		n.failf("tus-phantom", "upload %s: HEAD reports offset %d, but the client never sent beyond %d", f.id, off, f.maxEnd)
		return 0, false
	}
	return off, true
}

func (w *worker) plainUpload(x *xfer, f *xfile) bool {
	n := w.n
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			// A new attempt is a new file (a new name), as a script would
			// send it again.
			f = &xfile{name: fmt.Sprintf("nem-fn-%s-p.bin", w.hexTag()), plain: true, src: f.src}
			n.canary(f.name)
		}
		req, _ := http.NewRequest("PUT", n.base+"/api/v1/transfers/"+x.id+"/files", f.src.reader(0))
		req.ContentLength = f.src.size
		if f.src.size == 0 {
			req.Body = http.NoBody
		}
		req.Header.Set("Authorization", "Bearer "+x.token)
		req.Header.Set("Kluis-File-Name", url.PathEscape(f.name))
		req.Header.Set("Content-Type", "application/octet-stream")
		x.mu.Lock()
		x.files = append(x.files, f)
		x.mu.Unlock()
		r := n.send(w.id, "put", x, req, map[string]any{"name": f.name, "size": f.src.size})
		switch {
		case r.status == http.StatusCreated:
			var fj fileJSON
			if err := json.Unmarshal(r.body, &fj); err != nil || fj.ID == "" || !fj.Complete || fj.Size != f.src.size {
				n.failf("put", "plain upload answered %q", r.body)
				return false
			}
			f.id, f.created, f.complete, f.acked = fj.ID, oAcked, oAcked, f.src.size
			n.count(func(fg *figures) { fg.filesPlain++; fg.bytesUp += f.src.size })
			return true
		case r.unknown():
			// Complete, or (as the docs promise) nothing kept: either way
			// the file may be there.
			f.created, f.complete = oUnknown, oUnknown
			x.mu.Lock()
			x.ghostsPlain++
			x.mu.Unlock()
			n.count(func(fg *figures) { fg.filesGhost++ })
		case r.status == http.StatusServiceUnavailable:
			f.created = oNone
		case isGone(r):
			w.refusedAsGone(x, "PUT", r)
			return false
		default:
			n.failf("put", "PUT %s: %s", x.id, r.String())
			return false
		}
		if attempt > 100 {
			n.failf("stuck", "plain upload to %s: 100 attempts", x.id)
			return false
		}
		w.pause()
	}
}

// transferView is the owner's view of a transfer.
type transferView struct {
	ID         string     `json:"id"`
	State      string     `json:"state"`
	ExpiresAt  time.Time  `json:"expires_at"`
	FinishedAt *time.Time `json:"finished_at"`
	RevokedAt  *time.Time `json:"revoked_at"`
	Recipients []struct {
		Address    string             `json:"address"`
		Kind       string             `json:"kind"`
		Status     string             `json:"status"`
		NotifiedAt *time.Time         `json:"notified_at"`
		RevokedAt  *time.Time         `json:"revoked_at"`
		Downloads  []recordedDownload `json:"downloads"`
	} `json:"recipients"`
}

// state reads x as its sender sees it (with the API key: the upload token
// is cleared by the purge), retrying through restarts.
func (n *nemesis) state(worker int, x *xfer) *transferView {
	var v *transferView
	deadline := time.Now().Add(2 * time.Minute)
	for v == nil {
		r := n.send(worker, "get", x, n.newReq("GET", "/api/v1/transfers/"+x.id, n.apiKey, nil), nil)
		switch {
		case r.ok():
			v = &transferView{}
			if err := json.Unmarshal(r.body, v); err != nil {
				n.failf("get", "GET transfer %s: %v", x.id, err)
				return nil
			}
		case r.unknown(), r.status == http.StatusServiceUnavailable:
			if time.Now().After(deadline) {
				n.failf("stuck", "GET transfer %s: no answer for 2 minutes", x.id)
				return nil
			}
			time.Sleep(100 * time.Millisecond)
		default:
			n.failf("get", "GET transfer %s: %s", x.id, r.String())
			return nil
		}
	}
	return v
}

var incompleteRE = regexp.MustCompile(`not been uploaded completely`)

func (w *worker) finish(x *xfer) bool {
	n := w.n
	var body any
	if x.pwMode == "none" {
		body = map[string]string{"link_secret": x.linkSecret}
	}
	waited := false // refused at first: a cut upload had to be dropped
	for attempt := 0; attempt < 200; attempt++ {
		r := n.send(w.id, "finish", x, n.newReq("POST", "/api/v1/transfers/"+x.id+"/finish", x.token, body), nil)
		switch {
		case r.ok():
			var out struct {
				State string          `json:"state"`
				Links []recipientLink `json:"links"`
			}
			if err := json.Unmarshal(r.body, &out); err != nil || out.State != "ready" {
				n.failf("finish", "finish of %s answered %q", x.id, r.body)
				return false
			}
			if waited {
				n.count(func(f *figures) { f.finishWaited++ })
			}
			x.mu.Lock()
			x.finish = oAcked
			for _, l := range out.Links {
				x.links[strings.ToLower(l.Address)] = l.URL
			}
			x.mu.Unlock()
			w.checkLinks(x, out.Links)
			n.count(func(f *figures) { f.finished++ })
			return true
		case r.unknown(), r.status == http.StatusServiceUnavailable:
			if r.unknown() {
				x.mu.Lock()
				x.finish = oUnknown
				x.mu.Unlock()
			}
			w.pause()
			v := n.state(w.id, x)
			if v == nil {
				return false
			}
			if v.FinishedAt != nil {
				x.mu.Lock()
				x.finish = oSeen
				x.mu.Unlock()
				n.count(func(f *figures) { f.finishUnknown++ })
				return true // the links come from the mails
			}
		case r.status == http.StatusConflict && incompleteRE.MatchString(r.msg):
			x.mu.Lock()
			tusGhosts, plainGhosts := x.ghostsTus, x.ghostsPlain
			x.mu.Unlock()
			if (plainGhosts > 0 || tusGhosts > 0) && attempt < 60 {
				waited = true
				// A PUT cut by a kill keeps nothing: the server drops it
				// at finish once no request holds its upload lease (at
				// once after a restart on SQLite, within the lease's 10 s
				// on PostgreSQL). A tus POST whose answer was lost left
				// an empty upload nobody can name: finish drops it once
				// nobody has touched it for the upload lease (10 s).
				time.Sleep(500 * time.Millisecond)
				continue
			}
			x.mu.Lock()
			x.abandoned = "finish refused: " + r.msg
			x.mu.Unlock()
			n.count(func(f *figures) { f.blocked++ })
			switch {
			case plainGhosts > 0:
				n.failf("finish-blocked-put", "finish of %s refused for 30 s (%s): a PUT cut by a kill (%d) left a file that blocks the transfer, though a failed plain upload keeps nothing",
					x.id, r.msg, plainGhosts)
			case tusGhosts > 0:
				n.failf("finish-blocked-tus", "finish of %s refused for 30 s (%s): a tus POST whose answer was lost (%d) left an empty upload that blocks the transfer",
					x.id, r.msg, tusGhosts)
			default:
				n.failf("finish-blocked", "finish of %s refused (%s) although every file was acknowledged complete", x.id, r.msg)
			}
			w.revoke(x)
			return false
		case r.status == http.StatusConflict && x.get(func() bool { return x.finish == oUnknown }):
			// "already finished": the lost attempt did it.
			x.mu.Lock()
			x.finish = oSeen
			x.mu.Unlock()
			n.count(func(f *figures) { f.finishUnknown++ })
			return true
		case isGone(r):
			w.refusedAsGone(x, "finish", r)
			return false
		default:
			n.failf("finish", "finish of %s: %s", x.id, r.String())
			return false
		}
	}
	n.failf("stuck", "finish of %s: 200 attempts", x.id)
	return false
}

type recipientLink struct {
	Address string `json:"address"`
	URL     string `json:"url"`
}

// checkLinks: one link per recipient, each its own, with the link secret
// in the fragment of a no-password transfer.
func (w *worker) checkLinks(x *xfer, links []recipientLink) {
	n := w.n
	if len(links) != len(x.recipients) {
		n.failf("finish", "finish of %s: %d links for %d recipients", x.id, len(links), len(x.recipients))
	}
	seen := map[string]bool{}
	for _, l := range links {
		if !slices.Contains(x.recipients, strings.ToLower(l.Address)) || seen[l.URL] {
			n.failf("finish", "finish of %s: link %q for %q", x.id, l.URL, l.Address)
		}
		seen[l.URL] = true
		_, frag, _ := strings.Cut(l.URL, "#")
		if (x.pwMode == "none") != (frag != "") || (frag != "" && frag != x.linkSecret) {
			n.failf("finish", "finish of %s (%s): link fragment %q", x.id, x.pwMode, frag)
		}
		access, _, _ := strings.Cut(l.URL[strings.LastIndex(l.URL, "/r/")+3:], "#")
		n.canary(access)
	}
}

// link returns the recipient's link: from the finish answer, else from the
// notification mail (which may not have arrived yet: then "").
func (n *nemesis) link(x *xfer, addr string) string {
	x.mu.Lock()
	l := x.links[addr]
	x.mu.Unlock()
	if l != "" {
		return l
	}
	for _, m := range n.mailsTo(addr) {
		if m.Subject != x.subject {
			continue
		}
		if ls := mailLinks(m); len(ls) == 1 {
			x.mu.Lock()
			x.links[addr] = ls[0]
			x.mu.Unlock()
			return ls[0]
		}
	}
	return ""
}

func accessOf(link string) string {
	i := strings.LastIndex(link, "/r/")
	if i < 0 {
		return ""
	}
	a, _, _ := strings.Cut(link[i+3:], "#")
	return a
}

// receive opens x as recipient addr and downloads: one file, all files one
// by one, or the ZIP; sometimes through the web pages.
func (w *worker) receive(x *xfer, addr string) {
	n := w.n
	link := n.link(x, addr)
	if link == "" {
		return // the mail is not there yet (a kill delays it); the final check opens it
	}
	sess, ok := n.unlock(w.id, x, link)
	if !ok || sess == "" {
		return
	}
	c, ok := n.contentsOf(w.id, x, sess)
	if !ok {
		return
	}
	switch p := w.rng.Float64(); {
	case p < 0.15 && len(c.Files) > 0 && x.totalSize() < 20<<20:
		n.downloadZip(w.id, x, addr, sess, c)
	case p < 0.3:
		n.page(w.id, x, link, c)
	case p < 0.7 && len(c.Files) > 0:
		f := c.Files[w.rng.IntN(len(c.Files))]
		n.downloadFile(w.id, x, addr, sess, f)
	default:
		for _, f := range c.Files {
			if !n.downloadFile(w.id, x, addr, sess, f) {
				return
			}
		}
	}
}

// get evaluates f under x's lock.
func (x *xfer) get(f func() bool) bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	return f()
}

func (x *xfer) totalSize() int64 {
	x.mu.Lock()
	defer x.mu.Unlock()
	var s int64
	for _, f := range x.files {
		s += f.src.size
	}
	return s
}

// unlock opens a download session for link. ok is false after a failure
// or a refusal; sess is "" when x is expired or revoked (checked).
func (n *nemesis) unlock(worker int, x *xfer, link string) (sess string, ok bool) {
	access := accessOf(link)
	for attempt := 0; attempt < 100; attempt++ {
		r := n.send(worker, "unlock", x, n.newReq("POST", "/api/v1/links/"+access+"/unlock", "", map[string]string{"secret": x.secret}), nil)
		switch {
		case r.ok():
			n.mu.Lock()
			n.cutUnlocks[access] = 0
			n.mu.Unlock()
			var out struct {
				Session string `json:"session"`
			}
			if json.Unmarshal(r.body, &out) != nil || out.Session == "" {
				n.failf("unlock", "unlock of %s answered %q", x.id, r.body)
				return "", false
			}
			return out.Session, true
		case r.unknown(), r.status == http.StatusServiceUnavailable:
			if r.unknown() {
				n.mu.Lock()
				n.cutUnlocks[access]++
				reached := n.cutUnlocks[access] == nemMaxFailures
				n.mu.Unlock()
				if reached {
					x.mu.Lock()
					x.cutLockable++
					x.mu.Unlock()
				}
			}
			time.Sleep(100 * time.Millisecond)
		case r.status == http.StatusGone:
			n.checkGoneCode(x, "unlock", r)
			return "", true
		case r.status == 423 && n.cutUnlocksOf(access) >= nemMaxFailures:
			// A try counts before it is checked, and one cut off in
			// between stays counted (a crash errs on the safe side):
			// after --max-failures of them in a row the access locks,
			// for a while and with the sender's mail, never for ever.
			var e struct {
				Error struct {
					At *time.Time `json:"at"`
				} `json:"error"`
			}
			if json.Unmarshal(r.body, &e) != nil || e.Error.At == nil {
				n.failf("unlock", "unlock of %s locked after %d cut tries, without an end: %s", x.id, n.cutUnlocksOf(access), r.String())
			}
			x.mu.Lock()
			if x.cutLocked < x.cutLockable {
				x.cutLocked++
				n.count(func(f *figures) { f.cutLocks++ })
			}
			x.mu.Unlock()
			return "", false
		default:
			n.failf("unlock", "unlock of %s: %s", x.id, r.String())
			return "", false
		}
	}
	n.failf("stuck", "unlock of %s: 100 attempts", x.id)
	return "", false
}

// nemMaxFailures is kluis serve's --max-failures, which the nemesis leaves
// at its default.
const nemMaxFailures = 10

func (n *nemesis) cutUnlocksOf(access string) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.cutUnlocks[access]
}

// checkGoneCode checks a 410: "revoked" when a revoke was acknowledged,
// "expired" past the expiry, and only then.
func (n *nemesis) checkGoneCode(x *xfer, what string, r result) {
	x.mu.Lock()
	rev, exp := x.revoke, x.expiresAt
	x.mu.Unlock()
	now := time.Now()
	switch {
	case rev == oAcked && r.code != "revoked":
		n.failf("refused", "%s of %s after an acknowledged revoke: %s, want 410 revoked", what, x.id, r.String())
	case rev == oNone && r.code != "expired":
		n.failf("refused", "%s of %s (never revoked): %s, want 410 expired", what, x.id, r.String())
	case rev == oNone && now.Before(exp.Add(-time.Second)):
		n.failf("refused", "%s of %s: %s before its expiry %v", what, x.id, r.String(), exp)
	case r.code != "revoked" && r.code != "expired":
		n.failf("refused", "%s of %s: %s", what, x.id, r.String())
	}
}

// nemFile is a file of the session contents.
type nemFile struct {
	ID       string `json:"id"`
	Index    int    `json:"index"`
	Name     string `json:"name"`
	Size     int64  `json:"size"`
	SHA256   string `json:"sha256"`
	Complete bool   `json:"complete"`
}

type nemContents struct {
	Message string    `json:"message"`
	Files   []nemFile `json:"files"`
}

// contentsOf reads the session's contents and checks them against what
// the client uploaded: only complete files, each one the client sent, each
// acknowledged one present once, and the message.
func (n *nemesis) contentsOf(worker int, x *xfer, sess string) (*nemContents, bool) {
	for attempt := 0; attempt < 100; attempt++ {
		r := n.send(worker, "contents", x, n.newReq("GET", "/api/v1/session", sess, nil), nil)
		switch {
		case r.ok():
			var c nemContents
			if err := json.Unmarshal(r.body, &c); err != nil {
				n.failf("contents", "session of %s: %v", x.id, err)
				return nil, false
			}
			n.checkContents(x, &c)
			return &c, true
		case r.unknown(), r.status == http.StatusServiceUnavailable:
			time.Sleep(100 * time.Millisecond)
		case r.status == http.StatusGone:
			n.checkGoneCode(x, "session", r)
			return nil, false
		case r.status == http.StatusUnauthorized && x.gone(time.Second):
			return nil, false // the purge ended the session
		default:
			n.failf("contents", "session of %s: %s", x.id, r.String())
			return nil, false
		}
	}
	return nil, false
}

func (n *nemesis) checkContents(x *xfer, c *nemContents) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if c.Message != x.message {
		n.failf("contents", "transfer %s: message %q, want %q", x.id, c.Message, x.message)
	}
	byName := map[string]*xfile{}
	for _, f := range x.files {
		byName[f.name] = f
	}
	listed := map[string]int{}
	for _, fj := range c.Files {
		listed[fj.Name]++
		f := byName[fj.Name]
		switch {
		case f == nil:
			n.failf("half-visible", "transfer %s lists a file %q the client never sent", x.id, fj.Name)
		case !fj.Complete:
			n.failf("half-visible", "transfer %s (ready) lists file %q as incomplete", x.id, fj.Name)
		case f.complete == oNone:
			n.failf("half-visible", "transfer %s lists file %q, whose upload never completed", x.id, fj.Name)
		case fj.Size != f.src.size || fj.SHA256 != f.src.hexSum():
			n.failf("half-visible", "transfer %s: file %q listed with %d bytes sha256 %s, want %d bytes %s", x.id, fj.Name, fj.Size, fj.SHA256, f.src.size, f.src.hexSum())
		}
	}
	for _, f := range x.files {
		if f.complete == oAcked && listed[f.name] != 1 {
			n.failf("lost", "transfer %s: acknowledged file %q (%s) listed %d times", x.id, f.name, f.id, listed[f.name])
		}
		if listed[f.name] > 1 {
			n.failf("half-visible", "transfer %s: file %q listed %d times", x.id, f.name, listed[f.name])
		}
	}
}

func (x *xfer) source(name string) *source {
	x.mu.Lock()
	defer x.mu.Unlock()
	for _, f := range x.files {
		if f.name == name {
			return f.src
		}
	}
	return nil
}

// downloadFile fetches one whole file and checks it byte for byte. It
// returns false when the download could not be completed.
func (n *nemesis) downloadFile(worker int, x *xfer, addr, sess string, f nemFile) bool {
	src := x.source(f.Name)
	if src == nil {
		return false
	}
	req := n.newReq("GET", "/api/v1/session/files/"+f.ID, sess, nil)
	rec := &opRec{Worker: worker, Op: "download", XID: x.id, Start: time.Now(), Detail: map[string]any{"fid": f.ID, "to": addr}}
	rec.Epoch[0] = n.epoch.Load()
	resp, err := n.hc.Do(req)
	var got int64
	var sum string
	status := 0
	var body []byte
	if err == nil {
		status = resp.StatusCode
		if status == http.StatusOK {
			h := sha256.New()
			got, err = io.CopyBuffer(h, resp.Body, make([]byte, 256<<10))
			sum = hex.EncodeToString(h.Sum(nil))
		} else {
			body, err = io.ReadAll(resp.Body)
		}
		resp.Body.Close()
	}
	rec.End = time.Now()
	rec.Epoch[1] = n.epoch.Load()
	rec.Status = status
	defer n.hist.add(rec)
	if err != nil {
		rec.Outcome, rec.Err = "unknown", err.Error()
		// In flight at a kill: the server may have recorded it.
		x.mu.Lock()
		x.downloads = append(x.downloads, dlRec{addr: addr, index: f.Index})
		x.mu.Unlock()
		n.count(func(fg *figures) { fg.ops++; fg.unknownOps++ })
		return false
	}
	n.count(func(fg *figures) { fg.ops++ })
	if status != http.StatusOK {
		rec.Outcome = "refused"
		code, msg := errCode(body)
		rec.Code = code
		r := result{status: status, code: code, msg: msg}
		if status == http.StatusGone {
			n.checkGoneCode(x, "download", r)
		} else if !(status == http.StatusUnauthorized && x.gone(time.Second)) {
			n.failf("download", "download of %s/%s: %s", x.id, f.Name, r.String())
		}
		return false
	}
	rec.Outcome = "ok"
	if got != src.size || sum != src.hexSum() {
		n.failf("corrupt", "download of %s/%s: %d bytes sha256 %s, want %d bytes %s", x.id, f.Name, got, sum, src.size, src.hexSum())
		x.mu.Lock()
		x.downloads = append(x.downloads, dlRec{addr: addr, index: f.Index}) // the server may record it
		x.mu.Unlock()
		return false
	}
	x.mu.Lock()
	x.downloads = append(x.downloads, dlRec{addr: addr, index: f.Index, acked: true})
	x.mu.Unlock()
	n.count(func(fg *figures) { fg.downloads++; fg.bytesDown += got })
	return true
}

// downloadZip fetches the ZIP and checks every entry.
func (n *nemesis) downloadZip(worker int, x *xfer, addr, sess string, c *nemContents) {
	r := n.send(worker, "zip", x, n.newReq("GET", "/api/v1/session/zip", sess, nil), map[string]any{"to": addr})
	switch {
	case r.unknown():
		// Cut: the files the server sent whole before are downloaded.
		x.zipDownloaded(addr, c, false)
		return
	case r.status == http.StatusGone:
		n.checkGoneCode(x, "zip", r)
		return
	case r.status == http.StatusServiceUnavailable:
		return
	case r.status == http.StatusUnauthorized && x.gone(time.Second):
		return
	case !r.ok():
		n.failf("zip", "ZIP of %s: %s", x.id, r.String())
		return
	}
	ok := n.checkZip(x, r.body, c)
	x.zipDownloaded(addr, c, ok)
	if !ok {
		return
	}
	n.count(func(fg *figures) { fg.zips++; fg.bytesDown += int64(len(r.body)) })
}

// zipDownloaded records a ZIP download of c's files by addr: each file a
// download of its own, as the server counts them.
func (x *xfer) zipDownloaded(addr string, c *nemContents, acked bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	for _, f := range c.Files {
		x.downloads = append(x.downloads, dlRec{addr: addr, index: f.Index, acked: acked, zip: len(c.Files)})
	}
}

// checkZip checks every entry of a downloaded ZIP against the uploads and
// the message.
func (n *nemesis) checkZip(x *xfer, body []byte, c *nemContents) bool {
	zr, err := zip.NewReader(bytes.NewReader(body), int64(len(body)))
	if err != nil {
		n.failf("corrupt", "ZIP of %s: %v", x.id, err)
		return false
	}
	want := len(c.Files)
	if strings.TrimSpace(x.message) != "" {
		want++
	}
	ok := true
	if len(zr.File) != want {
		n.failf("corrupt", "ZIP of %s: %d entries, want %d", x.id, len(zr.File), want)
		ok = false
	}
	for _, zf := range zr.File {
		rc, err := zf.Open()
		if err != nil {
			n.failf("corrupt", "ZIP of %s: %s: %v", x.id, zf.Name, err)
			ok = false
			continue
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			n.failf("corrupt", "ZIP of %s: %s: %v", x.id, zf.Name, err)
			ok = false
			continue
		}
		if src := x.source(zf.Name); src != nil {
			if s := sha256.Sum256(b); int64(len(b)) != src.size || hex.EncodeToString(s[:]) != src.hexSum() {
				n.failf("corrupt", "ZIP of %s: %s differs from what was uploaded", x.id, zf.Name)
				ok = false
			}
		} else if string(b) != x.message {
			n.failf("corrupt", "ZIP of %s: entry %s is neither a file nor the message", x.id, zf.Name)
			ok = false
		}
	}
	return ok
}

var fileHrefRE = regexp.MustCompile(`href="/r/[a-z0-9]+/files/([a-z0-9]+)"`)

// page opens the link through the web pages (form post, cookie) and checks
// that the page lists exactly the files of the API.
func (n *nemesis) page(worker int, x *xfer, link string, c *nemContents) {
	access := accessOf(link)
	form := url.Values{"secret": {x.secret}}
	if x.pwMode != "none" {
		form = url.Values{"password": {x.secret}}
	}
	req, _ := http.NewRequest("POST", n.base+"/r/"+access+"/unlock", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r := n.send(worker, "page-unlock", x, req, nil)
	if r.unknown() || r.status == http.StatusGone || r.status == http.StatusServiceUnavailable {
		return
	}
	var cookie string
	for _, c := range (&http.Response{Header: r.hdr}).Cookies() {
		if c.Name == "__Host-kluis-dl" {
			cookie = c.Name + "=" + c.Value
		}
	}
	if r.status != http.StatusSeeOther || cookie == "" {
		n.failf("page", "web unlock of %s: %s", x.id, r.String())
		return
	}
	req, _ = http.NewRequest("GET", n.base+"/r/"+access+"/open", nil)
	req.Header.Set("Cookie", cookie)
	r = n.send(worker, "page-open", x, req, nil)
	if r.unknown() || r.status == http.StatusGone || r.status == http.StatusServiceUnavailable {
		return
	}
	if r.status != http.StatusOK {
		n.failf("page", "page of %s: %s", x.id, r.String())
		return
	}
	var got, want []string
	for _, m := range fileHrefRE.FindAllStringSubmatch(string(r.body), -1) {
		if !slices.Contains(got, m[1]) {
			got = append(got, m[1])
		}
	}
	for _, f := range c.Files {
		want = append(want, f.ID)
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		n.failf("half-visible", "the page of %s lists files %v, the API %v", x.id, got, want)
	}
	n.count(func(f *figures) { f.pages++ })
}

// revoke revokes x for everyone and checks that its links are refused at
// once.
func (w *worker) revoke(x *xfer) {
	n := w.n
	for attempt := 0; attempt < 200; attempt++ {
		r := n.send(w.id, "revoke", x, n.newReq("POST", "/api/v1/transfers/"+x.id+"/revoke", n.apiKey, nil), nil)
		switch {
		case r.ok():
			x.mu.Lock()
			x.revoke, x.revokeAt = oAcked, time.Now()
			links := make([]string, 0, len(x.links))
			for _, l := range x.links {
				links = append(links, l)
			}
			x.mu.Unlock()
			n.count(func(f *figures) { f.revoked++ })
			for _, l := range links {
				n.probe(w.id, x, l)
			}
			return
		case r.unknown(), r.status == http.StatusServiceUnavailable:
			if r.unknown() {
				x.mu.Lock()
				x.revoke = oUnknown
				x.mu.Unlock()
			}
			w.pause()
		case r.status == http.StatusConflict && strings.Contains(r.msg, "already revoked") && x.get(func() bool { return x.revoke == oUnknown }):
			x.mu.Lock()
			x.revoke = oSeen
			x.mu.Unlock()
			n.count(func(f *figures) { f.revokeUnknown++ })
			return
		case r.status == http.StatusConflict && strings.Contains(r.msg, "expired"):
			if !x.gone(time.Second) {
				n.failf("revoke", "revoke of %s: %s before its expiry", x.id, r.String())
			}
			return
		default:
			n.failf("revoke", "revoke of %s: %s", x.id, r.String())
			return
		}
	}
}

// probe checks that a link of an expired or revoked transfer is refused.
func (n *nemesis) probe(worker int, x *xfer, link string) {
	access := accessOf(link)
	for attempt := 0; attempt < 50; attempt++ {
		r := n.send(worker, "probe", x, n.newReq("GET", "/api/v1/links/"+access, "", nil), nil)
		switch {
		case r.unknown(), r.status == http.StatusServiceUnavailable:
			time.Sleep(100 * time.Millisecond)
			continue
		case r.status == http.StatusGone:
			n.checkGoneCode(x, "link", r)
		default:
			n.failf("refused", "link of %s (expired or revoked) answered %s", x.id, r.String())
		}
		n.count(func(f *figures) { f.refusalProbes++ })
		return
	}
}

// probeRefusals, after a restart, checks a few links of transfers that
// are revoked or expired: they stay refused.
func (n *nemesis) probeRefusals() {
	n.mu.Lock()
	var cand []*xfer
	for _, x := range n.xfers {
		x.mu.Lock()
		if len(x.links) > 0 && (x.revoke == oAcked || time.Now().After(x.expiresAt.Add(time.Second))) {
			cand = append(cand, x)
		}
		x.mu.Unlock()
	}
	n.mu.Unlock()
	for i := 0; i < 4 && len(cand) > 0; i++ {
		j := int(uint64(time.Now().UnixNano()) % uint64(len(cand)))
		x := cand[j]
		cand = slices.Delete(cand, j, j+1)
		x.mu.Lock()
		var link string
		for _, l := range x.links {
			link = l
		}
		x.mu.Unlock()
		n.probe(-1, x, link)
	}
}
