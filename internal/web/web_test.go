package web

import (
	"archive/zip"
	"bytes"
	"context"
	"io"
	"io/fs"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kluis-nl/kluis"
	"github.com/kluis-nl/kluis/internal/kluistest"
	"github.com/kluis-nl/kluis/internal/locale"
	"github.com/kluis-nl/kluis/internal/secret"
	"github.com/kluis-nl/kluis/internal/transfer"
)

// translate is the text of key in lang, as a page in lang shows it.
func translate(lang, key string, args ...any) string {
	return locale.For(locale.Lang(lang)).T(key, args...)
}

// recipientPages are the page templates a recipient sees; every other page
// is for senders.
var recipientPages = []string{"receive", "password", "fragment", "open", "gone", "locked", "notfound", "problem", "toomany", "reply", "reply_sent", "help"}

// TestTemplateKeysExist: every {{ t "key" }} in a template, and every key
// the Go code passes to a template, is in the source catalog (which the
// tests of package locale hold every other catalog to). The keys of the
// recipient pages, the layout and the partials they use are all in
// locale.RecipientScope, so that every language has them; the sender
// pages' keys may be outside it.
func TestTemplateKeysExist(t *testing.T) {
	prefixes := map[string]bool{}
	for _, k := range locale.Keys(locale.Default) {
		p, _, _ := strings.Cut(k, ".")
		prefixes[p] = true
	}
	lit := regexp.MustCompile(`\bt\s+"([a-z0-9_.]+)"`)
	// Keys passed to the "field" partial: "prefix.something_label".
	quoted := regexp.MustCompile(`"([a-z0-9_]+)\.([a-z0-9_]+)"`)
	used := map[string]bool{}
	recipientKeys := map[string]string{} // key: the template it is in
	err := fs.WalkDir(templateFS, "templates", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := templateFS.ReadFile(p)
		if err != nil {
			return err
		}
		name := strings.TrimSuffix(path.Base(p), ".html")
		recipient := !strings.Contains(p, "/pages/") || slices.Contains(recipientPages, name)
		if name == "logout" || name == "contact" || name == "requests" || name == "team_waits" || strings.HasPrefix(name, "console") {
			recipient = false // partials of sender pages: My transfers; the privacy and accessibility statements; the admin console (console*); file requests; a team member's inbox and drop-offs
		}
		var keys []string
		for _, m := range lit.FindAllStringSubmatch(string(b), -1) {
			keys = append(keys, m[1])
		}
		for _, m := range quoted.FindAllStringSubmatch(string(b), -1) {
			if prefixes[m[1]] {
				keys = append(keys, m[1]+"."+m[2])
			}
		}
		for _, k := range keys {
			used[k] = true
			if recipient {
				recipientKeys[k] = p
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// Keys built in Go code: those of the recipient pages' handlers are
	// in a recipient file (receive.go, reply.go, limit.go).
	goSrc, _ := filepath.Glob("*.go")
	for _, f := range goSrc {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := fs.ReadFile(osDirFS, f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range regexp.MustCompile(`"((?:receive|unlock|fragment|problem|reply|toomany|unit)\.[a-z_]+)"`).FindAllStringSubmatch(string(b), -1) {
			used[m[1]] = true
			recipientKeys[m[1]] = f
		}
	}
	for _, k := range []string{"unlock.error_empty", "unlock.error_wrong", "fragment.error_empty", "fragment.error_wrong"} {
		used[k], recipientKeys[k] = true, "receive.go"
	}
	for _, p := range []string{"problem.session", "problem.busy", "problem.internal", "problem.damaged", "problem.file", "reply.refused", "reply.limit", "reply.too_fast", "problem.request"} {
		delete(used, p)
		delete(recipientKeys, p)
		used[p+"_title"], used[p+"_text"] = true, true
		recipientKeys[p+"_title"], recipientKeys[p+"_text"] = "problem", "problem"
	}
	if len(used) < 50 || len(recipientKeys) < 30 {
		t.Fatalf("found only %d keys (%d for recipients); is the pattern broken?", len(used), len(recipientKeys))
	}
	src := locale.For(locale.Default)
	for k := range used {
		if !src.Has(k) {
			t.Errorf("key %q is used but missing in the source catalog", k)
		}
	}
	for k, where := range recipientKeys {
		if !locale.InRecipientScope(k) {
			t.Errorf("%s shows %q to recipients, but it is outside locale.RecipientScope", where, k)
		}
	}
}

var osDirFS = osDir(".")

type osDir string

func (d osDir) Open(name string) (fs.File, error) { return http.Dir(d).Open(name) }

// TestPageLanguage: the table of how a page's language is chosen.
func TestPageLanguage(t *testing.T) {
	for _, c := range []struct {
		name                     string
		recipient                bool
		cookie, transfer, accept string
		want                     locale.Lang
	}{
		{"nothing known", false, "", "", "", locale.NL},
		{"sender, browser", false, "", "", "en-GB,en;q=0.9", locale.EN},
		{"sender, browser prefers Dutch", false, "", "", "de-DE,en;q=0.5,nl;q=0.8", locale.NL},
		{"sender, browser in an incomplete language", false, "", "", "fr", locale.NL},
		{"sender, browser in an incomplete language, then English", false, "", "", "ar-EG,en;q=0.7", locale.EN},
		{"sender, cookie wins", false, "en", "", "nl", locale.EN},
		{"sender, unknown cookie", false, "xx", "", "en", locale.EN},
		{"sender, cookie of an incomplete language, browser in English", false, "de", "", "de-DE,en;q=0.8", locale.EN},
		{"sender, cookie of an incomplete language, browser in Dutch", false, "fy", "", "fy-NL,nl;q=0.9", locale.NL},
		{"sender, cookie of an incomplete language, no browser wish", false, "ar", "", "", locale.NL},
		{"sender, the transfer does not count", false, "", "en", "", locale.NL},
		{"recipient, nothing known", true, "", "", "", locale.NL},
		{"recipient, browser in any language", true, "", "", "uk-UA,ru;q=0.5", locale.UK},
		{"recipient, the transfer's language over the browser", true, "", "ar", "en-GB", locale.AR},
		{"recipient, the cookie over the transfer", true, "de", "ar", "en-GB", locale.DE},
		{"recipient, cookie in a regional form", true, "fr-BE", "nl", "", locale.FR},
		{"recipient, unknown cookie: the transfer", true, "xx", "tr", "en", locale.TR},
		{"recipient, no link: the browser", true, "", "", "pl", locale.PL},
		{"recipient, language nobody has: Dutch", true, "", "", "es-ES", locale.NL},
	} {
		asked := false
		transferLang := func() string { asked = true; return c.transfer }
		if got := chooseLang(c.recipient, c.cookie, transferLang, c.accept); got != c.want {
			t.Errorf("%s: got %s, want %s", c.name, got, c.want)
		}
		if asked && (!c.recipient || c.cookie == "de" || c.cookie == "fr-BE") {
			t.Errorf("%s: asked for the transfer's language without need", c.name)
		}
	}
}

func TestLocalPath(t *testing.T) {
	for in, want := range map[string]string{
		"/r/abc":               "/r/abc",
		"/help":                "/help",
		"":                     "/",
		"//evil.example":       "/",
		"/\\evil.example":      "/",
		"https://evil.example": "/",
		"javascript:alert(1)":  "/",
		"help":                 "/",
		"/x\r\nSet-Cookie: a":  "/",
	} {
		if got := localPath(in); got != want {
			t.Errorf("localPath(%q) = %q, want %q", in, got, want)
		}
	}
}

// env is the real server with the pages, on a loopback port.
type env struct {
	app  *TestApp
	svc  *transfer.Service
	srv  testServer
	web  *Web
	logs *kluistest.Logs
}

func newEnv(t *testing.T) *env {
	t.Helper()
	logs := kluistest.NewLogs()
	a := startApp(t, TestAppOptions{Logs: logs})
	return &env{app: a, svc: a.Transfers, srv: testServer{URL: a.URL}, web: a.Web, logs: logs}
}

type sent struct {
	access, secret string
	code           string // the receive code
	files          map[string][]byte
	owner          transfer.Owner
}

func (e *env) send(t *testing.T, mode kluis.PasswordMode, pw, message string, files map[string][]byte) *sent {
	t.Helper()
	ctx := context.Background()
	c, err := e.svc.Create(ctx, transfer.CreateRequest{
		SenderEmail: "a.jansen@gemeente.example.nl", SenderName: "A. Jansen", SenderPhone: "058 123 4567",
		To: []string{"burger@example.nl"}, Bcc: []string{"archief@example.nl"}, Message: message, Lang: "nl",
		PasswordMode: mode, Password: pw,
	})
	if err != nil {
		t.Fatal(err)
	}
	o, err := e.svc.AuthorizeUpload(ctx, c.UploadToken)
	if err != nil {
		t.Fatal(err)
	}
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		f, err := e.svc.NewFile(ctx, o, n, "application/octet-stream", int64(len(files[n])))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.svc.WriteFile(ctx, o, f.ID, 0, bytes.NewReader(files[n])); err != nil {
			t.Fatal(err)
		}
		if _, err := e.svc.CompleteFile(ctx, o, f.ID); err != nil {
			t.Fatal(err)
		}
	}
	fin, err := e.svc.Finish(ctx, o, c.LinkSecret)
	if err != nil {
		t.Fatal(err)
	}
	secretValue := c.Password
	if mode == kluis.PasswordManual {
		secretValue = pw
	}
	if mode == kluis.PasswordNone {
		secretValue = c.LinkSecret
	}
	return &sent{access: fin.Links[0].AccessID, code: fin.Links[0].Code, secret: secretValue, files: files, owner: o}
}

// client is a browser-like client: cookies, no automatic redirects.
func (e *env) client(t *testing.T) *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: &secureJar{jar}, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// secureJar hands Secure cookies to the plain-http test server, as
// browsers do for localhost.
type secureJar struct{ *cookiejar.Jar }

func (j *secureJar) SetCookies(u *url.URL, cs []*http.Cookie) {
	v := *u
	v.Scheme = "https"
	j.Jar.SetCookies(&v, cs)
}

func (j *secureJar) Cookies(u *url.URL) []*http.Cookie {
	v := *u
	v.Scheme = "https"
	return j.Jar.Cookies(&v)
}

func get(t *testing.T, c *http.Client, u string) (*http.Response, string) {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func post(t *testing.T, c *http.Client, u string, form url.Values) (*http.Response, string) {
	t.Helper()
	resp, err := c.PostForm(u, form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func TestStaticPages(t *testing.T) {
	e := newEnv(t)
	c := e.client(t)
	for _, p := range []string{"/", "/send", "/receive", "/help", "/accessibility", "/privacy"} {
		for _, lang := range []string{"nl", "en"} {
			req, _ := http.NewRequest("GET", e.srv.URL+p, nil)
			req.Header.Set("Accept-Language", lang)
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			body := string(b)
			if resp.StatusCode != 200 {
				t.Errorf("%s (%s): %d", p, lang, resp.StatusCode)
			}
			for _, want := range []string{`<html lang="` + lang + `"`, `href="#main"`, `id="main"`, "Gemeente Voorbeeld", "/dev/mailbox"} {
				if !strings.Contains(body, want) {
					t.Errorf("%s (%s): no %q", p, lang, want)
				}
			}
			if strings.Contains(body, "<script>") || strings.Contains(body, "style=") {
				t.Errorf("%s: inline script or style (the CSP forbids it)", p)
			}
			if got := resp.Header.Get("Cache-Control"); got != "no-store" {
				t.Errorf("%s: Cache-Control %q", p, got)
			}
		}
	}
	// The privacy page states the engine's periods.
	_, body := get(t, c, e.srv.URL+"/privacy")
	for _, want := range []string{"7 dagen", "30 dagen"} {
		if !strings.Contains(body, want) {
			t.Errorf("privacy page does not say %q", want)
		}
	}
}

func TestStaticAssets(t *testing.T) {
	e := newEnv(t)
	c := e.client(t)
	u := e.web.static.url("kluis.css")
	resp, body := get(t, c, e.srv.URL+u)
	if resp.StatusCode != 200 || !strings.Contains(resp.Header.Get("Cache-Control"), "immutable") || !strings.Contains(body, ".kluis-message") {
		t.Fatalf("GET %s: %d %q", u, resp.StatusCode, resp.Header.Get("Cache-Control"))
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/css; charset=utf-8" {
		t.Errorf("Content-Type %q", ct)
	}
	resp, _ = get(t, c, e.srv.URL+"/static/000000000000/kluis.css")
	if resp.StatusCode != 200 || resp.Header.Get("Cache-Control") != "no-cache" {
		t.Errorf("old checksum: %d %q", resp.StatusCode, resp.Header.Get("Cache-Control"))
	}
	resp, _ = get(t, c, e.srv.URL+"/static/x/nothing.css")
	if resp.StatusCode != 404 {
		t.Errorf("unknown file: %d", resp.StatusCode)
	}
	resp, _ = get(t, c, e.srv.URL+e.web.static.url("vendor/VERSIONS"))
	if resp.StatusCode != 404 {
		t.Errorf("VERSIONS (no extension) is served: %d", resp.StatusCode)
	}
}

func TestLangSwitch(t *testing.T) {
	e := newEnv(t)
	c := e.client(t)
	resp, _ := get(t, c, e.srv.URL+"/lang?to=en&next=/help")
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/help" {
		t.Fatalf("lang switch: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	_, body := get(t, c, e.srv.URL+"/help")
	if !strings.Contains(body, `<html lang="en"`) {
		t.Error("the cookie did not switch the language")
	}
	resp, _ = get(t, c, e.srv.URL+"/lang?to=nl&next=//evil.example/")
	if resp.Header.Get("Location") != "/" {
		t.Errorf("open redirect: %q", resp.Header.Get("Location"))
	}
}

func TestReceiveFlow(t *testing.T) {
	e := newEnv(t)
	s := e.send(t, kluis.PasswordManual, "correct horse battery", "Beste mevrouw,\n<script>alert(1)</script>\nGroet", map[string][]byte{
		"rapport.pdf": bytes.Repeat([]byte("R"), 1500),
		"brief.txt":   []byte("hallo"),
	})
	c := e.client(t)
	base := e.srv.URL + "/r/" + s.access

	// Before the unlock, the contents send you to the password page.
	resp, _ := get(t, c, base+"/open")
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/r/"+s.access {
		t.Fatalf("open without session: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp, body := get(t, c, base)
	if resp.StatusCode != 200 || !strings.Contains(body, `name="password"`) || !strings.Contains(body, `action="/r/`+s.access+`/unlock"`) {
		t.Fatalf("password page: %d\n%s", resp.StatusCode, body)
	}

	// Empty and wrong passwords: the form again with a linked summary.
	for _, pw := range []string{"", "wrong password!"} {
		resp, body = post(t, c, base+"/unlock", url.Values{"password": {pw}})
		if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(body, `href="#password"`) || !strings.Contains(body, `aria-invalid="true"`) {
			t.Fatalf("password %q: %d\n%s", pw, resp.StatusCode, body)
		}
		if !strings.Contains(body, "<title>Fout:") {
			t.Errorf("password %q: the title does not say there is an error", pw)
		}
	}

	resp, _ = post(t, c, base+"/unlock", url.Values{"password": {"correct horse battery"}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/r/"+s.access+"/open" {
		t.Fatalf("unlock: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	var ck *http.Cookie
	for _, x := range resp.Cookies() {
		if x.Name == sessionCookie {
			ck = x
		}
	}
	if ck == nil || !ck.HttpOnly || !ck.Secure || ck.SameSite != http.SameSiteStrictMode || ck.Path != "/" {
		t.Fatalf("session cookie: %+v", ck)
	}
	if strings.Contains(resp.Header.Get("Location"), ck.Value) {
		t.Fatal("session token in a URL")
	}

	resp, body = get(t, c, base+"/open")
	if resp.StatusCode != 200 {
		t.Fatalf("open: %d", resp.StatusCode)
	}
	for _, want := range []string{"A. Jansen", "058 123 4567", "a.jansen@gemeente.example.nl", "burger@example.nl",
		"&lt;script&gt;alert(1)&lt;/script&gt;", "rapport.pdf", "2 kB", "brief.txt", "5 bytes", "/zip"} {
		if !strings.Contains(body, want) {
			t.Errorf("contents page lacks %q", want)
		}
	}
	if strings.Contains(body, "archief@example.nl") {
		t.Error("a Bcc recipient is shown")
	}
	fileLink := regexp.MustCompile(`href="(/r/[^"]+/files/[^"]+)"`).FindAllStringSubmatch(body, -1)
	if len(fileLink) != 2 {
		t.Fatalf("%d file links", len(fileLink))
	}
	for _, m := range fileLink {
		resp, got := get(t, c, e.srv.URL+m[1])
		if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Disposition"), "attachment") {
			t.Fatalf("download: %d %q", resp.StatusCode, resp.Header.Get("Content-Disposition"))
		}
		if got != string(s.files["rapport.pdf"]) && got != string(s.files["brief.txt"]) {
			t.Errorf("download %s: wrong bytes", m[1])
		}
	}
	resp, zb := get(t, c, base+"/zip")
	if resp.StatusCode != 200 {
		t.Fatalf("zip: %d", resp.StatusCode)
	}
	zr, err := zip.NewReader(strings.NewReader(zb), int64(len(zb)))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range zr.File {
		names = append(names, f.Name)
	}
	slices.Sort(names)
	if want := []string{"brief.txt", "rapport.pdf", "vertrouwelijk-bericht.txt"}; !slices.Equal(names, want) {
		t.Errorf("zip holds %v, want %v", names, want)
	}
	resp, _ = get(t, c, base+"/files/nosuchfile")
	if resp.StatusCode != 404 {
		t.Errorf("unknown file: %d", resp.StatusCode)
	}

	// Another browser (no cookie) gets the password page, not the files.
	resp, _ = get(t, e.client(t), base+"/zip")
	if resp.StatusCode != http.StatusSeeOther {
		t.Errorf("zip without session: %d", resp.StatusCode)
	}

	// Revoked: a plain page with the date, for the open page too.
	if err := e.svc.Revoke(context.Background(), s.owner, ""); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"", "/open", "/zip"} {
		resp, body = get(t, c, base+p)
		if resp.StatusCode != http.StatusGone || !strings.Contains(body, "ingetrokken") || !strings.Contains(body, time.Now().Format("2006")) {
			t.Errorf("revoked %q: %d", p, resp.StatusCode)
		}
	}
}

func TestNoPasswordAndCode(t *testing.T) {
	e := newEnv(t)
	s := e.send(t, kluis.PasswordNone, "", "", map[string][]byte{"a.txt": []byte("a")})
	c := e.client(t)
	base := e.srv.URL + "/r/" + s.access
	_, body := get(t, c, base)
	if !strings.Contains(body, "data-fragment-form") || !strings.Contains(body, `name="secret"`) {
		t.Fatalf("no-password page:\n%s", body)
	}
	resp, body := post(t, c, base+"/unlock", url.Values{"secret": {"nottherightsecret"}})
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(body, `href="#secret"`) {
		t.Fatalf("wrong secret: %d", resp.StatusCode)
	}
	// The whole pasted link works too.
	resp, _ = post(t, c, base+"/unlock", url.Values{"secret": {"https://kluis.example/r/" + s.access + "#" + s.secret}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("pasted link: %d", resp.StatusCode)
	}

	// The receive page takes the code as printed in the mail, in capitals.
	grouped := strings.ToUpper(secret.FormatAccessID(s.access))
	resp, _ = post(t, e.client(t), e.srv.URL+"/receive", url.Values{"code": {" " + grouped + " "}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/r/"+s.access {
		t.Fatalf("receive code: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	for _, bad := range []string{"", "abc"} {
		resp, body = post(t, c, e.srv.URL+"/receive", url.Values{"code": {bad}})
		if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(body, `href="#code"`) {
			t.Errorf("receive %q: %d", bad, resp.StatusCode)
		}
	}
	// An unknown but well-formed code: "not found".
	resp, _ = get(t, c, e.srv.URL+"/r/"+secret.NewAccessID())
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("unknown link: %d", resp.StatusCode)
	}
}

func TestLockout(t *testing.T) {
	e := newEnv(t)
	s := e.send(t, kluis.PasswordManual, "correct horse battery", "", map[string][]byte{"a.txt": []byte("a")})
	c := e.client(t)
	base := e.srv.URL + "/r/" + s.access
	var resp *http.Response
	var body string
	for range transfer.DefaultConfig().MaxFailures + 1 {
		resp, body = post(t, c, base+"/unlock", url.Values{"password": {"wrong wrong wrong"}})
	}
	if resp.StatusCode != http.StatusLocked || !strings.Contains(body, "geblokkeerd") {
		t.Fatalf("after too many wrong passwords: %d", resp.StatusCode)
	}
}
