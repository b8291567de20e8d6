package transfer_test

import (
	"bytes"
	"strings"
	"sync"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/kluis-nl/kluis"
	"github.com/kluis-nl/kluis/internal/audit"
	"github.com/kluis-nl/kluis/internal/mail"
	"github.com/kluis-nl/kluis/internal/store"
)

// deadlineFinishes returns the details of the transfer.finish entries of
// the transfer id.
func deadlineFinishes(t *testing.T, e *env, id string) []string {
	t.Helper()
	var out []string
	err := e.db.AuditSince(e.ctx, time.Time{}, func(r *store.AuditRow) error {
		if r.Action == audit.TransferFinish && r.Object == id {
			out = append(out, r.Actor+" "+r.Detail)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestFileRequestSentAtDeadline: the person uploaded one file completely
// and another in part, and never pressed Done. At the deadline the purge
// round sends the complete file to the requester, drops the other, mails
// the requester, and the link says it was sent; the upload opens with the
// inbox key, bytes identical.
func TestFileRequestSentAtDeadline(t *testing.T) {
	t.Parallel()
	forEachDB(t, func(t *testing.T, newEnv envMaker) {
		e := newEnv(t)
		mails := e.mailbox(t)
		inbox, _ := age.GenerateX25519Identity()
		fr, access := e.newRequest(t, inbox, "Stuur uw loonstroken.")
		up, err := e.svc.StartFileRequest(e.ctx, access, "hierbij")
		if err != nil {
			t.Fatal(err)
		}
		data := randomBytes(7, 200_000)
		f := e.upload(up.Owner, "loonstrook.pdf", data, 70_000)
		half, err := e.svc.NewFile(e.ctx, up.Owner, "half.pdf", "application/pdf", 100_000)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.svc.WriteFile(e.ctx, up.Owner, half.ID, 0, bytes.NewReader(randomBytes(8, 40_000))); err != nil {
			t.Fatal(err)
		}
		// Before the deadline the purge leaves it alone.
		if _, err := e.svc.Purge(e.ctx); err != nil {
			t.Fatal(err)
		}
		if got, err := e.svc.FileRequestOf(e.ctx, requester, fr.ID); err != nil || got.DoneAt != nil {
			t.Fatalf("sent before the deadline: %v %+v", err, got)
		}

		e.clock.Set(fr.ExpiresAt.Add(time.Second))
		if _, err := e.svc.Purge(e.ctx); err != nil {
			t.Fatal(err)
		}
		got, err := e.svc.FileRequestOf(e.ctx, requester, fr.ID)
		if err != nil || got.DoneAt == nil || !got.AtDeadline() || got.State(e.clock.Now()) != "done" || got.Files != 1 || got.Result == nil {
			t.Fatalf("after the deadline: %v %+v", err, got)
		}
		if !got.Result.ExpiresAt.After(e.clock.Now()) {
			t.Errorf("the result expires at %v, before the requester could open it", got.Result.ExpiresAt)
		}
		// The same mail as for Done, once.
		done := mails(mail.KindFileRequestDone, 1)[0]
		if done.To != requester || !strings.Contains(done.Text, "/requests/"+fr.ID) {
			t.Fatalf("requester mail: to %s\n%s", done.To, done.Text)
		}
		fin := deadlineFinishes(t, e, up.Owner.TransferID)
		if len(fin) != 1 || !strings.HasPrefix(fin[0], audit.System+" ") || !strings.Contains(fin[0], "at=deadline") ||
			!strings.Contains(fin[0], "files=1") || !strings.Contains(fin[0], "dropped=1") || !strings.Contains(fin[0], "request="+fr.ID) {
			t.Errorf("audit: %q", fin)
		}
		// The link, even after the request's purge, says it was sent.
		byLink, err := e.svc.FileRequestByLink(e.ctx, access)
		if err != nil || byLink.DoneAt == nil || !byLink.AtDeadline() {
			t.Fatalf("by link: %v %+v", err, byLink)
		}
		// Another round sends nothing more.
		if _, err := e.svc.Purge(e.ctx); err != nil {
			t.Fatal(err)
		}
		if n := len(deadlineFinishes(t, e, up.Owner.TransferID)); n != 1 {
			t.Errorf("%d finishes after a second round", n)
		}
		s, err := e.svc.OpenFileRequest(e.ctx, requester, fr.ID, inbox)
		if err != nil {
			t.Fatal(err)
		}
		c, err := e.svc.Contents(e.ctx, s)
		if err != nil {
			t.Fatal(err)
		}
		if c.Message != "hierbij" || len(c.Files) != 1 || c.Files[0].ID != f.ID {
			t.Fatalf("contents: %q %+v", c.Message, c.Files)
		}
		if b, err := e.readFile(s, f.ID); err != nil || !bytes.Equal(b, data) {
			t.Fatalf("download: %v (equal %v)", err, bytes.Equal(b, data))
		}
		if n := len(e.blobFiles(up.Owner.TransferID)[half.ID]); n != 0 {
			t.Errorf("%d segments of the dropped upload left", n)
		}
	})
}

// TestFileRequestDeadlineNothingSent: a request whose person sent nothing,
// or only began a file, is not sent at the deadline; its draft is purged
// and the link reports it expired (and then unknown).
func TestFileRequestDeadlineNothingSent(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	inbox, _ := age.GenerateX25519Identity()
	fr, access := e.newRequest(t, inbox, "Stuur uw loonstroken.")
	up, err := e.svc.StartFileRequest(e.ctx, access, "")
	if err != nil {
		t.Fatal(err)
	}
	half, err := e.svc.NewFile(e.ctx, up.Owner, "half.pdf", "application/pdf", 100_000)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.WriteFile(e.ctx, up.Owner, half.ID, 0, bytes.NewReader(randomBytes(8, 40_000))); err != nil {
		t.Fatal(err)
	}
	e.clock.Set(fr.ExpiresAt)
	if _, err := e.svc.FileRequestByLink(e.ctx, access); kluis.ErrorCode(err) != kluis.EEXPIRED {
		t.Errorf("by link at the deadline: %v", err)
	}
	if _, err := e.svc.Purge(e.ctx); err != nil {
		t.Fatal(err)
	}
	if got, err := e.svc.FileRequestOf(e.ctx, requester, fr.ID); err != nil || got.DoneAt != nil || got.State(e.clock.Now()) != "expired" {
		t.Fatalf("after the deadline: %v %+v", err, got)
	}
	if n := len(deadlineFinishes(t, e, up.Owner.TransferID)); n != 0 {
		t.Errorf("%d finishes of an empty upload", n)
	}
	if n := len(e.blobFiles(up.Owner.TransferID)); n != 0 {
		t.Errorf("%d blob folders left after the purge", n)
	}
	if _, err := e.svc.FileRequestByLink(e.ctx, access); kluis.ErrorCode(err) != kluis.ENOTFOUND {
		t.Errorf("by link after the purge: %v", err)
	}
}

// TestFileRequestDeadlineOpensPage: the person opens their link after the
// deadline before a purge round ran: the page's lookup sends the upload
// then, once, and the purge round after it sends nothing more.
func TestFileRequestDeadlineOpensPage(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	mails := e.mailbox(t)
	inbox, _ := age.GenerateX25519Identity()
	fr, access := e.newRequest(t, inbox, "Stuur uw loonstroken.")
	up, err := e.svc.StartFileRequest(e.ctx, access, "")
	if err != nil {
		t.Fatal(err)
	}
	e.upload(up.Owner, "a.pdf", randomBytes(9, 5_000))
	e.clock.Set(fr.ExpiresAt.Add(time.Minute))
	got, err := e.svc.FileRequestByLink(e.ctx, access)
	if err != nil || !got.AtDeadline() {
		t.Fatalf("by link: %v %+v", err, got)
	}
	if _, err := e.svc.Purge(e.ctx); err != nil {
		t.Fatal(err)
	}
	mails(mail.KindFileRequestDone, 1)
	if n := len(deadlineFinishes(t, e, up.Owner.TransferID)); n != 1 {
		t.Errorf("%d finishes", n)
	}
}

// TestFileRequestDeadlineTwoInstances: two instances run their purge
// rounds at the same moment past the deadline of many requests; each
// request is sent exactly once (one finish entry, one requester mail).
func TestFileRequestDeadlineTwoInstances(t *testing.T) {
	t.Parallel()
	forEachDB(t, func(t *testing.T, newEnv envMaker) {
		const requests = 6
		a := newEnv(t)
		b := secondInstance(t, a)
		mails := a.mailbox(t)
		inbox, _ := age.GenerateX25519Identity()
		var transfers []string
		var last time.Time
		for i := range requests {
			fr, access := a.newRequest(t, inbox, "Stuur uw loonstroken.")
			up, err := a.svc.StartFileRequest(a.ctx, access, "")
			if err != nil {
				t.Fatal(err)
			}
			a.upload(up.Owner, "a.pdf", randomBytes(uint64(i), 20_000+i))
			transfers = append(transfers, up.Owner.TransferID)
			last = fr.ExpiresAt
		}
		a.clock.Set(last.Add(time.Second))
		for round := range 2 {
			var wg sync.WaitGroup
			for _, e := range []*env{a, b, a, b} {
				wg.Go(func() {
					if _, err := e.svc.Purge(e.ctx); err != nil {
						t.Errorf("round %d: purge: %v", round, err)
					}
				})
			}
			wg.Wait()
		}
		for _, id := range transfers {
			fin := deadlineFinishes(t, a, id)
			if len(fin) != 1 || !strings.Contains(fin[0], "at=deadline") {
				t.Errorf("transfer %s: finishes %q", id, fin)
			}
		}
		mails(mail.KindFileRequestDone, requests)
		list, err := a.svc.FileRequests(a.ctx, requester)
		if err != nil || len(list) != requests {
			t.Fatalf("list: %v %d", err, len(list))
		}
		for _, fr := range list {
			if !fr.AtDeadline() || fr.Files != 1 {
				t.Errorf("request %s: done %v files %d", fr.ID, fr.DoneAt, fr.Files)
			}
		}
	})
}
