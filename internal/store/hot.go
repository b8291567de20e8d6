package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"time"
)

// The hot paths' query plans: every query a request or the background
// round runs, listed here by the store method that runs it, is explained
// (EXPLAIN on PostgreSQL, EXPLAIN QUERY PLAN on SQLite) and must find its
// rows through an index: no sequential scan, and no index read from end to
// end, of any table. The SQL comes from the methods themselves (they run
// once, recorded, in a transaction that is rolled back), so the list
// cannot drift from the code. A CI test runs it on a small database with
// PostgreSQL's enable_seqscan off (so the check is "an index can serve
// it"); bench/ runs it on a million transfers after ANALYZE, planner left
// alone (so the check is "the planner does use it").
//
// Left out on purpose, because they read whole tables by design and run
// rarely: the orphan collector's walk over all files (EachFile, hourly,
// in pages), the first statistics rollup's oldest entry, the cleanup of
// sender sessions (every minute, a small table), the admin's list of API
// keys, the master key rotation and the migrations.

// HotArgs are the values the hot-path queries are run with: rows that
// exist, so the plans are those of real requests.
type HotArgs struct {
	TransferID  string // a transfer with recipients and files
	OtherID     string // another transfer
	RecipientID int64  // a recipient of TransferID
	FileID      string // a file of TransferID
	Sender      string // TransferID's sender
	Now         time.Time
}

// PlanCheck is the plan of one hot-path query.
type PlanCheck struct {
	Name  string // the store method (and what it is for)
	SQL   string // as the method sent it (? placeholders)
	Plan  string
	Scans []string // tables read whole: the check fails if not empty
}

// hotCalls run the store methods of the hot paths.
var hotCalls = []struct {
	name string
	run  func(ctx context.Context, tx *Tx, a HotArgs) error
}{
	{"Transfer: every request on a transfer", func(ctx context.Context, tx *Tx, a HotArgs) error {
		_, err := tx.Transfer(ctx, a.TransferID)
		return err
	}},
	{"TransferForUpdate: add a file, finish, revoke", func(ctx context.Context, tx *Tx, a HotArgs) error {
		_, err := tx.TransferForUpdate(ctx, a.TransferID)
		return err
	}},
	{"TransferByUploadToken: upload requests", func(ctx context.Context, tx *Tx, a HotArgs) error {
		_, err := tx.TransferByUploadToken(ctx, []byte("no such token"))
		return ignoreNotFound(err)
	}},
	{"TransfersBySenderPage: My transfers, first page", func(ctx context.Context, tx *Tx, a HotArgs) error {
		_, err := tx.TransfersBySenderPage(ctx, a.Sender, time.Time{}, "", 51)
		return err
	}},
	{"TransfersBySenderPage: My transfers, a later page", func(ctx context.Context, tx *Tx, a HotArgs) error {
		_, err := tx.TransfersBySenderPage(ctx, a.Sender, a.Now.Add(-24*time.Hour), "m", 51)
		return err
	}},
	{"TransfersBySender: the API's list", func(ctx context.Context, tx *Tx, a HotArgs) error {
		_, err := tx.TransfersBySender(ctx, a.Sender)
		return err
	}},
	{"RecipientsOf, DownloadsOf, FilesOf: a page's rows", func(ctx context.Context, tx *Tx, a HotArgs) error {
		ids := []string{a.TransferID, a.OtherID}
		if _, err := tx.RecipientsOf(ctx, ids); err != nil {
			return err
		}
		if _, err := tx.DownloadsOf(ctx, ids); err != nil {
			return err
		}
		_, err := tx.FilesOf(ctx, ids)
		return err
	}},
	{"RepliesTo: a transfer's status page", func(ctx context.Context, tx *Tx, a HotArgs) error {
		_, err := tx.RepliesTo(ctx, a.TransferID)
		return err
	}},
	{"ReplyCounts: a page of My transfers", func(ctx context.Context, tx *Tx, a HotArgs) error {
		_, err := tx.ReplyCounts(ctx, []string{a.TransferID})
		return err
	}},
	{"Recipients, Downloads: a transfer's status", func(ctx context.Context, tx *Tx, a HotArgs) error {
		if _, err := tx.Recipients(ctx, a.TransferID); err != nil {
			return err
		}
		_, err := tx.Downloads(ctx, a.TransferID)
		return err
	}},
	{"RecipientByAccess: a link", func(ctx context.Context, tx *Tx, a HotArgs) error {
		_, err := tx.RecipientByAccess(ctx, []byte("no such access id"))
		return ignoreNotFound(err)
	}},
	{"Recipient, RecipientForUpdate: unlock, download accounting", func(ctx context.Context, tx *Tx, a HotArgs) error {
		if _, err := tx.Recipient(ctx, a.RecipientID); err != nil {
			return err
		}
		_, err := tx.RecipientForUpdate(ctx, a.RecipientID)
		return err
	}},
	{"ReserveAttempt: a password try", func(ctx context.Context, tx *Tx, a HotArgs) error {
		_, err := tx.ReserveAttempt(ctx, a.RecipientID, 10, 50, a.Now)
		return ignoreNotFound(err)
	}},
	{"LockedByLink: the lock-out mail's link", func(ctx context.Context, tx *Tx, a HotArgs) error {
		_, err := tx.LockedByLink(ctx, a.TransferID, []byte("no such link"))
		return ignoreNotFound(err)
	}},
	{"Session: a download session", func(ctx context.Context, tx *Tx, a HotArgs) error {
		_, err := tx.Session(ctx, []byte("no such session"))
		return ignoreNotFound(err)
	}},
	{"Files, File, Segments: contents and downloads", func(ctx context.Context, tx *Tx, a HotArgs) error {
		if _, err := tx.Files(ctx, a.TransferID); err != nil {
			return err
		}
		if _, err := tx.File(ctx, a.FileID); err != nil {
			return err
		}
		_, err := tx.Segments(ctx, a.FileID)
		return err
	}},
	{"ServedSpans, InsertDownload: download accounting", func(ctx context.Context, tx *Tx, a HotArgs) error {
		if _, err := tx.ServedSpans(ctx, a.RecipientID, 0); err != nil {
			return err
		}
		_, err := tx.InsertDownload(ctx, a.RecipientID, 0, a.Now)
		return err
	}},
	{"CountOpenDrafts, RecentFiles, CountReplies: quotas", func(ctx context.Context, tx *Tx, a HotArgs) error {
		if _, err := tx.CountOpenDrafts(ctx, a.Sender, a.Now); err != nil {
			return err
		}
		if _, err := tx.RecentFiles(ctx, a.Sender, a.Now.Add(-24*time.Hour)); err != nil {
			return err
		}
		_, err := tx.CountReplies(ctx, a.TransferID, a.Sender)
		return err
	}},
	{"InsertFile: the next file index", func(ctx context.Context, tx *Tx, a HotArgs) error {
		return tx.InsertFile(ctx, &FileRow{ID: "hot-path-check", TransferID: a.TransferID, UpdatedAt: a.Now})
	}},
	{"DueForPurge, ClaimForPurge, TransferOptions, PurgeTransfers: the purge", func(ctx context.Context, tx *Tx, a HotArgs) error {
		if _, err := tx.DueForPurge(ctx, a.Now, 500); err != nil {
			return err
		}
		ids, err := tx.ClaimForPurge(ctx, []string{a.TransferID, a.OtherID}, a.Now)
		if err != nil {
			return err
		}
		if _, err := tx.TransferOptions(ctx, append(ids, a.TransferID)); err != nil {
			return err
		}
		return tx.PurgeTransfers(ctx, append(ids, a.TransferID), a.Now)
	}},
	{"DeleteRetired, DeleteExpiredSessions, PruneAudit: retention", func(ctx context.Context, tx *Tx, a HotArgs) error {
		if _, err := tx.DeleteRetired(ctx, a.Now.Add(-30*24*time.Hour)); err != nil {
			return err
		}
		if _, err := tx.DeleteExpiredSessions(ctx, a.Now.Add(-time.Hour)); err != nil {
			return err
		}
		_, err := tx.pruneAudit(ctx, a.Now.Add(-365*24*time.Hour), auditPruneBatch)
		return err
	}},
	{"DueForReminder: expiry reminders", func(ctx context.Context, tx *Tx, a HotArgs) error {
		_, err := tx.DueForReminder(ctx, a.Now, a.Now.Add(24*time.Hour), 100)
		return err
	}},
	{"ClaimOutbox, OutboxDepth, DeleteFailedOutbox: the mail worker", func(ctx context.Context, tx *Tx, a HotArgs) error {
		if _, err := tx.claimOutbox(ctx, tx.pg, 0, a.Now, time.Minute, 3); err != nil {
			return err
		}
		if _, _, err := tx.OutboxDepth(ctx); err != nil {
			return err
		}
		_, err := tx.DeleteFailedOutbox(ctx, a.Now.Add(-30*24*time.Hour))
		return err
	}},
	{"OutboxHeld: the mail queue gauge", func(ctx context.Context, tx *Tx, a HotArgs) error {
		_, err := tx.OutboxHeld(ctx)
		return err
	}},
	{"ClaimScanWaits, ScanWaitOf, RetryScanWait, HeldOutbox: the malware scan retries", func(ctx context.Context, tx *Tx, a HotArgs) error {
		if _, err := tx.claimScanWaits(ctx, tx.pg, a.Now, time.Minute, 20); err != nil {
			return err
		}
		if _, err := tx.ScanWaitOf(ctx, a.TransferID); ignoreNotFound(err) != nil {
			return err
		}
		if err := tx.RetryScanWait(ctx, a.TransferID, a.Now); err != nil && err != ErrConflict {
			return err
		}
		_, err := tx.HeldOutbox(ctx, a.TransferID)
		return err
	}},
	{"InsertAudit: every audited request", func(ctx context.Context, tx *Tx, a HotArgs) error {
		// A counted action, so the statistics' counter is written too.
		return tx.InsertAudit(ctx, &AuditRow{At: a.Now, Actor: "system", Action: actionFile, Object: a.TransferID, Result: "ok", Detail: "file=hot size=1"})
	}},
	{"AuditSince: the audit export", func(ctx context.Context, tx *Tx, a HotArgs) error {
		return tx.AuditSince(ctx, a.Now.Add(-time.Hour), func(*AuditRow) error { return nil })
	}},
	{"StatsDays, StatsMonths: the admin statistics", func(ctx context.Context, tx *Tx, a HotArgs) error {
		if _, err := tx.StatsDays(ctx, a.Now.AddDate(0, 0, -30), a.Now.AddDate(0, 0, 1)); err != nil {
			return err
		}
		_, err := tx.StatsMonths(ctx, a.Now.AddDate(0, -12, 0), a.Now.AddDate(0, 1, 0))
		return err
	}},
	{"RollupStats, FailOutbox: the statistics' counters", func(ctx context.Context, tx *Tx, a HotArgs) error {
		if _, err := tx.rollupDue(ctx, a.Now); err != nil {
			return err
		}
		if err := tx.rollupDay(ctx, ms(day(a.Now.AddDate(0, 0, -1)))); err != nil {
			return err
		}
		return ignoreNotFound(tx.FailOutbox(ctx, "no such mail", a.Now, "hot path"))
	}},
	{"SearchAudit, SearchTransfers: the admin console's searches", func(ctx context.Context, tx *Tx, a HotArgs) error {
		for _, f := range []AuditFilter{{Actor: "sender:" + a.Sender}, {Actor: "recipient:"}, {Object: a.TransferID}, {},
			{Actor: "sender:" + a.Sender, Action: "transfer.revoke", From: a.Now.Add(-time.Hour)}, // the helpdesk's hourly limit
			{Action: "transfer.revoke"}, {Result: "refused", From: a.Now.AddDate(0, 0, -7), To: a.Now}, {BeforeID: 1000}} {
			if _, err := tx.SearchAudit(ctx, f, 50); err != nil {
				return err
			}
		}
		for _, f := range []TransferFilter{{}, {Sender: a.Sender}, {Recipient: "hot@example.nl"}, {ID: a.TransferID},
			{Sender: a.Sender, State: "ready"}, {State: "revoked", From: a.Now.AddDate(0, 0, -1), To: a.Now},
			{Before: a.Now, BeforeID: a.OtherID}} {
			if _, err := tx.SearchTransfers(ctx, f, 50); err != nil {
				return err
			}
		}
		return nil
	}},
	{"ListOutbox: the admin console's mail queue", func(ctx context.Context, tx *Tx, a HotArgs) error {
		for _, f := range []OutboxFilter{{}, {Failed: true}, {At: a.Now, ID: a.TransferID}, {Failed: true, At: a.Now, ID: a.TransferID}} {
			if _, err := tx.ListOutbox(ctx, f, a.Now, 50); err != nil {
				return err
			}
		}
		return nil
	}},
	{"SenderSession, APIKeyByHash, Verification: sender requests", func(ctx context.Context, tx *Tx, a HotArgs) error {
		if _, err := tx.SenderSession(ctx, []byte("none")); ignoreNotFound(err) != nil {
			return err
		}
		if _, err := tx.APIKeyByHash(ctx, []byte("none")); ignoreNotFound(err) != nil {
			return err
		}
		_, err := tx.Verification(ctx, []byte("none"))
		return ignoreNotFound(err)
	}},
}

// hotCascades are the lookups of the foreign keys that deleting a
// transfer (retention, erasure) or a file cascades through: each child
// table needs an index on its key, or every deleted parent row reads the
// child table whole.
var hotCascades = []struct {
	name, sql string
	arg       func(HotArgs) any
}{
	{"cascade: recipients of a transfer", `SELECT id FROM recipients WHERE transfer_id = ?`, func(a HotArgs) any { return a.TransferID }},
	{"cascade: files of a transfer", `SELECT id FROM files WHERE transfer_id = ?`, func(a HotArgs) any { return a.TransferID }},
	{"cascade: sessions of a recipient", `SELECT id_hash FROM sessions WHERE recipient_id = ?`, func(a HotArgs) any { return a.RecipientID }},
	{"cascade: downloads of a recipient", `SELECT id FROM downloads WHERE recipient_id = ?`, func(a HotArgs) any { return a.RecipientID }},
	{"cascade: served ranges of a recipient", `SELECT file_idx FROM served WHERE recipient_id = ?`, func(a HotArgs) any { return a.RecipientID }},
	{"cascade: SMS sends of a recipient", `SELECT id FROM sms_sends WHERE recipient_id = ?`, func(a HotArgs) any { return a.RecipientID }},
	{"cascade: segments of a file", `SELECT id FROM segments WHERE file_id = ?`, func(a HotArgs) any { return a.FileID }},
}

func ignoreNotFound(err error) error {
	if err == ErrNotFound {
		return nil
	}
	return err
}

// recorder is a querier that records each statement (the first time it
// is seen) and runs it.
type recorder struct {
	q     querier
	name  string
	seen  map[string]bool
	calls []recorded
}

type recorded struct {
	name, sql string
	args      []any
}

func (r *recorder) note(query string, args []any) {
	if !r.seen[query] {
		r.seen[query] = true
		r.calls = append(r.calls, recorded{r.name, query, args})
	}
}

func (r *recorder) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	r.note(query, args)
	return r.q.ExecContext(ctx, query, args...)
}

func (r *recorder) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	r.note(query, args)
	return r.q.QueryContext(ctx, query, args...)
}

func (r *recorder) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	r.note(query, args)
	return r.q.QueryRowContext(ctx, query, args...)
}

// HotPathPlans runs every hot-path query once with a's values inside a
// transaction that is rolled back (nothing changes), and returns the plan
// of each. With noSeqScan, PostgreSQL plans with enable_seqscan off, which
// on a small table tells whether an index can serve the query at all.
func (db *DB) HotPathPlans(ctx context.Context, a HotArgs, noSeqScan bool) ([]PlanCheck, error) {
	tx, err := db.BeginTx(ctx)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	rec := &recorder{q: tx.tx, seen: map[string]bool{}}
	var q Q
	if db.dialect == Postgres {
		q = Q{pgQuerier{rec}}
		if noSeqScan {
			if _, err := tx.tx.ExecContext(ctx, "SET LOCAL enable_seqscan = off"); err != nil {
				return nil, err
			}
		}
	} else {
		q = Q{rec}
	}
	rtx := &Tx{Q: q, tx: tx.tx, pg: tx.pg}
	for _, c := range hotCalls {
		rec.name = c.name
		if err := c.run(ctx, rtx, a); err != nil {
			return nil, fmt.Errorf("hot path %q: %w", c.name, err)
		}
	}
	for _, c := range hotCascades {
		rec.calls = append(rec.calls, recorded{c.name, c.sql, []any{c.arg(a)}})
	}
	var out []PlanCheck
	for _, c := range rec.calls {
		p := PlanCheck{Name: c.name, SQL: c.sql}
		if db.dialect == Postgres {
			p.Plan, p.Scans, err = explainPostgres(ctx, tx.tx, c.sql, c.args)
		} else {
			p.Plan, p.Scans, err = explainSQLite(ctx, tx.tx, c.sql, c.args)
		}
		if err != nil {
			return nil, fmt.Errorf("explain %q (%s): %w", c.name, c.sql, err)
		}
		out = append(out, p)
	}
	return out, nil
}

func explainPostgres(ctx context.Context, tx *sql.Tx, query string, args []any) (string, []string, error) {
	var js string
	if err := tx.QueryRowContext(ctx, "EXPLAIN (FORMAT JSON) "+rebind(query), args...).Scan(&js); err != nil {
		return "", nil, err
	}
	var plans []struct{ Plan pgPlan }
	if err := json.Unmarshal([]byte(js), &plans); err != nil {
		return "", nil, err
	}
	var b strings.Builder
	var scans []string
	for _, p := range plans {
		p.Plan.walk(0, &b, &scans)
	}
	// An index read whole is fine when it is a partial index: it holds
	// only the rows its predicate selects.
	kept := scans[:0]
	for _, sc := range scans {
		if _, idx, ok := strings.Cut(sc, " (whole index "); ok {
			var partial bool
			if err := tx.QueryRowContext(ctx, `SELECT indpred IS NOT NULL FROM pg_index WHERE indexrelid = $1::regclass`,
				strings.TrimSuffix(idx, ")")).Scan(&partial); err != nil {
				return "", nil, err
			}
			if partial {
				continue
			}
		}
		kept = append(kept, sc)
	}
	return b.String(), kept, nil
}

type pgPlan struct {
	NodeType  string   `json:"Node Type"`
	Relation  string   `json:"Relation Name"`
	IndexName string   `json:"Index Name"`
	IndexCond string   `json:"Index Cond"`
	Filter    string   `json:"Filter"`
	Plans     []pgPlan `json:"Plans"`
}

// walk prints the plan tree and notes every table read whole: a sequential
// scan, or an index scan without a condition (an index read from end to
// end, which enable_seqscan off may choose instead of a sequential scan).
func (p pgPlan) walk(depth int, b *strings.Builder, scans *[]string) {
	fmt.Fprintf(b, "%s%s", strings.Repeat("  ", depth), p.NodeType)
	if p.Relation != "" {
		fmt.Fprintf(b, " on %s", p.Relation)
	}
	if p.IndexName != "" {
		fmt.Fprintf(b, " using %s", p.IndexName)
	}
	if p.IndexCond != "" {
		fmt.Fprintf(b, " (%s)", p.IndexCond)
	}
	if p.Filter != "" {
		fmt.Fprintf(b, " filter %s", p.Filter)
	}
	b.WriteByte('\n')
	switch p.NodeType {
	case "Seq Scan":
		*scans = append(*scans, p.Relation)
	case "Index Scan", "Index Only Scan":
		if p.IndexCond == "" {
			*scans = append(*scans, p.Relation+" (whole index "+p.IndexName+")")
		}
	}
	for _, c := range p.Plans {
		c.walk(depth+1, b, scans)
	}
}

// sqliteScan matches a step of SQLite's plan that reads a table whole
// ("SCAN transfers", also "SCAN transfers USING INDEX ..."); "SEARCH ..."
// steps use an index to find rows, and "SCAN CONSTANT ROW" and "SCAN 2-ROW
// VALUES CLAUSE" (a multi-row INSERT) read no table.
var sqliteScan = regexp.MustCompile(`^SCAN (\w+)`)

var sqliteValues = regexp.MustCompile(`^SCAN \d+-ROW VALUES CLAUSE$`)

func explainSQLite(ctx context.Context, tx *sql.Tx, query string, args []any) (string, []string, error) {
	rows, err := tx.QueryContext(ctx, "EXPLAIN QUERY PLAN "+query, args...)
	if err != nil {
		return "", nil, err
	}
	defer rows.Close()
	var b strings.Builder
	var scans []string
	for rows.Next() {
		var id, parent, unused int
		var detail string
		if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
			return "", nil, err
		}
		b.WriteString(detail)
		b.WriteByte('\n')
		if m := sqliteScan.FindStringSubmatch(detail); m != nil && detail != "SCAN CONSTANT ROW" && !sqliteValues.MatchString(detail) {
			scans = append(scans, m[1])
		}
	}
	return b.String(), scans, rows.Err()
}
