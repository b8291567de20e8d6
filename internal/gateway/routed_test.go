package gateway_test

import (
	"errors"
	"net/textproto"
	"strings"
	"testing"

	"github.com/kluis-nl/kluis/internal/mail"
)

// A mail addressed through the gateway's domain (kluis.test in these
// tests) is taken without a marker: each name=domain@kluis.test becomes
// the recipient name@domain, sorted into To, Cc and Bcc as the headers
// say, and the subject is kept whole as the message's first line.
func TestAddressedThroughDomain(t *testing.T) {
	e := start(t, setup{})
	msg := "From: Jan <jan@gemeente.nl>\nTo: Alice <alice=example.org@kluis.test>\nCc: bob=Example.NET@kluis.test\nSubject: Stukken " + canary + "\n" +
		"Content-Type: text/plain\n\nBeste Alice,\n"
	err := e.send(t, submission{from: "jan@gemeente.nl", rcpts: []string{"alice=example.org@kluis.test", "bob=Example.NET@kluis.test", "carol=example.com@KLUIS.test"}, msg: msg})
	if err != nil {
		t.Fatalf("mail addressed through the gateway's domain refused: %v", err)
	}
	cs := e.conf.all()
	if len(cs) != 1 {
		t.Fatalf("confirmations: %+v", cs)
	}
	kinds := map[string]string{"alice@example.org": "to", "bob@example.net": "cc", "carol@example.com": "bcc"}
	for addr, kind := range kinds {
		m := e.app.Mail(mail.KindNotify, addr)
		if strings.Contains(m.Subject+m.Text+m.HTML, canary) || strings.Contains(m.Text, "kluis.test") {
			t.Errorf("the notification to %s shows the subject or the gateway's addresses:\n%s", addr, m.Text)
		}
		_, c := openAs(t, e, addr, m.Text, cs[0].Password)
		if c.Message != "Stukken "+canary+"\n\nBeste Alice," {
			t.Errorf("message %q", c.Message)
		}
		for _, r := range c.Transfer.Recipients {
			if r.Address == addr && string(r.Kind) != kind {
				t.Errorf("%s is %s, want %s", addr, r.Kind, kind)
			}
		}
	}
	if n := len(e.app.Delivered(mail.KindNotify, "")); n != 3 {
		t.Errorf("%d notifications, want 3", n)
	}
}

// The same rules hold for a mail addressed through the domain, and an
// address there that does not decode is refused in RCPT TO with a reason
// that shows how to write it.
func TestAddressedThroughDomainRefusals(t *testing.T) {
	e := start(t, setup{})
	mailTo := func(rcpt, extra string) string {
		return "From: jan@gemeente.nl\nTo: " + rcpt + "\nSubject: Stukken\n" + extra + "Content-Type: text/plain\n\nHallo.\n"
	}
	for _, tc := range []struct {
		name  string
		rcpts []string
		msg   string
		code  int
		says  string
	}{
		{"no recipient encoded", []string{"alice@kluis.test"}, mailTo("alice@kluis.test", ""), 553, "alice=example.org@kluis.test"},
		{"percent instead of =", []string{"alice%example.org@kluis.test"}, mailTo("alice%example.org@kluis.test", ""), 553, "with = instead of @"},
		{"no domain after =", []string{"alice=localhost@kluis.test"}, mailTo("alice=localhost@kluis.test", ""), 553, "not a domain name"},
		{"the gateway's own domain", []string{"alice=kluis.test@kluis.test"}, mailTo("alice=kluis.test@kluis.test", ""), 553, "loop"},
		{"recipient refused by policy", []string{"x=concurrent.nl@kluis.test"}, mailTo("x=concurrent.nl@kluis.test", ""), 550, "x@concurrent.nl"},
		{"sender outside the organisation", []string{"alice=example.org@kluis.test"}, strings.ReplaceAll(mailTo("alice=example.org@kluis.test", ""), "gemeente.nl", "elders.nl"), 550, "organisation"},
		{"a recipient not through the domain, no marker", []string{"alice=example.org@kluis.test", "dave@example.org"},
			mailTo("alice=example.org@kluis.test, dave@example.org", ""), 550, "dave@example.org is not"},
		{"Kluis's own mail", []string{"alice=example.org@kluis.test"}, mailTo("alice=example.org@kluis.test", "X-Kluis-Origin: kluis\n"), 554, "loop"},
		{"an auto-reply", []string{"alice=example.org@kluis.test"}, mailTo("alice=example.org@kluis.test", "Auto-Submitted: auto-replied\n"), 550, "automatically"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := submission{from: "jan@gemeente.nl", rcpts: tc.rcpts, msg: tc.msg}
			if strings.Contains(tc.msg, "elders.nl") {
				s.from = "jan@elders.nl"
			}
			err := e.send(t, s)
			var te *textproto.Error
			if !errors.As(err, &te) || te.Code != tc.code || !strings.Contains(te.Msg, tc.says) {
				t.Errorf("got %v, want %d saying %q", err, tc.code, tc.says)
			}
		})
	}
	if n := len(e.app.Delivered("", "")); n != 0 || len(e.conf.all()) != 0 {
		t.Errorf("%d mails sent and %d confirmed for refused mail", n, len(e.conf.all()))
	}
	// An untrusted peer gets nothing through the domain either.
	u := start(t, setup{relays: []string{"10.9.0.0/16"}})
	if got := code(t, u.send(t, submission{from: "jan@gemeente.nl", rcpts: []string{"alice=example.org@kluis.test"}, msg: mailTo("alice=example.org@kluis.test", "")})); got != 530 {
		t.Errorf("untrusted peer: %d, want 530", got)
	}
}
