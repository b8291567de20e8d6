package transfer_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	mailgw "github.com/kluis-nl/kluis/internal/gateway"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/kluis-nl/kluis"
	"github.com/kluis-nl/kluis/internal/mail"
	"github.com/kluis-nl/kluis/internal/oidc/oidctest"
	"github.com/kluis-nl/kluis/internal/outbox"
	"github.com/kluis-nl/kluis/internal/secret"
	"github.com/kluis-nl/kluis/internal/sms"
	"github.com/kluis-nl/kluis/internal/store"
	"github.com/kluis-nl/kluis/internal/transfer"
)

// captureSender keeps every mail the outbox delivers.
type captureSender struct {
	mu   sync.Mutex
	msgs []*mail.Message
}

func (c *captureSender) Send(_ context.Context, m *mail.Message, _ string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	cp := *m // the outbox clears its copy after sending
	c.msgs = append(c.msgs, &cp)
	return nil
}

func (c *captureSender) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.msgs)
}

// drainOutbox runs an outbox worker until no mail is pending.
func drainOutbox(t *testing.T, db *store.DB, keys *secret.Keyring, now func() time.Time) *captureSender {
	t.Helper()
	cs := &captureSender{}
	// Queued SMS messages (a file request's link) go to a gateway of the
	// test's own.
	gw, err := sms.NewHTTP(sms.Config{URL: newGateway(t).srv.URL + "/send", Body: `{"to": {{.To}}, "text": {{.Text}}}`})
	if err != nil {
		t.Fatal(err)
	}
	ob := outbox.New(outbox.Deps{DB: db, Keys: keys, Sender: cs, SMS: gw, Domain: "example.nl", Now: now})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { ob.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		pending, failed, err := db.OutboxDepth(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if failed > 0 {
			t.Fatalf("outbox: %d mails failed", failed)
		}
		if pending == 0 {
			return cs
		}
		if time.Now().After(deadline) {
			t.Fatalf("outbox: %d mails still pending", pending)
		}
		ob.Wake()
		time.Sleep(20 * time.Millisecond)
	}
}

// sealedColumns lists every *_sealed (or sealed) column of the schema.
func sealedColumns(t *testing.T, path string) []string {
	t.Helper()
	raw := rawDB(t, path)
	defer raw.Close()
	rows, err := raw.Query(`SELECT m.name, p.name FROM sqlite_master m, pragma_table_info(m.name) p
		WHERE m.type = 'table' AND (p.name = 'sealed' OR p.name LIKE '%\_sealed' ESCAPE '\') ORDER BY 1, 2`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var tbl, col string
		if err := rows.Scan(&tbl, &col); err != nil {
			t.Fatal(err)
		}
		out = append(out, tbl+"."+col)
	}
	return out
}

// eachSealed calls fn with every master-sealed value in the database.
func eachSealed(t *testing.T, path string, fn func(v transfer.SealedValue, rowID string, sealed []byte)) map[string]int {
	t.Helper()
	raw := rawDB(t, path)
	defer raw.Close()
	n := map[string]int{}
	for _, v := range transfer.SealedValues {
		rows, err := raw.Query(fmt.Sprintf("SELECT %s, %s FROM %s WHERE %s IS NOT NULL", v.RowID, v.Column, v.Table, v.Column))
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var id string
			var b []byte
			if err := rows.Scan(&id, &b); err != nil {
				t.Fatal(err)
			}
			fn(v, id, b)
			n[v.String()]++
		}
		rows.Close()
	}
	return n
}

func TestRotateMasterKey(t *testing.T) {
	// Files are scanned, so a file waiting for its scan holds a sealed
	// scan key; without clamd (fail-open) finished files pass unscanned.
	e := newEnv(t, func(c *transfer.Config) { c.Scan = transfer.ScanConfig{Scope: transfer.ScanAll, FailOpen: true} })
	ctx := e.ctx
	dbPath := filepath.Join(e.dir, "kluis.db")

	// Every sealed column is either rotated or known not to be under the
	// master key.
	known := map[string]bool{}
	for _, v := range transfer.SealedValues {
		known[v.String()] = true
	}
	for _, c := range transfer.NotMasterSealed {
		known[c] = true
	}
	for _, c := range sealedColumns(t, dbPath) {
		if !known[c] {
			t.Errorf("column %s is not in transfer.SealedValues (nor NotMasterSealed): a rotation would skip it", c)
		}
	}

	// A sender session and a pending verification (sender package), mail
	// in the outbox (outbox package) and transfers of both kinds.
	snd := e.app.Senders
	pre, err := snd.Start(ctx, "", "afzender@example.nl", "Afzender Naam", "0612345678", "nl")
	if err != nil {
		t.Fatal(err)
	}
	mails := drainOutbox(t, e.db, e.keys, e.clock.Now)
	code := regexp.MustCompile(`\b\d{4}[ -]?\d{4}\b`).FindString(mails.msgs[0].Text)
	sess, err := snd.Confirm(ctx, pre, code, "cli")
	if err != nil {
		t.Fatalf("confirm %q: %v", code, err)
	}
	// The sender's inbox key (sealed wrap of its identity).
	if err := snd.CreateInbox(ctx, sess.Token, "Inbox-Zin-Voor-Rotatie"); err != nil {
		t.Fatal(err)
	}
	// A drop-off team with that sender as its member (the team key's
	// sealed recipient and the member's sealed wrap).
	if _, err := snd.AddTeamMember(ctx, "inkomen", "afzender@example.nl"); err != nil {
		t.Fatal(err)
	}
	// A file request to that inbox (its message and inbox recipient).
	ist, err := snd.InboxState(ctx, sess.Token)
	if err != nil {
		t.Fatal(err)
	}
	fr, frLink, err := e.svc.CreateFileRequest(ctx, transfer.FileRequestInput{Requester: "afzender@example.nl", Inbox: ist.Recipient,
		Address: "burger@example.nl", Message: "Uw loonstroken van maart", Mobiles: map[string]string{"": "+31 6 1234 5678"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := snd.Start(ctx, "", "ander@example.nl", "Ander", "", "nl"); err != nil {
		t.Fatal(err)
	}
	// A single sign-on in progress (its nonce and PKCE verifier).
	if err := snd.SaveFlow(ctx, "binding", "state", []byte(`{"nonce":"n"}`), time.Hour); err != nil {
		t.Fatal(err)
	}
	withPw := e.readyTransfer(createOpts{message: "het geheime bericht"}, 250_000, 10)
	noPw := e.readyTransfer(createOpts{mode: kluis.PasswordNone}, 5_000)
	// A password of the mail gateway waiting for its sender.
	gw := mailgw.NewPasswords(mailgw.PasswordsDeps{DB: e.app.DB, Keys: e.app.Keys, Mailer: e.app.Outbox, Org: mail.Org{BaseURL: "https://kluis.example.nl"}})
	gwTx, err := e.app.DB.BeginTx(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := gw.Confirm(ctx, gwTx, mailgw.Confirmation{TransferID: noPw.c.Transfer.ID, Sender: "afzender@example.nl", Lang: "nl", Password: "wacht woord"}); err != nil {
		t.Fatal(err)
	}
	if err := gwTx.Commit(); err != nil {
		t.Fatal(err)
	}
	// The subject of the mail a transfer was made from (mail gateway).
	if err := e.svc.NoteMailOrigin(ctx, owner(noPw.c), "Stukken van de mail", e.clock.Now()); err != nil {
		t.Fatal(err)
	}
	// A file stored as versions before migration 0009 did (one sealed
	// manifest), which a rotation must reseal too.
	e.makeLegacy(noPw.files[0].ID)
	// A file that waits for its malware scan (not finished yet).
	e.upload(owner(e.create(createOpts{})), "wacht.bin", randomBytes(11, 1000))
	// A recipient verified by SMS: its mobile number is sealed.
	if _, err := e.svc.Create(e.ctx, transfer.CreateRequest{SenderEmail: "afzender@example.nl", To: []string{"sms@example.nl"},
		Auth: map[string]transfer.RecipientAuth{"sms@example.nl": {Method: kluis.AuthPasswordSMS, Phone: "+31612345678"}}}); err != nil {
		t.Fatal(err)
	}

	// A recipient who logs in after the password: the claim value is
	// sealed, and so is the login in progress (nonce, PKCE verifier).
	op := oidctest.New(t)
	e.withPolicy(fmt.Sprintf(`{"recipient_login_providers": [{"name": "digid", "issuer": %q, "client_id": "kluis", "client_secret_file": "x"}]}`, op.Issuer))
	lc, err := e.svc.Create(e.ctx, transfer.CreateRequest{SenderEmail: "afzender@example.nl", To: []string{"login@example.nl"},
		PasswordMode: kluis.PasswordManual, Password: "Vrolijk-Paarse-Olifant-42",
		Auth: map[string]transfer.RecipientAuth{"login@example.nl": {Method: kluis.AuthPasswordLogin, Login: "digid", LoginValue: "pseudoniem-1234"}}})
	if err != nil {
		t.Fatal(err)
	}
	e.upload(owner(lc), "a.txt", []byte("a"))
	ls, err := e.svc.Unlock(ctx, e.finish(lc).Links[0].AccessID, "Vrolijk-Paarse-Olifant-42")
	if err != nil {
		t.Fatal(err)
	}
	lp, err := e.svc.OpenPending(ctx, ls.Token)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.BeginLogin(ctx, lp, "binding"); err != nil {
		t.Fatal(err)
	}
	oldKeys := e.keys
	before := eachSealed(t, dbPath, func(v transfer.SealedValue, id string, b []byte) {
		if transfer.KeyIDOf(b) != oldKeys.ID() {
			t.Fatalf("%s %s: not under the current key before the rotation", v, id)
		}
	})
	for _, v := range transfer.SealedValues {
		if before[v.String()] == 0 {
			t.Errorf("test setup: no value in %s, so its rotation is not tested", v)
		}
	}

	// A running server (an open database) makes the rotation refuse.
	if _, err := store.OpenSQLiteExclusive(ctx, dbPath, 100*time.Millisecond); !errors.Is(err, store.ErrBusy) {
		t.Fatalf("exclusive open beside an open database: got %v, want ErrBusy", err)
	}
	e.db.Close()

	rawKey := secret.GenerateMasterKey()
	newKeys, err := secret.NewKeyring(rawKey)
	if err != nil {
		t.Fatal(err)
	}
	db, err := store.OpenSQLiteExclusive(ctx, dbPath, 100*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	counts, err := transfer.RotateMasterKey(ctx, db, oldKeys, newKeys)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range counts {
		if c.Resealed != before[c.Column] || c.Already != 0 {
			t.Errorf("%s: resealed %d, already %d; want %d, 0", c.Column, c.Resealed, c.Already, before[c.Column])
		}
	}
	// A rerun (after a crash between commit and key file rename) finds
	// everything done.
	counts, err = transfer.RotateMasterKey(ctx, db, oldKeys, newKeys)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range counts {
		if c.Resealed != 0 || c.Already != before[c.Column] {
			t.Errorf("rerun %s: resealed %d, already %d; want 0, %d", c.Column, c.Resealed, c.Already, before[c.Column])
		}
	}
	// A key that sealed nothing here cannot open the values: nothing changes.
	stranger, _ := secret.NewKeyring(secret.GenerateMasterKey())
	if _, err := transfer.RotateMasterKey(ctx, db, stranger, oldKeys); err == nil {
		t.Fatal("rotation with a wrong old key succeeded")
	}
	db.Close()

	after := eachSealed(t, dbPath, func(v transfer.SealedValue, id string, b []byte) {
		if got := transfer.KeyIDOf(b); got != newKeys.ID() {
			t.Errorf("%s %s: key id %s, want the new %s", v, id, got, newKeys.ID())
		}
		if _, err := newKeys.Open(v.Purpose, id, b); err != nil {
			t.Errorf("%s %s: new key does not open it: %v", v, id, err)
		}
		if _, err := oldKeys.Open(v.Purpose, id, b); err == nil {
			t.Errorf("%s %s: the old key still opens it", v, id)
		}
	})
	for k, n := range before {
		if after[k] != n {
			t.Errorf("%s: %d values after, %d before", k, after[k], n)
		}
	}

	// Reopen the engine with the new key: everything works as before.
	keyFile := filepath.Join(e.dir, "master.key")
	if err := os.WriteFile(keyFile, []byte(base64.StdEncoding.EncodeToString(rawKey)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	e2 := e.reopen(t, e.dir)
	if e2.keys.ID() != newKeys.ID() {
		t.Fatal("reopened engine does not use the new key")
	}
	s := e2.unlock(withPw.fin.Links[0].AccessID, secretOf(withPw.c))
	contents, err := e2.svc.Contents(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	if contents.Message != "het geheime bericht" {
		t.Errorf("message after rotation: %q", contents.Message)
	}
	for i, f := range withPw.files {
		got, err := e2.readFile(s, f.ID)
		if err != nil || !bytes.Equal(got, withPw.data[i]) {
			t.Fatalf("file %d after rotation: %v (equal %v)", i, err, bytes.Equal(got, withPw.data[i]))
		}
	}
	s2 := e2.unlock(noPw.fin.Links[0].AccessID, secretOf(noPw.c))
	if got, err := e2.readFile(s2, noPw.files[0].ID); err != nil || !bytes.Equal(got, noPw.data[0]) {
		t.Fatalf("no-password file after rotation: %v", err)
	}
	// Uploads to a new transfer work (the recipient column).
	e2.readyTransfer(createOpts{}, 1000)
	snd2 := e2.app.Senders
	who, err := snd2.Authenticate(ctx, sess.Token)
	if err != nil || who.Name != "Afzender Naam" {
		t.Fatalf("sender session after rotation: %v, %+v", err, who)
	}
	if err := snd2.UnlockInbox(ctx, sess.Token, "Inbox-Zin-Voor-Rotatie"); err != nil {
		t.Fatalf("inbox after rotation: %v", err)
	}
	// The file request: its message, and its inbox recipient for a new
	// upload.
	if got, err := e2.svc.FileRequestOf(ctx, "afzender@example.nl", fr.ID); err != nil || got.Message != "Uw loonstroken van maart" {
		t.Fatalf("file request after rotation: %v, %+v", err, got)
	}
	if _, err := e2.svc.StartFileRequest(ctx, frLink[strings.LastIndex(frLink, "/")+1:], "bericht"); err != nil {
		t.Fatalf("file request upload after rotation: %v", err)
	}
	// The outbox opens its mail with the new key.
	if n := drainOutbox(t, e2.db, e2.keys, e.clock.Now).count(); n == 0 {
		t.Fatal("no mail delivered after the rotation")
	}
}

func TestExportIdentity(t *testing.T) {
	e := newEnv(t)
	for _, mode := range []kluis.PasswordMode{kluis.PasswordManual, kluis.PasswordGenerate, kluis.PasswordNone} {
		t.Run(string(mode), func(t *testing.T) {
			r := e.readyTransfer(createOpts{mode: mode}, 250_000)
			id := r.c.Transfer.ID
			if _, err := e.svc.ExportIdentity(e.ctx, id, "wrong password"); kluis.ErrorCode(err) != kluis.EWRONGSECRET {
				t.Fatalf("wrong secret: got %v", err)
			}
			if _, err := e.svc.ExportIdentity(e.ctx, "nonexistent", secretOf(r.c)); kluis.ErrorCode(err) != kluis.ENOTFOUND {
				t.Fatalf("unknown transfer: got %v", err)
			}
			sec := secretOf(r.c)
			if mode == kluis.PasswordGenerate {
				sec = strings.ToUpper(strings.ReplaceAll(sec, "-", " "))
			}
			text, err := e.svc.ExportIdentity(e.ctx, id, sec)
			if err != nil {
				t.Fatal(err)
			}
			ident, err := age.ParseX25519Identity(text)
			if err != nil {
				t.Fatal(err)
			}
			var got bytes.Buffer
			for _, p := range e.segmentPaths(id, r.files[0].ID) {
				f, err := os.Open(p)
				if err != nil {
					t.Fatal(err)
				}
				rd, err := age.Decrypt(f, ident)
				if err != nil {
					t.Fatalf("%s: %v", p, err)
				}
				io.Copy(&got, rd)
				f.Close()
			}
			if !bytes.Equal(got.Bytes(), r.data[0]) {
				t.Fatal("segments decrypted with the exported identity are not the file")
			}
		})
	}
}
