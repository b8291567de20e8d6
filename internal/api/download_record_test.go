package api_test

import (
	"bytes"
	"context"
	"database/sql"
	"io"
	"net/http"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/kluis-nl/kluis/internal/transfer"
)

// TestDownloadRecordedBeforeItsLastByte: a whole download is recorded (and
// its notice to the sender queued) before the client has its last byte.
// The download used to be recorded after the response had been sent, so a
// process killed between the two (or a database slow to commit) let a
// client have the whole file while no record, and no notice, existed:
// security.md #33 wants every completed download to reach the sender.
// Found by the nemesis (e2e/nemesis_test.go). The test holds the database's
// write lock, so the record cannot commit, and checks that the client does
// not get the whole file meanwhile. The range cases complete a file that
// an earlier Range request sent part of: by one more range, and by a
// multi-range request (multipart/byteranges).
func TestDownloadRecordedBeforeItsLastByte(t *testing.T) {
	for _, what := range []string{"file", "zip", "empty file", "range", "multipart"} {
		t.Run(what, func(t *testing.T) {
			e := newAPIEnv(t)
			var sh *shared
			if what == "empty file" {
				// Through the engine: the OpenAPI check of this suite's
				// client does not take an empty PUT body.
				sh = &shared{c: e.create("bericht")}
				o := transfer.Owner{TransferID: sh.c.ID}
				f, err := e.svc.NewFile(e.ctx, o, "a.bin", "application/octet-stream", 0)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := e.svc.CompleteFile(e.ctx, o, f.ID); err != nil {
					t.Fatal(err)
				}
				sh.files = []fileJSON{{ID: f.ID}}
				sh.access = e.finish(sh.c)
				sh.session = e.unlock(sh.access[0], sh.c.Password)
			} else {
				sh = e.shared([]string{"a.bin"}, []int{700_000})
			}
			path := "/api/v1/session/files/" + sh.files[0].ID
			if what == "zip" {
				path = "/api/v1/session/zip"
			}
			// The range cases: part of the file went out earlier; the
			// request under the lock sends the rest, more than one
			// buffer's worth (256 KiB) after a gap.
			earlier, rest, wantStatus := "", "", http.StatusOK
			switch what {
			case "range":
				earlier, rest, wantStatus = "bytes=0-99999", "bytes=100000-", http.StatusPartialContent
			case "multipart":
				earlier, rest, wantStatus = "bytes=100000-149999", "bytes=0-99999,150000-", http.StatusPartialContent
			}
			if earlier != "" {
				req, _ := http.NewRequest("GET", e.url+path, nil)
				req.Header.Set("Authorization", "Bearer "+sh.session)
				req.Header.Set("Range", earlier)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				_, err = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if err != nil || resp.StatusCode != http.StatusPartialContent {
					t.Fatalf("the earlier range: %d %v", resp.StatusCode, err)
				}
			}

			db, err := sql.Open("sqlite", "file:"+filepath.Join(e.dir, "kluis.db")+"?_pragma=busy_timeout(5000)")
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			ctx := context.Background()
			lock, err := db.Conn(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer lock.Close()
			if _, err := lock.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
				t.Fatal(err)
			}
			locked := true
			unlock := func() {
				if locked {
					locked = false
					if _, err := lock.ExecContext(ctx, "ROLLBACK"); err != nil {
						t.Fatal(err)
					}
				}
			}
			defer unlock()

			var got atomic.Int64
			var mu sync.Mutex
			var body []byte
			done := make(chan error, 1)
			var status int
			go func() {
				req, _ := http.NewRequest("GET", e.url+path, nil)
				req.Header.Set("Authorization", "Bearer "+sh.session)
				if rest != "" {
					req.Header.Set("Range", rest)
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					done <- err
					return
				}
				defer resp.Body.Close()
				status = resp.StatusCode
				buf := make([]byte, 32<<10)
				for {
					n, err := resp.Body.Read(buf)
					got.Add(int64(n))
					mu.Lock()
					body = append(body, buf[:n]...)
					mu.Unlock()
					if err == io.EOF {
						done <- nil
						return
					}
					if err != nil {
						done <- err
						return
					}
				}
			}()
			select {
			case err := <-done:
				t.Fatalf("the whole %s (%d bytes, status %d, err %v) arrived while its download could not be recorded", what, got.Load(), status, err)
			case <-time.After(1500 * time.Millisecond):
			}
			// A ZIP is sent chunked: without the last chunk the response
			// is not over, but the client may already hold every byte of
			// the archive, up to its end-of-central-directory record.
			mu.Lock()
			eocd := bytes.Contains(body, []byte("PK\x05\x06"))
			mu.Unlock()
			if eocd {
				t.Fatalf("the client holds the whole ZIP (%d bytes) while its download could not be recorded", got.Load())
			}
			unlock()
			select {
			case err := <-done:
				if err != nil || status != wantStatus {
					t.Fatalf("download after the database was free again: status %d, %v", status, err)
				}
			case <-time.After(20 * time.Second):
				t.Fatal("the download did not end after the database was free again")
			}
			ov, err := e.svc.Overview(ctx, transfer.Owner{TransferID: sh.c.ID})
			if err != nil {
				t.Fatal(err)
			}
			if n := len(ov.Recipients[0].Downloads); n != 1 {
				t.Errorf("%d downloads recorded, want 1", n)
			}
		})
	}
}
