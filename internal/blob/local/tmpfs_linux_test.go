package local

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/kluis-nl/kluis/internal/blob"
	"github.com/kluis-nl/kluis/internal/blob/blobtest"
)

// TestRealFullDisk fills a real (tmpfs) file system, because an injected
// error cannot show that the space is actually given back (item 28).
func TestRealFullDisk(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a 20 MiB tmpfs; the injected ENOSPC tests still ran")
	}
	mnt := filepath.Join(t.TempDir(), "mnt")
	if err := os.Mkdir(mnt, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", mnt, "tmpfs", 0, "size=20m,mode=0700"); err != nil {
		t.Skipf("cannot mount a tmpfs (%v); the injected ENOSPC tests still ran", err)
	}
	// Registered after t.TempDir, so it runs before the folder is removed.
	t.Cleanup(func() {
		if err := syscall.Unmount(mnt, 0); err != nil {
			t.Errorf("unmount %s: %v", mnt, err)
		}
	})

	s, err := New(mnt)
	if err != nil {
		t.Fatal(err)
	}
	w, err := s.Create(t.Context(), "big/blob")
	if err != nil {
		t.Fatal(err)
	}
	piece := blobtest.Pattern(1, 1<<20)
	written := 0
	for range 30 {
		var n int
		n, err = w.Write(piece)
		written += n
		if err != nil {
			break
		}
	}
	if err == nil {
		err = w.Commit()
	}
	if !errors.Is(err, blob.ErrNoSpace) {
		t.Fatalf("30 MiB into 20 MiB: %v after %d bytes, want blob.ErrNoSpace", err, written)
	}
	t.Logf("full after %d bytes: %v", written, err)
	if got := files(t, mnt); len(got) != 0 {
		t.Fatalf("tmpfs holds %v after ErrNoSpace", got)
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(mnt, &st); err == nil && st.Bfree < st.Blocks*9/10 {
		t.Errorf("space not given back: %d of %d blocks free", st.Bfree, st.Blocks)
	}

	// The space is back: a normal upload works again.
	blobtest.Put(t, s, "small/blob", piece)
	if got := blobtest.Get(t, s, "small/blob"); len(got) != len(piece) {
		t.Fatalf("read back %d bytes, want %d", len(got), len(piece))
	}
}
