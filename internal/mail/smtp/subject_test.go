package smtp

import (
	"mime"
	"strings"
	"testing"
)

// TestSubjectShownLiterally: a subject that contains text in RFC 2047
// encoded-word form (=?utf-8?b?…?=) reaches the reader as that literal
// text, not decoded into something else. The mail is parsed as a mail
// client does (net/mail and mime.WordDecoder).
func TestSubjectShownLiterally(t *testing.T) {
	srv := startServer(t, nil, nil)
	cfg := &Config{Host: "127.0.0.1", Port: srv.Port, TLS: NoTLS}
	subjects := []string{
		"=?utf-8?b?VXcgcGFra2V0IGlzIGdlYmxva2tlZXJk?=", // "Uw pakket is geblokkeerd"
		"Re: =?UTF-8?Q?Betaal_nu?= uw factuur",
		"=?iso-8859-1?q?caf=E9?= en één",
		"a=?b?=c =? ?= =?x",
		strings.Repeat("=?utf-8?q?lang?= ", 12) + "einde",
	}
	for i, subject := range subjects {
		m := testMessage()
		m.Subject = subject
		if err := send(t, cfg, m, "<s"+itoa(i)+"@example.org>"); err != nil {
			t.Fatal(err)
		}
	}
	msgs := srv.Messages()
	if len(msgs) != len(subjects) {
		t.Fatalf("%d messages, want %d", len(msgs), len(subjects))
	}
	for i, want := range subjects {
		raw := parseMessage(t, msgs[i].Data).Header.Get("Subject")
		got, err := new(mime.WordDecoder).DecodeHeader(raw)
		if err != nil || got != want {
			t.Errorf("subject %q reads as %q (%v); raw header %q", want, got, err, raw)
		}
	}

	// A subject without such text is left as it was.
	m := testMessage()
	m.Subject = "Bestanden voor u"
	if err := send(t, cfg, m, "<plain@example.org>"); err != nil {
		t.Fatal(err)
	}
	msgs = srv.Messages()
	if raw := parseMessage(t, msgs[len(msgs)-1].Data).Header.Get("Subject"); raw != "Bestanden voor u" {
		t.Errorf("plain subject sent as %q", raw)
	}
}
