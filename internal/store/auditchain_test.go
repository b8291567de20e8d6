package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// auditChain writes n entries one second apart from t0 and returns them.
func auditChain(t *testing.T, db *DB, t0 time.Time, n int) []*AuditRow {
	t.Helper()
	ctx := context.Background()
	var out []*AuditRow
	for i := range n {
		a := &AuditRow{At: t0.Add(time.Duration(i) * time.Second), Actor: "sender:a@example.nl", Action: "file.download",
			Object: fmt.Sprintf("t%d", i), Result: "ok", IP: "192.0.2.1", Detail: "size=1", Role: "", Reason: ""}
		if i%3 == 0 {
			a.Actor, a.Role, a.Reason = "break-glass:root@host", "break-glass-admin", "ticket 12"
		}
		if err := db.InsertAudit(ctx, a); err != nil {
			t.Fatal(err)
		}
		out = append(out, a)
	}
	return out
}

// mustVerify runs VerifyAudit and fails on an error.
func mustVerify(t *testing.T, db *DB) *AuditVerdict {
	t.Helper()
	v, err := db.VerifyAudit(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// unguard drops the triggers that keep the audit table append-only, as
// someone with full access to the database could: the chain must still
// show what they did.
func unguard(t *testing.T, db *DB) {
	t.Helper()
	stmts := []string{`DROP TRIGGER audit_no_update`, `DROP TRIGGER audit_no_delete`}
	if db.Dialect() == Postgres {
		stmts = []string{`DROP TRIGGER audit_guard ON audit`}
	}
	for _, s := range stmts {
		if _, err := db.q.ExecContext(context.Background(), s); err != nil {
			t.Fatal(err)
		}
	}
}

func exec(t *testing.T, db *DB, query string, args ...any) {
	t.Helper()
	if _, err := db.q.ExecContext(context.Background(), query, args...); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
}

// testAuditChainTamper: an entry edited, deleted, inserted or moved in
// the database directly is found, and the first broken entry is named.
func testAuditChainTamper(t *testing.T, fresh freshFunc) {
	ctx := context.Background()
	t0 := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)

	// The database itself refuses changes and early deletes.
	db, _ := openFresh(t, fresh)
	rows := auditChain(t, db, t0, 3)
	if v := mustVerify(t, db); v.Break != nil || v.Entries != 3 {
		t.Fatalf("fresh chain: %+v %+v", v, v.Break)
	}
	for _, q := range []string{`UPDATE audit SET detail = 'x' WHERE id = ?`, `DELETE FROM audit WHERE id = ?`} {
		if _, err := db.q.ExecContext(ctx, q, rows[1].ID); err == nil || !strings.Contains(err.Error(), "audit entries are") {
			t.Errorf("%s: %v, want refused by the trigger", q, err)
		}
	}
	if _, err := db.q.ExecContext(ctx, `DELETE FROM audit_head`); err == nil {
		t.Error("the chain head was deleted")
	}

	for _, c := range []struct {
		name    string
		tamper  func(t *testing.T, db *DB, rows []*AuditRow)
		id      int // index of the entry the break is reported at
		at      int // index of the entry whose time the break shows
		problem string
	}{
		{"edited detail", func(t *testing.T, db *DB, rows []*AuditRow) {
			exec(t, db, `UPDATE audit SET detail = 'size=2' WHERE id = ?`, rows[2].ID)
		}, 2, 2, AuditEdited},
		{"edited reason", func(t *testing.T, db *DB, rows []*AuditRow) {
			exec(t, db, `UPDATE audit SET reason = 'other' WHERE id = ?`, rows[3].ID)
		}, 3, 3, AuditEdited},
		{"edited and rehashed", func(t *testing.T, db *DB, rows []*AuditRow) {
			a := *rows[2]
			a.Actor = "sender:b@example.nl"
			exec(t, db, `UPDATE audit SET actor = ?, hash = ? WHERE id = ?`, a.Actor, AuditHash(&a), a.ID)
		}, 3, 3, AuditLink},
		{"deleted", func(t *testing.T, db *DB, rows []*AuditRow) {
			exec(t, db, `DELETE FROM audit WHERE id = ?`, rows[2].ID)
		}, 3, 3, AuditLink},
		{"replaced by a forged entry", func(t *testing.T, db *DB, rows []*AuditRow) {
			a := *rows[2]
			a.Detail = "size=999"
			a.Hash = AuditHash(&a)
			exec(t, db, `DELETE FROM audit WHERE id = ?`, a.ID)
			exec(t, db, `INSERT INTO audit (`+auditColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
				a.ID, ms(a.At), a.Actor, a.Action, a.Object, a.Result, a.IP, a.Detail, a.Role, a.Reason, a.PrevHash, a.Hash)
		}, 3, 3, AuditLink},
		{"inserted at the end", func(t *testing.T, db *DB, rows []*AuditRow) {
			last := rows[len(rows)-1]
			a := AuditRow{ID: last.ID + 1, At: last.At, Actor: "system", Action: "x", Result: "ok", PrevHash: last.Hash}
			a.Hash = AuditHash(&a)
			exec(t, db, `INSERT INTO audit (`+auditColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
				a.ID, ms(a.At), a.Actor, a.Action, a.Object, a.Result, a.IP, a.Detail, a.Role, a.Reason, a.PrevHash, a.Hash)
		}, 5, 5, AuditBeyondHead},
		{"reordered pair", func(t *testing.T, db *DB, rows []*AuditRow) {
			// Swap the ids of entries 1 and 2 (through a free id).
			exec(t, db, `UPDATE audit SET id = ? WHERE id = ?`, -1, rows[1].ID)
			exec(t, db, `UPDATE audit SET id = ? WHERE id = ?`, rows[1].ID, rows[2].ID)
			exec(t, db, `UPDATE audit SET id = ? WHERE id = ?`, rows[2].ID, -1)
		}, 1, 2, AuditEdited}, // entry 2's content now sits at entry 1's id
		{"newest deleted", func(t *testing.T, db *DB, rows []*AuditRow) {
			exec(t, db, `DELETE FROM audit WHERE id = ?`, rows[4].ID)
		}, 3, 3, AuditTail},
	} {
		t.Run(c.name, func(t *testing.T) {
			db, _ := openFresh(t, fresh)
			rows := auditChain(t, db, t0, 5)
			unguard(t, db)
			c.tamper(t, db, rows)
			v := mustVerify(t, db)
			wantID := int64(c.id) + rows[0].ID
			if c.problem == AuditBeyondHead {
				wantID = rows[4].ID + 1
			}
			if v.Break == nil || v.Break.Problem != c.problem || v.Break.ID != wantID {
				t.Fatalf("break %+v, want %s at id %d", v.Break, c.problem, wantID)
			}
			if c.problem != AuditBeyondHead && !v.Break.At.Equal(rows[c.at].At) {
				t.Errorf("break at %v, want %v", v.Break.At, rows[c.at].At)
			}
		})
	}
}

// testAuditChainConcurrent: writers on two handles (two instances on
// PostgreSQL) at once still make one chain, with ids in chain order.
func testAuditChainConcurrent(t *testing.T, fresh freshFunc) {
	ctx := context.Background()
	db1, open := openFresh(t, fresh)
	db2, err := open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer db2.Close()
	const writers, each = 4, 25
	var wg sync.WaitGroup
	errs := make(chan error, writers*each)
	for w := range writers {
		db := db1
		if w%2 == 1 {
			db = db2
		}
		wg.Go(func() {
			for i := range each {
				// Half in a transaction with other work, half on their own.
				if i%2 == 0 {
					errs <- db.InsertAudit(ctx, &AuditRow{At: time.Now(), Actor: "system", Action: "w", Object: fmt.Sprint(w, i), Result: "ok"})
					continue
				}
				tx, err := db.BeginTx(ctx)
				if err != nil {
					errs <- err
					continue
				}
				err = tx.InsertAudit(ctx, &AuditRow{At: time.Now(), Actor: "system", Action: "w", Object: fmt.Sprint(w, i), Result: "ok"})
				if err == nil {
					err = tx.Commit()
				}
				tx.Rollback()
				errs <- err
			}
		})
	}
	// Batches (the purge's) at the same time, one longer than a statement
	// holds.
	batches := []int{3, auditInsertBatch + 7}
	for i, n := range batches {
		wg.Go(func() {
			tx, err := db2.BeginTx(ctx)
			if err != nil {
				t.Error(err)
				return
			}
			defer tx.Rollback()
			rows := make([]*AuditRow, n)
			for k := range rows {
				rows[k] = &AuditRow{At: time.Now(), Actor: "system", Action: "b", Object: fmt.Sprint(i, k), Result: "ok"}
			}
			if err := tx.InsertAudits(ctx, rows); err != nil {
				t.Error(err)
				return
			}
			for k := 1; k < n; k++ {
				if rows[k].ID != rows[k-1].ID+1 || !bytes.Equal(rows[k].PrevHash, rows[k-1].Hash) {
					t.Errorf("batch entry %d: id %d after %d", k, rows[k].ID, rows[k-1].ID)
				}
			}
			if err := tx.Commit(); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	v := mustVerify(t, db1)
	if want := int64(writers*each + batches[0] + batches[1]); v.Break != nil || v.Entries != want {
		t.Fatalf("after concurrent writers: %d entries, break %+v", v.Entries, v.Break)
	}
}

// testAuditPruneKeepsChain: retention removes the old entries, records a
// checkpoint, and the rest still verifies; an entry with a late clock
// keeps the ones after it.
func testAuditPruneKeepsChain(t *testing.T, fresh freshFunc) {
	ctx := context.Background()
	db, _ := openFresh(t, fresh)
	t0 := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	rows := auditChain(t, db, t0, 10)
	// Entry 6 was written with a clock an hour ahead.
	late := &AuditRow{At: t0.Add(time.Hour), Actor: "system", Action: "x", Result: "ok"}
	if err := db.InsertAudit(ctx, late); err != nil {
		t.Fatal(err)
	}
	rows = append(rows, late)
	rows = append(rows, auditChain(t, db, t0.Add(10*time.Second), 3)...)

	n, err := db.PruneAudit(ctx, t0.Add(5500*time.Millisecond))
	if err != nil || n != 6 {
		t.Fatalf("pruned %d, %v; want 6", n, err)
	}
	v := mustVerify(t, db)
	if v.Break != nil || v.Entries != int64(len(rows)-6) || v.Head.CutID != rows[5].ID || !v.Head.CutAt.Equal(rows[5].At) {
		t.Fatalf("after prune: %+v, head %+v", v.Break, v.Head)
	}
	// Past every entry but the late one: it keeps the three after it.
	if n, err := db.PruneAudit(ctx, t0.Add(30*time.Second)); err != nil || n != 4 {
		t.Fatalf("pruned %d, %v; want 4", n, err)
	}
	if v := mustVerify(t, db); v.Break != nil || v.Entries != 4 {
		t.Fatalf("after second prune: %d entries, %+v", v.Entries, v.Break)
	}
	if n, err := db.PruneAudit(ctx, t0.Add(2*time.Hour)); err != nil || n != 4 {
		t.Fatalf("pruned %d, %v; want 4", n, err)
	}
	if v := mustVerify(t, db); v.Break != nil || v.Entries != 0 {
		t.Fatalf("all pruned: %+v", v)
	}
	// The chain goes on from the checkpoint.
	auditChain(t, db, t0.Add(3*time.Hour), 2)
	if v := mustVerify(t, db); v.Break != nil || v.Entries != 2 {
		t.Fatalf("new entries after a full prune: %d %+v", v.Entries, v.Break)
	}
	// A deletion inside the kept part is still found after a prune.
	head, err := db.AuditHead(ctx)
	if err != nil {
		t.Fatal(err)
	}
	unguard(t, db)
	exec(t, db, `DELETE FROM audit WHERE id = ?`, head.LastID-1)
	if v := mustVerify(t, db); v.Break == nil || v.Break.Problem != AuditLink {
		t.Fatalf("deletion after prune: %+v", v.Break)
	}
}

// testAuditLegacyChained: entries written before migration 0015 (no
// hashes) are chained once when the database is next opened, and new
// entries continue the chain after them.
func testAuditLegacyChained(t *testing.T, fresh freshFunc) {
	ctx := context.Background()
	db, open := openFresh(t, fresh)
	// The state right after the migration on a database with entries.
	exec(t, db, `UPDATE audit_head SET legacy = 1`)
	for _, id := range []int64{3, 7, 8} { // ids with gaps, as an identity column leaves them
		exec(t, db, `INSERT INTO audit (id, at, actor, action, object, result, ip, detail) VALUES (?, ?, 'admin', 'apikey.revoke', 'k', 'ok', '', '')`, id, id*1000)
	}
	db2, err := open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer db2.Close()
	if err := db2.InsertAudit(ctx, &AuditRow{At: time.Now(), Actor: "system", Action: "x", Result: "ok"}); err != nil {
		t.Fatal(err)
	}
	v := mustVerify(t, db2)
	if v.Break != nil || v.Entries != 4 || v.Head.LastID != 9 {
		t.Fatalf("legacy chain: %d entries, head %+v, break %+v", v.Entries, v.Head, v.Break)
	}
	// Chained entries are now append-only too.
	if _, err := db2.q.ExecContext(ctx, `UPDATE audit SET detail = 'x' WHERE id = 3`); err == nil {
		t.Error("a chained legacy entry was changed")
	}
}

// testAuditForward: forwarding hands every entry over once and in order,
// also with two instances forwarding while writers add entries; a failed
// send records nothing, so the same entries come again.
func testAuditForward(t *testing.T, fresh freshFunc) {
	ctx := context.Background()
	db1, open := openFresh(t, fresh)
	db2, err := open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer db2.Close()
	add := func(db *DB, n int) {
		for i := range n {
			if err := db.InsertAudit(ctx, &AuditRow{At: time.Now(), Actor: "system", Action: "fw", Object: fmt.Sprint(i), Result: "ok"}); err != nil {
				t.Error(err)
				return
			}
		}
	}
	add(db1, 3)
	boom := errors.New("receiver down")
	n, err := db1.ForwardAudit(ctx, "syslog", 10, func([]*AuditRow) error { return boom })
	if !errors.Is(err, boom) || n != 0 {
		t.Fatalf("failed send: n=%d err=%v", n, err)
	}
	var mu sync.Mutex
	var got []int64
	record := func(b []*AuditRow) error {
		mu.Lock()
		defer mu.Unlock()
		for _, a := range b {
			got = append(got, a.ID)
		}
		return nil
	}
	var wg sync.WaitGroup
	wg.Go(func() { add(db1, 20) })
	wg.Go(func() { add(db2, 20) })
	for _, db := range []*DB{db1, db2} {
		wg.Go(func() {
			for range 30 {
				if _, err := db.ForwardAudit(ctx, "syslog", 4, record); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	for {
		n, err := db1.ForwardAudit(ctx, "syslog", 4, record)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
	}
	if len(got) != 43 {
		t.Fatalf("forwarded %d entries, want 43: %v", len(got), got)
	}
	for i, id := range got {
		if id != int64(i+1) {
			t.Fatalf("entry %d forwarded as id %d, want %d (each once, in order): %v", i, id, i+1, got)
		}
	}
	// Another destination has its own position.
	n, err = db2.ForwardAudit(ctx, "siem2", 100, func(b []*AuditRow) error { return nil })
	if err != nil || n != 43 {
		t.Fatalf("second destination: n=%d err=%v", n, err)
	}
}
