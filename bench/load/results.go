package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// results gathers every request's outcome, by kind.
type results struct {
	mu      sync.Mutex
	start   time.Time
	elapsed time.Duration
	ops     map[string]*opStats
	// memory samples per instance: resident bytes at each sample time.
	mem [][]memSample
	// PostgreSQL: at each sample, the sessions of the run's database that
	// wait for a lock, by wait event (advisory, tuple, transactionid, ...),
	// and the number of samples.
	waits      map[string]int
	waitSample int
	// cpu is the CPU time the servers used during the run.
	cpu     time.Duration
	notes   []string
	clients int
}

type opStats struct {
	lat      []time.Duration // successes
	errors   map[string]int  // "status 500", "timeout", ...
	intended map[int]int     // statuses that were the point (guessers)
	bytes    int64
}

type memSample struct {
	at  time.Duration
	rss int64
}

func newResults(clients, instances int) *results {
	return &results{ops: map[string]*opStats{}, mem: make([][]memSample, instances), clients: clients}
}

func (r *results) op(kind string) *opStats {
	s := r.ops[kind]
	if s == nil {
		s = &opStats{errors: map[string]int{}, intended: map[int]int{}}
		r.ops[kind] = s
	}
	return s
}

// ok records a success of kind that took d and moved n bytes of body.
func (r *results) ok(kind string, d time.Duration, n int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.op(kind)
	s.lat = append(s.lat, d)
	s.bytes += n
}

// fail records an error of kind.
func (r *results) fail(kind, what string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.op(kind).errors[what]++
}

// intended records an answer that was the point of the request (a
// guesser's 401, 423 or 429).
func (r *results) intended(kind string, status int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.op(kind).intended[status]++
}

func (r *results) sampleMem(c *cluster) {
	at := time.Since(r.start)
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, in := range c.instances {
		r.mem[i] = append(r.mem[i], memSample{at: at, rss: in.rss()})
	}
}

// sampleWaits counts the sessions of the run's database that wait for a
// lock now.
func (r *results) sampleWaits(ctx context.Context, c *cluster) {
	rows, err := c.pg.QueryContext(ctx, `SELECT wait_event, count(*) FROM pg_stat_activity
		WHERE datname = current_database() AND wait_event_type = 'Lock' GROUP BY wait_event`)
	if err != nil {
		return
	}
	defer rows.Close()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.waits == nil {
		r.waits = map[string]int{}
	}
	r.waitSample++
	for rows.Next() {
		var ev string
		var n int
		if rows.Scan(&ev, &n) == nil {
			r.waits[ev] += n
		}
	}
}

func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted)-1)*p + 0.5)
	return sorted[i]
}

// opSummary is one line of the report.
type opSummary struct {
	Kind      string         `json:"kind"`
	OK        int            `json:"ok"`
	PerSecond float64        `json:"per_second"`
	P50ms     float64        `json:"p50_ms"`
	P99ms     float64        `json:"p99_ms"`
	MaxMs     float64        `json:"max_ms"`
	MBps      float64        `json:"mb_per_second,omitempty"`
	Errors    map[string]int `json:"errors,omitempty"`
	Intended  map[int]int    `json:"intended,omitempty"`
}

type memSummary struct {
	Instance    int     `json:"instance"`
	FirstMiB    float64 `json:"first_mib"`
	EarlyMiB    float64 `json:"early_mib"` // mean over the first quarter of the run
	LateMiB     float64 `json:"late_mib"`  // mean over the last quarter
	MaxMiB      float64 `json:"max_mib"`
	SlopeMiBMin float64 `json:"slope_mib_per_min"` // least squares over the last three quarters
}

type summary struct {
	// LockWaits is the mean number of the database's sessions waiting for
	// a lock at a sample, by wait event (PostgreSQL only).
	LockWaits map[string]float64 `json:"lock_waits,omitempty"`
	// ServerCPU is the CPU time of all instances during the run, seconds.
	ServerCPU float64      `json:"server_cpu_seconds"`
	Seconds   float64      `json:"seconds"`
	Clients   int          `json:"clients"`
	Ops       []opSummary  `json:"ops"`
	Total     opSummary    `json:"total"`
	Memory    []memSummary `json:"memory"`
	Notes     []string     `json:"notes,omitempty"`
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func (r *results) summary() summary {
	r.mu.Lock()
	defer r.mu.Unlock()
	secs := r.elapsed.Seconds()
	out := summary{Seconds: secs, Clients: r.clients, Notes: r.notes, ServerCPU: r.cpu.Seconds()}
	kinds := make([]string, 0, len(r.ops))
	for k := range r.ops {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	var all []time.Duration
	total := opSummary{Kind: "all", Errors: map[string]int{}, Intended: map[int]int{}}
	for _, k := range kinds {
		s := r.ops[k]
		lat := slices.Clone(s.lat)
		slices.Sort(lat)
		all = append(all, lat...)
		o := opSummary{Kind: k, OK: len(lat), PerSecond: float64(len(lat)) / secs,
			P50ms: ms(percentile(lat, 0.50)), P99ms: ms(percentile(lat, 0.99)), Errors: s.errors, Intended: s.intended}
		if len(lat) > 0 {
			o.MaxMs = ms(lat[len(lat)-1])
		}
		if s.bytes > 0 {
			o.MBps = float64(s.bytes) / 1e6 / secs
		}
		for e, n := range s.errors {
			total.Errors[k+": "+e] += n
		}
		for st, n := range s.intended {
			total.Intended[st] += n
		}
		out.Ops = append(out.Ops, o)
	}
	slices.Sort(all)
	total.OK, total.PerSecond = len(all), float64(len(all))/secs
	total.P50ms, total.P99ms = ms(percentile(all, 0.50)), ms(percentile(all, 0.99))
	if len(all) > 0 {
		total.MaxMs = ms(all[len(all)-1])
	}
	out.Total = total
	if r.waitSample > 0 {
		out.LockWaits = map[string]float64{}
		for k, n := range r.waits {
			out.LockWaits[k] = float64(n) / float64(r.waitSample)
		}
	}
	for i, samples := range r.mem {
		out.Memory = append(out.Memory, memStats(i, samples))
	}
	return out
}

func memStats(i int, s []memSample) memSummary {
	m := memSummary{Instance: i}
	if len(s) == 0 {
		return m
	}
	mib := func(b int64) float64 { return float64(b) / (1 << 20) }
	m.FirstMiB = mib(s[0].rss)
	q := max(len(s)/4, 1)
	mean := func(xs []memSample) float64 {
		var sum float64
		for _, x := range xs {
			sum += mib(x.rss)
		}
		return sum / float64(len(xs))
	}
	m.EarlyMiB, m.LateMiB = mean(s[:q]), mean(s[len(s)-q:])
	for _, x := range s {
		m.MaxMiB = max(m.MaxMiB, mib(x.rss))
	}
	// The first quarter is the warm-up of caches and pools; the slope of
	// the rest says whether memory keeps growing.
	rest := s[min(q, len(s)-1):]
	if len(rest) >= 2 {
		var sx, sy, sxx, sxy float64
		for _, x := range rest {
			t := x.at.Minutes()
			y := mib(x.rss)
			sx, sy, sxx, sxy = sx+t, sy+y, sxx+t*t, sxy+t*y
		}
		n := float64(len(rest))
		if d := n*sxx - sx*sx; d != 0 {
			m.SlopeMiBMin = (n*sxy - sx*sy) / d
		}
	}
	return m
}

func (r *results) print(w io.Writer) {
	s := r.summary()
	fmt.Fprintf(w, "\n%d client(s) for %.1f s\n\n", s.Clients, s.Seconds)
	fmt.Fprintf(w, "  %-16s %9s %9s %9s %9s %9s %8s  %s\n", "request", "ok", "per s", "p50 ms", "p99 ms", "max ms", "MB/s", "errors / intended")
	line := func(o opSummary) {
		extra := []string{}
		for _, e := range sortedKeys(o.Errors) {
			extra = append(extra, fmt.Sprintf("%s ×%d", e, o.Errors[e]))
		}
		for _, st := range sortedInts(o.Intended) {
			extra = append(extra, fmt.Sprintf("intended %d ×%d", st, o.Intended[st]))
		}
		mb := ""
		if o.MBps > 0 {
			mb = strconv.FormatFloat(o.MBps, 'f', 1, 64)
		}
		fmt.Fprintf(w, "  %-16s %9d %9.1f %9.1f %9.1f %9.1f %8s  %s\n", o.Kind, o.OK, o.PerSecond, o.P50ms, o.P99ms, o.MaxMs, mb, strings.Join(extra, ", "))
	}
	for _, o := range s.Ops {
		line(o)
	}
	errs := 0
	for _, n := range s.Total.Errors {
		errs += n
	}
	intended := 0
	for _, n := range s.Total.Intended {
		intended += n
	}
	o := s.Total
	o.Errors, o.Intended = nil, nil
	line(o)
	fmt.Fprintf(w, "\n  errors: %d   intended refusals: %d\n", errs, intended)
	fmt.Fprintf(w, "  server CPU: %.1f s in %.1f s (%.2f cores)\n", s.ServerCPU, s.Seconds, s.ServerCPU/s.Seconds)
	for _, m := range s.Memory {
		fmt.Fprintf(w, "  instance %d RSS: start %.0f MiB, first quarter %.0f MiB, last quarter %.0f MiB, max %.0f MiB, trend after the first quarter %+.2f MiB/min\n",
			m.Instance, m.FirstMiB, m.EarlyMiB, m.LateMiB, m.MaxMiB, m.SlopeMiBMin)
	}
	if s.LockWaits != nil {
		var parts []string
		keys := make([]string, 0, len(s.LockWaits))
		for k := range s.LockWaits {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			parts = append(parts, fmt.Sprintf("%s %.1f", k, s.LockWaits[k]))
		}
		if len(parts) == 0 {
			parts = []string{"none"}
		}
		fmt.Fprintf(w, "  PostgreSQL sessions waiting for a lock, mean per sample: %s\n", strings.Join(parts, ", "))
	}
	for _, n := range s.Notes {
		fmt.Fprintln(w, "  note:", n)
	}
}

func sortedKeys(m map[string]int) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func sortedInts(m map[int]int) []int {
	out := make([]int, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Ints(out)
	return out
}
