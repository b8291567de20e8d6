package store

import (
	"context"
	"database/sql"
	"errors"
	"io/fs"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/kluis-nl/kluis/internal/store/storetest"
)

// opener opens a handle to one database (again: every call is a new
// handle to the same database).
type opener func(ctx context.Context) (*DB, error)

// freshFunc makes a new, empty database for one test.
type freshFunc func(t *testing.T) opener

func freshSQLite(t *testing.T) opener {
	path := filepath.Join(t.TempDir(), "kluis.db")
	return func(ctx context.Context) (*DB, error) { return OpenSQLite(ctx, path) }
}

func freshPostgres(t *testing.T) opener {
	dsn := storetest.Postgres(t)
	return func(ctx context.Context) (*DB, error) { return OpenPostgres(ctx, dsn) }
}

// openFresh opens a new database and closes it when the test ends.
func openFresh(t *testing.T, fresh freshFunc) (*DB, opener) {
	t.Helper()
	open := fresh(t)
	db, err := open(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db, open
}

func openTemp(t *testing.T) (*DB, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "kluis.db")
	db, err := OpenSQLite(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db, path
}

// The conformance suite: every test in it runs against SQLite and, when
// KLUIS_TEST_POSTGRES_URL is set, against PostgreSQL, each in a fresh
// database.
func TestConformanceSQLite(t *testing.T) {
	t.Parallel()
	runConformance(t, freshSQLite)
}

func TestConformancePostgres(t *testing.T) {
	t.Parallel()
	storetest.RequirePostgres(t)
	runConformance(t, freshPostgres)
}

func runConformance(t *testing.T, fresh freshFunc) {
	for _, c := range []struct {
		name string
		fn   func(*testing.T, freshFunc)
	}{
		{"MigrationsIdempotent", testMigrationsIdempotent},
		{"PurgeAndRetention", testPurgeAndRetention},
		{"WriteLocks", testWriteLocks},
		{"ConcurrentFirstOpen", testConcurrentFirstOpen},
		{"Rows", testRows},
		{"Outbox", testOutbox},
		{"ConcurrentClaims", testConcurrentClaims},
		{"Senders", testSenders},
		{"Audit", testAudit},
		{"AuditChainTamper", testAuditChainTamper},
		{"AuditChainConcurrent", testAuditChainConcurrent},
		{"AuditPruneKeepsChain", testAuditPruneKeepsChain},
		{"AuditLegacyChained", testAuditLegacyChained},
		{"AuditForward", testAuditForward},
		{"Leases", testLeases},
		{"GatewayMessages", testGatewayMessages},
		{"LeaseFencing", testLeaseFencing},
		{"RateBuckets", testRateBuckets},
		{"RateBucketsLateRequest", testRateBucketsLateRequest},
		{"ClaimReminder", testClaimReminder},
		{"DownloadOnce", testDownloadOnce},
		{"FileRequests", testFileRequests},
		{"FileRequestsDueAtDeadline", testFileRequestsDueAtDeadline},
		{"InboxWrap", testInboxWrap},
		{"Teams", testTeams},
		{"TeamWrapRemoval", testTeamWrapRemoval},
		{"MigrateDuplicateDownloads", testMigrateDuplicateDownloads},
		{"Stats", testStats},
		{"StatsCounters", testStatsCounters},
		{"SenderPages", testSenderPages},
		{"AdminSearch", testAdminSearch},
		{"PurgeBatch", testPurgeBatch},
		{"HotPathPlans", testHotPathPlans},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			c.fn(t, fresh)
		})
	}
}

// testMigrationsIdempotent: opening the same database again (also while
// it is open) applies nothing twice and fails on nothing.
func testMigrationsIdempotent(t *testing.T, fresh freshFunc) {
	ctx := context.Background()
	db, open := openFresh(t, fresh)
	names, err := fs.Glob(migrations, "migrations/"+db.Dialect().String()+"/*.sql")
	if err != nil || len(names) == 0 {
		t.Fatalf("no migrations found: %v", err)
	}
	count := func(db *DB) int {
		var n int
		if err := db.db.QueryRowContext(ctx, "SELECT count(*) FROM schema_migrations").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := count(db); n != len(names) {
		t.Fatalf("%d migrations recorded, want %d", n, len(names))
	}
	// Some data, which must survive.
	if err := db.InsertTransfer(ctx, &TransferRow{ID: "t1", State: "draft", CreatedAt: time.Now(), ExpiresAt: time.Now().Add(time.Hour),
		SenderEmail: "a@example.nl", Lang: "nl", PasswordMode: "manual", Options: "{}", UploadTokenHash: []byte("h")}); err != nil {
		t.Fatal(err)
	}
	// Open again while open, three times at once.
	var wg sync.WaitGroup
	errs := make(chan error, 3)
	for range 3 {
		wg.Go(func() {
			db2, err := open(ctx)
			if err != nil {
				errs <- err
				return
			}
			defer db2.Close()
			if n := count(db2); n != len(names) {
				errs <- errors.New("migrations recorded twice")
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("reopen: %v", err)
	}
	db.Close()
	db3, err := open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer db3.Close()
	if n := count(db3); n != len(names) {
		t.Errorf("%d migrations after reopening, want %d", n, len(names))
	}
	if _, err := db3.Transfer(ctx, "t1"); err != nil {
		t.Errorf("data lost across reopen: %v", err)
	}
	ms, err := db3.Migrations(ctx)
	if err != nil || len(ms) != len(names) || ms[0].Version != "0001_init" {
		t.Errorf("Migrations() = %v, %v", ms, err)
	}
}

// TestPragmasOnEveryConnection: secure_delete and the others are
// per-connection pragmas, so they must be in effect on every connection of
// the pool, not only the first.
func TestPragmasOnEveryConnection(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, _ := openTemp(t)
	const conns = 8 // SetMaxOpenConns in OpenSQLite
	var held []*sql.Conn
	for range conns {
		c, err := db.db.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
	}
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	var wg sync.WaitGroup
	for i, c := range held {
		wg.Go(func() {
			check := func(pragma string, want any) {
				var got any
				if err := c.QueryRowContext(ctx, "PRAGMA "+pragma).Scan(&got); err != nil {
					t.Errorf("conn %d: PRAGMA %s: %v", i, pragma, err)
					return
				}
				if s, ok := got.([]byte); ok {
					got = string(s)
				}
				if got != want {
					t.Errorf("conn %d: PRAGMA %s = %v (%T), want %v", i, pragma, got, got, want)
				}
			}
			check("secure_delete", int64(1))
			check("journal_mode", "wal")
			check("foreign_keys", int64(1))
			check("synchronous", int64(2)) // FULL
			check("busy_timeout", int64(15000))
		})
	}
	wg.Wait()
}

// testPurgeAndRetention at the store: PurgeTransfer clears every sealed
// column and the content rows; DeleteRetired cascades to recipients,
// downloads and sessions (foreign keys on every connection).
func testPurgeAndRetention(t *testing.T, fresh freshFunc) {
	ctx := context.Background()
	db, _ := openFresh(t, fresh)
	now := time.Now().UTC().Truncate(time.Millisecond)
	for _, id := range []string{"gone", "kept"} {
		err := db.InsertTransfer(ctx, &TransferRow{ID: id, State: "ready", CreatedAt: now, ExpiresAt: now.Add(time.Hour),
			SenderEmail: "a@example.nl", Lang: "nl", PasswordMode: "manual", Options: "{}", UploadTokenHash: []byte(id),
			RecipientSealed: []byte("r"), IdentitySealed: []byte("i"), DetailsSealed: []byte("d"), PrivateSealed: []byte("p")})
		if err != nil {
			t.Fatal(err)
		}
		r := &RecipientRow{TransferID: id, Kind: "to", Address: id + "@example.nl"}
		if err := db.InsertRecipient(ctx, r); err != nil {
			t.Fatal(err)
		}
		if err := db.InsertFile(ctx, &FileRow{ID: "f-" + id, TransferID: id, UpdatedAt: now, MetaSealed: []byte("m"), PrivateSealed: []byte("p"), ManifestSealed: []byte("x")}); err != nil {
			t.Fatal(err)
		}
		if err := db.InsertSession(ctx, &SessionRow{IDHash: []byte("s-" + id), RecipientID: r.ID, IdentitySealed: []byte("s"), ExpiresAt: now.Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
		if _, err := db.InsertDownload(ctx, r.ID, 0, now); err != nil {
			t.Fatal(err)
		}
		if err := db.SetServedSpans(ctx, r.ID, 0, "0-9"); err != nil {
			t.Fatal(err)
		}
	}
	// Compare and swap when a whole manifest moves to entry rows.
	seg := []SegmentRow{{ID: SegmentID("f-gone", 0), FileID: "f-gone", Index: 0, EntrySealed: []byte("e0")}}
	if err := db.ConvertManifest(ctx, "f-gone", 0, seg, []byte("y"), now); err != nil {
		t.Fatal(err)
	}
	if err := db.ConvertManifest(ctx, "f-gone", 0, seg, []byte("z"), now); !errors.Is(err, ErrConflict) {
		t.Fatalf("stale manifest conversion: %v, want ErrConflict", err)
	}
	if f, err := db.File(ctx, "f-gone"); err != nil || f.ManifestSealed != nil || string(f.HeadSealed) != "y" || f.Rev != 1 {
		t.Fatalf("converted file: %+v %v", f, err)
	}

	ids, err := db.DueForPurge(ctx, now.Add(2*time.Hour), 10)
	if err != nil || len(ids) != 2 {
		t.Fatalf("due: %v %v", ids, err)
	}
	if err := db.RevokeTransfer(ctx, "gone", now); err != nil {
		t.Fatal(err)
	}
	if ids, _ := db.DueForPurge(ctx, now, 10); len(ids) != 1 || ids[0] != "gone" {
		t.Fatalf("due after revoke: %v", ids)
	}
	tx, err := db.BeginTx(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.PurgeTransfer(ctx, "gone", now); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := db.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	row, err := db.Transfer(ctx, "gone")
	if err != nil {
		t.Fatal(err)
	}
	if row.State != "purged" || row.PurgedAt == nil || row.RecipientSealed != nil || row.IdentitySealed != nil || row.DetailsSealed != nil || row.PrivateSealed != nil {
		t.Errorf("purged row: %+v", row)
	}
	// The upload token of a purged transfer is unknown (issue 11 item 14).
	if len(row.UploadTokenHash) != 0 {
		t.Errorf("purged row keeps its upload token hash %x", row.UploadTokenHash)
	}
	if _, err := db.TransferByUploadToken(ctx, []byte("gone")); !errors.Is(err, ErrNotFound) {
		t.Errorf("purged transfer found by its upload token: %v", err)
	}
	if _, err := db.TransferByUploadToken(ctx, []byte("kept")); err != nil {
		t.Errorf("kept transfer by its upload token: %v", err)
	}
	rsGone, _ := db.Recipients(ctx, "gone")
	rsKept, _ := db.Recipients(ctx, "kept")
	if sp, err := db.ServedSpans(ctx, rsGone[0].ID, 0); err != nil || sp != "" {
		t.Errorf("served ranges of a purged transfer: %q %v", sp, err)
	}
	if sp, err := db.ServedSpans(ctx, rsKept[0].ID, 0); err != nil || sp != "0-9" {
		t.Errorf("served ranges of the kept transfer: %q %v", sp, err)
	}
	if fs, _ := db.Files(ctx, "gone"); len(fs) != 0 {
		t.Error("files survived the purge")
	}
	if segs, _ := db.Segments(ctx, "f-gone"); len(segs) != 0 {
		t.Error("segment entries survived the purge")
	}
	if rs, _ := db.Recipients(ctx, "gone"); len(rs) != 1 {
		t.Error("the minimal record lost its recipient")
	} else if s, err := db.Session(ctx, []byte("s-gone")); err != nil || len(s.IdentitySealed) != 0 {
		t.Errorf("purged transfer's session: %v, %v; want an empty sealed identity", s, err)
	}
	if s, err := db.Session(ctx, []byte("s-kept")); err != nil || string(s.IdentitySealed) != "s" {
		t.Errorf("kept transfer's session: %v, %v", s, err)
	}
	if ids, _ := db.DueForPurge(ctx, now.Add(2*time.Hour), 10); len(ids) != 1 || ids[0] != "kept" {
		t.Errorf("due after purge: %v", ids)
	}
	n, err := db.DeleteRetired(ctx, now.Add(time.Millisecond))
	if err != nil || n != 1 {
		t.Fatalf("retired: %d %v", n, err)
	}
	for table, want := range map[string]int{"transfers": 1, "recipients": 1, "files": 1, "sessions": 1, "downloads": 1, "served": 1} {
		var got int
		db.db.QueryRowContext(ctx, "SELECT count(*) FROM "+table).Scan(&got)
		if got != want {
			t.Errorf("%s: %d rows after retention, want %d (the kept transfer's)", table, got, want)
		}
	}
}

// testWriteLocks: on SQLite _txlock=immediate makes BeginTx take the
// database's one write lock, so two writers queue instead of failing with
// SQLITE_BUSY at commit or interleaving. On PostgreSQL writers run in
// parallel and queue only on what they lock (locks.go): the sender's
// advisory lock (any case of the address), a transfer's row (FOR NO KEY
// UPDATE against FOR SHARE and itself, never against foreign-key checks),
// a recipient's row. Each check fails if its lock is left out.
func testWriteLocks(t *testing.T, fresh freshFunc) {
	ctx := context.Background()
	db, _ := openFresh(t, fresh)
	now := time.Now().UTC().Truncate(time.Millisecond)
	for _, id := range []string{"t1", "t2"} {
		if err := db.InsertTransfer(ctx, newTransfer(id, now)); err != nil {
			t.Fatal(err)
		}
	}
	r := &RecipientRow{TransferID: "t1", Kind: "to", Address: "x@example.nl"}
	if err := db.InsertRecipient(ctx, r); err != nil {
		t.Fatal(err)
	}
	begin := func() *Tx {
		t.Helper()
		tx, err := db.BeginTx(ctx)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { tx.Rollback() })
		return tx
	}
	if db.Dialect() == SQLite {
		holder := begin()
		waitsFor(t, "a second writer", holder, true, func() error {
			tx, err := db.BeginTx(ctx)
			if err != nil {
				return err
			}
			defer tx.Rollback()
			return tx.Commit()
		})
		return
	}
	// No lock taken: another writer commits while this one is open.
	open := begin()
	if _, err := open.Transfer(ctx, "t1"); err != nil {
		t.Fatal(err)
	}
	waitsFor(t, "a writer beside an open one", nil, false, func() error {
		tx, err := db.BeginTx(ctx)
		if err != nil {
			return err
		}
		defer tx.Rollback()
		if err := tx.MarkReminded(ctx, "t2", now); err != nil {
			return err
		}
		return tx.Commit()
	})
	open.Rollback()

	// inTx runs fn in a transaction of its own and commits.
	inTx := func(fn func(tx *Tx) error) func() error {
		return func() error {
			tx, err := db.BeginTx(ctx)
			if err != nil {
				return err
			}
			defer tx.Rollback()
			if err := fn(tx); err != nil {
				return err
			}
			return tx.Commit()
		}
	}
	for _, c := range []struct {
		name  string
		hold  func(tx *Tx) error
		other func(tx *Tx) error
		waits bool
	}{
		{"the same sender, in another case",
			func(tx *Tx) error { return tx.LockSender(ctx, "Afzender@Example.nl") },
			func(tx *Tx) error { return tx.LockSender(ctx, "afzender@example.NL") }, true},
		{"another sender",
			func(tx *Tx) error { return tx.LockSender(ctx, "afzender@example.nl") },
			func(tx *Tx) error { return tx.LockSender(ctx, "collega@example.nl") }, false},
		{"the transfer, for update",
			func(tx *Tx) error { _, err := tx.TransferForUpdate(ctx, "t1"); return err },
			func(tx *Tx) error { _, err := tx.TransferForUpdate(ctx, "t1"); return err }, true},
		{"the transfer, shared behind an update",
			func(tx *Tx) error { _, err := tx.TransferForUpdate(ctx, "t1"); return err },
			func(tx *Tx) error { _, err := tx.TransferForShare(ctx, "t1"); return err }, true},
		{"the transfer, an update behind a share",
			func(tx *Tx) error { _, err := tx.TransferForShare(ctx, "t1"); return err },
			func(tx *Tx) error { _, err := tx.TransferForUpdate(ctx, "t1"); return err }, true},
		{"the transfer, shared twice",
			func(tx *Tx) error { _, err := tx.TransferForShare(ctx, "t1"); return err },
			func(tx *Tx) error { _, err := tx.TransferForShare(ctx, "t1"); return err }, false},
		{"another transfer",
			func(tx *Tx) error { _, err := tx.TransferForUpdate(ctx, "t1"); return err },
			func(tx *Tx) error { _, err := tx.TransferForUpdate(ctx, "t2"); return err }, false},
		{"a row that refers to the locked transfer",
			func(tx *Tx) error { _, err := tx.TransferForUpdate(ctx, "t1"); return err },
			func(tx *Tx) error {
				return tx.InsertRecipient(ctx, &RecipientRow{TransferID: "t1", Kind: "cc", Address: "y@example.nl"})
			}, false},
		{"the recipient",
			func(tx *Tx) error { _, err := tx.RecipientForUpdate(ctx, r.ID); return err },
			func(tx *Tx) error { _, err := tx.RecipientForUpdate(ctx, r.ID); return err }, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			holder := begin()
			if err := c.hold(holder); err != nil {
				t.Fatal(err)
			}
			waitsFor(t, c.name, holder, c.waits, inTx(c.other))
		})
	}
	if _, err := begin().TransferForUpdate(ctx, "nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("locking a missing transfer: %v", err)
	}
}

// waitsFor runs other beside the open transaction holder and checks that
// it waits for holder's commit (wait) or finishes while holder is open.
func waitsFor(t *testing.T, what string, holder *Tx, wait bool, other func() error) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- other() }()
	// Wanted to wait: 300 ms without an answer shows it waits. Must not
	// wait: it has to finish while the holder stays open; a loaded machine
	// may take seconds for that, a lock wait never ends.
	patience := 300 * time.Millisecond
	if !wait {
		patience = 10 * time.Second
	}
	select {
	case err := <-done:
		if wait {
			t.Fatalf("%s did not wait for the lock holder (%v)", what, err)
		}
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if holder != nil {
			holder.Rollback()
		}
		return
	case <-time.After(patience):
		if !wait {
			t.Fatalf("%s waited for a lock it should not need", what)
		}
	}
	if err := holder.Commit(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("%s, after the holder committed: %v", what, err)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("%s never got the lock", what)
	}
}

// testConcurrentFirstOpen: several processes (here: handles) opening a
// fresh database at once migrate it exactly once.
func testConcurrentFirstOpen(t *testing.T, fresh freshFunc) {
	ctx := context.Background()
	open := fresh(t)
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 {
		wg.Go(func() {
			db, err := open(ctx)
			if err != nil {
				errs <- err
				return
			}
			db.Close()
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("concurrent first open: %v", err)
	}
	db, err := open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	names, _ := fs.Glob(migrations, "migrations/"+db.Dialect().String()+"/*.sql")
	if ms, err := db.Migrations(ctx); err != nil || len(ms) != len(names) {
		t.Errorf("%d migrations recorded (%v), want %d", len(ms), err, len(names))
	}
}
