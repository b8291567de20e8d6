package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kluis-nl/kluis"
	"github.com/kluis-nl/kluis/internal/secret"
	"github.com/kluis-nl/kluis/internal/store"
	"github.com/kluis-nl/kluis/internal/store/storetest"
)

// openKeysEnginePG is openKeysEngine on PostgreSQL: the metadata in the
// database at dsn, the blobs and the master key in dir, as kluis serve
// --db postgres://... has them.
func openKeysEnginePG(t *testing.T, dir, dsn string) *keysEngine {
	t.Helper()
	db, err := store.OpenPostgres(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	return newKeysEngine(t, db, dir)
}

// keyIDsPG counts the key ids of every master-sealed value in a PostgreSQL
// database, read with a plain connection (no Kluis lock).
func keyIDsPG(t *testing.T, dsn string) map[string]int {
	t.Helper()
	return countKeyIDs(t, "pgx", dsn)
}

// TestAdminPostgres runs every database-using admin command and kluis
// migrate against PostgreSQL (--db, KLUIS_DB and KLUIS_DB_FILE), including
// a master key rotation that is refused while an instance is connected,
// and an identity export whose identity decrypts the stored segments with
// filippo.io/age.
func TestAdminPostgres(t *testing.T) {
	dsn := storetest.Postgres(t)
	ctx := context.Background()
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "master.key")
	// The URL from a file, as a systemd credential would give it.
	dbFile := filepath.Join(t.TempDir(), "db-url")
	if err := os.WriteFile(dbFile, []byte(dsn+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	envFile := func(k string) string {
		if k == "KLUIS_DB_FILE" {
			return dbFile
		}
		return ""
	}
	envURL := func(k string) string {
		if k == "KLUIS_DB" {
			return dsn
		}
		return ""
	}
	var out, errOut bytes.Buffer
	reset := func() { out.Reset(); errOut.Reset() }

	// kluis migrate on an empty database: every migration, listed.
	if err := run(ctx, []string{"migrate", "--db", dsn}, noEnv, &out, &errOut); err != nil {
		t.Fatalf("migrate: %v\n%s", err, errOut.String())
	}
	if !strings.Contains(out.String(), "0001_init") || !strings.Contains(out.String(), "(postgres) is up to date") {
		t.Fatalf("migrate output:\n%s", out.String())
	}
	if strings.Contains(out.String(), "postgres@") {
		t.Fatalf("migrate output shows the database user:\n%s", out.String())
	}

	e := openKeysEnginePG(t, dir, dsn)
	withPw := e.send(t, kluis.PasswordManual, 250_000)
	noPw := e.send(t, kluis.PasswordNone, 1000)

	// API keys, with the URL from KLUIS_DB_FILE, beside the running engine.
	reset()
	if err := run(ctx, []string{"admin", "apikey", "create", "--sender", "script@example.nl"}, envFile, &out, &errOut); err != nil {
		t.Fatalf("apikey create: %v\n%s", err, errOut.String())
	}
	if !strings.HasPrefix(out.String(), "kluis_ak_") {
		t.Fatalf("apikey create printed %q", out.String())
	}
	reset()
	if err := run(ctx, []string{"admin", "apikey", "list"}, envFile, &out, &errOut); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 || !strings.Contains(lines[1], "script@example.nl") {
		t.Fatalf("apikey list:\n%s", out.String())
	}
	keyID := strings.Fields(lines[1])[0]
	reset()
	if err := run(ctx, []string{"admin", "apikey", "revoke", keyID, "--reason", "script retired"}, envURL, &out, &errOut); err != nil {
		t.Fatal(err)
	}
	reset()
	run(ctx, []string{"admin", "apikey", "list", "--db", dsn}, noEnv, &out, &errOut)
	if strings.Contains(out.String(), " - \n") || !strings.Contains(out.String(), keyID) {
		t.Fatalf("revoked key not shown as revoked:\n%s", out.String())
	}
	if err := run(ctx, []string{"admin", "apikey", "list"}, func(k string) string { return envURL(k) + envFile(k) }, &out, &errOut); err == nil {
		t.Fatal("KLUIS_DB and KLUIS_DB_FILE together were accepted")
	}

	// Audit export: the key's creation and revocation, as JSON Lines.
	reset()
	if err := run(ctx, []string{"admin", "audit", "export", "--db", dsn, "--format", "json", "--since", "1h"}, noEnv, &out, &errOut); err != nil {
		t.Fatalf("audit export: %v\n%s", err, errOut.String())
	}
	for _, w := range []string{`"apikey.create"`, `"apikey.revoke"`, keyID} {
		if !strings.Contains(out.String(), w) {
			t.Errorf("audit export lacks %s:\n%s", w, out.String())
		}
	}

	// Identity export from PostgreSQL; the identity opens the segments.
	pwFile := filepath.Join(t.TempDir(), "pw")
	os.WriteFile(pwFile, []byte(withPw.secret+"\n"), 0o600)
	idFile := filepath.Join(t.TempDir(), "identity.txt")
	reset()
	if err := run(ctx, []string{"admin", "export-identity", withPw.id, "--reason", "recovery", "--db", dsn, "--data", dir, "--password-file", pwFile, "-o", idFile}, noEnv, &out, &errOut); err != nil {
		t.Fatalf("export-identity: %v\n%s", err, errOut.String())
	}
	if !bytes.Equal(decryptSegments(t, dir, withPw, idFile), withPw.data) {
		t.Fatal("segments decrypted with the identity exported from PostgreSQL are not the file")
	}

	// Rotation: refused while an instance (the engine) has the database
	// open, naming its session; nothing changes.
	defer func(d time.Duration) { lockWait = d }(lockWait)
	lockWait = 100 * time.Millisecond
	oldID := e.keys.ID()
	rotate := []string{"admin", "rotate-master-key", "--reason", "yearly rotation", "--data", dir, "--db", dsn}
	reset()
	err := run(ctx, rotate, noEnv, &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), "in use") || !strings.Contains(err.Error(), "pid ") {
		t.Fatalf("rotation beside a running instance: %v", err)
	}
	if strings.Contains(err.Error(), "postgres@") {
		t.Fatalf("the refusal shows the database user: %v", err)
	}
	if _, err := os.Stat(keyFile + ".new"); !os.IsNotExist(err) {
		t.Fatal("a refused rotation left master.key.new")
	}
	if ids := keyIDsPG(t, dsn); len(ids) != 1 || ids[oldID] == 0 {
		t.Fatalf("a refused rotation changed the database: %v", ids)
	}
	e.db.Close()

	reset()
	if err := run(ctx, rotate, noEnv, &out, &errOut); err != nil {
		t.Fatalf("rotate: %v\n%s", err, errOut.String())
	}
	t.Logf("stdout:\n%s", out.String())
	newKeys, err := secret.LoadMasterKey(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if newKeys.ID() == oldID {
		t.Fatal("key file still holds the old key")
	}
	if _, err := os.Stat(keyFile + ".old-" + oldID); err != nil {
		t.Fatal(err)
	}
	if ids := keyIDsPG(t, dsn); len(ids) != 1 || ids[newKeys.ID()] == 0 {
		t.Fatalf("key ids after rotation: %v, want only %s", ids, newKeys.ID())
	}
	e2 := openKeysEnginePG(t, dir, dsn)
	e2.download(t, withPw)
	e2.download(t, noPw)
	e2.db.Close()

	// Interrupted after the commit: the database is under master.key.new
	// already; running again swaps the files and leaves the values alone.
	db, err := store.OpenExclusive(ctx, dsn, dir, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	next := interruptRotation(t, db, newKeys, keyFile)
	reset()
	if err := run(ctx, rotate, noEnv, &out, &errOut); err != nil {
		t.Fatalf("rerun: %v\n%s", err, errOut.String())
	}
	if !strings.Contains(errOut.String(), "interrupted rotation") {
		t.Errorf("rerun does not explain:\n%s", errOut.String())
	}
	for _, l := range strings.Split(out.String(), "\n") {
		if f := strings.Fields(l); len(f) == 3 && f[0] == "transfers.identity_sealed" && (f[1] != "0" || f[2] != "2") {
			t.Errorf("rerun re-sealed values already under the new key: %q", l)
		}
	}
	if k, err := secret.LoadMasterKey(keyFile); err != nil || k.ID() != next.ID() {
		t.Fatalf("after the rerun the key file holds %v, %v; want %s", k, err, next.ID())
	}
	openKeysEnginePG(t, dir, dsn).download(t, withPw)
}
