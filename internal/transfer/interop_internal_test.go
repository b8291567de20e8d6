package transfer

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/age"

	"github.com/kluis-nl/kluis"
	"github.com/kluis-nl/kluis/internal/blob/local"
	"github.com/kluis-nl/kluis/internal/secret"
	"github.com/kluis-nl/kluis/internal/store"
)

// interopService is a minimal engine for the tests in this file (and the
// package's other internal tests); deps, if given, adds to what it is built
// from.
func interopService(t *testing.T, deps ...func(*Deps)) (*Service, string) {
	t.Helper()
	dir := t.TempDir()
	ctx := context.Background()
	db, err := store.OpenSQLite(ctx, filepath.Join(dir, "kluis.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	blobs, err := local.New(dir)
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
	d := Deps{DB: db, Blobs: blobs, Keys: keys, Config: cfg}
	for _, f := range deps {
		f(&d)
	}
	return New(d), dir
}

// TestStoredSegmentsAreStandardAge proves there is no lock-in: every stored
// segment is a plain age file that filippo.io/age and the age command-line
// tool decrypt with the transfer's identity, and the segments in manifest
// order are the file.
func TestStoredSegmentsAreStandardAge(t *testing.T) {
	svc, dir := interopService(t)
	ctx := context.Background()
	c, err := svc.Create(ctx, CreateRequest{SenderEmail: "a@example.nl", To: []string{"b@example.nl"}, PasswordMode: kluis.PasswordManual, Password: "correct horse battery"})
	if err != nil {
		t.Fatal(err)
	}
	o := Owner{TransferID: c.Transfer.ID}
	want := make([]byte, 350_001)
	rand.Read(want)
	f, err := svc.NewFile(ctx, o, "data.bin", "", int64(len(want)))
	if err != nil {
		t.Fatal(err)
	}
	// Two requests, so segments come from a resume as well as from the bound.
	if _, err := svc.WriteFile(ctx, o, f.ID, 0, bytes.NewReader(want[:123_457])); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.WriteFile(ctx, o, f.ID, 123_457, bytes.NewReader(want[123_457:])); err != nil {
		t.Fatal(err)
	}
	row, err := svc.db.Transfer(ctx, o.TransferID)
	if err != nil {
		t.Fatal(err)
	}
	id, err := svc.unwrap(row, "correct horse battery")
	if err != nil {
		t.Fatal(err)
	}
	frow, err := svc.db.File(ctx, f.ID)
	if err != nil {
		t.Fatal(err)
	}
	man, err := svc.manifest(ctx, svc.db.Q, frow)
	if err != nil {
		t.Fatal(err)
	}
	if len(man.Entries) < 5 {
		t.Fatalf("got %d segments, want at least 5", len(man.Entries))
	}
	keyFile := filepath.Join(t.TempDir(), "identity.txt")
	if err := os.WriteFile(keyFile, []byte(id.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ageTool := ageCommand(t)
	var lib, tool bytes.Buffer
	for _, e := range man.Entries {
		path := filepath.Join(dir, "blobs", filepath.FromSlash(e.Key))
		ct, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		r, err := age.Decrypt(bytes.NewReader(ct), id)
		if err != nil {
			t.Fatalf("segment %s: age.Decrypt: %v", e.Key, err)
		}
		if _, err := io.Copy(&lib, r); err != nil {
			t.Fatalf("segment %s: %v", e.Key, err)
		}
		if ageTool != nil {
			cmd := exec.Command(ageTool[0], append(ageTool[1:], "-d", "-i", keyFile, path)...)
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("age tool on %s: %v", e.Key, err)
			}
			tool.Write(out)
		}
	}
	if !bytes.Equal(lib.Bytes(), want) {
		t.Fatal("segments decrypted with filippo.io/age do not form the file")
	}
	if ageTool != nil && !bytes.Equal(tool.Bytes(), want) {
		t.Fatal("segments decrypted with the age tool do not form the file")
	}
}

// ageCommand returns how to run the age tool: `go tool age` (pinned in
// go.mod's tool block). In -short mode it is skipped to save the build.
func ageCommand(t *testing.T) []string {
	t.Helper()
	if testing.Short() {
		t.Log("short mode: checking with filippo.io/age only, not the age tool")
		return nil
	}
	bin := filepath.Join(t.TempDir(), "age")
	cmd := exec.Command("go", "build", "-o", bin, "filippo.io/age/cmd/age")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build the age tool: %v\n%s", err, strings.TrimSpace(string(out)))
	}
	return []string{bin}
}
