//go:build unix

package local

import (
	"io/fs"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/kluis-nl/kluis/internal/blob/blobtest"
)

func TestModes(t *testing.T) {
	old := syscall.Umask(0) // the modes must not depend on a lax umask
	defer syscall.Umask(old)
	dir := filepath.Join(t.TempDir(), "store")
	s, err := New(dir)
	if err != nil {
		t.Fatal(err)
	}
	blobtest.Put(t, s, "a/b/c", []byte("x"))
	w, err := s.Create(t.Context(), "pending")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort()
	checked := 0
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		want := fs.FileMode(0o600)
		if d.IsDir() {
			want = fs.ModeDir | 0o700
		}
		if fi.Mode() != want {
			t.Errorf("%s: mode %v, want %v", p, fi.Mode(), want)
		}
		checked++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// store, blobs, tmp, a, a/b, a/b/c, one temp file
	if checked != 7 {
		t.Errorf("checked %d entries, want 7", checked)
	}
}
