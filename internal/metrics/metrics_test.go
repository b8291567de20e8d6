package metrics_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kluis-nl/kluis/internal/metrics"
	"github.com/kluis-nl/kluis/internal/store"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// scrape returns the metrics text.
func scrape(t *testing.T, m *metrics.Metrics) string {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != 200 {
		t.Fatalf("scrape: %d %s", rec.Code, rec.Body)
	}
	return rec.Body.String()
}

// Value returns the sample named series (name with labels, as printed), or
// -1 when absent.
func Value(body, series string) float64 {
	for _, line := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err == nil {
				return f
			}
		}
	}
	return -1
}

func openDB(t *testing.T) *store.DB {
	t.Helper()
	db, err := store.OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "kluis.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestQueueDepthAndPurgeLagFromDatabase(t *testing.T) {
	ctx := context.Background()
	db := openDB(t)
	m := metrics.New(db, nil, quiet)
	body := scrape(t, m)
	for series, want := range map[string]float64{
		`kluis_mail_queue_depth{state="pending"}`: 0,
		`kluis_mail_queue_depth{state="failed"}`:  0,
		`kluis_purge_lag_seconds`:                 0,
		`kluis_uploads_total{kind="tus"}`:         0,
		`kluis_unlocks_total{result="locked"}`:    0,
	} {
		if got := Value(body, series); got != want {
			t.Errorf("%s = %v, want %v", series, got, want)
		}
	}
	for _, name := range []string{"go_goroutines", "process_start_time_seconds"} {
		if !strings.Contains(body, name) {
			t.Errorf("no %s: the Go and process collectors are missing", name)
		}
	}
	now := time.Now()
	for _, id := range []string{"a", "b", "c"} {
		if err := db.InsertOutbox(ctx, &store.OutboxRow{ID: id, Kind: "test", CreatedAt: now, NotBefore: now, Sealed: []byte("x")}); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.FailOutbox(ctx, "c", now, "rejected"); err != nil {
		t.Fatal(err)
	}
	body = scrape(t, m)
	if got := Value(body, `kluis_mail_queue_depth{state="pending"}`); got != 2 {
		t.Errorf("pending = %v, want 2", got)
	}
	if got := Value(body, `kluis_mail_queue_depth{state="failed"}`); got != 1 {
		t.Errorf("failed = %v, want 1", got)
	}
	st, err := m.Mail(ctx)
	if err != nil || st.QueuePending != 2 || st.QueueFailed != 1 || st.LastDeliveryError != nil {
		t.Errorf("Mail() = %+v, %v", st, err)
	}
}

// fakeDB reports a transfer due since a fixed time.
type fakeDB struct {
	since time.Time
	err   error
}

func (f *fakeDB) OutboxDepth(context.Context) (int, int, error) { return 0, 0, f.err }
func (f *fakeDB) OutboxHeld(context.Context) (int, error)       { return 0, f.err }
func (f *fakeDB) OldestDueForPurge(context.Context, time.Time) (time.Time, bool, error) {
	return f.since, !f.since.IsZero(), f.err
}

func TestPurgeLag(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	db := &fakeDB{since: now.Add(-90 * time.Second)}
	m := metrics.New(db, func() time.Time { return now }, quiet)
	if got := Value(scrape(t, m), "kluis_purge_lag_seconds"); got != 90 {
		t.Errorf("purge lag = %v, want 90", got)
	}
	// A database error leaves the gauges out but the scrape still works.
	db.err = errors.New("database is down")
	body := scrape(t, m)
	if Value(body, "kluis_purge_lag_seconds") != -1 || Value(body, `kluis_mail_queue_depth{state="pending"}`) != -1 {
		t.Errorf("gauges shown despite a database error:\n%s", body)
	}
	if !strings.Contains(body, "kluis_lockouts_total 0") {
		t.Error("counters missing after a database error")
	}
}

func TestCounters(t *testing.T) {
	m := metrics.New(&fakeDB{}, nil, quiet)
	m.FileUploaded("tus")
	m.FileUploaded("plain")
	m.FileUploaded("other") // counted as plain
	m.SegmentCommitted(1000, 20*time.Millisecond)
	m.SegmentCommitted(500, 30*time.Millisecond)
	m.Downloaded("file")
	m.Downloaded("zip")
	m.DownloadBytes(123)
	m.Unlock("ok")
	m.Unlock("wrong_password")
	m.Unlock("locked")
	m.Unlock("bogus") // ignored: no unbounded labels
	m.Lockout()
	m.Purged(2)
	m.Sent()
	m.Failed(false, "421 try later")
	m.Failed(true, "550 5.1.1 <jan.jansen@example.nl>: user unknown")
	body := scrape(t, m)
	for series, want := range map[string]float64{
		`kluis_uploads_total{kind="tus"}`:                        1,
		`kluis_uploads_total{kind="plain"}`:                      2,
		`kluis_upload_bytes_total`:                               1500,
		`kluis_upload_segment_commit_seconds_count`:              2,
		`kluis_downloads_total{kind="file"}`:                     1,
		`kluis_downloads_total{kind="zip"}`:                      1,
		`kluis_download_bytes_total`:                             123,
		`kluis_unlocks_total{result="ok"}`:                       1,
		`kluis_unlocks_total{result="wrong_password"}`:           1,
		`kluis_unlocks_total{result="locked"}`:                   1,
		`kluis_lockouts_total`:                                   1,
		`kluis_purged_total`:                                     2,
		`kluis_mail_sent_total`:                                  1,
		`kluis_mail_failures_total{kind="temporary"}`:            1,
		`kluis_mail_failures_total{kind="permanent"}`:            1,
		`kluis_upload_segment_commit_seconds_bucket{le="0.025"}`: 1,
	} {
		if got := Value(body, series); got != want {
			t.Errorf("%s = %v, want %v", series, got, want)
		}
	}
	if strings.Contains(body, "bogus") {
		t.Error("an unknown unlock result became a label")
	}
	st, err := m.Mail(context.Background())
	if err != nil || st.LastDeliveryError == nil {
		t.Fatalf("Mail() = %+v, %v", st, err)
	}
	if e := *st.LastDeliveryError; strings.Contains(e, "@") || !strings.Contains(e, "user unknown") {
		t.Errorf("last delivery error %q", e)
	}
	m.Sent()
	if st, _ := m.Mail(context.Background()); st.LastDeliveryError != nil {
		t.Errorf("last delivery error %q after a delivery", *st.LastDeliveryError)
	}
}

func TestShortError(t *testing.T) {
	for in, want := range map[string]string{
		"550 5.1.1 <jan@example.nl>: Recipient address rejected": "550 5.1.1 <address>: Recipient address rejected",
		"dial tcp 192.0.2.1:587: connection refused":             "dial tcp 192.0.2.1:587: connection refused",
		"auth failed for user@relay.example\r\nmore":             "auth failed for <address> more",
		"RCPT TO:<a.b+c@d.example> rejected":                     "RCPT TO:<address> rejected",
	} {
		if got := metrics.ShortError(in); got != want {
			t.Errorf("ShortError(%q) = %q, want %q", in, got, want)
		}
	}
	long := metrics.ShortError(strings.Repeat("é", 200))
	if len(long) > 165 || !strings.HasSuffix(long, "…") {
		t.Errorf("long error: %d bytes %q", len(long), long)
	}
}
