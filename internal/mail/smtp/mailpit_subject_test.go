package smtp

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/kluis-nl/kluis/internal/mail"
	"github.com/kluis-nl/kluis/internal/secret"
)

// TestMailpitSubjectLiteral: Mailpit, a real mail server that parses and
// decodes headers as a mail client does, shows a subject typed in
// encoded-word form as the literal text the sender typed. Needs the same
// variables as TestMailpit.
func TestMailpitSubjectLiteral(t *testing.T) {
	smtpURL, api := os.Getenv("KLUIS_TEST_SMTP_URL"), os.Getenv("KLUIS_TEST_MAILPIT_API")
	if smtpURL == "" || api == "" {
		msg := "Mailpit integration test needs KLUIS_TEST_SMTP_URL (e.g. smtp://127.0.0.1:1025?tls=none) and KLUIS_TEST_MAILPIT_API (e.g. http://127.0.0.1:8025); CI starts Mailpit in .ci/run"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg + " — required in CI")
		}
		t.Skip(msg)
	}
	api = strings.TrimRight(api, "/")
	cfg, err := ParseURL(smtpURL)
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(cfg, "Kluis test <kluis@example.org>")
	if err != nil {
		t.Fatal(err)
	}
	id := secret.NewID()
	// "=?utf-8?b?VXcgcGFra2V0IGlzIGdlYmxva2tlZXJk?=" decodes to "Uw pakket is geblokkeerd".
	subject := "=?utf-8?b?VXcgcGFra2V0IGlzIGdlYmxva2tlZXJk?= " + id
	m := &mail.Message{Kind: mail.KindNotify, Lang: "nl", To: "ontvanger-" + id[:6] + "@example.nl", Subject: subject, Text: "Tekst " + id}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := s.Send(ctx, m, "<"+id+"@example.org>"); err != nil {
		t.Fatal(err)
	}
	var mpID string
	for deadline := time.Now().Add(10 * time.Second); mpID == "" && time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		var list struct {
			Messages []struct {
				ID        string
				MessageID string
			} `json:"messages"`
		}
		getJSON(t, api+"/api/v1/messages?limit=200", &list)
		for _, x := range list.Messages {
			if x.MessageID == id+"@example.org" {
				mpID = x.ID
			}
		}
	}
	if mpID == "" {
		t.Fatalf("mail with Message-ID %s not in Mailpit", id)
	}
	var full struct{ Subject string }
	getJSON(t, api+"/api/v1/message/"+mpID, &full)
	if full.Subject != subject {
		t.Errorf("Mailpit shows the subject as %q, want the literal %q", full.Subject, subject)
	}
}
