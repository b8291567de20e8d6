package transfer

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kluis-nl/kluis"
	"github.com/kluis-nl/kluis/internal/blob/local"
	"github.com/kluis-nl/kluis/internal/mail"
	"github.com/kluis-nl/kluis/internal/secret"
	"github.com/kluis-nl/kluis/internal/store"
)

// mailLog records what the engine queues; the outbox itself is tested in
// package outbox and end to end against Mailpit.
type mailLog struct {
	mu    sync.Mutex
	msgs  []*mail.Message
	wakes int
}

func (m *mailLog) Enqueue(ctx context.Context, tx *store.Tx, msg *mail.Message) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.msgs = append(m.msgs, msg)
	return "x", nil
}

func (m *mailLog) Wake() { m.mu.Lock(); m.wakes++; m.mu.Unlock() }

func (m *mailLog) of(kind mail.Kind) []*mail.Message {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []*mail.Message
	for _, x := range m.msgs {
		if x.Kind == kind {
			out = append(out, x)
		}
	}
	return out
}

func TestNotifications(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	db, err := store.OpenSQLite(ctx, filepath.Join(dir, "kluis.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	blobs, _ := local.New(dir)
	keys, _ := secret.NewKeyring(secret.GenerateMasterKey())
	var mu sync.Mutex
	now := time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	cfg := DefaultConfig()
	cfg.PasswordLogN = 10
	cfg.MaxFailures = 3
	ml := &mailLog{}
	svc := New(Deps{DB: db, Blobs: blobs, Keys: keys, Config: cfg, Now: clock, Mailer: ml, Org: mail.Org{Name: "Gemeente Test", BaseURL: cfg.BaseURL}})

	const pw = "correct horse battery"
	const msgCanary = "MESSAGE-CANARY-7f3a"
	const nameCanary = "name-canary-91c2.pdf"
	c, err := svc.Create(ctx, CreateRequest{
		SenderEmail: "sender@example.nl", SenderName: "Sanne", SenderLang: "en",
		To: []string{"to@example.nl"}, Cc: []string{"cc@example.nl"}, Bcc: []string{"bcc@example.nl"},
		Message: msgCanary, Lang: "nl", PasswordMode: kluis.PasswordManual, Password: pw,
		Options: kluis.Options{Confirm: true, NotifyDownload: true, RemindExpiry: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	o := Owner{TransferID: c.Transfer.ID}
	f, _ := svc.NewFile(ctx, o, nameCanary, "", 5)
	if _, err := svc.WriteFile(ctx, o, f.ID, 0, bytes.NewReader([]byte("hello"))); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.CompleteFile(ctx, o, f.ID); err != nil {
		t.Fatal(err)
	}
	fin, err := svc.Finish(ctx, o, "")
	if err != nil {
		t.Fatal(err)
	}

	notes := ml.of(mail.KindNotify)
	if len(notes) != 3 {
		t.Fatalf("%d notifications, want one per recipient (3)", len(notes))
	}
	links := map[string]string{}
	for _, l := range fin.Links {
		links[l.Recipient.Address] = l.URL
	}
	for _, n := range notes {
		if n.Lang != "nl" {
			t.Errorf("notification to %s in %q, want the recipients' language nl", n.To, n.Lang)
		}
		if !strings.Contains(n.Text, links[n.To]) {
			t.Errorf("notification to %s lacks its own link", n.To)
		}
		for addr, link := range links {
			if addr != n.To && strings.Contains(n.Text+n.HTML, link) {
				t.Errorf("notification to %s holds %s's link", n.To, addr)
			}
		}
		if n.To != "bcc@example.nl" && strings.Contains(n.Text+n.HTML, "bcc@example.nl") {
			t.Errorf("notification to %s names the Bcc recipient", n.To)
		}
		if !strings.Contains(n.Text, "to@example.nl") || !strings.Contains(n.Text, "cc@example.nl") {
			t.Errorf("notification to %s does not name the visible recipients", n.To)
		}
	}
	if got := ml.of(mail.KindConfirm); len(got) != 1 || got[0].To != "sender@example.nl" || got[0].Lang != "en" {
		t.Fatalf("confirmation: %+v", got)
	}

	// Lock-out after MaxFailures wrong passwords: one notice to the sender.
	var toAccess string
	for _, l := range fin.Links {
		if l.Recipient.Address == "to@example.nl" {
			toAccess = l.AccessID
		}
	}
	for i := 0; i < cfg.MaxFailures; i++ {
		if _, err := svc.Unlock(ctx, toAccess, "wrong password!"); err == nil {
			t.Fatal("wrong password accepted")
		}
	}
	if got := ml.of(mail.KindLockout); len(got) != 1 || got[0].To != "sender@example.nl" {
		t.Fatalf("lock-out notices: %d, want 1 to the sender", len(got))
	}

	// A file counts as downloaded once, however often it is sent: one
	// notice (see TestDeliveryAccounting for ranges and parallel requests).
	var ccAccess string
	for _, l := range fin.Links {
		if l.Recipient.Address == "cc@example.nl" {
			ccAccess = l.AccessID
		}
	}
	sess, err := svc.Unlock(ctx, ccAccess, pw)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		if err := svc.RecordDelivery(ctx, sess, Delivery{Complete: true, Files: []Served{{Index: 0, Size: 5, Spans: []Span{{0, 5}}}}}); err != nil {
			t.Fatal(err)
		}
	}
	if got := ml.of(mail.KindDownload); len(got) != 1 {
		t.Fatalf("%d download notices, want 1", len(got))
	}

	// The reminder goes once, a day before expiry.
	mu.Lock()
	now = c.Transfer.ExpiresAt.Add(-23 * time.Hour)
	mu.Unlock()
	for i := 0; i < 2; i++ {
		if err := svc.remind(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if got := ml.of(mail.KindExpiryReminder); len(got) != 1 || got[0].To != "sender@example.nl" {
		t.Fatalf("reminders: %d, want 1", len(got))
	}

	// Revoking one recipient tells that recipient only; revoking the rest
	// tells the others.
	if err := svc.Revoke(ctx, o, "cc@example.nl"); err != nil {
		t.Fatal(err)
	}
	if got := ml.of(mail.KindRevoked); len(got) != 1 || got[0].To != "cc@example.nl" {
		t.Fatalf("revocation notices after one: %+v", got)
	}
	if err := svc.Revoke(ctx, o, ""); err != nil {
		t.Fatal(err)
	}
	if got := ml.of(mail.KindRevoked); len(got) != 3 {
		t.Fatalf("%d revocation notices, want 3", len(got))
	}

	// Never the password, the message or (without "show file names") a
	// file name in any mail.
	for _, m := range ml.msgs {
		for _, canary := range []string{pw, msgCanary, nameCanary} {
			if strings.Contains(m.Subject+m.Text+m.HTML, canary) {
				t.Errorf("%s mail to %s contains %q", m.Kind, m.To, canary)
			}
		}
	}
}

// TestRecipientLanguages: a transfer takes any language Kluis speaks as the
// recipients' language (written as people and forms do: "AR", "de-AT"),
// stores its code, mails the recipients in it and the sender in the
// sender's own language; any other language is refused with the codes
// that are allowed.
func TestRecipientLanguages(t *testing.T) {
	ctx := context.Background()
	db, err := store.OpenSQLite(ctx, filepath.Join(t.TempDir(), "kluis.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	blobs, _ := local.New(t.TempDir())
	keys, _ := secret.NewKeyring(secret.GenerateMasterKey())
	cfg := DefaultConfig()
	cfg.PasswordLogN = 10
	ml := &mailLog{}
	svc := New(Deps{DB: db, Blobs: blobs, Keys: keys, Config: cfg, Mailer: ml, Org: mail.Org{Name: "Gemeente Test", BaseURL: cfg.BaseURL}})
	for _, tc := range []struct{ in, want, sender, senderWant string }{
		{"ar", "ar", "en", "en"}, {"AR", "ar", "", "nl"}, {"de-AT", "de", "nl", "nl"}, {"fy", "fy", "de", "de"},
		{"uk", "uk", "en-GB", "en"}, {"tr", "tr", "xx", "nl"}, {"pl", "pl", "", "nl"}, {"fr", "fr", "", "nl"},
		{"", "nl", "", "nl"}, {"en", "en", "", "nl"},
	} {
		ml.msgs = nil
		c, err := svc.Create(ctx, CreateRequest{
			SenderEmail: "sender@example.nl", SenderName: "Sanne", SenderLang: tc.sender,
			To: []string{"to@example.nl"}, Message: "hallo", Lang: tc.in, PasswordMode: kluis.PasswordGenerate,
			Options: kluis.Options{Confirm: true},
		})
		if err != nil {
			t.Fatalf("language %q: %v", tc.in, err)
		}
		if c.Transfer.Lang != tc.want {
			t.Errorf("language %q stored as %q, want %q", tc.in, c.Transfer.Lang, tc.want)
		}
		fin, err := svc.Finish(ctx, Owner{TransferID: c.Transfer.ID}, "")
		if err != nil {
			t.Fatal(err)
		}
		if got := svc.LinkLang(ctx, fin.Links[0].AccessID); got != tc.want {
			t.Errorf("language %q: LinkLang = %q, want %q", tc.in, got, tc.want)
		}
		if n := ml.of(mail.KindNotify); len(n) != 1 || n[0].Lang != tc.want {
			t.Errorf("language %q: notification %+v, want one in %s", tc.in, n, tc.want)
		}
		if cm := ml.of(mail.KindConfirm); len(cm) != 1 || cm[0].Lang != tc.senderWant {
			t.Errorf("sender language %q: confirmation %+v, want one in %s", tc.sender, cm, tc.senderWant)
		}
	}
	for _, bad := range []string{"es", "xx", "nederlands", "../nl"} {
		_, err := svc.Create(ctx, CreateRequest{SenderEmail: "sender@example.nl", To: []string{"to@example.nl"},
			Message: "hallo", Lang: bad, PasswordMode: kluis.PasswordGenerate})
		if kluis.ErrorCode(err) != kluis.EINVALID || !strings.Contains(kluis.ErrorMessage(err), "nl, en, fy, de, fr, pl, tr, uk, ar") {
			t.Errorf("language %q: %v, want invalid naming the allowed codes", bad, err)
		}
	}
	if got := svc.LinkLang(ctx, secret.NewAccessID()); got != "" {
		t.Errorf("LinkLang of an unknown id = %q", got)
	}
}
