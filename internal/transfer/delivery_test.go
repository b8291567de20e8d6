package transfer_test

import (
	"encoding/json"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kluis-nl/kluis"
	"github.com/kluis-nl/kluis/internal/audit"
	"github.com/kluis-nl/kluis/internal/mail"
	"github.com/kluis-nl/kluis/internal/store"
	"github.com/kluis-nl/kluis/internal/transfer"
)

// accounting is an env whose engine records audit entries and queues mail
// in the real outbox, with a transfer whose sender asked for download
// notices.
type accounting struct {
	*env
	r       *ready
	entries int // download audit entries seen so far
}

func newAccounting(t *testing.T, newEnv envMaker, sizes ...int) *accounting {
	t.Helper()
	return newAccountingWith(t, newEnv, kluis.Options{Notify: kluis.NotifyEach}, sizes...)
}

func newAccountingWith(t *testing.T, newEnv envMaker, opts kluis.Options, sizes ...int) *accounting {
	t.Helper()
	e := newEnv(t)
	r := e.readyTransfer(createOpts{to: []string{"een@example.nl", "twee@example.nl"}, options: opts}, sizes...)
	return &accounting{env: e, r: r}
}

// newNotices returns the download notices queued since the last call,
// opened as the mail worker opens them.
func (a *accounting) newNotices() []mail.Message {
	a.t.Helper()
	return a.newMail(mail.KindDownload)
}

// newMail returns the mails of kind queued since the last call (mails of
// other kinds claimed meanwhile are dropped).
func (a *accounting) newMail(kind mail.Kind) []mail.Message {
	a.t.Helper()
	rows, err := a.db.ClaimOutbox(a.ctx, a.clock.Now(), time.Hour, 1000)
	if err != nil {
		a.t.Fatal(err)
	}
	var out []mail.Message
	for _, row := range rows {
		plain, err := a.keys.Open("outbox.mail", row.ID, row.Sealed)
		if err != nil {
			a.t.Fatal(err)
		}
		var m mail.Message
		if err := json.Unmarshal(plain, &m); err != nil {
			a.t.Fatal(err)
		}
		if m.Kind == kind {
			out = append(out, m)
		}
	}
	return out
}

// downloaded returns, per recipient id, the file indexes recorded as
// downloaded.
func (a *accounting) downloaded() map[int64][]int {
	a.t.Helper()
	ds, err := a.db.Downloads(a.ctx, a.r.c.Transfer.ID)
	if err != nil {
		a.t.Fatal(err)
	}
	out := map[int64][]int{}
	for _, d := range ds {
		out[d.RecipientID] = append(out[d.RecipientID], d.FileIndex)
	}
	for k := range out {
		slices.Sort(out[k])
	}
	return out
}

// newEntries returns the download audit entries since the last call.
func (a *accounting) newEntries() []store.AuditRow {
	a.t.Helper()
	var all []store.AuditRow
	for _, r := range a.auditEntries(nil) {
		if r.Action == audit.FileDownload || r.Action == audit.ZipDownload {
			all = append(all, r)
		}
	}
	out := all[a.entries:]
	a.entries = len(all)
	return out
}

func (a *accounting) deliver(s *transfer.Session, d transfer.Delivery) {
	a.t.Helper()
	if err := a.svc.RecordDelivery(a.ctx, s, d); err != nil {
		a.t.Fatalf("record delivery: %v", err)
	}
}

func file(index int, size int64, spans ...transfer.Span) transfer.Delivery {
	return transfer.Delivery{Complete: true, Files: []transfer.Served{{Index: index, Size: size, Spans: spans}}}
}

// TestDeliveryAccounting is the engine's side of issue 11 item 4, on
// SQLite and PostgreSQL: a file counts as downloaded once the ranges sent
// to a recipient cover it, then once; each answer is one audit entry with
// its ranges; the ZIP counts every file.
func TestDeliveryAccounting(t *testing.T) {
	forEachDB(t, func(t *testing.T, newEnv envMaker) {
		const big = 250_000
		a := newAccounting(t, newEnv, big, 1_000, 0)
		s := a.r.sess
		me := s.RecipientID()
		a.newNotices() // the notifications of Finish

		steps := []struct {
			name       string
			d          transfer.Delivery
			detail     string
			downloaded []int // of this recipient, after the step
			notices    int   // new download notices
		}{
			{"the end only", file(0, big, transfer.Span{Start: big - 1, End: big}), "file_index=0 size=250000 bytes=249999-249999", nil, 0},
			{"the start", file(0, big, transfer.Span{Start: 0, End: 100_000}), "file_index=0 size=250000 bytes=0-99999", nil, 0},
			{"the gap, in two ranges", file(0, big, transfer.Span{Start: 100_000, End: 180_000}, transfer.Span{Start: 170_000, End: big - 1}), "file_index=0 size=250000 bytes=100000-249998", []int{0}, 1},
			{"all of it again", file(0, big, transfer.Span{Start: 0, End: big}), "file_index=0 size=250000 bytes=0-249999", []int{0}, 0},
			{"an empty file, whole", file(2, 0), "file_index=2 size=0 bytes=", []int{0, 2}, 1},
			{"a ZIP: only file 1 is new", transfer.Delivery{Zip: true, Complete: true, Files: []transfer.Served{
				{Index: 0, Size: big, Spans: []transfer.Span{{Start: 0, End: big}}},
				{Index: 1, Size: 1_000, Spans: []transfer.Span{{Start: 0, End: 1_000}}},
				{Index: 2, Size: 0},
			}}, "files=0-2", []int{0, 1, 2}, 1},
		}
		for _, st := range steps {
			a.deliver(s, st.d)
			entries := a.newEntries()
			if len(entries) != 1 || entries[0].Detail != st.detail || entries[0].Result != audit.OK || entries[0].Actor != audit.Recipient(me) {
				t.Errorf("%s: audit entries %+v, want one with %q", st.name, entries, st.detail)
			}
			if got := a.downloaded()[me]; !slices.Equal(got, st.downloaded) {
				t.Errorf("%s: downloaded %v, want %v", st.name, got, st.downloaded)
			}
			n := a.newNotices()
			if len(n) != st.notices {
				t.Errorf("%s: %d new notices, want %d", st.name, len(n), st.notices)
			}
			for _, m := range n {
				if m.To != "afzender@example.nl" || !strings.Contains(m.Subject, "een bestand") {
					t.Errorf("%s: notice to %s %q", st.name, m.To, m.Subject)
				}
			}
		}

		// The other recipient: a ZIP that breaks off in file 0 is an
		// aborted entry and no download; a whole ZIP then is one notice
		// for all files.
		other := a.unlock(a.r.fin.Links[1].AccessID, secretOf(a.r.c))
		a.deliver(other, transfer.Delivery{Zip: true, Files: []transfer.Served{{Index: 0, Size: big, Spans: []transfer.Span{{Start: 0, End: 70_000}}}}})
		if e := a.newEntries(); len(e) != 1 || e[0].Result != audit.Aborted || e[0].Detail != "files= partial=0:0-69999" {
			t.Errorf("aborted ZIP: entries %+v", e)
		}
		if got := a.downloaded()[other.RecipientID()]; len(got) != 0 {
			t.Errorf("aborted ZIP: downloaded %v", got)
		}
		a.deliver(other, transfer.Delivery{Zip: true, Complete: true, Files: []transfer.Served{
			{Index: 0, Size: big, Spans: []transfer.Span{{Start: 0, End: big}}},
			{Index: 1, Size: 1_000, Spans: []transfer.Span{{Start: 0, End: 1_000}}},
			{Index: 2, Size: 0},
		}})
		if n := a.newNotices(); len(n) != 1 || !strings.Contains(n[0].Subject, "alle bestanden") {
			t.Errorf("whole ZIP first: notices %+v, want one for all files", n)
		}
		if got := a.downloaded()[other.RecipientID()]; !slices.Equal(got, []int{0, 1, 2}) {
			t.Errorf("whole ZIP: downloaded %v", got)
		}
	})
}

// TestDeliveryFragments: what a recipient was sent of a file is tracked as
// merged pieces, per recipient; Fragments tells how many a further answer
// would leave.
func TestDeliveryFragments(t *testing.T) {
	forEachDB(t, func(t *testing.T, newEnv envMaker) {
		a := newAccounting(t, newEnv, 100_000)
		s := a.r.sess
		a.deliver(s, file(0, 100_000, transfer.Span{Start: 0, End: 10}, transfer.Span{Start: 50, End: 60}))
		for _, tc := range []struct {
			spans []transfer.Span
			want  int
		}{
			{nil, 2},
			{[]transfer.Span{{Start: 5, End: 55}}, 1},
			{[]transfer.Span{{Start: 10, End: 50}}, 1},
			{[]transfer.Span{{Start: 100, End: 200}, {Start: 300, End: 400}}, 4},
			{[]transfer.Span{{Start: 0, End: 100_000}}, 1},
		} {
			if got, err := a.svc.Fragments(a.ctx, s, 0, tc.spans); err != nil || got != tc.want {
				t.Errorf("Fragments(%v) = %d, %v; want %d", tc.spans, got, err, tc.want)
			}
		}
		other := a.unlock(a.r.fin.Links[1].AccessID, secretOf(a.r.c))
		if got, err := a.svc.Fragments(a.ctx, other, 0, []transfer.Span{{Start: 100, End: 200}}); err != nil || got != 1 {
			t.Errorf("another recipient's pieces: %d, %v; want 1", got, err)
		}
	})
}

// TestDeliveryParallel: parallel answers (a download manager's ranges;
// whole downloads at once) make a file downloaded exactly once: one record
// and one notice, however the answers interleave.
func TestDeliveryParallel(t *testing.T) {
	forEachDB(t, func(t *testing.T, newEnv envMaker) {
		const size, pieces = 200_000, 10
		a := newAccounting(t, newEnv, size, size)
		a.newNotices()
		s := a.r.sess
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range pieces {
			wg.Go(func() {
				<-start
				d := file(0, size, transfer.Span{Start: int64(i) * size / pieces, End: int64(i+1) * size / pieces})
				if err := a.svc.RecordDelivery(a.ctx, s, d); err != nil {
					t.Error(err)
				}
			})
			wg.Go(func() {
				<-start
				if err := a.svc.RecordDelivery(a.ctx, s, file(1, size, transfer.Span{Start: 0, End: size})); err != nil {
					t.Error(err)
				}
			})
		}
		close(start)
		wg.Wait()
		if got := a.downloaded()[s.RecipientID()]; !slices.Equal(got, []int{0, 1}) {
			t.Errorf("downloaded %v, want [0 1], each once", got)
		}
		if n := a.newNotices(); len(n) != 2 {
			t.Errorf("%d notices, want 2 (one per file)", len(n))
		}
		if e := a.newEntries(); len(e) != 2*pieces {
			t.Errorf("%d audit entries, want %d", len(e), 2*pieces)
		}
		if got, err := a.svc.Fragments(a.ctx, s, 0, nil); err != nil || got != 1 {
			t.Errorf("pieces of file 0 after all ranges: %d, %v; want 1", got, err)
		}
	})
}

// TestDeliveryAfterPurge: an answer that ends after the purge of its
// transfer is still accounted for, without writing served ranges back.
func TestDeliveryAfterPurge(t *testing.T) {
	forEachDB(t, func(t *testing.T, newEnv envMaker) {
		a := newAccounting(t, newEnv, 5_000)
		a.newNotices()
		s := a.r.sess
		a.deliver(s, file(0, 5_000, transfer.Span{Start: 0, End: 1_000}))
		if err := a.svc.Revoke(a.ctx, owner(a.r.c), ""); err != nil {
			t.Fatal(err)
		}
		if _, err := a.svc.Purge(a.ctx); err != nil {
			t.Fatal(err)
		}
		a.newNotices() // revocation notices
		a.newEntries()
		a.deliver(s, file(0, 5_000, transfer.Span{Start: 1_000, End: 5_000}))
		if e := a.newEntries(); len(e) != 1 || e[0].Detail != "file_index=0 size=5000 bytes=1000-4999" {
			t.Errorf("entries after the purge: %+v", e)
		}
		if got, err := a.svc.Fragments(a.ctx, s, 0, nil); err != nil || got != 0 {
			t.Errorf("served pieces after the purge: %d, %v; want none kept", got, err)
		}
		if got := a.downloaded()[s.RecipientID()]; len(got) != 0 {
			t.Errorf("downloaded %v: the ranges before the purge are gone, and this answer alone is not the whole file", got)
		}
		a.deliver(s, file(0, 5_000, transfer.Span{Start: 0, End: 5_000}))
		if got := a.downloaded()[s.RecipientID()]; !slices.Equal(got, []int{0}) {
			t.Errorf("a whole answer that ended after the purge: downloaded %v, want [0]", got)
		}
		n := a.newNotices()
		if len(n) != 1 || !strings.Contains(n[0].Subject, "een bestand") {
			t.Errorf("notices %+v", n)
		}
	})
}

// TestDeliveryDuringPurge: answers recorded while the purge runs leave no
// served ranges behind it, on SQLite and PostgreSQL. A recording holds the
// transfer's row shared until it commits, so the purge waits for it (and
// then deletes its ranges), or the recording waits for the purge and sees
// it; without that lock a recording that read the transfer just before
// the purge committed wrote its ranges after it.
func TestDeliveryDuringPurge(t *testing.T) {
	forEachDB(t, func(t *testing.T, newEnv envMaker) {
		e := newEnv(t)
		const size, pieces = 100_000, 12
		for round := range 12 {
			r := e.readyTransfer(createOpts{}, size)
			if err := e.svc.Revoke(e.ctx, owner(r.c), ""); err != nil {
				t.Fatal(err)
			}
			errs := parallel(pieces+1, func(i int) error {
				if i == pieces {
					_, err := e.svc.Purge(e.ctx)
					return err
				}
				return e.svc.RecordDelivery(e.ctx, r.sess, file(0, size, transfer.Span{Start: int64(i) * size / pieces, End: int64(i+1) * size / pieces}))
			})
			for _, err := range errs {
				if err != nil {
					t.Fatal(err)
				}
			}
			if row, err := e.db.Transfer(e.ctx, r.c.Transfer.ID); err != nil || row.PurgedAt == nil {
				t.Fatalf("round %d: not purged (%v)", round, err)
			}
			if got, err := e.svc.Fragments(e.ctx, r.sess, 0, nil); err != nil || got != 0 {
				t.Fatalf("round %d: %d served ranges outlived the purge (%v)", round, got, err)
			}
		}
	})
}

// all3 is a whole ZIP of the three files of newAccounting(…, big, 1_000, 0).
func all3(big int64) transfer.Delivery {
	return transfer.Delivery{Zip: true, Complete: true, Files: []transfer.Served{
		{Index: 0, Size: big, Spans: []transfer.Span{{Start: 0, End: big}}},
		{Index: 1, Size: 1_000, Spans: []transfer.Span{{Start: 0, End: 1_000}}},
		{Index: 2, Size: 0},
	}}
}

// TestDownloadNoticeModes is issue 13 item 10: one mail per download
// flooded the sender. By default (notify_download, or notify "first") a
// recipient's downloads make one notice, at the first file; "each" keeps
// one per file (TestDeliveryAccounting); "none" and "summary" send none
// at downloads.
func TestDownloadNoticeModes(t *testing.T) {
	const big = 250_000
	for _, tc := range []struct {
		name string
		opts kluis.Options
		want int // notices after two recipients downloaded file by file, then a ZIP
	}{
		{"notify_download: the default, first", kluis.Options{NotifyDownload: true}, 2},
		{"first", kluis.Options{Notify: kluis.NotifyFirst}, 2},
		{"each", kluis.Options{Notify: kluis.NotifyEach}, 4},
		{"none", kluis.Options{}, 0},
		{"summary", kluis.Options{Notify: kluis.NotifySummary}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := newAccountingWith(t, newEnv, tc.opts, big, 1_000, 0)
			a.newNotices() // the notifications of Finish
			one := a.r.sess
			a.deliver(one, file(0, big, transfer.Span{Start: 0, End: big}))
			a.deliver(one, file(1, 1_000, transfer.Span{Start: 0, End: 1_000}))
			a.deliver(one, file(2, 0))
			a.deliver(one, all3(big))
			two := a.unlock(a.r.fin.Links[1].AccessID, secretOf(a.r.c))
			a.deliver(two, all3(big))
			a.deliver(two, file(1, 1_000, transfer.Span{Start: 0, End: 1_000}))
			n := a.newNotices()
			if len(n) != tc.want {
				t.Fatalf("%d notices, want %d", len(n), tc.want)
			}
			if tc.want == 2 {
				if !strings.Contains(n[0].Subject, "een@example.nl heeft een bestand") || !strings.Contains(n[1].Subject, "twee@example.nl heeft alle bestanden") {
					t.Errorf("notices %q, %q: want the first file of een, all files of twee", n[0].Subject, n[1].Subject)
				}
			}
		})
	}
}

// TestDownloadSummary: with notify "summary" the sender gets one mail when
// the transfer expires or is revoked, queued with the purge in one
// transaction (so once, also when the purge runs again), listing every
// notified recipient with what they downloaded and when.
func TestDownloadSummary(t *testing.T) {
	const big = 250_000
	forEachDB(t, func(t *testing.T, newEnv envMaker) {
		for _, revoke := range []bool{false, true} {
			a := newAccountingWith(t, newEnv, kluis.Options{Notify: kluis.NotifySummary, ShowFilenames: true}, big, 1_000, 0)
			a.newMail(mail.KindNotify)
			a.clock.Advance(time.Hour)
			a.deliver(a.r.sess, file(1, 1_000, transfer.Span{Start: 0, End: 1_000}))
			if n := a.newMail(mail.KindSummary); len(n) != 0 {
				t.Fatalf("summary before the end: %+v", n)
			}
			if revoke {
				if err := a.svc.Revoke(a.ctx, owner(a.r.c), ""); err != nil {
					t.Fatal(err)
				}
			} else {
				a.clock.Set(a.r.c.Transfer.ExpiresAt.Add(time.Second))
			}
			for range 2 {
				if _, err := a.svc.Purge(a.ctx); err != nil {
					t.Fatal(err)
				}
			}
			n := a.newMail(mail.KindSummary)
			if len(n) != 1 {
				t.Fatalf("revoke %v: %d summaries, want 1", revoke, len(n))
			}
			m := n[0]
			if m.To != "afzender@example.nl" {
				t.Errorf("summary to %s", m.To)
			}
			intro := "is verlopen op"
			if revoke {
				intro = "is ingetrokken op"
			}
			for _, want := range []string{intro, "een@example.nl", "twee@example.nl", "Heeft niets gedownload.", ", op "} {
				if !strings.Contains(m.Text, want) {
					t.Errorf("revoke %v: summary lacks %q:\n%s", revoke, want, m.Text)
				}
			}
			if strings.Count(m.Text, "Heeft niets gedownload.") != 1 {
				t.Errorf("revoke %v: want exactly one recipient without downloads:\n%s", revoke, m.Text)
			}
			if n := a.newNotices(); len(n) != 0 {
				t.Errorf("summary mode sent %d download notices", len(n))
			}
		}
	})
}
