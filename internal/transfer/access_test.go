package transfer_test

import (
	"bytes"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kluis-nl/kluis"
	"github.com/kluis-nl/kluis/internal/secret"
	"github.com/kluis-nl/kluis/internal/transfer"
)

func wantAt(t *testing.T, err error, code kluis.Code, at time.Time) {
	t.Helper()
	ke := wantCode(t, err, code)
	if ke.At == nil || !ke.At.Equal(at) {
		t.Errorf("%s: At = %v, want %v", code, ke.At, at)
	}
}

// TestExpiryEnforcedAtRequest is security.md item 19: one second past the
// expiry every request is refused, with the date, before any purge ran.
func TestExpiryEnforcedAtRequest(t *testing.T) {
	t.Parallel()
	forEachDB(t, func(t *testing.T, newEnv envMaker) {
		e := newEnv(t)
		r := e.readyTransfer(createOpts{}, 1000)
		// A second transfer with the same expiry, still uploading.
		up := e.create(createOpts{expires: r.c.Transfer.ExpiresAt})
		f, err := e.svc.NewFile(e.ctx, owner(up), "half.bin", "", 10)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.svc.WriteFile(e.ctx, owner(up), f.ID, 0, strings.NewReader("12345")); err != nil {
			t.Fatal(err)
		}
		exp := r.c.Transfer.ExpiresAt

		// Half an hour before, a recipient unlocks: the session ends with the
		// transfer (not after SessionTTL). One millisecond before the expiry,
		// everything works.
		e.clock.Set(exp.Add(-30 * time.Minute))
		late := e.unlock(r.fin.Links[0].AccessID, r.c.Password)
		if !late.ExpiresAt.Equal(exp) {
			t.Errorf("session expires at %v, want the transfer's expiry %v", late.ExpiresAt, exp)
		}
		e.clock.Set(exp.Add(-time.Millisecond))
		if _, err := e.svc.Lookup(e.ctx, r.fin.Links[0].AccessID); err != nil {
			t.Fatalf("just before expiry: %v", err)
		}
		if _, err := e.svc.OpenSession(e.ctx, late.Token); err != nil {
			t.Fatalf("session just before expiry: %v", err)
		}

		e.clock.Set(exp.Add(time.Second))
		_, err = e.svc.Lookup(e.ctx, r.fin.Links[0].AccessID)
		wantAt(t, err, kluis.EEXPIRED, exp)
		_, err = e.svc.Unlock(e.ctx, r.fin.Links[0].AccessID, r.c.Password)
		wantAt(t, err, kluis.EEXPIRED, exp)
		_, err = e.svc.Unlock(e.ctx, r.fin.Links[0].AccessID, "wrong password")
		wantAt(t, err, kluis.EEXPIRED, exp) // refused before the password is checked
		if _, err := e.svc.OpenSession(e.ctx, late.Token); err == nil {
			t.Error("session opened after expiry")
		} else if c := kluis.ErrorCode(err); c != kluis.EEXPIRED && c != kluis.EUNAUTHORIZED {
			t.Errorf("session after expiry: code %s", c)
		}
		_, err = e.svc.WriteFile(e.ctx, owner(up), f.ID, 5, strings.NewReader("67890"))
		wantAt(t, err, kluis.EEXPIRED, exp)
		_, err = e.svc.NewFile(e.ctx, owner(up), "new.bin", "", 1)
		wantAt(t, err, kluis.EEXPIRED, exp)
		_, err = e.svc.CompleteFile(e.ctx, owner(up), f.ID)
		wantAt(t, err, kluis.EEXPIRED, exp)
		_, err = e.svc.Finish(e.ctx, owner(up), "")
		wantAt(t, err, kluis.EEXPIRED, exp)
		if err := e.svc.Extend(e.ctx, owner(r.c), exp.Add(24*time.Hour)); err == nil {
			t.Error("an expired transfer was extended")
		}
		// Nothing was purged yet: the refusal came from the clock.
		row, err := e.db.Transfer(e.ctx, r.c.Transfer.ID)
		if err != nil || row.PurgedAt != nil || row.IdentitySealed == nil {
			t.Fatalf("the transfer was purged already (%v); the test proves nothing", err)
		}
	})
}

func TestRevocation(t *testing.T) {
	t.Parallel()
	forEachDB(t, func(t *testing.T, newEnv envMaker) {
		e := newEnv(t)
		r := e.readyTransfer(createOpts{to: []string{"een@example.nl", "twee@example.nl", "drie@example.nl"}}, 1000)
		s2 := e.unlock(r.fin.Links[1].AccessID, r.c.Password)
		s3 := e.unlock(r.fin.Links[2].AccessID, r.c.Password)

		// One recipient: only that one is refused, with the date.
		e.clock.Advance(time.Minute)
		at := e.clock.Now()
		if err := e.svc.Revoke(e.ctx, owner(r.c), "TWEE@example.nl"); err != nil {
			t.Fatal(err)
		}
		_, err := e.svc.Lookup(e.ctx, r.fin.Links[1].AccessID)
		wantAt(t, err, kluis.EREVOKED, at)
		_, err = e.svc.Unlock(e.ctx, r.fin.Links[1].AccessID, r.c.Password)
		wantAt(t, err, kluis.EREVOKED, at)
		if _, err := e.svc.OpenSession(e.ctx, s2.Token); err == nil {
			t.Error("the revoked recipient's session still opens")
		}
		for _, i := range []int{0, 2} {
			if _, err := e.svc.Lookup(e.ctx, r.fin.Links[i].AccessID); err != nil {
				t.Errorf("recipient %d after another's revocation: %v", i, err)
			}
		}
		if _, err := e.svc.OpenSession(e.ctx, s3.Token); err != nil {
			t.Errorf("another recipient's session after a per-recipient revoke: %v", err)
		}
		if err := e.svc.Revoke(e.ctx, owner(r.c), "twee@example.nl"); kluis.ErrorCode(err) != kluis.ECONFLICT {
			t.Errorf("second revoke of one recipient: %v", err)
		}
		if err := e.svc.Revoke(e.ctx, owner(r.c), "niemand@example.nl"); kluis.ErrorCode(err) != kluis.ENOTFOUND {
			t.Errorf("revoke of a non-recipient: %v", err)
		}

		// The whole transfer.
		e.clock.Advance(time.Minute)
		at2 := e.clock.Now()
		if err := e.svc.Revoke(e.ctx, owner(r.c), ""); err != nil {
			t.Fatal(err)
		}
		_, err = e.svc.Lookup(e.ctx, r.fin.Links[0].AccessID)
		wantAt(t, err, kluis.EREVOKED, at2)
		_, err = e.svc.Unlock(e.ctx, r.fin.Links[2].AccessID, r.c.Password)
		wantAt(t, err, kluis.EREVOKED, at2)
		_, err = e.svc.OpenSession(e.ctx, s3.Token)
		wantAt(t, err, kluis.EREVOKED, at2)
		_, err = e.svc.OpenSession(e.ctx, r.sess.Token)
		wantAt(t, err, kluis.EREVOKED, at2)
		if err := e.svc.Revoke(e.ctx, owner(r.c), ""); kluis.ErrorCode(err) != kluis.ECONFLICT {
			t.Errorf("second revoke: %v", err)
		}
	})
}

func TestUnknownAccess(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.readyTransfer(createOpts{}, 10)
	for _, id := range []string{secret.NewAccessID(), "", "x", strings.Repeat("a", 26), strings.Repeat("a", 10000), "../../etc/passwd", "\x00"} {
		_, err := e.svc.Lookup(e.ctx, id)
		wantCode(t, err, kluis.ENOTFOUND)
		_, err = e.svc.Unlock(e.ctx, id, "whatever")
		wantCode(t, err, kluis.ENOTFOUND)
	}
	for _, tok := range []string{"", "x", secret.NewToken(), strings.Repeat("A", 64)} {
		_, err := e.svc.OpenSession(e.ctx, tok)
		wantCode(t, err, kluis.EUNAUTHORIZED)
	}
}

// TestAccessIDFormats: a person may type the access id in capitals or with
// the dashes of FormatAccessID.
func TestAccessIDFormats(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := e.readyTransfer(createOpts{}, 10)
	a := r.fin.Links[0].AccessID
	for _, v := range []string{a, strings.ToUpper(a), secret.FormatAccessID(a), " " + secret.FormatAccessID(strings.ToUpper(a)) + " "} {
		if _, err := e.svc.Lookup(e.ctx, v); err != nil {
			t.Errorf("Lookup(%q): %v", v, err)
		}
	}
}

// TestLockout: MaxFailures wrong passwords lock the recipient; then even the
// right password is refused until the lock (Lockouts) has passed. Other
// recipients are not affected.
func TestLockout(t *testing.T) {
	t.Parallel()
	forEachDB(t, func(t *testing.T, newEnv envMaker) {
		e := newEnv(t, func(c *transfer.Config) { c.MaxFailures = 5; c.Lockouts = []time.Duration{30 * time.Minute} })
		r := e.readyTransfer(createOpts{to: []string{"een@example.nl", "twee@example.nl"}}, 10)
		access := r.fin.Links[0].AccessID
		for i := 1; i < 5; i++ {
			_, err := e.svc.Unlock(e.ctx, access, "fout wachtwoord")
			wantCode(t, err, kluis.EWRONGSECRET)
		}
		lockedAt := e.clock.Now()
		_, err := e.svc.Unlock(e.ctx, access, "fout wachtwoord")
		wantAt(t, err, kluis.ELOCKED, lockedAt.Add(30*time.Minute))
		_, err = e.svc.Unlock(e.ctx, access, r.c.Password)
		wantCode(t, err, kluis.ELOCKED)
		_, err = e.svc.Lookup(e.ctx, access)
		wantCode(t, err, kluis.ELOCKED)
		// The other recipient is not locked.
		e.unlock(r.fin.Links[1].AccessID, r.c.Password)

		e.clock.Advance(30*time.Minute - time.Millisecond)
		_, err = e.svc.Unlock(e.ctx, access, r.c.Password)
		wantCode(t, err, kluis.ELOCKED)
		e.clock.Advance(time.Millisecond)
		e.unlock(access, r.c.Password)
		// A success resets the count: MaxFailures-1 more wrong ones do not lock.
		for i := 1; i < 5; i++ {
			_, err := e.svc.Unlock(e.ctx, access, "fout")
			wantCode(t, err, kluis.EWRONGSECRET)
		}
		e.unlock(access, r.c.Password)
	})
}

// TestConcurrentWrongUnlocks is security.md items 2 and 30: 50 wrong
// passwords at once are counted exactly, the lock happens once, and no more
// than MaxFailures passwords are ever checked before the lock.
func TestConcurrentWrongUnlocks(t *testing.T) {
	t.Parallel()
	forEachDB(t, func(t *testing.T, newEnv envMaker) {
		const attempts = 50
		e := newEnv(t, func(c *transfer.Config) { c.MaxFailures = 10 })
		r := e.readyTransfer(createOpts{}, 10)
		access := r.fin.Links[0].AccessID
		var mu sync.Mutex
		codes := map[kluis.Code]int{}
		var wg sync.WaitGroup
		start := make(chan struct{})
		for range attempts {
			wg.Go(func() {
				<-start
				_, err := e.svc.Unlock(e.ctx, access, "fout wachtwoord")
				mu.Lock()
				codes[kluis.ErrorCode(err)]++
				mu.Unlock()
			})
		}
		close(start)
		wg.Wait()
		logs := e.logs.Bytes()
		checked := countLines(logs, `"wrong transfer password"`)
		locks := countLines(logs, `"recipient locked out"`)
		t.Logf("results %v; passwords checked %d; lock events %d", codes, checked, locks)
		if codes[kluis.EWRONGSECRET]+codes[kluis.ELOCKED] != attempts {
			t.Errorf("results %v: every attempt must be wrong_password or locked", codes)
		}
		if codes[kluis.EWRONGSECRET] != e.cfg.MaxFailures-1 || codes[kluis.ELOCKED] != attempts-(e.cfg.MaxFailures-1) {
			t.Errorf("got %d wrong_password and %d locked; want exactly %d wrong_password (MaxFailures-1) and the rest locked",
				codes[kluis.EWRONGSECRET], codes[kluis.ELOCKED], e.cfg.MaxFailures-1)
		}
		if checked > e.cfg.MaxFailures {
			t.Errorf("%d passwords were checked (and counted) for one recipient; the limit is %d: the lock check and the failure count are not one atomic step", checked, e.cfg.MaxFailures)
		}
		if locks != 1 {
			t.Errorf("the recipient was locked %d times, want once", locks)
		}
		// And it is locked now, for the right password too.
		_, err := e.svc.Unlock(e.ctx, access, r.c.Password)
		wantCode(t, err, kluis.ELOCKED)
		if !bytes.Contains(logs, []byte(r.c.Transfer.ID)) {
			t.Error("log lines do not name the transfer")
		}
	})
}
