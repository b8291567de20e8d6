package ratelimit_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kluis-nl/kluis/internal/kluistest"
	"github.com/kluis-nl/kluis/internal/ratelimit"
	"github.com/kluis-nl/kluis/internal/store"
	"github.com/kluis-nl/kluis/internal/store/storetest"
)

// twoHandles opens two handles ("instances") on one fresh database.
func twoHandles(t *testing.T, dialect string) (*store.DB, *store.DB) {
	t.Helper()
	ctx := context.Background()
	var open func() (*store.DB, error)
	if dialect == "postgres" {
		dsn := storetest.Postgres(t)
		open = func() (*store.DB, error) { return store.OpenPostgres(ctx, dsn) }
	} else {
		path := filepath.Join(t.TempDir(), "kluis.db")
		open = func() (*store.DB, error) { return store.OpenSQLite(ctx, path) }
	}
	var dbs [2]*store.DB
	for i := range dbs {
		db, err := open()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		dbs[i] = db
	}
	return dbs[0], dbs[1]
}

// TestSharedLimitAcrossInstances: two limiters, each on its own handle to
// one database, enforce one per-IP and one global limit together, refill
// at the configured rate, and a refusal by the global bucket costs the
// client nothing. Without Shared the same two limiters let through twice
// as much.
func TestSharedLimitAcrossInstances(t *testing.T) {
	for _, dialect := range []string{"postgres", "sqlite"} {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			if dialect == "postgres" {
				storetest.RequirePostgres(t)
			}
			db1, db2 := twoHandles(t, dialect)
			clk := kluistest.NewClock()
			cfg := ratelimit.Config{PerMinute: 60, Burst: 5, GlobalPerMinute: 600, GlobalBurst: 8, Now: clk.Now}
			c1, c2 := cfg, cfg
			c1.Shared, c2.Shared = db1, db2
			lims := []*ratelimit.Limiter{ratelimit.New(c1), ratelimit.New(c2)}
			x := netip.MustParseAddr("203.0.113.9")
			allowed := 0
			for i := range 12 {
				if ok, _ := lims[i%2].Allow(context.Background(), x); ok {
					allowed++
				}
			}
			if allowed != 5 {
				t.Fatalf("one client through two instances: %d allowed, want the burst of 5", allowed)
			}
			ok, wait := lims[1].Allow(context.Background(), x)
			if ok || wait <= 0 || wait > time.Second {
				t.Errorf("over the limit: ok=%v wait=%v", ok, wait)
			}
			// Other clients share the global burst of 8: 3 left.
			others := 0
			for i := range 6 {
				ip := netip.AddrFrom4([4]byte{198, 51, 100, byte(i + 1)})
				if ok, _ := lims[i%2].Allow(context.Background(), ip); ok {
					others++
				}
			}
			if others != 3 {
				t.Errorf("global limit across instances: %d others allowed, want 3", others)
			}
			// One second later: one token for x (60/min); the global bucket
			// got 10 (600/min) back, up to its burst.
			clk.Advance(time.Second)
			if ok, _ := lims[0].Allow(context.Background(), x); !ok {
				t.Error("x refused after one interval")
			}
			if ok, _ := lims[1].Allow(context.Background(), x); ok {
				t.Error("x got two tokens in one interval")
			}
			// A global refusal gives the client's token back: empty the
			// global bucket with fresh clients, then y is refused, and once
			// the global bucket has room again y still has its whole burst.
			for i := range 20 {
				lims[i%2].Allow(context.Background(), netip.AddrFrom4([4]byte{192, 0, 2, byte(i + 1)}))
			}
			y := netip.MustParseAddr("198.51.100.200")
			for range 10 {
				if ok, _ := lims[0].Allow(context.Background(), y); ok {
					t.Fatal("allowed with the global bucket empty")
				}
			}
			clk.Advance(10 * time.Second) // global full again (8); y's bucket untouched
			got := 0
			for i := range 8 {
				if ok, _ := lims[i%2].Allow(context.Background(), y); ok {
					got++
				}
			}
			if got != 5 {
				t.Errorf("y after global refusals: %d allowed, want its full burst of 5", got)
			}

			// Concurrent requests from one client on both instances at one
			// instant: exactly the burst passes.
			clk.Advance(time.Minute)
			z := netip.MustParseAddr("2001:db8:1:2::77")
			var passed atomic.Int32
			var wg sync.WaitGroup
			for i := range 24 {
				wg.Go(func() {
					if ok, _ := lims[i%2].Allow(context.Background(), z); ok {
						passed.Add(1)
					}
				})
			}
			wg.Wait()
			if passed.Load() != 5 {
				t.Errorf("concurrent: %d passed, want 5", passed.Load())
			}

			// The in-memory limiters, for contrast, each allow the burst.
			local := []*ratelimit.Limiter{ratelimit.New(cfg), ratelimit.New(cfg)}
			n := 0
			for i := range 12 {
				if ok, _ := local[i%2].Allow(context.Background(), x); ok {
					n++
				}
			}
			if n != 10 {
				t.Errorf("two unshared limiters: %d allowed, want 10", n)
			}
		})
	}
}

// recordingShared notes the bucket keys a limiter uses.
type recordingShared struct {
	ratelimit.Shared
	mu   sync.Mutex
	keys []string
}

func (r *recordingShared) TakeRateToken(ctx context.Context, key string, now time.Time, interval time.Duration, burst int) (bool, time.Duration, error) {
	r.mu.Lock()
	r.keys = append(r.keys, key)
	r.mu.Unlock()
	return r.Shared.TakeRateToken(ctx, key, now, interval, burst)
}

// TestSharedKeyHash: with KeyHash, the shared table names a client by the
// hash only, never by its address, and one client still has one bucket.
func TestSharedKeyHash(t *testing.T) {
	db, _ := twoHandles(t, "sqlite")
	rec := &recordingShared{Shared: db}
	clk := kluistest.NewClock()
	lim := ratelimit.New(ratelimit.Config{PerMinute: 60, Burst: 3, GlobalPerMinute: 600, GlobalBurst: 100, Now: clk.Now,
		Shared: rec, KeyHash: func(ip string) string { return fmt.Sprintf("%x", sha256.Sum256([]byte(ip))) }})
	x := netip.MustParseAddr("198.51.100.23")
	allowed := 0
	for range 5 {
		if ok, _ := lim.Allow(context.Background(), x); ok {
			allowed++
		}
	}
	if allowed != 3 {
		t.Fatalf("%d allowed, want the burst of 3", allowed)
	}
	for _, k := range rec.keys {
		if want := fmt.Sprintf("iph:%x", sha256.Sum256([]byte("198.51.100.23"))); k != "global" && k != want {
			t.Errorf("bucket key %q: want the hashed client key", k)
		}
		if strings.Contains(k, "198.51.100") {
			t.Errorf("bucket key %q holds the client's address", k)
		}
	}
}

// TestFailedClientsLeaveTheReserve: a client marked as failing gets a
// global token only while more than Reserve are left; clients that never
// failed may use the rest. With Shared the mark is seen by every instance
// and is stored under a keyed hash only.
func TestFailedClientsLeaveTheReserve(t *testing.T) {
	for _, mode := range []string{"memory", "sqlite", "postgres"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			clk := kluistest.NewClock()
			cfg := ratelimit.Config{PerMinute: 600, Burst: 100, GlobalPerMinute: 60, GlobalBurst: 8, Reserve: 3, Now: clk.Now}
			one := ratelimit.New(cfg)
			lims := []*ratelimit.Limiter{one, one} // in memory: one instance
			var rec *recordingShared
			if mode != "memory" {
				if mode == "postgres" {
					storetest.RequirePostgres(t)
				}
				db1, db2 := twoHandles(t, mode)
				rec = &recordingShared{Shared: db1}
				c1, c2 := cfg, cfg
				c1.Shared, c2.Shared = rec, db2
				hash := func(ip string) string { return fmt.Sprintf("%x", sha256.Sum256([]byte(ip))) }
				c1.KeyHash, c2.KeyHash = hash, hash
				lims = []*ratelimit.Limiter{ratelimit.New(c1), ratelimit.New(c2)}
			}
			bad := netip.MustParseAddr("198.51.100.66")
			good := netip.MustParseAddr("203.0.113.7")
			lims[0].Failed(context.Background(), bad)
			got := 0
			for i := range 10 {
				if ok, wait := lims[i%2].Allow(context.Background(), bad); ok {
					got++
				} else if wait <= 0 {
					t.Fatal("refused without a wait")
				}
			}
			if got != 5 {
				t.Errorf("failing client: %d allowed, want 5 (8 minus the reserve of 3)", got)
			}
			got = 0
			for i := range 10 {
				if ok, _ := lims[i%2].Allow(context.Background(), good); ok {
					got++
				}
			}
			if got != 3 {
				t.Errorf("client without failures: %d allowed, want the reserve of 3", got)
			}
			if rec != nil {
				for _, k := range rec.keys {
					if strings.Contains(k, "198.51.100") {
						t.Errorf("key %q holds the client's address", k)
					}
				}
			}
			// The mark ends after FailMemory.
			clk.Advance(time.Hour + time.Minute)
			got = 0
			for i := range 10 {
				if ok, _ := lims[i%2].Allow(context.Background(), bad); ok {
					got++
				}
			}
			if got != 8 {
				t.Errorf("an hour later: %d allowed, want the whole global burst of 8", got)
			}
		})
	}
}

func (r *recordingShared) MarkRateKey(ctx context.Context, key string, until time.Time) error {
	r.mu.Lock()
	r.keys = append(r.keys, key)
	r.mu.Unlock()
	return r.Shared.MarkRateKey(ctx, key, until)
}

// TestSharedHonoursRequestContext: the shared buckets are asked with the
// request's context. While another instance holds the global bucket's row
// (here: an open transaction), a request whose client goes away is refused
// as soon as its context ends: it is neither let through by this
// instance's own buckets (which decide only when the database fails) nor
// logged as a database failure, and its client is not charged for it.
func TestSharedHonoursRequestContext(t *testing.T) {
	storetest.RequirePostgres(t)
	db1, db2 := twoHandles(t, "postgres")
	clk := kluistest.NewClock()
	logs := kluistest.NewLogs()
	lim := ratelimit.New(ratelimit.Config{PerMinute: 60, Burst: 5, GlobalPerMinute: 600, GlobalBurst: 50, Now: clk.Now, Shared: db1, Log: logs.Logger()})

	// Another instance is in the middle of taking a global token.
	ctx := context.Background()
	tx, err := db2.BeginTx(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if ok, _, err := tx.Q.TakeRateToken(ctx, "global", clk.Now(), 100*time.Millisecond, 50); err != nil || !ok {
		t.Fatalf("holding the global row: %v %v", ok, err)
	}

	x := netip.MustParseAddr("203.0.113.9")
	rctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	if ok, _ := lim.Allow(rctx, x); ok {
		t.Fatal("a request whose context ended while the global bucket was busy was let through")
	}
	if rctx.Err() == nil {
		t.Fatal("Allow returned before the request's context ended, with the global row still locked")
	}
	if n := logs.Count("shared rate limit failed; this instance's own limits apply"); n != 0 {
		t.Errorf("an ended request was logged as a database failure:\n%s", logs)
	}

	// Once the other instance is done, x still has its whole burst: the
	// token taken for the ended request was given back.
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	got := 0
	for range 10 {
		if ok, _ := lim.Allow(ctx, x); ok {
			got++
		}
	}
	if got != 5 {
		t.Errorf("after the ended request: %d allowed, want the whole burst of 5", got)
	}
	// An already ended request never reaches the database.
	done, stop := context.WithCancel(ctx)
	stop()
	if ok, _ := lim.Allow(done, netip.MustParseAddr("203.0.113.10")); ok {
		t.Error("a request whose context had ended was let through")
	}
}
