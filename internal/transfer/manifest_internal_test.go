package transfer

import (
	"bytes"
	"context"
	"path/filepath"
	"testing"

	"github.com/kluis-nl/kluis"
	"github.com/kluis-nl/kluis/internal/blob/local"
	"github.com/kluis-nl/kluis/internal/secret"
	"github.com/kluis-nl/kluis/internal/store"
)

// TestManifestOfFileBeingWritten: the collector and Finish read a file's
// row, then its segment entries. A segment committed in between paired the
// older head with the newer entries, and the file looked damaged: the
// collector kept every blob under it as possibly referenced (the SIGKILL
// nemesis saw an orphan survive the collector at start while its client
// resumed that upload), and Finish failed with EINTEGRITY. The file row is
// now read again when the entries do not fit it; damage at an unchanged
// revision still fails (TestSegmentEntryRowsTampered).
func TestManifestOfFileBeingWritten(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	db, err := store.OpenSQLite(ctx, filepath.Join(dir, "kluis.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	blobs, err := local.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := secret.NewKeyring(secret.GenerateMasterKey())
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.PasswordLogN = 10
	svc := New(Deps{DB: db, Blobs: blobs, Keys: keys, Config: cfg})
	c, err := svc.Create(ctx, CreateRequest{
		SenderEmail: "sender@example.nl", To: []string{"to@example.nl"}, Lang: "nl",
		PasswordMode: kluis.PasswordManual, Password: "correct horse battery",
	})
	if err != nil {
		t.Fatal(err)
	}
	o := Owner{TransferID: c.Transfer.ID}
	data := bytes.Repeat([]byte("kluis "), 50_000)
	f, err := svc.NewFile(ctx, o, "a.bin", "", int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.WriteFile(ctx, o, f.ID, 0, bytes.NewReader(data[:100_000])); err != nil {
		t.Fatal(err)
	}
	// What the collector (EachFile) or Finish (Files) read: the row with
	// one segment. Then the client's next request commits a second.
	stale, err := db.File(ctx, f.ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.WriteFile(ctx, o, f.ID, 100_000, bytes.NewReader(data[100_000:200_000])); err != nil {
		t.Fatal(err)
	}
	m, err := svc.manifest(ctx, db.Q, stale)
	if err != nil {
		t.Fatalf("manifest of a file a segment was added to after its row was read: %v", err)
	}
	if len(m.Entries) != 2 || m.Size() != 200_000 {
		t.Fatalf("manifest: %d entries, %d bytes; want 2 entries, 200000 bytes", len(m.Entries), m.Size())
	}
}
