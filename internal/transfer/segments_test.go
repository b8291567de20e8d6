package transfer_test

import (
	"bytes"
	"path/filepath"
	"testing"

	"github.com/kluis-nl/kluis"
	"github.com/kluis-nl/kluis/internal/transfer"
)

// TestSegmentEntryRowsTampered: each manifest entry is its own sealed row
// (migration 0009). Whoever can write the database but has no master key
// cannot drop, swap, move or replay entry rows undetected: the download is
// refused (integrity), never served short or in the wrong order.
func TestSegmentEntryRowsTampered(t *testing.T) {
	t.Parallel()
	const size = 350_000 // four segments of the test config's 100,000
	cases := []struct {
		name string
		sql  []string // $F: the file's id, $O: another file's id
	}{
		{"drop a middle entry", []string{`DELETE FROM segments WHERE file_id = '$F' AND idx = 1`}},
		{"drop the last entry", []string{`DELETE FROM segments WHERE file_id = '$F' AND idx = 3`}},
		{"swap two entries' values", []string{
			`UPDATE segments SET entry_sealed = (SELECT entry_sealed FROM segments WHERE file_id = '$F' AND idx = 2) WHERE file_id = '$F' AND idx = 1`,
		}},
		{"renumber the rows", []string{
			`UPDATE segments SET idx = idx + 100 WHERE file_id = '$F'`,
			`UPDATE segments SET idx = 103 - idx WHERE file_id = '$F'`,
		}},
		{"replay another file's entry", []string{
			`UPDATE segments SET entry_sealed = (SELECT entry_sealed FROM segments WHERE file_id = '$O' AND idx = 1) WHERE file_id = '$F' AND idx = 1`,
		}},
		{"another file's head", []string{
			`UPDATE files SET head_sealed = (SELECT head_sealed FROM files WHERE id = '$O') WHERE id = '$F'`,
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			a := e.readyTransfer(createOpts{}, size)
			b := e.readyTransfer(createOpts{}, size)
			if got, err := e.readFile(a.sess, a.files[0].ID); err != nil || !bytes.Equal(got, a.data[0]) {
				t.Fatalf("before tampering: %v", err)
			}
			db := rawDB(t, filepath.Join(e.dir, "kluis.db"))
			for _, q := range c.sql {
				q = replaceAll(q, "$F", a.files[0].ID, "$O", b.files[0].ID)
				if _, err := db.Exec(q); err != nil {
					t.Fatalf("%s: %v", q, err)
				}
			}
			db.Close()
			got, err := e.readFile(a.sess, a.files[0].ID)
			if err == nil {
				t.Fatalf("tampered entries were served (%d bytes, equal %v)", len(got), bytes.Equal(got, a.data[0]))
			}
			wantCode(t, err, kluis.EINTEGRITY)
			// The other file is untouched.
			if got, err := e.readFile(b.sess, b.files[0].ID); c.name != "another file's head" && (err != nil || !bytes.Equal(got, b.data[0])) {
				t.Fatalf("other file: %v", err)
			}
		})
	}
}

func replaceAll(s string, oldnew ...string) string {
	for i := 0; i+1 < len(oldnew); i += 2 {
		s = string(bytes.ReplaceAll([]byte(s), []byte(oldnew[i]), []byte(oldnew[i+1])))
	}
	return s
}

// TestLegacyManifestFiles: files stored before migration 0009 (one sealed
// manifest per file) are not lost. A complete one downloads as it is; an
// unfinished one reports its offset, resumes (its manifest moves to entry
// rows at the next commit) and downloads whole.
func TestLegacyManifestFiles(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c := e.create(createOpts{})
	o := owner(c)
	done := randomBytes(1, 250_000)
	fDone := e.upload(o, "done.bin", done)
	e.makeLegacy(fDone.ID)

	part := randomBytes(2, 420_000)
	fPart, err := e.svc.NewFile(e.ctx, o, "part.bin", "", int64(len(part)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.WriteFile(e.ctx, o, fPart.ID, 0, bytes.NewReader(part[:230_000])); err != nil {
		t.Fatal(err)
	}
	e.makeLegacy(fPart.ID)
	st, err := e.svc.FileState(e.ctx, o, fPart.ID)
	if err != nil || st.Offset != 230_000 {
		t.Fatalf("legacy file state: %+v %v", st, err)
	}
	if n, err := e.svc.WriteFile(e.ctx, o, fPart.ID, 230_000, bytes.NewReader(part[230_000:])); err != nil || n != int64(len(part)-230_000) {
		t.Fatalf("resume a legacy file: %d %v", n, err)
	}
	db := rawDB(t, filepath.Join(e.dir, "kluis.db"))
	var legacy, rows int
	db.QueryRow(`SELECT count(*) FROM files WHERE id = ? AND manifest_sealed IS NOT NULL`, fPart.ID).Scan(&legacy)
	db.QueryRow(`SELECT count(*) FROM segments WHERE file_id = ?`, fPart.ID).Scan(&rows)
	db.Close()
	if legacy != 0 || rows != 5 {
		t.Errorf("after the resume: legacy manifest %d, entry rows %d; want 0, 5", legacy, rows)
	}
	kf, err := e.svc.CompleteFile(e.ctx, o, fPart.ID)
	if err != nil {
		t.Fatal(err)
	}
	if kf.Size != int64(len(part)) {
		t.Fatalf("completed size %d", kf.Size)
	}
	fin := e.finish(c)
	s := e.unlock(fin.Links[0].AccessID, secretOf(c))
	for _, f := range []struct {
		id   string
		want []byte
	}{{fDone.ID, done}, {fPart.ID, part}} {
		got, err := e.readFile(s, f.id)
		if err != nil || !bytes.Equal(got, f.want) {
			t.Fatalf("file %s: %v (equal %v)", f.id, err, bytes.Equal(got, f.want))
		}
	}
	// The collector keeps the blobs of both forms.
	e.clock.Advance(2 * e.cfg.OrphanGrace)
	if st, err := e.svc.Collect(e.ctx); err != nil || st.Orphans != 0 {
		t.Fatalf("collector: %+v %v", st, err)
	}
}

// TestSegmentCommitIsConstant: a segment commit writes one entry row and
// the file's head, whose size does not grow with the number of segments
// before it (issue 11, item 6: the manifest was resealed whole on every
// commit). BenchmarkPatchCommit in bench/ shows the time per commit.
func TestSegmentCommitIsConstant(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *transfer.Config) { c.SegmentSize = 4096 })
	c := e.create(createOpts{})
	o := owner(c)
	const segs = 300
	data := randomBytes(3, segs*4096)
	f, err := e.svc.NewFile(e.ctx, o, "many.bin", "", int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	db := rawDB(t, filepath.Join(e.dir, "kluis.db"))
	defer db.Close()
	state := func() (head, entries, maxEntry int) {
		t.Helper()
		if err := db.QueryRow(`SELECT length(head_sealed) FROM files WHERE id = ?`, f.ID).Scan(&head); err != nil {
			t.Fatal(err)
		}
		if err := db.QueryRow(`SELECT count(*), coalesce(max(length(entry_sealed)), 0) FROM segments WHERE file_id = ?`, f.ID).Scan(&entries, &maxEntry); err != nil {
			t.Fatal(err)
		}
		return
	}
	write := func(from, to int) {
		t.Helper()
		if _, err := e.svc.WriteFile(e.ctx, o, f.ID, int64(from*4096), bytes.NewReader(data[from*4096:to*4096])); err != nil {
			t.Fatal(err)
		}
	}
	write(0, 2)
	head2, n2, entry2 := state()
	write(2, segs)
	head300, n300, entry300 := state()
	if n2 != 2 || n300 != segs {
		t.Fatalf("entry rows: %d and %d, want 2 and %d", n2, n300, segs)
	}
	// The head and each entry hold counts and offsets in decimal: a few
	// digits more, nothing per segment.
	if head300 > head2+16 || entry300 > entry2+16 {
		t.Errorf("stored per commit grew with the segments: head %d -> %d bytes, entry %d -> %d bytes", head2, head300, entry2, entry300)
	}
	if _, err := e.svc.CompleteFile(e.ctx, o, f.ID); err != nil {
		t.Fatal(err)
	}
}
