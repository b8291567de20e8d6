package e2e

// Scale-out: two `kluis serve` processes on different ports share one
// PostgreSQL database, one S3 bucket (versitygw) and one SMTP server
// (Mailpit), as several instances behind a load balancer would.

import (
	"bytes"
	"context"
	"database/sql"
	"net/http"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" driver
	"github.com/minio/minio-go/v7"

	"github.com/kluis-nl/kluis/internal/store/storetest"
)

// cluster is two instances on shared PostgreSQL, S3 and SMTP.
type cluster struct {
	a, b   *server
	mp     *mailpit
	db     *sql.DB // the shared database, for checks
	mc     *minio.Client
	bucket string
	prefix string // object name prefix of this cluster's blobs, without "/"
}

func startCluster(t *testing.T) *cluster {
	t.Helper()
	dsn := storetest.Postgres(t) // a fresh database, dropped at the end
	mc, bucket, prefix, storage := s3Storage(t, "scale-")
	c := &cluster{mc: mc, bucket: bucket, prefix: prefix}
	c.mp = startMailpit(t)
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	c.db = db
	// One master key for both: A creates the file, B reads it.
	keyFile := filepath.Join(t.TempDir(), "master.key")
	args := []string{"--db", dsn, "--storage", storage,
		"--smtp", c.mp.smtpURL(), "--mail-from", "Kluis Test <kluis@example.nl>", "--master-key-file", keyFile}
	// Each instance has its own (empty) data folder: nothing is shared
	// through it.
	c.a = startServer(t, t.TempDir(), args...)
	c.b = startServer(t, t.TempDir(), args...)
	return c
}

// objects lists every object version under prefix/key.
func (c *cluster) objects(t *testing.T, key string) []string {
	t.Helper()
	var out []string
	for o := range c.mc.ListObjects(context.Background(), c.bucket, minio.ListObjectsOptions{Prefix: c.prefix + "/" + key, Recursive: true, WithVersions: true}) {
		if o.Err != nil {
			t.Fatal(o.Err)
		}
		out = append(out, o.Key)
	}
	return out
}

// TestScaleOut runs the three scale-out checks on one cluster, in order:
// resume on the other instance, purge on both at once, SIGKILL of the
// lease holder (last: instance A is gone afterwards).
func TestScaleOut(t *testing.T) {
	t.Parallel()
	start := time.Now()
	c := startCluster(t)
	t.Logf("cluster up in %v: A %s, B %s", time.Since(start).Round(time.Millisecond), c.a.base, c.b.base)

	// A sender verified on B (the code mail leaves through either
	// instance's outbox); the session works on both.
	sender := uniq("sender-") + "@example.nl"
	token := verifySender(t, c.b, c.mp, sender)

	t.Run("ResumeOnOtherInstance", func(t *testing.T) { scaleResume(t, c, sender, token) })
	t.Run("PurgeOnBoth", func(t *testing.T) { scalePurge(t, c, token) })
	t.Run("KillHolder", func(t *testing.T) { scaleKill(t, c, token) })
	for name, srv := range map[string]*server{"A": c.a, "B": c.b} {
		for _, line := range bytes.Split(srv.log(), []byte("\n")) {
			if bytes.Contains(line, []byte(`"level":"ERROR"`)) {
				t.Logf("instance %s logged: %s", name, line)
			}
			if bytes.Contains(line, []byte("shared rate limit failed")) || bytes.Contains(line, []byte("upload lease: renewal failed")) {
				t.Errorf("instance %s: %s", name, line)
			}
		}
	}
	t.Logf("total %v", time.Since(start).Round(time.Millisecond))
}

// scaleResume: a tus upload starts on A and is cut by a TCP reset, B
// answers HEAD with the committed offset and takes the rest, the file
// downloads from A byte for byte, and every mail arrives exactly once.
func scaleResume(t *testing.T, c *cluster, sender, token string) {
	r1, r2 := uniq("r1-")+"@example.nl", uniq("r2-")+"@example.nl"
	cr := createReq(t, c.a, token, map[string]any{
		"to": []string{r1, r2}, "password": password{Mode: "generate"},
		"options": map[string]bool{"confirm": true},
	})
	src := newSource(7001, 40<<20+12345, "")
	tc := newTus(cr.UploadToken, nil)
	loc, st, err := tc.create(c.a.base, src.size, "scale.bin")
	if err != nil || st != http.StatusCreated {
		t.Fatalf("tus create on A: %d %v", st, err)
	}
	// The PATCH to A goes through a proxy that resets the connection
	// after 20 MiB: one 16 MiB segment plus part of the next arrive.
	p := newProxy(t, c.a.addr)
	p.cutAt.Store(20<<20 + 1000)
	cut := newTus(cr.UploadToken, &http.Client{Transport: &http.Transport{DisableKeepAlives: true}})
	r := cut.patch(rebase(loc, p.base()), 0, src.reader(0), src.size)
	if r.err == nil && r.status == http.StatusNoContent {
		t.Fatalf("PATCH through the cutting proxy completed: %+v", r)
	}
	// Resume on B: HEAD waits for A to let go of the upload (it commits
	// what arrived first), then gives the exact offset.
	onB := rebase(loc, c.b.base)
	began := time.Now()
	off, st, err := tc.head(onB)
	if err != nil || st != http.StatusOK {
		t.Fatalf("HEAD on B: %d %v", st, err)
	}
	t.Logf("HEAD on B after the reset: offset %s of %s (proxy forwarded %s), in %v",
		mb(off), mb(src.size), mb(p.lastConn.Load()), time.Since(began).Round(time.Millisecond))
	if off < 16<<20 || off > p.lastConn.Load() {
		t.Fatalf("offset after the cut %d: want at least one 16 MiB segment and at most the %d bytes forwarded", off, p.lastConn.Load())
	}
	r = tc.patch(onB, off, src.reader(off), src.size-off)
	if r.err != nil || r.status != http.StatusNoContent || r.offset != src.size {
		t.Fatalf("PATCH rest on B: %+v", r)
	}
	links := finishLinks(t, c.b, cr)
	if len(links) != 2 {
		t.Fatalf("finish on B: %d links", len(links))
	}
	// Download from A.
	access, _ := splitLink(t, links[0].URL)
	sess := c.a.unlock(t, access, cr.Password)
	c.a.download(t, sess, c.a.contents(t, sess).file(t, "scale.bin"), src)
	// The unlock and the sender verification (rate-limited routes) took
	// tokens from the shared buckets in the database, not per process.
	// The client's bucket is named by a keyed hash: no address is stored.
	var buckets, plain int
	if err := c.db.QueryRow(`SELECT count(*) FROM rate_limits WHERE key = 'global' OR key LIKE 'iph:%'`).Scan(&buckets); err != nil || buckets != 2 {
		t.Errorf("shared rate-limit buckets in the database: %d (%v), want the client's and the global one", buckets, err)
	}
	if err := c.db.QueryRow(`SELECT count(*) FROM rate_limits WHERE key LIKE '%127.0.0.1%'`).Scan(&plain); err != nil || plain != 0 {
		t.Errorf("%d rate-limit rows name the client's address (%v), want none", plain, err)
	}

	// Mail: one notification per recipient, one confirmation, one code;
	// both outboxes run on the shared table.
	c.mp.waitMail(t, 15*time.Second, "two notifications and the confirmation", func(ms []*mpMessage) bool {
		return len(mailsTo(ms, r1)) >= 1 && len(mailsTo(ms, r2)) >= 1 && len(mailsTo(ms, sender)) >= 2
	})
	time.Sleep(2 * time.Second) // room for a duplicate to show
	msgs := c.mp.all(t)
	for _, r := range []string{r1, r2} {
		if n := len(mailsTo(msgs, r)); n != 1 {
			t.Errorf("%d mails to %s, want exactly 1 notification", n, r)
		}
	}
	confirms := 0
	for _, x := range mailsTo(msgs, sender) {
		if isConfirmation(x) {
			confirms++
		}
	}
	if n := len(mailsTo(msgs, sender)); n != 2 || confirms != 1 {
		t.Errorf("%d mails to the sender (%d confirmations), want the code and 1 confirmation", n, confirms)
	}
	ids := map[string]int{}
	for _, x := range msgs {
		ids[x.MessageID]++
	}
	for id, n := range ids {
		if n != 1 {
			t.Errorf("Message-ID %s delivered %d times", id, n)
		}
	}
}

// scalePurge: transfers that expired and transfers revoked on both
// instances at once are purged by both instances' purge rounds racing
// over the same rows: every object version goes, every transfer is purged
// exactly once, and neither log holds an error.
func scalePurge(t *testing.T, c *cluster, token string) {
	logA, logB := len(c.a.log()), len(c.b.log())
	type tr struct {
		cr  *created
		srv *server
	}
	const n = 6
	// The ones to revoke (n/2 and up) are made first; each expiring one
	// gets its expiry when it is created, so a slow machine stretches the
	// run, not the time an upload has before its transfer expires.
	trs := make([]tr, n)
	var expires time.Time
	for _, i := range []int{3, 4, 5, 0, 1, 2} {
		srv := c.a
		if i%2 == 1 {
			srv = c.b
		}
		req := map[string]any{"to": []string{uniq("p-") + "@example.nl"}, "password": password{Mode: "generate"}}
		var exp time.Time
		if i < n/2 {
			exp = time.Now().Add(8 * time.Second).UTC()
			req["expires_at"] = exp.Format(time.RFC3339Nano)
			expires = exp
		}
		cr := createReq(t, srv, token, req)
		newTus(cr.UploadToken, nil).upload(t, srv.base, "p.bin", newSource(uint64(8000+i), 1<<20+int64(i), ""), 600_000)
		finishLinks(t, srv, cr)
		if got := c.objects(t, "t/"+cr.ID+"/"); len(got) == 0 {
			t.Fatalf("transfer %d: no objects after upload", i)
		}
		if !exp.IsZero() && time.Now().After(exp) {
			t.Fatalf("transfer %d: its upload took longer than its 8 s expiry; the test cannot tell expiry from revocation", i)
		}
		trs[i] = tr{cr, srv}
	}
	time.Sleep(time.Until(expires) + 200*time.Millisecond)
	// Revoke the rest at once, on both instances: each revoke wakes its
	// instance's purge, which also finds the expired ones.
	var wg sync.WaitGroup
	for i := n / 2; i < n; i++ {
		srv := c.a
		if i%2 == 0 {
			srv = c.b
		}
		wg.Go(func() {
			if st, code := call(t, "POST", srv.base+"/api/v1/transfers/"+trs[i].cr.ID+"/revoke", trs[i].cr.UploadToken, nil, nil); st != http.StatusOK {
				t.Errorf("revoke %d: %d %s", i, st, code)
			}
		})
	}
	wg.Wait()
	ids := make([]any, n)
	in := make([]string, n)
	for i, x := range trs {
		ids[i], in[i] = x.cr.ID, "$"+strconv.Itoa(i+1)
	}
	deadline := time.Now().Add(40 * time.Second)
	for {
		var purged int
		if err := c.db.QueryRow(`SELECT count(*) FROM transfers WHERE purged_at IS NOT NULL AND id IN (`+strings.Join(in, ",")+`)`, ids...).Scan(&purged); err != nil {
			t.Fatal(err)
		}
		if purged == n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d transfers purged after 40 s", purged, n)
		}
		time.Sleep(200 * time.Millisecond)
	}
	rows, err := c.db.Query(`SELECT object, count(*) FROM audit WHERE action = 'transfer.purge' AND object IN (`+strings.Join(in, ",")+`) GROUP BY object`, ids...)
	if err != nil {
		t.Fatal(err)
	}
	events := map[string]int{}
	for rows.Next() {
		var id string
		var k int
		if err := rows.Scan(&id, &k); err != nil {
			t.Fatal(err)
		}
		events[id] = k
	}
	rows.Close()
	for _, x := range trs {
		if events[x.cr.ID] != 1 {
			t.Errorf("transfer %s: %d purge audit events, want exactly 1", x.cr.ID, events[x.cr.ID])
		}
		if left := c.objects(t, "t/"+x.cr.ID+"/"); len(left) != 0 {
			t.Errorf("transfer %s: %d object versions left after the purge: %v", x.cr.ID, len(left), left)
		}
	}
	// Who purged what (both rounds ran; which one wins a row is chance).
	count := func(log []byte) int { return bytes.Count(log, []byte(`"msg":"transfer purged"`)) }
	newA, newB := c.a.log()[logA:], c.b.log()[logB:]
	t.Logf("purged by A: %d, by B: %d (of %d)", count(newA), count(newB), n)
	if count(newA)+count(newB) != n {
		t.Errorf("the logs report %d purges, want %d", count(newA)+count(newB), n)
	}
	for name, l := range map[string][]byte{"A": newA, "B": newB} {
		for _, line := range bytes.Split(l, []byte("\n")) {
			if bytes.Contains(line, []byte(`"level":"ERROR"`)) {
				t.Errorf("instance %s logged an error during the purge: %s", name, line)
			}
		}
	}
}

// scaleKill: A is killed with SIGKILL in the middle of a tus PATCH, while
// it holds the upload's lease. The client resumes on B as soon as the
// lease expires (measured), at exactly the end of the last committed
// segment; A's lease token is dead, the final object set and bytes are
// exact.
func scaleKill(t *testing.T, c *cluster, token string) {
	cr := createReq(t, c.b, token, map[string]any{"to": []string{uniq("k-") + "@example.nl"}, "password": password{Mode: "generate"}})
	src := newSource(9001, 36<<20+777, "")
	tc := newTus(cr.UploadToken, nil)
	loc, st, err := tc.create(c.a.base, src.size, "kill.bin")
	if err != nil || st != http.StatusCreated {
		t.Fatalf("tus create on A: %d %v", st, err)
	}
	fileID := path.Base(loc)
	// 20 MiB go to A, then the body trickles: one 16 MiB segment is
	// committed, the next one is open.
	g := newGate(src.reader(0), 20<<20)
	defer close(g.stop)
	patched := make(chan patchResult, 1)
	go func() {
		patched <- newTus(cr.UploadToken, &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}).patch(loc, 0, g, src.size)
	}()
	select {
	case <-g.paused:
	case r := <-patched:
		t.Fatalf("PATCH ended early: %+v", r)
	case <-time.After(30 * time.Second):
		t.Fatal("the first 20 MiB did not reach A in 30 s")
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		var rev int64
		if err := c.db.QueryRow(`SELECT rev FROM files WHERE id = $1`, fileID).Scan(&rev); err != nil {
			t.Fatal(err)
		}
		if rev >= 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the first segment was not committed in 15 s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	var holder, staleToken string
	var exp int64
	if err := c.db.QueryRow(`SELECT holder, token, expires_at FROM upload_leases WHERE file_id = $1`, fileID).Scan(&holder, &staleToken, &exp); err != nil {
		t.Fatalf("A's lease row: %v", err)
	}
	if !strings.Contains(holder, "/"+strconv.Itoa(c.a.cmd.Process.Pid)+"/") {
		t.Fatalf("lease holder %q is not A (pid %d)", holder, c.a.cmd.Process.Pid)
	}
	c.a.kill9(t)
	killed := time.Now()
	t.Logf("A killed; its lease had %v left", time.UnixMilli(exp).Sub(killed).Round(time.Millisecond))
	<-patched

	// Resume on B: HEAD waits until A's lease expires, then answers.
	onB := rebase(loc, c.b.base)
	off, st, err := tc.head(onB)
	resumed := time.Since(killed)
	if err != nil || st != http.StatusOK {
		t.Fatalf("HEAD on B after the kill: %d %v", st, err)
	}
	t.Logf("resumed on B %v after SIGKILL, at offset %s", resumed.Round(time.Millisecond), mb(off))
	if resumed > 15*time.Second {
		t.Errorf("resuming took %v, want within one lease (10 s) plus a little", resumed)
	}
	if off != 16<<20 {
		t.Fatalf("offset after the kill %d, want exactly the committed segment %d", off, 16<<20)
	}
	// The killed instance's lease is gone for good: its token is in no row,
	// so no commit fenced by it can pass (TestUploadLeaseFencing and the
	// store's LeaseFencing test show the commit refused).
	var k int
	if err := c.db.QueryRow(`SELECT count(*) FROM upload_leases WHERE token = $1`, staleToken).Scan(&k); err != nil || k != 0 {
		t.Fatalf("A's lease token still in %d rows (%v)", k, err)
	}
	r := tc.patch(onB, off, src.reader(off), src.size-off)
	if r.err != nil || r.status != http.StatusNoContent || r.offset != src.size {
		t.Fatalf("PATCH rest on B: %+v", r)
	}
	links := finishLinks(t, c.b, cr)
	access, _ := splitLink(t, links[0].URL)
	sess := c.b.unlock(t, access, cr.Password)
	c.b.download(t, sess, c.b.contents(t, sess).file(t, "kill.bin"), src)
	// Exactly the committed segments exist: A's one, B's two (16 MiB and
	// the rest); A's open segment never became an object.
	objs := c.objects(t, "t/"+cr.ID+"/"+fileID+"/")
	if len(objs) != 3 {
		t.Errorf("%d objects for the file, want 3 segments: %v", len(objs), objs)
	}
	open := 0
	for u := range c.mc.ListIncompleteUploads(context.Background(), c.bucket, c.prefix+"/t/"+cr.ID+"/", true) {
		if u.Err == nil {
			open++
		}
	}
	t.Logf("unfinished multipart uploads left by A for the collector: %d", open)
}
