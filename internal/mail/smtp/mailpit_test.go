package smtp

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/kluis-nl/kluis/internal/mail"
	"github.com/kluis-nl/kluis/internal/secret"
)

// TestMailpit sends through a real SMTP server (Mailpit) and reads the mail
// back over its HTTP API. Set KLUIS_TEST_SMTP_URL (e.g.
// smtp://127.0.0.1:1025?tls=none) and KLUIS_TEST_MAILPIT_API (e.g.
// http://127.0.0.1:8025). With CI=true the variables are required.
func TestMailpit(t *testing.T) {
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
	m := &mail.Message{
		Kind:    mail.KindNotify,
		Lang:    "nl",
		To:      "ontvanger-" + id[:6] + "@example.nl",
		Subject: "Test " + id + " – één bestand\r\nBcc: x@y",
		Text:    "Tekst " + id,
		HTML:    "<p>HTML " + id + "</p>",
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := s.Send(ctx, m, "<"+id+"@example.org>"); err != nil {
		t.Fatal(err)
	}

	type addr struct{ Address string }
	var found struct {
		ID        string
		MessageID string
		To, Cc    []addr
		Bcc       []addr
		Subject   string
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		var list struct {
			Messages []struct {
				ID        string
				MessageID string
			} `json:"messages"`
		}
		getJSON(t, api+"/api/v1/messages?limit=200", &list)
		for _, x := range list.Messages {
			if x.MessageID == id+"@example.org" {
				found.ID = x.ID
			}
		}
		if found.ID != "" || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if found.ID == "" {
		t.Fatalf("mail with Message-ID %s not in Mailpit", id)
	}
	var full struct {
		MessageID string
		To, Cc    []addr
		Bcc       []addr
		Subject   string
		Text      string
		HTML      string
	}
	getJSON(t, api+"/api/v1/message/"+found.ID, &full)
	if len(full.To) != 1 || full.To[0].Address != m.To || len(full.Cc) != 0 || len(full.Bcc) != 0 {
		t.Errorf("recipients To=%v Cc=%v Bcc=%v, want only %s", full.To, full.Cc, full.Bcc, m.To)
	}
	if !strings.HasPrefix(full.Subject, "Test "+id+" – één bestand") || strings.ContainsAny(full.Subject, "\r\n") {
		t.Errorf("Subject %q", full.Subject)
	}
	if !strings.Contains(full.Text, "Tekst "+id) || !strings.Contains(full.HTML, "HTML "+id) {
		t.Errorf("Text %q HTML %q", full.Text, full.HTML)
	}
	var headers map[string][]string
	getJSON(t, api+"/api/v1/message/"+found.ID+"/headers", &headers)
	if v := headers["Auto-Submitted"]; len(v) != 1 || v[0] != "auto-generated" {
		t.Errorf("Auto-Submitted %v", v)
	}
	if _, ok := headers["X-Mailer"]; ok {
		t.Errorf("X-Mailer present: %v", headers["X-Mailer"])
	}
	if _, ok := headers["Bcc"]; ok {
		t.Errorf("Bcc header injected")
	}
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %s: %s", url, resp.Status, b)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatal(fmt.Errorf("GET %s: %w", url, err))
	}
}
