package store

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"
)

// testAdminSearch: the console's searches find what they are asked for,
// page without gaps or repeats, and treat revoked and purged as states.
func testAdminSearch(t *testing.T, fresh freshFunc) {
	ctx := context.Background()
	db, _ := openFresh(t, fresh)
	now := time.Now().UTC().Truncate(time.Millisecond)
	for i := range 6 {
		tr := newTransfer(fmt.Sprintf("t%d", i), now.Add(time.Duration(i/2)*time.Minute))
		if i >= 3 {
			tr.SenderEmail = "Other@Example.nl"
		}
		if err := db.InsertTransfer(ctx, tr); err != nil {
			t.Fatal(err)
		}
		if err := db.InsertRecipient(ctx, &RecipientRow{TransferID: tr.ID, Kind: "to", Address: fmt.Sprintf("r%d@example.nl", i%2)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.InsertFile(ctx, &FileRow{ID: "f-t1", TransferID: "t1", UpdatedAt: now}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.q.ExecContext(ctx, `UPDATE transfers SET revoked_at = ? WHERE id = 't2'`, ms(now)); err != nil {
		t.Fatal(err)
	}
	if _, err := db.q.ExecContext(ctx, `UPDATE transfers SET revoked_at = ?, purged_at = ? WHERE id = 't4'`, ms(now), ms(now)); err != nil {
		t.Fatal(err)
	}
	ids := func(f TransferFilter, limit int) []string {
		t.Helper()
		var out []string
		for {
			page, err := db.SearchTransfers(ctx, f, limit)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range page {
				out = append(out, r.ID)
			}
			if len(page) < limit {
				return out
			}
			f.Before, f.BeforeID = page[len(page)-1].CreatedAt, page[len(page)-1].ID
		}
	}
	for _, c := range []struct {
		name string
		f    TransferFilter
		want []string
	}{
		{"all, in pages of 2", TransferFilter{}, []string{"t5", "t4", "t3", "t2", "t1", "t0"}},
		{"sender, any case", TransferFilter{Sender: "other@EXAMPLE.nl"}, []string{"t5", "t4", "t3"}},
		{"recipient", TransferFilter{Recipient: "R1@example.nl"}, []string{"t5", "t3", "t1"}},
		{"revoked (not purged)", TransferFilter{State: "revoked"}, []string{"t2"}},
		{"purged", TransferFilter{State: "purged"}, []string{"t4"}},
		{"id", TransferFilter{ID: "t3"}, []string{"t3"}},
		{"time range", TransferFilter{From: now.Add(time.Minute), To: now.Add(2 * time.Minute)}, []string{"t3", "t2"}},
	} {
		if got := ids(c.f, 2); !slices.Equal(got, c.want) {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
	page, err := db.SearchTransfers(ctx, TransferFilter{ID: "t1"}, 5)
	if err != nil || len(page) != 1 || page[0].Recipients != 1 || page[0].Files != 1 || page[0].Sender != "a@example.nl" {
		t.Fatalf("t1 metadata: %+v, %v", page, err)
	}

	for i, a := range []AuditRow{
		{Actor: "sender:a@example.nl", Action: "transfer.create", Object: "t1", Result: "ok"},
		{Actor: "recipient:7", Action: "recipient.unlock_failed", Object: "t1", Result: "wrong_password"},
		{Actor: "recipient:8", Action: "recipient.unlock", Object: "t2", Result: "ok"},
		{Actor: "sender:b@example.nl", Action: "transfer.create", Object: "t3", Result: "ok"},
		{Actor: "senders", Action: "x", Result: "ok"},
	} {
		a.At = now.Add(time.Duration(i) * time.Second)
		if err := db.InsertAudit(ctx, &a); err != nil {
			t.Fatal(err)
		}
	}
	audit := func(f AuditFilter) []int64 {
		t.Helper()
		rows, err := db.SearchAudit(ctx, f, 10)
		if err != nil {
			t.Fatal(err)
		}
		var out []int64
		for _, r := range rows {
			out = append(out, r.ID)
		}
		return out
	}
	for _, c := range []struct {
		name string
		f    AuditFilter
		want []int64
	}{
		{"all, newest first", AuditFilter{}, []int64{5, 4, 3, 2, 1}},
		{"actor prefix", AuditFilter{Actor: "sender:"}, []int64{4, 1}},
		{"actor exact", AuditFilter{Actor: "recipient:7"}, []int64{2}},
		{"object", AuditFilter{Object: "t1"}, []int64{2, 1}},
		{"action and result", AuditFilter{Action: "recipient.unlock_failed", Result: "wrong_password"}, []int64{2}},
		{"time", AuditFilter{From: now.Add(time.Second), To: now.Add(3 * time.Second)}, []int64{3, 2}},
		{"page", AuditFilter{BeforeID: 3}, []int64{2, 1}},
	} {
		if got := audit(c.f); !slices.Equal(got, c.want) {
			t.Errorf("audit %s: %v, want %v", c.name, got, c.want)
		}
	}
}
