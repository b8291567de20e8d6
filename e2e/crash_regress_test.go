package e2e

// Regression tests for what the nemesis (nemesis_test.go) found, each at
// the one moment that matters, without the nemesis's randomness.

import (
	"io"
	"net"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/kluis-nl/kluis/internal/store/storetest"
)

// TestKilledPlainUploadKeepsNothing kills the server while a plain PUT
// streams, after one segment was committed. The docs promise that a
// failed plain upload keeps nothing; the killed process left the file's
// row and segment, which nobody can name or resume, and finish refused the
// transfer for good ("File 1 of 1 has not been uploaded completely yet").
func TestKilledPlainUploadKeepsNothing(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	srv1 := startServer(t, data)
	msg := uniq("msg-")
	c := srv1.create(t, password{Mode: "generate"}, msg)
	kept := newSource(81, 50_000, "")
	if st, code := srv1.plainUpload(t, c, "kept.bin", kept, false); st != http.StatusCreated {
		t.Fatalf("plain upload: %d %s", st, code)
	}

	src := newSource(80, 40<<20, "")
	gate := newGate(src.reader(0), 20<<20) // one 16 MiB segment committed, the next open
	req, _ := http.NewRequest("PUT", srv1.base+"/api/v1/transfers/"+c.ID+"/files", gate)
	req.ContentLength = src.size
	req.Header.Set("Authorization", "Bearer "+c.UploadToken)
	req.Header.Set("Kluis-File-Name", url.PathEscape("cut.bin"))
	done := make(chan error, 1)
	go func() {
		resp, err := hc.Do(req)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusCreated {
				err = nil
				done <- errUnexpectedSuccess
				return
			}
		}
		done <- err
	}()
	select {
	case <-gate.paused:
	case err := <-done:
		t.Fatalf("the PUT ended before the kill: %v", err)
	case <-time.After(2 * time.Minute):
		t.Fatal("the PUT did not reach the kill point")
	}
	// The server commits the first segment while the client pauses.
	deadline := time.Now().Add(30 * time.Second)
	for len(blobFiles(t, data, c.ID)) < 2 {
		if time.Now().After(deadline) {
			t.Fatal("the first segment of the PUT was not committed within 30 s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	srv1.kill9(t)
	close(gate.stop)
	if err := <-done; err == errUnexpectedSuccess {
		t.Fatal("the PUT succeeded although the server was killed")
	}

	srv2 := startServer(t, data)
	access, _ := srv2.finish(t, c) // fails the test while the cut PUT blocks it
	sess := srv2.unlock(t, access, c.Password)
	cont := srv2.contents(t, sess)
	if len(cont.Files) != 1 || cont.Files[0].Name != "kept.bin" {
		t.Fatalf("files after finish: %+v, want only kept.bin", cont.Files)
	}
	if cont.Message != msg {
		t.Errorf("message %q, want %q", cont.Message, msg)
	}
	srv2.download(t, sess, cont.Files[0], kept)
	if n := len(blobFiles(t, data, c.ID)); n != 1 {
		t.Errorf("%d blobs under the transfer after finish, want 1 (kept.bin): the cut PUT left its segment", n)
	}
}

var errUnexpectedSuccess = errorString("unexpected success")

type errorString string

func (e errorString) Error() string { return string(e) }

// TestMailClaimedByKilledServerGoesOutAfterRestart kills the server while
// its outbox is sending a mail (the relay accepted the connection and says
// nothing). The row stayed claimed for the 3-minute outbox lease, so after
// a restart the mail (here a verification code, valid 10 minutes) waited
// 3 minutes: on SQLite, where no other process can be sending it, until
// the restart ended every claim; on PostgreSQL, where other instances may
// be sending, until a claim recorded its instance, which PostgreSQL shows
// dead once its session ends (store.DB.ClaimOutbox).
func TestMailClaimedByKilledServerGoesOutAfterRestart(t *testing.T) {
	t.Parallel()
	for _, db := range []string{"SQLite", "PostgreSQL"} {
		t.Run(db, func(t *testing.T) {
			t.Parallel()
			var args []string
			if db == "PostgreSQL" {
				args = []string{"--db", storetest.Postgres(t)}
			}
			mailClaimedByKilledServer(t, args...)
		})
	}
}

func mailClaimedByKilledServer(t *testing.T, args ...string) {
	// A relay that accepts connections and never answers.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	accepted := make(chan net.Conn, 16)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		for {
			select {
			case c := <-accepted:
				c.Close()
			default:
				return
			}
		}
	})

	data := t.TempDir()
	srv1 := startServer(t, data, append([]string{"--smtp", "smtp://" + ln.Addr().String() + "?tls=none", "--mail-from", "Kluis Test <kluis@example.nl>"}, args...)...)
	addr := uniq("code-") + "@example.nl"
	if st, code := call(t, "POST", srv1.base+"/api/v1/verify", "", map[string]string{"email": addr, "name": "Test", "lang": "nl"}, nil); st != http.StatusAccepted {
		t.Fatalf("POST /verify: %d %s", st, code)
	}
	select {
	case c := <-accepted:
		accepted <- c // closed in the cleanup
	case <-time.After(20 * time.Second):
		t.Fatal("the outbox did not connect to the relay within 20 s")
	}
	time.Sleep(200 * time.Millisecond)
	srv1.kill9(t)

	mp := startMailpit(t)
	startServer(t, data, append([]string{"--smtp", mp.smtpURL(), "--mail-from", "Kluis Test <kluis@example.nl>"}, args...)...)
	began := time.Now()
	mp.waitMail(t, 30*time.Second, "the code mail the killed server had claimed", func(ms []*mpMessage) bool {
		return len(mailsTo(ms, addr)) == 1
	})
	t.Logf("the mail arrived %v after the restart", time.Since(began).Round(time.Millisecond))
}
