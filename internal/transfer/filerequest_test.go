package transfer_test

import (
	"bytes"
	"context"
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/kluis-nl/kluis"
	"github.com/kluis-nl/kluis/internal/mail"
	"github.com/kluis-nl/kluis/internal/secret"
	"github.com/kluis-nl/kluis/internal/store"
	"github.com/kluis-nl/kluis/internal/transfer"
)

const requester = "medewerker@example.nl"

// newRequest makes a file request from requester to the citizen, to the
// inbox identity's recipient, and returns it with its link's secret.
func (e *env) newRequest(t testing.TB, inbox *age.X25519Identity, message string) (*transfer.FileRequest, string) {
	t.Helper()
	fr, link, err := e.svc.CreateFileRequest(e.ctx, transfer.FileRequestInput{Requester: requester, RequesterName: "Mia Medewerker",
		Inbox: inbox.Recipient().String(), Address: "burger@example.org", Message: message, Lang: "uk", RequesterLang: "nl"})
	if err != nil {
		t.Fatalf("create file request: %v", err)
	}
	i := strings.LastIndex(link, "/q/")
	if i < 0 {
		t.Fatalf("link %q has no /q/", link)
	}
	return fr, link[i+3:]
}

// TestFileRequestLifecycle: a requester asks for files; the person uploads
// a file in pieces (as tus does), adds a message and sends; the requester
// is mailed, and opens the upload only with their inbox identity.
func TestFileRequestLifecycle(t *testing.T) {
	t.Parallel()
	forEachDB(t, func(t *testing.T, newEnv envMaker) {
		e := newEnv(t)
		mails := e.mailbox(t)
		inbox, _ := age.GenerateX25519Identity()
		fr, access := e.newRequest(t, inbox, "Stuur uw loonstroken van maart.")

		// The mail to the person: in their language, with the link, and
		// not the request's message.
		m := mails(mail.KindFileRequest, 1)[0]
		if m.To != "burger@example.org" || m.Lang != "uk" || !strings.Contains(m.Text, "/q/"+access) {
			t.Fatalf("request mail: to %s lang %s\n%s", m.To, m.Lang, m.Text)
		}
		if strings.Contains(m.Text, "loonstroken") || strings.Contains(m.HTML, "loonstroken") {
			t.Error("the request mail carries the request's message")
		}

		got, err := e.svc.FileRequestByLink(e.ctx, access)
		if err != nil || got.Message != "Stuur uw loonstroken van maart." || got.RequesterName != "Mia Medewerker" || got.State(e.clock.Now()) != "open" {
			t.Fatalf("by link: %v %+v", err, got)
		}
		up, err := e.svc.StartFileRequest(e.ctx, access, "eerste bericht")
		if err != nil {
			t.Fatal(err)
		}
		if up.FilesLeft != transfer.MaxRequestFiles || up.Left <= 0 {
			t.Errorf("budget: %+v", up)
		}
		// The upload token authorises the uploads like any transfer's.
		if o, err := e.svc.AuthorizeUpload(e.ctx, up.Token); err != nil || o != up.Owner {
			t.Fatalf("authorize upload token: %v %v", o, err)
		}
		data := randomBytes(3, 300_000)
		f := e.upload(up.Owner, "loonstrook-maart.pdf", data, 100_000, 50_000)
		// A second start (the page reloaded) keeps the upload and
		// replaces the message.
		up2, err := e.svc.StartFileRequest(e.ctx, access, "het echte bericht")
		if err != nil || up2.Owner != up.Owner || up2.Token != up.Token || up2.FilesLeft != transfer.MaxRequestFiles-1 {
			t.Fatalf("second start: %v %+v", err, up2)
		}
		if err := e.svc.FinishFileRequest(e.ctx, access); err != nil {
			t.Fatal(err)
		}
		// Sent: the link shows the thanks; nothing more can be added.
		if got, err := e.svc.FileRequestByLink(e.ctx, access); err != nil || got.DoneAt == nil {
			t.Fatalf("after send: %v %+v", err, got)
		}
		if _, err := e.svc.StartFileRequest(e.ctx, access, ""); kluis.ErrorCode(err) != kluis.ECONFLICT {
			t.Errorf("start after send: %v", err)
		}
		if _, err := e.svc.NewFile(e.ctx, up.Owner, "later.txt", "", 3); err == nil {
			t.Error("a file was added after the request was sent")
		}

		// The requester's mail: a link to the request's page, in their
		// language, naming no file.
		done := mails(mail.KindFileRequestDone, 1)[0]
		if done.To != requester || done.Lang != "nl" || !strings.Contains(done.Text, "/requests/"+fr.ID) || strings.Contains(done.Text, "loonstrook") {
			t.Fatalf("requester mail: to %s lang %s\n%s", done.To, done.Lang, done.Text)
		}

		// Only the inbox identity opens it; another one, a password, or
		// another requester cannot.
		other, _ := age.GenerateX25519Identity()
		if _, err := e.svc.OpenFileRequest(e.ctx, requester, fr.ID, other); kluis.ErrorCode(err) != kluis.EFORBIDDEN {
			t.Errorf("another inbox key: %v", err)
		}
		if _, err := e.svc.OpenFileRequest(e.ctx, "iemand@example.nl", fr.ID, inbox); kluis.ErrorCode(err) != kluis.ENOTFOUND {
			t.Errorf("another requester: %v", err)
		}
		s, err := e.svc.OpenFileRequest(e.ctx, requester, fr.ID, inbox)
		if err != nil {
			t.Fatal(err)
		}
		c, err := e.svc.Contents(e.ctx, s)
		if err != nil {
			t.Fatal(err)
		}
		if c.Message != "het echte bericht" || len(c.Files) != 1 || c.Files[0].Name != "loonstrook-maart.pdf" || c.Transfer.SenderEmail != "burger@example.org" {
			t.Fatalf("contents: %q %+v", c.Message, c.Files)
		}
		b, err := e.readFile(s, f.ID)
		if err != nil || !bytes.Equal(b, data) {
			t.Fatalf("download: %v (equal %v)", err, bytes.Equal(b, data))
		}
		// The session is a download session like a recipient's.
		if s2, err := e.svc.OpenSession(e.ctx, s.Token); err != nil || s2.TransferID() != s.TransferID() {
			t.Fatalf("session: %v", err)
		}

		// The list and the requester's view.
		list, err := e.svc.FileRequests(e.ctx, requester)
		if err != nil || len(list) != 1 || list[0].Files != 1 || list[0].State(e.clock.Now()) != "done" || list[0].Result == nil {
			t.Fatalf("list: %v %+v", err, list)
		}
		// Revoke: the upload goes too.
		if err := e.svc.RevokeFileRequest(e.ctx, requester, fr.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := e.svc.OpenSession(e.ctx, s.Token); kluis.ErrorCode(err) != kluis.EREVOKED {
			t.Errorf("session after revoke: %v", err)
		}
		if _, err := e.svc.FileRequestByLink(e.ctx, access); kluis.ErrorCode(err) != kluis.ENOTFOUND {
			t.Errorf("link after revoke: %v", err)
		}
		if _, err := e.svc.Purge(e.ctx); err != nil {
			t.Fatal(err)
		}
		if n := len(e.blobFiles(up.Owner.TransferID)); n != 0 {
			t.Errorf("%d blob folders left after revoke and purge", n)
		}
	})
}

// TestFileRequestLimits: what a request refuses, each with its own error.
func TestFileRequestLimits(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	inbox, _ := age.GenerateX25519Identity()
	in := transfer.FileRequestInput{Requester: requester, Inbox: inbox.Recipient().String(), Address: "burger@example.org", Message: "Uw paspoort"}

	for _, c := range []struct {
		name  string
		edit  func(*transfer.FileRequestInput)
		field string
		code  string
	}{
		{"bad address", func(i *transfer.FileRequestInput) { i.Address = "geen adres" }, transfer.FieldRequestAddress, transfer.CodeAddressInvalid},
		{"no address", func(i *transfer.FileRequestInput) { i.Address = "" }, transfer.FieldRequestAddress, transfer.CodeNoRecipients},
		{"two addresses", func(i *transfer.FileRequestInput) { i.Address = "a@example.org; b@example.org" }, transfer.FieldRequestAddress, transfer.CodeTooManyRecipients},
		{"own address", func(i *transfer.FileRequestInput) { i.Address = requester }, transfer.FieldRequestAddress, transfer.CodeAddressNotAllowed},
		{"no message", func(i *transfer.FileRequestInput) { i.Message = " " }, transfer.FieldMessage, transfer.CodeNothingToSend},
		{"long message", func(i *transfer.FileRequestInput) { i.Message = strings.Repeat("a", transfer.MaxRequestMessage+1) }, transfer.FieldMessage, transfer.CodeTooLong},
		{"past", func(i *transfer.FileRequestInput) { i.ExpiresOn = "2001-01-01" }, transfer.FieldExpires, transfer.CodeExpiryPast},
		{"too late", func(i *transfer.FileRequestInput) { i.ExpiresOn = "2999-01-01" }, transfer.FieldExpires, transfer.CodeExpiryTooLate},
		{"language", func(i *transfer.FileRequestInput) { i.Lang = "xx" }, transfer.FieldLang, transfer.CodeLangUnsupported},
		{"ask on two lines", func(i *transfer.FileRequestInput) { i.Ask = []string{"loonstrook\nen meer"} }, transfer.FieldRequestAsk, transfer.CodeNotOneLine},
		{"ask too long", func(i *transfer.FileRequestInput) {
			i.Ask = []string{strings.Repeat("a", transfer.MaxRequestAskItem+1)}
		},
			transfer.FieldRequestAsk, transfer.CodeTooLong},
		{"ask too many", func(i *transfer.FileRequestInput) {
			i.Ask = strings.Split(strings.Repeat("x,", transfer.MaxRequestAsk+1), ",")
		}, transfer.FieldRequestAsk, transfer.CodeTooManyAsked},
	} {
		t.Run(c.name, func(t *testing.T) {
			i := in
			c.edit(&i)
			_, _, err := e.svc.CreateFileRequest(e.ctx, i)
			found := false
			for _, f := range kluis.FieldErrors(err) {
				found = found || f.Field == c.field && f.Code == c.code
			}
			if !found {
				t.Errorf("got %v (%+v), want %s on %s", err, kluis.FieldErrors(err), c.code, c.field)
			}
		})
	}
	// Several addresses at once (the API): one bad one makes none; the
	// others each get a request of their own.
	many := in
	many.Requester = "collega@example.nl"
	many.Address = "a@example.org; geen adres; b@example.org"
	if _, _, err := e.svc.CreateFileRequests(e.ctx, many); kluis.ErrorCode(err) != kluis.EINVALID {
		t.Errorf("several with a bad one: %v", err)
	}
	if frs, _ := e.svc.FileRequests(e.ctx, many.Requester); len(frs) != 0 {
		t.Errorf("a refused list left %d requests", len(frs))
	}
	many.Address = "a@example.org; b@example.org"
	many.Ask = []string{"loonstrook", "kopie ID, beide kanten"}
	frs, links, err := e.svc.CreateFileRequests(e.ctx, many)
	if err != nil || len(frs) != 2 || len(links) != 2 || links[0] == links[1] || frs[0].Address != "a@example.org" ||
		frs[1].Message != in.Message+"\n\n- loonstrook\n- kopie ID, beide kanten" {
		t.Fatalf("several: %v %+v", err, frs)
	}
	noInbox := in
	noInbox.Inbox = ""
	if _, _, err := e.svc.CreateFileRequest(e.ctx, noInbox); kluis.ErrorCode(err) != kluis.ECONFLICT {
		t.Errorf("without an inbox key: %v", err)
	}

	// The files per request.
	_, access := e.newRequest(t, inbox, "Stuur maximaal twintig bestanden")
	up, err := e.svc.StartFileRequest(e.ctx, access, "")
	if err != nil {
		t.Fatal(err)
	}
	for i := range transfer.MaxRequestFiles {
		e.upload(up.Owner, "f"+string(rune('a'+i))+".txt", []byte("x"))
	}
	_, err = e.svc.NewFile(e.ctx, up.Owner, "een te veel.txt", "", 1)
	if fe := kluis.FieldErrors(err); len(fe) != 1 || fe[0].Code != transfer.CodeTooManyFiles {
		t.Errorf("file %d: %v", transfer.MaxRequestFiles+1, err)
	}
	// Nothing to send: a request without upload cannot be finished.
	_, access2 := e.newRequest(t, inbox, "Leeg")
	if err := e.svc.FinishFileRequest(e.ctx, access2); kluis.ErrorCode(err) != kluis.EINVALID {
		t.Errorf("finish without upload: %v", err)
	}
	// A link never issued, and one that expired.
	if _, err := e.svc.FileRequestByLink(e.ctx, "abcdefghijklmnopqrstuvwxyz"); kluis.ErrorCode(err) != kluis.ENOTFOUND {
		t.Errorf("unknown link: %v", err)
	}
	e.clock.Advance(e.cfg.DefaultExpiry + time.Minute)
	if _, err := e.svc.FileRequestByLink(e.ctx, access2); kluis.ErrorCode(err) != kluis.EEXPIRED {
		t.Errorf("expired link: %v", err)
	}
	if _, err := e.svc.StartFileRequest(e.ctx, access2, ""); kluis.ErrorCode(err) != kluis.EEXPIRED {
		t.Errorf("start on an expired link: %v", err)
	}
	// Uploads stop at the deadline too.
	if _, err := e.svc.NewFile(e.ctx, up.Owner, "laat.txt", "", 1); err == nil {
		t.Error("a file was added after the deadline")
	}
	// The purge forgets the link and the message; after the retention
	// the minimal record goes too.
	if _, err := e.svc.Purge(e.ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.FileRequestByLink(e.ctx, access2); kluis.ErrorCode(err) != kluis.ENOTFOUND {
		t.Errorf("purged link: %v", err)
	}
	list, err := e.svc.FileRequests(e.ctx, requester)
	if err != nil || len(list) != 2 || list[0].Message != "" {
		t.Fatalf("after purge: %v %+v", err, list)
	}
	e.clock.Advance(e.cfg.Retention + time.Hour)
	if _, err := e.svc.Purge(e.ctx); err != nil {
		t.Fatal(err)
	}
	if list, err := e.svc.FileRequests(e.ctx, requester); err != nil || len(list) != 0 {
		t.Fatalf("after retention: %v %d", err, len(list))
	}

	// Requests per requester per day.
	for i := 0; ; i++ {
		_, _, err := e.svc.CreateFileRequest(e.ctx, in)
		if err == nil {
			continue
		}
		if kluis.ErrorCode(err) != kluis.ETOOMANYREQUESTS || i != transfer.RequestsPerDay {
			t.Fatalf("request %d: %v", i+1, err)
		}
		break
	}
}

// TestFileRequestCanary: what a person sends on a request is nowhere in
// the data folder or the logs in plain, and the data folder with the
// master key cannot open it: the only wrap of its identity is to the
// requester's inbox key.
func TestFileRequestCanary(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.runMail(t)
	inbox, _ := age.GenerateX25519Identity()
	fr, access := e.newRequest(t, inbox, "Uw bankafschrift")
	marker := canary("CANARY-REQUEST-")
	name := canary("canary-request-name-") + ".pdf"
	message := canary("canary-request-message-")
	content := randomBytes(9, 200_000)
	copy(content[100_000:], marker)
	content = append(content, marker...)
	up, err := e.svc.StartFileRequest(e.ctx, access, message)
	if err != nil {
		t.Fatal(err)
	}
	f, err := e.svc.AddRequestFile(e.ctx, up, name, "application/pdf", bytes.NewReader(content))
	if err != nil {
		t.Fatal(err)
	}
	if err := e.svc.FinishFileRequest(e.ctx, access); err != nil {
		t.Fatal(err)
	}
	s, err := e.svc.OpenFileRequest(e.ctx, requester, fr.ID, inbox)
	if err != nil {
		t.Fatal(err)
	}
	if b, err := e.readFile(s, f.ID); err != nil || !bytes.Equal(b, content) {
		t.Fatalf("round trip: %v", err)
	}
	plain := map[string][]byte{"content marker": []byte(marker), "file name": []byte(name), "message": []byte(message)}
	bearers := map[string][]byte{"link secret": []byte(access), "upload token": []byte(up.Token), "session token": []byte(s.Token)}
	control := false
	walkFiles(t, e.dir, func(p string, b []byte) {
		control = control || bytes.Contains(b, []byte("burger@example.org"))
		if hits := containsAny(b, plain); len(hits) > 0 {
			t.Errorf("%s holds %v", p, hits)
		}
		if hits := containsAny(b, bearers); len(hits) > 0 {
			t.Errorf("%s holds %v", p, hits)
		}
	})
	if !control {
		t.Fatal("positive control failed: the address was found in no file")
	}
	if hits := containsAny(e.logs.Bytes(), plain); len(hits) > 0 {
		t.Errorf("log holds %v", hits)
	}
	if hits := containsAny(e.logs.Bytes(), bearers); len(hits) > 0 {
		t.Errorf("log holds %v", hits)
	}

	// The database and the master key: the transfer's identity is wrapped
	// only to the inbox recipient (one X25519 stanza, no scrypt), so no
	// password, and nothing else in the data folder, opens it.
	row, err := e.db.Transfer(e.ctx, up.Owner.TransferID)
	if err != nil {
		t.Fatal(err)
	}
	if row.PasswordMode != string(kluis.PasswordInbox) {
		t.Fatalf("mode %q", row.PasswordMode)
	}
	wrapped, err := e.keys.Open("transfer.identity", row.ID, row.IdentitySealed)
	if err != nil {
		t.Fatal(err)
	}
	stanzas := regexp.MustCompile(`(?m)^-> (\S+)`).FindAllStringSubmatch(string(wrapped), -1)
	if len(stanzas) != 1 || stanzas[0][1] != "X25519" {
		t.Fatalf("the identity's wrap has stanzas %v, want one X25519", stanzas)
	}
	if _, err := age.Decrypt(bytes.NewReader(wrapped), mustScrypt(t, "")); err == nil {
		t.Error("the wrap opened without the inbox key")
	}
	if _, err := e.svc.Unlock(e.ctx, sessionAccess(t, e, row.ID), "any password"); kluis.ErrorCode(err) != kluis.EFORBIDDEN {
		t.Errorf("a password on an inbox upload: %v", err)
	}
}

func mustScrypt(t *testing.T, pw string) age.Identity {
	t.Helper()
	id, err := age.NewScryptIdentity(pw + "x")
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// sessionAccess finds the access id Finish gave the requester's recipient
// row: it is never stored, so a fresh one is set in the database (as a
// thief with write access could).
func sessionAccess(t *testing.T, e *env, transferID string) string {
	t.Helper()
	rs, err := e.db.Recipients(context.Background(), transferID)
	if err != nil || len(rs) != 1 {
		t.Fatalf("recipients: %v", err)
	}
	access := secret.NewAccessID()
	if err := e.db.SetRecipientAccess(context.Background(), rs[0].ID, secret.HashToken(access), nil); err != nil && !errors.Is(err, store.ErrConflict) {
		t.Fatal(err)
	}
	return access
}
