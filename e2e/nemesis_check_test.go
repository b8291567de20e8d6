package e2e

// The nemesis's checker: what it looks at while the server is dead after a
// kill, after each restart, and at the end of the run.

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/kluis-nl/kluis/internal/blob/s3"
	"github.com/kluis-nl/kluis/internal/secret"
	"github.com/kluis-nl/kluis/internal/segment"
	"github.com/kluis-nl/kluis/internal/store"
	"github.com/kluis-nl/kluis/internal/transfer"
)

// The engine's purpose strings for sealed manifests (internal/transfer/
// seal.go): the checker reads manifests itself instead of asking the code
// under test which blobs they list.
const (
	manifestPurpose = "file.manifest" // a whole manifest, before migration 0009
	headPurpose     = "file.head"
	segmentPurpose  = "file.segment"
)

// ---------------------------------------------------------------------------
// Database and blobs, read by the checker

// openDB opens the run's database for the checker: SQLite read-only (so the
// checker never recovers or checkpoints it for the server), or PostgreSQL.
func (n *nemesis) openDB() *sql.DB {
	n.t.Helper()
	var db *sql.DB
	var err error
	if n.dsn != "" {
		db, err = sql.Open("pgx", n.dsn)
	} else {
		db, err = sql.Open("sqlite", "file:"+filepath.Join(n.data, "kluis.db")+"?mode=ro&_pragma=busy_timeout(10000)")
	}
	if err != nil {
		n.t.Fatal(err)
	}
	return db
}

// sqliteIntegrity runs PRAGMA integrity_check and foreign_key_check on the
// database as the killed process left it.
func (n *nemesis) sqliteIntegrity(when string) {
	db := n.openDB()
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var res []string
	rows, err := db.QueryContext(ctx, `PRAGMA integrity_check`)
	if err != nil {
		n.failf("integrity", "%s: PRAGMA integrity_check: %v", when, err)
		return
	}
	for rows.Next() {
		var s string
		rows.Scan(&s)
		res = append(res, s)
	}
	rows.Close()
	if len(res) != 1 || res[0] != "ok" {
		n.failf("integrity", "%s: PRAGMA integrity_check: %v", when, res)
	}
	rows, err = db.QueryContext(ctx, `PRAGMA foreign_key_check`)
	if err != nil {
		n.failf("integrity", "%s: PRAGMA foreign_key_check: %v", when, err)
		return
	}
	bad := 0
	for rows.Next() {
		bad++
	}
	rows.Close()
	if bad > 0 {
		n.failf("integrity", "%s: PRAGMA foreign_key_check: %d violations", when, bad)
	}
	n.count(func(f *figures) { f.integrityChecks++ })
}

// postgresIntegrity checks every B-tree index of the run's database with
// amcheck, where the server has that extension.
func (n *nemesis) postgresIntegrity() {
	db := n.openDB()
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := db.ExecContext(ctx, `CREATE EXTENSION IF NOT EXISTS amcheck`); err != nil {
		n.t.Logf("%s: amcheck is not available (%v): PostgreSQL's own integrity is not checked", n.cfg.variant, err)
		return
	}
	rows, err := db.QueryContext(ctx, `SELECT c.relname, bt_index_check(c.oid, true) IS NULL
		FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am am ON am.oid = c.relam
		WHERE am.amname = 'btree' AND c.relnamespace = 'public'::regnamespace`)
	if err != nil {
		n.failf("integrity", "amcheck: %v", err)
		return
	}
	defer rows.Close()
	idx := 0
	for rows.Next() {
		idx++
	}
	if err := rows.Err(); err != nil {
		n.failf("integrity", "amcheck: %v", err)
		return
	}
	n.t.Logf("%s: amcheck: %d B-tree indexes verified", n.cfg.variant, idx)
	n.count(func(f *figures) { f.integrityChecks++ })
}

// listed reads every file's manifest and returns the blob keys it lists.
// Since migration 0009 a manifest is a sealed head in files.head_sealed
// and one sealed entry per segments row (bound to the row id FILE:INDEX);
// files written before keep it whole in files.manifest_sealed. The checker
// opens them with the master key itself, in one read transaction (a commit
// writes a head and a row together), and checks that each file's rows
// assemble to its head, instead of asking the code under test which blobs
// it lists.
func (n *nemesis) listed() map[string]bool {
	keys, err := secret.LoadMasterKey(filepath.Join(n.data, "master.key"))
	if err != nil {
		n.t.Fatal(err)
	}
	db := n.openDB()
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	opts := &sql.TxOptions{ReadOnly: true}
	if n.dsn != "" {
		opts.Isolation = sql.LevelRepeatableRead
	}
	tx, err := db.BeginTx(ctx, opts)
	if err != nil {
		n.t.Fatalf("reading manifests: %v", err)
	}
	defer tx.Rollback()
	type fileRow struct {
		id           string
		head, legacy []byte
	}
	var files []fileRow
	rows, err := tx.QueryContext(ctx, `SELECT id, head_sealed, manifest_sealed FROM files`)
	if err != nil {
		n.t.Fatalf("reading manifests: %v", err)
	}
	for rows.Next() {
		var f fileRow
		if err := rows.Scan(&f.id, &f.head, &f.legacy); err != nil {
			n.t.Fatal(err)
		}
		files = append(files, f)
	}
	if err := rows.Close(); err != nil {
		n.t.Fatal(err)
	}
	entries := map[string][]segment.Entry{}
	rows, err = tx.QueryContext(ctx, `SELECT id, file_id, idx, entry_sealed FROM segments ORDER BY file_id, idx`)
	if err != nil {
		n.t.Fatalf("reading segment entries: %v", err)
	}
	for rows.Next() {
		var id, fid string
		var idx int
		var sealed []byte
		if err := rows.Scan(&id, &fid, &idx, &sealed); err != nil {
			n.t.Fatal(err)
		}
		if idx != len(entries[fid]) || id != fmt.Sprintf("%s:%d", fid, idx) {
			n.failf("integrity", "file %s: segment row %q where entry %d belongs", fid, id, len(entries[fid]))
			continue
		}
		b, err := keys.Open(segmentPurpose, id, sealed)
		if err != nil {
			n.failf("integrity", "segment entry %s does not open: %v", id, err)
			continue
		}
		e, err := segment.UnmarshalEntry(b)
		if err != nil {
			n.failf("integrity", "segment entry %s: %v", id, err)
			continue
		}
		entries[fid] = append(entries[fid], e)
	}
	if err := rows.Close(); err != nil {
		n.t.Fatal(err)
	}
	out := map[string]bool{}
	for _, f := range files {
		ents := entries[f.id]
		delete(entries, f.id)
		var m *segment.Manifest
		switch {
		case f.head != nil:
			b, err := keys.Open(headPurpose, f.id, f.head)
			if err != nil {
				n.failf("integrity", "file %s: sealed head does not open: %v", f.id, err)
				continue
			}
			h, err := segment.UnmarshalHead(b)
			if err != nil {
				n.failf("integrity", "file %s: head: %v", f.id, err)
				continue
			}
			if m, err = segment.Assemble(h, ents); err != nil {
				n.failf("integrity", "file %s: segment entries: %v", f.id, err)
				continue
			}
		case f.legacy != nil:
			b, err := keys.Open(manifestPurpose, f.id, f.legacy)
			if err != nil {
				n.failf("integrity", "file %s: sealed manifest does not open: %v", f.id, err)
				continue
			}
			if m, err = segment.Unmarshal(b); err != nil {
				n.failf("integrity", "file %s: manifest: %v", f.id, err)
				continue
			}
		default:
			n.failf("integrity", "file %s has neither a head nor a manifest", f.id)
			continue
		}
		for _, e := range m.Entries {
			out[e.Key] = true
		}
	}
	for fid := range entries {
		n.failf("integrity", "segment entries of %s, which is no file", fid)
	}
	return out
}

// blobKeys lists every stored blob key under t/.
func (n *nemesis) blobKeys() []string {
	var out []string
	if n.mc == nil {
		root := filepath.Join(n.data, "blobs")
		err := filepath.WalkDir(filepath.Join(root, "t"), func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					return nil
				}
				return err
			}
			if d.Type().IsRegular() {
				rel, _ := filepath.Rel(root, path)
				out = append(out, filepath.ToSlash(rel))
			}
			return nil
		})
		if err != nil {
			n.t.Fatal(err)
		}
		return out
	}
	ctx := context.Background()
	for o := range n.mc.ListObjects(ctx, n.bucket, minio.ListObjectsOptions{Prefix: n.prefix + "/t/", Recursive: true, WithVersions: true}) {
		if o.Err != nil {
			n.t.Fatal(o.Err)
		}
		out = append(out, strings.TrimPrefix(o.Key, n.prefix+"/"))
	}
	return out
}

// temps lists the unfinished writes: files in tmp/ (local), or multipart
// uploads (S3, as KEY#UPLOADID).
func (n *nemesis) temps() []string {
	var out []string
	if n.mc == nil {
		ents, err := os.ReadDir(filepath.Join(n.data, "tmp"))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			n.t.Fatal(err)
		}
		for _, e := range ents {
			out = append(out, e.Name())
		}
		return out
	}
	for u := range n.mc.ListIncompleteUploads(context.Background(), n.bucket, n.prefix+"/", true) {
		if u.Err != nil {
			n.t.Fatal(u.Err)
		}
		out = append(out, u.Key+"#"+u.UploadID)
	}
	return out
}

// leftovers is what a collect should remove now: blobs no manifest lists,
// and unfinished writes.
func (n *nemesis) leftovers() *leftovers {
	listed := n.listed()
	lo := &leftovers{at: time.Now(), temps: n.temps()}
	for _, k := range n.blobKeys() {
		if !listed[k] {
			lo.orphans = append(lo.orphans, k)
		}
	}
	return lo
}

// backdate moves the modification time of every blob and temporary file
// two hours back, past the collector's grace for orphans (one hour) and
// --temp-max-age: the next collect treats everything the killed process
// left as old. Only for the local store (S3 keeps its own times).
func (n *nemesis) backdate() {
	old := time.Now().Add(-2 * time.Hour)
	for _, dir := range []string{"blobs", "tmp"} {
		filepath.WalkDir(filepath.Join(n.data, dir), func(path string, d fs.DirEntry, err error) error {
			if err == nil && d.Type().IsRegular() {
				os.Chtimes(path, old, old)
			}
			return nil
		})
	}
}

// offline runs while the killed server is down: the database's integrity,
// and what the collector must remove once the server is back.
func (n *nemesis) offline(k int) {
	if n.dsn == "" {
		n.sqliteIntegrity(fmt.Sprintf("after kill %d", k))
	}
	lo := n.leftovers()
	for _, k := range lo.orphans {
		n.seen["orphan "+k] = true
	}
	for _, k := range lo.temps {
		n.seen["temp "+k] = true
	}
	orphans, temps := 0, 0
	for k := range n.seen {
		if strings.HasPrefix(k, "orphan ") {
			orphans++
		} else {
			temps++
		}
	}
	n.count(func(f *figures) { f.orphansSeen, f.tempsSeen = orphans, temps })
	n.hist.event("leftovers", map[string]any{"k": k, "orphans": len(lo.orphans), "temps": len(lo.temps)})
	if n.mc == nil {
		n.backdate()
	} else {
		// The S3 collector at start aborts multipart uploads idle for
		// --temp-max-age (1 s); young orphan objects it leaves for an
		// hour, so those are checked at the end only.
		lo.orphans = nil
		if d := time.Until(lo.at.Add(1200 * time.Millisecond)); d > 0 {
			time.Sleep(d)
		}
	}
	n.pending = lo
}

// checkCollected checks that the collector at the last start removed what
// the kill left. It runs before the next kill: if the collector has not run
// yet (the kill came first), the leftovers stay for the next snapshot.
func (n *nemesis) checkCollected(final bool) {
	lo := n.pending
	if lo == nil {
		return
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		left := n.stillThere(lo)
		if len(left) == 0 {
			n.pending = nil
			if len(lo.orphans)+len(lo.temps) > 0 {
				n.count(func(f *figures) { f.collectChecks++ })
			}
			return
		}
		n.srvMu.Lock()
		s, up := n.srv, time.Since(n.startedAt)
		n.srvMu.Unlock()
		ran := bytes.Contains(s.log(), []byte("collector removed leftovers"))
		switch {
		case ran || up > 20*time.Second:
			n.failf("collector", "%d leftovers of the kill are still there after the collector ran (server up %v): %v",
				len(left), up.Round(time.Millisecond), first(left, 5))
			n.pending = nil
			return
		case !final:
			n.count(func(f *figures) { f.collectUnchecked++ })
			n.pending = nil
			return
		case time.Now().After(deadline):
			n.failf("collector", "%d leftovers still there 30 s after the restart: %v", len(left), first(left, 5))
			n.pending = nil
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func first(s []string, k int) []string { return s[:min(k, len(s))] }

func (n *nemesis) stillThere(lo *leftovers) []string {
	var left []string
	if n.mc == nil {
		for _, k := range lo.orphans {
			if _, err := os.Stat(filepath.Join(n.data, "blobs", filepath.FromSlash(k))); err == nil {
				left = append(left, k)
			}
		}
		for _, k := range lo.temps {
			if _, err := os.Stat(filepath.Join(n.data, "tmp", k)); err == nil {
				left = append(left, "tmp/"+k)
			}
		}
		return left
	}
	now := n.temps()
	for _, k := range lo.temps {
		if slices.Contains(now, k) {
			left = append(left, k)
		}
	}
	return left
}

// ---------------------------------------------------------------------------
// Mail

func (n *nemesis) mailGet(u string, out any) error {
	resp, err := hc.Get(u)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

func (n *nemesis) mailDetail(id string) (*mpMessage, error) {
	n.mailMu.Lock()
	d := n.mailCache[id]
	n.mailMu.Unlock()
	if d != nil {
		return d, nil
	}
	d = &mpMessage{}
	if err := n.mailGet(n.mp.api()+"/api/v1/message/"+id, d); err != nil {
		return nil, err
	}
	n.mailMu.Lock()
	n.mailCache[id] = d
	n.mailMu.Unlock()
	return d, nil
}

// mailsTo returns the mails Mailpit holds for addr (errors: none).
func (n *nemesis) mailsTo(addr string) []*mpMessage {
	var list struct {
		Messages []mpMessage `json:"messages"`
	}
	if err := n.mailGet(n.mp.api()+"/api/v1/search?limit=50&query="+url.QueryEscape("to:"+addr), &list); err != nil {
		return nil
	}
	var out []*mpMessage
	for _, m := range list.Messages {
		if d, err := n.mailDetail(m.ID); err == nil && d.to() == addr {
			out = append(out, d)
		}
	}
	return out
}

// allMail is every delivery Mailpit holds, with its text.
func (n *nemesis) allMail() []*mpMessage {
	var out []*mpMessage
	for start := 0; ; {
		var list struct {
			Total    int         `json:"total"`
			Messages []mpMessage `json:"messages"`
		}
		if err := n.mailGet(fmt.Sprintf("%s/api/v1/messages?start=%d&limit=500", n.mp.api(), start), &list); err != nil {
			n.t.Fatal(err)
		}
		for _, m := range list.Messages {
			d, err := n.mailDetail(m.ID)
			if err != nil {
				n.t.Fatal(err)
			}
			out = append(out, d)
		}
		start += len(list.Messages)
		if len(list.Messages) == 0 || start >= list.Total {
			if start != list.Total {
				n.t.Fatalf("Mailpit listed %d of %d messages", start, list.Total)
			}
			return out
		}
	}
}

// waitOutbox waits until the outbox holds no mail waiting, and checks that
// none failed for good.
func (n *nemesis) waitOutbox(limit time.Duration) {
	db := n.openDB()
	defer db.Close()
	deadline := time.Now().Add(limit)
	began := time.Now()
	for {
		var pending, failed int
		var claimed sql.NullInt64
		err := db.QueryRow(`SELECT count(CASE WHEN failed_at IS NULL THEN 1 END), count(CASE WHEN failed_at IS NOT NULL THEN 1 END),
			max(claimed_until) FROM outbox`).Scan(&pending, &failed, &claimed)
		if err != nil {
			n.t.Fatalf("reading the outbox: %v", err)
		}
		if failed > 0 {
			n.failf("mail-failed", "%d mails failed for good", failed)
			return
		}
		if pending == 0 {
			n.t.Logf("%s: outbox empty after %v", n.cfg.variant, time.Since(began).Round(time.Millisecond))
			return
		}
		if time.Now().After(deadline) {
			until := ""
			if claimed.Valid {
				until = time.UnixMilli(claimed.Int64).Format(time.RFC3339)
			}
			n.failf("mail-late", "%d mails still queued %v after the last kill (claimed until %s)", pending, limit, until)
			return
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func mailKind(m *mpMessage) string {
	s := m.Subject
	switch {
	case strings.HasPrefix(s, "Your verification code") || strings.HasPrefix(s, "Uw verificatiecode"):
		return "code"
	case strings.HasPrefix(s, "Confirmation:") || strings.HasPrefix(s, "Bevestiging:"):
		return "confirm"
	case isDownloadNotice(m):
		return "download"
	case strings.HasPrefix(s, "Your transfer is available until") || strings.HasPrefix(s, "Uw verzending is beschikbaar tot"):
		return "reminder"
	case strings.HasPrefix(s, "Too many wrong passwords") || strings.HasPrefix(s, "Te vaak een verkeerd"):
		return "lockout"
	case strings.HasPrefix(s, "Revoked: ") || strings.HasPrefix(s, "Ingetrokken: "):
		return "revoked"
	}
	return "notify"
}

var statusRE = regexp.MustCompile(`/transfers/([a-z0-9]{26})\b`)

// checkMail holds the delivered mail against the final state of every
// transfer: each mail a committed change queued arrived, at least once;
// copies carry the same Message-ID; no mail arrived that no committed
// change queued.
func (n *nemesis) checkMail(states map[string]*transferView) {
	all := n.allMail()
	byID := map[string][]*mpMessage{}
	var ids []string
	for _, m := range all {
		if m.MessageID == "" {
			n.failf("mail", "a mail to %s (%q) has no Message-ID", m.to(), m.Subject)
			continue
		}
		if byID[m.MessageID] == nil {
			ids = append(ids, m.MessageID)
		}
		byID[m.MessageID] = append(byID[m.MessageID], m)
	}
	dups := map[string]int{}
	for _, id := range ids {
		ms := byID[id]
		for _, m := range ms[1:] {
			if m.to() != ms[0].to() || m.Subject != ms[0].Subject || m.Text != ms[0].Text {
				n.failf("mail", "Message-ID %s was used for different mails: %q to %s and %q to %s", id, ms[0].Subject, ms[0].to(), m.Subject, m.to())
			}
			dups[mailKind(m)]++
		}
	}
	n.count(func(f *figures) {
		f.mails, f.deliveries = len(ids), len(all)
		f.duplicates = len(all) - len(ids)
	})
	if len(dups) > 0 {
		n.t.Logf("%s: duplicate deliveries (same Message-ID; a kill between the relay's 250 and the outbox's commit): %v", n.cfg.variant, dups)
	}

	// Attribute each distinct mail.
	n.mu.Lock()
	xfers := slices.Clone(n.xfers)
	verifies := map[string]outcome{}
	for k, v := range n.verifies {
		verifies[k] = v
	}
	n.mu.Unlock()
	byAddr := map[string]*xfer{}
	byXID := map[string]*xfer{}
	for _, x := range xfers {
		byXID[x.id] = x
		for _, r := range x.recipients {
			byAddr[r] = x
		}
	}
	type key struct{ xid, kind, addr string }
	got := map[key][]*mpMessage{}
	codes := map[string]int{}
	for _, id := range ids {
		m := byID[id][0]
		to := m.to()
		kind := mailKind(m)
		switch {
		case kind == "code":
			if _, ok := verifies[to]; !ok {
				n.failf("mail-extra", "verification code mail to %s, which never asked", to)
			}
			codes[to]++
		case to == nemSender:
			mm := statusRE.FindStringSubmatch(m.Text)
			if mm == nil || byXID[mm[1]] == nil {
				n.failf("mail-extra", "%s mail to the sender names no known transfer: %q", kind, m.Subject)
				continue
			}
			k := key{mm[1], kind, ""}
			if kind == "download" {
				// A notice names its recipient first in the subject, and
				// either one file or all files (a ZIP that was the first
				// download of every file).
				k.addr, _, _ = strings.Cut(m.Subject, " ")
				if strings.Contains(m.Subject, " all files") || strings.Contains(m.Subject, " alle bestanden") {
					k.kind = "download-all"
				}
			}
			got[k] = append(got[k], m)
		default:
			x := byAddr[to]
			if x == nil {
				n.failf("mail-extra", "%s mail to %s, no recipient of any transfer", kind, to)
				continue
			}
			got[key{x.id, kind, to}] = append(got[key{x.id, kind, to}], m)
		}
	}
	for addr, o := range verifies {
		switch {
		case o == oAcked && codes[addr] != 1:
			n.failf("mail-missing", "acknowledged verification for %s: %d distinct code mails, want 1", addr, codes[addr])
		case o == oUnknown && codes[addr] > 1:
			n.failf("mail-extra", "verification for %s: %d distinct code mails", addr, codes[addr])
		}
	}
	pop := func(k key) []*mpMessage {
		ms := got[k]
		delete(got, k)
		return ms
	}
	expectN := func(x *xfer, kind, addr string, want int, why string) []*mpMessage {
		ms := got[key{x.id, kind, addr}]
		delete(got, key{x.id, kind, addr})
		if len(ms) != want {
			what := "mail-missing"
			if len(ms) > want {
				what = "mail-extra"
			}
			n.failf(what, "transfer %s: %d distinct %s mails to %q, want %d (%s)", x.id, len(ms), kind, addr, want, why)
		}
		return ms
	}
	for _, x := range xfers {
		v := states[x.id]
		if v == nil {
			continue
		}
		x.mu.Lock()
		opts, answered, pwMode, secret := x.opts, maps(x.links), x.pwMode, x.linkSecret
		downloads := slices.Clone(x.downloads)
		finishAcked := x.finish == oAcked
		x.mu.Unlock()
		recs := map[[2]any]int{}
		for _, r := range v.Recipients {
			addr := strings.ToLower(r.Address)
			want := 0
			if r.NotifiedAt != nil {
				want = 1
			}
			for _, m := range expectN(x, "notify", addr, want, "notified_at is set") {
				ls := mailLinks(m)
				switch {
				case len(ls) != 1:
					n.failf("mail", "notification to %s holds %d links", addr, len(ls))
				case finishAcked && ls[0] != answered[addr]:
					n.failf("mail", "notification to %s holds %s, the finish answer said %s", addr, ls[0], answered[addr])
				case pwMode == "none" && !strings.HasSuffix(ls[0], "#"+secret):
					n.failf("mail", "notification to %s of a no-password transfer: link %s lacks the link secret", addr, ls[0])
				case pwMode != "none" && strings.Contains(ls[0], "#"):
					n.failf("mail", "notification to %s of a password transfer has a fragment: %s", addr, ls[0])
				}
			}
			want = 0
			if r.NotifiedAt != nil && (v.RevokedAt != nil || r.RevokedAt != nil) {
				want = 1
			}
			expectN(x, "revoked", addr, want, "notified, then revoked")
			for _, d := range r.Downloads {
				recs[[2]any{addr, d.FileIndex}]++
			}
			n.checkDownloadNotices(x, addr, opts.NotifyDownload, r.Downloads, downloads,
				pop(key{x.id, "download", addr}), pop(key{x.id, "download-all", addr}))
		}
		want := 0
		if opts.Confirm && v.FinishedAt != nil {
			want = 1
		}
		expectN(x, "confirm", "", want, "confirm chosen and finished")
		if ms := got[key{x.id, "reminder", ""}]; len(ms) > 1 || (len(ms) == 1 && (!opts.RemindExpiry || v.FinishedAt == nil)) {
			n.failf("mail-extra", "transfer %s: %d expiry reminders (remind_expiry %v)", x.id, len(ms), opts.RemindExpiry)
		}
		delete(got, key{x.id, "reminder", ""})
		// A lock-out comes only from --max-failures unlocks of one link
		// in a row cut off before their check (see unlock): one mail per
		// such link at most, and a lock seen has its mail.
		x.mu.Lock()
		lockable, locked := x.cutLockable, x.cutLocked
		x.mu.Unlock()
		if ms := got[key{x.id, "lockout", ""}]; len(ms) > lockable || (locked > 0 && len(ms) == 0) {
			n.failf("mail-lockout", "transfer %s: %d lock-out mails; %d links had %d unlocks in a row cut off, %d were seen locked", x.id, len(ms), lockable, nemMaxFailures, locked)
		}
		delete(got, key{x.id, "lockout", ""})
		// Downloads (docs/security.md, "Download accounting"): a file
		// counts as downloaded by a recipient once the bytes sent to them
		// cover it, and is recorded once. So every file a client received
		// completely, alone or in a ZIP, is recorded (and so the sender
		// told); none is recorded that no client of that recipient tried
		// to download; none twice.
		acked, tried := map[[2]any]bool{}, map[[2]any]bool{}
		for _, d := range downloads {
			k := [2]any{d.addr, d.index}
			tried[k] = true
			if d.acked {
				acked[k] = true
			}
		}
		for k := range acked {
			if recs[k] == 0 {
				n.failf("download-unrecorded", "transfer %s: %s downloaded file %v completely, but it is not recorded (the sender is not told)", x.id, k[0], k[1])
			}
		}
		for k, c := range recs {
			if !tried[k] {
				n.failf("download-phantom", "transfer %s: a download of file %v by %s is recorded, but no client of theirs tried it", x.id, k[1], k[0])
			}
			if c > 1 {
				n.failf("download-twice", "transfer %s: file %v by %s recorded %d times, want once", x.id, k[1], k[0], c)
			}
		}
	}
	for k, ms := range got {
		n.failf("mail-extra", "%d %s mails to %q for transfer %s that no committed change explains", len(ms), k.kind, k.addr, k.xid)
	}
}

// recordedDownload is a downloads record of the owner's view.
type recordedDownload struct {
	FileIndex int       `json:"file_index"`
	At        time.Time `json:"at"`
}

// checkDownloadNotices holds the download notices about recipient addr
// to its records (docs/security.md, "Download accounting"): with
// notify_download, one notice per record, each naming another file;
// except when a ZIP was the first download of every file, which gives one
// notice for all files (and then every record was written at that ZIP's
// moment, and a ZIP of as many files was tried). Without notify_download,
// none.
func (n *nemesis) checkDownloadNotices(x *xfer, addr string, notify bool, recs []recordedDownload, tried []dlRec, singles, alls []*mpMessage) {
	if !notify {
		if len(singles)+len(alls) > 0 {
			n.failf("mail-extra", "transfer %s: %d download notices about %s without notify_download", x.id, len(singles)+len(alls), addr)
		}
		return
	}
	switch {
	case len(alls) > 1:
		n.failf("mail-extra", "transfer %s: %d notices that %s downloaded all files", x.id, len(alls), addr)
	case len(alls) == 1:
		if len(singles) > 0 {
			n.failf("mail-extra", "transfer %s: a notice that %s downloaded all files, and %d for single files", x.id, addr, len(singles))
		}
		zip := slices.ContainsFunc(tried, func(d dlRec) bool { return d.addr == addr && d.zip == len(recs) })
		same := len(recs) > 0 && !slices.ContainsFunc(recs, func(r recordedDownload) bool { return !r.At.Equal(recs[0].At) })
		if !zip || !same {
			n.failf("mail-extra", "transfer %s: a notice that %s downloaded all files, but %d records (one moment: %v) and no ZIP of as many files tried",
				x.id, addr, len(recs), same)
		}
	default:
		if len(singles) != len(recs) {
			what := "mail-missing"
			if len(singles) > len(recs) {
				what = "mail-extra"
			}
			n.failf(what, "transfer %s: %d distinct download notices about %s, want %d (its download records)", x.id, len(singles), addr, len(recs))
		}
		labels := map[string]bool{}
		for _, m := range singles {
			l := noticeLabel(m)
			if labels[l] {
				n.failf("mail-extra", "transfer %s: two download notices about %s name %q", x.id, addr, l)
			}
			labels[l] = true
		}
	}
}

// noticeLabel is the line of a download notice that names the file.
func noticeLabel(m *mpMessage) string {
	for _, l := range strings.Split(m.Text, "\n") {
		if s, ok := strings.CutPrefix(strings.TrimSpace(l), "- "); ok {
			return s
		}
	}
	return ""
}

func maps(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// ---------------------------------------------------------------------------
// The end of the run

// final runs without kills: the collector removes what the kills left,
// every acknowledged transfer downloads, expired and revoked ones are
// refused and purged, the mail arrived, nothing leaked.
func (n *nemesis) final() {
	t := n.t
	n.checkCollected(true)

	// A collect with nothing in flight must leave no orphan and no
	// temporary file. Local: everything is backdated past the grace and
	// the server's own collector runs at start. S3: object times cannot be
	// moved, so the engine's collector runs here with no grace.
	n.stop()
	if n.dsn == "" {
		n.sqliteIntegrity("after the last kill")
		n.backdate()
		n.start()
		deadline := time.Now().Add(30 * time.Second)
		for {
			lo := n.leftovers()
			if len(lo.orphans)+len(lo.temps) == 0 {
				break
			}
			if time.Now().After(deadline) {
				n.failf("collector", "30 s after a start with everything backdated: %d orphans %v, %d temporary files %v",
					len(lo.orphans), first(lo.orphans, 5), len(lo.temps), first(lo.temps, 5))
				break
			}
			time.Sleep(300 * time.Millisecond)
		}
	} else {
		before := n.leftovers()
		st := n.collectInProcess()
		after := n.leftovers()
		t.Logf("%s: final collect removed %d temporary uploads and %d orphans (before: %d, %d)", n.cfg.variant, st.Temp, st.Orphans, len(before.temps), len(before.orphans))
		if len(after.orphans)+len(after.temps) > 0 {
			n.failf("collector", "after the collect: %d orphans %v, %d unfinished uploads %v", len(after.orphans), first(after.orphans, 5), len(after.temps), first(after.temps, 5))
		}
		n.start()
	}

	n.waitOutbox(90 * time.Second)
	states := map[string]*transferView{}
	n.mu.Lock()
	xfers := slices.Clone(n.xfers)
	n.mu.Unlock()
	for _, x := range xfers {
		if v := n.finalTransfer(x); v != nil {
			states[x.id] = v
		}
	}
	n.checkUnknownTransfers()
	n.waitPurged(xfers, states)
	n.waitOutbox(90 * time.Second)
	for _, x := range xfers {
		if v := n.state(-1, x); v != nil {
			states[x.id] = v
		}
	}
	n.checkMail(states)

	n.stop()
	if n.dsn == "" {
		n.sqliteIntegrity("at the end")
	} else {
		n.postgresIntegrity()
	}
	n.leaks()
}

// stop ends the current server with SIGTERM.
func (n *nemesis) stop() {
	n.srvMu.Lock()
	s := n.srv
	n.up = make(chan struct{}) // closed again by the next start
	n.srvMu.Unlock()
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(20 * time.Second):
		n.failf("shutdown", "kluis serve did not stop within 20 s of SIGTERM")
		s.cmd.Process.Kill()
		<-s.done
	}
	n.tr.CloseIdleConnections()
}

// collectInProcess runs the engine's collector on the stopped server's
// database and object store, with no grace: nothing is in flight.
func (n *nemesis) collectInProcess() transfer.CollectStats {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	db, err := store.Open(ctx, n.dsn, n.data)
	if err != nil {
		n.t.Fatal(err)
	}
	defer db.Close()
	sc, err := s3.ParseURL(n.storage, os.Getenv)
	if err != nil {
		n.t.Fatal(err)
	}
	blobs, err := s3.New(ctx, sc)
	if err != nil {
		n.t.Fatal(err)
	}
	keys, err := secret.LoadMasterKey(filepath.Join(n.data, "master.key"))
	if err != nil {
		n.t.Fatal(err)
	}
	cfg := transfer.DefaultConfig()
	cfg.OrphanGrace, cfg.TempMaxAge = time.Nanosecond, time.Nanosecond
	st, err := transfer.New(transfer.Deps{DB: db, Blobs: blobs, Keys: keys, Config: cfg}).Collect(ctx)
	if err != nil {
		n.failf("collector", "collect: %v", err)
	}
	return st
}

// finalTransfer checks one transfer at the end: what was acknowledged
// happened; a live ready transfer opens for its recipients with its
// message and every file byte for byte (through the API, sometimes the
// pages); an expired or revoked one is refused.
func (n *nemesis) finalTransfer(x *xfer) *transferView {
	v := n.state(-1, x)
	if v == nil {
		return nil
	}
	x.mu.Lock()
	fin, rev, exp, id := x.finish, x.revoke, x.expiresAt, x.id
	x.mu.Unlock()
	switch {
	case fin == oAcked && v.FinishedAt == nil:
		n.failf("lost", "transfer %s: the finish was acknowledged, but it is not finished (%s)", id, v.State)
	case fin == oNone && v.FinishedAt != nil:
		n.failf("phantom", "transfer %s is finished, but no finish was ever sent", id)
	case rev == oAcked && v.RevokedAt == nil:
		n.failf("lost", "transfer %s: the revoke was acknowledged, but it is not revoked (%s)", id, v.State)
	case rev == oNone && v.RevokedAt != nil:
		n.failf("phantom", "transfer %s is revoked, but no revoke was ever sent", id)
	}
	if v.FinishedAt == nil {
		return v
	}
	now := time.Now()
	live := v.RevokedAt == nil && now.Before(exp.Add(-15*time.Second))
	gone := v.RevokedAt != nil || now.After(exp.Add(time.Second))
	for i, r := range x.recipients {
		link := n.link(x, r)
		if link == "" {
			continue // the mail check reports a missing notification
		}
		switch {
		case live:
			sess, ok := n.unlock(-1, x, link)
			if !ok || sess == "" {
				if ok {
					n.failf("lost", "transfer %s is ready and not expired, but its link for %s is refused", id, r)
				}
				continue
			}
			c, ok := n.contentsOf(-1, x, sess)
			if !ok {
				continue
			}
			if i == 0 {
				// One recipient downloads everything and sees the page;
				// the others' sessions and contents are checked above.
				for _, f := range c.Files {
					n.downloadFile(-1, x, r, sess, f)
				}
				n.page(-1, x, link, c)
			}
		case gone:
			n.probe(-1, x, link)
		}
	}
	return v
}

// checkUnknownTransfers looks at the sender's list for transfers whose
// create answer was lost: nobody holds their token, so they must never
// have become ready.
func (n *nemesis) checkUnknownTransfers() {
	var list struct {
		Transfers []transferView `json:"transfers"`
	}
	r := n.send(-1, "list", nil, n.newReq("GET", "/api/v1/transfers", n.apiKey, nil), nil)
	if !r.ok() || json.Unmarshal(r.body, &list) != nil {
		n.failf("get", "GET /transfers: %s", r.String())
		return
	}
	n.mu.Lock()
	known := map[string]bool{}
	for _, x := range n.xfers {
		known[x.id] = true
	}
	ghosts := n.fig.ghostCreates
	n.mu.Unlock()
	unknown := 0
	for _, v := range list.Transfers {
		if known[v.ID] {
			continue
		}
		unknown++
		if v.FinishedAt != nil || v.State == "ready" || v.State == "revoked" {
			n.failf("phantom", "transfer %s, whose create answer was lost, is %s", v.ID, v.State)
		}
	}
	if unknown > ghosts {
		n.failf("phantom", "%d transfers nobody created (%d create answers were lost)", unknown, ghosts)
	}
	n.t.Logf("%s: %d of %d lost create answers had created a transfer", n.cfg.variant, unknown, ghosts)
}

// waitPurged waits until every expired or revoked transfer is purged and
// checks that its blobs (every version) are gone.
func (n *nemesis) waitPurged(xfers []*xfer, states map[string]*transferView) {
	deadline := time.Now().Add(90 * time.Second)
	var due []*xfer
	for _, x := range xfers {
		v := states[x.id]
		x.mu.Lock()
		exp := x.expiresAt
		x.mu.Unlock()
		if v != nil && (v.RevokedAt != nil || time.Now().After(exp)) {
			due = append(due, x)
		}
	}
	for _, x := range due {
		for {
			v := n.state(-1, x)
			if v == nil {
				break
			}
			if v.State == "purged" {
				n.count(func(f *figures) { f.purged++ })
				if left := n.blobsOf(x.id); len(left) > 0 {
					n.failf("purge", "transfer %s is purged, but %d blobs remain: %v", x.id, len(left), first(left, 3))
				}
				break
			}
			if time.Now().After(deadline) {
				n.failf("purge", "transfer %s (revoked %v, expiry %v) is still %s 90 s into the end phase", x.id, v.RevokedAt, v.ExpiresAt, v.State)
				break
			}
			time.Sleep(500 * time.Millisecond)
		}
	}
	n.t.Logf("%s: %d expired or revoked transfers purged", n.cfg.variant, len(due))
}

// blobsOf lists what is stored under the transfer's prefix: blobs (every
// version on S3) and unfinished uploads.
func (n *nemesis) blobsOf(id string) []string {
	var out []string
	for _, k := range n.blobKeys() {
		if strings.HasPrefix(k, "t/"+id+"/") {
			out = append(out, k)
		}
	}
	if n.mc != nil {
		for _, k := range n.temps() {
			if strings.HasPrefix(k, n.prefix+"/t/"+id+"/") {
				out = append(out, k)
			}
		}
	}
	return out
}

// leaks scans every server log and (local) the data folder for what must
// never be there in plain: file content markers, file names, messages,
// and a sample of passwords, link secrets, upload tokens and access ids.
func (n *nemesis) leaks() {
	n.mu.Lock()
	var secrets []string
	for _, c := range n.canaries {
		if !strings.HasPrefix(c, "nem-") {
			secrets = append(secrets, c)
		}
	}
	n.mu.Unlock()
	sort.Strings(secrets)
	sample := []string{"nem-mk-", "nem-msg-", "nem-fn-"}
	step := max(1, len(secrets)/60)
	for i := 0; i < len(secrets); i += step {
		sample = append(sample, secrets[i])
	}
	assertNotInLogs(n.t, n.servers, sample...)
	if n.mc == nil {
		files, total := assertNotInData(n.t, n.data, sample...)
		n.t.Logf("%s: leak scan: %d files, %s of the data folder, %d server logs, %d needles", n.cfg.variant, files, mb(total), len(n.servers), len(sample))
	}
}

// report logs the run's figures.
func (n *nemesis) report(wall time.Duration) {
	n.mu.Lock()
	defer n.mu.Unlock()
	f := n.fig
	var fails []string
	for k, c := range n.failures {
		fails = append(fails, fmt.Sprintf("%s=%d", k, c))
	}
	sort.Strings(fails)
	msg := fmt.Sprintf(`%s nemesis, seed %d: %d kills in %v (restarts took %v in all)
  transfers %d created (+%d create answers lost), %d finished (+%d whose answer was lost), %d finishes blocked (%d waited for a cut upload to be dropped), %d revoked (+%d unknown), %d purged
  files %d over tus, %d by PUT, %d upload answers lost; %s of files acknowledged, %s of request bodies sent
  %d client cuts, %d PATCHes ended by a newer request, %d resumes, %d offsets checked after interruptions
  downloads %d files + %d ZIPs + %d pages, %s verified byte for byte; %d refusal probes
  verification codes %d (+%d unknown); %d links locked by 10 unlocks in a row cut off before their check
  mail: %d distinct, %d deliveries, %d duplicates (same Message-ID)
  collector: %d distinct orphans and %d temporary writes seen after kills; %d collects checked, %d not (the next kill came first)
  %d integrity checks; %d requests, %d without an answer (in flight at a kill, or cut), %d not sent (server down); %d starts failed and were tried again
  failures: %v`,
		n.cfg.variant, n.cfg.seed, f.kills, wall.Round(time.Second), f.restartTime.Round(time.Millisecond),
		f.transfers, f.ghostCreates, f.finished, f.finishUnknown, f.blocked, f.finishWaited, f.revoked, f.revokeUnknown, f.purged,
		f.filesTus, f.filesPlain, f.filesGhost, mb(f.bytesUp), mb(f.bytesSent),
		f.clientCuts, f.interrupted, f.resumes, f.headChecks,
		f.downloads, f.zips, f.pages, mb(f.bytesDown), f.refusalProbes,
		f.verifies, f.verifyUnknown, f.cutLocks,
		f.mails, f.deliveries, f.duplicates,
		f.orphansSeen, f.tempsSeen, f.collectChecks, f.collectUnchecked,
		f.integrityChecks, f.ops, f.unknownOps, f.unsent, f.failedStarts,
		fails)
	n.t.Log(msg)
	fmt.Fprintln(os.Stderr, msg)
}
