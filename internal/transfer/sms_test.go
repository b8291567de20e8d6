package transfer_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kluis-nl/kluis"
	"github.com/kluis-nl/kluis/internal/app/apptest"
	"github.com/kluis-nl/kluis/internal/audit"
	"github.com/kluis-nl/kluis/internal/kluistest"
	"github.com/kluis-nl/kluis/internal/store/storetest"
	"github.com/kluis-nl/kluis/internal/transfer"
)

// gateway is an SMS gateway started by the test: it records what it is
// asked to send. The server knows it only by --sms-url.
type gateway struct {
	srv  *httptest.Server
	mu   sync.Mutex
	sent []struct{ To, Text, Auth string }
}

func newGateway(t testing.TB) *gateway {
	g := &gateway{}
	g.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m struct{ To, Text string }
		if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" || json.NewDecoder(r.Body).Decode(&m) != nil {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		g.mu.Lock()
		g.sent = append(g.sent, struct{ To, Text, Auth string }{m.To, m.Text, r.Header.Get("Authorization")})
		g.mu.Unlock()
		w.WriteHeader(http.StatusCreated)
	}))
	t.Cleanup(g.srv.Close)
	return g
}

func (g *gateway) count() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.sent)
}

var smsCodeRE = regexp.MustCompile(`\b[0-9]{6}\b`)

// lastCode is the code of the last message sent.
func (g *gateway) lastCode(t testing.TB) string {
	t.Helper()
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.sent) == 0 {
		t.Fatal("no SMS sent")
	}
	c := smsCodeRE.FindString(g.sent[len(g.sent)-1].Text)
	if c == "" {
		t.Fatalf("no code in %q", g.sent[len(g.sent)-1].Text)
	}
	return c
}

// smsEnv is an engine whose SMS codes go to g, with more flags args.
func smsEnv(t testing.TB, g *gateway, postgres bool, args ...string) *env {
	t.Helper()
	o := apptest.Options{Clock: kluistest.NewClock(), Args: append([]string{
		"--sms-url", g.srv.URL + "/send", "--sms-body", `{"to": {{.To}}, "text": {{.Text}}}`,
	}, args...)}
	if postgres {
		o.DB = storetest.Postgres(t)
	}
	return openEnv(t, o)
}

const canaryPhone = "+31 6 9988 7766"

// smsTransfer is a finished transfer to one recipient verified by SMS at
// canaryPhone, and that recipient's access id.
func (e *env) smsTransfer(t testing.TB) (*transfer.Created, string) {
	t.Helper()
	c, err := e.svc.Create(e.ctx, transfer.CreateRequest{
		SenderEmail: "afzender@example.nl", To: []string{"burger@example.nl"}, PasswordMode: kluis.PasswordManual,
		Password: "Vrolijk-Paarse-Olifant-42", Message: "Geheim bericht", Subject: "Uw dossier",
		Auth: map[string]transfer.RecipientAuth{"Burger@example.nl": {Method: kluis.AuthPasswordSMS, Phone: canaryPhone}},
	})
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	c.Password = "Vrolijk-Paarse-Olifant-42"
	e.upload(owner(c), "dossier.pdf", []byte("inhoud van het dossier"))
	return c, e.finish(c).Links[0].AccessID
}

// pending unlocks with the right password and returns the pending
// session, checking that it opens nothing yet.
func (e *env) pending(t testing.TB, access string) *transfer.Pending {
	t.Helper()
	s, err := e.svc.Unlock(e.ctx, access, "Vrolijk-Paarse-Olifant-42")
	if err != nil {
		t.Fatalf("unlock: %v", err)
	}
	if !s.Pending() {
		t.Fatal("the password alone opened a transfer that needs an SMS code")
	}
	if _, err := e.svc.OpenSession(e.ctx, s.Token); kluis.ErrorCode(err) != kluis.EUNAUTHORIZED {
		t.Fatalf("a pending session opened: %v", err)
	}
	p, err := e.svc.OpenPending(e.ctx, s.Token)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestSMSCodeOpensAfterPassword: the right password sends an SMS naming
// the organisation (and not the subject or message) to the sender's
// number; a wrong code is refused, the right one opens the transfer once
// (a replay is refused), and the sender's view shows the masked number
// and when the recipient was verified.
func TestSMSCodeOpensAfterPassword(t *testing.T) {
	t.Parallel()
	for _, pg := range []bool{false, true} {
		t.Run(map[bool]string{false: "sqlite", true: "postgres"}[pg], func(t *testing.T) {
			t.Parallel()
			if pg {
				storetest.RequirePostgres(t)
			}
			g := newGateway(t)
			e := smsEnv(t, g, pg)
			c, access := e.smsTransfer(t)
			if g.count() != 0 {
				t.Fatal("an SMS was sent before the password")
			}
			if _, err := e.svc.Unlock(e.ctx, access, "fout-wachtwoord"); kluis.ErrorCode(err) != kluis.EWRONGSECRET {
				t.Fatalf("wrong password: %v", err)
			}
			p := e.pending(t, access)
			if p.Phone != "+31 6 •••• ••66" {
				t.Errorf("masked phone %q", p.Phone)
			}
			if err := e.svc.SendCode(e.ctx, p); err != nil {
				t.Fatal(err)
			}
			if g.count() != 1 || g.sent[0].To != "+31699887766" {
				t.Fatalf("sent %+v, want one SMS to +31699887766", g.sent)
			}
			text := g.sent[0].Text
			if !strings.Contains(text, "Gemeente Test") || strings.Contains(text, "dossier") || strings.Contains(text, "Geheim") {
				t.Errorf("SMS text %q: want the organisation, not the subject or message", text)
			}
			code := g.lastCode(t)
			wrong := "000000"
			if code == wrong {
				wrong = "111111"
			}
			if _, err := e.svc.VerifyCode(e.ctx, p, wrong); kluis.ErrorCode(err) != kluis.EWRONGSECRET {
				t.Fatalf("wrong code: %v", err)
			}
			sess, err := e.svc.VerifyCode(e.ctx, p, code[:3]+" "+code[3:])
			if err != nil {
				t.Fatalf("right code: %v", err)
			}
			if sess.Pending() {
				t.Fatal("verified session still pending")
			}
			cont, err := e.svc.Contents(e.ctx, sess)
			if err != nil || cont.Message != "Geheim bericht" {
				t.Fatalf("contents: %v %+v", err, cont)
			}
			if _, err := e.svc.VerifyCode(e.ctx, p, code); kluis.ErrorCode(err) != kluis.EWRONGSECRET {
				t.Errorf("replayed code: %v, want wrong_password", err)
			}
			if _, err := e.svc.OpenSession(e.ctx, p.Token); err != nil {
				t.Errorf("the verified session: %v", err)
			}
			view, err := e.svc.Transfer(e.ctx, owner(c))
			if err != nil {
				t.Fatal(err)
			}
			r := view.Recipients[0]
			if r.AuthMethod != kluis.AuthPasswordSMS || r.Phone != "+31 6 •••• ••66" || r.VerifiedAt == nil {
				t.Errorf("sender's view %+v: want the method, the masked number and the verification time", r)
			}
			var methods []string
			for _, a := range e.auditEntries(e.withAudit()) {
				if a.Action == audit.RecipientUnlock {
					methods = append(methods, a.Result+" "+a.Detail)
				}
			}
			if len(methods) != 2 || !strings.HasSuffix(methods[0], "method=password+sms step=password") || methods[1] != "ok method=password+sms" {
				t.Errorf("audit of the open: %q", methods)
			}
		})
	}
}

// TestSMSCodeExpiresAndCooldown: a code works 10 minutes; a new one can
// be asked for after a minute, and it replaces the old one.
func TestSMSCodeExpiresAndCooldown(t *testing.T) {
	t.Parallel()
	g := newGateway(t)
	e := smsEnv(t, g, false)
	_, access := e.smsTransfer(t)
	p := e.pending(t, access)
	if err := e.svc.SendCode(e.ctx, p); err != nil {
		t.Fatal(err)
	}
	first := g.lastCode(t)
	if err := e.svc.SendCode(e.ctx, p); kluis.ErrorCode(err) != kluis.ETOOMANYREQUESTS {
		t.Errorf("second code at once: %v, want rate_limited", err)
	}
	e.clock.Advance(10*time.Minute + time.Second)
	if _, err := e.svc.VerifyCode(e.ctx, p, first); kluis.ErrorCode(err) != kluis.EWRONGSECRET {
		t.Fatalf("expired code: %v, want wrong_password", err)
	}
	p, err := e.svc.OpenPending(e.ctx, p.Token)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.svc.SendCode(e.ctx, p); err != nil {
		t.Fatal(err)
	}
	second := g.lastCode(t)
	if first != second {
		if _, err := e.svc.VerifyCode(e.ctx, p, first); kluis.ErrorCode(err) != kluis.EWRONGSECRET {
			t.Errorf("replaced code: %v", err)
		}
	}
	if _, err := e.svc.VerifyCode(e.ctx, p, second); err != nil {
		t.Errorf("new code: %v", err)
	}
	// A pending session ends after 15 minutes, code or not.
	p2 := e.pending(t, access)
	e.clock.Advance(15*time.Minute + time.Second)
	if _, err := e.svc.OpenPending(e.ctx, p2.Token); kluis.ErrorCode(err) != kluis.EUNAUTHORIZED {
		t.Errorf("pending session after 15 minutes: %v", err)
	}
}

// TestSMSLockoutSharesPasswordCount: wrong passwords and wrong codes add
// up to the one limit, and the right password in between gives no fresh
// code tries.
func TestSMSLockoutSharesPasswordCount(t *testing.T) {
	t.Parallel()
	g := newGateway(t)
	e := smsEnv(t, g, false, "--max-failures", "10")
	_, access := e.smsTransfer(t)
	for i := range 5 {
		if _, err := e.svc.Unlock(e.ctx, access, "fout"); kluis.ErrorCode(err) != kluis.EWRONGSECRET {
			t.Fatalf("wrong password %d: %v", i+1, err)
		}
	}
	p := e.pending(t, access)
	if err := e.svc.SendCode(e.ctx, p); err != nil {
		t.Fatal(err)
	}
	wrong := "000000"
	if g.lastCode(t) == wrong {
		wrong = "111111"
	}
	for i := range 4 {
		if _, err := e.svc.VerifyCode(e.ctx, p, wrong); kluis.ErrorCode(err) != kluis.EWRONGSECRET {
			t.Fatalf("wrong code %d: %v", i+1, err)
		}
	}
	p = e.pending(t, access) // the right password again: the count stays
	if _, err := e.svc.VerifyCode(e.ctx, p, wrong); kluis.ErrorCode(err) != kluis.ELOCKED {
		t.Fatalf("10th wrong try (5 passwords, 5 codes): %v, want locked", err)
	}
	if _, err := e.svc.Unlock(e.ctx, access, "Vrolijk-Paarse-Olifant-42"); kluis.ErrorCode(err) != kluis.ELOCKED {
		t.Errorf("right password while locked: %v", err)
	}
}

// TestSMSCaps: at most --sms-per-recipient-day codes to one recipient
// and --sms-per-hour in all; the gateway is not asked beyond them.
func TestSMSCaps(t *testing.T) {
	t.Parallel()
	g := newGateway(t)
	e := smsEnv(t, g, false, "--sms-per-recipient-day", "2", "--sms-per-hour", "3")
	_, access := e.smsTransfer(t)
	p := e.pending(t, access)
	for i := range 2 {
		if err := e.svc.SendCode(e.ctx, p); err != nil {
			t.Fatalf("code %d: %v", i+1, err)
		}
		e.clock.Advance(2 * time.Minute)
	}
	if err := e.svc.SendCode(e.ctx, p); kluis.ErrorCode(err) != kluis.EQUOTA {
		t.Fatalf("third code to one recipient in a day: %v, want quota_exceeded", err)
	}
	_, other := e.smsTransfer(t)
	q := e.pending(t, other)
	if err := e.svc.SendCode(e.ctx, q); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(2 * time.Minute)
	if err := e.svc.SendCode(e.ctx, q); kluis.ErrorCode(err) != kluis.EQUOTA {
		t.Fatalf("fourth code in an hour: %v, want quota_exceeded", err)
	}
	if g.count() != 3 {
		t.Errorf("gateway asked %d times, want 3", g.count())
	}
	e.clock.Advance(time.Hour)
	if err := e.svc.SendCode(e.ctx, q); err != nil {
		t.Errorf("an hour later: %v", err)
	}
}

// TestSMSPhoneOnlySealed: the mobile number is in no log and, in the
// data folder (SQLite database and WAL), only sealed.
func TestSMSPhoneOnlySealed(t *testing.T) {
	t.Parallel()
	g := newGateway(t)
	e := smsEnv(t, g, false)
	_, access := e.smsTransfer(t)
	p := e.pending(t, access)
	if err := e.svc.SendCode(e.ctx, p); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.VerifyCode(e.ctx, p, g.lastCode(t)); err != nil {
		t.Fatal(err)
	}
	canaries := []string{"699887766", "6 9988 7766", "9988"}
	for _, c := range canaries {
		if e.logs.Contains(c) {
			t.Errorf("log holds the phone number (%q)", c)
		}
	}
	walkFiles(t, e.dir, func(path string, b []byte) {
		for _, c := range canaries {
			if strings.Contains(string(b), c) {
				t.Errorf("%s holds the phone number (%q)", path, c)
			}
		}
	})
}

// TestValidateRecipientAuth: the choices Validate refuses, each with its
// code.
func TestValidateRecipientAuth(t *testing.T) {
	t.Parallel()
	g := newGateway(t)
	e := smsEnv(t, g, false)
	base := func() transfer.CreateRequest {
		return transfer.CreateRequest{SenderEmail: "afzender@example.nl", To: []string{"a@example.nl"}, PasswordMode: kluis.PasswordGenerate}
	}
	for _, c := range []struct {
		name string
		edit func(*transfer.CreateRequest)
		code string
	}{
		{"no-password link", func(r *transfer.CreateRequest) {
			r.PasswordMode = kluis.PasswordNone
			r.Auth = map[string]transfer.RecipientAuth{"a@example.nl": {Method: kluis.AuthPasswordSMS, Phone: "+31612345678"}}
		}, transfer.CodeAuthNoPassword},
		{"no number", func(r *transfer.CreateRequest) {
			r.Auth = map[string]transfer.RecipientAuth{"a@example.nl": {Method: kluis.AuthPasswordSMS}}
		}, transfer.CodePhoneMissing},
		{"national number", func(r *transfer.CreateRequest) {
			r.Auth = map[string]transfer.RecipientAuth{"a@example.nl": {Method: kluis.AuthPasswordSMS, Phone: "06 12345678"}}
		}, transfer.CodePhoneCountry},
		{"letters", func(r *transfer.CreateRequest) {
			r.Auth = map[string]transfer.RecipientAuth{"a@example.nl": {Method: kluis.AuthPasswordSMS, Phone: "+31 6 1234abcd"}}
		}, transfer.CodePhoneInvalid},
		{"unknown method", func(r *transfer.CreateRequest) {
			r.Auth = map[string]transfer.RecipientAuth{"a@example.nl": {Method: "password+fax"}}
		}, transfer.CodeAuthUnknown},
		{"not a recipient", func(r *transfer.CreateRequest) {
			r.Auth = map[string]transfer.RecipientAuth{"b@example.nl": {Method: kluis.AuthPasswordSMS, Phone: "+31612345678"}}
		}, transfer.CodeAuthNotRecipient},
		{"number without SMS", func(r *transfer.CreateRequest) {
			r.Auth = map[string]transfer.RecipientAuth{"a@example.nl": {Method: kluis.AuthPassword, Phone: "+31612345678"}}
		}, transfer.CodePhoneUnexpected},
		{"special data needs SMS", func(r *transfer.CreateRequest) {
			r.Options.SpecialData = true
			r.Auth = map[string]transfer.RecipientAuth{"a@example.nl": {Method: kluis.AuthPassword}}
		}, transfer.CodeAuthNotAllowed},
	} {
		t.Run(c.name, func(t *testing.T) {
			req := base()
			c.edit(&req)
			_, err := e.svc.Validate(req)
			var ke *kluis.Error
			if !errors.As(err, &ke) || len(ke.Fields) != 1 || ke.Fields[0].Code != c.code || ke.Fields[0].Field != transfer.FieldRecipientAuth {
				t.Errorf("got %v, want one %s error on %s", err, c.code, transfer.FieldRecipientAuth)
			}
		})
	}
	// Special data without a choice: the SMS code is the default, and
	// needs the number.
	req := base()
	req.Options.SpecialData = true
	req.Auth = map[string]transfer.RecipientAuth{"A@example.nl": {Phone: "0031 6 1234 5678"}}
	ck, err := e.svc.Validate(req)
	if err != nil {
		t.Fatal(err)
	}
	if r := ck.Recipients[0]; r.Auth != kluis.AuthPasswordSMS || r.Phone != "+31612345678" {
		t.Errorf("recipient %+v", r)
	}
	// A policy rule can ask the SMS code for outside recipients only.
	e.withPolicy(`{"organisation_domains": ["gemeente.nl"], "rules": [
		{"name": "extern", "senders": ["gemeente.nl"], "recipients": ["*"], "action": "allow",
		 "limits": {"recipient_auth": {"allowed": ["password", "password+sms"], "minimum": "password+sms"}}}]}`)
	req = transfer.CreateRequest{SenderEmail: "a@gemeente.nl", To: []string{"burger@example.nl"}, PasswordMode: kluis.PasswordGenerate}
	_, err = e.svc.Validate(req)
	var ke *kluis.Error
	if !errors.As(err, &ke) || len(ke.Fields) != 1 || ke.Fields[0].Code != transfer.CodePhoneMissing {
		t.Errorf("outside recipient without a number: %v", err)
	}
	req.Auth = map[string]transfer.RecipientAuth{"burger@example.nl": {Method: kluis.AuthPassword}}
	if _, err = e.svc.Validate(req); !errors.As(err, &ke) || ke.Fields[0].Code != transfer.CodeAuthNotAllowed || ke.Fields[0].Policy == "" {
		t.Errorf("password only where the rule asks SMS: %v", err)
	}
}
