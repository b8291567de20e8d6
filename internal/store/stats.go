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
// They are counted from the audit log (kept --audit-retention) and the
// outbox (failed mails kept 30 days). A day that has ended is counted once
// (RollupStats, from the background round) into stats_daily, which keeps
// only numbers and outlives the rows it was counted from; the current day,
// and any day not rolled up yet, is counted when asked. So asking for a
// month or a year reads at most a few hundred small rows plus one day of
// the audit log, whatever the size of the database.

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

func (s *Stats) set(metric string, v int64) {
	switch metric {
	case metricTransfersCreated:
		s.TransfersCreated = v
	case metricTransfersSent:
		s.TransfersSent = v
	case metricFiles:
		s.Files = v
	case metricBytes:
		s.Bytes = v
	case metricDownloads:
		s.Downloads = v
	case metricLockouts:
		s.Lockouts = v
	case metricMailsFailed:
		s.MailsFailed = v
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
// up to, not including, the day of to: the rolled-up days from
// stats_daily, the others counted now.
func (q Q) StatsDays(ctx context.Context, from, to time.Time) ([]Stats, error) {
	first, end := day(from), day(to)
	if !end.After(first) {
		return nil, nil
	}
	stored := map[int64]*Stats{}
	rolled := map[int64]bool{}
	rows, err := q.q.QueryContext(ctx, `SELECT day, metric, value FROM stats_daily WHERE day >= ? AND day < ?`, ms(first), ms(end))
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
		if m == metricRolled {
			rolled[d] = true
			continue
		}
		if stored[d] == nil {
			stored[d] = &Stats{}
		}
		stored[d].set(m, v)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	// Days not rolled up yet (today, the days before the first rollup, a
	// day the hourly rollup has not reached) are counted from the audit
	// log and the outbox, a run of consecutive days at a time: a year
	// before the first rollup is then three queries, not a thousand.
	counted := map[int64]Stats{}
	for d := first; d.Before(end); {
		if rolled[ms(d)] {
			d = d.AddDate(0, 0, 1)
			continue
		}
		runEnd := d.AddDate(0, 0, 1)
		for runEnd.Before(end) && !rolled[ms(runEnd)] {
			runEnd = runEnd.AddDate(0, 0, 1)
		}
		if err := q.countDays(ctx, d, runEnd, counted); err != nil {
			return nil, err
		}
		d = runEnd
	}
	var out []Stats
	for d := first; d.Before(end); d = d.AddDate(0, 0, 1) {
		s := counted[ms(d)]
		if rolled[ms(d)] {
			s = Stats{}
			if p := stored[ms(d)]; p != nil {
				s = *p
			}
		}
		s.Start = d
		out = append(out, s)
	}
	return out, nil
}

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

// countDay counts the statistics of the UTC day starting at d from the
// audit log and the outbox.
func (q Q) countDay(ctx context.Context, d time.Time) (Stats, error) {
	out := map[int64]Stats{}
	if err := q.countDays(ctx, d, d.AddDate(0, 0, 1), out); err != nil {
		return Stats{Start: d}, err
	}
	s := out[ms(d)]
	s.Start = d
	return s, nil
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

// RollupStats counts every day that ended at least an hour before now and
// is not rolled up yet into stats_daily, from the day after the last one
// rolled up (or the oldest audit entry or failed mail) on, and returns how
// many days it stored. Several instances may run it at once: a day's rows
// are written once (the others' inserts do nothing), with the same values.
func (db *DB) RollupStats(ctx context.Context, now time.Time) (int, error) {
	var last, oldest, oldMail *int64
	if err := db.q.QueryRowContext(ctx, `SELECT max(day) FROM stats_daily WHERE metric = ?`, metricRolled).Scan(&last); err != nil {
		return 0, fmt.Errorf("statistics rollup: %w", err)
	}
	var first time.Time
	if last != nil {
		first = fromMS(*last).AddDate(0, 0, 1)
	} else {
		if err := db.q.QueryRowContext(ctx, `SELECT min(at) FROM audit`).Scan(&oldest); err != nil {
			return 0, fmt.Errorf("statistics rollup: %w", err)
		}
		if err := db.q.QueryRowContext(ctx, `SELECT min(failed_at) FROM outbox WHERE failed_at IS NOT NULL`).Scan(&oldMail); err != nil {
			return 0, fmt.Errorf("statistics rollup: %w", err)
		}
		switch {
		case oldest == nil && oldMail == nil:
			return 0, nil
		case oldest == nil:
			first = day(fromMS(*oldMail))
		case oldMail == nil || *oldest < *oldMail:
			first = day(fromMS(*oldest))
		default:
			first = day(fromMS(*oldMail))
		}
	}
	n := 0
	for d := first; !d.AddDate(0, 0, 1).Add(rollupDelay).After(now); d = d.AddDate(0, 0, 1) {
		if err := db.rollupDay(ctx, d); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

func (db *DB) rollupDay(ctx context.Context, d time.Time) error {
	s, err := db.countDay(ctx, d)
	if err != nil {
		return err
	}
	tx, err := db.BeginTx(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	ins := func(metric string, v int64) error {
		_, err := tx.q.ExecContext(ctx, `INSERT INTO stats_daily (day, metric, value) VALUES (?, ?, ?) ON CONFLICT (day, metric) DO NOTHING`, ms(d), metric, v)
		return err
	}
	for m, v := range s.metrics() {
		if v == 0 {
			continue // a missing metric of a rolled-up day is 0
		}
		if err := ins(m, v); err != nil {
			return fmt.Errorf("statistics rollup: %w", err)
		}
	}
	if err := ins(metricRolled, 1); err != nil {
		return fmt.Errorf("statistics rollup: %w", err)
	}
	return tx.Commit()
}
