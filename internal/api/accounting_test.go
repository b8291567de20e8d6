package api_test

import (
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kluis-nl/kluis"
	"github.com/kluis-nl/kluis/internal/audit"
	"github.com/kluis-nl/kluis/internal/mail"
	"github.com/kluis-nl/kluis/internal/transfer"
)

// Download accounting over HTTP (issue 11 item 4): every answer that sends
// bytes is one audit entry with the ranges sent; a file counts as
// downloaded for a recipient once the ranges sent to them cover it, and
// then gets one downloads record and one notice to the sender.

// newAccountEnv is newAuditEnv; the server queues download notices in its
// outbox, as in production.
func newAccountEnv(t *testing.T) *auditEnv {
	t.Helper()
	return newAuditEnv(t)
}

// notifying is a ready transfer whose sender asked for download notices,
// with random files of the given sizes, unlocked once.
func (e *auditEnv) notifying(sizes ...int) *shared {
	e.t.Helper()
	const pw = "Vrolijk-Paarse-Olifant-42"
	c, err := e.svc.Create(e.ctx, transfer.CreateRequest{
		SenderEmail: "afzender@example.nl", SenderName: "Afzender", SenderLang: "en", To: []string{"ontvanger@example.nl"},
		PasswordMode: kluis.PasswordManual, Password: pw, Options: kluis.Options{Notify: kluis.NotifyEach},
	})
	if err != nil {
		e.t.Fatal(err)
	}
	s := &shared{c: created{ID: c.Transfer.ID, UploadToken: c.UploadToken, Password: pw}}
	for i, n := range sizes {
		d := randomBytes(uint64(1000+i*31+n), n)
		s.data = append(s.data, d)
		s.files = append(s.files, e.put(s.c, fmt.Sprintf("bestand-%d.bin", i), d))
	}
	s.access = e.finish(s.c)
	s.session = e.unlock(s.access[0], pw)
	return s
}

// notices returns the subjects of the download notices sent so far,
// oldest first: once the server's outbox has delivered everything queued,
// from its development mailbox.
func (e *auditEnv) notices() []string {
	e.t.Helper()
	var out []string
	for _, m := range e.app.Delivered(mail.KindDownload, "") {
		if m.To != "afzender@example.nl" {
			e.t.Errorf("download notice to %q, want the sender", m.To)
		}
		out = append([]string{m.Subject}, out...)
	}
	return out
}

// downloaded returns the file indexes recorded as downloaded by the first
// recipient, from the sender's view of the transfer.
func (e *auditEnv) downloaded(id string) []int {
	e.t.Helper()
	var tr struct {
		Recipients []struct {
			Downloads []struct {
				FileIndex int `json:"file_index"`
			} `json:"downloads"`
		} `json:"recipients"`
	}
	e.jsonOK(e.req("GET", "/api/v1/transfers/"+id, e.apiKey, nil, nil), http.StatusOK, &tr)
	out := []int{}
	for _, d := range tr.Recipients[0].Downloads {
		out = append(out, d.FileIndex)
	}
	slices.Sort(out)
	return out
}

// downloadEntries returns the audit entries of download answers.
func (e *auditEnv) downloadEntries() []audit.Entry {
	e.t.Helper()
	var out []audit.Entry
	for _, a := range e.entries() {
		if a.Action == audit.FileDownload || a.Action == audit.ZipDownload {
			out = append(out, a)
		}
	}
	return out
}

// settled waits until there are n download audit entries and returns them.
// A handler records its answer after writing the last byte, so a client
// can have read the whole body a moment before the entry commits.
func (e *auditEnv) settled(n int) []audit.Entry {
	e.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		entries := e.downloadEntries()
		if len(entries) >= n || time.Now().After(deadline) {
			return entries
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// fetch downloads path with an optional Range and returns status and body;
// a body that breaks off is returned as far as it came, with the error.
func (e *auditEnv) fetch(path, session, rng string) (int, []byte, error) {
	e.t.Helper()
	var h map[string]string
	if rng != "" {
		h = map[string]string{"Range": rng}
	}
	resp, err := e.try("GET", path, session, h, nil)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// TestRangeDownloadsAreAccounted: Range answers leave audit entries with
// their ranges; the file counts as downloaded when the ranges together
// cover it (a resumed download), once, with one notice.
func TestRangeDownloadsAreAccounted(t *testing.T) {
	t.Parallel()
	e := newAccountEnv(t)
	const size = 300_001
	s := e.notifying(size)
	path := "/api/v1/session/files/" + s.files[0].ID
	steps := []struct {
		rng        string
		bytes      string // the ranges in the audit detail
		downloaded bool   // after this answer
	}{
		{"bytes=-1", "300000-300000", false}, // a peek at the end is not a download
		{"bytes=0-99999", "0-99999", false},
		{"bytes=100000-", "100000-300000", true}, // the rest: a resumed download
		{"", "0-300000", true},
		{"bytes=0-", "0-300000", true},
		{"bytes=0-9,1000-1009", "0-9,1000-1009", true},
	}
	for i, st := range steps {
		status, body, err := e.fetch(path, s.session, st.rng)
		if err != nil || (status != http.StatusOK && status != http.StatusPartialContent) {
			t.Fatalf("%q: status %d, %v", st.rng, status, err)
		}
		if st.rng == "" && len(body) != size {
			t.Fatalf("whole file: %d bytes", len(body))
		}
		entries := e.settled(i + 1)
		if len(entries) != i+1 {
			t.Fatalf("after %d download answers (last %q): %d audit entries, want one per answer", i+1, st.rng, len(entries))
		}
		last := entries[len(entries)-1]
		want := fmt.Sprintf("file_index=0 size=%d bytes=%s", size, st.bytes)
		if last.Actor != "recipient:1" || last.Object != s.c.ID || last.Result != audit.OK || last.Detail != want {
			t.Errorf("%q: audit entry %+v, want detail %q", st.rng, last, want)
		}
		got := e.downloaded(s.c.ID)
		notices := e.notices()
		if st.downloaded {
			if !slices.Equal(got, []int{0}) || len(notices) != 1 {
				t.Errorf("after %q: downloads %v and %d notices, want [0] and 1", st.rng, got, len(notices))
			}
		} else if len(got) != 0 || len(notices) != 0 {
			t.Errorf("after %q: downloads %v and %d notices; a partial download is not a download", st.rng, got, len(notices))
		}
	}
	if n := e.notices(); len(n) == 1 && !strings.Contains(n[0], "downloaded a file") {
		t.Errorf("notice subject %q", n[0])
	}
}

// TestZipCountsEveryFile: a ZIP sends every file whole, so each counts as
// downloaded; the notice names all files when the ZIP is the first
// download of each, and otherwise only the files that are new.
func TestZipCountsEveryFile(t *testing.T) {
	t.Parallel()
	e := newAccountEnv(t)

	// The ZIP first: one notice for all files.
	s := e.notifying(120_000, 5_000, 0)
	status, zb, err := e.fetch("/api/v1/session/zip", s.session, "")
	if err != nil || status != http.StatusOK {
		t.Fatalf("zip: %d %v", status, err)
	}
	if got := e.downloaded(s.c.ID); !slices.Equal(got, []int{0, 1, 2}) {
		t.Errorf("after the ZIP: downloads %v, want every file [0 1 2]", got)
	}
	if n := e.notices(); len(n) != 1 || !strings.Contains(n[0], "all files") {
		t.Errorf("after the ZIP: notices %q, want one for all files", n)
	}
	entries := e.settled(1)
	if len(entries) != 1 || entries[0].Action != audit.ZipDownload || entries[0].Detail != "files=0-2" || entries[0].Result != audit.OK {
		t.Errorf("audit entries %+v, want one zip.download with files=0-2", entries)
	}
	// Again, and a file on its own: no more notices.
	e.fetch("/api/v1/session/zip", s.session, "")
	e.fetch("/api/v1/session/files/"+s.files[1].ID, s.session, "")
	e.settled(3)
	if n := e.notices(); len(n) != 1 {
		t.Errorf("after downloading again: %d notices, want still 1", len(n))
	}
	if len(zb) < 125_000 {
		t.Errorf("zip of %d bytes", len(zb))
	}

	// One file first, then the ZIP: the ZIP's notices name only the files
	// that are new.
	s2 := e.notifying(70_000, 80_000)
	before := len(e.notices())
	e.fetch("/api/v1/session/files/"+s2.files[1].ID, s2.session, "")
	e.fetch("/api/v1/session/zip", s2.session, "")
	e.settled(5)
	if got := e.downloaded(s2.c.ID); !slices.Equal(got, []int{0, 1}) {
		t.Errorf("second transfer: downloads %v, want [0 1]", got)
	}
	// (The fake clock stands still, so notices have no order; count them.)
	n := e.notices()
	all := 0
	for _, x := range n {
		if strings.Contains(x, "all files") {
			all++
		}
	}
	if len(n) != before+2 || all != 1 {
		t.Errorf("second transfer: notices %q, want one per file of it (2 more, none for all files)", n)
	}
}

// TestParallelRangesNotifyOnce: parallel answers (a download manager's
// ranges and whole downloads at once) make the file downloaded once: one
// record, one notice, one audit entry per answer.
func TestParallelRangesNotifyOnce(t *testing.T) {
	t.Parallel()
	e := newAccountEnv(t)
	const size, pieces = 400_000, 8
	s := e.notifying(size)
	path := "/api/v1/session/files/" + s.files[0].ID
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range pieces {
		rng := fmt.Sprintf("bytes=%d-%d", i*size/pieces, (i+1)*size/pieces-1)
		for _, r := range []string{rng, ""} {
			wg.Go(func() {
				<-start
				if status, _, err := e.fetch(path, s.session, r); err != nil || (status != http.StatusOK && status != http.StatusPartialContent) {
					t.Errorf("%q: %d %v", r, status, err)
				}
			})
		}
	}
	close(start)
	wg.Wait()
	entries := e.settled(2 * pieces)
	if got := e.downloaded(s.c.ID); !slices.Equal(got, []int{0}) {
		t.Errorf("downloads %v, want [0] once", got)
	}
	if n := e.notices(); len(n) != 1 {
		t.Errorf("%d notices after %d parallel answers, want 1", len(n), 2*pieces)
	}
	if n := len(entries); n != 2*pieces {
		t.Errorf("%d audit entries, want %d (one per answer)", n, 2*pieces)
	}
}

// TestAbortedDownloadIsAccounted: an answer that breaks off at damaged data
// is still an audit entry (result "aborted", with the bytes sent), and the
// file does not count as downloaded.
func TestAbortedDownloadIsAccounted(t *testing.T) {
	t.Parallel()
	e := newAccountEnv(t)
	s := e.notifying(350_000)
	flip(t, e.segmentPaths(s.c.ID, s.files[0].ID)[2], 5000)
	status, body, err := e.fetch("/api/v1/session/files/"+s.files[0].ID, s.session, "")
	if status != http.StatusOK || err == nil {
		t.Fatalf("status %d, error %v: want a 200 that breaks off", status, err)
	}
	entries := e.settled(1)
	if len(entries) != 1 {
		t.Fatalf("%d audit entries for an aborted download, want 1", len(entries))
	}
	var last int
	if _, err := fmt.Sscanf(entries[0].Detail, "file_index=0 size=350000 bytes=0-%d", &last); err != nil || entries[0].Result != audit.Aborted {
		t.Fatalf("audit entry %+v, want result aborted and the bytes sent", entries[0])
	}
	if last+1 < len(body) || last >= 200_000 {
		t.Errorf("audit says bytes 0-%d were sent; the client got %d, and segment 2 (from 200,000) is damaged", last, len(body))
	}
	if got := e.downloaded(s.c.ID); len(got) != 0 {
		t.Errorf("downloads %v after an aborted download", got)
	}
	if n := e.notices(); len(n) != 0 {
		t.Errorf("%d notices after an aborted download", len(n))
	}
}
