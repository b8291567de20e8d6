package cli

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/kluis-nl/kluis"
	"github.com/kluis-nl/kluis/internal/blob/local"
	"github.com/kluis-nl/kluis/internal/secret"
	"github.com/kluis-nl/kluis/internal/store"
	"github.com/kluis-nl/kluis/internal/transfer"
)

// keysEngine is a transfer engine on a data folder, as kluis serve has it.
type keysEngine struct {
	db   *store.DB
	svc  *transfer.Service
	keys *secret.Keyring
}

func openKeysEngine(t *testing.T, dir string) *keysEngine {
	t.Helper()
	db, err := store.OpenSQLite(context.Background(), filepath.Join(dir, "kluis.db"))
	if err != nil {
		t.Fatal(err)
	}
	return newKeysEngine(t, db, dir)
}

// newKeysEngine is the engine on db, with the blobs and the master key in
// dir; it closes db at the end of the test.
func newKeysEngine(t *testing.T, db *store.DB, dir string) *keysEngine {
	t.Helper()
	t.Cleanup(func() { db.Close() })
	blobs, err := local.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	keys, _, err := secret.LoadOrCreateMasterKey(filepath.Join(dir, "master.key"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := transfer.DefaultConfig()
	cfg.PasswordLogN = 10
	cfg.SegmentSize = 100_000
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	return &keysEngine{db: db, svc: transfer.New(transfer.Deps{DB: db, Blobs: blobs, Keys: keys, Config: cfg, Log: log}), keys: keys}
}

type keysTransfer struct {
	id, fileID, access, secret string
	data                       []byte
}

func (e *keysEngine) send(t *testing.T, mode kluis.PasswordMode, size int) keysTransfer {
	t.Helper()
	ctx := context.Background()
	req := transfer.CreateRequest{SenderEmail: "a@example.nl", To: []string{"b@example.nl"}, Message: "geheim", PasswordMode: mode}
	if mode == kluis.PasswordManual {
		req.Password = "correct horse battery"
	}
	c, err := e.svc.Create(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	o := transfer.Owner{TransferID: c.Transfer.ID}
	data := make([]byte, size)
	rand.Read(data)
	f, err := e.svc.NewFile(ctx, o, "data.bin", "", int64(size))
	if err != nil {
		t.Fatal(err)
	}
	half := size / 3
	if _, err := e.svc.WriteFile(ctx, o, f.ID, 0, bytes.NewReader(data[:half])); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.WriteFile(ctx, o, f.ID, int64(half), bytes.NewReader(data[half:])); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.CompleteFile(ctx, o, f.ID); err != nil {
		t.Fatal(err)
	}
	fin, err := e.svc.Finish(ctx, o, c.LinkSecret)
	if err != nil {
		t.Fatal(err)
	}
	sec := req.Password
	if c.LinkSecret != "" {
		sec = c.LinkSecret
	}
	return keysTransfer{id: c.Transfer.ID, fileID: f.ID, access: fin.Links[0].AccessID, secret: sec, data: data}
}

func (e *keysEngine) download(t *testing.T, tr keysTransfer) {
	t.Helper()
	ctx := context.Background()
	s, err := e.svc.Unlock(ctx, tr.access, tr.secret)
	if err != nil {
		t.Fatalf("unlock: %v", err)
	}
	kf, fr, err := e.svc.OpenFile(ctx, s, tr.fileID)
	if err != nil {
		t.Fatalf("open file: %v", err)
	}
	defer fr.Close()
	got, err := io.ReadAll(io.NewSectionReader(fr, 0, kf.Size))
	if err != nil || !bytes.Equal(got, tr.data) {
		t.Fatalf("download: %v (equal %v)", err, bytes.Equal(got, tr.data))
	}
}

// keyIDs counts the key ids of every master-sealed value in the database.
func keyIDs(t *testing.T, dbPath string) map[string]int {
	t.Helper()
	return countKeyIDs(t, "sqlite", "file:"+dbPath+"?_pragma=busy_timeout(5000)")
}

// countKeyIDs counts the key ids of every master-sealed value in the
// database that driver opens at dsn, read with a plain connection (no
// Kluis lock).
func countKeyIDs(t *testing.T, driver, dsn string) map[string]int {
	t.Helper()
	raw, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	ids := map[string]int{}
	for _, v := range transfer.SealedValues {
		rows, err := raw.Query(fmt.Sprintf("SELECT %s FROM %s WHERE %s IS NOT NULL", v.Column, v.Table, v.Column))
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var b []byte
			if err := rows.Scan(&b); err != nil {
				t.Fatal(err)
			}
			ids[transfer.KeyIDOf(b)]++
		}
		rows.Close()
	}
	return ids
}

// decryptSegments decrypts tr's stored segments (in dir's blobs, three at
// least) with the age identities in idFile, in order, and returns the
// plaintext.
func decryptSegments(t *testing.T, dir string, tr keysTransfer, idFile string) []byte {
	t.Helper()
	f, err := os.Open(idFile)
	if err != nil {
		t.Fatal(err)
	}
	ids, err := age.ParseIdentities(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	segDir := filepath.Join(dir, "blobs", "t", tr.id, tr.fileID)
	ents, err := os.ReadDir(segDir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, en := range ents {
		names = append(names, en.Name())
	}
	sort.Strings(names)
	if len(names) < 3 {
		t.Fatalf("want several segments, got %v", names)
	}
	var got bytes.Buffer
	for _, n := range names {
		b, _ := os.ReadFile(filepath.Join(segDir, n))
		r, err := age.Decrypt(bytes.NewReader(b), ids...)
		if err != nil {
			t.Fatalf("segment %s: %v", n, err)
		}
		io.Copy(&got, r)
	}
	return got.Bytes()
}

// interruptRotation leaves a rotation interrupted after its commit: a new
// key in keyFile+".new" and the values in db re-sealed from cur to it.
// It closes db and returns the new key.
func interruptRotation(t *testing.T, db *store.DB, cur *secret.Keyring, keyFile string) *secret.Keyring {
	t.Helper()
	raw := secret.GenerateMasterKey()
	next, _ := secret.NewKeyring(raw)
	os.WriteFile(keyFile+".new", []byte(base64.StdEncoding.EncodeToString(raw)+"\n"), 0o600)
	if _, err := transfer.RotateMasterKey(context.Background(), db, cur, next); err != nil {
		t.Fatal(err)
	}
	db.Close()
	return next
}

func TestAdminRotateMasterKey(t *testing.T) {
	defer func(d time.Duration) { lockWait = d }(lockWait)
	lockWait = 100 * time.Millisecond
	ctx := context.Background()
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "kluis.db")
	keyFile := filepath.Join(dir, "master.key")
	e := openKeysEngine(t, dir)
	withPw := e.send(t, kluis.PasswordManual, 250_000)
	noPw := e.send(t, kluis.PasswordNone, 1000)
	oldID := e.keys.ID()
	oldText, _ := os.ReadFile(keyFile)
	args := []string{"admin", "rotate-master-key", "--reason", "yearly rotation", "--data", dir}

	// Refused while a server has the database open; nothing changes.
	var out, errOut bytes.Buffer
	err := run(ctx, args, noEnv, &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("rotation beside an open database: %v", err)
	}
	if _, err := os.Stat(keyFile + ".new"); !os.IsNotExist(err) {
		t.Fatal("a refused rotation left master.key.new")
	}
	e.db.Close()

	out.Reset()
	errOut.Reset()
	if err := run(ctx, args, noEnv, &out, &errOut); err != nil {
		t.Fatalf("rotate: %v\n%s", err, errOut.String())
	}
	t.Logf("stdout:\n%s\nstderr:\n%s", out.String(), errOut.String())
	for _, w := range []string{"transfers.identity_sealed", "files.manifest_sealed", "outbox.sealed"} {
		if !strings.Contains(out.String(), w) {
			t.Errorf("output lacks %q", w)
		}
	}
	if !strings.Contains(errOut.String(), "Back up the new key") || !strings.Contains(errOut.String(), "server must be stopped") {
		t.Errorf("warnings missing:\n%s", errOut.String())
	}
	newKeys, err := secret.LoadMasterKey(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if newKeys.ID() == oldID {
		t.Fatal("key file still holds the old key")
	}
	oldFile := keyFile + ".old-" + oldID
	st, err := os.Stat(oldFile)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("old key file: %v %v", err, st)
	}
	if b, _ := os.ReadFile(oldFile); !bytes.Equal(b, oldText) {
		t.Fatal("old key file does not hold the old key")
	}
	if _, err := os.Stat(keyFile + ".new"); !os.IsNotExist(err) {
		t.Fatal("master.key.new left behind")
	}
	ids := keyIDs(t, dbPath)
	if len(ids) != 1 || ids[newKeys.ID()] == 0 {
		t.Fatalf("key ids of sealed values after rotation: %v, want only %s", ids, newKeys.ID())
	}

	// The server, restarted with the new key, works; the old key opens nothing.
	e2 := openKeysEngine(t, dir)
	e2.download(t, withPw)
	e2.download(t, noPw)
	oldKeys, err := secret.LoadMasterKey(oldFile)
	if err != nil {
		t.Fatal(err)
	}
	row, err := e2.db.Transfer(ctx, withPw.id)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := oldKeys.Open("transfer.identity", withPw.id, row.IdentitySealed); err == nil {
		t.Fatal("the old key still opens the identity")
	}
	e2.db.Close()

	// Interrupted after the commit: master.key.new exists and the database
	// is already under it. Running again finishes the job.
	db, err := store.OpenSQLiteExclusive(ctx, dbPath, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	next := interruptRotation(t, db, newKeys, keyFile)
	out.Reset()
	errOut.Reset()
	if err := run(ctx, args, noEnv, &out, &errOut); err != nil {
		t.Fatalf("rerun: %v\n%s", err, errOut.String())
	}
	if !strings.Contains(errOut.String(), "interrupted rotation") {
		t.Errorf("rerun does not explain:\n%s", errOut.String())
	}
	if k, err := secret.LoadMasterKey(keyFile); err != nil || k.ID() != next.ID() {
		t.Fatalf("after the rerun the key file holds %v, %v; want %s", k, err, next.ID())
	}
	if ids := keyIDs(t, dbPath); len(ids) != 1 || ids[next.ID()] == 0 {
		t.Fatalf("key ids after the rerun: %v", ids)
	}
	openKeysEngine(t, dir).download(t, withPw)
}

func TestAdminExportIdentity(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	e := openKeysEngine(t, dir)
	for _, mode := range []kluis.PasswordMode{kluis.PasswordManual, kluis.PasswordNone} {
		tr := e.send(t, mode, 350_001)
		pwFile := filepath.Join(t.TempDir(), "pw")
		os.WriteFile(pwFile, []byte(tr.secret+"\n"), 0o600)
		idFile := filepath.Join(t.TempDir(), "identity.txt")
		var out, errOut bytes.Buffer
		args := []string{"admin", "export-identity", tr.id, "--reason", "recovery request 7", "--data", dir, "--password-file", pwFile, "-o", idFile}
		if err := run(ctx, args, noEnv, &out, &errOut); err != nil {
			t.Fatalf("%s: export: %v", mode, err)
		}
		if !strings.Contains(errOut.String(), "age -d -i "+idFile) {
			t.Errorf("no age instructions:\n%s", errOut.String())
		}
		if st, err := os.Stat(idFile); err != nil || st.Mode().Perm() != 0o600 {
			t.Fatalf("identity file: %v %v", err, st)
		}
		if err := run(ctx, args, noEnv, &out, &errOut); err == nil {
			t.Fatal("export overwrote an existing file")
		}
		if !bytes.Equal(decryptSegments(t, dir, tr, idFile), tr.data) {
			t.Fatalf("%s: segments decrypted with the exported identity are not the file", mode)
		}
		// Wrong password: refused, and no file is left.
		os.WriteFile(pwFile, []byte("wrong\n"), 0o600)
		other := filepath.Join(t.TempDir(), "x.txt")
		args = []string{"admin", "export-identity", tr.id, "--reason", "recovery request 7", "--data", dir, "--password-file", pwFile, "-o", other}
		if err := run(ctx, args, noEnv, &out, &errOut); kluis.ErrorCode(err) != kluis.EWRONGSECRET {
			t.Fatalf("wrong password: %v", err)
		}
		if _, err := os.Stat(other); !os.IsNotExist(err) {
			t.Fatal("a failed export left its file")
		}
	}
}

func TestMigrate(t *testing.T) {
	dir := t.TempDir()
	var out, errOut bytes.Buffer
	if err := run(context.Background(), []string{"migrate", "--data", dir}, noEnv, &out, &errOut); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "0001_init") || !strings.Contains(out.String(), "up to date") {
		t.Fatalf("output:\n%s", out.String())
	}
	if err := run(context.Background(), []string{"migrate", "--data", filepath.Join(dir, "nope")}, noEnv, &out, &errOut); err == nil {
		t.Fatal("migrate made a data folder that did not exist")
	}
}

func TestAdminPolicyCheck(t *testing.T) {
	ctx := context.Background()
	var out, errOut bytes.Buffer
	env := func(string) string { return "" }
	if err := run(ctx, []string{"admin", "policy", "check", "../../docs/policy.example.json"}, env, &out, &errOut); err != nil {
		t.Fatalf("example: %v", err)
	}
	for _, w := range []string{"gemeente-voorbeeld.nl", `"no private mailboxes": DENY`, "max transfer size: 500.0 MB", `/to/inkomen "Income team" for team inkomen`, "\nOK\n"} {
		if !strings.Contains(out.String(), w) {
			t.Errorf("output lacks %q:\n%s", w, out.String())
		}
	}
	bad := filepath.Join(t.TempDir(), "bad.json")
	os.WriteFile(bad, []byte(`{"organisation_domains": ["gemeente.nl"], "rules": [{"name": "x", "action": "allow", "limits": {"password_modes": ["sms"]}}]}`), 0o600)
	out.Reset()
	err := run(ctx, []string{"admin", "policy", "check", bad}, env, &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), `rules[0].limits.password_modes[0]: "sms" is not a password mode`) || !strings.Contains(err.Error(), "NOT valid") {
		t.Fatalf("bad file: %v", err)
	}
	if strings.Contains(out.String(), "OK") {
		t.Errorf("a bad file printed OK: %s", out.String())
	}
	// Every error of the file, each with its line.
	os.WriteFile(bad, []byte("{\n  \"organisation_domains\": [\"gemeente\"],\n  \"rules\": [{\"name\": \"x\", \"action\": \"block\"}]\n}"), 0o600)
	err = run(ctx, []string{"admin", "policy", "check", bad}, env, &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), "has 2 errors") || !strings.Contains(err.Error(), `line 2: organisation_domains[0]: "gemeente" is not a domain`) ||
		!strings.Contains(err.Error(), `line 3: rules[0].action: "block" is not an action`) {
		t.Fatalf("a file with two errors: %v", err)
	}
	if err := run(ctx, []string{"admin", "policy", "check"}, env, &out, &errOut); exitCode(err) != exitUsage {
		t.Error("check without a file is not a usage error")
	}
	// An empty file is valid but a demo: the check says so loudly.
	demo := filepath.Join(t.TempDir(), "demo.json")
	os.WriteFile(demo, []byte(`{}`), 0o600)
	out.Reset()
	if err := run(ctx, []string{"admin", "policy", "check", demo}, env, &out, &errOut); err != nil || !strings.Contains(out.String(), "DEMO") {
		t.Errorf("demo: %v\n%s", err, out.String())
	}
}
