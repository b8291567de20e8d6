package transfer

import (
	"bytes"
	"context"
	"database/sql"
	"path/filepath"
	"testing"

	"github.com/kluis-nl/kluis"
)

// TestStoredNamesShowClean: a transfer stored before file names lost their
// invisible characters (here: the sealed values rewritten as the old code
// wrote them, with U+202E kept) shows clean names to the recipient (file
// list, download), to the sender (My transfers, download records) and in
// mails.
func TestStoredNamesShowClean(t *testing.T) {
	svc, dir := interopService(t)
	ctx := context.Background()
	const pw = "correct horse battery"
	c, err := svc.Create(ctx, CreateRequest{SenderEmail: "a@example.nl", To: []string{"b@example.nl"},
		PasswordMode: kluis.PasswordManual, Password: pw, Options: kluis.Options{ShowFilenames: true}})
	if err != nil {
		t.Fatal(err)
	}
	o := Owner{TransferID: c.Transfer.ID}
	data := []byte("MZ not really")
	f, err := svc.NewFile(ctx, o, "placeholder.bin", "", int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.WriteFile(ctx, o, f.ID, 0, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.CompleteFile(ctx, o, f.ID); err != nil {
		t.Fatal(err)
	}
	fin, err := svc.Finish(ctx, o, "")
	if err != nil {
		t.Fatal(err)
	}

	// Rewrite the file's sealed name as a version without the cleaning
	// stored it: "factuur<RLO>fdp.exe" reads as "factuurexe.pdf".
	const raw, want = "factuur\u202efdp.exe", "factuurfdp.exe"
	row, err := svc.db.Transfer(ctx, o.TransferID)
	if err != nil {
		t.Fatal(err)
	}
	id, err := svc.unwrap(row, pw)
	if err != nil {
		t.Fatal(err)
	}
	frow, err := svc.db.File(ctx, f.ID)
	if err != nil {
		t.Fatal(err)
	}
	var fp filePrivate
	if err := svc.openPrivate(id, purposeFilePriv, f.ID, frow.PrivateSealed, &fp); err != nil {
		t.Fatal(err)
	}
	fp.Name = raw
	priv, err := svc.sealPrivate(id.Recipient(), purposeFilePriv, f.ID, fp)
	if err != nil {
		t.Fatal(err)
	}
	meta, err := svc.sealJSON(purposeFileMeta, f.ID, fileMeta{Size: int64(len(data)), Name: raw})
	if err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "kluis.db")+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`UPDATE files SET private_sealed = ?, meta_sealed = ? WHERE id = ?`, priv, meta, f.ID); err != nil {
		t.Fatal(err)
	}
	db.Close()

	sess, err := svc.Unlock(ctx, fin.Links[0].AccessID, pw)
	if err != nil {
		t.Fatal(err)
	}
	cont, err := svc.Contents(ctx, sess)
	if err != nil {
		t.Fatal(err)
	}
	if got := cont.Files[0].Name; got != want {
		t.Errorf("recipient's file list: %+q, want %+q", got, want)
	}
	kf, r, err := svc.OpenFile(ctx, sess, f.ID)
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	if kf.Name != want {
		t.Errorf("download (Content-Disposition, ZIP entry): %+q, want %+q", kf.Name, want)
	}
	d := Delivery{Files: []Served{{Index: 0, Size: kf.Size, Spans: []Span{{Start: 0, End: kf.Size}}}}, Complete: true}
	if err := svc.RecordDelivery(ctx, sess, d); err != nil {
		t.Fatal(err)
	}
	ov, err := svc.Overview(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	if got := ov.Files[0].Name; got != want {
		t.Errorf("My transfers: %+q, want %+q", got, want)
	}
	tr, err := svc.Transfer(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	if d := tr.Recipients[0].Downloads; len(d) != 1 || d[0].Name != want {
		t.Errorf("download records: %+v, want one named %+q", d, want)
	}
	files, err := svc.db.Files(ctx, o.TransferID)
	if err != nil {
		t.Fatal(err)
	}
	refs, err := svc.fileRefs(files, true)
	if err != nil {
		t.Fatal(err)
	}
	if refs[0].Name != want {
		t.Errorf("mail: %+q, want %+q", refs[0].Name, want)
	}
}
