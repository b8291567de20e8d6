package web

import (
	"context"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/kluis-nl/kluis"
	"github.com/kluis-nl/kluis/internal/locale"
	"github.com/kluis-nl/kluis/internal/transfer"
)

// TestPageLanguagesServed: the language rule as the pages show it. A
// recipient page speaks the transfer's language unless the visitor chose
// another, in any language Kluis has (Arabic right to left); a sender page
// stays in a complete language whatever was chosen; the language switch
// offers what the page can show; the help is split into a recipients' page
// and a senders' page.
func TestPageLanguagesServed(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	c, err := e.svc.Create(ctx, transfer.CreateRequest{
		SenderEmail: "a.jansen@gemeente.example.nl", SenderName: "A. Jansen",
		To: []string{"burger@example.nl"}, Message: "Hello", Lang: "en", PasswordMode: kluis.PasswordGenerate,
	})
	if err != nil {
		t.Fatal(err)
	}
	fin, err := e.svc.Finish(ctx, transfer.Owner{TransferID: c.Transfer.ID}, "")
	if err != nil {
		t.Fatal(err)
	}
	link := e.srv.URL + "/r/" + fin.Links[0].AccessID
	page := func(u, cookie, accept string) string {
		t.Helper()
		req, _ := http.NewRequest("GET", u, nil)
		if cookie != "" {
			req.AddCookie(&http.Cookie{Name: langCookie, Value: cookie})
		}
		req.Header.Set("Accept-Language", accept)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d %v", u, resp.StatusCode, err)
		}
		return string(b)
	}
	htmlTag := regexp.MustCompile(`<html lang="([a-z]+)"(?: dir="([a-z]+)")?`)
	switchTo := regexp.MustCompile(`/lang\?to=([a-z]+)`)
	for _, tc := range []struct {
		name, path, cookie, accept, lang, dir string
		offers                                int // languages in the switch, the page's own included
	}{
		{"the transfer's language over the browser's", "/r/{access}", "", "nl", "en", "ltr", 9},
		{"the visitor's choice over the transfer's", "/r/{access}", "ar", "nl", "ar", "rtl", 9},
		{"any language on the code form", "/receive", "uk", "", "uk", "ltr", 9},
		{"the recipients' help", "/help", "de", "", "de", "ltr", 9},
		{"a sender page in a complete language", "/send", "de", "de-DE,en;q=0.8", "en", "ltr", 2},
		{"the senders' help", "/help/send", "ar", "", "nl", "ltr", 2},
	} {
		body := page(e.srv.URL+strings.Replace(tc.path, "{access}", fin.Links[0].AccessID, 1), tc.cookie, tc.accept)
		m := htmlTag.FindStringSubmatch(body)
		if m == nil || m[1] != tc.lang || m[2] != tc.dir {
			t.Errorf("%s: %v, want <html lang=%q dir=%q>", tc.name, m, tc.lang, tc.dir)
		}
		if got := len(switchTo.FindAllString(body, -1)) + 1; got != tc.offers {
			t.Errorf("%s: the language switch offers %d languages, want %d", tc.name, got, tc.offers)
		}
	}
	if body := page(link, "", ""); !strings.Contains(body, `lang="ar" hreflang="ar" dir="rtl">العربية</a>`) {
		t.Error("the language switch does not name Arabic in Arabic, right to left")
	}

	// The switch takes every language Kluis has, in any spelling.
	cl := e.client(t)
	resp, _ := get(t, cl, e.srv.URL+"/lang?to=TR&next=/receive")
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("switch: %d", resp.StatusCode)
	}
	var got string
	for _, ck := range resp.Cookies() {
		if ck.Name == langCookie {
			got = ck.Value
		}
	}
	if got != "tr" {
		t.Errorf("the switch to TR set the cookie to %q", got)
	}
	if _, body := get(t, cl, e.srv.URL+"/receive"); !strings.Contains(body, `<html lang="tr"`) {
		t.Error("the chosen Turkish does not show on the code form")
	}
}

// TestSendRecipientLanguage: the send form offers every language Kluis
// has for the recipients, by its own name; the page's language is chosen
// at first; a language from the list is taken and stored, anything else
// is an error on that field.
func TestSendRecipientLanguage(t *testing.T) {
	e := newSendEnv(t, nil)
	c := e.verify(t, "a.jansen@example.nl")
	_, body := get(t, c, e.srv.URL+"/send")
	sel := regexp.MustCompile(`(?s)<select[^>]* id="lang" name="lang"[^>]*>(.*?)</select>`).FindStringSubmatch(body)
	if sel == nil {
		t.Fatal("the send form has no language list")
	}
	opts := regexp.MustCompile(`<option value="([a-z]+)"[^>]*>([^<]+)</option>`).FindAllStringSubmatch(sel[1], -1)
	var got []string
	for _, o := range opts {
		got = append(got, o[1]+"="+o[2])
	}
	want := "nl=Nederlands en=English fy=Frysk de=Deutsch fr=Français pl=Polski tr=Türkçe uk=Українська ar=العربية"
	if strings.Join(got, " ") != want {
		t.Errorf("language list %q, want %q", strings.Join(got, " "), want)
	}
	if !strings.Contains(sel[1], `<option value="nl" lang="nl" dir="ltr" selected>`) {
		t.Error("the page's language is not chosen at first")
	}

	st, out := postJSON(t, c, e.srv.URL+"/send/transfer", compose(map[string]any{"lang": "ar"}))
	if st != http.StatusCreated {
		t.Fatalf("Arabic for the recipients: %d %v", st, out)
	}
	id, _ := out["id"].(string)
	ov, err := e.svc.Overview(context.Background(), transfer.Owner{TransferID: id})
	if err != nil {
		t.Fatal(err)
	}
	if ov.Lang != "ar" {
		t.Errorf("stored language %q, want ar", ov.Lang)
	}
	st, out = postJSON(t, c, e.srv.URL+"/send/transfer", compose(map[string]any{"lang": "es"}))
	if errs := fieldErrors(out); st != http.StatusUnprocessableEntity || errs["lang"] != translate("nl", "validate.lang_unsupported", strings.Join(locale.Codes(), ", ")) {
		t.Errorf("Spanish for the recipients: %d %v", st, errs)
	}
}

// TestCSSMirrors: Kluis's own style sheets use logical properties only
// (margin-inline-start, text-align: start, …), so that a right-to-left
// page mirrors by itself.
func TestCSSMirrors(t *testing.T) {
	physical := regexp.MustCompile(`(?i)\b(?:margin|padding|border|inset)-(?:left|right)\b|(?:^|[;{\s])(?:left|right)\s*:|\b(?:text-align|float|clear)\s*:\s*(?:left|right)\b`)
	for _, name := range []string{"kluis.css", "print.css", "theme.css"} {
		b, err := staticFS.ReadFile("static/" + name)
		if err != nil {
			t.Fatal(err)
		}
		for i, line := range strings.Split(string(b), "\n") {
			if m := physical.FindString(line); m != "" {
				t.Errorf("%s:%d: %q is a physical direction; use a logical property", name, i+1, strings.TrimSpace(m))
			}
		}
	}
}
