package transfer_test

import (
	"bytes"
	"database/sql"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/age"

	"github.com/kluis-nl/kluis"
	"github.com/kluis-nl/kluis/internal/secret"
)

// sealPurposes are the engine's seal purposes (seal.go); a stolen copy
// with the master key can open every value sealed under any of them.
var sealPurposes = []string{
	"transfer.recipient", "transfer.identity", "transfer.details", "transfer.private",
	"file.meta", "file.private", "file.sum", "file.manifest", "session.identity",
}

// storedValue is one BLOB or TEXT cell of the database.
type storedValue struct {
	where string // table.column[rowid]
	rowID string // the row's id (transfers/files), for the seal's binding
	v     []byte
}

// allStoredValues reads every non-NULL cell of every table.
func allStoredValues(t testing.TB, db *sql.DB) []storedValue {
	t.Helper()
	tables := []string{"transfers", "recipients", "files", "downloads", "sessions"}
	var out []storedValue
	for _, tbl := range tables {
		rows, err := db.Query("SELECT * FROM " + tbl)
		if err != nil {
			t.Fatal(err)
		}
		cols, _ := rows.Columns()
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			rowID := fmt.Sprint(vals[0])
			if s, ok := vals[0].(string); ok {
				rowID = s
			}
			for i, v := range vals {
				var b []byte
				switch x := v.(type) {
				case []byte:
					b = x
				case string:
					b = []byte(x)
				default:
					continue
				}
				out = append(out, storedValue{where: fmt.Sprintf("%s.%s[%s]", tbl, cols[i], rowID), rowID: rowID, v: bytes.Clone(b)})
			}
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		rows.Close()
	}
	return out
}

// TestCopyCannotOpenPasswordTransfer is security.md item 5: someone with a
// copy of the whole data folder, master key included, cannot open a
// password transfer. A no-password transfer does open with its link secret
// (the documented weaker mode).
func TestCopyCannotOpenPasswordTransfer(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	pw := e.readyTransfer(createOpts{mode: kluis.PasswordManual, password: "Geheim-Wachtwoord-Voor-Test", message: "vertrouwelijk"}, 150_000, 10)
	nopw := e.readyTransfer(createOpts{mode: kluis.PasswordNone, message: "zonder wachtwoord"}, 120_000)

	copyDir := filepath.Join(t.TempDir(), "copy")
	if err := os.CopyFS(copyDir, os.DirFS(e.dir)); err != nil {
		t.Fatal(err)
	}
	// CopyFS makes files 0644; the engine rightly refuses such a key file.
	if err := os.Chmod(filepath.Join(copyDir, "master.key"), 0o600); err != nil {
		t.Fatal(err)
	}
	c2 := e.reopen(t, copyDir)

	// The copy works as an engine: the no-password transfer opens with the
	// link secret from the link (weaker mode, by design)...
	s, err := c2.svc.Unlock(c2.ctx, nopw.fin.Links[0].AccessID, nopw.c.LinkSecret)
	if err != nil {
		t.Fatalf("no-password transfer on the copy: %v", err)
	}
	got, err := c2.readFile(s, nopw.files[0].ID)
	if err != nil || !bytes.Equal(got, nopw.data[0]) {
		t.Fatalf("no-password download on the copy: %v", err)
	}
	// ...but the password transfer does not, whatever is tried.
	guesses := []string{"", "Geheim-Wachtwoord-Voor-Tes", "geheim-wachtwoord-voor-test", nopw.c.LinkSecret, pw.c.UploadToken, pw.sess.Token}
	for _, g := range guesses {
		_, err := c2.svc.Unlock(c2.ctx, pw.fin.Links[0].AccessID, g)
		if err == nil {
			t.Fatalf("unlocked the password transfer on the copy with %q", g)
		}
		if code := kluis.ErrorCode(err); code != kluis.EWRONGSECRET && code != kluis.ELOCKED {
			t.Errorf("guess %q: code %s", g, code)
		}
	}
	// The session from before the copy is useless without its token.
	if _, err := c2.svc.OpenSession(c2.ctx, strings.Repeat("A", 64)); err == nil {
		t.Fatal("a made-up session token opened a session")
	}

	raw := rawDB(t, filepath.Join(copyDir, "kluis.db"))
	values := allStoredValues(t, raw)
	raw.Close()
	masterKey, err := os.ReadFile(filepath.Join(copyDir, "master.key"))
	if err != nil {
		t.Fatal(err)
	}

	// Everything the attacker has: raw cells, cells opened with the master
	// key, the master key file, every file under the folder.
	var material [][]byte
	var identities []age.Identity
	var wraps []storedValue    // opened identity_sealed of the password transfer
	var sessions []storedValue // sessions.identity_sealed
	keys := c2.keys
	for _, sv := range values {
		material = append(material, sv.v)
		if strings.HasPrefix(sv.where, "sessions.identity_sealed") {
			sessions = append(sessions, sv)
		}
		for _, p := range sealPurposes {
			opened, err := keys.Open(p, sv.rowID, sv.v)
			if err != nil {
				continue
			}
			material = append(material, opened)
			if p == "transfer.identity" && sv.rowID == pw.c.Transfer.ID {
				wraps = append(wraps, storedValue{where: sv.where, rowID: sv.rowID, v: opened})
			}
		}
	}
	material = append(material, masterKey, bytes.TrimSpace(masterKey))
	walkFiles(t, copyDir, func(p string, b []byte) {
		if bytes.Contains(bytes.ToUpper(b), []byte("AGE-SECRET-KEY-1")) {
			t.Errorf("%s holds an age identity in plain", p)
		}
	})
	for _, m := range material {
		if bytes.Contains(bytes.ToUpper(m), []byte("AGE-SECRET-KEY-1")) {
			t.Errorf("a stored value (opened with the master key) holds an age identity: %.40q", m)
		}
		if ids, err := age.ParseIdentities(bytes.NewReader(m)); err == nil {
			identities = append(identities, ids...)
		}
	}
	if len(identities) > 0 {
		t.Errorf("found %d age identities in the stored data", len(identities))
	}

	// The wrap is a standard age scrypt file, and only the password opens it.
	if len(wraps) != 1 {
		t.Fatalf("found %d identity wraps for the password transfer, want 1", len(wraps))
	}
	wrap := wraps[0].v
	if !bytes.HasPrefix(wrap, []byte("age-encryption.org/v1\n-> scrypt ")) {
		t.Fatalf("identity wrap is not an age scrypt file: %.60q", wrap)
	}
	tryPassphrase := func(pass string) bool {
		si, err := age.NewScryptIdentity(pass)
		if err != nil {
			return false
		}
		si.SetMaxWorkFactor(e.cfg.PasswordLogN)
		_, err = age.Decrypt(bytes.NewReader(wrap), si)
		return err == nil
	}
	if !tryPassphrase("Geheim-Wachtwoord-Voor-Test") {
		t.Fatal("control: the right password does not open the wrap")
	}
	tried := 0
	for _, m := range material {
		if len(m) == 0 || len(m) > 4096 {
			continue
		}
		tried++
		if tryPassphrase(string(m)) || tryPassphrase(strings.TrimSpace(string(m))) {
			t.Errorf("a stored value opens the identity wrap as a passphrase: %.40q", m)
		}
	}
	if tried < 20 {
		t.Fatalf("tried only %d stored values as passphrase", tried)
	}
	if _, err := age.Decrypt(bytes.NewReader(wrap), identities...); err == nil && len(identities) > 0 {
		t.Error("an identity found in storage opens the wrap")
	}

	// Session rows: the identity sealed under a key that only the token
	// carries. No stored 32-byte value (or 32-byte window of one) is it.
	if len(sessions) == 0 {
		t.Fatal("expected session rows in the copy (the transfers were unlocked)")
	}
	for _, ss := range sessions {
		for _, m := range material {
			for i := 0; i+secret.KeySize <= len(m) && i < 4096; i++ {
				if _, err := secret.OpenWithKey(m[i:i+secret.KeySize], nil, ss.v); err == nil {
					t.Errorf("a stored value opens a session identity")
				}
			}
		}
	}

	// Segments: no identity from storage decrypts any blob (and, as a
	// control, the real identity would, which the interop test covers).
	blobsSeen := 0
	walkFiles(t, filepath.Join(copyDir, "blobs"), func(p string, b []byte) {
		blobsSeen++
		if !bytes.HasPrefix(b, []byte("age-encryption.org/v1\n-> X25519 ")) {
			t.Errorf("%s is not an age X25519 file", p)
		}
		if len(identities) == 0 {
			return
		}
		if r, err := age.Decrypt(bytes.NewReader(b), identities...); err == nil {
			if _, err := io.Copy(io.Discard, r); err == nil {
				t.Errorf("%s decrypts with an identity found in storage", p)
			}
		}
	})
	if blobsSeen < 4 {
		t.Fatalf("saw %d blobs, want at least 4", blobsSeen)
	}
	// And the password is nowhere: so it cannot be found by grepping.
	walkFiles(t, copyDir, func(p string, b []byte) {
		if bytes.Contains(b, []byte("Geheim-Wachtwoord-Voor-Test")) {
			t.Errorf("%s holds the password", p)
		}
	})
}
