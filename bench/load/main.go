// Command load drives one or more `kluis serve` processes with many
// concurrent clients and reports, per kind of request, the throughput, the
// median and 99th percentile latency and the errors, and the servers'
// resident memory over the run. It is a measuring tool for people, not a
// test: it never runs in CI.
//
// It starts everything it needs on loopback and removes it afterwards: a
// fresh PostgreSQL database (from an administrator URL) or a SQLite file,
// a private Mailpit for the mixed workload (so verification codes can be
// read), the instances (sharing database, master key and blob storage:
// one local folder, or a fresh prefix in an S3 bucket), and an API key per
// sender made with `kluis admin apikey create`.
//
// Workloads (-mix):
//
//   - transfers: every client is its own sender and loops create, a plain
//     upload of one small file, finish (the write path: quotas, file
//     index, outbox, audit). Reports creates and finishes per second.
//   - mixed: the traffic of an installation in use. Pages (start, send,
//     receive, help, a static asset), sender verification (code from the
//     mail), transfers with a tus upload, recipients who open the link,
//     unlock and download, and a few guessers who try wrong passwords on
//     one link from one address each. The guessers' 401, 423 and 429 are
//     intended and counted apart; any other answer that is not a success
//     is an error.
//
// Examples (from the repository root):
//
//	go run ./bench/load -mix transfers -clients 50 -duration 30s -db postgres -instances 2
//	go run ./bench/load -mix mixed -db postgres -instances 2 -storage "$KLUIS_TEST_S3_URL" -duration 10m
//
// See bench/README.md for what the figures mean.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"syscall"
	"time"
)

type options struct {
	kluis       string
	instances   int
	db          string
	pgAdmin     string
	storage     string
	mix         string
	clients     int
	duration    time.Duration
	sample      time.Duration
	fileSize    int64
	rateLimit   int
	rateGlobal  int
	mailpit     string
	jsonOut     string
	keepLogs    bool
	guessers    int
	downloaders int
}

func main() {
	var o options
	flag.StringVar(&o.kluis, "kluis", "", "kluis binary to run (default: built from ./cmd/kluis into a temporary folder)")
	flag.IntVar(&o.instances, "instances", 1, "number of `kluis serve` processes sharing database and storage")
	flag.StringVar(&o.db, "db", "sqlite", "sqlite, or postgres (a fresh database made through -pg-admin)")
	flag.StringVar(&o.pgAdmin, "pg-admin", os.Getenv("KLUIS_TEST_POSTGRES_URL"), "PostgreSQL administrator URL (may CREATE DATABASE); default $KLUIS_TEST_POSTGRES_URL")
	flag.StringVar(&o.storage, "storage", "", "s3://BUCKET?endpoint=...&region=... for S3 (a fresh prefix is used and emptied afterwards); empty: one local folder shared by the instances")
	flag.StringVar(&o.mix, "mix", "transfers", "workload: transfers or mixed")
	flag.IntVar(&o.clients, "clients", 50, "concurrent clients (mixed: senders and recipients together)")
	flag.DurationVar(&o.duration, "duration", 30*time.Second, "how long to run after the warm-up")
	flag.DurationVar(&o.sample, "sample", 5*time.Second, "how often to sample the servers' resident memory")
	flag.Int64Var(&o.fileSize, "file-size", 16<<10, "bytes per uploaded file (mixed: tus uploads use 16 times this)")
	flag.IntVar(&o.rateLimit, "rate-limit", 60, "--rate-limit of the servers (mixed only; transfers runs with limits off)")
	flag.IntVar(&o.rateGlobal, "rate-limit-global", 100000, "--rate-limit-global of the servers (mixed only)")
	flag.StringVar(&o.mailpit, "mailpit", os.Getenv("KLUIS_TEST_MAILPIT_BIN"), "Mailpit binary for the mixed workload (default $KLUIS_TEST_MAILPIT_BIN, else mailpit on PATH)")
	flag.StringVar(&o.jsonOut, "json", "", "also write the results as JSON to this file")
	flag.BoolVar(&o.keepLogs, "keep-logs", false, "keep the servers' logs (their paths are printed)")
	flag.IntVar(&o.guessers, "guessers", 2, "mixed: clients that guess passwords (their 401/423/429 are intended)")
	flag.IntVar(&o.downloaders, "downloaders", 0, "mixed: of -clients, how many are recipients (default: half)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "load:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o options) error {
	if o.mix != "transfers" && o.mix != "mixed" {
		return fmt.Errorf("-mix %q: choose transfers or mixed", o.mix)
	}
	if o.instances < 1 || o.clients < 1 {
		return fmt.Errorf("-instances and -clients must be at least 1")
	}
	c, err := startCluster(ctx, o)
	if err != nil {
		return err
	}
	defer c.stop()
	fmt.Printf("Kluis load: mix %s, %d client(s), %d instance(s) on %s, storage %s, %d CPU(s), load average %s\n",
		o.mix, o.clients, o.instances, o.db, c.storageKind, runtime.NumCPU(), loadAvg())
	var res *results
	switch o.mix {
	case "transfers":
		res, err = runTransfers(ctx, c, o)
	case "mixed":
		res, err = runMixed(ctx, c, o)
	}
	if err != nil {
		return err
	}
	res.print(os.Stdout)
	if o.jsonOut != "" {
		b, _ := json.MarshalIndent(res.summary(), "", "  ")
		if err := os.WriteFile(o.jsonOut, b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	var a, b5, c float64
	fmt.Sscan(string(b), &a, &b5, &c)
	return fmt.Sprintf("%.2f %.2f %.2f", a, b5, c)
}
