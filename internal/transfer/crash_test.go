package transfer_test

import (
	"bytes"
	"testing"
	"time"

	"github.com/kluis-nl/kluis"
	"github.com/kluis-nl/kluis/internal/transfer"
)

// TestFinishCompletesUploadWhoseBytesAllArrived: a process killed after
// the last segment of a tus upload was committed and before the file was
// marked complete (tusd completes it in a second step, FinishUpload) left
// a file whose offset is its length. HEAD reports the whole length, so the
// client considers the upload done, and tusd answers a PATCH at that
// offset without completing anything: Finish refused the transfer for good
// ("File 1 of 1 has not been uploaded completely yet"). Found by the
// nemesis (e2e/nemesis_test.go).
func TestFinishCompletesUploadWhoseBytesAllArrived(t *testing.T) {
	forEachDB(t, func(t *testing.T, newEnv envMaker) {
		e := newEnv(t)
		c := e.create(createOpts{message: "bericht"})
		o := owner(c)
		data := randomBytes(11, 250_000) // three segments
		f, err := e.svc.NewFile(e.ctx, o, "a.bin", "application/octet-stream", int64(len(data)))
		if err != nil {
			t.Fatal(err)
		}
		if n, err := e.svc.WriteFile(e.ctx, o, f.ID, 0, bytes.NewReader(data)); err != nil || n != int64(len(data)) {
			t.Fatalf("write: %d %v", n, err)
		}
		// The crash: no CompleteFile. A new process on the same data.
		svc := transfer.New(transfer.Deps{DB: e.db, Blobs: e.blobs, Keys: e.keys, Config: e.cfg, Now: e.clock.Now})
		st, err := svc.FileState(e.ctx, o, f.ID)
		if err != nil || st.Offset != int64(len(data)) || st.Complete {
			t.Fatalf("state after the crash: %+v %v, want the whole length and not complete", st, err)
		}
		fin, err := svc.Finish(e.ctx, o, c.LinkSecret)
		if err != nil {
			t.Fatalf("finish after the crash: %v", err)
		}
		s, err := svc.Unlock(e.ctx, fin.Links[0].AccessID, secretOf(c))
		if err != nil {
			t.Fatal(err)
		}
		ct, err := svc.Contents(e.ctx, s)
		if err != nil {
			t.Fatal(err)
		}
		if len(ct.Files) != 1 || !ct.Files[0].Complete || ct.Files[0].Size != int64(len(data)) || ct.Files[0].SHA256 != sha256hex(data) {
			t.Fatalf("files after finish: %+v", ct.Files)
		}
		got, err := e.readFile(s, f.ID)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("download: %d bytes, %v", len(got), err)
		}
	})
}

// TestFinishLeavesPartialUploadIncomplete: only an upload that received
// every byte is completed at Finish; one that stopped short still refuses
// the transfer (the client resumes it first).
func TestFinishLeavesPartialUploadIncomplete(t *testing.T) {
	e := newEnv(t)
	c := e.create(createOpts{message: "bericht"})
	o := owner(c)
	data := randomBytes(12, 250_000)
	f, err := e.svc.NewFile(e.ctx, o, "a.bin", "application/octet-stream", int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.WriteFile(e.ctx, o, f.ID, 0, bytes.NewReader(data[:200_000])); err != nil {
		t.Fatal(err)
	}
	_, err = e.svc.Finish(e.ctx, o, c.LinkSecret)
	wantCode(t, err, kluis.ECONFLICT)
	// However long it waits: its client resumes it whenever it can.
	e.clock.Advance(24 * time.Hour)
	_, err = e.svc.Finish(e.ctx, o, c.LinkSecret)
	wantCode(t, err, kluis.ECONFLICT)
}

// TestFinishDropsUploadWhoseCreateAnswerWasLost: a tus POST whose 201 was
// lost (the process was killed, or the connection broke, after the file's
// row was committed) leaves an upload that its client cannot name; the
// client creates another one. Finish then refused the transfer until it
// expired ("File 1 of 2 has not been uploaded completely yet"). Now Finish
// drops an incomplete tus upload that holds no byte, that no request holds
// the lease of, and that nobody has touched for an upload lease
// (transfer.DefaultUploadLease); an upload that was just created, whose
// lease is held, or that holds bytes (TestFinishLeavesPartialUploadIncomplete)
// still refuses the transfer. Found by the nemesis (e2e/nemesis_test.go).
func TestFinishDropsUploadWhoseCreateAnswerWasLost(t *testing.T) {
	forEachDB(t, func(t *testing.T, newEnv envMaker) {
		e := newEnv(t)
		c := e.create(createOpts{message: "bericht"})
		o := owner(c)
		// Two lost answers: a file of 5000 bytes, and an empty one, which
		// tusd completes in its creation request before the 201 goes out.
		lost, err := e.svc.NewFile(e.ctx, o, "lost.bin", "application/octet-stream", 5000)
		if err != nil {
			t.Fatal(err)
		}
		lostEmpty, err := e.svc.NewFile(e.ctx, o, "lost-empty.bin", "application/octet-stream", 0)
		if err != nil {
			t.Fatal(err)
		}
		data := randomBytes(14, 100_000)
		kept := e.upload(o, "a.bin", data)

		// Just created: a client that has the answer may be about to write.
		_, err = e.svc.Finish(e.ctx, o, c.LinkSecret)
		wantCode(t, err, kluis.ECONFLICT)
		e.clock.Advance(transfer.DefaultUploadLease + time.Second)
		// A request holds the lease (a PATCH that has committed nothing yet).
		if _, err := e.db.AcquireLease(e.ctx, lost.ID, "other-instance", "other-token", e.clock.Now(), transfer.DefaultUploadLease); err != nil {
			t.Fatal(err)
		}
		_, err = e.svc.Finish(e.ctx, o, c.LinkSecret)
		wantCode(t, err, kluis.ECONFLICT)
		if _, err := e.svc.FileState(e.ctx, o, lost.ID); err != nil {
			t.Fatalf("an upload whose lease is held was dropped: %v", err)
		}
		if l, err := e.db.CurrentLease(e.ctx, lost.ID); err != nil || l.ReleaseRequested {
			t.Fatalf("finish asked the request that holds the lease to let go: %+v %v", l, err)
		}
		if err := e.db.ReleaseLease(e.ctx, lost.ID, "other-token"); err != nil {
			t.Fatal(err)
		}

		fin, err := e.svc.Finish(e.ctx, o, c.LinkSecret)
		if err != nil {
			t.Fatalf("finish with two uploads nobody can name: %v", err)
		}
		for _, id := range []string{lost.ID, lostEmpty.ID} {
			_, err := e.svc.FileState(e.ctx, o, id)
			wantCode(t, err, kluis.ENOTFOUND)
		}
		s := e.unlock(fin.Links[0].AccessID, secretOf(c))
		ct, err := e.svc.Contents(e.ctx, s)
		if err != nil {
			t.Fatal(err)
		}
		if len(ct.Files) != 1 || ct.Files[0].ID != kept.ID || ct.Message != "bericht" {
			t.Fatalf("contents: %+v, message %q; want only %s and the message", ct.Files, ct.Message, kept.ID)
		}
		if got, err := e.readFile(s, kept.ID); err != nil || !bytes.Equal(got, data) {
			t.Fatalf("download: %d bytes, %v", len(got), err)
		}
	})
}

// TestFinishDropsCutPlainUploadOnceNobodyWritesIt: a plain upload that a
// killed process left incomplete keeps nothing; Finish drops it, but only
// once its upload lease shows that no request writes it any more (here: a
// dead instance's lease, on PostgreSQL, that has to run out first).
func TestFinishDropsCutPlainUploadOnceNobodyWritesIt(t *testing.T) {
	forEachDB(t, func(t *testing.T, newEnv envMaker) {
		e := newEnv(t)
		c := e.create(createOpts{message: "bericht"})
		o := owner(c)
		data := randomBytes(13, 250_000)
		f, err := e.svc.NewPlainFile(e.ctx, o, "cut.bin", "application/octet-stream", int64(len(data)))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.svc.WriteFile(e.ctx, o, f.ID, 0, bytes.NewReader(data[:120_000])); err != nil {
			t.Fatal(err)
		}
		if len(e.segmentPaths(c.Transfer.ID, f.ID)) == 0 {
			t.Fatal("no segment committed: the test would prove nothing")
		}
		// The instance that ran the PUT died holding its lease.
		if _, err := e.db.AcquireLease(e.ctx, f.ID, "dead-instance", "dead-token", e.clock.Now(), transfer.DefaultUploadLease); err != nil {
			t.Fatal(err)
		}
		_, err = e.svc.Finish(e.ctx, o, c.LinkSecret)
		wantCode(t, err, kluis.ECONFLICT)
		if len(e.segmentPaths(c.Transfer.ID, f.ID)) == 0 {
			t.Fatal("a plain upload whose lease is held was dropped")
		}
		e.clock.Advance(transfer.DefaultUploadLease + time.Second)
		fin, err := e.svc.Finish(e.ctx, o, c.LinkSecret)
		if err != nil {
			t.Fatalf("finish once the lease ran out: %v", err)
		}
		s := e.unlock(fin.Links[0].AccessID, secretOf(c))
		ct, err := e.svc.Contents(e.ctx, s)
		if err != nil {
			t.Fatal(err)
		}
		if len(ct.Files) != 0 || ct.Message != "bericht" {
			t.Fatalf("contents: %d files, message %q; want no file and the message", len(ct.Files), ct.Message)
		}
		if p := e.blobFiles(c.Transfer.ID)[f.ID]; len(p) != 0 {
			t.Errorf("segments of the dropped upload remain: %v", p)
		}
	})
}
