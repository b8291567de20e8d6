package store

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kluis-nl/kluis/internal/store/storetest"
)

// resealCols are two columns of the real schema: one keyed by a text id,
// one by a binary id whose row id is its hex.
var resealCols = []SealedColumn{
	{Table: "transfers", Column: "identity_sealed", RowID: "id"},
	{Table: "verifications", Column: "details_sealed", RowID: "lower(hex(id_hash))"},
}

// fillReseal writes n transfers and n verifications (more than one page of
// Reseal) and returns the verification id hashes.
func fillReseal(t *testing.T, db *DB, n int) [][]byte {
	t.Helper()
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Millisecond)
	var hashes [][]byte
	for i := range n {
		tr := newTransfer(fmt.Sprintf("t%04d", i), now)
		tr.IdentitySealed = []byte("old:" + tr.ID)
		if err := db.InsertTransfer(ctx, tr); err != nil {
			t.Fatal(err)
		}
		h := []byte{byte(i >> 8), byte(i), 0xab, 0x00, 0xff}
		hashes = append(hashes, h)
		v := &Verification{IDHash: h, Email: "a@example.nl", DetailsSealed: []byte("old:" + hex.EncodeToString(h)),
			CodeHash: []byte("c"), CreatedAt: now, SentAt: now, ExpiresAt: now.Add(time.Hour)}
		if err := db.StartVerification(ctx, v, 0); err != nil {
			t.Fatal(err)
		}
	}
	return hashes
}

// testReseal: every value is handed to fn with the row id it was sealed
// with, what fn returns is written back, nil keeps a value, and an error
// anywhere rolls the whole run back.
func testReseal(t *testing.T, db *DB) {
	ctx := context.Background()
	const n = 300
	hashes := fillReseal(t, db, n)

	// An error after many rows were rewritten: nothing changes.
	seen := 0
	_, err := db.Reseal(ctx, resealCols, func(col SealedColumn, rowID string, sealed []byte) ([]byte, error) {
		seen++
		if col.Table == "verifications" && seen > n+10 {
			return nil, errors.New("boom")
		}
		return append([]byte("new:"), sealed...), nil
	})
	if err == nil || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("failing reseal: %v", err)
	}
	if tr, err := db.Transfer(ctx, "t0000"); err != nil || string(tr.IdentitySealed) != "old:t0000" {
		t.Fatalf("a failed reseal changed a value: %q %v", tr.IdentitySealed, err)
	}

	// The real run: the row id matches the value's, every 7th value kept.
	counts, err := db.Reseal(ctx, resealCols, func(col SealedColumn, rowID string, sealed []byte) ([]byte, error) {
		if want := "old:" + rowID; string(sealed) != want {
			return nil, fmt.Errorf("%s: row id %q for value %q", col, rowID, sealed)
		}
		if strings.Contains(rowID, "7") {
			return nil, nil
		}
		return []byte("new:" + rowID), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(counts) != 2 {
		t.Fatalf("counts: %+v", counts)
	}
	for _, c := range counts {
		if c.Resealed+c.Kept != n || c.Kept == 0 || c.Resealed == 0 {
			t.Errorf("%s: %d re-sealed, %d kept; want %d together, some of each", c.Column, c.Resealed, c.Kept, n)
		}
	}
	for i := range n {
		id := fmt.Sprintf("t%04d", i)
		tr, err := db.Transfer(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		want := "new:" + id
		if strings.Contains(id, "7") {
			want = "old:" + id
		}
		if string(tr.IdentitySealed) != want {
			t.Fatalf("%s: %q, want %q", id, tr.IdentitySealed, want)
		}
		v, err := db.Verification(ctx, hashes[i])
		if err != nil {
			t.Fatal(err)
		}
		hx := hex.EncodeToString(hashes[i])
		want = "new:" + hx
		if strings.Contains(hx, "7") {
			want = "old:" + hx
		}
		if !bytes.Equal(v.DetailsSealed, []byte(want)) {
			t.Fatalf("verification %s: %q, want %q", hx, v.DetailsSealed, want)
		}
	}
}

func TestResealSQLite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kluis.db")
	if _, err := OpenExclusive(context.Background(), "sqlite:"+path, "", time.Second); err == nil || !strings.Contains(err.Error(), "no Kluis database") {
		t.Fatalf("exclusive open of a missing database: %v", err)
	}
	db, err := OpenSQLite(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	db, err = OpenExclusive(context.Background(), "sqlite:"+path, "", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	testReseal(t, db)
}

func TestResealPostgres(t *testing.T) {
	dsn := storetest.Postgres(t)
	ctx := context.Background()
	plain, err := OpenPostgres(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	// Not opened exclusively: refused, servers might be running.
	if _, err := plain.Reseal(ctx, resealCols, func(SealedColumn, string, []byte) ([]byte, error) { return nil, nil }); err == nil {
		t.Fatal("reseal on a shared PostgreSQL handle was allowed")
	}
	plain.Close()
	db, err := OpenPostgresExclusive(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	testReseal(t, db)
}

// TestPostgresInstanceLock: maintenance sees every open handle (a server on
// another host looks the same to the database), and no handle opens while
// maintenance runs.
func TestPostgresInstanceLock(t *testing.T) {
	dsn := storetest.Postgres(t)
	ctx := context.Background()
	a, err := OpenPostgres(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	b, err := OpenPostgres(ctx, dsn) // two instances at once are fine
	if err != nil {
		t.Fatal(err)
	}
	_, err = OpenPostgresExclusive(ctx, dsn)
	if !errors.Is(err, ErrBusy) || !strings.Contains(err.Error(), "2 Kluis process(es)") || !strings.Contains(err.Error(), "pid ") {
		t.Fatalf("exclusive open beside two instances: %v", err)
	}
	a.Close()
	if _, err := OpenPostgresExclusive(ctx, dsn); !errors.Is(err, ErrBusy) || !strings.Contains(err.Error(), "1 Kluis process(es)") {
		t.Fatalf("exclusive open beside one instance: %v", err)
	}
	b.Close()

	x, err := OpenPostgresExclusive(ctx, dsn)
	if err != nil {
		t.Fatalf("exclusive open with no instance: %v", err)
	}
	if _, err := OpenPostgres(ctx, dsn); !errors.Is(err, ErrMaintenance) {
		t.Fatalf("an instance started during maintenance: %v", err)
	}
	if _, err := OpenPostgresExclusive(ctx, dsn); !errors.Is(err, ErrBusy) {
		t.Fatalf("two maintenance runs at once: %v", err)
	}
	x.Close()
	c, err := OpenPostgres(ctx, dsn)
	if err != nil {
		t.Fatalf("open after maintenance: %v", err)
	}
	c.Close()
}

// TestOutboxClaimOfDeadInstance: mail that an instance had claimed when it
// died is due again at once for the instances that live on (and for the
// dead one's restart), not after the 3-minute outbox lease; mail that a
// live instance claimed stays its own. The first nemesis run found the
// lease delaying, after every kill, the mail the killed process was
// sending (a verification code waited 3 minutes). The instance "dies"
// here as a killed process does for PostgreSQL: its session ends.
func TestOutboxClaimOfDeadInstance(t *testing.T) {
	dsn := storetest.Postgres(t)
	ctx := context.Background()
	open := func() *DB {
		t.Helper()
		db, err := OpenPostgres(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	}
	dead, live, other := open(), open(), open()
	now := time.Now().UTC().Truncate(time.Millisecond)
	for _, id := range []string{"m1", "m2"} {
		if err := dead.InsertOutbox(ctx, &OutboxRow{ID: id, Kind: "verify_code", CreatedAt: now, NotBefore: now, Sealed: []byte("x")}); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := dead.ClaimOutbox(ctx, now, time.Hour, 1); err != nil || len(got) != 1 || got[0].ID != "m1" {
		t.Fatalf("first instance's claim: %v %v", got, err)
	}
	if got, err := live.ClaimOutbox(ctx, now, time.Hour, 1); err != nil || len(got) != 1 || got[0].ID != "m2" {
		t.Fatalf("second instance's claim: %v %v", got, err)
	}
	if got, err := other.ClaimOutbox(ctx, now.Add(time.Minute), time.Hour, 10); err != nil || len(got) != 0 {
		t.Fatalf("mail claimed by live instances was claimed again: %v %v", got, err)
	}

	// The first instance dies: PostgreSQL ends its session.
	var pid int
	if err := dead.hold.conn.QueryRowContext(ctx, "SELECT pg_backend_pid()").Scan(&pid); err != nil {
		t.Fatal(err)
	}
	var ok bool
	if err := other.db.QueryRowContext(ctx, "SELECT pg_terminate_backend($1)", pid).Scan(&ok); err != nil || !ok {
		t.Fatalf("pg_terminate_backend(%d): %v %v", pid, ok, err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		var n int
		if err := other.db.QueryRowContext(ctx, "SELECT count(*) FROM pg_stat_activity WHERE pid = $1", pid).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the terminated session did not end within 10 s")
		}
		time.Sleep(50 * time.Millisecond)
	}

	got, err := other.ClaimOutbox(ctx, now.Add(time.Minute), time.Hour, 10)
	if err != nil || len(got) != 1 || got[0].ID != "m1" {
		t.Fatalf("a minute after its instance died, well within the lease: claimed %v %v, want m1 only", got, err)
	}
	if got, err := live.ClaimOutbox(ctx, now.Add(time.Minute), time.Hour, 10); err != nil || len(got) != 0 {
		t.Fatalf("a mail claimed by a live instance after its claimant died was claimed again: %v %v", got, err)
	}
}
