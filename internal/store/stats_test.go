package store

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kluis-nl/kluis/internal/store/storetest"
)

// testStats: the statistics per day and month count the audit log and the
// failed mails; a day that ended is rolled up once (also by two instances
// at once) and keeps its figures after the rows it was counted from are
// gone; the current day is counted when asked.
func testStats(t *testing.T, fresh freshFunc) {
	ctx := context.Background()
	db, _ := openFresh(t, fresh)
	d0 := time.Date(2026, 1, 30, 0, 0, 0, 0, time.UTC) // three days: 30 and 31 Jan, 1 Feb
	audit := func(at time.Time, action, result, detail string) {
		t.Helper()
		if err := db.InsertAudit(ctx, &AuditRow{At: at, Actor: "system", Action: action, Object: "x", Result: result, Detail: detail}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 3 {
		d := d0.AddDate(0, 0, i)
		for k := range i + 1 {
			audit(d.Add(time.Duration(k)*time.Hour), "transfer.create", "ok", "recipients=1")
			audit(d.Add(time.Duration(k)*time.Hour+time.Minute), "upload.file_complete", "ok", fmt.Sprintf("file=f%d size=%d", k, 1000*(i+1)))
		}
		audit(d.Add(23*time.Hour), "transfer.finish", "ok", "files=1 recipients=1")
		audit(d.Add(2*time.Hour), "file.download", "ok", "file_index=0 size=1 bytes=0-0")
		audit(d.Add(2*time.Hour), "zip.download", "aborted", "files=")
		audit(d.Add(3*time.Hour), "recipient.locked", "locked", "recipient=1")
		audit(d.Add(4*time.Hour), "recipient.unlock", "ok", "") // not counted
		if err := db.InsertOutbox(ctx, &OutboxRow{ID: fmt.Sprintf("m%d", i), Kind: "notify", CreatedAt: d, NotBefore: d, Sealed: []byte("s")}); err != nil {
			t.Fatal(err)
		}
		if err := db.FailOutbox(ctx, fmt.Sprintf("m%d", i), d.Add(5*time.Hour), "550"); err != nil {
			t.Fatal(err)
		}
	}
	want := []Stats{
		{Start: d0, TransfersCreated: 1, TransfersSent: 1, Files: 1, Bytes: 1000, Downloads: 1, Lockouts: 1, MailsFailed: 1},
		{Start: d0.AddDate(0, 0, 1), TransfersCreated: 2, TransfersSent: 1, Files: 2, Bytes: 4000, Downloads: 1, Lockouts: 1, MailsFailed: 1},
		{Start: d0.AddDate(0, 0, 2), TransfersCreated: 3, TransfersSent: 1, Files: 3, Bytes: 9000, Downloads: 1, Lockouts: 1, MailsFailed: 1},
		{Start: d0.AddDate(0, 0, 3)},
	}
	check := func(when string) {
		t.Helper()
		got, err := db.StatsDays(ctx, d0.Add(5*time.Hour), d0.AddDate(0, 0, 4))
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s: days\n got %+v\nwant %+v", when, got, want)
		}
		months, err := db.StatsMonths(ctx, d0, d0.AddDate(0, 1, 0))
		if err != nil {
			t.Fatal(err)
		}
		jan := Stats{Start: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
		jan.add(want[0])
		jan.add(want[1])
		feb := Stats{Start: time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)}
		feb.add(want[2])
		if !slices.Equal(months, []Stats{jan, feb}) {
			t.Errorf("%s: months\n got %+v\nwant %+v", when, months, []Stats{jan, feb})
		}
	}
	check("counted when asked")
	// The third day ends at 2 Feb 00:00; an hour later it is rolled up.
	now := d0.AddDate(0, 0, 3).Add(59 * time.Minute)
	var wg sync.WaitGroup
	rolled := make([]int, 2)
	for i := range 2 {
		wg.Go(func() {
			n, err := db.RollupStats(ctx, now)
			if err != nil {
				t.Error(err)
			}
			rolled[i] = n
		})
	}
	wg.Wait()
	// Either may find the other's days rolled up already.
	if max(rolled[0], rolled[1]) != 2 {
		t.Fatalf("rolled up %v days, want 2 (the third is not an hour past)", rolled)
	}
	if n, err := db.RollupStats(ctx, now.Add(time.Minute)); err != nil || n != 1 {
		t.Fatalf("rollup of the third day: %d, %v", n, err)
	}
	if n, err := db.RollupStats(ctx, now.Add(2*time.Minute)); err != nil || n != 0 {
		t.Fatalf("rollup again: %d, %v", n, err)
	}
	// The rows the days were counted from go (audit retention, outbox
	// cleanup); the rolled-up figures stay.
	if _, err := db.PruneAudit(ctx, d0.AddDate(0, 0, 3)); err != nil {
		t.Fatal(err)
	}
	if _, err := db.DeleteFailedOutbox(ctx, d0.AddDate(0, 0, 3)); err != nil {
		t.Fatal(err)
	}
	check("after the rollup, the source rows gone")
	var n int
	if err := db.q.QueryRowContext(ctx, `SELECT count(*) FROM stats_daily WHERE metric = 'rolled'`).Scan(&n); err != nil || n != 3 {
		t.Errorf("%d days marked rolled up (%v), want 3", n, err)
	}
}

// testSenderPages: a sender's transfers in pages, newest first, the id
// breaking ties, each once; and the loaders of a page's rows.
func testSenderPages(t *testing.T, fresh freshFunc) {
	ctx := context.Background()
	db, _ := openFresh(t, fresh)
	now := time.Now().UTC().Truncate(time.Millisecond)
	var want []string
	for i := range 7 {
		tr := newTransfer(fmt.Sprintf("a%d", i), now.Add(time.Duration(i/2)*time.Minute)) // pairs share a time
		if err := db.InsertTransfer(ctx, tr); err != nil {
			t.Fatal(err)
		}
		want = append(want, tr.ID)
	}
	other := newTransfer("b0", now)
	other.SenderEmail = "b@example.nl"
	other.ReplyTo = "a3"
	if err := db.InsertTransfer(ctx, other); err != nil {
		t.Fatal(err)
	}
	slices.Reverse(want) // newest first; at one time the larger id first
	var got []string
	var before time.Time
	var beforeID string
	for {
		page, err := db.TransfersBySenderPage(ctx, "a@example.nl", before, beforeID, 3)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range page {
			got = append(got, r.ID)
		}
		if len(page) < 3 {
			break
		}
		before, beforeID = page[len(page)-1].CreatedAt, page[len(page)-1].ID
	}
	if !slices.Equal(got, want) {
		t.Errorf("pages %v, want %v", got, want)
	}
	for _, id := range []string{"a1", "a2"} {
		r := &RecipientRow{TransferID: id, Kind: "to", Address: "x-" + id + "@example.nl"}
		if err := db.InsertRecipient(ctx, r); err != nil {
			t.Fatal(err)
		}
		if _, err := db.InsertDownload(ctx, r.ID, 0, now); err != nil {
			t.Fatal(err)
		}
		if err := db.InsertFile(ctx, &FileRow{ID: "f-" + id, TransferID: id, UpdatedAt: now}); err != nil {
			t.Fatal(err)
		}
	}
	rs, err := db.RecipientsOf(ctx, []string{"a1", "a2", "a3"})
	if err != nil || len(rs["a1"]) != 1 || len(rs["a2"]) != 1 || len(rs["a3"]) != 0 || rs["a2"][0].Address != "x-a2@example.nl" {
		t.Errorf("recipients of: %v %v", rs, err)
	}
	ds, err := db.DownloadsOf(ctx, []string{"a1", "a3"})
	if err != nil || len(ds["a1"]) != 1 || len(ds) != 1 {
		t.Errorf("downloads of: %v %v", ds, err)
	}
	fs, err := db.FilesOf(ctx, []string{"a2"})
	if err != nil || len(fs["a2"]) != 1 || fs["a2"][0].ID != "f-a2" {
		t.Errorf("files of: %v %v", fs, err)
	}
	if reps, err := db.RepliesTo(ctx, "a3"); err != nil || len(reps) != 1 || reps[0].ID != "b0" {
		t.Errorf("replies to a3: %v %v", reps, err)
	}
}

// testPurgeBatch: the purge finds the revoked and the expired transfers
// (not the live or purged ones), claims them (on PostgreSQL skipping rows
// another transaction holds) and purges many in one go.
func testPurgeBatch(t *testing.T, fresh freshFunc) {
	ctx := context.Background()
	db, _ := openFresh(t, fresh)
	now := time.Now().UTC().Truncate(time.Millisecond)
	add := func(id string, expires time.Time, revoked, purged bool) {
		t.Helper()
		tr := newTransfer(id, now.Add(-48*time.Hour))
		tr.ExpiresAt = expires
		if revoked {
			tr.RevokedAt = &now
		}
		if purged {
			tr.PurgedAt = &now
		}
		if err := db.InsertTransfer(ctx, tr); err != nil {
			t.Fatal(err)
		}
		if err := db.InsertFile(ctx, &FileRow{ID: "f-" + id, TransferID: id, UpdatedAt: now, MetaSealed: []byte("m")}); err != nil {
			t.Fatal(err)
		}
	}
	add("exp2", now.Add(-2*time.Hour), false, false)
	add("exp1", now.Add(-time.Hour), false, false)
	add("rev", now.Add(time.Hour), true, false)
	add("live", now.Add(time.Hour), false, false)
	add("done", now.Add(-3*time.Hour), false, true)
	ids, err := db.DueForPurge(ctx, now, 10)
	if err != nil || !slices.Equal(ids, []string{"rev", "exp2", "exp1"}) {
		t.Fatalf("due: %v %v; want the revoked, then the expired oldest first", ids, err)
	}
	if ids, _ := db.DueForPurge(ctx, now, 2); !slices.Equal(ids, []string{"rev", "exp2"}) {
		t.Errorf("due, two: %v", ids)
	}
	tx, err := db.BeginTx(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	claimed, err := tx.ClaimForPurge(ctx, []string{"rev", "exp2", "live", "done", "nope"}, now)
	if err != nil || !sameSet(claimed, []string{"rev", "exp2"}) {
		t.Fatalf("claimed %v %v", claimed, err)
	}
	// Another instance's purge waits for this one and then gets only what
	// this one left.
	other := make(chan []string, 1)
	go func() {
		otx, err := db.BeginTx(ctx)
		if err != nil {
			t.Error(err)
			other <- nil
			return
		}
		defer otx.Rollback()
		got, err := otx.ClaimForPurge(ctx, []string{"rev", "exp2", "exp1"}, now)
		if err != nil {
			t.Error(err)
		}
		other <- got
	}()
	if err := tx.PurgeTransfers(ctx, claimed, now); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if got := <-other; !slices.Equal(got, []string{"exp1"}) {
		t.Errorf("the other purge claimed %v, want only exp1", got)
	}
	for id, purged := range map[string]bool{"rev": true, "exp2": true, "exp1": false, "live": false} {
		tr, err := db.Transfer(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		files, _ := db.Files(ctx, id)
		if (tr.PurgedAt != nil) != purged || (tr.IdentitySealed == nil) != purged || (len(files) == 0) != purged {
			t.Errorf("%s: purged_at %v, identity %v, %d files; want purged %v", id, tr.PurgedAt, tr.IdentitySealed != nil, len(files), purged)
		}
	}
	if ids, _ := db.DueForPurge(ctx, now, 10); !slices.Equal(ids, []string{"exp1"}) {
		t.Errorf("due after the purge: %v", ids)
	}
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// testStatsCounters: the counters kept by the writing transactions equal a
// count made from the audit log and the outbox (CountStats) at every step:
// events from many connections at once, an event rolled back, a mail
// failed twice, a day rolled up and an event committed for it late, and
// an upgrade from before migration 0040 (no counters, recounted at open).
func testStatsCounters(t *testing.T, fresh freshFunc) {
	ctx := context.Background()
	db, open := openFresh(t, fresh)
	d0 := time.Date(2026, 3, 10, 0, 0, 0, 0, time.UTC)
	from, to := d0.AddDate(0, 0, -1), d0.AddDate(0, 0, 4)
	same := func(when string) {
		t.Helper()
		got, err := db.StatsDays(ctx, from, to)
		if err != nil {
			t.Fatal(err)
		}
		want, err := db.CountStats(ctx, from, to)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s: counters\n got %+v\ncount %+v", when, got, want)
		}
		var created int64
		for _, s := range got {
			created += s.TransfersCreated
		}
		if created == 0 {
			t.Errorf("%s: nothing counted", when)
		}
	}
	actions := []struct{ action, result, detail string }{
		{"transfer.create", "ok", "recipients=2"}, {"transfer.create", "refused", ""},
		{"upload.file_complete", "ok", "file=f size=12345"}, {"upload.file_complete", "ok", "file=g"},
		{"transfer.finish", "ok", "files=2"}, {"file.download", "ok", "size=5"}, {"file.download", "aborted", ""},
		{"zip.download", "ok", "files=2"}, {"recipient.locked", "locked", ""}, {"transfer.revoke", "ok", ""},
		{"transfer.purge", "ok", ""},
	}
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range 3 * len(actions) {
				a := actions[(i+w)%len(actions)]
				at := d0.Add(time.Duration(i*2+w) * time.Hour) // over three days
				if err := db.InsertAudit(ctx, &AuditRow{At: at, Actor: "system", Action: a.action, Object: "x", Result: a.result, Detail: a.detail}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	// Rolled back: neither the entry nor its counter.
	tx, err := db.BeginTx(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.InsertAudit(ctx, &AuditRow{At: d0, Actor: "system", Action: "transfer.create", Object: "y", Result: "ok"}); err != nil {
		t.Fatal(err)
	}
	tx.Rollback()
	for i := range 3 {
		id := fmt.Sprintf("m%d", i)
		if err := db.InsertOutbox(ctx, &OutboxRow{ID: id, Kind: "notify", CreatedAt: d0, NotBefore: d0, Sealed: []byte("s")}); err != nil {
			t.Fatal(err)
		}
		for range 2 { // failed twice, counted once
			if err := db.FailOutbox(ctx, id, d0.Add(time.Duration(i)*20*time.Hour), "550"); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := db.FailOutbox(ctx, "none", d0, "550"); err != ErrNotFound {
		t.Errorf("failing a mail that is not there: %v", err)
	}
	same("live counters")
	if n, err := db.RollupStats(ctx, d0.AddDate(0, 0, 2).Add(time.Hour)); err != nil || n != 2 {
		t.Fatalf("rolled up %d days (%v), want 2", n, err)
	}
	same("two days rolled up")
	// An entry committed late for a day rolled up already.
	if err := db.InsertAudit(ctx, &AuditRow{At: d0.Add(time.Hour), Actor: "system", Action: "transfer.create", Object: "late", Result: "ok"}); err != nil {
		t.Fatal(err)
	}
	same("a late entry")
	if n, err := db.RollupStats(ctx, d0.AddDate(0, 0, 5)); err != nil || n != 2 {
		t.Fatalf("rolled up %d days (%v), want 2 (the late entry's and the third)", n, err)
	}
	same("all rolled up")
	var live int
	if err := db.q.QueryRowContext(ctx, `SELECT count(*) FROM stats_live`).Scan(&live); err != nil || live != 0 {
		t.Errorf("%d counters left after the rollup (%v)", live, err)
	}
	// A database from before migration 0040: the third day not rolled up
	// and no counters. The next open counts it.
	if _, err := db.q.ExecContext(ctx, `DELETE FROM stats_daily WHERE day >= ?`, ms(d0.AddDate(0, 0, 2))); err != nil {
		t.Fatal(err)
	}
	if _, err := db.q.ExecContext(ctx, `INSERT INTO stats_live (day, metric, value) VALUES (-1, 'recount', 1)`); err != nil {
		t.Fatal(err)
	}
	db2, err := open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer db2.Close()
	same("recounted at open")
	if err := db.q.QueryRowContext(ctx, `SELECT count(*) FROM stats_live WHERE day = -1`).Scan(&live); err != nil || live != 0 {
		t.Errorf("the recount's marker is still there (%v)", err)
	}
}

// TestRecountWaitsAtStart: an instance that starts while another holds
// stats_live for its recount (tens of seconds on a big database) waits
// for it instead of failing after the connection's lock_timeout, and
// then finds the recount done.
func TestRecountWaitsAtStart(t *testing.T) {
	t.Parallel()
	storetest.RequirePostgres(t)
	ctx := context.Background()
	dsn := storetest.Postgres(t)
	db, err := OpenPostgres(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.q.ExecContext(ctx, `INSERT INTO stats_live (day, metric, value) VALUES (-1, 'recount', 1)`); err != nil {
		t.Fatal(err)
	}
	// The other instance's recount, held longer than this instance's
	// lock_timeout (200 ms, from its URL).
	holder, err := db.BeginTx(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := holder.tx.ExecContext(ctx, `LOCK TABLE stats_live IN EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		sep := "?"
		if strings.Contains(dsn, "?") {
			sep = "&"
		}
		db2, err := OpenPostgres(ctx, dsn+sep+"lock_timeout=200")
		if err == nil {
			db2.Close()
		}
		done <- err
	}()
	time.Sleep(time.Second)
	select {
	case err := <-done:
		t.Fatalf("the second open did not wait for the recount: %v", err)
	default:
	}
	if _, err := holder.tx.ExecContext(ctx, `DELETE FROM stats_live WHERE day = -1`); err != nil {
		t.Fatal(err)
	}
	if err := holder.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("the second open failed after the recount: %v", err)
	}
}
