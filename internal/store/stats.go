package store

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Statistics for the admin console: per day and per month, how many
// transfers were created and sent, how many files and bytes were uploaded,
// how many downloads were answered, how many recipients were locked out
// and how many mails failed for good. Days are UTC days.
//
// They count audit entries and failed mails. The transaction that writes
// such an entry (InsertAudit) or fails a mail (FailOutbox) also adds it to
// its day's counters in stats_live, so the figures commit with the events
// they count. Once a day has ended, RollupStats (the background round)
// moves its counters into stats_daily, which keeps only numbers and
// outlives the rows they were counted from. Asking for a month or a year
// reads at most a few hundred small rows, whatever the size of the
// database. countDays counts the same figures from the audit log and the
// outbox (RecountStats, after the upgrade to migration 0040).

// Stats are the figures of one day or month.
type Stats struct {
	// Start is the first moment of the day or month (UTC).
	Start time.Time
	// TransfersCreated and TransfersSent count transfers created and
	// finished (sent to their recipients), replies included.
	TransfersCreated int64
	TransfersSent    int64
	// Files and Bytes count files whose upload completed, and their sizes.
	Files int64
	Bytes int64
	// Downloads counts download answers (one file, or a ZIP) that ended as
	// asked.
	Downloads int64
	// Lockouts counts recipients' accesses locked after wrong passwords.
	Lockouts int64
	// MailsFailed counts mails given up for good.
	MailsFailed int64
}

// The metric names in stats_daily.
const (
	metricRolled           = "rolled"
	metricTransfersCreated = "transfers_created"
	metricTransfersSent    = "transfers_sent"
	metricFiles            = "files"
	metricBytes            = "bytes"
	metricDownloads        = "downloads"
	metricLockouts         = "lockouts"
	metricMailsFailed      = "mails_failed"
)

// The audit actions the statistics count (audit package names; the store
// does not import it).
const (
	actionCreate   = "transfer.create"
	actionFinish   = "transfer.finish"
	actionFile     = "upload.file_complete"
	actionDownload = "file.download"
	actionZip      = "zip.download"
	actionLocked   = "recipient.locked"
)

// rollupDelay is how long after a day ends it is counted for good: audit
// entries are written with the writing instance's clock, and a transaction
// may commit a moment after its entry's time.
const rollupDelay = time.Hour

// day is the start of t's UTC day.
func day(t time.Time) time.Time {
	t = t.UTC()
	return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
}

// addMetric adds v to the figure named metric (others, such as the
// rollup's marker, are ignored).
func (s *Stats) addMetric(metric string, v int64) {
	switch metric {
	case metricTransfersCreated:
		s.TransfersCreated += v
	case metricTransfersSent:
		s.TransfersSent += v
	case metricFiles:
		s.Files += v
	case metricBytes:
		s.Bytes += v
	case metricDownloads:
		s.Downloads += v
	case metricLockouts:
		s.Lockouts += v
	case metricMailsFailed:
		s.MailsFailed += v
	}
}

func (s *Stats) add(o Stats) {
	s.TransfersCreated += o.TransfersCreated
	s.TransfersSent += o.TransfersSent
	s.Files += o.Files
	s.Bytes += o.Bytes
	s.Downloads += o.Downloads
	s.Lockouts += o.Lockouts
	s.MailsFailed += o.MailsFailed
}

func (s Stats) metrics() map[string]int64 {
	return map[string]int64{
		metricTransfersCreated: s.TransfersCreated, metricTransfersSent: s.TransfersSent,
		metricFiles: s.Files, metricBytes: s.Bytes, metricDownloads: s.Downloads,
		metricLockouts: s.Lockouts, metricMailsFailed: s.MailsFailed,
	}
}

// StatsDays returns the statistics of every UTC day from the day of from
// up to, not including, the day of to: the rolled-up figures plus the
// counters not rolled up yet, in one statement (one snapshot, so a day
// being rolled up is counted once).
func (q Q) StatsDays(ctx context.Context, from, to time.Time) ([]Stats, error) {
	first, end := day(from), day(to)
	if !end.After(first) {
		return nil, nil
	}
	byDay := map[int64]*Stats{}
	rows, err := q.q.QueryContext(ctx, qStatsDays, ms(first), ms(end), ms(first), ms(end))
	if err != nil {
		return nil, fmt.Errorf("statistics: %w", err)
	}
	for rows.Next() {
		var d, v int64
		var m string
		if err := rows.Scan(&d, &m, &v); err != nil {
			rows.Close()
			return nil, err
		}
		if byDay[d] == nil {
			byDay[d] = &Stats{}
		}
		byDay[d].addMetric(m, v)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	var out []Stats
	for d := first; d.Before(end); d = d.AddDate(0, 0, 1) {
		var s Stats
		if p := byDay[ms(d)]; p != nil {
			s = *p
		}
		s.Start = d
		out = append(out, s)
	}
	return out, nil
}

const qStatsDays = `SELECT day, metric, value FROM stats_daily WHERE day >= ? AND day < ?
	UNION ALL SELECT day, metric, value FROM stats_live WHERE day >= ? AND day < ?`

// StatsMonths returns the statistics of every UTC month from the month of
// from up to, not including, the month of to: the sums of their days.
func (q Q) StatsMonths(ctx context.Context, from, to time.Time) ([]Stats, error) {
	first := time.Date(from.UTC().Year(), from.UTC().Month(), 1, 0, 0, 0, 0, time.UTC)
	end := time.Date(to.UTC().Year(), to.UTC().Month(), 1, 0, 0, 0, 0, time.UTC)
	days, err := q.StatsDays(ctx, first, end)
	if err != nil {
		return nil, err
	}
	var out []Stats
	for _, d := range days {
		m := time.Date(d.Start.Year(), d.Start.Month(), 1, 0, 0, 0, 0, time.UTC)
		if len(out) == 0 || !out[len(out)-1].Start.Equal(m) {
			out = append(out, Stats{Start: m})
		}
		out[len(out)-1].add(d)
	}
	return out, nil
}

// CountStats counts the statistics of every UTC day from the day of from
// up to, not including, the day of to from the audit log and the outbox:
// what StatsDays shows as long as those rows are kept (the tests compare
// the two).
func (q Q) CountStats(ctx context.Context, from, to time.Time) ([]Stats, error) {
	counted := map[int64]Stats{}
	var out []Stats
	for d := day(from); d.Before(day(to)); d = d.AddDate(0, 0, 1) {
		if len(out) == 0 {
			if err := q.countDays(ctx, d, day(to), counted); err != nil {
				return nil, err
			}
		}
		s := counted[ms(d)]
		s.Start = d
		out = append(out, s)
	}
	return out, nil
}

// countDays adds the statistics of the UTC days from first up to end
// (day starts) to out, by day start (ms), from the audit log and the
// outbox: three queries, each reading the days' rows through an index
// (audit_action_at, outbox_due).
func (q Q) countDays(ctx context.Context, first, end time.Time, out map[int64]Stats) error {
	lo, hi := ms(first), ms(end)
	// dayOf is the start (ms) of the UTC day of at (ms; days have no leap
	// seconds in Unix time).
	dayOf := func(at int64) int64 { return at - at%msPerDay }
	upd := func(at int64, f func(s *Stats)) {
		s := out[dayOf(at)]
		f(&s)
		out[dayOf(at)] = s
	}
	rows, err := q.q.QueryContext(ctx, qStatsActions, actionCreate, actionFinish, actionFile, actionDownload, actionZip, actionLocked, lo, hi)
	if err != nil {
		return fmt.Errorf("statistics: %w", err)
	}
	for rows.Next() {
		var action, result string
		var d, n int64
		if err := rows.Scan(&d, &action, &result, &n); err != nil {
			rows.Close()
			return err
		}
		upd(d*msPerDay, func(s *Stats) {
			switch action {
			case actionCreate:
				s.TransfersCreated += n
			case actionFinish:
				s.TransfersSent += n
			case actionFile:
				s.Files += n
			case actionDownload, actionZip:
				if result == "ok" {
					s.Downloads += n
				}
			case actionLocked:
				s.Lockouts += n
			}
		})
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	// The sizes are in the entries' detail ("file=ID size=N").
	rows, err = q.q.QueryContext(ctx, qStatsSizes, actionFile, lo, hi)
	if err != nil {
		return fmt.Errorf("statistics: %w", err)
	}
	for rows.Next() {
		var at int64
		var detail string
		if err := rows.Scan(&at, &detail); err != nil {
			rows.Close()
			return err
		}
		upd(at, func(s *Stats) { s.Bytes += sizeOf(detail) })
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	rows, err = q.q.QueryContext(ctx, qStatsMailsFailed, lo, hi)
	if err != nil {
		return fmt.Errorf("statistics: %w", err)
	}
	for rows.Next() {
		var d, n int64
		if err := rows.Scan(&d, &n); err != nil {
			rows.Close()
			return err
		}
		upd(d*msPerDay, func(s *Stats) { s.MailsFailed += n })
	}
	rows.Close()
	return rows.Err()
}

const msPerDay = 24 * 3600 * 1000

const (
	qStatsActions = `SELECT at / 86400000, action, result, count(*) FROM audit
		WHERE action IN (?, ?, ?, ?, ?, ?) AND at >= ? AND at < ? GROUP BY at / 86400000, action, result`
	qStatsSizes       = `SELECT at, detail FROM audit WHERE action = ? AND at >= ? AND at < ?`
	qStatsMailsFailed = `SELECT failed_at / 86400000, count(*) FROM outbox WHERE failed_at >= ? AND failed_at < ? GROUP BY failed_at / 86400000`
)

// sizeOf reads N from an audit detail holding "size=N"; 0 if none.
func sizeOf(detail string) int64 {
	for _, f := range strings.Fields(detail) {
		if v, ok := strings.CutPrefix(f, "size="); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err == nil && n > 0 {
				return n
			}
		}
	}
	return 0
}

// auditStats is what an audit entry adds to the statistics: metric names
// and values (the same rules as countDays).
func auditStats(a *AuditRow) ([]string, []int64) {
	switch a.Action {
	case actionCreate:
		return []string{metricTransfersCreated}, []int64{1}
	case actionFinish:
		return []string{metricTransfersSent}, []int64{1}
	case actionFile:
		if n := sizeOf(a.Detail); n > 0 {
			return []string{metricFiles, metricBytes}, []int64{1, n}
		}
		return []string{metricFiles}, []int64{1}
	case actionDownload, actionZip:
		if a.Result == "ok" {
			return []string{metricDownloads}, []int64{1}
		}
	case actionLocked:
		return []string{metricLockouts}, []int64{1}
	}
	return nil, nil
}

// qAddStats adds to n counters of stats_live; its arguments are day,
// metric, value for each (statsSum.args).
func qAddStats(n int) string {
	return `INSERT INTO stats_live (day, metric, value) VALUES (?, ?, ?)` + strings.Repeat(`, (?, ?, ?)`, n-1) +
		` ON CONFLICT (day, metric) DO UPDATE SET value = stats_live.value + excluded.value`
}

// statsSum adds up what a transaction adds to the counters, by day and
// metric.
type statsSum struct {
	keys []statsKey
	sum  map[statsKey]int64
}

type statsKey struct {
	day    int64
	metric string
}

func (s *statsSum) add(at time.Time, metric string, v int64) {
	k := statsKey{ms(day(at)), metric}
	if s.sum == nil {
		s.sum = map[statsKey]int64{}
	}
	if _, ok := s.sum[k]; !ok {
		s.keys = append(s.keys, k)
	}
	s.sum[k] += v
}

func (s *statsSum) args() []any {
	args := make([]any, 0, 3*len(s.keys))
	for _, k := range s.keys {
		args = append(args, k.day, k.metric, s.sum[k])
	}
	return args
}

// addStats adds s to the counters in one statement.
func (q Q) addStats(ctx context.Context, s *statsSum) error {
	if len(s.keys) == 0 {
		return nil
	}
	if _, err := q.q.ExecContext(ctx, qAddStats(len(s.keys)), s.args()...); err != nil {
		return fmt.Errorf("statistics: %w", err)
	}
	return nil
}

// RollupStats moves the counters of every day that ended at least an hour
// before now from stats_live into stats_daily (adding to what a day has
// there already: an event committed late), marks the day rolled up, and
// returns how many days it moved. Several instances may run it at once:
// the move of a day's counters is one transaction, and the second finds
// them gone.
func (db *DB) RollupStats(ctx context.Context, now time.Time) (int, error) {
	days, err := db.rollupDue(ctx, now)
	if err != nil {
		return 0, err
	}
	for i, d := range days {
		tx, err := db.BeginTx(ctx)
		if err != nil {
			return i, err
		}
		err = tx.rollupDay(ctx, d)
		if err == nil {
			err = tx.Commit()
		}
		tx.Rollback()
		if err != nil {
			return i, err
		}
	}
	return len(days), nil
}

// rollupDue lists the days (ms) with counters in stats_live that ended at
// least rollupDelay before now: audit entries are written with the
// writing instance's clock, and a transaction may commit a moment after
// its entry's time.
func (q Q) rollupDue(ctx context.Context, now time.Time) ([]int64, error) {
	rows, err := q.q.QueryContext(ctx, `SELECT DISTINCT day FROM stats_live WHERE day >= 0 AND day < ? ORDER BY day`, ms(day(now.Add(-rollupDelay))))
	if err != nil {
		return nil, fmt.Errorf("statistics rollup: %w", err)
	}
	defer rows.Close()
	var out []int64
	for rows.Next() {
		var d int64
		if err := rows.Scan(&d); err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

func (tx *Tx) rollupDay(ctx context.Context, d int64) error {
	rows, err := tx.q.QueryContext(ctx, `DELETE FROM stats_live WHERE day = ? RETURNING metric, value`, d)
	if err != nil {
		return fmt.Errorf("statistics rollup: %w", err)
	}
	moved := map[string]int64{}
	for rows.Next() {
		var m string
		var v int64
		if err := rows.Scan(&m, &v); err != nil {
			rows.Close()
			return err
		}
		moved[m] += v
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for m, v := range moved {
		if _, err := tx.q.ExecContext(ctx, `INSERT INTO stats_daily (day, metric, value) VALUES (?, ?, ?)
			ON CONFLICT (day, metric) DO UPDATE SET value = stats_daily.value + excluded.value`, d, m, v); err != nil {
			return fmt.Errorf("statistics rollup: %w", err)
		}
	}
	// The marker (for versions before migration 0040, which counted a day
	// without it from the audit log).
	if _, err := tx.q.ExecContext(ctx, `INSERT INTO stats_daily (day, metric, value) VALUES (?, ?, 1) ON CONFLICT (day, metric) DO NOTHING`, d, metricRolled); err != nil {
		return fmt.Errorf("statistics rollup: %w", err)
	}
	return nil
}

// RecountStats counts the statistics of every day not rolled up into
// stats_daily again, from the audit log and the outbox, and replaces
// their counters in stats_live. The first open after migration 0040 runs
// it (the events before it have no counters); bench/ runs it after
// writing audit rows in bulk. It holds stats_live while it counts
// (PostgreSQL: an exclusive table lock; SQLite: the write lock), so no
// counter is added meanwhile and lost.
func (db *DB) RecountStats(ctx context.Context) error { return db.recountStats(ctx, false) }

func (db *DB) recountStats(ctx context.Context, onlyIfAsked bool) error {
	// Asked is checked without a lock first: every open asks.
	asked := func(q Q) (bool, error) {
		var n int
		if err := q.q.QueryRowContext(ctx, `SELECT count(*) FROM stats_live WHERE day = -1`).Scan(&n); err != nil {
			return false, fmt.Errorf("statistics recount: %w", err)
		}
		return n > 0, nil
	}
	if onlyIfAsked {
		if ok, err := asked(db.Q); err != nil || !ok {
			return err
		}
	}
	tx, err := db.BeginTx(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if tx.pg {
		// At start-up another instance may be recounting a big database
		// (tens of seconds at a million transfers): wait for it, as
		// migrations wait for each other, rather than fail the start
		// after the connection's lock_timeout.
		if onlyIfAsked {
			if _, err := tx.tx.ExecContext(ctx, "SET LOCAL lock_timeout = 0"); err != nil {
				return fmt.Errorf("statistics recount: %w", err)
			}
		}
		if _, err := tx.tx.ExecContext(ctx, `LOCK TABLE stats_live IN EXCLUSIVE MODE`); err != nil {
			return fmt.Errorf("statistics recount: %w", err)
		}
	}
	if onlyIfAsked {
		if ok, err := asked(tx.Q); err != nil || !ok {
			return err // another instance counted meanwhile
		}
	}
	var last, oldest, newest, oldMail, newMail *int64
	if err := tx.q.QueryRowContext(ctx, `SELECT max(day) FROM stats_daily WHERE metric = ?`, metricRolled).Scan(&last); err != nil {
		return fmt.Errorf("statistics recount: %w", err)
	}
	if err := tx.q.QueryRowContext(ctx, `SELECT (SELECT min(at) FROM audit), (SELECT max(at) FROM audit)`).Scan(&oldest, &newest); err != nil {
		return fmt.Errorf("statistics recount: %w", err)
	}
	if err := tx.q.QueryRowContext(ctx, `SELECT min(failed_at), max(failed_at) FROM outbox WHERE failed_at IS NOT NULL`).Scan(&oldMail, &newMail); err != nil {
		return fmt.Errorf("statistics recount: %w", err)
	}
	// The days after the last one rolled up (rollups go day by day from
	// the oldest), up to the newest event.
	var first, end time.Time
	for _, v := range []*int64{oldest, oldMail} {
		if v != nil && (first.IsZero() || day(fromMS(*v)).Before(first)) {
			first = day(fromMS(*v))
		}
	}
	for _, v := range []*int64{newest, newMail} {
		if v != nil && !day(fromMS(*v)).Before(end) {
			end = day(fromMS(*v)).AddDate(0, 0, 1)
		}
	}
	if last != nil {
		first = fromMS(*last).AddDate(0, 0, 1)
	}
	// Counters of rolled-up days (events committed late) stay for the
	// next rollup.
	if _, err := tx.q.ExecContext(ctx, `DELETE FROM stats_live WHERE day >= ? OR day = -1`, ms(first)); err != nil {
		return fmt.Errorf("statistics recount: %w", err)
	}
	counted := map[int64]Stats{}
	if first.Before(end) {
		if err := tx.countDays(ctx, first, end, counted); err != nil {
			return err
		}
	}
	for d, s := range counted {
		var sum statsSum
		for m, v := range s.metrics() {
			if v != 0 {
				sum.add(fromMS(d), m, v)
			}
		}
		if err := tx.addStats(ctx, &sum); err != nil {
			return err
		}
	}
	return tx.Commit()
}
