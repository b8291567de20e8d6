package bench

// Scale (issue 21 item 4): a generator that fills SQLite and PostgreSQL
// with a million transfers, and the measurements on them: the purge of a
// backlog of 100,000 expired transfers, My transfers for a sender with
// 10,000 transfers through the real web handler, the admin statistics,
// the plans of every hot-path query, and the database size per transfer.
// Everything here skips unless KLUIS_SCALE=1 (bench/scale.sh sets it): it
// takes tens of minutes and gigabytes. See bench/README.md.

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/kluis-nl/kluis"
	"github.com/kluis-nl/kluis/internal/audit"
	"github.com/kluis-nl/kluis/internal/blob/local"
	"github.com/kluis-nl/kluis/internal/mail"
	"github.com/kluis-nl/kluis/internal/secret"
	"github.com/kluis-nl/kluis/internal/sender"
	"github.com/kluis-nl/kluis/internal/server"
	"github.com/kluis-nl/kluis/internal/store"
	"github.com/kluis-nl/kluis/internal/store/storetest"
	"github.com/kluis-nl/kluis/internal/transfer"
	"github.com/kluis-nl/kluis/internal/web"
)

// The shape of the generated installation.
const (
	// scaleDays is how far back transfers were created: a transfer's
	// minimal record is deleted 30 days after its purge, so with a week's
	// expiry the rows of about 37 days are in the database.
	scaleDays = 37
	// scaleBacklog expired transfers are not purged yet (the purge was
	// stopped for a few days, or a backup was restored); a tenth of a
	// smaller trial database.
	scaleBacklog = 100_000
	// bigSender has bigCount transfers, made through the engine itself
	// (sealed values and all), spread over the same days.
	bigSender = "belastingen@gemeente.example.nl"
	bigCount  = 10_000
	// scaleSenders other senders send the rest, a few of them most.
	scaleSenders = 20_000
)

func backlog(n int) int { return min(scaleBacklog, n/10) }

// scaleN is the number of transfers (KLUIS_SCALE_N, default a million).
func scaleN(tb testing.TB) int {
	if v := os.Getenv("KLUIS_SCALE_N"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 4*bigCount {
			tb.Fatalf("KLUIS_SCALE_N=%q: give a number of transfers of at least %d", v, 4*bigCount)
		}
		return n
	}
	return 1_000_000
}

func requireScale(tb testing.TB) {
	if os.Getenv("KLUIS_SCALE") != "1" {
		tb.Skip("scale runs skipped: set KLUIS_SCALE=1 (bench/scale.sh); they take tens of minutes and gigabytes")
	}
}

// scaleDB is one generated database.
type scaleDB struct {
	name  string // sqlite or postgres
	spec  string // --db
	dir   string // blobs and master key
	admin string // PostgreSQL: administrator URL
	pg    string // PostgreSQL: database name
}

func scaleDBs(tb testing.TB) []scaleDB {
	n := scaleN(tb)
	root := os.Getenv("KLUIS_SCALE_DIR")
	if root == "" {
		root = filepath.Join(os.TempDir(), "kluis-scale")
	}
	dir := filepath.Join(root, strconv.Itoa(n))
	out := []scaleDB{{name: "sqlite", spec: "sqlite:" + filepath.Join(dir, "sqlite", "kluis.db"), dir: filepath.Join(dir, "sqlite")}}
	if admin := os.Getenv(storetest.EnvPostgres); admin != "" {
		u, err := url.Parse(admin)
		if err != nil {
			tb.Fatal(err)
		}
		name := "kluis_scale_" + strconv.Itoa(n)
		u.Path = "/" + name
		out = append(out, scaleDB{name: "postgres", spec: u.String(), dir: filepath.Join(dir, "postgres"), admin: admin, pg: name})
	}
	return out
}

// meta is what the generator leaves for the measurements, in the data
// folder: the generation's clock (the measurements run at that moment, so
// the backlog is the same whenever they run) and the counts.
type scaleMeta struct {
	Now       time.Time `json:"now"`
	Transfers int       `json:"transfers"`
	Backlog   int       `json:"backlog"`
	Rows      any       `json:"rows"`
	Seconds   float64   `json:"seconds"`
}

func (d scaleDB) metaPath() string { return filepath.Join(d.dir, "scale.json") }

func (d scaleDB) readMeta() (*scaleMeta, error) {
	b, err := os.ReadFile(d.metaPath())
	if err != nil {
		return nil, err
	}
	var m scaleMeta
	return &m, json.Unmarshal(b, &m)
}

// TestScaleGenerate fills each database (once: a database whose data
// folder has scale.json is kept).
func TestScaleGenerate(t *testing.T) {
	requireScale(t)
	for _, d := range scaleDBs(t) {
		t.Run(d.name, func(t *testing.T) {
			if m, err := d.readMeta(); err == nil {
				t.Logf("%s: generated before (%d transfers at %s); remove %s to make it again", d.name, m.Transfers, m.Now.Format(time.RFC3339), d.dir)
				return
			}
			if err := generate(t, d, scaleN(t)); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func generate(t *testing.T, d scaleDB, n int) error {
	ctx := context.Background()
	start := time.Now()
	if err := os.MkdirAll(d.dir, 0o700); err != nil {
		return err
	}
	if d.pg != "" {
		adb, err := sql.Open("pgx", d.admin)
		if err != nil {
			return err
		}
		adb.ExecContext(ctx, "DROP DATABASE IF EXISTS "+d.pg+" WITH (FORCE)")
		_, err = adb.ExecContext(ctx, "CREATE DATABASE "+d.pg)
		adb.Close()
		if err != nil {
			return err
		}
	}
	db, err := store.Open(ctx, d.spec, d.dir)
	if err != nil {
		return err
	}
	defer db.Close()
	keys, _, err := secret.LoadOrCreateMasterKey(filepath.Join(d.dir, "master.key"))
	if err != nil {
		return err
	}
	now := time.Now().UTC().Truncate(time.Millisecond)
	// The heavy sender's transfers, through the engine.
	t.Logf("%s: %d transfers of %s through the engine", d.name, bigCount, bigSender)
	if err := generateBig(ctx, d, db, keys, now); err != nil {
		return err
	}
	t.Logf("%s: %s; the other %d transfers in bulk", d.name, time.Since(start).Round(time.Second), n-bigCount)
	rows, err := generateBulk(ctx, t, d, db, n-bigCount, now)
	if err != nil {
		return err
	}
	// Statistics for the planner, as a running installation has them
	// (autovacuum; PRAGMA optimize at open and hourly).
	if d.pg != "" {
		if err := pgExec(ctx, d.spec, "VACUUM ANALYZE"); err != nil {
			return err
		}
	} else if err := sqliteExec(ctx, d.spec, "ANALYZE", "PRAGMA wal_checkpoint(TRUNCATE)"); err != nil {
		return err
	}
	m := scaleMeta{Now: now, Transfers: n, Backlog: backlog(n), Rows: rows, Seconds: time.Since(start).Seconds()}
	b, _ := json.MarshalIndent(m, "", "  ")
	t.Logf("%s: generated in %s: %s", d.name, time.Since(start).Round(time.Second), b)
	return os.WriteFile(d.metaPath(), b, 0o600)
}

// clock is an engine clock the generator moves.
type clock struct{ ms atomic.Int64 }

func (c *clock) Now() time.Time          { return time.UnixMilli(c.ms.Load()).UTC() }
func (c *clock) Set(t time.Time)         { c.ms.Store(t.UnixMilli()) }
func newClock(t time.Time) *clock        { c := &clock{}; c.Set(t); return c }
func (c *clock) fixed() func() time.Time { return c.Now }

// generateBig makes bigSender's transfers with the engine: created over
// the last scaleDays days with a 30-day expiry, a subject, a message and
// one small file each, finished; those expired by now are purged, as the
// purge round would have.
func generateBig(ctx context.Context, d scaleDB, db *store.DB, keys *secret.Keyring, now time.Time) error {
	blobs, err := local.New(d.dir)
	if err != nil {
		return err
	}
	clk := newClock(now)
	cfg := transfer.DefaultConfig()
	svc := transfer.New(db, blobs, keys, cfg, clk.fixed(), slog.New(slog.DiscardHandler))
	svc.SetAudit(audit.New(db, 0, clk.fixed(), nil))
	r := mrand.New(mrand.NewPCG(1, 21))
	// Creation times in order, as a real sender's: the daily volume reads
	// the sender's transfers of the 24 hours before the clock.
	times := make([]time.Time, bigCount)
	for i := range times {
		times[i] = now.Add(-time.Duration(r.Float64() * float64(scaleDays*24*time.Hour))).Truncate(time.Millisecond)
	}
	slices.SortFunc(times, func(a, b time.Time) int { return a.Compare(b) })
	file := make([]byte, 1024)
	var expired []string
	// Several at once: the CPU work (scrypt, encryption) overlaps, and on
	// SQLite the writes queue on its one write lock.
	workers := 4
	if d.pg != "" {
		workers = 8
	}
	var mu sync.Mutex
	var firstErr error
	var wg sync.WaitGroup
	next := atomic.Int64{}
	// Each worker has its own clock: creation times differ per transfer.
	for range workers {
		wg.Go(func() {
			wclk := newClock(now)
			wsvc := svc
			if workers > 1 {
				wsvc = transfer.New(db, blobs, keys, cfg, wclk.fixed(), slog.New(slog.DiscardHandler))
				wsvc.SetAudit(audit.New(db, 0, wclk.fixed(), nil))
			} else {
				wclk = clk
			}
			for {
				i := int(next.Add(1)) - 1
				if i >= bigCount {
					return
				}
				created := times[i]
				wclk.Set(created)
				id, err := bigOne(ctx, wsvc, i, created, file)
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = err
				}
				if created.Add(cfg.MaxExpiry).Before(now) {
					expired = append(expired, id)
				}
				mu.Unlock()
				if err != nil {
					return
				}
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	for len(expired) > 0 {
		k := min(len(expired), 500)
		tx, err := db.BeginTx(ctx)
		if err != nil {
			return err
		}
		if err := tx.PurgeTransfers(ctx, expired[:k], now.Add(-time.Hour)); err != nil {
			tx.Rollback()
			return err
		}
		if err := tx.Commit(); err != nil {
			return err
		}
		expired = expired[k:]
	}
	return nil
}

func bigOne(ctx context.Context, svc *transfer.Service, i int, created time.Time, file []byte) (string, error) {
	c, err := svc.Create(ctx, transfer.CreateRequest{SenderEmail: bigSender, SenderName: "Afdeling Belastingen",
		To: []string{fmt.Sprintf("inwoner-%05d@example.nl", i)}, Subject: fmt.Sprintf("Aanslag gemeentelijke belastingen %d", 20260000+i),
		Message: "Hierbij uw aanslag.", PasswordMode: kluis.PasswordNone, ExpiresAt: created.Add(30 * 24 * time.Hour)})
	if err != nil {
		return "", err
	}
	o := transfer.Owner{TransferID: c.Transfer.ID}
	f, err := svc.NewFile(ctx, o, "aanslag.pdf", "application/pdf", int64(len(file)))
	if err != nil {
		return "", err
	}
	if _, err := svc.WriteFile(ctx, o, f.ID, 0, strings.NewReader(string(file))); err != nil {
		return "", err
	}
	if _, err := svc.CompleteFile(ctx, o, f.ID); err != nil {
		return "", err
	}
	if _, err := svc.Finish(ctx, o, c.LinkSecret); err != nil {
		return "", err
	}
	return c.Transfer.ID, nil
}

// sink writes rows in bulk: COPY on PostgreSQL, multi-row INSERTs in
// large transactions on SQLite.
type sink struct {
	ctx    context.Context
	db     *sql.DB
	pg     bool
	tx     *sql.Tx
	inTx   int
	buf    map[string][][]any
	cols   map[string][]string
	counts map[string]int
}

func newSink(ctx context.Context, d scaleDB) (*sink, error) {
	s := &sink{ctx: ctx, pg: d.pg != "", buf: map[string][][]any{}, cols: map[string][]string{}, counts: map[string]int{}}
	var err error
	if s.pg {
		s.db, err = sql.Open("pgx", d.spec)
	} else {
		// The generator's own connection: no fsync per commit and no
		// overwriting of freed pages (nothing is deleted), for speed.
		s.db, err = sql.Open("sqlite", "file:"+strings.TrimPrefix(d.spec, "sqlite:")+"?_pragma=busy_timeout(15000)&_pragma=synchronous(OFF)&_pragma=foreign_keys(OFF)")
	}
	if err != nil {
		return nil, err
	}
	s.db.SetMaxOpenConns(1)
	return s, nil
}

func (s *sink) add(table string, cols []string, row ...any) error {
	s.cols[table] = cols
	s.buf[table] = append(s.buf[table], row)
	s.counts[table]++
	if len(s.buf[table]) >= 2000 {
		return s.flush(table)
	}
	return nil
}

func (s *sink) flush(table string) error {
	rows := s.buf[table]
	if len(rows) == 0 {
		return nil
	}
	s.buf[table] = nil
	cols := s.cols[table]
	if s.pg {
		conn, err := s.db.Conn(s.ctx)
		if err != nil {
			return err
		}
		defer conn.Close()
		return conn.Raw(func(dc any) error {
			_, err := dc.(*stdlib.Conn).Conn().CopyFrom(s.ctx, pgx.Identifier{table}, cols, pgx.CopyFromRows(rows))
			if err != nil {
				return fmt.Errorf("copy %s: %w", table, err)
			}
			return nil
		})
	}
	if s.tx == nil {
		var err error
		if s.tx, err = s.db.BeginTx(s.ctx, nil); err != nil {
			return err
		}
	}
	per := 30000 / len(cols)
	for len(rows) > 0 {
		k := min(per, len(rows))
		var q strings.Builder
		q.WriteString("INSERT INTO " + table + " (" + strings.Join(cols, ", ") + ") VALUES ")
		args := make([]any, 0, k*len(cols))
		one := "(" + strings.TrimSuffix(strings.Repeat("?, ", len(cols)), ", ") + ")"
		for i, r := range rows[:k] {
			if i > 0 {
				q.WriteString(", ")
			}
			q.WriteString(one)
			args = append(args, r...)
		}
		if _, err := s.tx.ExecContext(s.ctx, q.String(), args...); err != nil {
			return fmt.Errorf("insert %s: %w", table, err)
		}
		rows = rows[k:]
		s.inTx += k
	}
	if s.inTx > 200_000 {
		if err := s.tx.Commit(); err != nil {
			return err
		}
		s.tx, s.inTx = nil, 0
	}
	return nil
}

func (s *sink) close() error {
	var errs []error
	for table := range s.buf {
		errs = append(errs, s.flush(table))
	}
	if s.tx != nil {
		errs = append(errs, s.tx.Commit())
	}
	errs = append(errs, s.db.Close())
	return errors.Join(errs...)
}

var (
	colsTransfers = []string{"id", "state", "created_at", "expires_at", "finished_at", "revoked_at", "purged_at", "sender_email", "lang", "password_mode",
		"options", "upload_token_hash", "recipient_sealed", "identity_sealed", "details_sealed", "private_sealed", "reminded_at", "reply_to"}
	colsRecipients = []string{"id", "transfer_id", "kind", "address", "access_hash", "notified_at", "opened_at", "revoked_at", "failures", "locked_until",
		"fail_total", "lockouts", "held_at", "unlock_hash"}
	colsFiles     = []string{"id", "transfer_id", "idx", "complete", "rev", "updated_at", "meta_sealed", "private_sealed", "sum_sealed", "manifest_sealed", "head_sealed"}
	colsSegments  = []string{"id", "file_id", "idx", "entry_sealed"}
	colsDownloads = []string{"id", "recipient_id", "file_idx", "at"}
	colsServed    = []string{"recipient_id", "file_idx", "spans"}
	colsSessions  = []string{"id_hash", "recipient_id", "identity_sealed", "expires_at"}
	colsAudit     = []string{"id", "at", "actor", "action", "object", "result", "ip", "detail"}
	colsOutbox    = []string{"id", "kind", "created_at", "not_before", "attempts", "claimed_until", "failed_at", "last_error", "sealed"}
)

// blob returns n random bytes: sealed values are ciphertext, and random
// bytes take the room ciphertext takes.
func blob(r *mrand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := 0; i < n; i += 8 {
		v := r.Uint64()
		for k := 0; k < 8 && i+k < n; k++ {
			b[i+k] = byte(v >> (8 * k))
		}
	}
	return b
}

func newID(r *mrand.Rand) string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz234567"
	b := make([]byte, 26)
	for i := range b {
		b[i] = alphabet[r.IntN(32)]
	}
	return string(b)
}

// nullable turns a zero time into NULL, others into Unix ms.
func nullable(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixMilli()
}

// generateBulk writes the other n transfers with their recipients, files,
// segments, downloads, served ranges, sessions, audit entries and mails,
// in a realistic mix of states: live ones mostly sent, some drafts and
// uploads, some revoked (and purged); expired ones purged except the
// scaleBacklog that expired last.
func generateBulk(ctx context.Context, t *testing.T, d scaleDB, db *store.DB, n int, now time.Time) (map[string]int, error) {
	r := mrand.New(mrand.NewPCG(2, 21))
	zipf := mrand.NewZipf(r, 1.2, 4, scaleSenders-1)
	// First pass: when each transfer was created and when it expires, to
	// find the backlog (the expired transfers that expired last).
	created := make([]int64, n)
	expires := make([]int64, n)
	span := int64(scaleDays * 24 * time.Hour / time.Millisecond)
	for i := range n {
		created[i] = now.UnixMilli() - span + int64(i)*span/int64(n) + r.Int64N(60_000)
		days := int64(7)
		switch p := r.IntN(100); {
		case p < 15:
			days = 14
		case p < 20:
			days = 30
		}
		expires[i] = created[i] + days*24*3600*1000
	}
	var exp []int64
	for i := range n {
		if expires[i] <= now.UnixMilli() {
			exp = append(exp, expires[i])
		}
	}
	slices.Sort(exp)
	backlogFrom := int64(0)
	if b := backlog(n + bigCount); len(exp) > b {
		backlogFrom = exp[len(exp)-b]
	}
	s, err := newSink(ctx, d)
	if err != nil {
		return nil, err
	}
	var base struct{ rcpt, dl, audit int64 }
	for _, q := range []struct {
		p     *int64
		query string
	}{{&base.rcpt, "SELECT COALESCE(MAX(id), 0) FROM recipients"}, {&base.dl, "SELECT COALESCE(MAX(id), 0) FROM downloads"}, {&base.audit, "SELECT COALESCE(MAX(id), 0) FROM audit"}} {
		if err := s.db.QueryRowContext(ctx, q.query).Scan(q.p); err != nil {
			return nil, err
		}
	}
	rid, did, aid := base.rcpt, base.dl, base.audit
	ips := []string{"145.12.33.", "82.94.101.", "2001:db8:4:12::", "77.60.88."}
	auditRow := func(at int64, actor, action, object, result, detail string) error {
		aid++
		return s.add("audit", colsAudit, aid, at, actor, action, object, result, ips[r.IntN(len(ips))]+strconv.Itoa(r.IntN(250)+1), detail)
	}
	nowMS := now.UnixMilli()
	for i := range n {
		if i%100_000 == 0 && i > 0 {
			t.Logf("%s: %d transfers written", d.name, i)
		}
		id := newID(r)
		sender := fmt.Sprintf("medewerker-%05d@gemeente.example.nl", zipf.Uint64())
		c, e := created[i], expires[i]
		state := "ready"
		var finished, revoked, purged, reminded int64
		live := e > nowMS
		switch p := r.IntN(100); {
		case live && p < 4:
			state = "draft"
		case live && p < 8:
			state = "uploading"
		case live && p < 15:
			revoked = c + r.Int64N(3*24*3600*1000)
			if revoked > nowMS {
				revoked = nowMS - 1000
			}
		}
		if state == "ready" {
			finished = c + 30_000 + r.Int64N(600_000)
		}
		if revoked > 0 {
			purged = revoked + 15_000
			state = "purged"
		} else if !live && e < backlogFrom {
			purged = e + 15_000
			state = "purged"
		}
		if state == "ready" && e-24*3600*1000 < nowMS {
			reminded = e - 24*3600*1000
		}
		isPurged := state == "purged"
		mode := "generate"
		switch p := r.IntN(10); {
		case p < 2:
			mode = "none"
		case p < 4:
			mode = "manual"
		}
		opts := `{"confirm":false,"notify_download":` + strconv.FormatBool(r.IntN(2) == 0) + `,"show_filenames":false,"remind_expiry":true,"has_message":true,"sender_lang":"nl","max_size":2000000000,"max_expiry":2592000000000000,"max_bytes_per_day":20000000000}`
		var tokenHash, rs, is, ds, ps any = []byte{}, nil, nil, nil, nil
		if !isPurged {
			tokenHash, rs, is, ds, ps = blob(r, 32), blob(r, 120), blob(r, 420), blob(r, 160), blob(r, 330)
		}
		if err := s.add("transfers", colsTransfers, id, state, c, e, nilZero(finished), nilZero(revoked), nilZero(purged), sender, "nl", mode,
			opts, tokenHash, rs, is, ds, ps, nilZero(reminded), nil); err != nil {
			return nil, err
		}
		actor := "sender:" + sender
		if err := auditRow(c, actor, "transfer.create", id, "ok", "recipients=1 password_mode="+mode); err != nil {
			return nil, err
		}
		// Files (kept until the purge).
		nf := 1
		switch p := r.IntN(100); {
		case p < 5:
			nf = 0
		case p < 60:
			nf = 1
		case p < 85:
			nf = 2
		default:
			nf = 3 + r.IntN(4)
		}
		if state == "draft" {
			nf = 0
		}
		for k := range nf {
			size := 20_000 + r.Int64N(5_000_000)
			if !isPurged {
				fid := newID(r)
				complete := 1
				if state == "uploading" && k == nf-1 {
					complete = 0
				}
				var sum any
				if complete == 1 {
					sum = blob(r, 190)
				}
				if err := s.add("files", colsFiles, fid, id, k, complete, 1+r.IntN(3), c+int64(k)*1000, blob(r, 96), blob(r, 210), sum, nil, blob(r, 150)); err != nil {
					return nil, err
				}
				for sg := range 1 + int(size/(16<<20)) {
					if err := s.add("segments", colsSegments, fid+":"+strconv.Itoa(sg), fid, sg, blob(r, 230)); err != nil {
						return nil, err
					}
				}
			}
			if state != "draft" && !(state == "uploading" && k == nf-1) {
				if err := auditRow(c+int64(k)*1000+500, "upload_token", "upload.file_complete", id, "ok", fmt.Sprintf("file=%s size=%d", newID(r), size)); err != nil {
					return nil, err
				}
			}
		}
		if finished > 0 || isPurged && revoked == 0 {
			if finished == 0 {
				finished = c + 60_000
			}
			if err := auditRow(finished, "upload_token", "transfer.finish", id, "ok", fmt.Sprintf("files=%d recipients=1", nf)); err != nil {
				return nil, err
			}
		}
		// Recipients, their opening, downloads and served ranges.
		nr := 1
		switch p := r.IntN(100); {
		case p < 60:
		case p < 85:
			nr = 2
		default:
			nr = 3 + r.IntN(3)
		}
		for k := range nr {
			rid++
			kind := "to"
			if k > 0 && r.IntN(3) == 0 {
				kind = []string{"cc", "bcc"}[r.IntN(2)]
			}
			var access, notified, opened any
			sent := finished > 0
			if sent {
				access, notified = blob(r, 32), finished+2000
				if r.IntN(100) < 75 {
					opened = finished + r.Int64N(3*24*3600*1000)
				}
			}
			failures := 0
			if r.IntN(50) == 0 {
				failures = 1 + r.IntN(5)
			}
			if err := s.add("recipients", colsRecipients, rid, id, kind, fmt.Sprintf("inwoner-%07d@example.nl", r.IntN(5_000_000)), access, notified, opened,
				nil, failures, nil, failures, 0, nil, nil); err != nil {
				return nil, err
			}
			if opened == nil {
				continue
			}
			at := opened.(int64)
			if err := auditRow(at, fmt.Sprintf("recipient:%d", rid), "recipient.unlock", id, "ok", ""); err != nil {
				return nil, err
			}
			if nowMS-at < 3600*1000 && !isPurged {
				if err := s.add("sessions", colsSessions, blob(r, 32), rid, blob(r, 460), at+3600*1000); err != nil {
					return nil, err
				}
			}
			for k := range nf {
				if r.IntN(100) >= 70 {
					continue
				}
				did++
				if err := s.add("downloads", colsDownloads, did, rid, k, at+int64(k+1)*5000); err != nil {
					return nil, err
				}
				if !isPurged {
					if err := s.add("served", colsServed, rid, k, "0-"+strconv.Itoa(1_000_000+r.IntN(4_000_000))); err != nil {
						return nil, err
					}
				}
				if err := auditRow(at+int64(k+1)*5000, fmt.Sprintf("recipient:%d", rid), "file.download", id, "ok",
					fmt.Sprintf("file_index=%d size=1000000 bytes=0-999999", k)); err != nil {
					return nil, err
				}
			}
		}
		if revoked > 0 {
			if err := auditRow(revoked, actor, "transfer.revoke", id, "ok", ""); err != nil {
				return nil, err
			}
		}
		if purged > 0 {
			if err := auditRow(purged, "system", "transfer.purge", id, "ok", ""); err != nil {
				return nil, err
			}
		}
		if r.IntN(400) == 0 {
			if err := auditRow(c+3600*1000, "system", "recipient.locked", id, "locked", "recipient=1 lock=1 total=10 until=2026-01-01T00:00:00Z"); err != nil {
				return nil, err
			}
		}
	}
	// The mail worker's table: a few mails waiting, and those that failed
	// for good in the last 30 days.
	for i := range 200 {
		if err := s.add("outbox", colsOutbox, newID(r), "notify", nowMS-int64(i)*1000, nowMS, 0, nil, nil, nil, blob(r, 2400)); err != nil {
			return nil, err
		}
	}
	for i := range 1500 {
		at := nowMS - r.Int64N(30*24*3600*1000)
		if err := s.add("outbox", colsOutbox, newID(r), "notify", at-24*3600*1000, at, 12, nil, at, "550 5.1.1 mailbox unavailable", nil); err != nil {
			return nil, err
		}
		_ = i
	}
	counts := s.counts
	if err := s.close(); err != nil {
		return nil, err
	}
	if d.pg != "" {
		// Identity columns were given explicit ids: move their sequences on.
		for _, tab := range []string{"recipients", "downloads", "audit"} {
			if err := pgExec(ctx, d.spec, fmt.Sprintf("SELECT setval(pg_get_serial_sequence('%s', 'id'), (SELECT MAX(id) FROM %s))", tab, tab)); err != nil {
				return nil, err
			}
		}
	}
	return counts, nil
}

func nilZero(v int64) any {
	if v == 0 {
		return nil
	}
	return v
}

func pgExec(ctx context.Context, dsn string, stmts ...string) error {
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return err
	}
	defer db.Close()
	for _, s := range stmts {
		if _, err := db.ExecContext(ctx, s); err != nil {
			return fmt.Errorf("%s: %w", s, err)
		}
	}
	return nil
}

func sqliteExec(ctx context.Context, spec string, stmts ...string) error {
	db, err := sql.Open("sqlite", "file:"+strings.TrimPrefix(spec, "sqlite:")+"?_pragma=busy_timeout(15000)")
	if err != nil {
		return err
	}
	defer db.Close()
	for _, s := range stmts {
		if _, err := db.ExecContext(ctx, s); err != nil {
			return fmt.Errorf("%s: %w", s, err)
		}
	}
	return nil
}

// ---------------------------------------------------------------------------
// Measurements

// scaleResult is one line of the report.
type scaleResult struct {
	Measure string `json:"measure"`
	Result  string `json:"result"`
	Target  string `json:"target"`
	OK      bool   `json:"ok"`
}

// TestScaleMeasure measures each generated database (TestScaleGenerate
// first). The figures go to the test log and, as JSON lines, to
// KLUIS_SCALE_OUT if set.
func TestScaleMeasure(t *testing.T) {
	requireScale(t)
	for _, d := range scaleDBs(t) {
		t.Run(d.name, func(t *testing.T) {
			m, err := d.readMeta()
			if err != nil {
				t.Fatalf("%s is not generated (run TestScaleGenerate): %v", d.name, err)
			}
			var res []scaleResult
			report := func(measure, result, target string, ok bool) {
				t.Logf("%-55s %-28s target %-12s %s", measure, result, target, map[bool]string{true: "ok", false: "MISSED"}[ok])
				res = append(res, scaleResult{Measure: d.name + ": " + measure, Result: result, Target: target, OK: ok})
			}
			measureSize(t, d, m, report)
			measurePlans(t, d, m, report)
			measurePage(t, d, m, report)
			measureStats(t, d, m, report)
			measurePurge(t, d, m, report)
			if out := os.Getenv("KLUIS_SCALE_OUT"); out != "" {
				f, err := os.OpenFile(out, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
				if err != nil {
					t.Fatal(err)
				}
				for _, r := range res {
					b, _ := json.Marshal(r)
					f.Write(append(b, '\n'))
				}
				f.Close()
			}
		})
	}
}

type reportFunc func(measure, result, target string, ok bool)

func openScale(t *testing.T, d scaleDB, spec string) *store.DB {
	t.Helper()
	db, err := store.Open(context.Background(), spec, d.dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// measureSize reports the database's size per transfer.
func measureSize(t *testing.T, d scaleDB, m *scaleMeta, report reportFunc) {
	ctx := context.Background()
	var size int64
	if d.pg != "" {
		db, err := sql.Open("pgx", d.spec)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		if err := db.QueryRowContext(ctx, "SELECT pg_database_size(current_database())").Scan(&size); err != nil {
			t.Fatal(err)
		}
	} else {
		if err := sqliteExec(ctx, d.spec, "PRAGMA wal_checkpoint(TRUNCATE)"); err != nil {
			t.Fatal(err)
		}
		st, err := os.Stat(strings.TrimPrefix(d.spec, "sqlite:"))
		if err != nil {
			t.Fatal(err)
		}
		size = st.Size()
	}
	report("database size", fmt.Sprintf("%.2f GB, %.2f KB per transfer", float64(size)/1e9, float64(size)/float64(m.Transfers)/1e3), "(reported)", true)
}

// hotArgs picks real rows for the hot-path queries: a live transfer of
// the big sender with a recipient and a file.
func hotArgs(t *testing.T, db *store.DB, now time.Time) store.HotArgs {
	ctx := context.Background()
	page, err := db.TransfersBySenderPage(ctx, bigSender, time.Time{}, "", 2)
	if err != nil || len(page) < 2 {
		t.Fatalf("the big sender's transfers: %v", err)
	}
	rs, err := db.Recipients(ctx, page[0].ID)
	if err != nil || len(rs) == 0 {
		t.Fatalf("recipients: %v", err)
	}
	fs, err := db.Files(ctx, page[0].ID)
	if err != nil || len(fs) == 0 {
		t.Fatalf("files: %v", err)
	}
	return store.HotArgs{TransferID: page[0].ID, OtherID: page[1].ID, RecipientID: rs[0].ID, FileID: fs[0].ID, Sender: bigSender, Now: now}
}

// measurePlans: every hot-path query uses an index on the full database,
// the planner left alone (PostgreSQL after ANALYZE).
func measurePlans(t *testing.T, d scaleDB, m *scaleMeta, report reportFunc) {
	db := openScale(t, d, d.spec)
	plans, err := db.HotPathPlans(context.Background(), hotArgs(t, db, m.Now), false)
	if err != nil {
		t.Fatal(err)
	}
	bad := 0
	for _, p := range plans {
		if len(p.Scans) > 0 {
			bad++
			t.Errorf("%s reads %v whole:\n%s\n%s", p.Name, p.Scans, p.SQL, p.Plan)
		}
	}
	report("hot-path queries that read a table whole", fmt.Sprintf("%d of %d", bad, len(plans)), "0", bad == 0)
}

// capture is a mailer that keeps the verification mail (for the login).
type captureMail struct {
	mu  sync.Mutex
	msg []*mail.Message
}

func (c *captureMail) Enqueue(_ context.Context, _ *store.Tx, m *mail.Message) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.msg = append(c.msg, m)
	return "x", nil
}

func (c *captureMail) Wake() {}

var codeRe = regexp.MustCompile(`\b\d{4}[ -]?\d{4}\b`)

// measurePage: GET /transfers of the sender with 10,000 transfers through
// the whole handler (server.New with the web pages), first page and the
// hundredth, 30 times each after a warm-up.
func measurePage(t *testing.T, d scaleDB, m *scaleMeta, report reportFunc) {
	ctx := context.Background()
	db := openScale(t, d, d.spec)
	keys, _, err := secret.LoadOrCreateMasterKey(filepath.Join(d.dir, "master.key"))
	if err != nil {
		t.Fatal(err)
	}
	blobs, err := local.New(d.dir)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	clk := newClock(m.Now)
	svc := transfer.New(db, blobs, keys, transfer.DefaultConfig(), clk.fixed(), log)
	ml := &captureMail{}
	svc.SetMailer(ml, mail.Org{BaseURL: "http://127.0.0.1"})
	senders := sender.New(db, keys, ml, mail.Org{BaseURL: "http://127.0.0.1"}, sender.DefaultConfig(), clk.fixed(), log)
	pages, err := web.New(web.Deps{Transfers: svc, Senders: senders, BaseURL: "http://127.0.0.1", Log: log})
	if err != nil {
		t.Fatal(err)
	}
	h, err := server.New(server.Deps{Transfers: svc, Senders: senders, Web: pages, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	pre, err := senders.Start(ctx, "", bigSender, "Afdeling Belastingen", "", "nl")
	if err != nil {
		t.Fatal(err)
	}
	code := codeRe.FindString(ml.msg[len(ml.msg)-1].Text)
	sess, err := senders.Confirm(ctx, pre, code, "browser")
	if err != nil {
		t.Fatal(err)
	}
	get := func(path string) (time.Duration, string) {
		req, _ := http.NewRequest("GET", srv.URL+path, nil)
		req.AddCookie(&http.Cookie{Name: "__Host-kluis-session", Value: sess.Token})
		start := time.Now()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		d := time.Since(start)
		if resp.StatusCode != 200 {
			t.Fatalf("GET %s: %d", path, resp.StatusCode)
		}
		return d, string(b)
	}
	older := regexp.MustCompile(`href="/transfers\?before=([^"]+)"`)
	// The hundredth page's address, by following the links.
	path := "/transfers"
	for range 99 {
		_, body := get(path)
		mm := older.FindStringSubmatch(body)
		if mm == nil {
			t.Fatal("fewer than 100 pages")
		}
		path = "/transfers?before=" + mm[1]
	}
	for _, c := range []struct{ what, path string }{{"first page", "/transfers"}, {"100th page", path}} {
		for range 5 {
			get(c.path) // warm-up
		}
		var ds []time.Duration
		for range 30 {
			d, body := get(c.path)
			if !strings.Contains(body, "Aanslag gemeentelijke belastingen") {
				t.Fatalf("%s does not show the transfers", c.what)
			}
			ds = append(ds, d)
		}
		slices.Sort(ds)
		p50, p95 := ds[len(ds)/2], ds[len(ds)*95/100]
		report(fmt.Sprintf("My transfers, %d transfers, %s (p50 / p95)", bigCount, c.what),
			fmt.Sprintf("%.1f / %.1f ms", ms(p50), ms(p95)), "≤ 50 ms", p95 <= 50*time.Millisecond)
	}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// measureStats: the admin statistics, per day for 30 days and per month
// for 12 months, after the rollup of the ended days (as the background
// round keeps it) and, for comparison, the first rollup itself.
func measureStats(t *testing.T, d scaleDB, m *scaleMeta, report reportFunc) {
	ctx := context.Background()
	db := openScale(t, d, d.spec)
	start := time.Now()
	n, err := db.RollupStats(ctx, m.Now)
	if err != nil {
		t.Fatal(err)
	}
	report("statistics: first rollup of the ended days", fmt.Sprintf("%d days in %.1f s", n, time.Since(start).Seconds()), "(once)", true)
	for _, c := range []struct {
		what string
		run  func() ([]store.Stats, error)
	}{
		{"statistics per day, last 30 days", func() ([]store.Stats, error) {
			return db.StatsDays(ctx, m.Now.AddDate(0, 0, -29), m.Now.AddDate(0, 0, 1))
		}},
		{"statistics per month, last 12 months", func() ([]store.Stats, error) {
			return db.StatsMonths(ctx, m.Now.AddDate(0, -11, 0), m.Now.AddDate(0, 1, 0))
		}},
	} {
		var ds []time.Duration
		var rows []store.Stats
		for range 10 {
			s := time.Now()
			rows, err = c.run()
			if err != nil {
				t.Fatal(err)
			}
			ds = append(ds, time.Since(s))
		}
		slices.Sort(ds)
		var created int64
		for _, r := range rows {
			created += r.TransfersCreated
		}
		if created == 0 {
			t.Errorf("%s counted nothing", c.what)
		}
		report(c.what+" (p50 / max)", fmt.Sprintf("%.1f / %.1f ms", ms(ds[len(ds)/2]), ms(ds[len(ds)-1])), "≤ 200 ms", ds[len(ds)-1] <= 200*time.Millisecond)
	}
}

// measurePurge: on a copy of the database, one purge round at the
// generation's moment, which purges the backlog of 100,000 expired
// transfers (and deletes the minimal records past retention).
func measurePurge(t *testing.T, d scaleDB, m *scaleMeta, report reportFunc) {
	ctx := context.Background()
	copySpec, cleanup := copyDB(t, d)
	defer cleanup()
	db := openScale(t, d, copySpec)
	keys, _, err := secret.LoadOrCreateMasterKey(filepath.Join(d.dir, "master.key"))
	if err != nil {
		t.Fatal(err)
	}
	blobs, err := local.New(d.dir + "-purge")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(d.dir + "-purge")
	clk := newClock(m.Now)
	svc := transfer.New(db, blobs, keys, transfer.DefaultConfig(), clk.fixed(), slog.New(slog.DiscardHandler))
	svc.SetAudit(audit.New(db, 365*24*time.Hour, clk.fixed(), nil))
	due, err := db.DueForPurge(ctx, m.Now, 1_000_000)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	n, err := svc.Purge(ctx)
	if err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	if n != len(due) || n < m.Backlog {
		t.Errorf("purged %d, %d were due", n, len(due))
	}
	report(fmt.Sprintf("purge of %d expired transfers (one round)", n), fmt.Sprintf("%.1f s", took.Seconds()), "≤ 60 s", took <= time.Minute)
}

// copyDB copies the generated database, so the purge leaves it as it is.
func copyDB(t *testing.T, d scaleDB) (string, func()) {
	ctx := context.Background()
	if d.pg != "" {
		adb, err := sql.Open("pgx", d.admin)
		if err != nil {
			t.Fatal(err)
		}
		name := d.pg + "_copy"
		adb.ExecContext(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
		if _, err := adb.ExecContext(ctx, "CREATE DATABASE "+name+" TEMPLATE "+d.pg); err != nil {
			t.Fatal(err)
		}
		u, _ := url.Parse(d.spec)
		u.Path = "/" + name
		return u.String(), func() {
			adb.ExecContext(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
			adb.Close()
		}
	}
	src := strings.TrimPrefix(d.spec, "sqlite:")
	dst := src + ".copy"
	os.Remove(dst)
	if err := sqliteExec(ctx, d.spec, "VACUUM INTO '"+dst+"'"); err != nil {
		t.Fatal(err)
	}
	return "sqlite:" + dst, func() {
		for _, suffix := range []string{"", "-wal", "-shm"} {
			os.Remove(dst + suffix)
		}
	}
}
