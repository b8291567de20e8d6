// Package metrics holds Kluis's Prometheus metrics: a registry of its own
// (never the global one) with counters fed by the engine and the outbox
// through small interfaces (transfer.Metrics, outbox.Metrics), gauges read
// from the database at each scrape (mail queue depth, purge lag), and the Go
// and process collectors.
//
// No label holds personal data: no addresses, ids or file names.
package metrics

import (
	"context"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/kluis-nl/kluis/internal/store"
)

// DB is what the scrape-time gauges read; *store.DB has it.
type DB interface {
	OutboxDepth(ctx context.Context) (pending, failed int, err error)
	OutboxHeld(ctx context.Context) (int, error)
	OldestDueForPurge(ctx context.Context, now time.Time) (since time.Time, ok bool, err error)
}

var _ DB = (*store.DB)(nil)

// Metrics is the registry and its instruments. It implements
// transfer.Metrics and outbox.Metrics. Safe for concurrent use.
type Metrics struct {
	reg *prometheus.Registry
	db  DB
	now func() time.Time
	log *slog.Logger

	uploads       *prometheus.CounterVec
	uploadBytes   prometheus.Counter
	segmentCommit prometheus.Histogram
	downloads     *prometheus.CounterVec
	downloadBytes prometheus.Counter
	unlocks       *prometheus.CounterVec
	lockouts      prometheus.Counter
	mailSent      prometheus.Counter
	mailFailures  *prometheus.CounterVec
	purged        prometheus.Counter
	scans         *prometheus.CounterVec
	unscanned     *prometheus.CounterVec

	mu          sync.Mutex
	lastMailErr string // short, addresses removed; "" after a delivery
	lastMailAt  time.Time
}

// New returns the metrics over db. now may be nil (time.Now); log may be
// nil (slog.Default()).
func New(db DB, now func() time.Time, log *slog.Logger) *Metrics {
	if now == nil {
		now = time.Now
	}
	if log == nil {
		log = slog.Default()
	}
	m := &Metrics{reg: prometheus.NewRegistry(), db: db, now: now, log: log}
	f := func(c prometheus.Collector) { m.reg.MustRegister(c) }
	m.uploads = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "kluis_uploads_total", Help: "Files uploaded completely, by protocol (tus or plain).",
	}, []string{"kind"})
	m.uploadBytes = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "kluis_upload_bytes_total", Help: "Plaintext bytes of uploaded segments made durable.",
	})
	m.segmentCommit = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "kluis_upload_segment_commit_seconds",
		Help:    "Time to make one upload segment durable (blob commit and manifest update).",
		Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
	})
	m.downloads = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "kluis_downloads_total", Help: "Complete downloads by recipients: one file (file) or all files as a ZIP (zip).",
	}, []string{"kind"})
	m.downloadBytes = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "kluis_download_bytes_total", Help: "Bytes sent in download answers (files and ZIPs), complete or not.",
	})
	m.unlocks = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "kluis_unlocks_total", Help: "Password checks by recipients, by result (ok, wrong_password, locked).",
	}, []string{"result"})
	m.lockouts = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "kluis_lockouts_total", Help: "Recipient accesses locked after too many wrong passwords.",
	})
	m.mailSent = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "kluis_mail_sent_total", Help: "Mails accepted by the relay.",
	})
	m.mailFailures = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "kluis_mail_failures_total", Help: "Failed delivery attempts: temporary (retried) or permanent (the mail was given up).",
	}, []string{"kind"})
	m.purged = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "kluis_purged_total", Help: "Transfers whose content was erased after expiry or revocation.",
	})
	m.scans = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "kluis_scan_total", Help: "Malware scans of files by result: clean, infected, too_large (over clamd's StreamMaxLength), unavailable (clamd gave no verdict).",
	}, []string{"result"})
	m.unscanned = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "kluis_scan_passed_unscanned_total", Help: "Files the policy let pass without a malware verdict, by reason: unavailable (clamd could not be reached, --scan-unavailable open) or too_large (--scan-too-large pass).",
	}, []string{"reason"})
	// Every label value shows from the start, so rate() and alerts work
	// before the first event.
	for _, k := range []string{"tus", "plain"} {
		m.uploads.WithLabelValues(k)
	}
	for _, k := range []string{"file", "zip"} {
		m.downloads.WithLabelValues(k)
	}
	for _, k := range []string{"ok", "wrong_password", "locked"} {
		m.unlocks.WithLabelValues(k)
	}
	for _, k := range []string{"temporary", "permanent"} {
		m.mailFailures.WithLabelValues(k)
	}
	for _, k := range []string{"clean", "infected", "too_large", "unavailable"} {
		m.scans.WithLabelValues(k)
	}
	for _, k := range []string{"unavailable", "too_large"} {
		m.unscanned.WithLabelValues(k)
	}
	for _, c := range []prometheus.Collector{m.uploads, m.uploadBytes, m.segmentCommit, m.downloads, m.downloadBytes,
		m.unlocks, m.lockouts, m.mailSent, m.mailFailures, m.purged, m.scans, m.unscanned} {
		f(c)
	}
	f(&dbCollector{m: m})
	f(collectors.NewGoCollector())
	f(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Registry returns the registry (for tests and extra collectors).
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the metrics in the Prometheus text format. A database
// error at scrape leaves out the gauges it would have read and is logged.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		ErrorLog:      slog.NewLogLogger(m.log.Handler(), slog.LevelWarn),
		ErrorHandling: promhttp.ContinueOnError,
		Timeout:       10 * time.Second,
	})
}

// transfer.Metrics

// FileUploaded counts a completed file.
func (m *Metrics) FileUploaded(kind string) {
	if kind != "tus" {
		kind = "plain"
	}
	m.uploads.WithLabelValues(kind).Inc()
}

// SegmentCommitted counts a durable segment of n bytes that took d.
func (m *Metrics) SegmentCommitted(n int64, d time.Duration) {
	m.uploadBytes.Add(float64(n))
	m.segmentCommit.Observe(d.Seconds())
}

// Downloaded counts a complete download ("file" or "zip").
func (m *Metrics) Downloaded(kind string) {
	if kind != "zip" {
		kind = "file"
	}
	m.downloads.WithLabelValues(kind).Inc()
}

// DownloadBytes counts bytes sent in a download answer.
func (m *Metrics) DownloadBytes(n int64) {
	if n > 0 {
		m.downloadBytes.Add(float64(n))
	}
}

// Unlock counts a password check by result.
func (m *Metrics) Unlock(result string) {
	switch result {
	case "ok", "wrong_password", "locked":
	default:
		return
	}
	m.unlocks.WithLabelValues(result).Inc()
}

// Lockout counts a locked access.
func (m *Metrics) Lockout() { m.lockouts.Inc() }

// Purged counts purged transfers.
func (m *Metrics) Purged(n int) {
	if n > 0 {
		m.purged.Add(float64(n))
	}
}

// Scanned counts one malware scan of a file by its result.
func (m *Metrics) Scanned(result string) { m.scans.WithLabelValues(result).Inc() }

// PassedUnscanned counts a file the policy let pass without a malware
// verdict, by reason.
func (m *Metrics) PassedUnscanned(reason string) { m.unscanned.WithLabelValues(reason).Inc() }

// outbox.Metrics

// Sent counts a delivered mail and clears the last delivery error.
func (m *Metrics) Sent() {
	m.mailSent.Inc()
	m.mu.Lock()
	m.lastMailErr, m.lastMailAt = "", m.now()
	m.mu.Unlock()
}

// Failed counts a failed delivery attempt and keeps a short form of its
// error, without addresses, for /healthz.
func (m *Metrics) Failed(permanent bool, reason string) {
	kind := "temporary"
	if permanent {
		kind = "permanent"
	}
	m.mailFailures.WithLabelValues(kind).Inc()
	m.mu.Lock()
	m.lastMailErr, m.lastMailAt = ShortError(reason), m.now()
	m.mu.Unlock()
}

// MailStatus is the mail part of /healthz?details=1.
type MailStatus struct {
	QueuePending int `json:"queue_pending"`
	QueueFailed  int `json:"queue_failed"`
	// LastDeliveryError is the error of the latest delivery attempt if it
	// failed (short, addresses removed); nil once a later mail went out.
	LastDeliveryError *string    `json:"last_delivery_error"`
	LastDeliveryAt    *time.Time `json:"last_delivery_at,omitempty"`
}

// Mail reads the queue depth and the last delivery outcome.
func (m *Metrics) Mail(ctx context.Context) (MailStatus, error) {
	var s MailStatus
	m.mu.Lock()
	if m.lastMailErr != "" {
		e := m.lastMailErr
		s.LastDeliveryError = &e
	}
	if !m.lastMailAt.IsZero() {
		at := m.lastMailAt.UTC()
		s.LastDeliveryAt = &at
	}
	m.mu.Unlock()
	p, f, err := m.db.OutboxDepth(ctx)
	if err != nil {
		return s, err
	}
	s.QueuePending, s.QueueFailed = p, f
	return s, nil
}

var (
	// Anything with an @ (an address, user@host in a URL), with or
	// without angle brackets.
	addrRE = regexp.MustCompile(`<?[^\s<>"',;:()\[\]]*@[^\s<>"',;()\[\]]*>?`)
	spaces = regexp.MustCompile(`\s+`)
)

// maxShortError bounds ShortError's result, in bytes.
const maxShortError = 160

// ShortError makes a delivery error fit to show to operators outside the
// log: addresses replaced by "<address>", one line, at most 160 bytes.
func ShortError(s string) string {
	s = addrRE.ReplaceAllString(s, "<address>")
	s = strings.TrimSpace(spaces.ReplaceAllString(s, " "))
	if len(s) > maxShortError {
		cut := maxShortError
		for cut > 0 && !utf8Start(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	return s
}

func utf8Start(b byte) bool { return b&0xC0 != 0x80 }

// dbCollector reads the mail queue depth and the purge lag at each scrape.
type dbCollector struct{ m *Metrics }

var (
	queueDesc = prometheus.NewDesc("kluis_mail_queue_depth",
		"Mails in the outbox: pending (waiting or being sent), held (queued for a transfer that waits for its malware scan; sent when the scan passes) and failed (given up; kept for the operator).",
		[]string{"state"}, nil)
	lagDesc = prometheus.NewDesc("kluis_purge_lag_seconds",
		"How long the longest-waiting transfer has been due for purge (expired or revoked) without being purged; 0 when none is due.",
		nil, nil)
)

func (c *dbCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- queueDesc
	ch <- lagDesc
}

func (c *dbCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if p, f, err := c.m.db.OutboxDepth(ctx); err != nil {
		ch <- prometheus.NewInvalidMetric(queueDesc, err)
	} else {
		ch <- prometheus.MustNewConstMetric(queueDesc, prometheus.GaugeValue, float64(p), "pending")
		ch <- prometheus.MustNewConstMetric(queueDesc, prometheus.GaugeValue, float64(f), "failed")
	}
	if h, err := c.m.db.OutboxHeld(ctx); err != nil {
		ch <- prometheus.NewInvalidMetric(queueDesc, err)
	} else {
		ch <- prometheus.MustNewConstMetric(queueDesc, prometheus.GaugeValue, float64(h), "held")
	}
	now := c.m.now()
	since, ok, err := c.m.db.OldestDueForPurge(ctx, now)
	switch {
	case err != nil:
		ch <- prometheus.NewInvalidMetric(lagDesc, err)
	case !ok:
		ch <- prometheus.MustNewConstMetric(lagDesc, prometheus.GaugeValue, 0)
	default:
		ch <- prometheus.MustNewConstMetric(lagDesc, prometheus.GaugeValue, max(0, now.Sub(since).Seconds()))
	}
}
