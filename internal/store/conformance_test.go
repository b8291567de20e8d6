package store

import (
	"context"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func newTransfer(id string, now time.Time) *TransferRow {
	return &TransferRow{ID: id, State: "draft", CreatedAt: now, ExpiresAt: now.Add(time.Hour),
		SenderEmail: "a@example.nl", Lang: "nl", PasswordMode: "manual", Options: "{}", UploadTokenHash: []byte("tok-" + id),
		RecipientSealed: []byte("r"), IdentitySealed: []byte("i"), DetailsSealed: []byte("d"), PrivateSealed: []byte("p")}
}

// testRows: the transfers, recipients, files, downloads and sessions
// helpers, including the compare-and-swap updates and RETURNING.
func testRows(t *testing.T, fresh freshFunc) {
	ctx := context.Background()
	db, _ := openFresh(t, fresh)
	now := time.Now().UTC().Truncate(time.Millisecond)
	if err := db.InsertTransfer(ctx, newTransfer("t1", now)); err != nil {
		t.Fatal(err)
	}
	if err := db.InsertTransfer(ctx, newTransfer("t1", now)); err == nil {
		t.Error("duplicate transfer id accepted")
	}
	got, err := db.Transfer(ctx, "t1")
	if err != nil || !got.CreatedAt.Equal(now) || got.FinishedAt != nil || string(got.PrivateSealed) != "p" {
		t.Fatalf("transfer: %+v %v", got, err)
	}
	if _, err := db.Transfer(ctx, "nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing transfer: %v", err)
	}
	if got, err := db.TransferByUploadToken(ctx, []byte("tok-t1")); err != nil || got.ID != "t1" {
		t.Errorf("by upload token: %v %v", got, err)
	}
	if err := db.SetTransferState(ctx, "t1", "uploading", "draft", "ready"); err != nil {
		t.Fatal(err)
	}
	if err := db.SetTransferState(ctx, "t1", "uploading", "draft"); !errors.Is(err, ErrConflict) {
		t.Errorf("state from wrong state: %v", err)
	}
	if err := db.FinishTransfer(ctx, "t1", now); err != nil {
		t.Fatal(err)
	}
	if ts, err := db.TransfersBySender(ctx, "a@example.nl"); err != nil || len(ts) != 1 || ts[0].State != "ready" {
		t.Errorf("by sender: %v %v", ts, err)
	}
	if err := db.ExtendTransfer(ctx, "t1", now.Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	ids, err := db.DueForReminder(ctx, now, now.Add(3*time.Hour), 10)
	if err != nil || !slices.Equal(ids, []string{"t1"}) {
		t.Errorf("due for reminder: %v %v", ids, err)
	}
	if err := db.MarkReminded(ctx, "t1", now); err != nil {
		t.Fatal(err)
	}
	if ids, _ := db.DueForReminder(ctx, now, now.Add(3*time.Hour), 10); len(ids) != 0 {
		t.Errorf("reminded twice: %v", ids)
	}

	// Recipients: ids from RETURNING, in order.
	var rs []*RecipientRow
	for _, a := range []string{"x@example.nl", "y@example.nl"} {
		r := &RecipientRow{TransferID: "t1", Kind: "to", Address: a}
		if err := db.InsertRecipient(ctx, r); err != nil {
			t.Fatal(err)
		}
		rs = append(rs, r)
	}
	if rs[0].ID == 0 || rs[1].ID <= rs[0].ID {
		t.Errorf("recipient ids %d, %d", rs[0].ID, rs[1].ID)
	}
	if err := db.SetRecipientAccess(ctx, rs[0].ID, []byte("acc"), &now); err != nil {
		t.Fatal(err)
	}
	if r, err := db.RecipientByAccess(ctx, []byte("acc")); err != nil || r.ID != rs[0].ID || r.NotifiedAt == nil || !r.NotifiedAt.Equal(now) {
		t.Errorf("by access: %+v %v", r, err)
	}
	if err := db.SetRecipientAccess(ctx, rs[1].ID, []byte("acc"), nil); err == nil {
		t.Error("duplicate access hash accepted")
	}
	for want := 1; want <= 3; want++ {
		r, err := db.ReserveAttempt(ctx, rs[0].ID, 3, 5, now)
		if err != nil || r.Failures != want || r.FailTotal != want {
			t.Fatalf("attempt %d: %+v %v", want, r, err)
		}
	}
	if _, err := db.ReserveAttempt(ctx, rs[0].ID, 3, 5, now); !errors.Is(err, ErrNotFound) {
		t.Errorf("attempt past max: %v", err)
	}
	until := now.Add(time.Hour)
	if ok, err := db.Lock(ctx, rs[0].ID, 2, 2, &until, now, []byte("u1")); ok || err != nil {
		t.Errorf("lock with a stale count: %v %v", ok, err)
	}
	if ok, err := db.Lock(ctx, rs[0].ID, 3, 3, &until, now, []byte("u1")); !ok || err != nil {
		t.Errorf("lock: %v %v", ok, err)
	}
	if _, err := db.ReserveAttempt(ctx, rs[0].ID, 3, 5, now); !errors.Is(err, ErrNotFound) {
		t.Errorf("attempt while locked: %v", err)
	}
	if r, err := db.LockedByLink(ctx, "t1", []byte("u1")); err != nil || r.ID != rs[0].ID || r.Lockouts != 1 || r.Failures != 0 || r.FailTotal != 3 {
		t.Errorf("locked by link: %+v %v", r, err)
	}
	// After the lock the count goes on in all: the 5th wrong attempt in
	// all is the last; a hold needs the total to be unchanged.
	for want := 4; want <= 5; want++ {
		if r, err := db.ReserveAttempt(ctx, rs[0].ID, 3, 5, until); err != nil || r.FailTotal != want || r.Failures != want-3 {
			t.Errorf("attempt %d after the lock: %+v %v", want, r, err)
		}
	}
	if _, err := db.ReserveAttempt(ctx, rs[0].ID, 3, 5, until); !errors.Is(err, ErrNotFound) {
		t.Errorf("attempt past the hold: %v", err)
	}
	if ok, err := db.Lock(ctx, rs[0].ID, 2, 4, nil, until, []byte("u2")); ok || err != nil {
		t.Errorf("hold with a stale total: %v %v", ok, err)
	}
	if ok, err := db.Lock(ctx, rs[0].ID, 2, 5, nil, until, []byte("u2")); !ok || err != nil {
		t.Errorf("hold: %v %v", ok, err)
	}
	if _, err := db.ReserveAttempt(ctx, rs[0].ID, 3, 0, until.Add(365*24*time.Hour)); !errors.Is(err, ErrNotFound) {
		t.Errorf("attempt while held, a year later: %v", err)
	}
	if _, err := db.LockedByLink(ctx, "t1", []byte("u1")); !errors.Is(err, ErrNotFound) {
		t.Errorf("the first lock's link after the second lock: %v", err)
	}
	if _, err := db.LiftLock(ctx, "t1", 0, []byte("u1"), until); !errors.Is(err, ErrNotFound) {
		t.Errorf("lift with a replaced link: %v", err)
	}
	if _, err := db.LiftLock(ctx, "t1", rs[1].ID, nil, until); !errors.Is(err, ErrNotFound) {
		t.Errorf("lift of a recipient that is not locked: %v", err)
	}
	if id, err := db.LiftLock(ctx, "other", 0, []byte("u2"), until); !errors.Is(err, ErrNotFound) {
		t.Errorf("lift through another transfer: %d %v", id, err)
	}
	if id, err := db.LiftLock(ctx, "t1", 0, []byte("u2"), until); err != nil || id != rs[0].ID {
		t.Errorf("lift with the link: %d %v", id, err)
	}
	if _, err := db.LiftLock(ctx, "t1", 0, []byte("u2"), until); !errors.Is(err, ErrNotFound) {
		t.Errorf("the link twice: %v", err)
	}
	if r, err := db.ReserveAttempt(ctx, rs[0].ID, 3, 5, until); err != nil || r.FailTotal != 1 || r.Lockouts != 0 || r.HeldAt != nil {
		t.Errorf("attempt after the lift: %+v %v", r, err)
	}
	if err := db.UncountAttempt(ctx, rs[0].ID); err != nil {
		t.Fatal(err)
	}
	if r, err := db.Recipient(ctx, rs[0].ID); err != nil || r.FailTotal != 0 || r.Failures != 0 {
		t.Errorf("after a right answer of a factor: %+v %v", r, err)
	}
	if _, err := db.ReserveAttempt(ctx, rs[0].ID, 3, 5, until); err != nil {
		t.Fatal(err)
	}
	if err := db.MarkOpened(ctx, rs[0].ID, now); err != nil {
		t.Fatal(err)
	}
	if err := db.MarkOpened(ctx, rs[0].ID, now.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	r, err := db.Recipient(ctx, rs[0].ID)
	if err != nil || r.Failures != 0 || r.FailTotal != 0 || r.LockedUntil != nil || r.OpenedAt == nil || !r.OpenedAt.Equal(now) {
		t.Errorf("opened: %+v %v", r, err)
	}
	if err := db.MarkNotified(ctx, rs[1].ID, now); err != nil {
		t.Fatal(err)
	}

	// Files: the index comes from the insert, complete is a boolean.
	for i, id := range []string{"f0", "f1"} {
		f := &FileRow{ID: id, TransferID: "t1", UpdatedAt: now, ManifestSealed: []byte("m")}
		if err := db.InsertFile(ctx, f); err != nil || f.Index != i {
			t.Fatalf("file %s: index %d, %v", id, f.Index, err)
		}
	}
	if err := db.CompleteFile(ctx, "f0", 0, []byte("meta"), []byte("sum"), now); err != nil {
		t.Fatal(err)
	}
	if err := db.CompleteFile(ctx, "f0", 1, []byte("meta"), []byte("sum"), now); !errors.Is(err, ErrConflict) {
		t.Errorf("completing twice: %v", err)
	}
	if f, err := db.File(ctx, "f0"); err != nil || !f.Complete || f.Rev != 1 || string(f.SumSealed) != "sum" {
		t.Errorf("completed file: %+v %v", f, err)
	}
	var seen []string
	if err := db.EachFile(ctx, func(f *FileRow) error { seen = append(seen, f.ID); return nil }); err != nil || len(seen) != 2 {
		t.Errorf("each file: %v %v", seen, err)
	}
	if err := db.DeleteFile(ctx, "f1"); err != nil {
		t.Fatal(err)
	}
	if fs, _ := db.Files(ctx, "t1"); len(fs) != 1 {
		t.Errorf("files after delete: %d", len(fs))
	}
	if first, err := db.InsertDownload(ctx, rs[0].ID, -1, now); err != nil || !first {
		t.Fatalf("first download: %v %v", first, err)
	}
	if ds, err := db.Downloads(ctx, "t1"); err != nil || len(ds) != 1 || ds[0].FileIndex != -1 || !ds[0].At.Equal(now) {
		t.Errorf("downloads: %v %v", ds, err)
	}

	// Sessions: revoking a recipient empties its sessions' identity.
	if err := db.InsertSession(ctx, &SessionRow{IDHash: []byte("s1"), RecipientID: rs[1].ID, IdentitySealed: []byte("id"), ExpiresAt: now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if err := db.RevokeRecipient(ctx, rs[1].ID, now); err != nil {
		t.Fatal(err)
	}
	if err := db.RevokeRecipient(ctx, rs[1].ID, now); !errors.Is(err, ErrConflict) {
		t.Errorf("revoking twice: %v", err)
	}
	if s, err := db.Session(ctx, []byte("s1")); err != nil || len(s.IdentitySealed) != 0 || s.RecipientID != rs[1].ID {
		t.Errorf("session after revoke: %+v %v", s, err)
	}
	if n, err := db.DeleteExpiredSessions(ctx, now.Add(time.Hour)); n != 1 || err != nil {
		t.Errorf("expired sessions: %d %v", n, err)
	}
	if _, err := db.Session(ctx, []byte("s1")); !errors.Is(err, ErrNotFound) {
		t.Errorf("expired session: %v", err)
	}

	// The purge gauge: the earlier of revocation and expiry.
	if _, ok, err := db.OldestDueForPurge(ctx, now); ok || err != nil {
		t.Errorf("nothing due yet: %v %v", ok, err)
	}
	if err := db.InsertTransfer(ctx, newTransfer("t2", now)); err != nil {
		t.Fatal(err)
	}
	if err := db.RevokeTransfer(ctx, "t2", now.Add(-time.Minute)); err != nil {
		t.Fatal(err)
	}
	if since, ok, err := db.OldestDueForPurge(ctx, now); !ok || err != nil || !since.Equal(now.Add(-time.Minute)) {
		t.Errorf("oldest due: %v %v %v", since, ok, err)
	}
	if since, ok, err := db.OldestDueForPurge(ctx, now.Add(3*time.Hour)); !ok || err != nil || !since.Equal(now.Add(-time.Minute)) {
		t.Errorf("oldest due later: %v %v %v", since, ok, err)
	}
	if err := db.EraseTransfer(ctx, "t1"); err != nil {
		t.Fatal(err)
	}
	if err := db.EraseTransfer(ctx, "t1"); !errors.Is(err, ErrNotFound) {
		t.Errorf("erasing twice: %v", err)
	}
	for _, table := range []string{"recipients", "files", "downloads", "sessions"} {
		var n int
		if err := db.db.QueryRowContext(ctx, "SELECT count(*) FROM "+table).Scan(&n); err != nil || n != 0 {
			t.Errorf("%s after erase: %d %v", table, n, err)
		}
	}
}

func testOutbox(t *testing.T, fresh freshFunc) {
	ctx := context.Background()
	db, _ := openFresh(t, fresh)
	now := time.Now().UTC().Truncate(time.Millisecond)
	for i, id := range []string{"m1", "m2", "m3"} {
		err := db.InsertOutbox(ctx, &OutboxRow{ID: id, Kind: "notify", CreatedAt: now, NotBefore: now.Add(time.Duration(i) * time.Second), Sealed: []byte("mail " + id)})
		if err != nil {
			t.Fatal(err)
		}
	}
	if p, f, err := db.OutboxDepth(ctx); p != 3 || f != 0 || err != nil {
		t.Errorf("depth: %d %d %v", p, f, err)
	}
	// A mail held for a transfer that waits for its malware scan is not
	// pending: it is not sent until the scan, which may take a day, so
	// counting it would show a mail queue that never drains.
	if err := db.InsertOutbox(ctx, &OutboxRow{ID: "h1", Kind: "notify", CreatedAt: now, NotBefore: now, Sealed: []byte("held")}); err != nil {
		t.Fatal(err)
	}
	if err := db.HoldOutbox(ctx, "t-held", []string{"h1"}); err != nil {
		t.Fatal(err)
	}
	if p, f, err := db.OutboxDepth(ctx); p != 3 || f != 0 || err != nil {
		t.Errorf("depth with a held mail: %d pending %d failed %v, want 3 0", p, f, err)
	}
	if h, err := db.OutboxHeld(ctx); h != 1 || err != nil {
		t.Errorf("held: %d %v, want 1", h, err)
	}
	if err := db.DeleteHeldOutbox(ctx, "t-held"); err != nil {
		t.Fatal(err)
	}
	got, err := db.ClaimOutbox(ctx, now.Add(time.Second), time.Minute, 10)
	if err != nil || len(got) != 2 {
		t.Fatalf("claim: %v %v", got, err)
	}
	for _, o := range got {
		if o.ClaimedUntil == nil || !o.ClaimedUntil.Equal(now.Add(time.Second+time.Minute)) || string(o.Sealed) != "mail "+o.ID {
			t.Errorf("claimed row: %+v", o)
		}
	}
	if again, err := db.ClaimOutbox(ctx, now.Add(time.Second), time.Minute, 10); err != nil || len(again) != 0 {
		t.Errorf("claimed twice: %v %v", again, err)
	}
	if err := db.RetryOutbox(ctx, "m1", now, 1, "421 try later"); err != nil {
		t.Fatal(err)
	}
	if err := db.FailOutbox(ctx, "m2", now, "550 no"); err != nil {
		t.Fatal(err)
	}
	if err := db.RetryOutbox(ctx, "m2", now, 2, "x"); !errors.Is(err, ErrNotFound) {
		t.Errorf("retrying a failed mail: %v", err)
	}
	o, err := db.Outbox(ctx, "m2")
	if err != nil || o.Sealed != nil || o.FailedAt == nil || o.LastError != "550 no" {
		t.Errorf("failed row: %+v %v", o, err)
	}
	if o, _ := db.Outbox(ctx, "m1"); o.Attempts != 1 || o.ClaimedUntil != nil || o.LastError != "421 try later" {
		t.Errorf("retried row: %+v", o)
	}
	if p, f, err := db.OutboxDepth(ctx); p != 2 || f != 1 || err != nil {
		t.Errorf("depth: %d %d %v", p, f, err)
	}
	if err := db.DeleteOutbox(ctx, "m1"); err != nil {
		t.Fatal(err)
	}
	if err := db.DeleteOutbox(ctx, "m1"); err != nil {
		t.Errorf("deleting a gone row: %v", err)
	}
	if n, err := db.DeleteFailedOutbox(ctx, now.Add(time.Millisecond)); n != 1 || err != nil {
		t.Errorf("delete failed: %d %v", n, err)
	}
	if _, err := db.Outbox(ctx, "m2"); !errors.Is(err, ErrNotFound) {
		t.Errorf("failed row after delete: %v", err)
	}
}

// testConcurrentClaims: instances claiming at the same moment (here:
// separate handles) never get the same mail.
func testConcurrentClaims(t *testing.T, fresh freshFunc) {
	ctx := context.Background()
	db, open := openFresh(t, fresh)
	now := time.Now().UTC().Truncate(time.Millisecond)
	const mails = 60
	for i := range mails {
		if err := db.InsertOutbox(ctx, &OutboxRow{ID: "m" + strconv.Itoa(i), Kind: "notify", CreatedAt: now, NotBefore: now, Sealed: []byte("x")}); err != nil {
			t.Fatal(err)
		}
	}
	var mu sync.Mutex
	claimed := map[string]int{}
	var wg sync.WaitGroup
	for range 4 {
		h, err := open(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer h.Close()
		for range 3 {
			wg.Go(func() {
				for {
					got, err := h.ClaimOutbox(ctx, now, time.Hour, 4)
					if err != nil {
						t.Error(err)
						return
					}
					if len(got) == 0 {
						return
					}
					mu.Lock()
					for _, o := range got {
						claimed[o.ID]++
					}
					mu.Unlock()
				}
			})
		}
	}
	wg.Wait()
	if len(claimed) != mails {
		t.Errorf("%d of %d mails claimed", len(claimed), mails)
	}
	for id, n := range claimed {
		if n != 1 {
			t.Errorf("%s claimed %d times", id, n)
		}
	}
}

func testSenders(t *testing.T, fresh freshFunc) {
	ctx := context.Background()
	db, _ := openFresh(t, fresh)
	now := time.Now().UTC().Truncate(time.Millisecond)
	v := &Verification{IDHash: []byte("v"), Email: "a@example.nl", DetailsSealed: []byte("d"), CodeHash: []byte("c1"), CreatedAt: now, SentAt: now, ExpiresAt: now.Add(time.Hour)}
	if err := db.StartVerification(ctx, v, time.Minute); err != nil {
		t.Fatal(err)
	}
	if got, err := db.ReserveVerificationAttempt(ctx, []byte("v"), 2, now); err != nil || got.Attempts != 1 || string(got.CodeHash) != "c1" {
		t.Errorf("attempt: %+v %v", got, err)
	}
	// Within the cooldown a resend changes nothing, for any address.
	v.CodeHash, v.SentAt, v.Email = []byte("c2"), now.Add(time.Minute-time.Millisecond), "b@example.nl"
	if err := db.StartVerification(ctx, v, time.Minute); !errors.Is(err, ErrConflict) {
		t.Errorf("resend within the cooldown: %v, want ErrConflict", err)
	}
	v.SentAt = now.Add(time.Minute)
	if err := db.StartVerification(ctx, v, time.Minute); err != nil {
		t.Fatal(err)
	}
	got, err := db.Verification(ctx, []byte("v"))
	if err != nil || string(got.CodeHash) != "c2" || got.Attempts != 0 || !got.SentAt.Equal(now.Add(time.Minute)) || !got.CreatedAt.Equal(now) || got.Email != "b@example.nl" {
		t.Errorf("after resend: %+v %v", got, err)
	}
	for i := 1; i <= 2; i++ {
		if got, err := db.ReserveVerificationAttempt(ctx, []byte("v"), 2, now); err != nil || got.Attempts != i {
			t.Errorf("attempt %d: %+v %v", i, got, err)
		}
	}
	if _, err := db.ReserveVerificationAttempt(ctx, []byte("v"), 2, now); !errors.Is(err, ErrNotFound) {
		t.Errorf("attempt over the limit: %v", err)
	}
	if _, err := db.ReserveVerificationAttempt(ctx, []byte("v"), 3, v.ExpiresAt); !errors.Is(err, ErrNotFound) {
		t.Errorf("attempt at expiry: %v", err)
	}
	if _, err := db.ReserveVerificationAttempt(ctx, []byte("nope"), 2, now); !errors.Is(err, ErrNotFound) {
		t.Errorf("attempt on none: %v", err)
	}
	if err := db.UseVerification(ctx, []byte("v"), []byte("c1")); !errors.Is(err, ErrNotFound) {
		t.Errorf("use with a replaced code: %v", err)
	}
	if err := db.UseVerification(ctx, []byte("v"), []byte("c2")); err != nil {
		t.Fatal(err)
	}
	if err := db.UseVerification(ctx, []byte("v"), []byte("c2")); !errors.Is(err, ErrNotFound) {
		t.Errorf("used twice: %v", err)
	}
	if _, err := db.Verification(ctx, []byte("v")); !errors.Is(err, ErrNotFound) {
		t.Errorf("deleted verification: %v", err)
	}
	for _, id := range []string{"s1", "s2"} {
		if err := db.InsertSenderSession(ctx, &SenderSession{IDHash: []byte(id), Email: "a@example.nl", DetailsSealed: []byte("d"), Kind: "web", CreatedAt: now, LastSeenAt: now, ExpiresAt: now.Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.TouchSenderSession(ctx, []byte("s1"), now.Add(10*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := db.DeleteExpiredSenderData(ctx, now.Add(time.Minute), now.Add(5*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if s, err := db.SenderSession(ctx, []byte("s1")); err != nil || !s.LastSeenAt.Equal(now.Add(10*time.Minute)) {
		t.Errorf("touched session: %+v %v", s, err)
	}
	if _, err := db.SenderSession(ctx, []byte("s2")); !errors.Is(err, ErrNotFound) {
		t.Errorf("idle session survived: %v", err)
	}
	if err := db.DeleteSenderSession(ctx, []byte("s1")); err != nil {
		t.Fatal(err)
	}
	for i, id := range []string{"k1", "k2"} {
		if err := db.InsertAPIKey(ctx, &APIKey{ID: id, KeyHash: []byte("h" + id), Email: "a@example.nl", Name: "Zaaksysteem " + id,
			CreatedAt: now.Add(time.Duration(i) * time.Second), ExpiresAt: now.Add(90 * 24 * time.Hour)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.RevokeAPIKey(ctx, "k1", now); err != nil {
		t.Fatal(err)
	}
	if err := db.RevokeAPIKey(ctx, "k1", now); !errors.Is(err, ErrNotFound) {
		t.Errorf("revoking twice: %v", err)
	}
	if k, err := db.APIKeyByHash(ctx, []byte("hk1")); err != nil || k.RevokedAt == nil {
		t.Errorf("revoked key: %+v %v", k, err)
	}
	if ks, err := db.APIKeys(ctx); err != nil || len(ks) != 2 || ks[0].ID != "k2" {
		t.Errorf("keys: %v %v", ks, err)
	}
	// Expiring now, last use, and the columns read back.
	if err := db.ExpireAPIKey(ctx, "k2", now); err != nil {
		t.Fatal(err)
	}
	if err := db.ExpireAPIKey(ctx, "k2", now); !errors.Is(err, ErrNotFound) {
		t.Errorf("expiring twice: %v", err)
	}
	if err := db.ExpireAPIKey(ctx, "k1", now); !errors.Is(err, ErrNotFound) {
		t.Errorf("expiring a revoked key: %v", err)
	}
	if err := db.TouchAPIKey(ctx, "k2", now.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	k, err := db.APIKey(ctx, "k2")
	if err != nil || k.Name != "Zaaksysteem k2" || !k.ExpiresAt.Equal(now) || k.LastUsedAt == nil || !k.LastUsedAt.Equal(now.Add(time.Minute)) || k.RevokedAt != nil {
		t.Errorf("key k2: %+v %v", k, err)
	}
	if _, err := db.APIKey(ctx, "k3"); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown key: %v", err)
	}
}

func testAudit(t *testing.T, fresh freshFunc) {
	ctx := context.Background()
	db, _ := openFresh(t, fresh)
	now := time.Now().UTC().Truncate(time.Millisecond)
	tx, err := db.BeginTx(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var ids []int64
	for i := range 3 {
		a := &AuditRow{At: now.Add(time.Duration(i) * time.Second), Actor: "admin", Action: "x", Object: "t", Result: "ok", IP: "::1", Detail: ""}
		if err := tx.InsertAudit(ctx, a); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, a.ID)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if ids[0] == 0 || ids[1] <= ids[0] || ids[2] <= ids[1] {
		t.Errorf("audit ids %v", ids)
	}
	var got []int64
	if err := db.AuditSince(ctx, now.Add(time.Second), func(a *AuditRow) error { got = append(got, a.ID); return nil }); err != nil || !slices.Equal(got, ids[1:]) {
		t.Errorf("since: %v %v", got, err)
	}
	if n, err := db.PruneAudit(ctx, now.Add(time.Second)); n != 1 || err != nil {
		t.Errorf("delete: %d %v", n, err)
	}
	// A rolled-back entry is gone.
	tx, _ = db.BeginTx(ctx)
	tx.InsertAudit(ctx, &AuditRow{At: now, Actor: "a", Action: "b", Object: "c", Result: "d", IP: "e"})
	tx.Rollback()
	got = nil
	db.AuditSince(ctx, time.Time{}, func(a *AuditRow) error { got = append(got, a.ID); return nil })
	if len(got) != 2 {
		t.Errorf("after rollback: %v", got)
	}
}

func TestRebind(t *testing.T) {
	for in, want := range map[string]string{
		"SELECT 1":                              "SELECT 1",
		"a = ? AND b IN (?, ?)":                 "a = $1 AND b IN ($2, $3)",
		"x = '?' AND y = ?":                     "x = '?' AND y = $1",
		"x = 'it''s ?' AND y = ? LIMIT ?":       "x = 'it''s ?' AND y = $1 LIMIT $2",
		"VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)": "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
	} {
		if got := rebind(in); got != want {
			t.Errorf("rebind(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestSQLIsPortable: the package's SQL has no ? inside a quoted literal
// (rebind would not number it, but a reader might think it does) and no
// SQLite-only constructs that crept back in.
func TestSQLIsPortable(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") || name == "rekey.go" {
			continue // rekey.go's maintenance SQL is written per dialect on purpose
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			lit, ok := n.(*ast.BasicLit)
			if !ok || lit.Kind != token.STRING {
				return true
			}
			s, err := strconv.Unquote(lit.Value)
			if err != nil {
				t.Fatal(err)
			}
			quoted := false
			for _, c := range s {
				switch {
				case c == '\'':
					quoted = !quoted
				case c == '?' && quoted:
					t.Errorf("%s: ? inside a quoted SQL literal: %q", fset.Position(lit.Pos()), s)
				}
			}
			low := strings.ToLower(s)
			for _, bad := range []string{"x''", "rowid", ") strict", "pragma ", "min(min(", "sum(failed_at", "insert or ", "autoincrement"} {
				// Checkpoint and Optimize run their pragma on SQLite only.
				if strings.Contains(low, bad) && !strings.HasPrefix(low, "pragma wal_checkpoint") && !strings.HasPrefix(low, "pragma optimize") {
					t.Errorf("%s: SQLite-only SQL %q in %q", fset.Position(lit.Pos()), bad, s)
				}
			}
			return true
		})
	}
}

func TestOpenSpec(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	db, err := Open(ctx, "", dir)
	if err != nil || db.Dialect() != SQLite {
		t.Fatal(err)
	}
	db.Close()
	db, err = Open(ctx, "sqlite:"+filepath.Join(dir, "other.db"), dir)
	if err != nil || db.Dialect() != SQLite {
		t.Fatal(err)
	}
	db.Close()
	for _, bad := range []string{"mysql://u:secretpw@h/db", "sqlite:", "/some/path"} {
		if _, err := Open(ctx, bad, dir); err == nil || strings.Contains(err.Error(), "secretpw") {
			t.Errorf("Open(%q): %v", bad, err)
		}
	}
}

// TestMigrationsPerDialect: every SQLite migration has a PostgreSQL twin
// with the same number and name, and the other way round.
func TestMigrationsPerDialect(t *testing.T) {
	list := func(dialect string) []string {
		names, err := fs.Glob(migrations, "migrations/"+dialect+"/*.sql")
		if err != nil || len(names) == 0 {
			t.Fatalf("%s migrations: %v", dialect, err)
		}
		for i, n := range names {
			names[i] = filepath.Base(n)
		}
		return names
	}
	if s, p := list("sqlite"), list("postgres"); !slices.Equal(s, p) {
		t.Errorf("migrations differ:\nsqlite   %v\npostgres %v", s, p)
	}
}

// testDownloadOnce: a recipient's download of a file is recorded once, and
// of parallel writers exactly one is told it was first; served ranges are
// per recipient and file and replaced as a whole.
func testDownloadOnce(t *testing.T, fresh freshFunc) {
	ctx := context.Background()
	db, _ := openFresh(t, fresh)
	now := time.Now().UTC().Truncate(time.Millisecond)
	if err := db.InsertTransfer(ctx, newTransfer("t1", now)); err != nil {
		t.Fatal(err)
	}
	var rs []*RecipientRow
	for _, a := range []string{"a@example.nl", "b@example.nl"} {
		r := &RecipientRow{TransferID: "t1", Kind: "to", Address: a}
		if err := db.InsertRecipient(ctx, r); err != nil {
			t.Fatal(err)
		}
		rs = append(rs, r)
	}
	const writers = 12
	var firsts atomic.Int32
	var wg sync.WaitGroup
	for range writers {
		wg.Go(func() {
			tx, err := db.BeginTx(ctx)
			if err != nil {
				t.Error(err)
				return
			}
			defer tx.Rollback()
			first, err := tx.InsertDownload(ctx, rs[0].ID, 3, now)
			if err != nil {
				t.Error(err)
				return
			}
			if err := tx.Commit(); err != nil {
				t.Error(err)
				return
			}
			if first {
				firsts.Add(1)
			}
		})
	}
	wg.Wait()
	if n := firsts.Load(); n != 1 {
		t.Errorf("%d of %d parallel writers were first, want 1", n, writers)
	}
	// Another file, and another recipient, are their own first time.
	for _, c := range []struct {
		r   int64
		idx int
	}{{rs[0].ID, 4}, {rs[1].ID, 3}} {
		if first, err := db.InsertDownload(ctx, c.r, c.idx, now); err != nil || !first {
			t.Errorf("download %+v: first %v, %v", c, first, err)
		}
	}
	if ds, err := db.Downloads(ctx, "t1"); err != nil || len(ds) != 3 {
		t.Errorf("downloads: %+v %v, want 3", ds, err)
	}

	if sp, err := db.ServedSpans(ctx, rs[0].ID, 3); err != nil || sp != "" {
		t.Errorf("nothing served yet: %q %v", sp, err)
	}
	for _, v := range []string{"0-9", "0-9,20-29"} {
		if err := db.SetServedSpans(ctx, rs[0].ID, 3, v); err != nil {
			t.Fatal(err)
		}
		if sp, err := db.ServedSpans(ctx, rs[0].ID, 3); err != nil || sp != v {
			t.Errorf("served: %q %v, want %q", sp, err, v)
		}
	}
	if sp, err := db.ServedSpans(ctx, rs[1].ID, 3); err != nil || sp != "" {
		t.Errorf("another recipient's ranges: %q %v", sp, err)
	}
}

// testMigrateDuplicateDownloads: migration 0007 keeps the first of the
// downloads rows that earlier versions wrote for every whole download, so
// its unique index can be built on an existing database.
func testMigrateDuplicateDownloads(t *testing.T, fresh freshFunc) {
	ctx := context.Background()
	db, open := openFresh(t, fresh)
	now := time.Now().UTC().Truncate(time.Millisecond)
	if err := db.InsertTransfer(ctx, newTransfer("t1", now)); err != nil {
		t.Fatal(err)
	}
	r := &RecipientRow{TransferID: "t1", Kind: "to", Address: "a@example.nl"}
	if err := db.InsertRecipient(ctx, r); err != nil {
		t.Fatal(err)
	}
	// Back to the schema before 0007, with what an older version wrote:
	// the same file (and the ZIP, -1) downloaded three times.
	for _, q := range []string{`DROP INDEX downloads_once`, `DROP TABLE served`, `DELETE FROM schema_migrations WHERE version = '0007_served'`} {
		if _, err := db.db.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	for i := range 3 {
		for _, idx := range []int{0, -1} {
			if _, err := db.db.ExecContext(ctx, rebindFor(db, `INSERT INTO downloads (recipient_id, file_idx, at) VALUES (?, ?, ?)`), r.ID, idx, ms(now.Add(time.Duration(i)*time.Minute))); err != nil {
				t.Fatal(err)
			}
		}
	}
	db.Close()
	db, err := open(ctx)
	if err != nil {
		t.Fatalf("migrating a database with repeated downloads: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	ds, err := db.Downloads(ctx, "t1")
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) != 2 {
		t.Fatalf("%d downloads rows after the migration, want 2 (one per file index): %+v", len(ds), ds)
	}
	for _, d := range ds {
		if !d.At.Equal(now) {
			t.Errorf("kept the download of %v for file %d, want the first (%v)", d.At, d.FileIndex, now)
		}
	}
	if first, err := db.InsertDownload(ctx, r.ID, 0, now); err != nil || first {
		t.Errorf("a repeated download after the migration: first %v, %v", first, err)
	}
}

// rebindFor makes SQL with ? placeholders runnable on db's raw handle.
func rebindFor(db *DB, q string) string {
	if db.Dialect() == Postgres {
		return rebind(q)
	}
	return q
}

// testFileRequests: the file_requests rows (migration 0026): lookups by
// id, link hash, transfer and requester, the one-way state changes, the
// daily count, the purge and the retention.
func testFileRequests(t *testing.T, fresh freshFunc) {
	ctx := context.Background()
	db, _ := openFresh(t, fresh)
	now := time.Now().UTC().Truncate(time.Millisecond)
	fr := &FileRequest{ID: "q1", RequesterEmail: "staf@example.nl", Address: "burger@example.org", Lang: "uk",
		AccessHash: []byte("hash-q1"), InboxSealed: []byte("inbox"), DetailsSealed: []byte("details"),
		MaxSize: 1 << 30, MaxFiles: 20, CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
	if err := db.InsertFileRequest(ctx, fr); err != nil {
		t.Fatal(err)
	}
	q2 := *fr
	q2.ID, q2.AccessHash, q2.CreatedAt = "q2", []byte("hash-q2"), now.Add(time.Second)
	if err := db.InsertFileRequest(ctx, &q2); err != nil {
		t.Fatal(err)
	}
	dup := *fr
	dup.ID = "q3"
	if err := db.InsertFileRequest(ctx, &dup); err == nil {
		t.Error("a second request with the same link hash was stored")
	}
	got, err := db.FileRequestByAccess(ctx, []byte("hash-q1"))
	if err != nil || got.ID != "q1" || got.Lang != "uk" || got.MaxFiles != 20 || got.MaxSize != 1<<30 || !got.ExpiresAt.Equal(fr.ExpiresAt) ||
		string(got.DetailsSealed) != "details" || got.TransferID != "" || got.DoneAt != nil {
		t.Fatalf("by access: %+v %v", got, err)
	}
	if _, err := db.FileRequest(ctx, "nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing: %v", err)
	}
	if n, err := db.CountFileRequestsSince(ctx, "staf@example.nl", now.Add(time.Millisecond)); err != nil || n != 1 {
		t.Errorf("count since: %d %v", n, err)
	}
	if list, err := db.FileRequestsByRequester(ctx, "staf@example.nl"); err != nil || len(list) != 2 || list[0].ID != "q2" {
		t.Errorf("by requester: %v %v", list, err)
	}
	// The upload's transfer, set once; the request done once.
	if err := db.InsertTransfer(ctx, newTransfer("t1", now)); err != nil {
		t.Fatal(err)
	}
	if err := db.SetFileRequestTransfer(ctx, "q1", "t1"); err != nil {
		t.Fatal(err)
	}
	if err := db.SetFileRequestTransfer(ctx, "q1", "t2"); !errors.Is(err, ErrConflict) {
		t.Errorf("second transfer: %v", err)
	}
	if got, err := db.FileRequestByTransfer(ctx, "t1"); err != nil || got.ID != "q1" {
		t.Errorf("by transfer: %v %v", got, err)
	}
	if err := db.SetTransferPrivate(ctx, "t1", `{"has_message":true}`, []byte("p2")); err != nil {
		t.Fatal(err)
	}
	if tr, err := db.Transfer(ctx, "t1"); err != nil || string(tr.PrivateSealed) != "p2" || tr.Options != `{"has_message":true}` {
		t.Errorf("private: %+v %v", tr, err)
	}
	tx, err := db.BeginTx(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.FileRequestForUpdate(ctx, "q1"); err != nil {
		t.Fatal(err)
	}
	if err := tx.FileRequestDone(ctx, "q1", now); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := db.FileRequestDone(ctx, "q1", now); !errors.Is(err, ErrConflict) {
		t.Errorf("done twice: %v", err)
	}
	// Revoke forgets the link and the message at once.
	if err := db.RevokeFileRequest(ctx, "q2", now); err != nil {
		t.Fatal(err)
	}
	if err := db.RevokeFileRequest(ctx, "q2", now); !errors.Is(err, ErrConflict) {
		t.Errorf("revoke twice: %v", err)
	}
	if _, err := db.FileRequestByAccess(ctx, []byte("hash-q2")); !errors.Is(err, ErrNotFound) {
		t.Errorf("revoked link: %v", err)
	}
	if err := db.FileRequestDone(ctx, "q2", now); !errors.Is(err, ErrConflict) {
		t.Errorf("done after revoke: %v", err)
	}
	// The SMS with the link (migration 0042): queued, then sent or failed
	// once; the purge forgets the number but keeps what became of it.
	q4 := *fr
	q4.ID, q4.AccessHash, q4.PhoneSealed, q4.SMSState = "q4", []byte("hash-q4"), []byte("phone"), SMSQueued
	q4.ExpiresAt = now.Add(90 * time.Minute)
	if err := db.InsertFileRequest(ctx, &q4); err != nil {
		t.Fatal(err)
	}
	if got, err := db.FileRequest(ctx, "q4"); err != nil || string(got.PhoneSealed) != "phone" || got.SMSState != SMSQueued || got.SMSAt != nil {
		t.Fatalf("with a number: %+v %v", got, err)
	}
	if got, err := db.FileRequest(ctx, "q1"); err != nil || got.PhoneSealed != nil || got.SMSState != "" {
		t.Errorf("without a number: %+v %v", got, err)
	}
	if err := db.SetFileRequestSMS(ctx, "q1", SMSSent, now); !errors.Is(err, ErrNotFound) {
		t.Errorf("SMS state of a request without one: %v", err)
	}
	if err := db.SetFileRequestSMS(ctx, "q4", SMSSent, now); err != nil {
		t.Fatal(err)
	}
	if err := db.SetFileRequestSMS(ctx, "q4", SMSFailed, now); !errors.Is(err, ErrNotFound) {
		t.Errorf("a final SMS state changed again: %v", err)
	}
	if got, err := db.FileRequest(ctx, "q4"); err != nil || got.SMSState != SMSSent || got.SMSAt == nil || !got.SMSAt.Equal(now) {
		t.Errorf("sent: %+v %v", got, err)
	}
	// The purge: the revoked one now, the other at its expiry.
	if n, err := db.PurgeFileRequests(ctx, now); err != nil || n != 1 {
		t.Errorf("purge now: %d %v", n, err)
	}
	if n, err := db.PurgeFileRequests(ctx, now.Add(time.Hour)); err != nil || n != 1 {
		t.Errorf("purge at expiry: %d %v", n, err)
	}
	// q1 was sent: its link still leads to the page that says so.
	got, err = db.FileRequest(ctx, "q1")
	if err != nil || string(got.AccessHash) != "hash-q1" || got.DetailsSealed != nil || got.InboxSealed != nil || got.PurgedAt == nil || got.TransferID != "t1" || got.DoneAt == nil {
		t.Fatalf("purged: %+v %v", got, err)
	}
	if n, err := db.PurgeFileRequests(ctx, now.Add(90*time.Minute)); err != nil || n != 1 {
		t.Errorf("purge with a number: %d %v", n, err)
	}
	if got, err := db.FileRequest(ctx, "q4"); err != nil || got.PhoneSealed != nil || got.SMSState != SMSSent {
		t.Errorf("purged with a number: %+v %v", got, err)
	}
	if n, err := db.DeleteRetiredFileRequests(ctx, now.Add(time.Hour)); err != nil || n != 0 {
		t.Errorf("retire before the end: %d %v", n, err)
	}
	if n, err := db.DeleteRetiredFileRequests(ctx, now.Add(2*time.Hour)); err != nil || n != 3 {
		t.Errorf("retire: %d %v", n, err)
	}
}

// testFileRequestsDueAtDeadline: the requests whose upload Finish sends
// at the deadline are those past it, not done, revoked or purged, whose
// transfer is a draft neither revoked nor purged; the oldest first.
func testFileRequestsDueAtDeadline(t *testing.T, fresh freshFunc) {
	ctx := context.Background()
	db, _ := openFresh(t, fresh)
	now := time.Now().UTC().Truncate(time.Millisecond)
	add := func(id string, expires time.Time, transfer string) {
		t.Helper()
		fr := &FileRequest{ID: id, RequesterEmail: "staf@example.nl", Address: "burger@example.org", Lang: "nl",
			AccessHash: []byte("hash-" + id), InboxSealed: []byte("inbox"), DetailsSealed: []byte("details"),
			MaxSize: 1 << 20, MaxFiles: 20, CreatedAt: now.Add(-time.Hour), ExpiresAt: expires}
		if err := db.InsertFileRequest(ctx, fr); err != nil {
			t.Fatal(err)
		}
		if transfer == "" {
			return
		}
		tr := newTransfer(transfer, now)
		tr.ExpiresAt = expires
		if err := db.InsertTransfer(ctx, tr); err != nil {
			t.Fatal(err)
		}
		if err := db.SetFileRequestTransfer(ctx, id, transfer); err != nil {
			t.Fatal(err)
		}
	}
	add("late", now.Add(-time.Minute), "t-late")
	add("older", now.Add(-2*time.Minute), "t-older")
	add("atnow", now, "t-atnow")
	add("open", now.Add(time.Minute), "t-open")
	add("empty", now.Add(-time.Minute), "")
	add("done", now.Add(-time.Minute), "t-done")
	add("revoked", now.Add(-time.Minute), "t-revoked")
	add("tpurged", now.Add(-time.Minute), "t-tpurged")
	add("tready", now.Add(-time.Minute), "t-tready")
	if err := db.FileRequestDone(ctx, "done", now.Add(-2*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := db.RevokeFileRequest(ctx, "revoked", now.Add(-2*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := db.PurgeTransfer(ctx, "t-tpurged", now); err != nil {
		t.Fatal(err)
	}
	if err := db.FinishTransfer(ctx, "t-tready", now.Add(-2*time.Minute)); err != nil {
		t.Fatal(err)
	}
	due, err := db.FileRequestsDueAtDeadline(ctx, now, 10)
	if err != nil {
		t.Fatal(err)
	}
	want := []DeadlineDue{{"older", "t-older"}, {"late", "t-late"}, {"atnow", "t-atnow"}}
	if fmt.Sprint(due) != fmt.Sprint(want) {
		t.Errorf("due: %v, want %v", due, want)
	}
	if due, err := db.FileRequestsDueAtDeadline(ctx, now, 1); err != nil || len(due) != 1 || due[0].RequestID != "older" {
		t.Errorf("limit 1: %v %v", due, err)
	}
	// Once done it is no longer due; nor once the requests are purged.
	if err := db.FileRequestDone(ctx, "older", now); err != nil {
		t.Fatal(err)
	}
	if _, err := db.PurgeFileRequests(ctx, now); err != nil {
		t.Fatal(err)
	}
	if due, err := db.FileRequestsDueAtDeadline(ctx, now, 10); err != nil || len(due) != 0 {
		t.Errorf("after done and purge: %v %v", due, err)
	}
}

// testInboxWrap: an inbox key is inserted once; its wrap is replaced only
// while it is still the one read (of two changes at once, one passes),
// and the recipient stays.
func testInboxWrap(t *testing.T, fresh freshFunc) {
	ctx := context.Background()
	db, _ := openFresh(t, fresh)
	now := time.Now().UTC().Truncate(time.Millisecond)
	k := &InboxKey{Email: "anna@example.nl", Recipient: "age1anna", IdentitySealed: []byte("wrap-1"), CreatedAt: now}
	if err := db.InsertInboxKey(ctx, k); err != nil {
		t.Fatal(err)
	}
	if err := db.InsertInboxKey(ctx, k); !errors.Is(err, ErrConflict) {
		t.Errorf("second insert: %v", err)
	}
	if err := db.ReplaceInboxWrap(ctx, k.Email, []byte("wrap-1"), []byte("wrap-2")); err != nil {
		t.Fatal(err)
	}
	if err := db.ReplaceInboxWrap(ctx, k.Email, []byte("wrap-1"), []byte("wrap-3")); !errors.Is(err, ErrConflict) {
		t.Errorf("replace from a stale wrap: %v", err)
	}
	if err := db.ReplaceInboxWrap(ctx, "nobody@example.nl", []byte("wrap-2"), []byte("wrap-3")); !errors.Is(err, ErrConflict) {
		t.Errorf("replace without a key: %v", err)
	}
	got, err := db.InboxKey(ctx, k.Email)
	if err != nil || string(got.IdentitySealed) != "wrap-2" || got.Recipient != "age1anna" {
		t.Fatalf("after replace: %+v %v", got, err)
	}
}
