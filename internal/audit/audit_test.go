package audit_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kluis-nl/kluis/internal/audit"
	"github.com/kluis-nl/kluis/internal/clientip"
	"github.com/kluis-nl/kluis/internal/store"
)

func openDB(t *testing.T) *store.DB {
	t.Helper()
	db, err := store.OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "kluis.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func export(t *testing.T, r *audit.Recorder, since time.Time, format string) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := r.Export(context.Background(), since, format, &b); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func jsonLines(t *testing.T, b []byte) []audit.Entry {
	t.Helper()
	var out []audit.Entry
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		var e audit.Entry
		dec := json.NewDecoder(strings.NewReader(sc.Text()))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&e); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		out = append(out, e)
	}
	return out
}

func TestRecordDefaultsAndTransactions(t *testing.T) {
	db := openDB(t)
	now := time.Date(2025, 3, 1, 12, 0, 0, 123_000_000, time.UTC)
	r := audit.New(db, 0, func() time.Time { return now }, nil)
	if r.Retention() != audit.DefaultRetention {
		t.Errorf("retention %v", r.Retention())
	}
	ctx := audit.WithActor(clientip.NewContext(context.Background(), netip.MustParseAddr("192.0.2.7")), audit.Sender("a@example.nl"))
	if audit.Actor(ctx) != "sender:a@example.nl" {
		t.Fatal("context values lost")
	}

	// In a transaction that rolls back, the entry goes too.
	tx, err := db.BeginTx(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Record(ctx, tx.Q, audit.Event{Action: audit.TransferCreate, Object: "t1"}); err != nil {
		t.Fatal(err)
	}
	tx.Rollback()
	if got := jsonLines(t, export(t, r, time.Time{}, audit.JSON)); len(got) != 0 {
		t.Fatalf("rolled-back entry exported: %v", got)
	}

	tx, _ = db.BeginTx(ctx)
	if err := r.Record(ctx, tx.Q, audit.Event{Action: audit.TransferCreate, Object: "t1"}); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	// Outside a request: actor system, no IP.
	r.Log(context.Background(), audit.Event{Action: audit.TransferPurge, Object: "t1"})
	// Explicit values win over the context.
	r.Log(ctx, audit.Event{Actor: audit.Recipient(42), Action: audit.RecipientUnlockFail, Object: "t1", Result: audit.WrongPassword, IP: "2001:db8::1"})

	got := jsonLines(t, export(t, r, time.Time{}, audit.JSON))
	want := []audit.Entry{
		{Actor: "sender:a@example.nl", Action: "transfer.create", Object: "t1", Result: "ok", IP: "192.0.2.7"},
		{Actor: "system", Action: "transfer.purge", Object: "t1", Result: "ok", IP: ""},
		{Actor: "recipient:42", Action: "recipient.unlock_failed", Object: "t1", Result: "wrong_password", IP: "2001:db8::1"},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d entries, want %d: %+v", len(got), len(want), got)
	}
	for i := range want {
		g := got[i]
		if !g.At.Equal(now.Truncate(time.Millisecond)) || g.At.Location() != time.UTC {
			t.Errorf("entry %d at %v, want %v UTC", i, g.At, now)
		}
		if len(g.Hash) != 64 || i > 0 && g.PrevHash != got[i-1].Hash {
			t.Errorf("entry %d not chained: %+v", i, g)
		}
		g.ID, g.At, g.PrevHash, g.Hash = 0, time.Time{}, "", ""
		if g != want[i] {
			t.Errorf("entry %d = %+v, want %+v", i, g, want[i])
		}
	}
	// A nil recorder records nothing and does not fail.
	var nilRec *audit.Recorder
	if err := nilRec.Record(ctx, db.Q, audit.Event{Action: "x"}); err != nil {
		t.Error(err)
	}
	nilRec.Log(ctx, audit.Event{Action: "x"})
	if n, err := nilRec.Prune(ctx, now); n != 0 || err != nil {
		t.Error(n, err)
	}
	if err := r.Record(ctx, db.Q, audit.Event{}); err == nil {
		t.Error("an event without action was recorded")
	}
}

// TestNoForgedLines is security.md item 17: CR/LF in a value cannot start
// a new entry or line, in the table or in either export format.
func TestNoForgedLines(t *testing.T) {
	db := openDB(t)
	r := audit.New(db, 0, nil, nil)
	forged := "x@example.nl\r\n{\"level\":\"ERROR\",\"actor\":\"admin\"}\n2,2025-01-01T00:00:00Z,admin,apikey.create"
	r.Log(context.Background(), audit.Event{Actor: audit.Sender(forged), Action: audit.VerifyFailed, IP: "198.51.100.1\r\nforged", Detail: "d\u2028e\x00f\x1b[31m", Object: string([]byte{0xff, 'o'})})

	js := export(t, r, time.Time{}, audit.JSON)
	if n := bytes.Count(js, []byte("\n")); n != 1 {
		t.Fatalf("JSON export has %d lines for 1 entry:\n%s", n, js)
	}
	e := jsonLines(t, js)[0]
	for _, v := range []string{e.Actor, e.IP, e.Detail, e.Object} {
		if strings.ContainsAny(v, "\r\n\x00\x1b\u2028") {
			t.Errorf("control character kept in %q", v)
		}
	}
	if !strings.HasPrefix(e.Actor, "sender:x@example.nl\uFFFD\uFFFD{") {
		t.Errorf("actor %q", e.Actor)
	}
	cs := export(t, r, time.Time{}, audit.CSV)
	if n := bytes.Count(cs, []byte("\n")); n != 2 {
		t.Fatalf("CSV export has %d lines for header + 1 entry:\n%s", n, cs)
	}
}

// TestCSVInjection: a value a spreadsheet would run as a formula starts
// with ' in the CSV export; the export parses back with its header.
func TestCSVInjection(t *testing.T) {
	db := openDB(t)
	r := audit.New(db, 0, nil, nil)
	vals := []string{"=HYPERLINK(\"http://x\")", "+1", "-2", "@SUM(A1)", "\tx", "plain, with \"quotes\""}
	for _, v := range vals {
		r.Log(context.Background(), audit.Event{Actor: v, Action: audit.TransferFinish, Object: v, Detail: v})
	}
	recs, err := csv.NewReader(bytes.NewReader(export(t, r, time.Time{}, audit.CSV))).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(recs[0], ",") != "id,at,actor,action,object,result,ip,detail,role,reason,prev_hash,hash" {
		t.Errorf("header %v", recs[0])
	}
	if len(recs) != len(vals)+1 {
		t.Fatalf("%d records", len(recs))
	}
	for i, v := range vals {
		rec := recs[i+1]
		want := v
		if strings.ContainsAny(v[:1], "=+-@\t") {
			want = "'" + v
		}
		if v == "\tx" {
			want = "'\uFFFDx" // the tab is a control character: cleaned at record time
		}
		if rec[2] != want && !(v == "\tx" && rec[2] == "\uFFFDx") {
			t.Errorf("actor %q exported as %q, want %q", v, rec[2], want)
		}
		if _, err := time.Parse(time.RFC3339, rec[1]); err != nil {
			t.Errorf("at %q: %v", rec[1], err)
		}
	}
	if err := r.Export(context.Background(), time.Time{}, "xml", &bytes.Buffer{}); err == nil {
		t.Error("unknown format accepted")
	}
	for _, c := range []struct{ in, out string }{{"=1", "'=1"}, {"a=1", "a=1"}, {"", ""}, {"-", "'-"}, {"\r", "'\r"}} {
		if got := audit.CSVSafe(c.in); got != c.out {
			t.Errorf("CSVSafe(%q) = %q, want %q", c.in, got, c.out)
		}
	}
}

func TestSinceAndPrune(t *testing.T) {
	db := openDB(t)
	base := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	r := audit.New(db, 30*24*time.Hour, nil, nil)
	for i := range 5 {
		r.Log(context.Background(), audit.Event{Action: audit.TransferPurge, Object: "t", At: base.Add(time.Duration(i) * 24 * time.Hour)})
	}
	if got := jsonLines(t, export(t, r, base.Add(3*24*time.Hour), audit.JSON)); len(got) != 2 || !got[0].At.Equal(base.Add(3*24*time.Hour)) {
		t.Errorf("since: %+v", got)
	}
	n, err := r.Prune(context.Background(), base.Add(32*24*time.Hour))
	if err != nil || n != 2 {
		t.Fatalf("pruned %d, %v; want 2", n, err)
	}
	if got := jsonLines(t, export(t, r, time.Time{}, audit.JSON)); len(got) != 3 {
		t.Errorf("%d left, want 3", len(got))
	}
}

func TestLongValuesBounded(t *testing.T) {
	db := openDB(t)
	r := audit.New(db, 0, nil, nil)
	long := strings.Repeat("é", 1000)
	r.Log(context.Background(), audit.Event{Actor: long, Action: long, Object: long, Result: long, IP: long, Detail: long})
	e := jsonLines(t, export(t, r, time.Time{}, audit.JSON))[0]
	for _, v := range []string{e.Actor, e.Action, e.Object, e.Result, e.IP, e.Detail} {
		if len(v) > 300 || !strings.HasPrefix(long, v) {
			t.Errorf("value of %d bytes kept, or cut inside a character", len(v))
		}
	}
}

// TestRoleReasonAndChainExported: the role and reason carried in the
// context are recorded, and the export holds them with each entry's hash,
// chained to the one before; Verify finds the chain whole.
func TestRoleReasonAndChainExported(t *testing.T) {
	db := openDB(t)
	r := audit.New(db, 0, nil, nil)
	ctx := audit.WithReason(audit.WithRole(audit.WithActor(context.Background(), audit.BreakGlass("root", "srv1")), audit.BreakGlassRole), "ticket 4711")
	r.Log(ctx, audit.Event{Action: audit.APIKeyRevoke, Object: "k1"})
	r.Log(context.Background(), audit.Event{Action: audit.TransferPurge, Object: "t1"})
	es := jsonLines(t, export(t, r, time.Time{}, audit.JSON))
	if len(es) != 2 {
		t.Fatalf("%d entries", len(es))
	}
	if e := es[0]; e.Actor != "break-glass:root@srv1" || e.Role != audit.BreakGlassRole || e.Reason != "ticket 4711" || len(e.Hash) != 64 {
		t.Errorf("break-glass entry %+v", e)
	}
	if e := es[1]; e.Actor != audit.System || e.Role != "" || e.Reason != "" || e.PrevHash != es[0].Hash {
		t.Errorf("second entry %+v does not follow the first", e)
	}
	v, err := r.Verify(context.Background())
	if err != nil || v.Break != nil || v.Entries != 2 {
		t.Fatalf("verify: %+v %v", v, err)
	}
}

// TestExportFiltered: the console's export holds exactly the entries its
// filter matches, newest first, across more than one batch, in both
// formats.
func TestExportFiltered(t *testing.T) {
	db := openDB(t)
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	now := start
	r := audit.New(db, 0, func() time.Time { return now }, nil)
	ctx := context.Background()
	const n = 1203 // more than two batches of 500
	for i := range n {
		now = start.Add(time.Duration(i) * time.Minute)
		action := audit.FileDownload
		if i%3 == 0 {
			action = audit.TransferRevoke
		}
		r.Log(audit.WithActor(ctx, audit.Sender("balie@example.nl")), audit.Event{Action: action, Object: "t1"})
	}
	r.Log(ctx, audit.Event{Action: audit.TransferRevoke, Object: "t2"})
	var b bytes.Buffer
	f := store.AuditFilter{Action: audit.TransferRevoke, Actor: "sender:"}
	if err := r.ExportFiltered(ctx, f, audit.CSV, &b); err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(&b).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1+(n+2)/3 {
		t.Fatalf("%d rows, want %d", len(recs), 1+(n+2)/3)
	}
	prev := int64(1 << 62)
	for _, rec := range recs[1:] {
		id, _ := strconv.ParseInt(rec[0], 10, 64)
		if rec[3] != audit.TransferRevoke || rec[2] != "sender:balie@example.nl" || id >= prev {
			t.Fatalf("row %v (after id %d)", rec, prev)
		}
		prev = id
	}
	b.Reset()
	f.From, f.To = start.Add(10*time.Minute), start.Add(20*time.Minute)
	if err := r.ExportFiltered(ctx, f, audit.JSON, &b); err != nil {
		t.Fatal(err)
	}
	es := jsonLines(t, b.Bytes())
	if len(es) != 3 || !es[0].At.Equal(start.Add(18*time.Minute)) || !es[2].At.Equal(start.Add(12*time.Minute)) {
		t.Errorf("time-filtered export: %+v", es)
	}
	if err := r.ExportFiltered(ctx, f, "xml", &b); err == nil {
		t.Error("xml accepted")
	}
}
