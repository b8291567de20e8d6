package transfer_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kluis-nl/kluis/internal/secret"
	"github.com/kluis-nl/kluis/internal/segment"
)

func flipByte(t *testing.T, path string, at func(size int) int) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[at(len(b))] ^= 0x01
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestTamperedSegments is security.md item 6 at the engine: a segment blob
// that is flipped, truncated, padded, swapped, replayed or gone makes the
// read fail with segment.ErrIntegrity; no tampered byte comes out.
func TestTamperedSegments(t *testing.T) {
	t.Parallel()
	const size = 350_000 // segments of 100,000, 100,000, 100,000, 50,000
	cases := []struct {
		name   string
		tamper func(t *testing.T, e *env, a, b []string, other string)
	}{
		{"flip payload byte", func(t *testing.T, e *env, a, b []string, _ string) {
			flipByte(t, a[1], func(n int) int { return n / 2 })
		}},
		{"flip header byte", func(t *testing.T, e *env, a, b []string, _ string) {
			flipByte(t, a[0], func(int) int { return 40 })
		}},
		{"flip payload nonce", func(t *testing.T, e *env, a, b []string, _ string) {
			hdr, _ := os.ReadFile(a[2])
			end := bytes.Index(hdr, []byte("\n---"))
			nl := bytes.IndexByte(hdr[end+1:], '\n')
			flipByte(t, a[2], func(int) int { return end + 1 + nl + 1 + 3 })
		}},
		{"flip last tag byte", func(t *testing.T, e *env, a, b []string, _ string) {
			flipByte(t, a[3], func(n int) int { return n - 1 })
		}},
		{"truncate by one byte", func(t *testing.T, e *env, a, b []string, _ string) {
			fi, _ := os.Stat(a[2])
			if err := os.Truncate(a[2], fi.Size()-1); err != nil {
				t.Fatal(err)
			}
		}},
		{"truncate to a chunk edge", func(t *testing.T, e *env, a, b []string, _ string) {
			hdr, _ := os.ReadFile(a[1])
			end := bytes.Index(hdr, []byte("\n---"))
			nl := bytes.IndexByte(hdr[end+1:], '\n')
			payload := end + 1 + nl + 1 + 16
			if err := os.Truncate(a[1], int64(payload+64<<10+16)); err != nil {
				t.Fatal(err)
			}
		}},
		{"pad with a byte", func(t *testing.T, e *env, a, b []string, _ string) {
			f, err := os.OpenFile(a[3], os.O_APPEND|os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			f.Write([]byte{0})
			f.Close()
		}},
		{"swap two segments", func(t *testing.T, e *env, a, b []string, _ string) {
			tmp := a[0] + ".swap"
			for _, mv := range [][2]string{{a[0], tmp}, {a[1], a[0]}, {tmp, a[1]}} {
				if err := os.Rename(mv[0], mv[1]); err != nil {
					t.Fatal(err)
				}
			}
		}},
		{"replay a segment of another file with the same content", func(t *testing.T, e *env, a, b []string, _ string) {
			seg, err := os.ReadFile(b[1])
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(a[1], seg, 0o600); err != nil {
				t.Fatal(err)
			}
		}},
		{"replay a segment of another transfer", func(t *testing.T, e *env, a, b []string, other string) {
			seg, err := os.ReadFile(other)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(a[0], seg, 0o600); err != nil {
				t.Fatal(err)
			}
		}},
		{"segment removed", func(t *testing.T, e *env, a, b []string, _ string) {
			if err := os.Remove(a[2]); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			content := randomBytes(1, size)
			c := e.create(createOpts{})
			fa := e.upload(owner(c), "a.bin", content)
			fb := e.upload(owner(c), "b.bin", content) // same plaintext, own segments
			fin := e.finish(c)
			s := e.unlock(fin.Links[0].AccessID, c.Password)
			o := e.readyTransfer(createOpts{}, size)
			a := e.segmentPaths(c.Transfer.ID, fa.ID)
			b := e.segmentPaths(c.Transfer.ID, fb.ID)
			other := e.segmentPaths(o.c.Transfer.ID, o.files[0].ID)[0]
			if len(a) != 4 || len(b) != 4 {
				t.Fatalf("want 4 segments per file, got %d and %d", len(a), len(b))
			}
			if got, err := e.readFile(s, fa.ID); err != nil || !bytes.Equal(got, content) {
				t.Fatalf("control read before tampering: %v", err)
			}

			tc.tamper(t, e, a, b, other)

			got, err := e.readFile(s, fa.ID)
			if !errors.Is(err, segment.ErrIntegrity) {
				t.Fatalf("read of the tampered file: err = %v (%d bytes), want segment.ErrIntegrity", err, len(got))
			}
			if len(got) > 0 && !bytes.Equal(got, content[:len(got)]) {
				t.Fatal("the bytes released before the error are not the original ones")
			}
			// A fresh session, too (no cached segment).
			s2 := e.unlock(fin.Links[0].AccessID, c.Password)
			if _, err := e.readFile(s2, fa.ID); !errors.Is(err, segment.ErrIntegrity) {
				t.Fatalf("second read: err = %v, want segment.ErrIntegrity", err)
			}
			// The other file is untouched unless this case changed it.
			if !strings.Contains(tc.name, "swap") {
				if got, err := e.readFile(s2, fb.ID); err != nil || !bytes.Equal(got, content) {
					t.Errorf("the untouched file no longer reads: %v", err)
				}
			}
		})
	}
}

// TestCollectorRemovesOrphans: blobs that no manifest lists and old
// temporary files go; everything listed, and fresh leftovers, stay.
func TestCollectorRemovesOrphans(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	live := e.readyTransfer(createOpts{}, 250_000)
	// An upload in progress: its committed segments are listed.
	up := e.create(createOpts{})
	part := randomBytes(3, 180_000)
	f, err := e.svc.NewFile(e.ctx, owner(up), "half.bin", "", int64(len(part)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.WriteFile(e.ctx, owner(up), f.ID, 0, bytes.NewReader(part[:120_000])); err != nil {
		t.Fatal(err)
	}

	liveBlobs := append(e.segmentPaths(live.c.Transfer.ID, live.files[0].ID), e.segmentPaths(up.Transfer.ID, f.ID)...)
	old := e.clock.Now().Add(-2 * e.cfg.OrphanGrace)
	putBlob := func(key string, mtime time.Time) string {
		t.Helper()
		w, err := e.blobs.Create(e.ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte("orphan"))
		if err := w.Commit(); err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(e.dir, "blobs", filepath.FromSlash(key))
		if err := os.Chtimes(p, mtime, mtime); err != nil {
			t.Fatal(err)
		}
		return p
	}
	deadInLive := putBlob("t/"+live.c.Transfer.ID+"/"+live.files[0].ID+"/999999-dead", old)
	deadInUpload := putBlob("t/"+up.Transfer.ID+"/"+f.ID+"/000099-dead", old)
	deadNoRow := putBlob("t/"+secret.NewID()+"/"+secret.NewID()+"/000000-beef", old)
	fresh := putBlob("t/"+live.c.Transfer.ID+"/"+live.files[0].ID+"/888888-fresh", e.clock.Now())
	oldTmp := filepath.Join(e.dir, "tmp", "0123456789abcdef.tmp")
	freshTmp := filepath.Join(e.dir, "tmp", "fedcba9876543210.tmp")
	for _, p := range []string{oldTmp, freshTmp} {
		if err := os.WriteFile(p, []byte("half a segment"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	veryOld := e.clock.Now().Add(-2 * e.cfg.TempMaxAge)
	os.Chtimes(oldTmp, veryOld, veryOld)

	st, err := e.svc.Collect(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Temp != 1 || st.Orphans != 3 {
		t.Errorf("collect removed %+v, want 1 temp and 3 orphans", st)
	}
	for _, p := range []string{deadInLive, deadInUpload, deadNoRow, oldTmp} {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s survived the collector", p)
		}
	}
	for _, p := range append([]string{fresh, freshTmp}, liveBlobs...) {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%s was removed: %v", p, err)
		}
	}
	if got, err := e.readFile(live.sess, live.files[0].ID); err != nil || !bytes.Equal(got, live.data[0]) {
		t.Errorf("live transfer after collect: %v", err)
	}
	// The upload in progress resumes and completes.
	if _, err := e.svc.WriteFile(e.ctx, owner(up), f.ID, 120_000, bytes.NewReader(part[120_000:])); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.CompleteFile(e.ctx, owner(up), f.ID); err != nil {
		t.Fatal(err)
	}
	// Past the grace, the fresh orphan goes as well; listed blobs never do.
	e.clock.Advance(2 * e.cfg.OrphanGrace)
	st, err = e.svc.Collect(e.ctx)
	if err != nil || st.Orphans != 1 {
		t.Errorf("second collect: %+v %v, want 1 orphan", st, err)
	}
	for _, p := range liveBlobs {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%s was removed: %v", p, err)
		}
	}
}
