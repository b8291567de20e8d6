package transfer_test

import (
	"bytes"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/kluis-nl/kluis"
	"github.com/kluis-nl/kluis/internal/app/apptest"
	"github.com/kluis-nl/kluis/internal/audit"
	"github.com/kluis-nl/kluis/internal/kluistest"
	"github.com/kluis-nl/kluis/internal/mail"
	"github.com/kluis-nl/kluis/internal/scan/scantest"
	"github.com/kluis-nl/kluis/internal/transfer"
)

// newScanEnv is an engine that scans with a real clamd (scantest), with
// the flags of kluis serve.
func newScanEnv(t *testing.T, d *scantest.Daemon, args ...string) *env {
	t.Helper()
	return openEnv(t, apptest.Options{Clock: kluistest.NewClock(), Args: append([]string{"--clamd", d.Unix()}, args...)})
}

// infected is a file of several segments with the test marker deep inside.
func infected() []byte {
	d := randomBytes(99, 250_000)
	return append(append(d, scantest.Marker...), randomBytes(100, 50_000)...)
}

// TestScanInfectedRefused: a file with malware is refused at Finish: it is
// removed (row and blobs), nothing is mailed, the sender gets 422-class
// EINFECTED naming the file, the audit log and the metric record it; the
// transfer can then be sent without it.
func TestScanInfectedRefused(t *testing.T) {
	t.Parallel()
	d := scantest.Start(t, scantest.Options{})
	e := newScanEnv(t, d)
	rec := e.withAudit()
	c := e.create(createOpts{})
	clean := randomBytes(1, 300_000)
	good := e.upload(owner(c), "brief.pdf", clean, 120_000) // resumed: two requests
	bad := e.upload(owner(c), "factuur.pdf", infected(), 100_000)
	eicar := e.upload(owner(c), "eicar.com", []byte(scantest.EICAR))

	_, err := e.svc.Finish(e.ctx, owner(c), c.LinkSecret)
	ke := wantCode(t, err, kluis.EINFECTED)
	if !strings.Contains(ke.Message, "File 2 of 3") || !strings.Contains(ke.Message, "Kluis-Test-Marker") {
		t.Errorf("message %q does not name the file and the finding", ke.Message)
	}
	if q := e.app.Queued("", ""); len(q) != 0 {
		t.Fatalf("%d mails queued for a transfer with malware", len(q))
	}
	if blobs := e.blobFiles(c.Transfer.ID); len(blobs[bad.ID]) != 0 || len(blobs[good.ID]) == 0 {
		t.Fatalf("blobs after refusal: %v", blobs)
	}
	if _, err := e.db.File(e.ctx, bad.ID); err == nil {
		t.Fatal("the infected file's row is still there")
	}
	_, err = e.svc.Finish(e.ctx, owner(c), c.LinkSecret)
	wantCode(t, err, kluis.EINFECTED) // EICAR, the next one
	if blobs := e.blobFiles(c.Transfer.ID); len(blobs[eicar.ID]) != 0 {
		t.Fatalf("EICAR's blobs are still there: %v", blobs)
	}

	fin := e.finish(c)
	if files, _ := e.db.Files(e.ctx, c.Transfer.ID); len(files) != 1 {
		t.Fatalf("%d files after removing the infected ones, want 1", len(files))
	}
	sess := e.unlock(fin.Links[0].AccessID, secretOf(c))
	if got, err := e.readFile(sess, good.ID); err != nil || !bytes.Equal(got, clean) {
		t.Fatalf("the clean file does not read back: %v", err)
	}
	var buf bytes.Buffer
	if err := rec.Export(e.ctx, e.clock.Now().AddDate(0, 0, -1), "csv", &buf); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{audit.FileScan + "," + c.Transfer.ID + ",refused", "infected signature=Kluis-Test-Marker", "infected signature=Kluis-Test-EICAR", audit.FileScan + "," + c.Transfer.ID + ",ok"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("audit log lacks %q:\n%s", want, buf.String())
		}
	}
	if got := metricValue(t, e, `kluis_scan_total{result="infected"}`); got != 2 {
		t.Errorf("kluis_scan_total infected = %v, want 2", got)
	}
	if got := metricValue(t, e, `kluis_scan_total{result="clean"}`); got != 1 {
		t.Errorf("kluis_scan_total clean = %v, want 1", got)
	}
}

// TestScanReplyInfected: a recipient's reply with malware is refused (the
// inbound scope scans replies only) and the original sender is not told.
func TestScanReplyInfected(t *testing.T) {
	t.Parallel()
	d := scantest.Start(t, scantest.Options{})
	e := newScanEnv(t, d, "--scan", "inbound")
	r := e.readyTransfer(createOpts{}, 1000) // not a reply: not scanned
	if f, _ := e.db.File(e.ctx, r.files[0].ID); f.ScanSealed != nil {
		t.Fatal("--scan inbound gave an outgoing transfer's file a scan key")
	}
	sess, err := e.svc.OpenSession(e.ctx, r.sess.Token)
	if err != nil {
		t.Fatal(err)
	}
	draft, err := e.svc.StartReply(e.ctx, sess, transfer.ReplyRequest{Message: "Hierbij"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.AddReplyFile(e.ctx, draft, "scan.pdf", "application/pdf", bytes.NewReader(infected())); err != nil {
		t.Fatal(err)
	}
	_, err = e.svc.SendReply(e.ctx, draft)
	wantCode(t, err, kluis.EINFECTED)
	if err := e.svc.AbandonReply(e.ctx, draft); err != nil {
		t.Fatal(err)
	}
	if q := e.app.Queued(mail.KindNotify, "afzender@example.nl"); len(q) != 0 {
		t.Fatalf("the sender was notified of a reply with malware")
	}
}

// TestScanClamdDown: with clamd stopped, fail-closed finishes the transfer
// into the visible "being checked" state (scanning): its mails are held,
// nothing goes to a recipient, the scan key is kept, and retries with
// backoff do nothing while clamd is down; once clamd is back the next
// retry scans it, it becomes ready and its notifications go out.
// Fail-open passes the file with a warning.
func TestScanClamdDown(t *testing.T) {
	t.Parallel()
	t.Run("closed", func(t *testing.T) {
		t.Parallel()
		d := scantest.Start(t, scantest.Options{})
		e := newScanEnv(t, d)
		c := e.create(createOpts{})
		f := e.upload(owner(c), "a.bin", randomBytes(3, 200_000))
		d.Stop(t)
		fin := e.finish(c)
		if fin.Transfer.State != kluis.StateScanning {
			t.Fatalf("state %s after finish with clamd down, want scanning", fin.Transfer.State)
		}
		if q := e.app.Queued("", ""); len(q) != 0 {
			t.Fatalf("%d mails due while the scan is pending", len(q))
		}
		if held, _ := e.db.HeldOutbox(e.ctx, c.Transfer.ID); len(held) == 0 {
			t.Fatal("no notification held for the waiting transfer")
		}
		// Held mails are not a queue that fails to drain.
		if p, h := metricValue(t, e, `kluis_mail_queue_depth{state="pending"}`), metricValue(t, e, `kluis_mail_queue_depth{state="held"}`); p != 0 || h != 1 {
			t.Errorf("mail queue gauge while the scan waits: pending %v, held %v; want 0, 1", p, h)
		}
		if row, _ := e.db.File(e.ctx, f.ID); row.ScanSealed == nil {
			t.Fatal("the scan key was erased before the scan")
		}
		if _, err := e.svc.Unlock(e.ctx, fin.Links[0].AccessID, secretOf(c)); err == nil {
			t.Fatal("a recipient link opens a transfer that is still being checked")
		}
		// Retries while clamd is down: still waiting, the backoff grows.
		for range 3 {
			e.clock.Advance(11 * time.Minute) // past the longest backoff
			if _, err := e.svc.RetryScans(e.ctx); err != nil {
				t.Fatal(err)
			}
		}
		w, err := e.db.ScanWaitOf(e.ctx, c.Transfer.ID)
		if err != nil || w.Attempts != 3 {
			t.Fatalf("after three failed retries: %+v, %v", w, err)
		}
		if len(e.app.Queued("", "")) != 0 {
			t.Fatal("mail went out while clamd was down")
		}
		d.Start(t)
		e.clock.Advance(time.Hour)
		if n, err := e.svc.RetryScans(e.ctx); err != nil || n != 1 {
			t.Fatalf("retry after clamd returned: %d, %v", n, err)
		}
		tr, err := e.db.Transfer(e.ctx, c.Transfer.ID)
		if err != nil || tr.State != string(kluis.StateReady) || tr.FinishedAt == nil {
			t.Fatalf("after clamd returned: %s, %v\n%s", tr.State, err, e.logs.String())
		}
		if n := len(e.app.Queued(mail.KindNotify, "")); n != 1 {
			t.Fatalf("%d notifications after the scan passed, want 1", n)
		}
		if row, _ := e.db.File(e.ctx, f.ID); row.ScanSealed != nil {
			t.Fatal("the scan key was kept after the scan")
		}
		e.unlock(fin.Links[0].AccessID, secretOf(c))
	})
	t.Run("open", func(t *testing.T) {
		t.Parallel()
		d := scantest.Start(t, scantest.Options{})
		e := newScanEnv(t, d, "--scan-unavailable", "open")
		rec := e.withAudit()
		c := e.create(createOpts{})
		e.upload(owner(c), "brief.txt", []byte("schoon"))
		f := e.upload(owner(c), "a.bin", []byte(scantest.EICAR))
		d.Stop(t)
		fin := e.finish(c) // unscanned, so EICAR passes: that is what fail-open means
		if row, _ := e.db.File(e.ctx, f.ID); row.ScanSealed != nil {
			t.Fatal("the scan key was kept after the file passed")
		}
		if !strings.Contains(e.logs.String(), "file passed unscanned (fail-open)") {
			t.Errorf("no warning in the log:\n%s", e.logs.String())
		}
		// The sender is warned which files went out unscanned.
		if len(fin.Unscanned) != 2 || fin.Unscanned[0] != 1 || fin.Unscanned[1] != 2 {
			t.Errorf("Finished.Unscanned = %v, want [1 2]", fin.Unscanned)
		}
		if got := metricValue(t, e, `kluis_scan_passed_unscanned_total{reason="unavailable"}`); got != 2 {
			t.Errorf("kluis_scan_passed_unscanned_total unavailable = %v, want 2", got)
		}
		var buf bytes.Buffer
		if err := rec.Export(e.ctx, e.clock.Now().AddDate(0, 0, -1), "csv", &buf); err != nil {
			t.Fatal(err)
		}
		if n := strings.Count(buf.String(), "unavailable passed unscanned"); n != 2 {
			t.Errorf("%d audit entries of files passed unscanned, want 2:\n%s", n, buf.String())
		}
	})
}

// TestScanTooLarge: a file over clamd's StreamMaxLength is refused, or
// passed with a note when the policy says so.
func TestScanTooLarge(t *testing.T) {
	t.Parallel()
	d := scantest.Start(t, scantest.Options{StreamMaxLength: "1M"})
	for _, policy := range []string{"refuse", "pass"} {
		t.Run(policy, func(t *testing.T) {
			e := newScanEnv(t, d, "--scan-too-large", policy)
			c := e.create(createOpts{})
			e.upload(owner(c), "groot.bin", randomBytes(5, 1_500_000))
			fin, err := e.svc.Finish(e.ctx, owner(c), c.LinkSecret)
			if policy == "refuse" {
				wantCode(t, err, kluis.EUNSCANNABLE)
				if len(e.blobFiles(c.Transfer.ID)) != 0 {
					t.Fatal("the refused file's blobs are still there")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(fin.Unscanned) != 1 || fin.Unscanned[0] != 1 {
				t.Errorf("Finished.Unscanned = %v, want [1]", fin.Unscanned)
			}
			if !strings.Contains(e.logs.String(), "passed unscanned (policy)") {
				t.Error("no note in the log")
			}
			if fin, err := e.svc.Transfer(e.ctx, owner(c)); err != nil || fin.State != kluis.StateReady {
				t.Fatalf("after finish: %v", err)
			}
			if got := metricValue(t, e, `kluis_scan_passed_unscanned_total{reason="too_large"}`); got != 1 {
				t.Errorf("kluis_scan_passed_unscanned_total too_large = %v, want 1", got)
			}
		})
	}
}

// TestScanKeyErased: once a file is scanned its scan identity is gone from
// the database file and its WAL, so a copy of the data folder and the
// master key cannot open a password transfer. Before the scan the scan
// identity (then in the database) does open the segments: the erasure is
// what closes them.
func TestScanKeyErased(t *testing.T) {
	t.Parallel()
	d := scantest.Start(t, scantest.Options{})
	e := newScanEnv(t, d)
	c := e.create(createOpts{})
	f := e.upload(owner(c), "a.bin", randomBytes(7, 250_000))
	row, err := e.db.File(e.ctx, f.ID)
	if err != nil || row.ScanSealed == nil {
		t.Fatalf("no scan key before the scan: %v", err)
	}
	idText, err := e.keys.Open("file.scan", f.ID, row.ScanSealed)
	if err != nil {
		t.Fatal(err)
	}
	id, err := age.ParseX25519Identity(string(idText))
	if err != nil {
		t.Fatal(err)
	}
	seg := e.segmentPaths(c.Transfer.ID, f.ID)[0]
	if !opens(t, seg, id) {
		t.Fatal("the scan identity does not open the file's segment: it was not encrypted to it")
	}

	e.finish(c)
	if row, _ := e.db.File(e.ctx, f.ID); row.ScanSealed != nil {
		t.Fatal("scan_sealed is still set after the scan")
	}
	needles := map[string][]byte{"sealed scan key": row.ScanSealed, "scan identity": idText, "AGE-SECRET-KEY": []byte("AGE-SECRET-KEY-")}
	for _, name := range []string{"kluis.db", "kluis.db-wal"} {
		b, err := os.ReadFile(e.app.DataFile(name))
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		if found := containsAny(b, needles); len(found) > 0 {
			t.Errorf("%s still holds %v after the scan", name, found)
		}
	}
	// Everything the master key opens in the files table is tried as an
	// age identity on the segment: none opens it.
	rows, err := rawDB(t, e.app.DataFile("kluis.db")).Query(`SELECT id, meta_sealed, head_sealed, scan_sealed FROM files`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var fid string
		var meta, head, scanKey []byte
		if err := rows.Scan(&fid, &meta, &head, &scanKey); err != nil {
			t.Fatal(err)
		}
		for purpose, v := range map[string][]byte{"file.meta": meta, "file.head": head, "file.scan": scanKey} {
			if v == nil {
				continue
			}
			b, err := e.keys.Open(purpose, fid, v)
			if err != nil {
				t.Fatal(err)
			}
			if id, err := age.ParseX25519Identity(strings.TrimSpace(string(b))); err == nil && opens(t, seg, id) {
				t.Errorf("%s of %s opens the segment after the scan", purpose, fid)
			}
		}
	}
}

func opens(t *testing.T, path string, id age.Identity) bool {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	r, err := age.Decrypt(bytes.NewReader(b), id)
	if err != nil {
		return false
	}
	_, err = io.Copy(io.Discard, r)
	return err == nil
}

// metricValue is the value of a counter series such as
// kluis_scan_total{result="clean"}; -1 if there is none.
func metricValue(t *testing.T, e *env, series string) float64 {
	t.Helper()
	mfs, err := e.app.Metrics.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+`="`+l.GetValue()+`"`)
			}
			if mf.GetName()+"{"+strings.Join(labels, ",")+"}" != series {
				continue
			}
			if m.GetCounter() != nil {
				return m.GetCounter().GetValue()
			}
			if m.GetGauge() != nil {
				return m.GetGauge().GetValue()
			}
		}
	}
	return -1
}
