package e2e

import (
	"errors"
	"io"
	"net/http"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// TestTusResumeAfterReset uploads a large file over tus through a proxy
// that resets the TCP connection (RST) three times at different points;
// each time the upload resumes at the offset HEAD reports.
func TestTusResumeAfterReset(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	srv := startServer(t, data)
	px := newProxy(t, srv.addr)
	viaProxy := &http.Client{Transport: &http.Transport{DisableKeepAlives: true, DisableCompression: true}}

	pw := uniq("pw-canary-")
	msg := uniq("msg-canary-")
	name := uniq("fn-canary-") + ".bin"
	marker := uniq("mk-canary-")
	c := srv.create(t, password{Mode: "manual", Value: pw}, msg)
	size := bigSize()
	src := newSource(42, size, marker)

	tc := newTus(c.UploadToken, viaProxy)
	loc, st, err := tc.create(px.base(), size, name)
	if err != nil || st != http.StatusCreated {
		t.Fatalf("tus create via proxy: %d %v", st, err)
	}
	loc = rebase(loc, px.base())

	// Cut points: client→server bytes on each PATCH connection. A stalled
	// cut forwards nothing for a while before the reset, so the server has
	// read all that reached it; an abrupt one resets mid-stream, and what
	// still sat in the server's socket receive queue is discarded by its
	// kernel (TCP semantics: RST drops unread data).
	cuts := []struct {
		at    int64
		stall time.Duration
	}{{size * 13 / 100, time.Second}, {size * 23 / 100, 0}, {size * 31 / 100, time.Second}}
	var off, sent, abruptLoss int64
	for i, cut := range cuts {
		px.cutAt.Store(cut.at)
		px.stall.Store(int64(cut.stall))
		cutsBefore := px.cuts.Load()
		r := tc.patch(loc, off, src.reader(off), size-off)
		sent += r.sent
		if r.err == nil && r.status == http.StatusNoContent {
			t.Fatalf("cut %d: the PATCH succeeded although the proxy was to cut it at %d bytes", i+1, cut.at)
		}
		if px.cuts.Load() != cutsBefore+1 {
			t.Fatalf("cut %d: the proxy did not cut (status %d, err %v)", i+1, r.status, r.err)
		}
		forwardedConn := px.lastConn.Load()
		newOff, hst, herr := tc.head(loc) // a fresh connection through the proxy
		if herr != nil || hst != http.StatusOK {
			t.Fatalf("cut %d: HEAD: %d %v", i+1, hst, herr)
		}
		if md := tc.lastHead.Get("Upload-Metadata"); md != "" {
			t.Errorf("HEAD echoes Upload-Metadata %q: it carries the file name", md)
		}
		if l := tc.lastHead.Get("Upload-Length"); l != strconv.FormatInt(size, 10) {
			t.Errorf("HEAD Upload-Length %q, want %d", l, size)
		}
		lost := forwardedConn - (newOff - off) // includes the request headers
		t.Logf("cut %d (stall %v) at %s of the connection: client sent %s, proxy forwarded %s; HEAD offset %s (+%s; not kept %d bytes); PATCH err=%v status=%d",
			i+1, cut.stall, mb(cut.at), mb(r.sent), mb(forwardedConn), mb(newOff), mb(newOff-off), lost, r.err, r.status)
		if newOff <= off {
			t.Fatalf("cut %d: offset %d did not advance past %d", i+1, newOff, off)
		}
		if newOff-off > r.sent || newOff-off > forwardedConn {
			t.Fatalf("cut %d: offset advanced by %d, more than the %d bytes sent (%d forwarded incl. headers)", i+1, newOff-off, r.sent, forwardedConn)
		}
		if cut.stall > 0 && lost > 64<<10 {
			// The server had read everything that reached it: all of it
			// must be kept (only the request headers are not file bytes).
			t.Errorf("cut %d: %d bytes reached and were read by the server but were not kept", i+1, lost)
		}
		if cut.stall == 0 {
			abruptLoss += lost
		}
		off = newOff
	}
	r := tc.patch(loc, off, src.reader(off), size-off)
	sent += r.sent
	if r.err != nil || r.status != http.StatusNoContent || r.offset != size {
		t.Fatalf("final PATCH from %d: status %d offset %d err %v %s", off, r.status, r.offset, r.err, r.body)
	}
	fw := px.forwarded.Load()
	t.Logf("file %s: client sent %s body bytes in total (%.3f×); proxy forwarded %s to the server incl. headers (%.3f×)",
		mb(size), mb(sent), float64(sent)/float64(size), mb(fw), float64(fw)/float64(size))
	limit := int64(1.1 * float64(size))
	if testing.Short() {
		// With a 30 MB file, what the server's kernel discards at an abrupt
		// reset (its receive queue, up to tcp_rmem max) can exceed 10%.
		limit += abruptLoss
	}
	if fw > limit {
		t.Errorf("proxy forwarded %d bytes for a %d byte file: more than %d (1.1×)", fw, size, limit)
	}

	access, _ := srv.finish(t, c)
	session := srv.unlock(t, access, pw)
	cont := srv.contents(t, session)
	srv.download(t, session, cont.file(t, name), src)

	srv.stop(t)
	assertNotInLogs(t, []*server{srv}, pw, msg, name, marker, access, session, c.UploadToken)
	assertNotInData(t, data, pw, msg, name, marker, access, session, c.UploadToken)
}

// TestKill9 kills the server with SIGKILL in the middle of a tus upload,
// restarts it on the same data folder, and resumes. A transfer that was
// ready before the kill still downloads intact.
func TestKill9(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	srv1 := startServer(t, data)

	pw := uniq("pw-canary-")
	msg := uniq("msg-canary-")
	name := uniq("fn-canary-") + ".bin"
	marker := uniq("mk-canary-")

	// A transfer finished before the kill.
	readyPW := uniq("pw-canary-")
	ready := srv1.create(t, password{Mode: "manual", Value: readyPW}, msg)
	readySrc := newSource(7, 20<<20+3, marker)
	readyName := uniq("fn-canary-") + ".dat"
	if st, code := srv1.plainUpload(t, ready, readyName, readySrc, false); st != http.StatusCreated {
		t.Fatalf("plain upload: %d %s", st, code)
	}
	readyAccess, _ := srv1.finish(t, ready)

	// The upload in progress.
	size, pauseAt := int64(150_000_000), int64(100<<20)
	if testing.Short() {
		size, pauseAt = 60_000_000, 36<<20
	}
	c := srv1.create(t, password{Mode: "manual", Value: pw}, msg)
	src := newSource(43, size, marker)
	tc := newTus(c.UploadToken, nil)
	loc, st, err := tc.create(srv1.base, size, name)
	if err != nil || st != http.StatusCreated {
		t.Fatalf("tus create: %d %v", st, err)
	}
	gate := newGate(src.reader(0), pauseAt)
	res := make(chan patchResult, 1)
	go func() { res <- tc.patch(loc, 0, gate, size) }()
	select {
	case <-gate.paused:
	case r := <-res:
		t.Fatalf("PATCH ended before the kill: %d %v", r.status, r.err)
	case <-time.After(2 * time.Minute):
		t.Fatal("the upload did not reach the kill point")
	}
	time.Sleep(2 * time.Second) // the server drains the socket buffers and commits the segment it crossed
	srv1.kill9(t)
	close(gate.stop)
	r1 := <-res
	if r1.err == nil && r1.status == http.StatusNoContent {
		t.Fatal("PATCH succeeded although the server was killed")
	}
	t.Logf("killed after the client sent %s (PATCH: status %d err %v)", mb(r1.sent), r1.status, r1.err)

	srv2 := startServer(t, data)
	loc2 := rebase(loc, srv2.base)
	off, hst, herr := tc.head(loc2)
	if herr != nil || hst != http.StatusOK {
		t.Fatalf("HEAD after restart: %d %v", hst, herr)
	}
	t.Logf("after restart HEAD offset %s of %s sent (lost %s: the open segment)", mb(off), mb(r1.sent), mb(r1.sent-off))
	if off <= 0 || off > r1.sent {
		t.Fatalf("offset after restart %d, want in (0, %d]", off, r1.sent)
	}
	r2 := tc.patch(loc2, off, src.reader(off), size-off)
	if r2.err != nil || r2.status != http.StatusNoContent || r2.offset != size {
		t.Fatalf("resume PATCH: %d %d %v %s", r2.status, r2.offset, r2.err, r2.body)
	}
	total := r1.sent + r2.sent
	t.Logf("file %s: sent %s in total (%.3f×)", mb(size), mb(total), float64(total)/float64(size))
	if float64(total) > 1.1*float64(size) {
		t.Errorf("sent %d bytes for %d: more than 1.1×", total, size)
	}
	access, _ := srv2.finish(t, c)
	session := srv2.unlock(t, access, pw)
	srv2.download(t, session, srv2.contents(t, session).file(t, name), src)

	readySession := srv2.unlock(t, readyAccess, readyPW)
	srv2.download(t, readySession, srv2.contents(t, readySession).file(t, readyName), readySrc)

	srv2.stop(t)
	secrets := []string{pw, readyPW, msg, name, readyName, marker, access, readyAccess, session, readySession, c.UploadToken, ready.UploadToken}
	assertNotInLogs(t, []*server{srv1, srv2}, secrets...)
	assertNotInData(t, data, secrets...)
}

// TestSIGTERMDuringUpload sends SIGTERM while a PATCH streams: the PATCH
// ends with 503 (or a closed connection), the process exits by itself
// quickly, and after a restart the upload resumes.
func TestSIGTERMDuringUpload(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	srv1 := startServer(t, data)

	pw := uniq("pw-canary-")
	msg := uniq("msg-canary-")
	name := uniq("fn-canary-") + ".bin"
	marker := uniq("mk-canary-")
	size, pauseAt := int64(60_000_000), int64(20<<20+12345)
	if testing.Short() {
		size, pauseAt = 30_000_000, 10<<20
	}
	c := srv1.create(t, password{Mode: "manual", Value: pw}, msg)
	src := newSource(44, size, marker)
	tc := newTus(c.UploadToken, nil)
	loc, st, err := tc.create(srv1.base, size, name)
	if err != nil || st != http.StatusCreated {
		t.Fatalf("tus create: %d %v", st, err)
	}
	gate := newGate(src.reader(0), pauseAt)
	defer func() {
		select {
		case <-gate.stop:
		default:
			close(gate.stop)
		}
	}()
	res := make(chan patchResult, 1)
	go func() { res <- tc.patch(loc, 0, gate, size) }()
	select {
	case <-gate.paused:
	case r := <-res:
		t.Fatalf("PATCH ended before SIGTERM: %d %v", r.status, r.err)
	case <-time.After(2 * time.Minute):
		t.Fatal("the upload did not reach the SIGTERM point")
	}
	time.Sleep(500 * time.Millisecond)
	start := time.Now()
	if err := srv1.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// The PATCH must end while the client is still (slowly) sending.
	var r1 patchResult
	select {
	case r1 = <-res:
	case <-time.After(15 * time.Second):
		t.Fatal("the PATCH did not end within 15 s of SIGTERM")
	}
	patchEnded := time.Since(start)
	select {
	case <-srv1.done:
	case <-time.After(15 * time.Second):
		t.Fatal("the process did not exit within 15 s of SIGTERM")
	}
	exited := time.Since(start)
	close(gate.stop)
	t.Logf("SIGTERM: PATCH ended after %v (status %d, err %v, body %q), process exited after %v (%v); client had sent %s",
		patchEnded.Round(time.Millisecond), r1.status, r1.err, r1.body, exited.Round(time.Millisecond), srv1.waitErr, mb(r1.sent))
	switch {
	case r1.err == nil && r1.status == http.StatusServiceUnavailable:
	case r1.err != nil && !errors.Is(r1.err, errGateStopped):
		// A closed connection is acceptable too.
	default:
		t.Errorf("PATCH during shutdown: status %d err %v; want 503 or a closed connection", r1.status, r1.err)
	}
	if exited > 3500*time.Millisecond {
		t.Errorf("the process took %v to exit after SIGTERM; want ~3 s at most", exited)
	}
	var ee *exec.ExitError
	if srv1.waitErr != nil && !errors.As(srv1.waitErr, &ee) {
		t.Errorf("wait: %v", srv1.waitErr)
	} else if srv1.waitErr != nil {
		t.Errorf("the process exited with %v after SIGTERM, want status 0", srv1.waitErr)
	}

	srv2 := startServer(t, data)
	loc2 := rebase(loc, srv2.base)
	off, hst, herr := tc.head(loc2)
	if herr != nil || hst != http.StatusOK {
		t.Fatalf("HEAD after restart: %d %v", hst, herr)
	}
	t.Logf("after restart HEAD offset %s of %s sent", mb(off), mb(r1.sent))
	if off <= 0 || off > r1.sent {
		t.Fatalf("offset after restart %d, want in (0, %d]", off, r1.sent)
	}
	if off < pauseAt-(1<<20) {
		t.Errorf("offset %d after a graceful shutdown: the open segment (up to %d) was not committed", off, pauseAt)
	}
	r2 := tc.patch(loc2, off, io.Reader(src.reader(off)), size-off)
	if r2.err != nil || r2.status != http.StatusNoContent || r2.offset != size {
		t.Fatalf("resume PATCH: %d %d %v %s", r2.status, r2.offset, r2.err, r2.body)
	}
	total := r1.sent + r2.sent
	t.Logf("file %s: sent %s in total (%.3f×)", mb(size), mb(total), float64(total)/float64(size))
	if float64(total) > 1.1*float64(size) {
		t.Errorf("sent %d bytes for %d: more than 1.1×", total, size)
	}
	access, _ := srv2.finish(t, c)
	session := srv2.unlock(t, access, pw)
	srv2.download(t, session, srv2.contents(t, session).file(t, name), src)

	srv2.stop(t)
	secrets := []string{pw, msg, name, marker, access, session, c.UploadToken}
	assertNotInLogs(t, []*server{srv1, srv2}, secrets...)
	assertNotInData(t, data, secrets...)
}
