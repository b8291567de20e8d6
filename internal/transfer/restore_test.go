package transfer_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/kluis-nl/kluis"
)

// copyTree copies the regular files under src to dst (a backup of the
// blobs folder, or its restore).
func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o700)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o600)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestRestoreNeverRevivesExpired backs up a data folder (database and
// blobs) while two transfers are live, lets one expire and revokes the
// other, purges both, and restores the backup. The expired one stays dead:
// expiry is a date in the row, checked on every access, and the purge
// picks it up again at once and deletes what the restore brought back. The
// revoked one comes back live (the backup predates the revocation), which
// is why docs/operations.md has operators re-apply revocations made after
// the backup; re-applying it (the SQL the guide gives) refuses and purges
// it.
func TestRestoreNeverRevivesExpired(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	expiring := e.readyTransfer(createOpts{message: "verloopt"}, 230_000)
	revoked := e.readyTransfer(createOpts{message: "wordt ingetrokken", expires: e.clock.Now().Add(29 * 24 * time.Hour)}, 120_000)
	expID, revID := expiring.c.Transfer.ID, revoked.c.Transfer.ID

	// The backup: the database file after a checkpoint (no WAL left), and
	// the blobs folder.
	backup := t.TempDir()
	if err := e.db.Checkpoint(e.ctx); err != nil {
		t.Fatal(err)
	}
	copyTree(t, filepath.Join(e.dir, "blobs"), filepath.Join(backup, "blobs"))
	dbBytes, err := os.ReadFile(filepath.Join(e.dir, "kluis.db"))
	if err != nil {
		t.Fatal(err)
	}

	// After the backup: one expires, the other is revoked; both purged.
	e.clock.Advance(time.Hour)
	if err := e.svc.Revoke(e.ctx, owner(revoked.c), ""); err != nil {
		t.Fatal(err)
	}
	e.clock.Set(expiring.c.Transfer.ExpiresAt.Add(time.Minute))
	if n, err := e.svc.Purge(e.ctx); err != nil || n != 2 {
		t.Fatalf("purge before the restore: %d, %v; want 2", n, err)
	}
	if len(e.blobFiles(expID)) != 0 || len(e.blobFiles(revID)) != 0 {
		t.Fatal("purge left blobs")
	}

	// The restore: the old database and blobs over the current ones.
	e.db.Close()
	for _, f := range []string{"kluis.db", "kluis.db-wal", "kluis.db-shm"} {
		os.Remove(filepath.Join(e.dir, f))
	}
	if err := os.WriteFile(filepath.Join(e.dir, "kluis.db"), dbBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	copyTree(t, filepath.Join(backup, "blobs"), filepath.Join(e.dir, "blobs"))
	r := e.reopen(t, e.dir)
	if len(r.blobFiles(expID)) == 0 {
		t.Fatal("the restore did not bring the blobs back (the test would prove nothing)")
	}
	row, err := r.db.Transfer(r.ctx, expID)
	if err != nil || row.PurgedAt != nil || row.State != string(kluis.StateReady) {
		t.Fatalf("restored row: %+v %v; want a ready, unpurged transfer", row, err)
	}

	// Expired by its date: refused before any purge has run, for a new
	// unlock and for a session made before the backup alike.
	_, err = r.svc.Unlock(r.ctx, expiring.fin.Links[0].AccessID, secretOf(expiring.c))
	wantCode(t, err, kluis.EEXPIRED)
	// (Every request opens its session from the token again.)
	if _, err := r.svc.OpenSession(r.ctx, expiring.sess.Token); err == nil {
		t.Fatal("a session from before the backup still opens an expired transfer")
	} else if c := kluis.ErrorCode(err); c != kluis.EEXPIRED && c != kluis.EUNAUTHORIZED {
		t.Fatalf("session from before the backup: %v", err)
	}
	// The first purge deletes it again: blobs and sealed fields.
	if n, err := r.svc.Purge(r.ctx); err != nil || n != 1 {
		t.Fatalf("purge after the restore: %d, %v; want 1 (the expired transfer)", n, err)
	}
	if len(r.blobFiles(expID)) != 0 {
		t.Fatalf("blobs of the expired transfer survived the purge after the restore: %v", r.blobFiles(expID))
	}
	if row, err := r.db.Transfer(r.ctx, expID); err != nil || row.PurgedAt == nil || row.IdentitySealed != nil {
		t.Fatalf("expired transfer after the purge: %+v %v", row, err)
	}

	// Revoked after the backup: live again, as the backup has it.
	r.unlock(revoked.fin.Links[0].AccessID, secretOf(revoked.c))
	// Re-applying the revocation (docs/operations.md) ends it for good.
	if err := r.db.RevokeTransfer(r.ctx, revID, r.clock.Now()); err != nil {
		t.Fatal(err)
	}
	_, err = r.svc.Unlock(r.ctx, revoked.fin.Links[0].AccessID, secretOf(revoked.c))
	wantCode(t, err, kluis.EREVOKED)
	if n, err := r.svc.Purge(r.ctx); err != nil || n != 1 {
		t.Fatalf("purge after re-revoking: %d, %v", n, err)
	}
	if len(r.blobFiles(revID)) != 0 {
		t.Fatal("blobs of the re-revoked transfer survived the purge")
	}
}
