package transfer_test

import (
	"bytes"
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kluis-nl/kluis"
	"github.com/kluis-nl/kluis/internal/audit"
	"github.com/kluis-nl/kluis/internal/clientip"
	"github.com/kluis-nl/kluis/internal/store"
	"github.com/kluis-nl/kluis/internal/transfer"
)

const auditRetention = 365 * 24 * time.Hour

func (e *env) auditEntries(r *audit.Recorder) []store.AuditRow {
	e.t.Helper()
	var out []store.AuditRow
	if err := e.db.AuditSince(e.ctx, time.Time{}, func(a *store.AuditRow) error {
		out = append(out, *a)
		return nil
	}); err != nil {
		e.t.Fatal(err)
	}
	return out
}

// personal is the personal data of the transfer in TestRetentionLeavesNothing.
var personal = map[string][]byte{
	"sender address":      []byte("kanarie.afzender@example.nl"),
	"to address":          []byte("kanarie.ontvanger@example.nl"),
	"cc address":          []byte("kanarie.cc@example.nl"),
	"bcc address":         []byte("kanarie.bcc@example.nl"),
	"sender name":         []byte("Kanariepietje Zeldzaam"),
	"sender phone":        []byte("+31 6 1234 9876"),
	"message":             []byte("kanarie-bericht-vertrouwelijk"),
	"file name":           []byte("kanarie-dossier.pdf"),
	"mail subject":        []byte("kanarie-onderwerp"),
	"reference":           []byte("kanarie-zaak-4711"),
	"recipient addr (uc)": []byte("KANARIE.ONTVANGER"),
}

// TestRetentionLeavesNothing is security.md item 21: with the clock past
// the expiry, the retention of the minimal record and the audit
// retention, no personal data of the transfer is left in the database
// file, its WAL or the blob folder.
func TestRetentionLeavesNothing(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	rec := e.withAudit()
	ctx := clientip.NewContext(e.ctx, netip.MustParseAddr("192.0.2.44"))
	c, err := e.svc.Create(ctx, transfer.CreateRequest{
		SenderEmail: string(personal["sender address"]), SenderName: string(personal["sender name"]), SenderPhone: string(personal["sender phone"]),
		To: []string{string(personal["to address"])}, Cc: []string{string(personal["cc address"])}, Bcc: []string{string(personal["bcc address"])},
		Message: string(personal["message"]), Subject: string(personal["mail subject"]),
		Reference: string(personal["reference"]), PasswordMode: kluis.PasswordManual, Password: "Vrolijk-Paarse-Olifant-42",
	})
	if err != nil {
		t.Fatal(err)
	}
	c.Password = "Vrolijk-Paarse-Olifant-42"
	id := c.Transfer.ID
	f := e.upload(owner(c), string(personal["file name"]), randomBytes(5, 150_000))
	fin := e.finish(c)
	if _, err := e.svc.Unlock(ctx, fin.Links[0].AccessID, "wrong password here"); kluis.ErrorCode(err) != kluis.EWRONGSECRET {
		t.Fatalf("wrong password: %v", err)
	}
	sess := e.unlock(fin.Links[0].AccessID, c.Password)
	if _, err := e.readFile(sess, f.ID); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.RecordDelivery(ctx, sess, transfer.Delivery{Complete: true,
		Files: []transfer.Served{{Index: f.Index, Size: 150_000, Spans: []transfer.Span{{Start: 0, End: 150_000}}}}}); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.Revoke(e.ctx, owner(c), string(personal["cc address"])); err != nil {
		t.Fatal(err)
	}

	// The audit log has the story, with the sender as actor and no
	// recipient address anywhere.
	got := map[string]int{}
	for _, a := range e.auditEntries(rec) {
		got[a.Action+"/"+a.Result]++
		if a.Object != id && a.Object != "" {
			t.Errorf("entry %+v: object is not the transfer", a)
		}
		for _, name := range []string{"to address", "cc address", "bcc address", "file name", "message"} {
			if strings.Contains(strings.ToLower(a.Actor+a.Detail+a.Object), strings.ToLower(string(personal[name]))) {
				t.Errorf("audit entry %+v holds the %s", a, name)
			}
		}
		if a.Action == audit.TransferCreate && (a.Actor != "sender:"+string(personal["sender address"]) || a.IP != "192.0.2.44") {
			t.Errorf("create entry %+v", a)
		}
	}
	for _, want := range []string{"transfer.create/ok", "upload.file_complete/ok", "transfer.finish/ok", "recipient.unlock_failed/wrong_password",
		"recipient.unlock/ok", "file.download/ok", "transfer.revoke/ok"} {
		if got[want] != 1 {
			t.Errorf("%d entries %s, want 1 (all: %v)", got[want], want, got)
		}
	}

	// Expiry: the content goes.
	e.clock.Set(c.Transfer.ExpiresAt.Add(time.Second))
	if n, err := e.svc.Purge(e.ctx); err != nil || n != 1 {
		t.Fatalf("purge: %d %v", n, err)
	}
	// Retention of the minimal record: the addresses go from the
	// transfer tables; the audit log still names the sender.
	e.clock.Advance(e.cfg.Retention + time.Minute)
	if _, err := e.svc.Purge(e.ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := e.db.Transfer(e.ctx, id); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("minimal record after retention: %v", err)
	}
	if !bytes.Contains(readDBFiles(t, e.dir), personal["sender address"]) {
		t.Fatal("the audit log lost the sender before its own retention (the test would prove nothing)")
	}
	// Audit retention: the entries go too.
	e.clock.Advance(auditRetention)
	if _, err := e.svc.Purge(e.ctx); err != nil {
		t.Fatal(err)
	}
	for _, a := range e.auditEntries(rec) {
		if a.Object == id {
			t.Errorf("audit entry past the audit retention: %+v", a)
		}
	}
	if err := e.db.Checkpoint(e.ctx); err != nil {
		t.Fatal(err)
	}
	all := readDBFiles(t, e.dir)
	for name, v := range personal {
		if bytes.Contains(bytes.ToLower(all), bytes.ToLower(v)) {
			t.Errorf("the database still holds the %s", name)
		}
	}
	if bytes.Contains(all, []byte(id)) {
		t.Error("the database still holds the transfer id")
	}
	walkFiles(t, e.dir, func(p string, b []byte) {
		rel, _ := filepath.Rel(e.dir, p)
		switch rel {
		case "kluis.db", "kluis.db-wal", "kluis.db-shm", "master.key":
			return
		}
		t.Errorf("file left in the data folder: %s", rel)
	})
}

func readDBFiles(t *testing.T, dir string) []byte {
	t.Helper()
	var all []byte
	for _, f := range []string{"kluis.db", "kluis.db-wal", "kluis.db-shm"} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
		all = append(all, b...)
	}
	return all
}

// TestErase is security.md item 20: the sender erases the minimal record
// of a finished transfer at once; a live one must be revoked first.
func TestErase(t *testing.T) {
	t.Parallel()
	for _, how := range []string{"revoked", "purged", "expired-unpurged"} {
		t.Run(how, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			rec := e.withAudit()
			r := e.readyTransfer(createOpts{to: []string{"wis.mij@example.nl"}}, 120_000)
			id := r.c.Transfer.ID
			o := owner(r.c)

			err := e.svc.Erase(e.ctx, o)
			if ke := wantCode(t, err, kluis.ECONFLICT); !strings.Contains(ke.Message, "Revoke it first") {
				t.Errorf("message %q does not say to revoke first", ke.Message)
			}
			if len(e.blobFiles(id)) == 0 {
				t.Fatal("a refused erase removed blobs")
			}

			switch how {
			case "revoked":
				if err := e.svc.Revoke(e.ctx, o, ""); err != nil {
					t.Fatal(err)
				}
			case "purged":
				if err := e.svc.Revoke(e.ctx, o, ""); err != nil {
					t.Fatal(err)
				}
				if _, err := e.svc.Purge(e.ctx); err != nil {
					t.Fatal(err)
				}
			case "expired-unpurged":
				e.clock.Set(r.c.Transfer.ExpiresAt)
			}
			ctx := audit.WithActor(e.ctx, audit.Sender("afzender@example.nl"))
			if err := e.svc.Erase(ctx, o); err != nil {
				t.Fatal(err)
			}
			if _, err := e.db.Transfer(e.ctx, id); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("transfer row after erase: %v", err)
			}
			if len(e.blobFiles(id)) != 0 {
				t.Errorf("blobs after erase: %v", e.blobFiles(id))
			}
			_, err = e.svc.Lookup(e.ctx, r.fin.Links[0].AccessID)
			wantCode(t, err, kluis.ENOTFOUND)
			_, err = e.svc.Transfer(e.ctx, o)
			wantCode(t, err, kluis.ENOTFOUND)
			wantCode(t, e.svc.Erase(ctx, o), kluis.ENOTFOUND)
			if b := readDBFiles(t, e.dir); bytes.Contains(b, []byte("wis.mij@example.nl")) {
				t.Error("the recipient address survived the erase in the database files")
			}
			var erased []store.AuditRow
			for _, a := range e.auditEntries(rec) {
				if a.Action == audit.TransferErase {
					erased = append(erased, a)
				}
			}
			if len(erased) != 1 || erased[0].Object != id || erased[0].Actor != "sender" || erased[0].Detail != "" {
				t.Errorf("erase entries: %+v", erased)
			}
			// Nothing for the purge to do afterwards.
			if n, err := e.svc.Purge(e.ctx); err != nil || n != 0 {
				t.Errorf("purge after erase: %d %v", n, err)
			}
		})
	}
}

// TestAuditRecordedInTransaction: a change whose audit entry cannot be
// written does not happen (fail closed).
func TestAuditRecordedInTransaction(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.withAudit()
	raw := rawDB(t, filepath.Join(e.dir, "kluis.db"))
	if _, err := raw.Exec(`DROP TABLE audit`); err != nil {
		t.Fatal(err)
	}
	raw.Close()
	_, err := e.svc.Create(context.Background(), transfer.CreateRequest{
		SenderEmail: "afzender@example.nl", To: []string{"ontvanger@example.nl"}, PasswordMode: kluis.PasswordGenerate,
	})
	if err == nil {
		t.Fatal("create succeeded without its audit entry")
	}
	if ts, err := e.db.TransfersBySender(e.ctx, "afzender@example.nl"); err != nil || len(ts) != 0 {
		t.Errorf("transfer stored without its audit entry: %d %v", len(ts), err)
	}
}
