package transfer_test

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/kluis-nl/kluis"
	"github.com/kluis-nl/kluis/internal/store"
	"github.com/kluis-nl/kluis/internal/transfer"
)

// TestStatsCountersFollowEngine (issue 21 item 4): the admin statistics'
// counters, kept by the engine's own transactions, equal a count made from
// the audit log and the outbox after creates, uploads, finishes, a
// download, a lock-out, a revoke and the purge, on SQLite and PostgreSQL;
// rolled up, they still do.
func TestStatsCountersFollowEngine(t *testing.T) {
	forEachDB(t, func(t *testing.T, newEnv envMaker) {
		e := newEnv(t)
		e.withAudit()
		start := e.clock.Now()
		from, to := start.AddDate(0, 0, -1), start.AddDate(0, 0, 60)
		same := func(when string) store.Stats {
			t.Helper()
			got, err := e.db.StatsDays(e.ctx, from, to)
			if err != nil {
				t.Fatal(err)
			}
			want, err := e.db.CountStats(e.ctx, from, to)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, want) {
				t.Errorf("%s: statistics\n got %+v\ncount %+v", when, got, want)
			}
			var sum store.Stats
			for _, s := range got {
				sum.TransfersCreated += s.TransfersCreated
				sum.TransfersSent += s.TransfersSent
				sum.Files += s.Files
				sum.Bytes += s.Bytes
				sum.Downloads += s.Downloads
				sum.Lockouts += s.Lockouts
				sum.MailsFailed += s.MailsFailed
			}
			return sum
		}
		r1 := e.readyTransfer(createOpts{}, 1000, 2000)
		if err := e.svc.RecordDelivery(e.ctx, r1.sess, file(0, 1000, transfer.Span{Start: 0, End: 1000})); err != nil {
			t.Fatal(err)
		}
		r2 := e.readyTransfer(createOpts{to: []string{"een@example.nl", "twee@example.nl"}}, 10)
		for i := 0; ; i++ {
			_, err := e.svc.Unlock(e.ctx, r2.fin.Links[1].AccessID, fmt.Sprintf("fout-%d", i))
			var ke *kluis.Error
			if errors.As(err, &ke) && ke.Code == kluis.ELOCKED {
				break
			}
			if i > 100 {
				t.Fatal("no lock-out after 100 wrong passwords")
			}
		}
		r3 := e.readyTransfer(createOpts{}, 500)
		if err := e.svc.Revoke(e.ctx, owner(r3.c), ""); err != nil {
			t.Fatal(err)
		}
		want := store.Stats{TransfersCreated: 3, TransfersSent: 3, Files: 4, Bytes: 3510, Downloads: 1, Lockouts: 1}
		if got := same("before the purge"); got != want {
			t.Errorf("totals %+v, want %+v", got, want)
		}
		if n, err := e.svc.Purge(e.ctx); err != nil || n != 1 {
			t.Fatalf("purged %d (%v), want the revoked transfer", n, err)
		}
		e.clock.Set(r1.c.Transfer.ExpiresAt.Add(time.Hour))
		if n, err := e.svc.Purge(e.ctx); err != nil || n != 2 {
			t.Fatalf("purged %d (%v), want the two expired transfers", n, err)
		}
		if got := same("after the purge"); got != want {
			t.Errorf("totals after the purge %+v, want %+v", got, want)
		}
		if _, err := e.db.RollupStats(e.ctx, e.clock.Now().AddDate(0, 0, 2)); err != nil {
			t.Fatal(err)
		}
		if got := same("rolled up"); got != want {
			t.Errorf("totals rolled up %+v, want %+v", got, want)
		}
	})
}
