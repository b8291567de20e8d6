package outbox

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kluis-nl/kluis/internal/kluistest"
	"github.com/kluis-nl/kluis/internal/mail"
	"github.com/kluis-nl/kluis/internal/secret"
	"github.com/kluis-nl/kluis/internal/sms"
	"github.com/kluis-nl/kluis/internal/store"
)

func newClock() *kluistest.Clock {
	c := kluistest.NewClock()
	c.Set(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	return c
}

type call struct {
	MessageID string
	Msg       mail.Message
}

// fakeSender records calls; fail decides the outcome of call number n
// (from 1).
type fakeSender struct {
	mu        sync.Mutex
	calls     []call
	delivered map[string]int // Message-ID → successful deliveries
	fail      func(n int) error
	delay     time.Duration
}

func (s *fakeSender) Send(ctx context.Context, m *mail.Message, messageID string) error {
	if s.delay > 0 {
		time.Sleep(s.delay)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, call{messageID, *m})
	if s.fail != nil {
		if err := s.fail(len(s.calls)); err != nil {
			return err
		}
	}
	if s.delivered == nil {
		s.delivered = map[string]int{}
	}
	s.delivered[messageID]++
	return nil
}

func (s *fakeSender) Calls() []call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]call(nil), s.calls...)
}

func (s *fakeSender) Delivered() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]int{}
	for k, v := range s.delivered {
		out[k] = v
	}
	return out
}

type permErr struct{}

func (permErr) Error() string   { return "550 5.1.1 no such user" }
func (permErr) Permanent() bool { return true }

var testKey = secret.GenerateMasterKey()

type env struct {
	dir    string
	db     *store.DB
	keys   *secret.Keyring
	clock  *kluistest.Clock
	sender *fakeSender
	logs   *kluistest.Logs
	o      *Outbox
}

func openDB(t *testing.T, dir string) *store.DB {
	t.Helper()
	db, err := store.OpenSQLite(context.Background(), filepath.Join(dir, "kluis.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{dir: t.TempDir(), clock: newClock(), sender: &fakeSender{}, logs: kluistest.NewLogs()}
	e.db = openDB(t, e.dir)
	keys, err := secret.NewKeyring(testKey)
	if err != nil {
		t.Fatal(err)
	}
	e.keys = keys
	e.o = e.newOutbox(e.db)
	return e
}

func (e *env) newOutbox(db *store.DB) *Outbox {
	return New(Deps{DB: db, Keys: e.keys, Sender: e.sender, Domain: "example.org", Now: e.clock.Now, Log: e.logs.Logger()})
}

func testMsg(i int) *mail.Message {
	return &mail.Message{
		Kind:    mail.KindNotify,
		Lang:    "nl",
		To:      fmt.Sprintf("ontvanger%d@example.nl", i),
		Subject: fmt.Sprintf("CANARY-SUBJECT-%d", i),
		Text:    fmt.Sprintf("CANARY-TEXT-%d https://kluis.example/r/secretlink", i),
		HTML:    fmt.Sprintf("<p>CANARY-HTML-%d</p>", i),
	}
}

// enqueue queues m in a committed transaction.
func (e *env) enqueue(t *testing.T, o *Outbox, m *mail.Message) string {
	t.Helper()
	ctx := context.Background()
	tx, err := e.db.BeginTx(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	id, err := o.Enqueue(ctx, tx, m)
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	return id
}

func (e *env) row(t *testing.T, id string) *store.OutboxRow {
	t.Helper()
	r, err := e.db.Outbox(context.Background(), id)
	if err != nil {
		t.Fatalf("outbox row %s: %v", id, err)
	}
	return r
}

func (e *env) drain(t *testing.T) {
	t.Helper()
	if err := e.o.drain(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestRollbackSendsNothing(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	tx, err := e.db.BeginTx(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.o.Enqueue(ctx, tx, testMsg(1)); err != nil {
		t.Fatal(err)
	}
	tx.Rollback()
	e.o.Wake()
	e.drain(t)
	if n := len(e.sender.Calls()); n != 0 {
		t.Fatalf("%d sends after a rollback", n)
	}
	if p, f, err := e.db.OutboxDepth(ctx); err != nil || p != 0 || f != 0 {
		t.Fatalf("depth %d/%d %v", p, f, err)
	}
}

func TestWakeSendsOnce(t *testing.T) {
	e := newEnv(t)
	e.o.pollEvery = time.Hour // only Wake can start a round
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { e.o.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	time.Sleep(50 * time.Millisecond) // let the first round pass

	m := testMsg(1)
	id := e.enqueue(t, e.o, m)
	start := time.Now()
	e.o.Wake()
	waitFor(t, time.Second, "delivery after Wake", func() bool { return len(e.sender.Calls()) == 1 })
	t.Logf("delivered %v after Wake", time.Since(start))
	c := e.sender.Calls()[0]
	if c.MessageID != "<"+id+"@example.org>" {
		t.Errorf("Message-ID %q", c.MessageID)
	}
	if c.Msg != *m {
		t.Errorf("sent %+v, want %+v", c.Msg, *m)
	}
	waitFor(t, time.Second, "row deleted", func() bool {
		_, err := e.db.Outbox(context.Background(), id)
		return errors.Is(err, store.ErrNotFound)
	})
	e.o.Wake()
	time.Sleep(100 * time.Millisecond)
	if n := len(e.sender.Calls()); n != 1 {
		t.Fatalf("%d sends, want 1", n)
	}
	if log := e.logs.String(); strings.Contains(log, "CANARY") || strings.Contains(log, "ontvanger1") {
		t.Errorf("log holds mail content:\n%s", log)
	}
}

func TestTemporaryFailuresBackOff(t *testing.T) {
	e := newEnv(t)
	e.sender.fail = func(n int) error {
		if n <= 3 {
			return errors.New("421 4.3.2 try again later")
		}
		return nil
	}
	id := e.enqueue(t, e.o, testMsg(1))
	wantDelays := []time.Duration{10 * time.Second, 20 * time.Second, 40 * time.Second}
	for i, want := range wantDelays {
		e.drain(t)
		if n := len(e.sender.Calls()); n != i+1 {
			t.Fatalf("after round %d: %d sends", i+1, n)
		}
		r := e.row(t, id)
		if got := r.NotBefore.Sub(e.clock.Now()); got != want {
			t.Errorf("attempt %d: retry in %v, want %v", i+1, got, want)
		}
		if r.Attempts != i+1 || !strings.Contains(r.LastError, "try again") || r.FailedAt != nil || r.ClaimedUntil != nil {
			t.Errorf("row after attempt %d: %+v", i+1, r)
		}
		// Not yet due: nothing happens.
		e.clock.Advance(want - time.Millisecond)
		e.drain(t)
		if n := len(e.sender.Calls()); n != i+1 {
			t.Fatalf("retried before its time")
		}
		e.clock.Advance(time.Millisecond)
	}
	e.drain(t)
	calls := e.sender.Calls()
	if len(calls) != 4 {
		t.Fatalf("%d sends, want 4", len(calls))
	}
	for _, c := range calls {
		if c.MessageID != "<"+id+"@example.org>" {
			t.Errorf("Message-ID changed across retries: %q", c.MessageID)
		}
	}
	if d := e.sender.Delivered(); len(d) != 1 || d["<"+id+"@example.org>"] != 1 {
		t.Errorf("delivered %v", d)
	}
	if _, err := e.db.Outbox(context.Background(), id); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("row still there: %v", err)
	}
	e.clock.Advance(time.Hour)
	e.drain(t)
	if n := len(e.sender.Calls()); n != 4 {
		t.Errorf("sent again after delivery")
	}
}

func TestGiveUpAfterADay(t *testing.T) {
	e := newEnv(t)
	e.sender.fail = func(int) error { return errors.New("dial tcp 127.0.0.1:25: connection refused") }
	id := e.enqueue(t, e.o, testMsg(7))
	start := e.clock.Now()
	for i := 0; i < 100; i++ {
		e.drain(t)
		r := e.row(t, id)
		if r.FailedAt != nil {
			break
		}
		e.clock.Set(r.NotBefore)
	}
	r := e.row(t, id)
	if r.FailedAt == nil {
		t.Fatal("never gave up")
	}
	n := len(e.sender.Calls())
	age := r.FailedAt.Sub(start)
	t.Logf("gave up after %d attempts, %v", n, age)
	if age < 20*time.Hour || age > GiveUpAfter {
		t.Errorf("gave up after %v", age)
	}
	if n < 15 || n > 40 {
		t.Errorf("%d attempts", n)
	}
	if r.Sealed != nil || r.LastError == "" {
		t.Errorf("failed row: sealed %d bytes, last_error %q", len(r.Sealed), r.LastError)
	}
	if p, f, _ := e.db.OutboxDepth(context.Background()); p != 0 || f != 1 {
		t.Errorf("depth %d/%d", p, f)
	}
	log := e.logs.String()
	var errLine string
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, `"level":"ERROR"`) {
			errLine = l
		}
	}
	if !strings.Contains(errLine, id) || !strings.Contains(errLine, `"kind":"notify"`) {
		t.Errorf("error log lacks id or kind: %q", errLine)
	}
	if strings.Contains(log, "CANARY") || strings.Contains(log, "ontvanger7") {
		t.Errorf("log holds mail content:\n%s", log)
	}
	e.clock.Advance(48 * time.Hour)
	e.drain(t)
	if len(e.sender.Calls()) != n {
		t.Error("failed mail sent again")
	}
}

func TestPermanentFailure(t *testing.T) {
	e := newEnv(t)
	e.sender.fail = func(int) error { return fmt.Errorf("smtp: %w", permErr{}) }
	id := e.enqueue(t, e.o, testMsg(1))
	e.drain(t)
	r := e.row(t, id)
	if r.FailedAt == nil || r.Sealed != nil || !strings.Contains(r.LastError, "550") {
		t.Fatalf("row %+v", r)
	}
	e.clock.Advance(time.Hour)
	e.drain(t)
	if n := len(e.sender.Calls()); n != 1 {
		t.Fatalf("%d sends, want 1", n)
	}
	if !strings.Contains(e.logs.String(), `"level":"ERROR"`) {
		t.Error("no error logged")
	}
}

func TestCorruptRowFails(t *testing.T) {
	e := newEnv(t)
	other, _ := secret.NewKeyring(secret.GenerateMasterKey())
	o2 := New(Deps{DB: e.db, Keys: other, Sender: e.sender, Domain: "example.org", Now: e.clock.Now})
	id := e.enqueue(t, o2, testMsg(1)) // sealed under another key
	e.drain(t)
	if r := e.row(t, id); r.FailedAt == nil {
		t.Fatalf("row %+v", r)
	}
	if n := len(e.sender.Calls()); n != 0 {
		t.Fatalf("%d sends", n)
	}
}

func TestLeaseProtectsClaim(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	id := e.enqueue(t, e.o, testMsg(1))
	now := e.clock.Now()
	rows, err := e.db.ClaimOutbox(ctx, now, Lease, 10)
	if err != nil || len(rows) != 1 || rows[0].ID != id {
		t.Fatalf("claim: %v %v", rows, err)
	}
	if rows, _ := e.db.ClaimOutbox(ctx, now.Add(Lease-time.Second), Lease, 10); len(rows) != 0 {
		t.Fatal("claimed twice within the lease")
	}
	// A crashed claimer: after the lease another takes it, same id.
	rows, err = e.db.ClaimOutbox(ctx, now.Add(Lease+time.Second), Lease, 10)
	if err != nil || len(rows) != 1 || rows[0].ID != id {
		t.Fatalf("reclaim after lease: %v %v", rows, err)
	}
}

func TestTwoInstancesExactlyOnce(t *testing.T) {
	e := newEnv(t)
	e.sender.delay = time.Millisecond
	db2 := openDB(t, e.dir) // a second process on the same database
	a, b := e.o, e.newOutbox(db2)
	for _, o := range []*Outbox{a, b} {
		o.pollEvery = 10 * time.Millisecond
		o.checkpointEvery = 50 * time.Millisecond
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, o := range []*Outbox{a, b} {
		wg.Add(1)
		go func() { defer wg.Done(); o.Run(ctx) }()
	}
	defer func() { cancel(); wg.Wait() }()

	const n = 100
	ids := map[string]bool{}
	for i := 0; i < n; i++ {
		o := a
		if i%2 == 1 {
			o = b
		}
		ids[e.enqueue(t, o, testMsg(i))] = true
		o.Wake()
	}
	waitFor(t, 30*time.Second, "all mail delivered", func() bool {
		p, _, _ := e.db.OutboxDepth(context.Background())
		return p == 0
	})
	d := e.sender.Delivered()
	if len(d) != n {
		t.Errorf("%d distinct mails delivered, want %d", len(d), n)
	}
	for mid, c := range d {
		if c != 1 {
			t.Errorf("%s delivered %d times", mid, c)
		}
		id := strings.TrimSuffix(strings.TrimPrefix(mid, "<"), "@example.org>")
		if !ids[id] {
			t.Errorf("unknown Message-ID %s", mid)
		}
	}
	if c := len(e.sender.Calls()); c != n {
		t.Errorf("%d sends, want %d", c, n)
	}
}

func TestErasure(t *testing.T) {
	e := newEnv(t)
	e.o.pollEvery = time.Hour
	// Enough other rows that the page survives; the mail's own bytes must go.
	for i := 100; i < 105; i++ {
		e.enqueue(t, New(Deps{DB: e.db, Keys: e.keys, Sender: e.sender, Domain: "example.org", Now: func() time.Time { return e.clock.Now().Add(time.Hour) }}), testMsg(i))
	}
	id := e.enqueue(t, e.o, testMsg(1))
	r := e.row(t, id)
	window := append([]byte(nil), r.Sealed[40:72]...)

	files := func() []byte {
		var all []byte
		for _, name := range []string{"kluis.db", "kluis.db-wal"} {
			b, err := os.ReadFile(filepath.Join(e.dir, name))
			if err != nil && !os.IsNotExist(err) {
				t.Fatal(err)
			}
			all = append(all, b...)
		}
		return all
	}
	before := files()
	if !bytes.Contains(before, window) {
		t.Fatal("test is broken: the sealed bytes are not in the files before delivery")
	}
	if bytes.Contains(before, []byte("CANARY")) || bytes.Contains(before, []byte("secretlink")) {
		t.Fatal("mail content stored in plain text")
	}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { e.o.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	e.o.Wake()
	waitFor(t, 2*time.Second, "delivery", func() bool { return len(e.sender.Calls()) == 1 })
	waitFor(t, 3*CheckpointEvery, "sealed bytes gone from kluis.db and kluis.db-wal", func() bool {
		return !bytes.Contains(files(), window)
	})
	// The other rows are still there and intact.
	if p, _, _ := e.db.OutboxDepth(context.Background()); p != 5 {
		t.Errorf("pending %d, want 5", p)
	}
}

// TestClearStaleClaims: on SQLite, a mail that a crashed run had claimed
// is due again at once after ClearStaleClaims, not after the lease.
func TestClearStaleClaims(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	id := e.enqueue(t, e.o, testMsg(1))
	if rows, err := e.db.ClaimOutbox(ctx, e.clock.Now(), Lease, 10); err != nil || len(rows) != 1 {
		t.Fatalf("claim: %v %v", rows, err)
	}
	// The next run, on the same database.
	o := e.newOutbox(e.db)
	if err := o.ClearStaleClaims(ctx); err != nil {
		t.Fatal(err)
	}
	if r := e.row(t, id); r.ClaimedUntil != nil {
		t.Fatalf("still claimed until %v", r.ClaimedUntil)
	}
	if err := o.drain(ctx); err != nil {
		t.Fatal(err)
	}
	if d := e.sender.Delivered(); d["<"+id+"@example.org>"] != 1 {
		t.Fatalf("delivered %v, want the claimed mail once", d)
	}
}

// TestSMS: an SMS goes to the SMS gateway (a real sms.HTTP against a test
// server), not to the mail relay; OnSMS is told the outcome in the
// transaction that deletes or fails the row: sent; refused with a 4xx
// (given up at once); a 503 is tried again and tells nothing yet; and
// without a gateway it is given up. The admin console sees the number
// masked.
func TestSMS(t *testing.T) {
	var mu sync.Mutex
	var got []string
	status := http.StatusCreated
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m struct{ To, Text string }
		_ = json.NewDecoder(r.Body).Decode(&m)
		mu.Lock()
		defer mu.Unlock()
		got = append(got, m.To+" "+m.Text)
		w.WriteHeader(status)
	}))
	t.Cleanup(srv.Close)
	gw, err := sms.NewHTTP(sms.Config{URL: srv.URL, Body: `{"to": {{.To}}, "text": {{.Text}}}`})
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t)
	o := New(Deps{DB: e.db, Keys: e.keys, Sender: e.sender, SMS: gw, Domain: "example.org", Now: e.clock.Now, Log: e.logs.Logger()})
	type outcome struct {
		ref  string
		sent bool
	}
	var told []outcome
	report := func(ctx context.Context, q store.Q, kind mail.Kind, ref string, sent bool, at time.Time) error {
		if kind != mail.KindSMSFileRequest || !at.Equal(e.clock.Now()) {
			t.Errorf("told kind %s at %v", kind, at)
		}
		told = append(told, outcome{ref, sent})
		return nil
	}
	o.OnSMS(report)
	msg := func(ref string) *mail.Message {
		return &mail.Message{Kind: mail.KindSMSFileRequest, Lang: "nl", To: "+31699887766", Ref: ref, Text: "Kluis: https://kluis.example/q/geheim"}
	}
	drain := func(o *Outbox) {
		t.Helper()
		if err := o.drain(context.Background()); err != nil {
			t.Fatal(err)
		}
	}

	id := e.enqueue(t, o, msg("q1"))
	if m, _, err := e.db.OutboxMail(context.Background(), id, e.clock.Now()); err != nil || m.RecipientMasked != "+31 6 •••• ••66" {
		t.Errorf("the queue's entry: %+v %v", m, err)
	}
	drain(o)
	if _, err := e.db.Outbox(context.Background(), id); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a sent SMS's row: %v", err)
	}
	if len(got) != 1 || got[0] != "+31699887766 Kluis: https://kluis.example/q/geheim" || len(e.sender.Calls()) != 0 {
		t.Fatalf("gateway got %q, relay %d calls", got, len(e.sender.Calls()))
	}
	if len(told) != 1 || told[0] != (outcome{"q1", true}) {
		t.Fatalf("told %+v", told)
	}

	status = http.StatusServiceUnavailable
	id = e.enqueue(t, o, msg("q2"))
	drain(o)
	if r := e.row(t, id); r.FailedAt != nil || r.Attempts != 1 || len(told) != 1 {
		t.Fatalf("after a 503: %+v, told %+v", r, told)
	}
	status = http.StatusBadRequest
	e.clock.Advance(time.Hour)
	drain(o)
	if r := e.row(t, id); r.FailedAt == nil || r.Sealed != nil || !strings.Contains(r.LastError, "400") {
		t.Fatalf("after a 400: %+v", r)
	}
	if len(told) != 2 || told[1] != (outcome{"q2", false}) {
		t.Fatalf("told %+v", told)
	}

	none := New(Deps{DB: e.db, Keys: e.keys, Sender: e.sender, Domain: "example.org", Now: e.clock.Now, Log: e.logs.Logger()})
	none.OnSMS(report)
	id = e.enqueue(t, none, msg("q3"))
	drain(none)
	if r := e.row(t, id); r.FailedAt == nil || !strings.Contains(r.LastError, "no SMS gateway") {
		t.Fatalf("without a gateway: %+v", r)
	}
	if len(told) != 3 || told[2] != (outcome{"q3", false}) || len(got) != 3 {
		t.Fatalf("told %+v, gateway got %d", told, len(got))
	}

	// Dropped from the console while it waits: the row goes, nothing is
	// sent, and OnSMS is told "not sent" in the dropping transaction.
	id = e.enqueue(t, o, msg("q4"))
	tx, err := e.db.BeginTx(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := o.Drop(context.Background(), tx, id, e.clock.Now()); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if _, err := e.db.Outbox(context.Background(), id); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a dropped SMS's row: %v", err)
	}
	if len(told) != 4 || told[3] != (outcome{"q4", false}) {
		t.Fatalf("after dropping: told %+v", told)
	}

	// No longer wanted when its turn comes (CheckSMS): given up unsent
	// with the reason; an error asking leaves it queued.
	status = http.StatusCreated
	var askErr error
	o.CheckSMS(func(_ context.Context, kind mail.Kind, ref string) (bool, string, error) {
		return ref != "q5", "the file request was withdrawn; the SMS was not sent", askErr
	})
	askErr = errors.New("database gone")
	id = e.enqueue(t, o, msg("q5"))
	drain(o)
	if r := e.row(t, id); r.FailedAt != nil || len(told) != 4 {
		t.Fatalf("when asking failed: %+v, told %+v", r, told)
	}
	askErr = nil
	e.clock.Advance(time.Hour)
	drain(o)
	if r := e.row(t, id); r.FailedAt == nil || r.Sealed != nil || !strings.Contains(r.LastError, "withdrawn") {
		t.Fatalf("not wanted: %+v", r)
	}
	if len(told) != 5 || told[4] != (outcome{"q5", false}) || len(got) != 3 {
		t.Fatalf("not wanted: told %+v, gateway got %d", told, len(got))
	}
	if strings.Contains(e.logs.String(), "9988") || strings.Contains(e.logs.String(), "geheim") {
		t.Error("the log holds the number or the link")
	}
}
