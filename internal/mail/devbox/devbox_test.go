package devbox

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/kluis-nl/kluis/internal/mail"
)

func msg(i int) *mail.Message {
	return &mail.Message{
		Kind:    mail.KindNotify,
		Lang:    "en",
		To:      fmt.Sprintf("r%d@example.nl", i),
		Subject: fmt.Sprintf("Subject %d <b>", i),
		Text:    fmt.Sprintf("text %d", i),
		HTML:    fmt.Sprintf("<p>html %d</p><script>alert(1)</script>", i),
	}
}

func get(t *testing.T, h http.Handler, path string) *http.Response {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
	return rec.Result()
}

func body(t *testing.T, r *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(r.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestSendListBounded(t *testing.T) {
	b := New()
	ctx := context.Background()
	for i := 1; i <= MaxEntries+20; i++ {
		if err := b.Send(ctx, msg(i), fmt.Sprintf("<m%d@example.org>", i)); err != nil {
			t.Fatal(err)
		}
	}
	l := b.List()
	if len(l) != MaxEntries {
		t.Fatalf("%d entries, want %d", len(l), MaxEntries)
	}
	if l[0].To != fmt.Sprintf("r%d@example.nl", MaxEntries+20) || l[len(l)-1].To != "r21@example.nl" {
		t.Errorf("order: first %s, last %s", l[0].To, l[len(l)-1].To)
	}
	e := l[0]
	if e.Kind != "notify" || e.Subject == "" || e.Text == "" || e.HTML == "" || e.ID == "" || e.Time.IsZero() {
		t.Errorf("entry %+v", e)
	}
	// The same Message-ID again (a resend after a crash) is kept once.
	b.Send(ctx, msg(1), fmt.Sprintf("<m%d@example.org>", MaxEntries+20))
	if n := len(b.List()); n != MaxEntries || b.List()[0].ID != e.ID {
		t.Errorf("duplicate Message-ID was added")
	}
}

func TestHandler(t *testing.T) {
	b := New()
	ctx := context.Background()
	b.Send(ctx, msg(1), "<m1@example.org>")
	b.Send(ctx, msg(2), "<m2@example.org>")
	h := b.Handler()

	r := get(t, h, "/dev/mailbox")
	page := body(t, r)
	if r.StatusCode != 200 || !strings.HasPrefix(r.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("list: %s %s", r.Status, r.Header.Get("Content-Type"))
	}
	if !strings.Contains(r.Header.Get("Content-Security-Policy"), "default-src 'none'") {
		t.Errorf("list CSP %q", r.Header.Get("Content-Security-Policy"))
	}
	i2, i1 := strings.Index(page, "r2@example.nl"), strings.Index(page, "r1@example.nl")
	if i2 < 0 || i1 < 0 || i2 > i1 {
		t.Errorf("list is not newest first:\n%s", page)
	}
	if strings.Contains(page, "<b>") || !strings.Contains(page, "Subject 2 &lt;b&gt;") {
		t.Errorf("subject not escaped")
	}
	list := b.List()
	id2 := list[0].ID
	for _, want := range []string{`href="/dev/mailbox/` + id2 + `.txt"`, `href="/dev/mailbox/` + id2 + `.html"`, "not delivered"} {
		if !strings.Contains(page, want) {
			t.Errorf("list lacks %s", want)
		}
	}

	r = get(t, h, "/dev/mailbox/"+id2+".txt")
	txt := body(t, r)
	if r.StatusCode != 200 || r.Header.Get("Content-Type") != "text/plain; charset=utf-8" || !strings.Contains(txt, "text 2") || !strings.Contains(txt, "To: r2@example.nl") {
		t.Errorf("txt: %s %q %q", r.Status, r.Header.Get("Content-Type"), txt)
	}
	if r.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("txt without nosniff")
	}

	r = get(t, h, "/dev/mailbox/"+id2+".html")
	html := body(t, r)
	csp := r.Header.Get("Content-Security-Policy")
	if r.StatusCode != 200 || !strings.HasPrefix(r.Header.Get("Content-Type"), "text/html") || html != msg(2).HTML {
		t.Errorf("html: %s %q", r.Status, html)
	}
	if !strings.HasPrefix(csp, "sandbox; default-src 'none'; img-src *") || strings.Contains(csp, "script") || strings.Contains(csp, "allow-") {
		t.Errorf("html CSP %q", csp)
	}

	r = get(t, h, "/dev/mailbox.json")
	var j struct{ Entries []Entry }
	if err := json.NewDecoder(r.Body).Decode(&j); err != nil {
		t.Fatal(err)
	}
	if r.Header.Get("Content-Type") != "application/json" || len(j.Entries) != 2 || j.Entries[0].To != "r2@example.nl" ||
		j.Entries[0].MessageID != "<m2@example.org>" || j.Entries[0].HTML != msg(2).HTML || j.Entries[0].Kind != "notify" {
		t.Errorf("json: %+v", j)
	}

	for _, p := range []string{"/dev/mailbox/999.txt", "/dev/mailbox/" + id2 + ".exe", "/dev/mailbox/" + id2, "/dev/mailbox/../x"} {
		if r := get(t, h, p); r.StatusCode != 404 && r.StatusCode != 301 && r.StatusCode != 307 {
			t.Errorf("%s: %s", p, r.Status)
		}
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("POST", "/dev/mailbox", nil))
	if rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST: %d", rec.Code)
	}
}

func TestAllowed(t *testing.T) {
	for _, addr := range []string{"127.0.0.1:8080", "127.1.2.3:80", "[::1]:8080", "localhost:8080", "LOCALHOST:1", "::1", "127.0.0.1"} {
		if err := Allowed(addr, false); err != nil {
			t.Errorf("Allowed(%q): %v", addr, err)
		}
	}
	for _, addr := range []string{":8080", "0.0.0.0:8080", "[::]:8080", "192.168.1.10:8080", "example.org:80", "localhost.example.org:80", ""} {
		err := Allowed(addr, false)
		if err == nil {
			t.Errorf("Allowed(%q): no error", addr)
		} else if !strings.Contains(err.Error(), "loopback") {
			t.Errorf("Allowed(%q): unclear error %v", addr, err)
		}
	}
	if err := Allowed("127.0.0.1:8080", true); err == nil || !strings.Contains(err.Error(), "--smtp") {
		t.Errorf("with SMTP: %v", err)
	}
}
