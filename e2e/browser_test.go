package e2e

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// The browser tests drive Debian's Chromium (headless, through the DevTools
// protocol) through the receive flow as a recipient would, in Dutch and in
// English, and run axe-core on every page they see.
//
// Needs: chromium on PATH (or KLUIS_CHROMIUM), and axe-core from
// web/node_modules (`npm ci` in web/; or KLUIS_AXE=path/to/axe.min.js).
// Without them the tests skip locally and fail when CI=true.
//
// Screenshots of every step go to e2e/testout/<test>/ (or $KLUIS_TEST_OUT).

// axeTags are the rule sets for WCAG 2.1 level A and AA.
var axeTags = []string{"wcag2a", "wcag2aa", "wcag21a", "wcag21aa"}

func needBrowser(t *testing.T) (chrome, axe string) {
	t.Helper()
	missing := func(format string, args ...any) {
		t.Helper()
		if os.Getenv("CI") == "true" {
			t.Fatalf(format, args...)
		}
		t.Skipf(format+" (skipped locally; CI fails here)", args...)
	}
	chrome = os.Getenv("KLUIS_CHROMIUM")
	if chrome == "" {
		for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
			if p, err := exec.LookPath(name); err == nil {
				chrome = p
				break
			}
		}
	}
	if chrome == "" {
		missing("no Chromium: install it (apt-get install chromium) or set KLUIS_CHROMIUM")
	}
	axe = os.Getenv("KLUIS_AXE")
	if axe == "" {
		axe = filepath.Join("..", "web", "node_modules", "axe-core", "axe.min.js")
	}
	if _, err := os.Stat(axe); err != nil {
		missing("no axe-core at %s: run `npm ci` in web/ or set KLUIS_AXE", axe)
	}
	return chrome, axe
}

// tab is one browser tab in a test, with the step counter for screenshots.
type tab struct {
	t       *testing.T
	ctx     context.Context
	out     string
	axe     string
	step    int
	base    string
	dl      string // download folder
	results *os.File
}

func newBrowser(t *testing.T, base string, suffix ...string) *tab {
	t.Helper()
	chrome, axePath := needBrowser(t)
	axe, err := os.ReadFile(axePath)
	if err != nil {
		t.Fatal(err)
	}
	out := os.Getenv("KLUIS_TEST_OUT")
	if out == "" {
		out = "testout"
	}
	out = filepath.Join(out, strings.ReplaceAll(t.Name(), "/", "_")+strings.Join(suffix, ""))
	os.RemoveAll(out)
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	actx, cancelA := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(chrome),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	)
	ctx, cancelC := chromedp.NewContext(actx)
	ctx, cancelT := context.WithTimeout(ctx, 3*time.Minute)
	t.Cleanup(func() { cancelT(); cancelC(); cancelA() })
	dl := t.TempDir()
	if err := chromedp.Do(ctx, chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		_, err := chromedp.CallBrowser(ctx, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{
			Behavior: browser.SetDownloadBehaviorBehaviorAllowAndName, DownloadPath: dl, EventsEnabled: new(true),
		})
		return err
	})); err != nil {
		t.Fatalf("start Chromium: %v", err)
	}
	res, err := os.Create(filepath.Join(out, "axe.txt"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { res.Close() })
	return &tab{t: t, ctx: ctx, out: out, axe: string(axe), base: base, dl: dl, results: res}
}

func (b *tab) do(actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	if err := chromedp.Do(b.ctx, actions...); err != nil {
		b.t.Fatalf("browser: %v", err)
	}
}

// open navigates to a path of the server and waits for the page.
func (b *tab) open(path string) {
	b.t.Helper()
	b.do(chromedp.Navigate(b.base+path), chromedp.WaitReady(chromedp.CSS("body")))
}

// submit clicks a submit button and waits for the next page to load.
func (b *tab) submit(sel string) {
	b.t.Helper()
	b.eval(`document.documentElement.dataset.kluisMark = "old"`)
	if _, err := chromedp.Run(b.ctx, chromedp.WaitEvent(page.LoadEventFired, nil, chromedp.Click(chromedp.CSS(sel)))); err != nil {
		b.t.Fatalf("click %s: %v", sel, err)
	}
	b.waitNewPage()
}

// waitNewPage waits until the page marked "old" has been replaced. It
// polls across navigations: a redirect after the click may destroy the
// page a single poll runs in ("Cannot find context with specified id").
func (b *tab) waitNewPage() {
	b.t.Helper()
	b.waitFor(`document.readyState === "complete" && document.documentElement.dataset.kluisMark !== "old"`)
}

// waitFor evaluates cond until it is true, across navigations (which make
// a single poll fail).
func (b *tab) waitFor(cond string) {
	b.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if ok, err := chromedp.Run(b.ctx, chromedp.Evaluate[bool](cond)); err == nil && ok {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	b.t.Fatalf("timed out waiting for %s (at %s)", cond, b.path())
}

func (b *tab) eval(js string) string {
	b.t.Helper()
	v, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](js))
	if err != nil {
		b.t.Fatalf("evaluate %q: %v", js, err)
	}
	return v
}

func (b *tab) text(sel string) string {
	b.t.Helper()
	v, err := chromedp.Run(b.ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		b.t.Fatalf("text of %s: %v", sel, err)
	}
	return v
}

// page checks a page that is shown: its main region holds every want,
// it reflows without sideways scrolling, and axe-core finds nothing
// (check, which also saves a screenshot as name).
func (b *tab) page(name string, want ...string) {
	b.t.Helper()
	main := b.text("main")
	for _, w := range want {
		if !strings.Contains(main, w) {
			b.t.Errorf("%s: page lacks %q:\n%s", name, w, main)
		}
	}
	b.noSideways(name)
	b.check(name)
}

func (b *tab) path() string { return b.eval(`location.pathname + location.search + location.hash`) }

// check saves a screenshot of the page and runs axe-core on it; any
// violation of WCAG 2.1 A/AA fails the test.
func (b *tab) check(name string) {
	b.t.Helper()
	b.step++
	png, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Fatalf("screenshot: %v", err)
	}
	file := fmt.Sprintf("%02d-%s.png", b.step, name)
	if err := os.WriteFile(filepath.Join(b.out, file), png, 0o644); err != nil {
		b.t.Fatal(err)
	}
	// Runtime.evaluate is not subject to the page's CSP, which rightly
	// refuses any added script.
	if _, err := chromedp.Run(b.ctx, chromedp.Evaluate[chromedp.Void](b.axe)); err != nil {
		b.t.Fatalf("inject axe-core: %v", err)
	}
	tags, _ := json.Marshal(axeTags)
	js := `axe.run(document, {runOnly: {type: "tag", values: ` + string(tags) + `}, resultTypes: ["violations"]}).then(r => JSON.stringify({
		passes: r.passes.length,
		violations: r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map(n => n.target.join(" ") + ": " + n.failureSummary)}))}))`
	raw, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](js, chromedp.EvalAwaitPromise))
	if err != nil {
		b.t.Fatalf("axe.run: %v", err)
	}
	var res struct {
		Passes     int `json:"passes"`
		Violations []struct {
			ID, Impact, Help string
			Nodes            []string
		} `json:"violations"`
	}
	if err := json.Unmarshal([]byte(raw), &res); err != nil {
		b.t.Fatalf("axe result: %v", err)
	}
	lang := b.eval(`document.documentElement.lang`)
	fmt.Fprintf(b.results, "%s\tlang=%s\tpath=%s\tviolations=%d\n", file, lang, b.eval(`location.pathname`), len(res.Violations))
	for _, v := range res.Violations {
		b.t.Errorf("axe on %s (%s): %s (%s): %s\n  %s", name, lang, v.ID, v.Impact, v.Help, strings.Join(v.Nodes, "\n  "))
		fmt.Fprintf(b.results, "\t%s %s %s\n", v.ID, v.Impact, strings.Join(v.Nodes, "; "))
	}
}

// download clicks a link and returns the downloaded bytes.
func (b *tab) download(sel string) []byte {
	b.t.Helper()
	progress := chromedp.BrowserEvents(b.ctx, browser.DownloadProgress)
	b.do(chromedp.Click(chromedp.CSS(sel)))
	for ev, err := range progress {
		if err != nil {
			b.t.Fatalf("download %s: %v", sel, err)
		}
		switch ev.State {
		case browser.DownloadProgressStateCompleted:
			data, err := os.ReadFile(filepath.Join(b.dl, ev.GUID))
			if err != nil {
				b.t.Fatal(err)
			}
			return data
		case browser.DownloadProgressStateCanceled:
			b.t.Fatalf("download %s was cancelled", sel)
		}
	}
	return nil
}

func (b *tab) setLang(lang, next string) {
	b.t.Helper()
	b.open("/lang?to=" + lang + "&next=" + next)
	if got := b.eval(`document.documentElement.lang`); got != lang {
		b.t.Fatalf("page language %q after switching to %q", got, lang)
	}
}

func startBrowserServer(t *testing.T, args ...string) *server {
	needBrowser(t)
	return startServer(t, t.TempDir(), append([]string{"--max-failures", "3", "--rate-limit", "0", "--rate-limit-global", "0"}, args...)...)
}

// words the pages must show, per language.
var words = map[string]map[string]string{
	"nl": {"password": "Vul het wachtwoord in", "problem": "Er is een probleem", "open": "Vertrouwelijk bericht van", "expired": "verlopen",
		"revoked": "ingetrokken", "notfound": "Deze link werkt niet", "locked": "geblokkeerd", "home": "Verzenden", "soon": "nog niet"},
	"en": {"password": "Enter the password", "problem": "There is a problem", "open": "Confidential message from", "expired": "expired",
		"revoked": "revoked", "notfound": "This link does not work", "locked": "blocked", "home": "Send", "soon": "not possible yet"},
}

func TestBrowserPasswordFlow(t *testing.T) {
	s := startBrowserServer(t)
	for _, lang := range []string{"nl", "en"} {
		t.Run(lang, func(t *testing.T) {
			w := words[lang]
			const pw = "Zomer-Appel-42!"
			message := "Beste mevrouw Jansen,\n\nHierbij de stukken.\n<b>Dit is geen HTML</b>"
			c := s.create(t, password{Mode: "manual", Value: pw}, message)
			report := newSource(11, 300_000, "RAPPORT")
			note := newSource(12, 5_000, "NOTE")
			for name, src := range map[string]*source{"rapport.pdf": report, "bijlage.txt": note} {
				if st, code := s.plainUpload(t, c, name, src, false); st != http.StatusCreated {
					t.Fatalf("upload %s: %d %s", name, st, code)
				}
			}
			access, _ := s.finish(t, c)
			b := newBrowser(t, s.base)

			b.setLang(lang, "/")
			if !strings.Contains(b.text("main"), w["home"]) {
				t.Errorf("start page lacks %q", w["home"])
			}
			b.check("start")
			// The first Tab reaches the skip link.
			b.do(chromedp.KeyEvent("\t"))
			if got := b.eval(`document.activeElement.getAttribute("href") || ""`); got != "#main" {
				t.Errorf("first Tab focuses %q, want the skip link", got)
			}

			b.open("/r/" + access)
			if !strings.Contains(b.text("h1"), w["password"]) {
				t.Fatalf("password page heading %q", b.text("h1"))
			}
			b.check("password")

			b.do(chromedp.SendKeys(chromedp.ID("password"), "not the password"))
			b.submit("main form button[type=submit]")
			if !strings.Contains(b.text("[data-error-summary]"), w["problem"][:10]) {
				t.Errorf("no error summary after a wrong password")
			}
			if got := b.eval(`document.activeElement.hasAttribute("data-error-summary") ? "summary" : document.activeElement.tagName`); got != "summary" {
				t.Errorf("focus after the error is on %s, want the error summary", got)
			}
			if got := b.eval(`document.querySelector("[data-error-summary] a").getAttribute("href")`); got != "#password" {
				t.Errorf("the summary links to %q, want #password", got)
			}
			b.check("wrong-password")

			b.do(chromedp.SendKeys(chromedp.ID("password"), pw))
			b.submit("main form button[type=submit]")
			if p := b.path(); p != "/r/"+access+"/open" {
				t.Fatalf("after the right password: at %s", p)
			}
			if got := b.text("h1"); !strings.Contains(got, w["open"]) || !strings.Contains(got, "Sender") {
				t.Errorf("contents heading %q", got)
			}
			if got := b.eval(`document.querySelector(".kluis-message").textContent`); got != message {
				t.Errorf("message shown as %q, want %q", got, message)
			}
			if n := b.eval(`String(document.querySelectorAll(".kluis-message b").length)`); n != "0" {
				t.Error("the message was rendered as HTML")
			}
			b.check("contents")

			got := b.download(`a[href$="/zip"]`)
			zr, err := zip.NewReader(bytes.NewReader(got), int64(len(got)))
			if err != nil {
				t.Fatalf("ZIP: %v", err)
			}
			want := map[string]*source{"rapport.pdf": report, "bijlage.txt": note}
			for _, f := range zr.File {
				rc, err := f.Open()
				if err != nil {
					t.Fatal(err)
				}
				body, err := io.ReadAll(rc)
				rc.Close()
				if err != nil {
					t.Fatalf("ZIP %s: %v", f.Name, err)
				}
				if src, ok := want[f.Name]; ok {
					if !bytes.Equal(body, src.bytesAt(0, src.size)) {
						t.Errorf("ZIP %s: bytes differ", f.Name)
					}
					delete(want, f.Name)
				} else if string(body) != message {
					t.Errorf("ZIP %s: unexpected entry", f.Name)
				}
			}
			if len(want) > 0 {
				t.Errorf("ZIP lacks %v", want)
			}
			rows := b.eval(`JSON.stringify([...document.querySelectorAll(".kluis-file")].map(r => r.querySelector(".kluis-file__name").textContent + "|" + r.querySelector(".kluis-file__size").lastChild.textContent))`)
			if !strings.Contains(rows, "rapport.pdf|300") || !strings.Contains(rows, "bijlage.txt|5") {
				t.Errorf("files list %s", rows)
			}
			for _, name := range []string{"rapport.pdf", "bijlage.txt"} {
				got := b.download(`a[href*="/files/"][data-name="` + name + `"]`)
				if src := map[string]*source{"rapport.pdf": report, "bijlage.txt": note}[name]; !bytes.Equal(got, src.bytesAt(0, src.size)) {
					t.Errorf("download %s: %d bytes differ from the upload", name, len(got))
				}
			}
			b.check("after-downloads")

			// Revoked by the sender: the same link now says so, with the date.
			if st, code := call(t, "POST", s.base+"/api/v1/transfers/"+c.ID+"/revoke", c.UploadToken, nil, nil); st != http.StatusOK && st != http.StatusNoContent {
				t.Fatalf("revoke: %d %s", st, code)
			}
			b.open("/r/" + access + "/open")
			if got := b.text("main"); !strings.Contains(got, w["revoked"]) || !strings.Contains(got, time.Now().Format("2006")) {
				t.Errorf("revoked page: %q", got)
			}
			b.check("revoked")
		})
	}
}

// TestBrowserNoPassword: the secret in the #fragment is posted by the
// page's script and never reaches a URL the server sees; the Receive page
// takes a code typed by hand.
func TestBrowserNoPassword(t *testing.T) {
	s := startBrowserServer(t)
	c := s.create(t, password{Mode: "none"}, "")
	src := newSource(21, 70_000, "NOPW")
	if st, code := s.plainUpload(t, c, "overzicht.csv", src, false); st != http.StatusCreated {
		t.Fatalf("upload: %d %s", st, code)
	}
	access, fragment := s.finish(t, c)
	if fragment == "" {
		t.Fatal("no fragment in a no-password link")
	}
	b := newBrowser(t, s.base)
	b.setLang("en", "/")
	b.eval(`document.documentElement.dataset.kluisMark = "old"`)
	// As if the link in the mail was clicked. The page's script posts the
	// secret at once, so this is a navigation followed by another.
	b.eval(`location.href = ` + strconvQuote(s.base+"/r/"+access+"#"+fragment) + `; ""`)
	b.waitFor(`location.pathname.endsWith("/open") && document.readyState === "complete"`)
	if p := b.path(); strings.Contains(p, fragment) {
		t.Errorf("the secret is still in the address bar: %s", p)
	}
	b.check("contents-en")
	if got := b.download(`a[href*="/files/"]`); !bytes.Equal(got, src.bytesAt(0, src.size)) {
		t.Errorf("download: %d bytes differ", len(got))
	}
	if strings.Contains(string(s.log()), fragment) {
		t.Error("the link secret reached the server log")
	}

	// By hand: the code as printed in the mail, in capitals, then the link
	// pasted into the form.
	for _, lang := range []string{"nl", "en"} {
		b.setLang(lang, "/receive")
		b.check("receive-" + lang)
		b.do(chromedp.SendKeys(chromedp.ID("code"), "not-a-code"))
		b.submit("main form button[type=submit]")
		b.check("receive-error-" + lang)
		b.do(chromedp.SetValue(chromedp.ID("code"), strings.ToUpper(groups(access))))
		b.submit("main form button[type=submit]")
		if p := b.path(); p != "/r/"+access && !strings.HasSuffix(p, "/open") {
			t.Fatalf("after the code: at %s", p)
		}
	}
	// This browser is unlocked already: a fresh tab without the session
	// sees the paste form.
	b2 := newBrowser(t, s.base, "_second-browser")
	b2.setLang("nl", "/r/"+access)
	b2.check("paste-link-nl")
	b2.do(chromedp.SendKeys(chromedp.ID("secret"), s.base+"/r/"+access+"#"+fragment))
	b2.submit("main form button[type=submit]")
	if p := b2.path(); p != "/r/"+access+"/open" {
		t.Fatalf("after pasting the link: at %s", p)
	}
	b2.check("contents-nl")
}

func strconvQuote(s string) string { b, _ := json.Marshal(s); return string(b) }

// groups writes an access id as the mails do: groups of five with dashes.
func groups(id string) string {
	var parts []string
	for i := 0; i < len(id); i += 5 {
		parts = append(parts, id[i:min(i+5, len(id))])
	}
	return strings.Join(parts, "-")
}

// TestBrowserGonePages: expired, unknown and locked links, and the pages
// for everyone, in both languages.
func TestBrowserGonePages(t *testing.T) {
	s := startBrowserServer(t)
	// A transfer that expires in a few seconds (the API takes expires_at).
	expiresAt := time.Now().Add(4 * time.Second)
	req := map[string]any{
		"sender":     map[string]string{"email": "sender@example.nl", "name": "Sender"},
		"to":         []string{"to@example.nl"},
		"message":    "kort",
		"password":   password{Mode: "manual", Value: "Zomer-Appel-42!"},
		"expires_at": expiresAt.UTC().Format(time.RFC3339Nano),
	}
	var c created
	if st, code := call(t, "POST", s.base+"/api/v1/transfers", s.senderKey(t), req, &c); st != http.StatusCreated {
		t.Fatalf("create: %d %s", st, code)
	}
	expiring, _ := s.finish(t, &c)
	locked, _ := s.finish(t, s.create(t, password{Mode: "manual", Value: "Zomer-Appel-42!"}, "x"))
	for range 3 {
		call(t, "POST", s.base+"/api/v1/links/"+locked+"/unlock", "", map[string]string{"secret": "wrong password"}, nil)
	}
	time.Sleep(time.Until(expiresAt) + 500*time.Millisecond)

	b := newBrowser(t, s.base)
	for _, lang := range []string{"nl", "en"} {
		w := words[lang]
		b.setLang(lang, "/")
		b.open("/r/" + expiring)
		if got := b.text("main"); !strings.Contains(got, w["expired"]) || !strings.Contains(got, time.Now().Format("2006")) {
			t.Errorf("expired page (%s): %q", lang, got)
		}
		// The transfer held only a message: the page says so (issue 13).
		if got := b.text("h1"); !strings.Contains(got, map[string]string{"nl": "bericht", "en": "message"}[lang]) {
			t.Errorf("expired page of a message-only transfer (%s) is titled %q", lang, got)
		}
		b.check("expired-" + lang)
		b.phones("expired-" + lang)
		b.open("/r/abcdefghijklmnopqrstuvwxyz")
		if !strings.Contains(b.text("h1"), w["notfound"]) {
			t.Errorf("not-found page (%s): %q", lang, b.text("h1"))
		}
		b.check("notfound-" + lang)
		b.phones("notfound-" + lang)
		b.open("/r/" + locked)
		if !strings.Contains(b.text("main"), w["locked"]) {
			t.Errorf("locked page (%s): %q", lang, b.text("main"))
		}
		b.check("locked-" + lang)
		b.phones("locked-" + lang)
		for _, p := range []string{"/send", "/help", "/help/send", "/accessibility", "/privacy"} {
			b.open(p)
			b.check(strings.ReplaceAll(strings.TrimPrefix(p, "/"), "/", "-") + "-" + lang)
		}
		if !strings.Contains(b.text("main"), "30") {
			t.Errorf("privacy page (%s) does not give the retention", lang)
		}
	}
}

// viewport sets the tab's window to a width in CSS pixels (a phone).
func (b *tab) viewport(width, height int64) {
	b.t.Helper()
	b.do(chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		_, err := chromedp.Call(ctx, emulation.SetDeviceMetricsOverride, emulation.SetDeviceMetricsOverrideParams{
			Width: width, Height: height, DeviceScaleFactor: 1, Mobile: true,
		})
		return err
	}))
}

// noSideways fails the test when the page scrolls sideways or cuts off a
// control (WCAG 1.4.10, reflow) at the viewport's width: a control inside
// a container that hides its overflow does not widen the page, so each
// link, button and field is checked against the screen's edges too.
func (b *tab) noSideways(name string) {
	b.t.Helper()
	got := b.eval(`(() => {
		const w = document.documentElement.clientWidth, out = [];
		if (document.documentElement.scrollWidth > w) out.push("page " + document.documentElement.scrollWidth + " px wide");
		for (const e of document.querySelectorAll("a, button, input, select, textarea, summary")) {
			const r = e.getBoundingClientRect();
			if (r.width === 0 || getComputedStyle(e).visibility === "hidden" || e.closest(".kluis-visually-hidden, .utrecht-skip-link")) continue;
			if (r.left < -1 || r.right > w + 1) out.push(e.tagName + " " + JSON.stringify(e.textContent.trim().slice(0, 30)) + " at " + Math.round(r.left) + ".." + Math.round(r.right));
		}
		return out.join("; ");
	})()`)
	if got != "" {
		b.t.Errorf("%s: wider than the %s px screen: %s", name, b.eval(`String(document.documentElement.clientWidth)`), got)
	}
}

// phones checks the page at 320 and 390 px for sideways scrolling and
// cut-off controls (noSideways), then returns to the desktop width.
func (b *tab) phones(name string) {
	b.t.Helper()
	for _, w := range []int64{320, 390} {
		b.viewport(w, 800)
		b.noSideways(name + " at " + itoa(w))
	}
	b.viewport(1280, 900)
}
