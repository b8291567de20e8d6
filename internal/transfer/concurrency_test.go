package transfer_test

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/kluis-nl/kluis"
	"github.com/kluis-nl/kluis/internal/audit"
	"github.com/kluis-nl/kluis/internal/store"
	"github.com/kluis-nl/kluis/internal/transfer"
)

// secondInstance opens another engine on a's database, with a connection
// pool of its own, and a's data folder (blobs, master key) and clock: a
// second `kluis serve` beside the first.
func secondInstance(t *testing.T, a *env) *env {
	t.Helper()
	return a.reopen(t, a.dir)
}

// auditCounts counts the audit entries per action and object.
func auditCounts(t *testing.T, e *env) map[string]map[string]int {
	t.Helper()
	out := map[string]map[string]int{}
	err := e.db.AuditSince(e.ctx, time.Time{}, func(r *store.AuditRow) error {
		if out[r.Action] == nil {
			out[r.Action] = map[string]int{}
		}
		out[r.Action][r.Object]++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestTwoInstancesUnderLoad is issue 21 item 3: PostgreSQL without one
// global write lock. Many clients create, upload and finish on two
// instances at once (each file's first half on one instance and the rest
// on the other, each finish raced against one more file on the other
// instance, some transfers revoked and purged while others upload), with
// tight quotas; afterwards every invariant the write lock used to keep is
// checked: the open drafts and the daily volume of each sender, each
// transfer's size budget and file indexes, no transfer ready with a file
// that is not complete, every ready file downloads intact from the other
// instance, and exactly one audit entry per create, finish, completed file
// and purge.
func TestTwoInstancesUnderLoad(t *testing.T) {
	t.Parallel()
	forEachDB(t, func(t *testing.T, newEnv envMaker) {
		const (
			senders, clients, rounds = 4, 24, 5
			maxDrafts                = 3
			maxSize                  = 500_000
			dayLimit                 = 2_000_000
		)
		a := newEnv(t, func(c *transfer.Config) { c.MaxTransferSize = maxSize })
		b := secondInstance(t, a)
		insts := []*env{a, b}
		for _, e := range insts {
			e.withPolicy(fmt.Sprintf(`{"defaults": {"max_open_drafts": %d, "max_bytes_per_day": "%d"}}`, maxDrafts, dayLimit))
		}
		ctx := a.ctx

		type fileRec struct {
			id   string
			data []byte
		}
		type transferRec struct {
			sender           string
			o                transfer.Owner
			c                *transfer.Created
			fin              *transfer.Finished
			files            []fileRec
			opened, closed   time.Time // as the client saw them; closed zero: still open
			revoked, readied bool
		}
		var mu sync.Mutex
		var recs []*transferRec
		var unexpected []string
		// ok reports whether err is nil; an error with one of the codes
		// is an expected refusal, any other is recorded.
		ok := func(what string, err error, codes ...kluis.Code) bool {
			if err == nil {
				return true
			}
			if !slices.Contains(codes, kluis.ErrorCode(err)) {
				mu.Lock()
				unexpected = append(unexpected, fmt.Sprintf("%s: %v (code %s)", what, err, kluis.ErrorCode(err)))
				mu.Unlock()
			}
			return false
		}

		// The purge runs on both instances while the clients work.
		stop := make(chan struct{})
		var purgers sync.WaitGroup
		for _, e := range insts {
			purgers.Go(func() {
				for {
					select {
					case <-stop:
						return
					case <-time.After(20 * time.Millisecond):
					}
					_, err := e.svc.Purge(ctx)
					ok("purge", err)
				}
			})
		}

		parallel(clients, func(i int) error {
			rng := rand.New(rand.NewPCG(uint64(i), 21))
			pick := func() *env { return insts[rng.IntN(len(insts))] }
			sender := fmt.Sprintf("afzender-%d@example.nl", i%senders)
			for r := range rounds {
				c, err := pick().svc.Create(ctx, transfer.CreateRequest{SenderEmail: sender, To: []string{"ontvanger@example.nl"},
					PasswordMode: kluis.PasswordNone, Message: "bericht"})
				if !ok("create", err, kluis.EQUOTA) {
					continue
				}
				rec := &transferRec{sender: sender, o: owner(c), c: c, opened: time.Now()}
				mu.Lock()
				recs = append(recs, rec)
				mu.Unlock()
				for k := range 1 + rng.IntN(3) {
					size := 50_000 + rng.IntN(250_000)
					f, err := pick().svc.NewFile(ctx, rec.o, "f.bin", "", int64(size))
					if !ok("new file", err, kluis.EQUOTA, kluis.ETOOLARGE) {
						continue
					}
					data := randomBytes(uint64(i*1000+r*10+k), size)
					// The first half on one instance, the rest on the other.
					if _, err := a.svc.WriteFile(ctx, rec.o, f.ID, 0, bytes.NewReader(data[:size/2])); !ok("write", err) {
						continue
					}
					if _, err := b.svc.WriteFile(ctx, rec.o, f.ID, int64(size/2), bytes.NewReader(data[size/2:])); !ok("resume", err) {
						continue
					}
					if _, err := pick().svc.CompleteFile(ctx, rec.o, f.ID); !ok("complete", err) {
						continue
					}
					rec.files = append(rec.files, fileRec{f.ID, data})
				}
				switch {
				case r%5 == 3:
					closing := time.Now()
					if ok("revoke", pick().svc.Revoke(ctx, rec.o, "")) {
						rec.revoked, rec.closed = true, closing
					}
				case r%7 == 5:
					// Left unsent: it stays an open draft.
				default:
					// Finish on one instance while the other adds a file:
					// one of them must lose.
					closing := time.Now()
					var fin *transfer.Finished
					var nf *kluis.File
					var finErr, nfErr error
					var race sync.WaitGroup
					race.Go(func() { fin, finErr = a.svc.Finish(ctx, rec.o, c.LinkSecret) })
					race.Go(func() { nf, nfErr = b.svc.NewFile(ctx, rec.o, "laat.txt", "", 10) })
					race.Wait()
					if finErr == nil && nfErr == nil {
						ok("finish race", fmt.Errorf("Finish and NewFile both succeeded on transfer %s", rec.o.TransferID))
						continue
					}
					ok("new file beside finish", nfErr, kluis.ECONFLICT, kluis.EQUOTA, kluis.ETOOLARGE)
					ok("finish beside a new file", finErr, kluis.ECONFLICT)
					if nfErr == nil {
						// The file won: write it, then finish.
						data := []byte("0123456789")
						if _, err := pick().svc.WriteFile(ctx, rec.o, nf.ID, 0, bytes.NewReader(data)); !ok("write late file", err) {
							continue
						}
						if _, err := pick().svc.CompleteFile(ctx, rec.o, nf.ID); !ok("complete late file", err) {
							continue
						}
						rec.files = append(rec.files, fileRec{nf.ID, data})
						closing = time.Now()
						if fin, finErr = pick().svc.Finish(ctx, rec.o, c.LinkSecret); !ok("finish", finErr) {
							continue
						}
					}
					rec.fin, rec.readied, rec.closed = fin, true, closing
				}
			}
			return nil
		})
		close(stop)
		purgers.Wait()
		if _, err := a.svc.Purge(ctx); err != nil {
			t.Fatal(err)
		}
		for _, u := range unexpected {
			t.Error("unexpected:", u)
		}

		// Open drafts: the intervals the clients saw a transfer open lie
		// inside the true ones, so more than maxDrafts of them at once
		// for one sender is a broken quota.
		bySender := map[string][]*transferRec{}
		for _, r := range recs {
			bySender[r.sender] = append(bySender[r.sender], r)
		}
		for s, rs := range bySender {
			type ev struct {
				at time.Time
				d  int
			}
			var evs []ev
			for _, r := range rs {
				evs = append(evs, ev{r.opened, +1})
				if !r.closed.IsZero() {
					evs = append(evs, ev{r.closed, -1})
				}
			}
			sort.Slice(evs, func(i, j int) bool {
				if evs[i].at.Equal(evs[j].at) {
					return evs[i].d < evs[j].d
				}
				return evs[i].at.Before(evs[j].at)
			})
			open, most := 0, 0
			for _, e := range evs {
				open += e.d
				most = max(most, open)
			}
			if most > maxDrafts {
				t.Errorf("%s had %d transfers open at once, quota %d", s, most, maxDrafts)
			}
			// The daily volume: what the transfers that were not revoked
			// declare (revoking gives bytes back, nothing adds any later).
			var sum int64
			for _, r := range rs {
				if !r.revoked {
					for _, f := range r.files {
						sum += int64(len(f.data))
					}
				}
			}
			if sum > dayLimit {
				t.Errorf("%s's transfers hold %d bytes, daily volume %d", s, sum, dayLimit)
			}
		}

		counts := auditCounts(t, a)
		ready := 0
		for _, r := range recs {
			id := r.o.TransferID
			row, err := a.db.Transfer(ctx, id)
			if err != nil {
				t.Fatalf("transfer %s: %v", id, err)
			}
			files, err := a.db.Files(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			var idx []int
			var size int64
			for _, f := range files {
				idx = append(idx, f.Index)
			}
			for _, f := range r.files {
				size += int64(len(f.data))
			}
			if size > maxSize {
				t.Errorf("transfer %s holds %d bytes, budget %d", id, size, maxSize)
			}
			for k, x := range idx {
				if x != k {
					t.Errorf("transfer %s: file indexes %v, want 0..%d", id, idx, len(idx)-1)
					break
				}
			}
			if got := counts[audit.TransferCreate][id]; got != 1 {
				t.Errorf("transfer %s: %d create entries", id, got)
			}
			switch row.State {
			case string(kluis.StateReady):
				ready++
				if !r.readied {
					t.Errorf("transfer %s is ready, but no Finish succeeded", id)
				}
				if got := counts[audit.TransferFinish][id]; got != 1 {
					t.Errorf("transfer %s: %d finish entries", id, got)
				}
				if len(files) != len(r.files) {
					t.Errorf("transfer %s is ready with %d files; the client completed %d", id, len(files), len(r.files))
				}
				for _, f := range files {
					if !f.Complete {
						t.Errorf("transfer %s is ready with file %d not complete", id, f.Index)
					}
				}
				if got := counts[audit.FileComplete][id]; got != len(files) {
					t.Errorf("transfer %s: %d file_complete entries for %d files", id, got, len(files))
				}
				// Every file downloads intact, here from the other instance.
				s := b.unlock(r.fin.Links[0].AccessID, r.c.LinkSecret)
				for _, f := range r.files {
					got, err := b.readFile(s, f.id)
					if err != nil || !bytes.Equal(got, f.data) {
						t.Errorf("transfer %s file %s: %v (intact %v)", id, f.id, err, bytes.Equal(got, f.data))
					}
				}
			case string(kluis.StatePurged):
				if !r.revoked {
					t.Errorf("transfer %s purged but not revoked", id)
				}
				if got := counts[audit.TransferPurge][id]; got != 1 {
					t.Errorf("transfer %s: %d purge entries", id, got)
				}
			default:
				if r.readied || r.revoked {
					t.Errorf("transfer %s is %s after the client finished or revoked it", id, row.State)
				}
			}
		}
		if ready == 0 || len(recs) < clients {
			t.Errorf("only %d transfers, %d ready: the load did not run", len(recs), ready)
		}
		t.Logf("%d transfers, %d ready", len(recs), ready)
	})
}

// TestPurgeBatchesOnTwoInstances: four purge rounds on two instances at
// once over a backlog of several batches purge every transfer exactly once
// (one audit entry each): the batch claims its transfers with their rows
// locked and reads them again. Without the lock the rounds purged (and
// audited) the same transfers twice.
func TestPurgeBatchesOnTwoInstances(t *testing.T) {
	t.Parallel()
	forEachDB(t, func(t *testing.T, newEnv envMaker) {
		a := newEnv(t)
		b := secondInstance(t, a)
		const n = 1200
		ids := make([]string, n)
		parallel(8, func(i int) error {
			for k := i; k < n; k += 8 {
				c, err := a.svc.Create(a.ctx, transfer.CreateRequest{SenderEmail: fmt.Sprintf("afzender-%d@example.nl", k%100),
					To: []string{"ontvanger@example.nl"}, PasswordMode: kluis.PasswordNone, ExpiresAt: a.clock.Now().Add(time.Hour)})
				if err != nil {
					t.Error(err)
					return err
				}
				ids[k] = c.Transfer.ID
			}
			return nil
		})
		a.clock.Advance(2 * time.Hour)
		var mu sync.Mutex
		total := 0
		errs := parallel(4, func(i int) error {
			k, err := []*env{a, b}[i%2].svc.Purge(a.ctx)
			mu.Lock()
			total += k
			mu.Unlock()
			return err
		})
		for _, err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		counts := auditCounts(t, a)[audit.TransferPurge]
		twice := 0
		for _, id := range ids {
			if counts[id] != 1 {
				twice++
			}
		}
		if twice > 0 || total != n {
			t.Errorf("%d of %d transfers purged other than once; the rounds report %d purged", twice, n, total)
		}
	})
}
