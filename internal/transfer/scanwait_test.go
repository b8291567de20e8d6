package transfer_test

import (
	"bytes"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kluis-nl/kluis"
	"github.com/kluis-nl/kluis/internal/app/apptest"
	"github.com/kluis-nl/kluis/internal/kluistest"
	"github.com/kluis-nl/kluis/internal/mail"
	"github.com/kluis-nl/kluis/internal/scan/scantest"
	"github.com/kluis-nl/kluis/internal/store/storetest"
)

// waitingTransfer finishes a transfer with one file while clamd is
// stopped, so that it waits for its scan.
func waitingTransfer(t *testing.T, e *env, d *scantest.Daemon, content []byte) string {
	t.Helper()
	c := e.create(createOpts{})
	e.upload(owner(c), "a.bin", content)
	d.Stop(t)
	if fin := e.finish(c); fin.Transfer.State != kluis.StateScanning {
		t.Fatalf("state %s, want scanning", fin.Transfer.State)
	}
	return c.Transfer.ID
}

// TestScanWaitEnds: a waiting transfer fails, and its sender is told by
// mail in their language, when --scan-wait passes with clamd still down,
// or when clamd comes back and finds malware. No recipient is mailed,
// the held mails are deleted and the purge erases the content.
func TestScanWaitEnds(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		content []byte
		restart bool
		advance time.Duration
		want    string
	}{
		{"timeout", randomBytes(5, 150_000), false, 2 * time.Hour, "konden niet langer wachten"},
		{"infected", []byte(scantest.EICAR), true, time.Minute, "malware gevonden: bestand 1 van 1."},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			d := scantest.Start(t, scantest.Options{})
			e := newScanEnv(t, d, "--scan-wait", "1h")
			id := waitingTransfer(t, e, d, tc.content)
			if tc.restart {
				d.Start(t)
			}
			e.clock.Advance(tc.advance)
			if _, err := e.svc.RetryScans(e.ctx); err != nil {
				t.Fatal(err)
			}
			tr, err := e.db.Transfer(e.ctx, id)
			if err != nil || tr.State != string(kluis.StateFailed) || tr.RevokedAt == nil {
				t.Fatalf("after the wait ended: %+v, %v", tr, err)
			}
			if n := len(e.app.Queued(mail.KindNotify, "")); n != 0 {
				t.Fatalf("%d notifications queued for a transfer that failed its scan", n)
			}
			if held, _ := e.db.HeldOutbox(e.ctx, id); len(held) != 0 {
				t.Fatalf("%d held mails left", len(held))
			}
			told := e.app.Queued(mail.KindScanFailed, tr.SenderEmail)
			if len(told) != 1 || !strings.Contains(told[0].Text, tc.want) {
				t.Fatalf("sender's notice: %+v", told)
			}
			if _, err := e.svc.Purge(e.ctx); err != nil {
				t.Fatal(err)
			}
			if blobs := e.blobFiles(id); len(blobs) != 0 {
				t.Fatalf("blobs after the purge: %v", blobs)
			}
			if files, _ := e.db.Files(e.ctx, id); len(files) != 0 {
				t.Fatal("file rows (with their scan keys) after the purge")
			}
		})
	}
}

// TestScanWaitRevoked: a transfer revoked while it waits sends nothing,
// not even when clamd returns.
func TestScanWaitRevoked(t *testing.T) {
	t.Parallel()
	d := scantest.Start(t, scantest.Options{})
	e := newScanEnv(t, d)
	c := e.create(createOpts{})
	e.upload(owner(c), "a.bin", randomBytes(8, 120_000))
	d.Stop(t)
	e.finish(c)
	if err := e.svc.Revoke(e.ctx, owner(c), "ontvanger@example.nl"); kluis.ErrorCode(err) != kluis.ECONFLICT {
		t.Fatalf("revoking one recipient of a waiting transfer: %v", err)
	}
	if err := e.svc.Revoke(e.ctx, owner(c), ""); err != nil {
		t.Fatal(err)
	}
	d.Start(t)
	e.clock.Advance(time.Hour)
	if _, err := e.svc.RetryScans(e.ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Purge(e.ctx); err != nil {
		t.Fatal(err)
	}
	if q := e.app.Queued("", ""); len(q) != 0 {
		t.Fatalf("%d mails for a transfer revoked while it was being checked", len(q))
	}
	if held, _ := e.db.HeldOutbox(e.ctx, c.Transfer.ID); len(held) != 0 {
		t.Fatalf("%d held mails left after the purge", len(held))
	}
}

// TestScanWaitPostgres: on PostgreSQL, a waiting transfer recovers when
// clamd returns, and two instances retrying it at the same moment scan it
// once and release it once.
func TestScanWaitPostgres(t *testing.T) {
	t.Parallel()
	d := scantest.Start(t, scantest.Options{})
	e := openEnv(t, apptest.Options{DB: storetest.Postgres(t), Clock: kluistest.NewClock(), Args: []string{"--clamd", d.Unix()}})
	// The second instance scans with the same clamd (reopen alone would
	// start it without --clamd: then only the first could ever scan).
	e2 := openEnv(t, apptest.Options{Dir: e.dir, DB: e.app.DBSpec, Clock: e.clock, Args: []string{"--clamd", d.Unix()}}, e.tune...)
	rec := e.withAudit()
	id := waitingTransfer(t, e, d, randomBytes(9, 220_000))
	d.Start(t)
	e.clock.Advance(time.Hour)
	var wg sync.WaitGroup
	counts := make([]int, 2)
	for i, x := range []*env{e, e2} {
		wg.Go(func() {
			n, err := x.svc.RetryScans(x.ctx)
			if err != nil {
				t.Error(err)
			}
			counts[i] = n
		})
	}
	wg.Wait()
	if counts[0]+counts[1] != 1 {
		t.Fatalf("claimed %v times, want once in all", counts)
	}
	// Under heavy load the freshly started clamd may still miss an
	// answer; the transfer then waits for the next retry, as it should.
	tr, err := e.db.Transfer(e.ctx, id)
	for i := 0; err == nil && tr.State == string(kluis.StateScanning) && i < 5; i++ {
		e.clock.Advance(time.Hour)
		x := []*env{e, e2}[i%2]
		if _, err = x.svc.RetryScans(x.ctx); err == nil {
			tr, err = e.db.Transfer(e.ctx, id)
		}
	}
	if err != nil || tr.State != string(kluis.StateReady) {
		t.Fatalf("after the retry: %s, %v\n%s", tr.State, err, e.logs.String()+e2.logs.String())
	}
	if held, _ := e.db.HeldOutbox(e.ctx, id); len(held) != 0 {
		t.Fatalf("%d mails still held", len(held))
	}
	var buf bytes.Buffer
	if err := rec.Export(e.ctx, e.clock.Now().AddDate(0, 0, -1), "csv", &buf); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(buf.String(), "upload.file_scan"); n != 1 {
		t.Errorf("%d scan entries in the audit log, want 1:\n%s", n, buf.String())
	}
	if n := strings.Count(buf.String(), "scan=passed"); n != 1 {
		t.Errorf("%d releases in the audit log, want 1", n)
	}
}
