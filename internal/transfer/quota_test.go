package transfer_test

import (
	"bytes"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kluis-nl/kluis"
	"github.com/kluis-nl/kluis/internal/policy"
	"github.com/kluis-nl/kluis/internal/transfer"
)

// createAs is e.create for another sender; it returns the error.
func (e *env) createAs(sender string) (*transfer.Created, error) {
	return e.svc.Create(e.ctx, transfer.CreateRequest{
		SenderEmail: sender, To: []string{"ontvanger@example.nl"}, PasswordMode: kluis.PasswordManual, Password: "Vrolijk-Paarse-Olifant-42",
	})
}

// parallel runs fn n times at once and returns the errors.
func parallel(n int, fn func(i int) error) []error {
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			errs[i] = fn(i)
		}()
	}
	close(start)
	wg.Wait()
	return errs
}

// split counts nil errors and checks the others are EQUOTA wrapping want.
func split(t *testing.T, errs []error, want error) (ok int) {
	t.Helper()
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case kluis.ErrorCode(err) != kluis.EQUOTA || !errors.Is(err, want):
			t.Errorf("got %v, want nil or EQUOTA (%v)", err, want)
		}
	}
	return ok
}

// TestOpenDraftsQuota is issue 11, item 6: one sender made 100 drafts in
// 13 s. The policy bounds the transfers a sender has unfinished at once
// (default 20), counted in the creating transaction, so parallel creates
// cannot pass it, on SQLite and on PostgreSQL.
func TestOpenDraftsQuota(t *testing.T) {
	t.Parallel()
	forEachDB(t, func(t *testing.T, newEnv envMaker) {
		e := newEnv(t)
		e.withPolicy(`{"defaults": {"max_open_drafts": 3}}`)
		var mu sync.Mutex
		var mine []transfer.Owner
		errs := parallel(12, func(i int) error {
			// Any case of the address is the same sender.
			addr := "afzender@example.nl"
			if i%2 == 1 {
				addr = "Afzender@Example.NL"
			}
			c, err := e.createAs(addr)
			if err == nil {
				mu.Lock()
				mine = append(mine, owner(c))
				mu.Unlock()
			}
			return err
		})
		if ok := split(t, errs, transfer.ErrOpenDrafts); ok != 3 {
			t.Fatalf("%d of 12 parallel creates succeeded, want 3", ok)
		}
		_, err := e.createAs("afzender@example.nl")
		qe := wantCode(t, err, kluis.EQUOTA)
		if len(mine) != 3 {
			t.Fatalf("created %d", len(mine))
		}
		if !strings.Contains(qe.Message, "3 transfers that are not sent yet") {
			t.Errorf("message: %q", qe.Message)
		}
		// Another sender has a quota of their own.
		if _, err := e.createAs("collega@example.nl"); err != nil {
			t.Fatalf("another sender: %v", err)
		}
		// A finished transfer is no longer a draft; revoked and expired
		// ones neither.
		e.upload(mine[0], "a.txt", []byte("inhoud"))
		if _, err := e.svc.Finish(e.ctx, mine[0], ""); err != nil {
			t.Fatal(err)
		}
		if err := e.svc.Revoke(e.ctx, mine[1], ""); err != nil {
			t.Fatal(err)
		}
		for range 2 {
			if _, err := e.createAs("afzender@example.nl"); err != nil {
				t.Fatalf("after finishing and revoking: %v", err)
			}
		}
		if _, err := e.createAs("afzender@example.nl"); kluis.ErrorCode(err) != kluis.EQUOTA {
			t.Fatalf("fourth open draft: %v", err)
		}
		e.clock.Advance(8 * 24 * time.Hour) // past the default expiry of 7 days
		if _, err := e.createAs("afzender@example.nl"); err != nil {
			t.Fatalf("after the drafts expired: %v", err)
		}
	})
}

// TestDefaultQuotas: without a policy file the defaults apply: 20 open
// drafts (the 100 drafts stop at 20).
func TestDefaultQuotas(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	errs := parallel(30, func(int) error { _, err := e.createAs("afzender@example.nl"); return err })
	if ok := split(t, errs, transfer.ErrOpenDrafts); ok != policy.DefaultMaxOpenDrafts {
		t.Fatalf("%d of 30 creates succeeded, want %d", ok, policy.DefaultMaxOpenDrafts)
	}
	if d := e.svc.DefaultLimits(); d.MaxOpenDrafts != 20 || d.MaxBytesPerDay != 20_000_000_000 || d.MaxReplies != 10 {
		t.Errorf("default limits: %+v", d)
	}
}

// TestDailyVolumeQuota: the bytes a sender's transfers of the last 24 hours
// declare are bounded (default 20 GB). Declared sizes count when the file
// is added (tus Upload-Length), also in parallel; a file of unknown length
// reserves what it may grow to; revoking gives the bytes back; a day later
// there is room again.
func TestDailyVolumeQuota(t *testing.T) {
	t.Parallel()
	forEachDB(t, func(t *testing.T, newEnv envMaker) {
		e := newEnv(t)
		e.withPolicy(`{"defaults": {"max_bytes_per_day": "1MB", "max_open_drafts": 50}}`)
		var owners []transfer.Owner
		for range 6 {
			c, err := e.createAs("afzender@example.nl")
			if err != nil {
				t.Fatal(err)
			}
			owners = append(owners, owner(c))
		}
		// Five files of 300 kB at once in five transfers: three fit in 1 MB.
		errs := parallel(5, func(i int) error {
			_, err := e.svc.NewFile(e.ctx, owners[i], "f.bin", "", 300_000)
			return err
		})
		if ok := split(t, errs, transfer.ErrDailyVolume); ok != 3 {
			t.Fatalf("%d of 5 parallel files accepted, want 3", ok)
		}
		_, err := e.svc.NewFile(e.ctx, owners[5], "big.bin", "", 200_000)
		qe := wantCode(t, err, kluis.EQUOTA)
		if qe.RetryAfter <= 0 || qe.RetryAfter > 24*time.Hour || !strings.Contains(qe.Message, "1.0 MB of files a day") {
			t.Errorf("refusal: %q, retry after %v", qe.Message, qe.RetryAfter)
		}
		// 100 kB are left: a streamed file (unknown length) may take them,
		// and not a byte more.
		f, err := e.svc.NewFile(e.ctx, owners[5], "stream.bin", "", -1)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.svc.WriteFile(e.ctx, owners[5], f.ID, 0, bytes.NewReader(make([]byte, 100_001))); kluis.ErrorCode(err) != kluis.EQUOTA {
			t.Fatalf("streaming past the daily volume: %v", err)
		}
		// While it reserves the rest, nothing else fits.
		if _, err := e.svc.NewFile(e.ctx, owners[4], "one.bin", "", 1); kluis.ErrorCode(err) != kluis.EQUOTA {
			t.Fatalf("a byte beside the reservation: %v", err)
		}
		if err := e.svc.DeleteFile(e.ctx, owners[5], f.ID); err != nil {
			t.Fatal(err)
		}
		f, err = e.svc.NewFile(e.ctx, owners[5], "stream.bin", "", -1)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.svc.WriteFile(e.ctx, owners[5], f.ID, 0, bytes.NewReader(make([]byte, 40_000))); err != nil {
			t.Fatal(err)
		}
		if _, err := e.svc.CompleteFile(e.ctx, owners[5], f.ID); err != nil {
			t.Fatal(err)
		}
		// Completed, it counts 40 kB: 60 kB are free again.
		if _, err := e.svc.NewFile(e.ctx, owners[4], "small.bin", "", 60_000); err != nil {
			t.Fatalf("after the streamed file completed: %v", err)
		}
		// Revoking a transfer gives its bytes back.
		var revoked bool
		for i, err := range errs {
			if err == nil && !revoked {
				if err := e.svc.Revoke(e.ctx, owners[i], ""); err != nil {
					t.Fatal(err)
				}
				revoked = true
			}
		}
		if _, err := e.svc.NewFile(e.ctx, owners[5], "again.bin", "", 300_000); err != nil {
			t.Fatalf("after a revoke: %v", err)
		}
		if _, err := e.svc.NewFile(e.ctx, owners[5], "more.bin", "", 300_000); kluis.ErrorCode(err) != kluis.EQUOTA {
			t.Fatalf("over the volume again: %v", err)
		}
		// A day later the transfers no longer count.
		e.clock.Advance(24*time.Hour + time.Second)
		c, err := e.createAs("afzender@example.nl")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.svc.NewFile(e.ctx, owner(c), "next-day.bin", "", 900_000); err != nil {
			t.Fatalf("a day later: %v", err)
		}
	})
}

// TestReplyQuota is issue 11, item 6: one recipient sent 30 replies in
// 3.4 s, each mailing the sender. The policy bounds the replies of one
// recipient to one transfer (default 10), counted in the creating
// transaction; an abandoned reply does not count.
func TestReplyQuota(t *testing.T) {
	t.Parallel()
	forEachDB(t, func(t *testing.T, newEnv envMaker) {
		e := newEnv(t)
		e.withPolicy(`{"defaults": {"max_replies": 2}}`)
		r := e.readyTransfer(createOpts{to: []string{"een@example.nl", "twee@example.nl"}}, 1000)
		sess, err := e.svc.OpenSession(e.ctx, r.sess.Token)
		if err != nil {
			t.Fatal(err)
		}
		// An abandoned reply gives its place back.
		d, err := e.svc.StartReply(e.ctx, sess, transfer.ReplyRequest{Message: "concept"})
		if err != nil {
			t.Fatal(err)
		}
		if err := e.svc.AbandonReply(e.ctx, d); err != nil {
			t.Fatal(err)
		}
		errs := parallel(8, func(i int) error {
			d, err := e.svc.StartReply(e.ctx, sess, transfer.ReplyRequest{Message: "antwoord"})
			if err != nil {
				return err
			}
			_, err = e.svc.SendReply(e.ctx, d)
			return err
		})
		if ok := split(t, errs, transfer.ErrReplyLimit); ok != 2 {
			t.Fatalf("%d of 8 parallel replies sent, want 2", ok)
		}
		_, err = e.svc.StartReply(e.ctx, sess, transfer.ReplyRequest{Message: "nog een"})
		if qe := wantCode(t, err, kluis.EQUOTA); !strings.Contains(qe.Message, "replied 2 times") {
			t.Errorf("message: %q", qe.Message)
		}
		// The other recipient has replies of their own.
		other := e.unlock(r.fin.Links[1].AccessID, secretOf(r.c))
		d, err = e.svc.StartReply(e.ctx, other, transfer.ReplyRequest{Message: "ik ook"})
		if err != nil {
			t.Fatalf("the other recipient: %v", err)
		}
		if _, err := e.svc.SendReply(e.ctx, d); err != nil {
			t.Fatal(err)
		}
	})
}

// TestTinyRequestsRefused is issue 11, item 6: 300 one-byte PATCHes became
// 300 segments. A file takes a few segments that a request cut short
// before the file's end (interruptions end short too); after that a tiny
// request is refused with a message that asks for larger requests, stores
// nothing, and the upload can go on with larger ones.
func TestTinyRequestsRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c := e.create(createOpts{})
	o := owner(c)
	data := randomBytes(7, 3_000_000)
	f, err := e.svc.NewFile(e.ctx, o, "f.bin", "", int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	off := 0
	write := func(n int) (int64, error) {
		w, err := e.svc.WriteFile(e.ctx, o, f.ID, int64(off), bytes.NewReader(data[off:off+n]))
		off += int(w)
		return w, err
	}
	// Requests that end at the segment bound are not short, whatever
	// their size (the test config's segments are 100,000 bytes).
	if _, err := write(200_000); err != nil {
		t.Fatal(err)
	}
	for i := range transfer.DefaultMaxShortSegments {
		if _, err := write(1); err != nil {
			t.Fatalf("tiny request %d: %v", i+1, err)
		}
	}
	n, err := write(1)
	qe := wantCode(t, err, kluis.ETOOMANY)
	if n != 0 || !strings.Contains(qe.Message, "Send at least 1.0 MB per request") {
		t.Errorf("refused tiny request: wrote %d, message %q", n, qe.Message)
	}
	if st, err := e.svc.FileState(e.ctx, o, f.ID); err != nil || st.Offset != int64(off) {
		t.Fatalf("offset after the refusal: %+v %v, want %d", st, err, off)
	}
	// Large requests go on; the last one may be small (the file's end).
	if _, err := write(len(data) - off - 10); err != nil {
		t.Fatal(err)
	}
	if _, err := write(10); err != nil {
		t.Fatalf("the file's last bytes: %v", err)
	}
	if _, err := e.svc.CompleteFile(e.ctx, o, f.ID); err != nil {
		t.Fatal(err)
	}
	fin := e.finish(c)
	s := e.unlock(fin.Links[0].AccessID, secretOf(c))
	if got, err := e.readFile(s, f.ID); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("download: %v (equal %v)", err, bytes.Equal(got, data))
	}
}
