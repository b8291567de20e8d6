package transfer_test

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/kluis-nl/kluis"
	"github.com/kluis-nl/kluis/internal/audit"
	"github.com/kluis-nl/kluis/internal/store"
	"github.com/kluis-nl/kluis/internal/transfer"
)

// TestUploadLeaseFencing: two engines ("instances") on one database and
// one blob store. A holds the upload lease and writes; B asks for it (A
// is told to let go), A stalls past its lease, B takes over. A, waking up
// with the right offset, can never add a segment (its blob is removed);
// B finishes, and the file reads back exactly. The clock is injected, so
// the expiry is deterministic.
func TestUploadLeaseFencing(t *testing.T) {
	forEachDB(t, func(t *testing.T, newEnv envMaker) {
		const ttl = time.Second
		a := newEnv(t, func(c *transfer.Config) { c.UploadLease = ttl })
		b := a.reopen(t, a.dir)
		ctx := context.Background()
		c := a.create(createOpts{})
		o := owner(c)
		data := randomBytes(7, 350_000) // segments of 100,000 bytes
		f, err := a.svc.NewFile(ctx, o, "x.bin", "", int64(len(data)))
		if err != nil {
			t.Fatal(err)
		}
		asked := make(chan struct{}, 1)
		la, err := a.svc.LeaseUpload(ctx, f.ID, func() { asked <- struct{}{} })
		if err != nil {
			t.Fatal(err)
		}
		defer la.Release()
		if n, err := a.svc.WriteFile(transfer.WithLease(ctx, la), o, f.ID, 0, bytes.NewReader(data[:100_000])); err != nil || n != 100_000 {
			t.Fatalf("holder's write: %d %v", n, err)
		}

		// B wants the upload: it waits (here: gives up) and A is asked,
		// through the lease row, to let go.
		bctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		_, err = b.svc.LeaseUpload(bctx, f.ID, nil)
		cancel()
		if !errors.Is(err, transfer.ErrLeaseTimeout) {
			t.Fatalf("lease taken while held: %v", err)
		}
		select {
		case <-asked:
		case <-time.After(3 * time.Second):
			t.Fatal("the holder was not asked to release")
		}
		// A plain write (no lease of its own) waits for the holder too, and
		// gives up after two lease durations.
		start := time.Now()
		_, err = b.svc.WriteFile(ctx, o, f.ID, 100_000, bytes.NewReader(data[100_000:200_000]))
		wantCode(t, err, kluis.ECONFLICT)
		if waited := time.Since(start); waited < 2*ttl {
			t.Errorf("plain write gave up after %v", waited)
		}

		// A stalls; its lease expires and B takes over.
		a.clock.Advance(ttl + time.Millisecond)
		lb, err := b.svc.LeaseUpload(ctx, f.ID, nil)
		if err != nil {
			t.Fatalf("takeover of an expired lease: %v", err)
		}
		defer lb.Release()
		segs := len(a.segmentPaths(c.Transfer.ID, f.ID))

		// A wakes up and sends its next segment at the right offset: refused.
		_, err = a.svc.WriteFile(transfer.WithLease(ctx, la), o, f.ID, 100_000, bytes.NewReader(data[100_000:200_000]))
		wantCode(t, err, kluis.ECONFLICT)
		if got := len(a.segmentPaths(c.Transfer.ID, f.ID)); got != segs {
			t.Errorf("stale holder's segment left behind: %d blobs, want %d", got, segs)
		}
		if st, _ := b.svc.FileState(ctx, o, f.ID); st.Offset != 100_000 {
			t.Fatalf("offset after the stale write: %d", st.Offset)
		}
		// B writes on; A tries again at B's new end: still refused.
		if n, err := b.svc.WriteFile(transfer.WithLease(ctx, lb), o, f.ID, 100_000, bytes.NewReader(data[100_000:200_000])); err != nil || n != 100_000 {
			t.Fatalf("new holder's write: %d %v", n, err)
		}
		_, err = a.svc.WriteFile(transfer.WithLease(ctx, la), o, f.ID, 200_000, bytes.NewReader(data[200_000:]))
		wantCode(t, err, kluis.ECONFLICT)
		// The stale holder's release does not free B's lease.
		if err := la.Release(); err != nil {
			t.Fatal(err)
		}
		if n, err := b.svc.WriteFile(transfer.WithLease(ctx, lb), o, f.ID, 200_000, bytes.NewReader(data[200_000:])); err != nil || n != 150_000 {
			t.Fatalf("new holder's last write: %d %v", n, err)
		}
		if _, err := b.svc.CompleteFile(ctx, o, f.ID); err != nil {
			t.Fatal(err)
		}
		if err := lb.Release(); err != nil {
			t.Fatal(err)
		}
		if got := len(a.segmentPaths(c.Transfer.ID, f.ID)); got != 4 {
			t.Errorf("%d blobs, want 4 segments", got)
		}
		fin := a.finish(c)
		got, err := a.readFile(a.unlock(fin.Links[0].AccessID, secretOf(c)), f.ID)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("read back: %d bytes, equal=%v, err=%v", len(got), bytes.Equal(got, data), err)
		}
	})
}

// TestUploadLeaseLocalRelease: a second request in the same process asks
// the holder directly, and gets the lease as soon as it is released.
func TestUploadLeaseLocalRelease(t *testing.T) {
	e := newEnv(t, func(c *transfer.Config) { c.UploadLease = 10 * time.Second })
	ctx := context.Background()
	c := e.create(createOpts{})
	f, err := e.svc.NewFile(ctx, owner(c), "x.bin", "", 10)
	if err != nil {
		t.Fatal(err)
	}
	var l1 *transfer.UploadLease
	released := make(chan error, 1)
	l1, err = e.svc.LeaseUpload(ctx, f.ID, func() { released <- l1.Release() })
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	l2, err := e.svc.LeaseUpload(ctx, f.ID, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Release()
	if err := <-released; err != nil {
		t.Fatal(err)
	}
	// Far below the lease duration: the holder let go on request.
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("second request waited %v", d)
	}
	if l2.Token() == l1.Token() {
		t.Error("the new lease reuses the old token")
	}
}

// TestPurgeOnTwoInstances: two engines on one database and blob store run
// the purge at the same moment over the same expired transfers. Every
// transfer is purged exactly once (one audit event, counted by one of
// them) and no blob is left.
func TestPurgeOnTwoInstances(t *testing.T) {
	forEachDB(t, func(t *testing.T, newEnv envMaker) {
		a := newEnv(t)
		b := a.reopen(t, a.dir)
		const n = 8
		ids := map[string]bool{}
		for i := range n {
			c := a.create(createOpts{expires: a.clock.Now().Add(time.Hour)})
			a.upload(owner(c), "f.bin", randomBytes(uint64(i), 150_000))
			ids[c.Transfer.ID] = true
		}
		a.clock.Advance(2 * time.Hour)
		var wg sync.WaitGroup
		var counts [2]int
		for i, e := range []*env{a, b} {
			wg.Go(func() {
				k, err := e.svc.Purge(context.Background())
				if err != nil {
					t.Error(err)
				}
				counts[i] = k
			})
		}
		wg.Wait()
		t.Logf("purged by A: %d, by B: %d", counts[0], counts[1])
		if counts[0]+counts[1] != n {
			t.Errorf("purged %d + %d, want %d in total", counts[0], counts[1], n)
		}
		events := map[string]int{}
		if err := a.db.AuditSince(a.ctx, time.Time{}, func(r *store.AuditRow) error {
			if r.Action == audit.TransferPurge {
				events[r.Object]++
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		for id := range ids {
			if events[id] != 1 {
				t.Errorf("transfer %s: %d purge events, want 1", id, events[id])
			}
			if left := a.blobFiles(id); len(left) != 0 {
				t.Errorf("transfer %s: blobs left: %v", id, left)
			}
		}
	})
}

// TestClearStaleLeases: at start on SQLite (one process per database) the
// leases of an earlier run are dropped, so a resuming client does not wait
// for a dead process's lease; on PostgreSQL other instances' leases stay.
func TestClearStaleLeases(t *testing.T) {
	forEachDB(t, func(t *testing.T, newEnv envMaker) {
		old := newEnv(t)
		ctx := context.Background()
		c := old.create(createOpts{})
		f, err := old.svc.NewFile(ctx, owner(c), "x.bin", "", 10)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := old.svc.LeaseUpload(ctx, f.ID, nil); err != nil {
			t.Fatal(err)
		}
		// The "earlier run" never releases (it crashed); a new process
		// starts on the same database.
		fresh := old.reopen(t, old.dir)
		if err := fresh.svc.ClearStaleLeases(ctx); err != nil {
			t.Fatal(err)
		}
		wctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		defer cancel()
		l, err := fresh.svc.LeaseUpload(wctx, f.ID, nil)
		if old.db.Dialect() == store.SQLite {
			if err != nil {
				t.Fatalf("SQLite: lease of the earlier run still blocks: %v", err)
			}
			l.Release()
		} else if !errors.Is(err, transfer.ErrLeaseTimeout) {
			t.Fatalf("PostgreSQL: another instance's live lease was dropped (err %v)", err)
		}
	})
}
