package store

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

// testGatewayMessages: the dedupe claims of the mail gateway. One claim per
// mail at a time, also among parallel deliveries; a claim that ran out is
// taken over with the draft it left; a taken mail stays taken for the
// window; a refused mail's claim is released.
func testGatewayMessages(t *testing.T, fresh freshFunc) {
	ctx := context.Background()
	db, _ := openFresh(t, fresh)
	now := time.Now().UTC().Truncate(time.Millisecond)
	const lease = time.Minute
	h := []byte("hash-of-message-id-1")
	const jan = "jan@gemeente.nl"

	// Parallel deliveries of the same mail: exactly one claims it.
	var wg sync.WaitGroup
	var mu sync.Mutex
	won, busy := 0, 0
	for i := range 6 {
		wg.Go(func() {
			_, err := db.ClaimGatewayMessage(ctx, jan, h, "c"+string(rune('0'+i)), now, now.Add(lease))
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				won++
			case errors.Is(err, ErrMessageBusy):
				busy++
			default:
				t.Errorf("claim: %v", err)
			}
		})
	}
	wg.Wait()
	if won != 1 || busy != 5 {
		t.Fatalf("parallel claims: %d won, %d busy", won, busy)
	}
	// Find the winner by renewing with each name.
	winner := ""
	for i := range 6 {
		c := "c" + string(rune('0'+i))
		if err := db.RenewGatewayMessage(ctx, jan, h, c, now.Add(lease)); err == nil {
			winner = c
		} else if !errors.Is(err, ErrConflict) {
			t.Fatal(err)
		}
	}
	if winner == "" {
		t.Fatal("no claimant can renew")
	}
	if err := db.SetGatewayMessageTransfer(ctx, jan, h, winner, "draft1"); err != nil {
		t.Fatal(err)
	}
	// The same Message-ID from another sender is another mail.
	if _, err := db.ClaimGatewayMessage(ctx, "piet@gemeente.nl", h, "p", now, now.Add(lease)); err != nil {
		t.Errorf("another sender's mail: %v", err)
	}
	// Held until the claim runs out; then taken over, with the draft left.
	if m, err := db.ClaimGatewayMessage(ctx, jan, h, "late", now.Add(lease-time.Second), now.Add(2*lease)); !errors.Is(err, ErrMessageBusy) || m.Claimant != winner || m.TransferID != "draft1" {
		t.Fatalf("claim while held: %+v %v", m, err)
	}
	m, err := db.ClaimGatewayMessage(ctx, jan, h, "next", now.Add(lease), now.Add(2*lease))
	if err != nil || m.TransferID != "draft1" || m.Claimant != "next" {
		t.Fatalf("take over a run-out claim: %+v %v", m, err)
	}
	// The old claimant has lost it: it can neither renew, nor record a
	// transfer, nor finish, nor release.
	if err := db.RenewGatewayMessage(ctx, jan, h, winner, now.Add(3*lease)); !errors.Is(err, ErrConflict) {
		t.Errorf("old claimant renews: %v", err)
	}
	if err := db.GatewayMessageTaken(ctx, jan, h, winner, "draft1", now); !errors.Is(err, ErrConflict) {
		t.Errorf("old claimant finishes: %v", err)
	}
	if err := db.ReleaseGatewayMessage(ctx, jan, h, winner); !errors.Is(err, ErrConflict) {
		t.Errorf("old claimant releases: %v", err)
	}
	if err := db.SetGatewayMessageTransfer(ctx, jan, h, "next", "t2"); err != nil {
		t.Fatal(err)
	}
	at := now.Add(lease + time.Second)
	if err := db.GatewayMessageTaken(ctx, jan, h, "next", "t2", at); err != nil {
		t.Fatal(err)
	}
	// Taken: every later delivery learns so, also after the claim ran out.
	m, err = db.ClaimGatewayMessage(ctx, jan, h, "again", now.Add(time.Hour), now.Add(time.Hour+lease))
	if !errors.Is(err, ErrMessageTaken) || m.TransferID != "t2" || m.TakenAt == nil || !m.TakenAt.Equal(at) {
		t.Fatalf("claim a taken mail: %+v %v", m, err)
	}
	if err := db.ReleaseGatewayMessage(ctx, jan, h, "next"); !errors.Is(err, ErrConflict) {
		t.Errorf("a taken mail's row released: %v", err)
	}

	// A refused mail: released, so the same mail is judged again.
	h2 := []byte("hash-of-message-id-2")
	if _, err := db.ClaimGatewayMessage(ctx, jan, h2, "r", now, now.Add(lease)); err != nil {
		t.Fatal(err)
	}
	if err := db.ReleaseGatewayMessage(ctx, jan, h2, "r"); err != nil {
		t.Fatal(err)
	}
	if m, err := db.ClaimGatewayMessage(ctx, jan, h2, "r2", now, now.Add(lease)); err != nil || m.TransferID != "" {
		t.Fatalf("claim after release: %+v %v", m, err)
	}

	// The window: old taken rows and run-out claims go, a held claim stays.
	h3 := []byte("hash-of-message-id-3")
	if _, err := db.ClaimGatewayMessage(ctx, jan, h3, "held", now, now.Add(30*24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	later := now.Add(8 * 24 * time.Hour)
	n, err := db.DeleteOldGatewayMessages(ctx, later.Add(-7*24*time.Hour), later)
	if err != nil || n != 3 {
		t.Fatalf("deleted %d rows (%v), want 3 (taken, run-out claim of r2, piet's)", n, err)
	}
	if _, err := db.ClaimGatewayMessage(ctx, jan, h3, "x", later, later.Add(lease)); !errors.Is(err, ErrMessageBusy) {
		t.Errorf("a held claim was removed by the window: %v", err)
	}
	if _, err := db.ClaimGatewayMessage(ctx, jan, h, "x", later, later.Add(lease)); err != nil {
		t.Errorf("after the window the mail is new again: %v", err)
	}
}
