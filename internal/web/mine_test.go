package web

import (
	"bytes"
	"context"
	"html"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kluis-nl/kluis"
	"github.com/kluis-nl/kluis/internal/kluistest"
	"github.com/kluis-nl/kluis/internal/locale"
	"github.com/kluis-nl/kluis/internal/mail"
	"github.com/kluis-nl/kluis/internal/ratelimit"
	"github.com/kluis-nl/kluis/internal/sender"
	"github.com/kluis-nl/kluis/internal/transfer"
)

// senderEnv is env with sender verification and mail: the pages of My
// transfers and Reply.
type senderEnv struct {
	*env
	senders *sender.Service
	mails   *mails
}

func newSenderEnv(t *testing.T, tune func(*transfer.Config)) *senderEnv {
	t.Helper()
	// Tests send many replies from one address; TestReplyRateLimit
	// tests the default limiter.
	return newSenderEnvWith(t, tune, ratelimit.New(ratelimit.Config{PerMinute: 6000, Burst: 1000, GlobalPerMinute: 60000}))
}

// newSenderEnvWith is newSenderEnv with the reply pages' limiter (nil:
// the default).
func newSenderEnvWith(t *testing.T, tune func(*transfer.Config), replies *ratelimit.Limiter) *senderEnv {
	t.Helper()
	logs := kluistest.NewLogs()
	a := startApp(t, TestAppOptions{Engine: tune, ReplyLimiter: replies, Logs: logs})
	return &senderEnv{env: &env{app: a, svc: a.Transfers, srv: testServer{URL: a.URL}, web: a.Web, logs: logs}, senders: a.Senders, mails: &mails{app: a}}
}

var codePattern = regexp.MustCompile(`\b\d{4}[ -]?\d{4}\b`)

// login verifies email with the code from its mail and gives c the
// session cookie, as the verification page does.
func (e *senderEnv) login(t *testing.T, c *http.Client, email string) string {
	t.Helper()
	return e.loginLang(t, c, email, "nl")
}

// loginLang is login for a sender who verifies in lang.
func (e *senderEnv) loginLang(t *testing.T, c *http.Client, email, lang string) string {
	t.Helper()
	ctx := context.Background()
	pre, err := e.senders.Start(ctx, "", email, "", "", lang)
	if err != nil {
		t.Fatal(err)
	}
	m := e.mails.last(mail.KindVerifyCode, email)
	if m == nil {
		t.Fatal("no verification mail")
	}
	code := codePattern.FindString(m.Text)
	s, err := e.senders.Confirm(ctx, pre, code, "browser")
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(e.srv.URL)
	c.Jar.SetCookies(u, []*http.Cookie{{Name: senderSessionCookie, Value: s.Token, Path: "/"}})
	return s.Token
}

func getLang(t *testing.T, c *http.Client, u, lang string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", u, nil)
	// A browser in lang whose visitor chose lang too: on a recipient page
	// the choice (the cookie) comes before the transfer's language.
	req.Header.Set("Accept-Language", lang)
	req.AddCookie(&http.Cookie{Name: langCookie, Value: lang})
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	b.ReadFrom(resp.Body)
	return resp, b.String()
}

func wantStatus(t *testing.T, what string, resp *http.Response, body string, status int) {
	t.Helper()
	if resp.StatusCode != status {
		t.Fatalf("%s: %d, want %d: %.600s", what, resp.StatusCode, status, body)
	}
}

func TestMyTransfers(t *testing.T) {
	e := newSenderEnv(t, nil)
	s := e.send(t, kluis.PasswordManual, "Zeven-Groene-Appels", "Het dossier.", map[string][]byte{"dossier.pdf": []byte("%PDF inhoud"), "bijlage.txt": []byte("12345")})
	id := s.owner.TransferID

	// Not verified: to the verification page, which comes back here.
	anon := e.client(t)
	for _, p := range []string{"/transfers", "/transfers/" + id} {
		resp, body := get(t, anon, e.srv.URL+p)
		wantStatus(t, p, resp, body, http.StatusSeeOther)
		if loc := resp.Header.Get("Location"); loc != "/send?next="+url.QueryEscape(p) {
			t.Errorf("%s redirects to %q", p, loc)
		}
	}
	resp, body := post(t, anon, e.srv.URL+"/transfers/"+id+"/revoke", url.Values{"confirm": {"yes"}})
	wantStatus(t, "anonymous revoke", resp, body, http.StatusSeeOther)

	c := e.client(t)
	token := e.login(t, c, "a.jansen@gemeente.example.nl")
	resp, body = getLang(t, c, e.srv.URL+"/transfers", "nl")
	wantStatus(t, "list", resp, body, http.StatusOK)
	for _, want := range []string{"a.jansen@gemeente.example.nl", "/transfers/" + id, "Zonder onderwerp", translate("nl", "mine.n_files", 2, locale.For(locale.NL).Size(16)), "Beschikbaar", "met vertrouwelijk bericht", `action="/logout"`} {
		if !strings.Contains(body, want) {
			t.Errorf("list lacks %q", want)
		}
	}
	resp, body = getLang(t, c, e.srv.URL+"/transfers", "en")
	wantStatus(t, "English list", resp, body, http.StatusOK)
	for _, want := range []string{"No subject", translate("en", "mine.n_files", 2, locale.For(locale.EN).Size(16)), "Available"} {
		if !strings.Contains(body, want) {
			t.Errorf("English list lacks %q", want)
		}
	}

	// The recipient opens and downloads one file.
	rc := e.client(t)
	resp, body = post(t, rc, e.srv.URL+"/r/"+s.access+"/unlock", url.Values{"password": {s.secret}})
	wantStatus(t, "unlock", resp, body, http.StatusSeeOther)
	_, body = get(t, rc, e.srv.URL+"/r/"+s.access+"/open")
	fileURL := regexp.MustCompile(`/r/[^"]+/files/[^"]+`).FindString(body)
	resp, body = get(t, rc, e.srv.URL+fileURL)
	wantStatus(t, "download", resp, body, http.StatusOK)

	resp, body = getLang(t, c, e.srv.URL+"/transfers/"+id, "nl")
	wantStatus(t, "detail", resp, body, http.StatusOK)
	for _, want := range []string{"burger@example.nl", "archief@example.nl", "bcc, niet zichtbaar", "Geopend op", "Bestand 1 van 2 gedownload op", "Nog niet geopend",
		"Toegang intrekken voor burger@example.nl", "Intrekken voor iedereen", `type="date"`, "De namen van de bestanden zijn versleuteld", "vertrouwelijk bericht"} {
		if !strings.Contains(body, want) {
			t.Errorf("detail lacks %q", want)
		}
	}
	if strings.Contains(body, "dossier.pdf") || strings.Contains(body, "Het dossier.") {
		t.Error("the detail page shows what only the transfer secret opens")
	}

	// Another verified sender: the transfer does not exist for them.
	other := e.client(t)
	e.login(t, other, "iemand.anders@gemeente.example.nl")
	resp, body = get(t, other, e.srv.URL+"/transfers/"+id)
	wantStatus(t, "other's detail", resp, body, http.StatusNotFound)
	resp, body = post(t, other, e.srv.URL+"/transfers/"+id+"/revoke", url.Values{"confirm": {"yes"}})
	wantStatus(t, "other's revoke", resp, body, http.StatusNotFound)
	resp, body = post(t, other, e.srv.URL+"/transfers/"+id+"/extend", url.Values{"expires": {"2099-01-01"}})
	wantStatus(t, "other's extend", resp, body, http.StatusNotFound)
	if _, body = get(t, other, e.srv.URL+"/transfers"); strings.Contains(body, id) {
		t.Error("another sender's list shows the transfer")
	}

	// Extend: bad dates are field errors; a good one is saved.
	for in, key := range map[string]string{"": "mine.extend_error_empty", "31-12-2026": "mine.extend_error_format",
		"2000-01-01": "mine.extend_error_early", "2999-01-01": "mine.extend_error_late"} {
		resp, body = post(t, c, e.srv.URL+"/transfers/"+id+"/extend", url.Values{"expires": {in}})
		wantStatus(t, "extend "+in, resp, body, http.StatusUnprocessableEntity)
		if !strings.Contains(body, `href="#expires"`) || !strings.Contains(body, translate("nl", key)) || !strings.Contains(body, `aria-invalid="true"`) {
			t.Errorf("extend %q: no linked error %s", in, key)
		}
	}
	day := e.svc.Now().In(amsterdam).AddDate(0, 0, 20)
	resp, body = post(t, c, e.srv.URL+"/transfers/"+id+"/extend", url.Values{"expires": {day.Format(dateLayout)}})
	wantStatus(t, "extend", resp, body, http.StatusSeeOther)
	if loc := resp.Header.Get("Location"); loc != "/transfers/"+id+"?done=extended" {
		t.Errorf("extend redirects to %q", loc)
	}
	tr, err := e.svc.Transfer(context.Background(), s.owner)
	if err != nil {
		t.Fatal(err)
	}
	if got := tr.ExpiresAt.In(amsterdam); got.Format(dateLayout) != day.Format(dateLayout) || got.Hour() != 23 || got.Minute() != 59 {
		t.Errorf("expires at %v, want the end of %s", got, day.Format(dateLayout))
	}
	_, body = get(t, c, e.srv.URL+"/transfers/"+id+"?done=extended")
	if !strings.Contains(body, translate("nl", "mine.done_extended")) || !strings.Contains(body, locale.For(locale.NL).Date(tr.ExpiresAt)) {
		t.Error("the detail page does not confirm the new date")
	}

	// Revoke one recipient: a confirmation step first.
	rid := regexp.MustCompile(`name="recipient" value="(\d+)"`).FindStringSubmatch(body)
	if rid == nil {
		t.Fatal("no recipient revoke form")
	}
	resp, body = post(t, c, e.srv.URL+"/transfers/"+id+"/revoke", url.Values{"recipient": {rid[1]}})
	wantStatus(t, "revoke step 1", resp, body, http.StatusOK)
	if !strings.Contains(body, "Weet u het zeker?") || !strings.Contains(body, `name="confirm" value="yes"`) {
		t.Error("no confirmation step")
	}
	if _, err := e.svc.Lookup(context.Background(), s.access); err != nil {
		t.Fatal("the first step already revoked:", err)
	}
	resp, body = post(t, c, e.srv.URL+"/transfers/"+id+"/revoke", url.Values{"recipient": {rid[1]}, "confirm": {"yes"}})
	wantStatus(t, "revoke one", resp, body, http.StatusSeeOther)
	resp, body = get(t, rc, e.srv.URL+"/r/"+s.access)
	wantStatus(t, "revoked link", resp, body, http.StatusGone)
	// Issue 13, item 9: the files are still there for the others.
	if !strings.Contains(body, html.EscapeString(translate("nl", "gone.access_ended"))) || strings.Contains(body, "Niemand kan ze nog openen") {
		t.Error("the recipient whose access was revoked is told the files are deleted for everyone")
	}
	_, body = get(t, c, e.srv.URL+"/transfers/"+id)
	if !strings.Contains(body, "Toegang ingetrokken op") || strings.Contains(body, "Toegang intrekken voor burger@example.nl") {
		t.Error("detail does not show the revoked recipient")
	}

	// Revoke for everyone.
	resp, body = post(t, c, e.srv.URL+"/transfers/"+id+"/revoke", url.Values{"confirm": {"yes"}})
	wantStatus(t, "revoke all", resp, body, http.StatusSeeOther)
	_, body = get(t, c, e.srv.URL+"/transfers/"+id+"?done=revoked")
	if !strings.Contains(body, "Ingetrokken") || strings.Contains(body, `action="/transfers/`+id+`/extend"`) {
		t.Error("a revoked transfer still offers actions")
	}

	// Log out: the session ends on the server too.
	resp, body = post(t, c, e.srv.URL+"/logout", nil)
	wantStatus(t, "logout", resp, body, http.StatusSeeOther)
	if sc := resp.Header.Get("Set-Cookie"); !strings.Contains(sc, senderSessionCookie+"=;") || !strings.Contains(sc, "Max-Age=0") {
		t.Errorf("logout cookie: %q", sc)
	}
	// Issue 13, item 9: the sender sees that the logout worked.
	if loc := resp.Header.Get("Location"); loc != "/logout" {
		t.Errorf("logout redirects to %q, want the confirmation", loc)
	}
	resp, body = getLang(t, c, e.srv.URL+"/logout", "nl")
	wantStatus(t, "logged out", resp, body, http.StatusOK)
	if !strings.Contains(body, "U bent uitgelogd") {
		t.Error("no logout confirmation")
	}
	if _, err := e.senders.Authenticate(context.Background(), token); err == nil {
		t.Error("the session still works after logout")
	}
	resp, body = get(t, c, e.srv.URL+"/transfers")
	wantStatus(t, "after logout", resp, body, http.StatusSeeOther)
}

// TestMyTransfersPages (issue 21 item 4): My transfers shows 50 transfers
// a page, newest first, with links to older and back to the newest, so a
// sender with thousands of transfers gets the page at once; every transfer
// is on exactly one page. A page name edited by hand leads to the first
// page.
func TestMyTransfersPages(t *testing.T) {
	e := newSenderEnv(t, nil)
	const email, n = "a.jansen@gemeente.example.nl", 120
	var ids []string
	for range n {
		c, err := e.svc.Create(context.Background(), transfer.CreateRequest{SenderEmail: email, To: []string{"burger@example.nl"},
			PasswordMode: kluis.PasswordNone, Message: "bericht"})
		if err != nil {
			t.Fatal(err)
		}
		// Revoked, so the drafts quota does not stop the loop.
		if err := e.svc.Revoke(context.Background(), transfer.Owner{TransferID: c.Transfer.ID}, ""); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, c.Transfer.ID)
		// The server's clock stands still; a millisecond apart, the
		// order of creation is the order of created_at (an id only breaks
		// ties).
		e.app.Clock.Advance(time.Millisecond)
	}
	c := e.client(t)
	e.login(t, c, email)
	row := regexp.MustCompile(`href="/transfers/([a-z0-9]+)"`)
	older := regexp.MustCompile(`href="/transfers\?before=([^"]+)"`)
	seen := map[string]bool{}
	var order []string
	page := "/transfers"
	for i := 0; ; i++ {
		resp, body := getLang(t, c, e.srv.URL+page, "nl")
		wantStatus(t, page, resp, body, http.StatusOK)
		rows := row.FindAllStringSubmatch(body, -1)
		if want := min(transfer.OverviewPageSize, n-i*transfer.OverviewPageSize); len(rows) != want {
			t.Fatalf("page %d: %d transfers, want %d", i+1, len(rows), want)
		}
		for _, m := range rows {
			if seen[m[1]] {
				t.Fatalf("transfer %s on two pages", m[1])
			}
			seen[m[1]] = true
			order = append(order, m[1])
		}
		if newest := strings.Contains(body, translate("nl", "mine.newest")); newest != (i > 0) {
			t.Errorf("page %d: link to the newest: %v", i+1, newest)
		}
		m := older.FindStringSubmatch(body)
		if m == nil {
			break
		}
		if !strings.Contains(body, translate("nl", "mine.older")) {
			t.Errorf("page %d: the link to older transfers has no text", i+1)
		}
		page = "/transfers?before=" + m[1]
	}
	slices.Reverse(ids)
	if !slices.Equal(order, ids) {
		t.Errorf("the pages do not list every transfer once, newest first")
	}
	resp, body := get(t, c, e.srv.URL+"/transfers?before=nonsense")
	wantStatus(t, "a page name edited by hand", resp, body, http.StatusSeeOther)
	if loc := resp.Header.Get("Location"); loc != "/transfers" {
		t.Errorf("a bad page name leads to %q", loc)
	}
}

// TestRevokedKeepsLabel (issue 13, item 5): after "revoke for everyone"
// and the purge, My transfers still shows the subject that went out in
// the mail and the files' count and size, says "Ingetrokken" rather than
// "Verwijderd", and the download reads as the transfer's only file rather
// than "Bestand 1". Past the metadata retention the record is gone.
func TestRevokedKeepsLabel(t *testing.T) {
	e := newSenderEnv(t, nil)
	ctx := context.Background()
	c, err := e.svc.Create(ctx, transfer.CreateRequest{
		SenderEmail: "a.jansen@gemeente.example.nl", To: []string{"burger@example.nl"}, Lang: "nl",
		Subject: "Uw aanvraag bijzondere bijstand", PasswordMode: kluis.PasswordManual, Password: "Zeven-Groene-Appels",
	})
	if err != nil {
		t.Fatal(err)
	}
	o, err := e.svc.AuthorizeUpload(ctx, c.UploadToken)
	if err != nil {
		t.Fatal(err)
	}
	content := []byte("%PDF beschikking")
	f, err := e.svc.NewFile(ctx, o, "beschikking.pdf", "application/pdf", int64(len(content)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.WriteFile(ctx, o, f.ID, 0, bytes.NewReader(content)); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.CompleteFile(ctx, o, f.ID); err != nil {
		t.Fatal(err)
	}
	fin, err := e.svc.Finish(ctx, o, "")
	if err != nil {
		t.Fatal(err)
	}
	access := fin.Links[0].AccessID
	rc := e.client(t)
	resp, body := post(t, rc, e.srv.URL+"/r/"+access+"/unlock", url.Values{"password": {"Zeven-Groene-Appels"}})
	wantStatus(t, "unlock", resp, body, http.StatusSeeOther)
	_, body = get(t, rc, e.srv.URL+"/r/"+access+"/open")
	resp, body = get(t, rc, e.srv.URL+regexp.MustCompile(`/r/[^"]+/files/[^"]+`).FindString(body))
	wantStatus(t, "download", resp, body, http.StatusOK)

	sc := e.client(t)
	e.login(t, sc, "a.jansen@gemeente.example.nl")
	resp, body = post(t, sc, e.srv.URL+"/transfers/"+o.TransferID+"/revoke", url.Values{"confirm": {"yes"}})
	wantStatus(t, "revoke all", resp, body, http.StatusSeeOther)
	if _, err := e.svc.Purge(ctx); err != nil {
		t.Fatal(err)
	}
	tr, err := e.svc.Transfer(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	if tr.PurgedAt == nil {
		t.Fatal("the revoked transfer was not purged")
	}
	size := locale.For(locale.NL).Size(int64(len(content)))
	_, body = getLang(t, sc, e.srv.URL+"/transfers", "nl")
	for _, want := range []string{"Uw aanvraag bijzondere bijstand", translate("nl", "mine.one_file", size), "Ingetrokken"} {
		if !strings.Contains(body, want) {
			t.Errorf("list after revoke lacks %q", want)
		}
	}
	for _, bad := range []string{"Zonder onderwerp", "Geen bestanden", "Verwijderd"} {
		if strings.Contains(body, bad) {
			t.Errorf("list after revoke says %q", bad)
		}
	}
	_, body = getLang(t, sc, e.srv.URL+"/transfers/"+o.TransferID, "nl")
	for _, want := range []string{"Uw aanvraag bijzondere bijstand", "Ingetrokken", "Het bestand gedownload op", translate("nl", "mine.one_file", size)} {
		if !strings.Contains(body, want) {
			t.Errorf("detail after revoke lacks %q", want)
		}
	}
	if strings.Contains(body, "Bestand 1 gedownload") || strings.Contains(body, ">Verwijderd<") {
		t.Error("detail after revoke names the download by number or says Verwijderd")
	}
	_, body = getLang(t, sc, e.srv.URL+"/transfers/"+o.TransferID, "en")
	if !strings.Contains(body, "Revoked") || !strings.Contains(body, "Downloaded the file on") {
		t.Error("English detail after revoke lacks Revoked or the download")
	}
}

// TestSummarySaysRepliesUseThePassword (issue 13, item 4): the summary
// told the sender the password is shown once and never again, yet the
// sender needs it to open every reply.
func TestSummarySaysRepliesUseThePassword(t *testing.T) {
	e := newSenderEnv(t, nil)
	c := e.client(t)
	e.login(t, c, "a.jansen@gemeente.example.nl")
	for lang, want := range map[string]string{"nl": "antwoorden van ontvangers opent u met hetzelfde wachtwoord", "en": "replies from recipients open with the same password"} {
		resp, body := getLang(t, c, e.srv.URL+"/send", lang)
		wantStatus(t, "send "+lang, resp, body, http.StatusOK)
		if !strings.Contains(body, want) {
			t.Errorf("%s: the summary does not say replies open with the same password", lang)
		}
	}
}

// TestSendHelpCoversMyTransfers (issue 13, item 9): the senders' help
// said nothing about My transfers, replies, revoking or extending.
func TestSendHelpCoversMyTransfers(t *testing.T) {
	e := newSenderEnv(t, nil)
	c := e.client(t)
	for _, lang := range []string{"nl", "en"} {
		resp, body := getLang(t, c, e.srv.URL+"/help/send", lang)
		wantStatus(t, "help "+lang, resp, body, http.StatusOK)
		for _, key := range []string{"sendhelp.mine_heading", "sendhelp.replies_heading", "sendhelp.revoke_heading"} {
			if !strings.Contains(body, ">"+html.EscapeString(translate(lang, key))+"</h2>") {
				t.Errorf("%s: /help/send lacks the section %s", lang, key)
			}
		}
		if !strings.Contains(body, `href="/transfers"`) {
			t.Errorf("%s: /help/send does not link to My transfers", lang)
		}
	}
}
