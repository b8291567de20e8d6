package store

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
)

// testHotPathPlans is issue 21 item 4 at a small scale: every hot-path
// query (hot.go) can be served by an index, on SQLite and PostgreSQL. On
// PostgreSQL the plans are made with enable_seqscan off, so a sequential
// scan (or an index read whole) in a plan means no index fits the query;
// bench/scale_test.go checks the same list on a million transfers with the
// planner left alone. It fails without the indexes of migration 0011 (the
// purge's revoked transfers, the sessions' recipient) and with the old
// DueForPurge, which read the live transfers.
func testHotPathPlans(t *testing.T, fresh freshFunc) {
	ctx := context.Background()
	db, _ := openFresh(t, fresh)
	now := time.Now().UTC().Truncate(time.Millisecond)
	var a HotArgs
	for i := range 20 {
		tr := newTransfer(fmt.Sprintf("t%02d", i), now.Add(-time.Duration(i)*time.Hour))
		tr.SenderEmail = fmt.Sprintf("s%d@example.nl", i%3)
		if err := db.InsertTransfer(ctx, tr); err != nil {
			t.Fatal(err)
		}
		r := &RecipientRow{TransferID: tr.ID, Kind: "to", Address: "r@example.nl"}
		if err := db.InsertRecipient(ctx, r); err != nil {
			t.Fatal(err)
		}
		f := &FileRow{ID: "f-" + tr.ID, TransferID: tr.ID, UpdatedAt: now, HeadSealed: []byte("h")}
		if err := db.InsertFile(ctx, f); err != nil {
			t.Fatal(err)
		}
		if err := db.InsertSession(ctx, &SessionRow{IDHash: []byte("s-" + tr.ID), RecipientID: r.ID, IdentitySealed: []byte("i"), ExpiresAt: now.Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
		if err := db.InsertAudit(ctx, &AuditRow{At: now, Actor: "system", Action: "transfer.create", Object: tr.ID, Result: "ok"}); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			a = HotArgs{TransferID: tr.ID, RecipientID: r.ID, FileID: f.ID, Sender: tr.SenderEmail, Now: now}
		} else if i == 1 {
			a.OtherID = tr.ID
		}
	}
	plans, err := db.HotPathPlans(ctx, a, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(plans) < 40 {
		t.Errorf("only %d hot-path queries explained", len(plans))
	}
	// The background loops run their claims every few seconds on every
	// instance; each must be in the list.
	for _, want := range []string{"WHERE state = 'scanning' AND scan_next_at <=", "FROM outbox WHERE held_for IS NOT NULL"} {
		found := false
		for _, p := range plans {
			found = found || strings.Contains(p.SQL, want)
		}
		if !found {
			t.Errorf("no hot-path query contains %q", want)
		}
	}
	for _, p := range plans {
		if len(p.Scans) > 0 {
			t.Errorf("%s reads %v whole:\n%s\nplan:\n%s", p.Name, p.Scans, p.SQL, p.Plan)
		}
	}
}
