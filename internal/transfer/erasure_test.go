package transfer_test

import (
	"bytes"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/kluis-nl/kluis"
	"github.com/kluis-nl/kluis/internal/store"
	"github.com/kluis-nl/kluis/internal/transfer"
)

// sealedCells reads the raw bytes of every sealed value of a transfer: its
// own, its files', and its sessions'.
func sealedCells(t testing.TB, path, transferID string) map[string][]byte {
	t.Helper()
	db := rawDB(t, path)
	defer db.Close()
	out := map[string][]byte{}
	add := func(name string, rows *sql.Rows, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		cols, _ := rows.Columns()
		i := 0
		for rows.Next() {
			vals := make([][]byte, len(cols))
			ptrs := make([]any, len(cols))
			for j := range vals {
				ptrs[j] = &vals[j]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			for j, v := range vals {
				if v != nil {
					out[name+"."+cols[j]+"#"+string(rune('0'+i))] = bytes.Clone(v)
				}
			}
			i++
		}
	}
	rows, err := db.Query(`SELECT identity_sealed, details_sealed, private_sealed, recipient_sealed FROM transfers WHERE id = ?`, transferID)
	add("transfers", rows, err)
	rows, err = db.Query(`SELECT meta_sealed, private_sealed, sum_sealed, manifest_sealed, head_sealed FROM files WHERE transfer_id = ?`, transferID)
	add("files", rows, err)
	rows, err = db.Query(`SELECT s.entry_sealed FROM segments s JOIN files f ON f.id = s.file_id WHERE f.transfer_id = ?`, transferID)
	add("segments", rows, err)
	rows, err = db.Query(`SELECT s.identity_sealed FROM sessions s JOIN recipients r ON r.id = s.recipient_id WHERE r.transfer_id = ?`, transferID)
	add("sessions", rows, err)
	return out
}

// windows returns two 32-byte windows of v (middle and end): a value that
// survives anywhere shows up as one of them.
func windows(v []byte) [][]byte {
	if len(v) < 32 {
		return [][]byte{v}
	}
	mid := len(v)/2 - 16
	return [][]byte{v[mid : mid+32], v[len(v)-32:]}
}

// TestPurgeErases is security.md items 19–21: at revocation or expiry the
// purge erases (not just hides) every encrypted value and blob of the
// transfer, keeps a minimal record with the recipients, and deletes that
// record after the retention.
func TestPurgeErases(t *testing.T) {
	t.Parallel()
	for _, how := range []string{"revoke", "expiry"} {
		t.Run(how, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			dbPath := filepath.Join(e.dir, "kluis.db")
			keep := e.readyTransfer(createOpts{message: "blijft", expires: e.clock.Now().Add(29 * 24 * time.Hour)}, 50_000)
			gone := e.readyTransfer(createOpts{message: "moet weg", to: []string{"een@example.nl", "twee@example.nl"}}, 230_000, 1_000)
			id := gone.c.Transfer.ID
			// A second session, and a download record.
			e.unlock(gone.fin.Links[1].AccessID, gone.c.Password)
			if err := e.svc.RecordDelivery(e.ctx, gone.sess, transfer.Delivery{Complete: true,
				Files: []transfer.Served{{Index: 0, Size: 230_000, Spans: []transfer.Span{{Start: 0, End: 230_000}}}}}); err != nil {
				t.Fatal(err)
			}

			cells := sealedCells(t, dbPath, id)
			if len(cells) < 4+2*4+2 {
				t.Fatalf("found only %d sealed cells: %v", len(cells), keysOf(cells))
			}
			if len(e.blobFiles(id)) != 2 {
				t.Fatalf("expected blobs for 2 files, got %v", e.blobFiles(id))
			}

			var at time.Time
			switch how {
			case "revoke":
				e.clock.Advance(time.Minute)
				at = e.clock.Now()
				if err := e.svc.Revoke(e.ctx, owner(gone.c), ""); err != nil {
					t.Fatal(err)
				}
			case "expiry":
				at = gone.c.Transfer.ExpiresAt
				e.clock.Set(at.Add(time.Second))
				// keep has a later expiry and stays.
			}
			n, err := e.svc.Purge(e.ctx)
			if err != nil || n != 1 {
				t.Fatalf("purge: n=%d err=%v, want 1 transfer", n, err)
			}

			// Not one 32-byte window of a sealed value is left in the
			// database file or its WAL.
			for _, f := range []string{"kluis.db", "kluis.db-wal", "kluis.db-shm"} {
				b, err := os.ReadFile(filepath.Join(e.dir, f))
				if errors.Is(err, os.ErrNotExist) {
					continue
				}
				if err != nil {
					t.Fatal(err)
				}
				for name, v := range cells {
					for _, w := range windows(v) {
						if bytes.Contains(b, w) {
							t.Errorf("%s still holds bytes of %s", f, name)
							break
						}
					}
				}
			}
			if fi, err := os.Stat(filepath.Join(e.dir, "kluis.db-wal")); err == nil && fi.Size() != 0 {
				t.Errorf("WAL not truncated after the purge: %d bytes", fi.Size())
			}
			if _, err := os.Stat(filepath.Join(e.dir, "blobs", "t", id)); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("blobs/t/%s still exists (%v)", id, err)
			}
			if len(e.blobFiles(keep.c.Transfer.ID)) != 1 {
				t.Error("the purge touched another transfer's blobs")
			}
			if got, err := e.readFile(keep.sess, keep.files[0].ID); err != nil || !bytes.Equal(got, keep.data[0]) {
				t.Errorf("the other transfer no longer downloads: %v", err)
			}

			// The minimal record: state purged, dates, recipients.
			row, err := e.db.Transfer(e.ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if row.State != string(kluis.StatePurged) || row.PurgedAt == nil {
				t.Errorf("state %s, purged_at %v", row.State, row.PurgedAt)
			}
			if row.IdentitySealed != nil || row.DetailsSealed != nil || row.PrivateSealed != nil || row.RecipientSealed != nil {
				t.Error("sealed fields survived the purge")
			}
			// The upload token hash is kept on purpose (e09de51): the sender
			// still sees the minimal record.
			if tv, err := e.svc.Transfer(e.ctx, owner(gone.c)); err != nil || tv.State != kluis.StatePurged || len(tv.Recipients) != 2 {
				t.Errorf("owner's view after the purge: %+v %v", tv, err)
			}
			if how == "revoke" && (row.RevokedAt == nil || !row.RevokedAt.Equal(at)) {
				t.Errorf("revoked_at = %v, want %v", row.RevokedAt, at)
			}
			rs, err := e.db.Recipients(e.ctx, id)
			if err != nil || len(rs) != 2 || rs[0].Address != "een@example.nl" || rs[1].Address != "twee@example.nl" {
				t.Errorf("recipients of the minimal record: %v %v", rs, err)
			}
			if fs, err := e.db.Files(e.ctx, id); err != nil || len(fs) != 0 {
				t.Errorf("files left: %d %v", len(fs), err)
			}
			// The recipient is told what happened, with the date.
			_, err = e.svc.Lookup(e.ctx, gone.fin.Links[0].AccessID)
			want := map[string]kluis.Code{"revoke": kluis.EREVOKED, "expiry": kluis.EEXPIRED}[how]
			if ke := wantCode(t, err, want); ke.At == nil || !ke.At.Equal(at) {
				t.Errorf("At = %v, want %v", ke.At, at)
			}
			_, err = e.svc.Unlock(e.ctx, gone.fin.Links[0].AccessID, gone.c.Password)
			wantCode(t, err, want)
			_, err = e.svc.OpenSession(e.ctx, gone.sess.Token)
			if err == nil {
				t.Error("a session survived the purge")
			}
			// The owner can no longer revoke or extend.
			if err := e.svc.Revoke(e.ctx, owner(gone.c), ""); err == nil {
				t.Error("revoke after purge succeeded")
			}

			// A second purge has nothing to do.
			if n, err := e.svc.Purge(e.ctx); err != nil || n != 0 {
				t.Errorf("second purge: n=%d err=%v", n, err)
			}
			// Past the retention: the minimal record goes too.
			e.clock.Set(row.PurgedAt.Add(e.cfg.Retention + time.Minute))
			if _, err := e.svc.Purge(e.ctx); err != nil {
				t.Fatal(err)
			}
			if _, err := e.db.Transfer(e.ctx, id); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("transfer row after retention: %v", err)
			}
			if rs, _ := e.db.Recipients(e.ctx, id); len(rs) != 0 {
				t.Errorf("%d recipient rows after retention", len(rs))
			}
			db := rawDB(t, dbPath)
			var downloads, sessions int
			db.QueryRow(`SELECT count(*) FROM downloads`).Scan(&downloads)
			db.QueryRow(`SELECT count(*) FROM sessions`).Scan(&sessions)
			db.Close()
			if downloads != 0 {
				t.Errorf("%d download rows after retention", downloads)
			}
			_, err = e.svc.Lookup(e.ctx, gone.fin.Links[0].AccessID)
			wantCode(t, err, kluis.ENOTFOUND)
			// The addresses are gone from the files as well.
			for _, f := range []string{"kluis.db", "kluis.db-wal"} {
				b, _ := os.ReadFile(filepath.Join(e.dir, f))
				if bytes.Contains(b, []byte("twee@example.nl")) {
					t.Errorf("%s still holds a recipient address after the retention", f)
				}
			}
		})
	}
}

func keysOf(m map[string][]byte) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
