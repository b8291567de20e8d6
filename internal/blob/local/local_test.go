package local

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/kluis-nl/kluis/internal/blob"
	"github.com/kluis-nl/kluis/internal/blob/blobtest"
)

func newStore(t *testing.T) *Store {
	t.Helper()
	s, err := New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestConformance(t *testing.T) {
	blobtest.Run(t, func(t *testing.T) blob.Store { return newStore(t) })
}

// files returns every regular file below root, relative to it.
func files(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			rel, _ := filepath.Rel(root, p)
			out = append(out, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestCommitLeavesNoTemp(t *testing.T) {
	dir := t.TempDir()
	s, err := New(dir)
	if err != nil {
		t.Fatal(err)
	}
	blobtest.Put(t, s, "t/1", blobtest.Pattern(1, 100_000))
	blobtest.Put(t, s, "t/2", nil)
	w, _ := s.Create(t.Context(), "t/3")
	w.Write([]byte("x"))
	w.Abort()
	if got := files(t, filepath.Join(dir, "tmp")); len(got) != 0 {
		t.Fatalf("tmp holds %v", got)
	}
	if got := files(t, filepath.Join(dir, "blobs")); len(got) != 2 {
		t.Fatalf("blobs holds %v, want t/1 and t/2", got)
	}
}

// failing is a TempFile that reports err once more than limit bytes were
// written, and from Sync when syncErr is set: a full disk, on demand.
type failing struct {
	TempFile
	limit   int
	err     error
	syncErr error
}

func (f *failing) Write(p []byte) (int, error) {
	if len(p) <= f.limit {
		f.limit -= len(p)
		return f.TempFile.Write(p)
	}
	n, err := f.TempFile.Write(p[:f.limit])
	f.limit = 0
	if err != nil {
		return n, err
	}
	return n, &fs.PathError{Op: "write", Path: "injected", Err: f.err}
}

func (f *failing) Sync() error {
	if f.syncErr != nil {
		return &fs.PathError{Op: "sync", Path: "injected", Err: f.syncErr}
	}
	return f.TempFile.Sync()
}

func TestInjectedNoSpace(t *testing.T) {
	for _, tc := range []struct {
		name    string
		limit   int
		err     error
		syncErr error
	}{
		{"WriteENOSPC", 1 << 20, syscall.ENOSPC, nil},
		{"WriteEDQUOT", 1 << 20, syscall.EDQUOT, nil},
		{"FirstWrite", 0, syscall.ENOSPC, nil},
		{"CommitFsync", 1 << 30, nil, syscall.ENOSPC},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s, err := NewWithOptions(dir, Options{WrapTemp: func(f TempFile) TempFile {
				return &failing{TempFile: f, limit: tc.limit, err: tc.err, syncErr: tc.syncErr}
			}})
			if err != nil {
				t.Fatal(err)
			}
			w, err := s.Create(t.Context(), "full/x")
			if err != nil {
				t.Fatal(err)
			}
			piece := make([]byte, 256<<10)
			for range 8 { // 2 MiB
				if _, err = w.Write(piece); err != nil {
					break
				}
			}
			if err == nil {
				err = w.Commit()
			}
			if !errors.Is(err, blob.ErrNoSpace) {
				t.Fatalf("got %v, want blob.ErrNoSpace", err)
			}
			if want := tc.err; want != nil && !errors.Is(err, want) {
				t.Errorf("%v does not wrap %v", err, want)
			}
			if got := files(t, filepath.Join(dir, "tmp")); len(got) != 0 {
				t.Errorf("temp files left behind: %v", got)
			}
			if got := files(t, filepath.Join(dir, "blobs")); len(got) != 0 {
				t.Errorf("blobs left behind: %v", got)
			}
			if _, err := w.Write(piece); err == nil {
				t.Error("Write after ErrNoSpace succeeded")
			}
			if err := w.Commit(); err == nil {
				t.Error("Commit after ErrNoSpace succeeded")
			}
			if err := w.Abort(); err != nil {
				t.Errorf("Abort after ErrNoSpace: %v", err)
			}
			if _, err := s.Open(t.Context(), "full/x"); !errors.Is(err, blob.ErrNotFound) {
				t.Errorf("Open: %v, want ErrNotFound", err)
			}
		})
	}
}

func TestOtherWriteErrorCleansUp(t *testing.T) {
	dir := t.TempDir()
	s, err := NewWithOptions(dir, Options{WrapTemp: func(f TempFile) TempFile {
		return &failing{TempFile: f, limit: 10, err: syscall.EIO}
	}})
	if err != nil {
		t.Fatal(err)
	}
	w, _ := s.Create(t.Context(), "x")
	_, err = w.Write(make([]byte, 100))
	if err == nil || errors.Is(err, blob.ErrNoSpace) || !errors.Is(err, syscall.EIO) {
		t.Fatalf("got %v, want EIO and not ErrNoSpace", err)
	}
	if got := files(t, dir); len(got) != 0 {
		t.Fatalf("left behind: %v", got)
	}
}

// TestKeysStayInside checks that a bad key is refused before anything is
// touched, so "../" and NUL can never reach the file system (item 9).
func TestKeysStayInside(t *testing.T) {
	root := t.TempDir()
	outside := filepath.Join(root, "outside")
	if err := os.WriteFile(outside, []byte("precious"), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := New(filepath.Join(root, "store"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	bad := append([]string{
		"../outside", "../../outside", "blobs/../../outside", "../tmp/x",
	}, blobtest.InvalidKeys...)
	for _, key := range bad {
		if w, err := s.Create(ctx, key); err == nil {
			w.Abort()
			t.Errorf("Create(%q) succeeded", key)
		}
		if r, err := s.Open(ctx, key); err == nil {
			r.Close()
			t.Errorf("Open(%q) succeeded", key)
		}
		if err := s.Delete(ctx, key); err == nil {
			t.Errorf("Delete(%q) succeeded", key)
		}
	}
	if got := files(t, filepath.Join(root, "store")); len(got) != 0 {
		t.Errorf("store holds %v after refused keys", got)
	}
	if b, err := os.ReadFile(outside); err != nil || string(b) != "precious" {
		t.Errorf("file outside the store: %q, %v", b, err)
	}
	entries, _ := os.ReadDir(root)
	if len(entries) != 2 {
		t.Errorf("root holds %d entries, want outside and store", len(entries))
	}
}

func TestCollectTempCounts(t *testing.T) {
	dir := t.TempDir()
	s, err := New(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	old, _ := s.Create(ctx, "old")
	old.Write([]byte("stalled"))
	young, _ := s.Create(ctx, "young")
	young.Write([]byte("busy"))
	defer young.Abort()
	// Make "old" look stalled for a day; "young" was just written to.
	tmps := files(t, filepath.Join(dir, "tmp"))
	if len(tmps) != 2 {
		t.Fatalf("tmp holds %v, want 2 files", tmps)
	}
	day := time.Now().Add(-24 * time.Hour)
	oldTmp := filepath.Join(dir, "tmp", filepath.Base(old.(*writer).name))
	if err := os.Chtimes(oldTmp, day, day); err != nil {
		t.Fatal(err)
	}
	// Not ours: CollectTemp leaves it alone.
	stray := filepath.Join(dir, "tmp", "README")
	os.WriteFile(stray, nil, 0o600)
	os.Chtimes(stray, day, day)

	n, err := s.CollectTemp(ctx, time.Now().Add(-time.Hour))
	if err != nil || n != 1 {
		t.Fatalf("CollectTemp = %d, %v; want 1, nil", n, err)
	}
	if err := old.Commit(); err == nil {
		t.Fatal("Commit of a collected write succeeded")
	}
	if _, err := s.Open(ctx, "old"); !errors.Is(err, blob.ErrNotFound) {
		t.Fatalf("Open(old): %v", err)
	}
	if _, err := os.Stat(stray); err != nil {
		t.Fatalf("stray file: %v", err)
	}
	if err := young.Commit(); err != nil {
		t.Fatal(err)
	}
}

func TestDeleteRemovesEmptyFolders(t *testing.T) {
	dir := t.TempDir()
	s, err := New(dir)
	if err != nil {
		t.Fatal(err)
	}
	blobtest.Put(t, s, "a/b/c/d", []byte("x"))
	blobtest.Put(t, s, "a/e", []byte("y"))
	if err := s.Delete(t.Context(), "a/b/c/d"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "blobs", "a", "b")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a/b still there: %v", err)
	}
	if err := s.Delete(t.Context(), "a/e"); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(filepath.Join(dir, "blobs"))
	if err != nil || len(entries) != 0 {
		t.Fatalf("blobs holds %v, %v; want nothing", entries, err)
	}
}

// A key and a longer key below it cannot both exist in a folder. Kluis's
// keys never collide that way; make sure such a collision fails cleanly.
func TestKeyPrefixCollision(t *testing.T) {
	dir := t.TempDir()
	s, err := New(dir)
	if err != nil {
		t.Fatal(err)
	}
	blobtest.Put(t, s, "a", []byte("file"))
	w, _ := s.Create(t.Context(), "a/b")
	w.Write([]byte("x"))
	if err := w.Commit(); err == nil {
		t.Fatal("Commit of a/b under blob a succeeded")
	}
	if _, err := s.Open(t.Context(), "a/b"); !errors.Is(err, blob.ErrNotFound) {
		t.Fatalf("Open(a/b): %v", err)
	}
	if err := s.Delete(t.Context(), "a/b"); err != nil {
		t.Fatalf("Delete(a/b): %v", err)
	}
	if got := files(t, filepath.Join(dir, "tmp")); len(got) != 0 {
		t.Fatalf("tmp holds %v", got)
	}
	if got := blobtest.Get(t, s, "a"); !bytes.Equal(got, []byte("file")) {
		t.Fatalf("got %q", got)
	}
}

// linkRename is the fallback where RENAME_NOREPLACE is missing; this file
// system most likely has it, so test the fallback on its own.
func TestLinkRename(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	os.WriteFile(a, []byte("new"), 0o600)
	os.WriteFile(b, []byte("old"), 0o600)
	if err := linkRename(a, b); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("onto an existing file: %v, want fs.ErrExist", err)
	}
	if got, _ := os.ReadFile(b); string(got) != "old" {
		t.Fatalf("target overwritten: %q", got)
	}
	os.Remove(b)
	if err := linkRename(a, b); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(a); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("source still there: %v", err)
	}
	if got, _ := os.ReadFile(b); string(got) != "new" {
		t.Fatalf("got %q", got)
	}
}
