package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kluis-nl/kluis"
	"github.com/kluis-nl/kluis/internal/blob/local"
	"github.com/kluis-nl/kluis/internal/secret"
	"github.com/kluis-nl/kluis/internal/store"
	"github.com/kluis-nl/kluis/internal/transfer"
)

func noEnv(string) string { return "" }

// TestServeRefusesOtherMasterKey: an instance started with a key the
// database is not sealed under (an old key after a rotation) stops at once
// and says which key the database needs.
func TestServeRefusesOtherMasterKey(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db, err := store.OpenSQLite(ctx, filepath.Join(dir, "kluis.db"))
	if err != nil {
		t.Fatal(err)
	}
	blobs, err := local.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	keys, _, err := secret.LoadOrCreateMasterKey(filepath.Join(dir, "master.key"))
	if err != nil {
		t.Fatal(err)
	}
	svc := transfer.New(transfer.Deps{DB: db, Blobs: blobs, Keys: keys, Config: transfer.DefaultConfig(), Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if _, err := svc.Create(ctx, transfer.CreateRequest{SenderEmail: "a@example.nl", To: []string{"b@example.nl"}, Message: "geheim", PasswordMode: kluis.PasswordNone}); err != nil {
		t.Fatal(err)
	}
	db.Close()
	other := filepath.Join(t.TempDir(), "other.key")
	os.WriteFile(other, []byte(base64.StdEncoding.EncodeToString(secret.GenerateMasterKey())+"\n"), 0o600)
	var out, errOut bytes.Buffer
	err = runServe(ctx, []string{"--addr", "127.0.0.1:0", "--data", dir, "--master-key-file", other}, noEnv, &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), "sealed under master key "+keys.ID()) {
		t.Fatalf("serve with another key: %v", err)
	}
}
