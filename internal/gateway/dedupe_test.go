package gateway_test

import (
	"crypto/sha256"
	"strings"
	"testing"
	"time"

	"github.com/kluis-nl/kluis"
	"github.com/kluis-nl/kluis/internal/gateway"
	"github.com/kluis-nl/kluis/internal/mail"
	"github.com/kluis-nl/kluis/internal/store/storetest"
	"github.com/kluis-nl/kluis/internal/transfer"
)

func withID(msg, id string) string {
	return strings.Replace(msg, "Subject:", "Message-ID: <"+id+">\nSubject:", 1)
}

func transfersOf(t *testing.T, e *env, email string) []*kluis.Transfer {
	t.Helper()
	ts, err := e.app.Transfers.SenderTransfers(t.Context(), email)
	if err != nil {
		t.Fatal(err)
	}
	return ts
}

// TestSameMailTwice: a mail the mail server hands over again (its 250 got
// lost) with the same Message-ID from the same sender is answered 250 and
// makes no second transfer, no second confirmation and no second
// notification, for the dedupe window.
func TestSameMailTwice(t *testing.T) { sameMailTwice(t, start(t, setup{})) }

func TestSameMailTwicePostgres(t *testing.T) {
	storetest.RequirePostgres(t)
	sameMailTwice(t, start(t, setup{db: storetest.Postgres(t)}))
}

func sameMailTwice(t *testing.T, e *env) {
	jan := submission{from: "jan@gemeente.nl", rcpts: []string{"alice@example.org"}, msg: withID(plainMail, "dup1@gemeente.nl")}
	for i := range 3 {
		if err := e.send(t, jan); err != nil {
			t.Fatalf("delivery %d: %v", i+1, err)
		}
	}
	if n := len(transfersOf(t, e, "jan@gemeente.nl")); n != 1 {
		t.Fatalf("%d transfers from three deliveries of one mail, want 1", n)
	}
	if n := len(e.conf.all()); n != 1 {
		t.Errorf("%d confirmations, want 1", n)
	}
	if n := len(e.app.Delivered(mail.KindNotify, "alice@example.org")); n != 1 {
		t.Errorf("%d notifications, want 1", n)
	}
	if !strings.Contains(e.app.Logs.String(), "not taken twice") {
		t.Error("the log does not say the duplicate was not taken")
	}
	// The same Message-ID from another sender is another mail.
	piet := submission{from: "piet@gemeente.nl", rcpts: []string{"alice@example.org"},
		msg: strings.ReplaceAll(withID(plainMail, "dup1@gemeente.nl"), "jan@", "piet@")}
	if err := e.send(t, piet); err != nil {
		t.Fatal(err)
	}
	if n := len(transfersOf(t, e, "piet@gemeente.nl")); n != 1 {
		t.Errorf("piet: %d transfers, want 1", n)
	}
	// A mail without a Message-ID cannot be recognised: taken each time.
	bob := submission{from: "bob@gemeente.nl", rcpts: []string{"alice@example.org"}, msg: strings.ReplaceAll(plainMail, "jan@", "bob@")}
	for range 2 {
		if err := e.send(t, bob); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(transfersOf(t, e, "bob@gemeente.nl")); n != 2 {
		t.Errorf("bob: %d transfers, want 2", n)
	}
	// A refused mail is judged again when it comes again (the claim was
	// released): here with the marker the sender forgot.
	noMarker := jan
	noMarker.msg = strings.Replace(withID(plainMail, "dup2@gemeente.nl"), "[vertrouwelijk] ", "", 1)
	if got := code(t, e.send(t, noMarker)); got != 550 {
		t.Fatalf("unmarked: %d", got)
	}
	fixed := jan
	fixed.msg = withID(plainMail, "dup2@gemeente.nl")
	if err := e.send(t, fixed); err != nil {
		t.Fatalf("the same mail after a refusal: %v", err)
	}
	if n := len(transfersOf(t, e, "jan@gemeente.nl")); n != 2 {
		t.Fatalf("jan: %d transfers, want 2", n)
	}
	// After the window the mail is forgotten.
	e.app.Clock.Advance(gateway.DedupeWindow + time.Minute)
	if err := e.gw.Cleanup(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := e.send(t, jan); err != nil {
		t.Fatal(err)
	}
	if n := len(transfersOf(t, e, "jan@gemeente.nl")); n != 3 {
		t.Errorf("jan after the window: %d transfers, want 3", n)
	}
}

// TestTakeOverAfterStop: a gateway that stopped in the middle of a mail
// left its claim and a draft (here made as that gateway made it, with a
// waiting password). While the claim holds, the same mail is answered 451
// so the mail server tries again; once it ran out, the next delivery
// erases the draft and its waiting password and takes the mail. A stopped
// gateway whose transfer was in fact finished (it stopped before it could
// answer 250) leaves nothing to take again: 250, no second transfer.
func TestTakeOverAfterStop(t *testing.T) {
	const lease = time.Minute
	e := start(t, setup{lease: lease})
	a := e.app
	ctx := t.Context()
	mailText := withID(plainMail, "stopped1@gemeente.nl")

	// What the stopped gateway left: its claim, and a draft with a file
	// half written and a waiting password.
	draft, err := a.Transfers.Create(ctx, transfer.CreateRequest{SenderEmail: "jan@gemeente.nl", To: []string{"alice@example.org"},
		Message: "test", PasswordMode: kluis.PasswordGenerate})
	if err != nil {
		t.Fatal(err)
	}
	owner := transfer.Owner{TransferID: draft.Transfer.ID}
	f, err := a.Transfers.NewPlainFile(ctx, owner, "half.bin", "application/octet-stream", -1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Transfers.WriteFile(ctx, owner, f.ID, 0, strings.NewReader(strings.Repeat("x", 100_000))); err != nil {
		t.Fatal(err)
	}
	pw := gateway.NewPasswords(gateway.PasswordsDeps{DB: a.DB, Keys: a.Keys, Mailer: a.Outbox, Org: mail.Org{BaseURL: a.URL()}, Now: a.Clock.Now})
	tx, err := a.DB.BeginTx(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pw.Confirm(ctx, tx, gateway.Confirmation{TransferID: draft.Transfer.ID, Sender: "jan@gemeente.nl", Lang: "nl", Password: draft.Password}); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	hash := sha256.Sum256([]byte("stopped1@gemeente.nl"))
	now := a.Clock.Now()
	if _, err := a.DB.ClaimGatewayMessage(ctx, "jan@gemeente.nl", hash[:], "stopped-gateway", now, now.Add(lease)); err != nil {
		t.Fatal(err)
	}
	if err := a.DB.SetGatewayMessageTransfer(ctx, "jan@gemeente.nl", hash[:], "stopped-gateway", draft.Transfer.ID); err != nil {
		t.Fatal(err)
	}
	if n := waiting(t, a); n != 1 {
		t.Fatalf("%d waiting passwords, want 1", n)
	}

	s := submission{from: "jan@gemeente.nl", rcpts: []string{"alice@example.org"}, msg: mailText}
	if got := code(t, e.send(t, s)); got != 451 {
		t.Fatalf("while the claim holds: %d, want 451", got)
	}
	a.Clock.Advance(lease + time.Second)
	if err := e.send(t, s); err != nil {
		t.Fatalf("after the claim ran out: %v", err)
	}
	if _, err := a.Transfers.Transfer(ctx, owner); kluis.ErrorCode(err) != kluis.ENOTFOUND {
		t.Errorf("the left draft is still there: %v", err)
	}
	// The draft's waiting password went with it (this gateway's own
	// Confirmer keeps the new one's in the test).
	if n := waiting(t, a); n != 0 {
		t.Errorf("%d waiting passwords, want 0: the draft's is still there", n)
	}
	if cs := e.conf.all(); len(cs) != 1 || cs[0].TransferID == draft.Transfer.ID {
		t.Errorf("confirmations: %+v", cs)
	}
	ts := transfersOf(t, e, "jan@gemeente.nl")
	if len(ts) != 1 || ts[0].ID == draft.Transfer.ID || ts[0].State != kluis.StateReady {
		t.Fatalf("transfers after the take-over: %+v", ts)
	}
	if n := len(a.Delivered(mail.KindNotify, "alice@example.org")); n != 1 {
		t.Errorf("%d notifications, want 1", n)
	}
	// And now it is taken.
	if err := e.send(t, s); err != nil || len(transfersOf(t, e, "jan@gemeente.nl")) != 1 {
		t.Fatalf("again after the take-over: %v", err)
	}

	// A gateway that finished the transfer and stopped before its 250.
	hash2 := sha256.Sum256([]byte("stopped2@gemeente.nl"))
	now = a.Clock.Now()
	if _, err := a.DB.ClaimGatewayMessage(ctx, "jan@gemeente.nl", hash2[:], "stopped-gateway", now, now.Add(lease)); err != nil {
		t.Fatal(err)
	}
	if err := a.DB.SetGatewayMessageTransfer(ctx, "jan@gemeente.nl", hash2[:], "stopped-gateway", ts[0].ID); err != nil {
		t.Fatal(err)
	}
	a.Clock.Advance(lease + time.Second)
	s.msg = withID(plainMail, "stopped2@gemeente.nl")
	if err := e.send(t, s); err != nil {
		t.Fatal(err)
	}
	if n := len(transfersOf(t, e, "jan@gemeente.nl")); n != 1 {
		t.Errorf("%d transfers: a finished mail was taken again", n)
	}
	if _, err := a.DB.ClaimGatewayMessage(ctx, "jan@gemeente.nl", hash2[:], "x", a.Clock.Now(), a.Clock.Now().Add(lease)); err == nil {
		t.Error("the finished mail is not recorded as taken")
	}
}

// TestLoopGuard: Kluis's own mails, automatic mails and mails that went
// round too many servers are refused; a mail with an ordinary number of
// hops and Auto-Submitted: no is taken.
func TestLoopGuard(t *testing.T) {
	e := start(t, setup{})
	hops := func(n int) string {
		var b strings.Builder
		for i := range n {
			b.WriteString("Received: from mx" + string(rune('a'+i%26)) + ".gemeente.nl by relay.gemeente.nl; Sat, 5 Dec 2026 10:00:00 +0100\n")
		}
		return b.String()
	}
	for _, tc := range []struct {
		name, head string
		code       int
	}{
		{"Kluis's own mail", mail.OriginHeader + ": " + mail.OriginValue + "\n", 554},
		{"auto-generated", "Auto-Submitted: auto-generated\n", 550},
		{"auto-replied", "Auto-Submitted: auto-replied; owner-email=\"jan@gemeente.nl\"\n", 550},
		{"too many hops", hops(gateway.DefaultMaxHops + 1), 554},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := e.send(t, submission{from: "jan@gemeente.nl", rcpts: []string{"alice@example.org"}, msg: tc.head + plainMail})
			if got := code(t, err); got != tc.code {
				t.Errorf("code %d (%v), want %d", got, err, tc.code)
			}
		})
	}
	if n := len(transfersOf(t, e, "jan@gemeente.nl")); n != 0 {
		t.Fatalf("%d transfers from looping mail", n)
	}
	ok := hops(gateway.DefaultMaxHops) + "Auto-Submitted: no\n" + plainMail
	if err := e.send(t, submission{from: "jan@gemeente.nl", rcpts: []string{"alice@example.org"}, msg: ok}); err != nil {
		t.Fatalf("an ordinary mail: %v", err)
	}
}
