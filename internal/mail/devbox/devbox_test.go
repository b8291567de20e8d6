package devbox

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
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

// localRequest is a request as a browser on the developer's machine sends
// it: from loopback, to a loopback address.
func localRequest(method, path string) *http.Request {
	r := httptest.NewRequest(method, "http://127.0.0.1:8080"+path, nil)
	r.RemoteAddr = "127.0.0.1:50000"
	return r
}

func get(t *testing.T, h http.Handler, path string) *http.Response {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, localRequest("GET", path))
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
	h.ServeHTTP(rec, localRequest("POST", "/dev/mailbox"))
	if rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST: %d", rec.Code)
	}
}

func TestAllowed(t *testing.T) {
	local := Setup{ListenAddr: "127.0.0.1:8080", BaseURL: "http://127.0.0.1:8080"}
	for _, addr := range []string{"127.0.0.1:8080", "127.1.2.3:80", "[::1]:8080", "localhost:8080", "LOCALHOST:1", "::1", "127.0.0.1"} {
		s := local
		s.ListenAddr = addr
		if err := Allowed(s); err != nil {
			t.Errorf("Allowed(listen %q): %v", addr, err)
		}
	}
	for _, base := range []string{"http://127.0.0.1:8080", "http://localhost:8080", "http://[::1]:8080", "http://127.0.0.2"} {
		s := local
		s.BaseURL = base
		if err := Allowed(s); err != nil {
			t.Errorf("Allowed(base URL %q): %v", base, err)
		}
	}
	for _, addr := range []string{":8080", "0.0.0.0:8080", "[::]:8080", "192.168.1.10:8080", "example.org:80", "localhost.example.org:80", ""} {
		s := local
		s.ListenAddr = addr
		err := Allowed(s)
		if err == nil {
			t.Errorf("Allowed(listen %q): no error", addr)
		} else if !strings.Contains(err.Error(), "loopback") || !strings.Contains(err.Error(), "--smtp") {
			t.Errorf("Allowed(listen %q): unclear error %v", addr, err)
		}
	}
	for _, base := range []string{"https://kluis.example.nl", "https://127.0.0.1:8443", "http://kluis.example.nl", "http://localhost.example.org:8080", "http://192.168.1.10:8080", "://"} {
		s := local
		s.BaseURL = base
		err := Allowed(s)
		if err == nil {
			t.Errorf("Allowed(base URL %q): no error", base)
		} else if !strings.Contains(err.Error(), "--base-url") || !strings.Contains(err.Error(), "--smtp") {
			t.Errorf("Allowed(base URL %q): unclear error %v", base, err)
		}
	}
	s := local
	s.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	if err := Allowed(s); err == nil || !strings.Contains(err.Error(), "--trusted-proxy") {
		t.Errorf("with a trusted proxy: %v", err)
	}
	s = local
	s.SMTP = true
	if err := Allowed(s); err == nil || !strings.Contains(err.Error(), "--smtp") {
		t.Errorf("with SMTP: %v", err)
	}
}

// TestGuard: every view of the box answers only direct loopback requests
// to a loopback host.
func TestGuard(t *testing.T) {
	b := New()
	b.Send(context.Background(), msg(1), "<m1@example.org>")
	h := b.Handler()
	id := b.List()[0].ID
	paths := []string{"/dev/mailbox", "/dev/mailbox.json", "/dev/mailbox/" + id + ".txt", "/dev/mailbox/" + id + ".html"}
	for _, c := range []struct {
		name   string
		change func(r *http.Request)
		want   int
	}{
		{"loopback", func(r *http.Request) {}, 200},
		{"IPv6 loopback", func(r *http.Request) { r.RemoteAddr = "[::1]:50000"; r.Host = "[::1]:8080" }, 200},
		{"localhost", func(r *http.Request) { r.Host = "localhost:8080" }, 200},
		{"name under .localhost", func(r *http.Request) { r.Host = "kluis.localhost:8080" }, 200},
		{"remote peer", func(r *http.Request) { r.RemoteAddr = "203.0.113.9:50000" }, 403},
		{"private peer", func(r *http.Request) { r.RemoteAddr = "192.168.1.5:50000" }, 403},
		{"no peer", func(r *http.Request) { r.RemoteAddr = "" }, 403},
		{"X-Forwarded-For", func(r *http.Request) { r.Header.Set("X-Forwarded-For", "203.0.113.9") }, 403},
		{"X-Forwarded-For 127.0.0.1", func(r *http.Request) { r.Header.Set("X-Forwarded-For", "127.0.0.1") }, 403},
		{"empty X-Forwarded-For", func(r *http.Request) { r.Header["X-Forwarded-For"] = []string{""} }, 403},
		{"Forwarded", func(r *http.Request) { r.Header.Set("Forwarded", "for=203.0.113.9") }, 403},
		{"X-Real-Ip", func(r *http.Request) { r.Header.Set("X-Real-Ip", "203.0.113.9") }, 403},
		{"X-Forwarded-Host", func(r *http.Request) { r.Header.Set("X-Forwarded-Host", "kluis.example.nl") }, 403},
		{"Via", func(r *http.Request) { r.Header.Set("Via", "1.1 proxy") }, 403},
		{"rebinding host", func(r *http.Request) { r.Host = "attacker.example" }, 403},
		{"rebinding host with port", func(r *http.Request) { r.Host = "attacker.example:8080" }, 403},
		{"localhost suffix trick", func(r *http.Request) { r.Host = "localhost.attacker.example" }, 403},
	} {
		for _, p := range paths {
			r := localRequest("GET", p)
			c.change(r)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, r)
			if rec.Code != c.want {
				t.Errorf("%s, %s: %d, want %d", c.name, p, rec.Code, c.want)
			}
			if c.want == 403 && (strings.Contains(rec.Body.String(), "r1@example.nl") || rec.Header().Get("Cache-Control") != "no-store") {
				t.Errorf("%s, %s: refusal leaks or is cacheable: %q", c.name, p, rec.Body.String())
			}
		}
	}
}
