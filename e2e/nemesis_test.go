package e2e

// The nemesis (security.md #25 and #33, issue 20): `kluis serve` runs as its
// own process while client workers create transfers, upload over tus (with
// interruptions of their own) and plain PUT, finish, download, revoke and
// ask for verification codes, and while the purge, the collector and the
// mail outbox work. At moments drawn from a seed the harness kills the
// server with SIGKILL and starts it again on the same data. Clients record
// a history that tells what the server acknowledged (a 2xx answer fully
// received) from what was in flight at a kill (it may or may not have
// happened); the checker holds the server to the first and allows either
// outcome for the second.
//
// Two variants: SQLite with a local data folder, and PostgreSQL with S3
// (versitygw). Both send mail through their own Mailpit process.
//
// Counts: by default 20 kills against SQLite and 5 against PostgreSQL+S3,
// which fit CI's budget; -nemesis.full (or KLUIS_TEST_NEMESIS_FULL=1) runs
// 200 and 50, and -nemesis.kills=SQLITE,POSTGRES (KLUIS_TEST_NEMESIS_KILLS)
// sets other counts. The seed is printed at start; -nemesis.seed=N (or
// KLUIS_TEST_NEMESIS_SEED=N) replays its kill moments and workload choices
// (the interleaving with the server's own timing cannot be replayed).
// KLUIS_TEST_NEMESIS_OUT=DIR keeps each run's history (JSON lines) there.

import (
	"context"
	"flag"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kluis-nl/kluis/internal/store/storetest"
)

var (
	nemesisSeedFlag  = flag.Uint64("nemesis.seed", 0, "seed of the nemesis's kill moments and workload (0: from the clock); also KLUIS_TEST_NEMESIS_SEED")
	nemesisFullFlag  = flag.Bool("nemesis.full", false, "run the nemesis with the full counts (200 kills against SQLite, 50 against PostgreSQL+S3); also KLUIS_TEST_NEMESIS_FULL=1")
	nemesisKillsFlag = flag.String("nemesis.kills", "", "nemesis kill counts as SQLITE,POSTGRES (e.g. 40,10); also KLUIS_TEST_NEMESIS_KILLS")
)

// Kill counts: CI's default and the full run of issue 20.
const (
	nemesisCIKillsSQLite   = 20
	nemesisCIKillsPostgres = 5
	nemesisFullKillsSQLite = 200
	nemesisFullKillsPG     = 50
)

// nemConfig is one variant's run.
type nemConfig struct {
	variant string // "sqlite" or "postgres-s3"
	seed    uint64
	kills   int
	workers int
}

// TestNemesis kills `kluis serve` with SIGKILL at random moments while
// clients work, restarts it, and checks the history (see the file comment).
func TestNemesis(t *testing.T) {
	if testing.Short() {
		t.Skip("the nemesis does not run in -short mode: go test ./e2e -run TestNemesis")
	}
	seed := *nemesisSeedFlag
	if v := os.Getenv("KLUIS_TEST_NEMESIS_SEED"); v != "" && seed == 0 {
		s, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("KLUIS_TEST_NEMESIS_SEED=%q: not a number", v)
		}
		seed = s
	}
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	kSQLite, kPG := nemesisCIKillsSQLite, nemesisCIKillsPostgres
	if *nemesisFullFlag || os.Getenv("KLUIS_TEST_NEMESIS_FULL") == "1" {
		kSQLite, kPG = nemesisFullKillsSQLite, nemesisFullKillsPG
	}
	kills := *nemesisKillsFlag
	if kills == "" {
		kills = os.Getenv("KLUIS_TEST_NEMESIS_KILLS")
	}
	if kills != "" {
		a, b, ok := strings.Cut(kills, ",")
		x, err1 := strconv.Atoi(strings.TrimSpace(a))
		y, err2 := strconv.Atoi(strings.TrimSpace(b))
		if !ok || err1 != nil || err2 != nil || x < 0 || y < 0 {
			t.Fatalf("nemesis kills %q: want SQLITE,POSTGRES, e.g. 40,10", kills)
		}
		kSQLite, kPG = x, y
	}
	msg := fmt.Sprintf("nemesis seed %d (replay: go test ./e2e -run TestNemesis -nemesis.seed=%d), kills: %d SQLite, %d PostgreSQL+S3",
		seed, seed, kSQLite, kPG)
	fmt.Fprintln(os.Stderr, msg)
	t.Log(msg)

	t.Run("SQLite", func(t *testing.T) {
		t.Parallel()
		if kSQLite == 0 {
			t.Skip("0 kills")
		}
		runNemesis(t, nemConfig{variant: "sqlite", seed: seed, kills: kSQLite, workers: 4})
	})
	t.Run("PostgresS3", func(t *testing.T) {
		t.Parallel()
		if kPG == 0 {
			t.Skip("0 kills")
		}
		runNemesis(t, nemConfig{variant: "postgres-s3", seed: seed ^ 0x5eed_0f_9057, kills: kPG, workers: 3})
	})
}

// killDelay draws how long the server runs before the next kill: a quarter
// of the kills land within 300 ms of the start (recovery, the purge and the
// collector at start), most within a few seconds, some after long enough
// for a purge round and the collector to finish.
func killDelay(rng *mrand.Rand) time.Duration {
	switch p := rng.Float64(); {
	case p < 0.25:
		return time.Duration(rng.Int64N(int64(300 * time.Millisecond)))
	case p < 0.85:
		return 300*time.Millisecond + time.Duration(rng.Int64N(int64(2700*time.Millisecond)))
	default:
		return 3*time.Second + time.Duration(rng.Int64N(int64(9*time.Second)))
	}
}

func runNemesis(t *testing.T, cfg nemConfig) {
	began := time.Now()
	n := newNemesis(t, cfg)
	switch cfg.variant {
	case "sqlite":
	case "postgres-s3":
		n.dsn = storetest.Postgres(t)
		n.mc, n.bucket, n.prefix, n.storage = s3Storage(t, "nemesis-")
		n.args = append(n.args, "--db", n.dsn, "--storage", n.storage)
	default:
		t.Fatalf("unknown variant %q", cfg.variant)
	}
	n.start()
	n.apiKey = n.createAPIKey()
	t.Logf("%s: server %s, data %s, Mailpit %s; %d kills, %d workers, seed %d",
		cfg.variant, n.base, n.data, n.mp.api(), cfg.kills, cfg.workers, cfg.seed)

	ctx, stopWork := context.WithCancel(context.Background())
	defer stopWork()
	var wg sync.WaitGroup
	// A run that ends early (t.Fatal here) must not leave workers behind
	// that report into a finished test; its logs are kept like a failed
	// run's.
	completed := false
	t.Cleanup(func() {
		if !completed {
			defer n.keepLogs()
		}
		n.aborted.Store(true)
		stopWork()
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(2 * time.Minute):
			t.Log("workers still running 2 minutes after the run ended early")
		}
	})
	for i := range cfg.workers {
		w := n.newWorker(i)
		wg.Add(1)
		go func() { defer wg.Done(); w.run(ctx) }()
	}

	rng := mrand.New(mrand.NewPCG(cfg.seed, 0x6b696c6c))
	for k := 1; k <= cfg.kills; k++ {
		d := killDelay(rng)
		time.Sleep(d)
		n.checkCollected(false)
		n.kill(k, d)
		n.offline(k)
		n.start()
		n.probeRefusals()
	}
	killsDone := time.Now()

	// No more kills: the workers finish what they started.
	n.draining.Store(true)
	stopWork()
	drained := make(chan struct{})
	go func() { wg.Wait(); close(drained) }()
	select {
	case <-drained:
	case <-time.After(5 * time.Minute):
		t.Errorf("the workers did not finish within 5 minutes after the last kill")
		n.tr.CloseIdleConnections()
		<-drained
	}
	t.Logf("%s: %d kills in %v; workers done %v later", cfg.variant, n.fig.kills, killsDone.Sub(began).Round(time.Millisecond),
		time.Since(killsDone).Round(time.Millisecond))
	n.final()
	n.report(time.Since(began))
	n.keepLogs()
	completed = true
}

// keepLogs copies every server log next to the history when the run failed
// or KLUIS_TEST_NEMESIS_OUT asks to keep them (the test's temporary folders
// go when it ends).
func (n *nemesis) keepLogs() {
	if !n.t.Failed() && os.Getenv("KLUIS_TEST_NEMESIS_OUT") == "" {
		return
	}
	dir := strings.TrimSuffix(n.hist.path, ".jsonl") + "-logs"
	if err := os.MkdirAll(dir, 0o700); err != nil {
		n.t.Log(err)
		return
	}
	for i, s := range n.servers {
		os.WriteFile(filepath.Join(dir, fmt.Sprintf("%03d.log", i)), s.log(), 0o600)
	}
	n.t.Logf("%s: server logs in %s", n.cfg.variant, dir)
}

// ---------------------------------------------------------------------------
// The server process

// start runs kluis serve on the run's data folder and fixed address, so
// that clients reach each incarnation at the same URL and links stay valid.
//
// A start that fails is tried again twice, a second apart, as a service
// manager would: the shared S3 server of the test machine has refused the
// start's storage probe now and then under load. Each such start is logged
// and counted in the report; a third failure ends the run.
func (n *nemesis) start() {
	n.t.Helper()
	began := time.Now()
	var s *server
	for attempt := 1; ; attempt++ {
		var err error
		s, err = launchServer(n.t, n.data, n.args...)
		if err == nil {
			break
		}
		if !s.exited() {
			s.cmd.Process.Kill()
			<-s.done
		}
		if attempt == 3 {
			n.t.Fatalf("%s: kluis serve did not start, 3 times: %v", n.cfg.variant, err)
		}
		n.t.Logf("%s: a start failed, trying again: %v", n.cfg.variant, err)
		n.hist.event("start-failed", map[string]any{"err": err.Error()})
		n.srvMu.Lock()
		n.servers = append(n.servers, s) // its log is kept and scanned too
		n.srvMu.Unlock()
		n.count(func(f *figures) { f.failedStarts++ })
		time.Sleep(time.Second)
	}
	if s.base != n.base {
		n.t.Fatalf("server listens at %s, want %s", s.base, n.base)
	}
	n.srvMu.Lock()
	n.srv = s
	n.servers = append(n.servers, s)
	n.startedAt = time.Now()
	close(n.up)
	n.srvMu.Unlock()
	n.fig.restartTime += time.Since(began)
}

// kill sends SIGKILL and waits for the process to end. Requests in flight
// now are indeterminate in the history.
func (n *nemesis) kill(k int, after time.Duration) {
	n.t.Helper()
	n.srvMu.Lock()
	s := n.srv
	n.up = make(chan struct{}) // before the kill: a request it refuses waits for the restart
	n.srvMu.Unlock()
	n.hist.event("kill", map[string]any{"k": k, "after_ms": after.Milliseconds(), "epoch": n.epoch.Load()})
	s.kill9(n.t)
	n.epoch.Add(1)
	n.fig.kills++
	// Connections to the dead process are gone; new requests dial anew.
	n.tr.CloseIdleConnections()
}

// createAPIKey issues an API key for the sender with `kluis admin apikey
// create`, as an administrator would.
func (n *nemesis) createAPIKey() string {
	n.t.Helper()
	args := []string{"admin", "apikey", "create", "--sender", nemSender, "--data", n.data}
	if n.dsn != "" {
		args = append(args, "--db", n.dsn)
	}
	out, err := exec.Command(kluisBin, args...).Output()
	if err != nil {
		n.t.Fatalf("kluis admin apikey create: %v", err)
	}
	key := strings.TrimSpace(string(out))
	if !strings.HasPrefix(key, "kluis_ak_") {
		n.t.Fatalf("kluis admin apikey create printed %q", key)
	}
	return key
}

// histDir is where the history goes: KLUIS_TEST_NEMESIS_OUT, else the
// test's temporary folder.
func histDir(t *testing.T) string {
	if d := os.Getenv("KLUIS_TEST_NEMESIS_OUT"); d != "" {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
		return d
	}
	return t.TempDir()
}

func histPath(t *testing.T, cfg nemConfig) string {
	return filepath.Join(histDir(t), fmt.Sprintf("nemesis-%s-%d.jsonl", cfg.variant, cfg.seed))
}
