package transfer

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/kluis-nl/kluis"
	"github.com/kluis-nl/kluis/internal/blob/local"
	"github.com/kluis-nl/kluis/internal/secret"
	"github.com/kluis-nl/kluis/internal/store"
)

// fullDisk fails every write with ENOSPC once the budget is spent, as a
// full file system does, until it is refilled.
type fullDisk struct {
	budget atomic.Int64
}

type fullDiskFile struct {
	local.TempFile
	d *fullDisk
}

func (f fullDiskFile) Write(p []byte) (int, error) {
	if f.d.budget.Add(-int64(len(p))) < 0 {
		return 0, &os.PathError{Op: "write", Path: "tmp", Err: syscall.ENOSPC}
	}
	return f.TempFile.Write(p)
}

// TestFullDiskFailsCleanly: a full disk fails the upload with a clear error
// (code insufficient_storage), keeps every segment committed before it,
// leaves no temporary file, and the upload resumes once there is space.
func TestFullDiskFailsCleanly(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	db, err := store.OpenSQLite(ctx, filepath.Join(dir, "kluis.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	disk := &fullDisk{}
	disk.budget.Store(250_000)
	blobs, err := local.NewWithOptions(dir, local.Options{WrapTemp: func(f local.TempFile) local.TempFile {
		return fullDiskFile{TempFile: f, d: disk}
	}})
	if err != nil {
		t.Fatal(err)
	}
	keys, _, err := secret.LoadOrCreateMasterKey(filepath.Join(dir, "master.key"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.PasswordLogN = 10
	cfg.SegmentSize = 100_000
	svc := New(Deps{DB: db, Blobs: blobs, Keys: keys, Config: cfg})

	c, err := svc.Create(ctx, CreateRequest{SenderEmail: "a@example.nl", To: []string{"b@example.nl"}, PasswordMode: kluis.PasswordManual, Password: "correct horse battery"})
	if err != nil {
		t.Fatal(err)
	}
	o := Owner{TransferID: c.Transfer.ID}
	data := make([]byte, 600_000)
	rand.Read(data)
	f, err := svc.NewFile(ctx, o, "big.bin", "", int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	n, err := svc.WriteFile(ctx, o, f.ID, 0, bytes.NewReader(data))
	if got, want := kluis.ErrorCode(err), kluis.ENOSPACE; got != want {
		t.Fatalf("error code = %q (%v), want %q", got, err, want)
	}
	if n != 200_000 {
		t.Fatalf("committed %d bytes before the disk filled, want the two whole segments (200000)", n)
	}
	st, err := svc.FileState(ctx, o, f.ID)
	if err != nil {
		t.Fatal(err)
	}
	if st.Offset != n {
		t.Fatalf("stored offset %d, want %d", st.Offset, n)
	}
	tmps, _ := filepath.Glob(filepath.Join(dir, "tmp", "*"))
	if len(tmps) != 0 {
		t.Fatalf("temporary files left behind: %v", tmps)
	}

	disk.budget.Store(1 << 40)
	if _, err := svc.WriteFile(ctx, o, f.ID, n, bytes.NewReader(data[n:])); err != nil {
		t.Fatal(err)
	}
	done, err := svc.CompleteFile(ctx, o, f.ID)
	if err != nil {
		t.Fatal(err)
	}
	if done.Size != int64(len(data)) {
		t.Fatalf("size %d, want %d", done.Size, len(data))
	}
	fin, err := svc.Finish(ctx, o, "")
	if err != nil {
		t.Fatal(err)
	}
	sess, err := svc.Unlock(ctx, fin.Links[0].AccessID, "correct horse battery")
	if err != nil {
		t.Fatal(err)
	}
	kf, fr, err := svc.OpenFile(ctx, sess, f.ID)
	if err != nil {
		t.Fatal(err)
	}
	defer fr.Close()
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(fr, 0, kf.Size)); err != nil {
		t.Fatal(err)
	}
	want := sha256.Sum256(data)
	if got := hex.EncodeToString(h.Sum(nil)); got != hex.EncodeToString(want[:]) || kf.SHA256 != got {
		t.Fatalf("download hash %s, stored %s, want %x", got, kf.SHA256, want)
	}
}
