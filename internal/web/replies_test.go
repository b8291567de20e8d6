package web

import (
	"bytes"
	"context"
	"html"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/kluis-nl/kluis"
	"github.com/kluis-nl/kluis/internal/mail"
	"github.com/kluis-nl/kluis/internal/transfer"
)

// postNamedReply is postReply with the replier's name, the first field of
// the form.
func postNamedReply(t *testing.T, c *http.Client, u, name, message string, f replyFile) (*http.Response, string) {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	mw.WriteField("name", name)
	mw.WriteField("message", message)
	w, _ := mw.CreateFormFile("files", f.name)
	w.Write(f.data)
	mw.Close()
	resp, err := c.Post(u, mw.FormDataContentType(), &buf)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// TestOwnReply: a reply names its writer; its password page speaks to the
// sender of the original (whose password opens it), and the signed-in
// sender lists and opens it from their own status page, with the same
// password and lock-out. Nobody else gets past "not found".
func TestOwnReply(t *testing.T) {
	e := newSenderEnv(t, nil)
	s := e.send(t, kluis.PasswordManual, "Zeven-Groene-Appels", "Wilt u het formulier terugsturen?", map[string][]byte{"formulier.pdf": []byte("leeg formulier")})
	base := e.srv.URL + "/r/" + s.access
	rc := e.client(t)
	resp, body := post(t, rc, base+"/unlock", url.Values{"password": {s.secret}})
	wantStatus(t, "unlock", resp, body, http.StatusSeeOther)

	// A name on two lines is refused on the form, nothing is sent.
	resp, body = postNamedReply(t, rc, base+"/reply", "Joke\nde Vries", "Hierbij.", replyFile{"ingevuld.pdf", []byte("x")})
	wantStatus(t, "two-line name", resp, body, http.StatusUnprocessableEntity)
	if !strings.Contains(body, `href="#name"`) || !strings.Contains(body, html.EscapeString(translate("nl", "reply.error_name"))) {
		t.Errorf("two-line name: no linked error on the name field:\n%s", body)
	}
	resp, body = postNamedReply(t, rc, base+"/reply", "Joke de Vries", "Hierbij het ingevulde formulier.", replyFile{"ingevuld.pdf", []byte("%PDF ingevuld")})
	wantStatus(t, "reply", resp, body, http.StatusOK)
	m := e.mails.last(mail.KindNotify, "a.jansen@gemeente.example.nl")
	if m == nil || !strings.Contains(m.Text, "Joke de Vries") {
		t.Fatalf("the reply's mail does not name the replier: %+v", m)
	}
	found := regexp.MustCompile(`/r/([^\s#/]+)`).FindStringSubmatch(m.Text)
	if found == nil {
		t.Fatalf("no link in the mail:\n%s", m.Text)
	}

	// The reply's own link speaks to the sender: their password, not one
	// "received separately".
	_, body = get(t, e.client(t), e.srv.URL+"/r/"+found[1])
	if !strings.Contains(body, html.EscapeString(translate("nl", "unlock.intro_reply"))) || strings.Contains(body, html.EscapeString(translate("nl", "unlock.intro"))) {
		t.Errorf("the reply's password page speaks to a recipient:\n%s", body)
	}

	// The sender's status page lists it with the name and a link.
	sc := e.client(t)
	e.login(t, sc, "a.jansen@gemeente.example.nl")
	_, body = get(t, sc, e.srv.URL+"/transfers/"+s.owner.TransferID)
	open := regexp.MustCompile(`href="(/transfers/` + s.owner.TransferID + `/replies/[^"/]+)"`).FindStringSubmatch(body)
	if open == nil || !strings.Contains(body, "Joke de Vries") {
		t.Fatalf("the status page does not list the reply with its name and a link:\n%s", body)
	}
	own := e.srv.URL + open[1]

	// Another sender, and the replier signed in as a sender: not found.
	for _, who := range []string{"b.bakker@gemeente.example.nl", "burger@example.nl"} {
		oc := e.client(t)
		e.login(t, oc, who)
		resp, body = get(t, oc, own)
		wantStatus(t, "reply page for "+who, resp, body, http.StatusNotFound)
		resp, body = post(t, oc, own+"/unlock", url.Values{"password": {s.secret}})
		wantStatus(t, "reply unlock for "+who, resp, body, http.StatusNotFound)
	}
	// A reply id under a transfer it does not answer: not found.
	other := e.send(t, kluis.PasswordManual, "Acht-Blauwe-Peren", "", map[string][]byte{"b.txt": []byte("b")})
	resp, body = get(t, sc, e.srv.URL+"/transfers/"+other.owner.TransferID+strings.TrimPrefix(open[1], "/transfers/"+s.owner.TransferID))
	wantStatus(t, "reply under another transfer", resp, body, http.StatusNotFound)

	// Not yet unlocked: the open page sends to the password form, which
	// speaks to the sender and posts under the sender's own path.
	resp, body = get(t, sc, own+"/open")
	wantStatus(t, "open before unlock", resp, body, http.StatusSeeOther)
	resp, body = get(t, sc, own)
	wantStatus(t, "own reply page", resp, body, http.StatusOK)
	if !strings.Contains(body, `action="`+open[1]+`/unlock"`) || !strings.Contains(body, html.EscapeString(translate("nl", "unlock.intro_reply"))) {
		t.Errorf("own reply page:\n%s", body)
	}
	resp, body = post(t, sc, own+"/unlock", url.Values{"password": {"Verkeerd-Wachtwoord-1"}})
	wantStatus(t, "wrong password", resp, body, http.StatusUnprocessableEntity)
	resp, body = post(t, sc, own+"/unlock", url.Values{"password": {s.secret}})
	wantStatus(t, "right password", resp, body, http.StatusSeeOther)
	if resp.Header.Get("Location") != open[1]+"/open" {
		t.Errorf("unlock goes to %q", resp.Header.Get("Location"))
	}
	resp, body = get(t, sc, own+"/open")
	wantStatus(t, "open", resp, body, http.StatusOK)
	fileLink := regexp.MustCompile(`href="(` + regexp.QuoteMeta(open[1]) + `/files/[^"]+)"`).FindStringSubmatch(body)
	if fileLink == nil || !strings.Contains(body, "Hierbij het ingevulde formulier.") || !strings.Contains(body, "ingevuld.pdf") || strings.Contains(body, "/reply\"") {
		t.Fatalf("open reply page:\n%s", body)
	}
	resp, body = get(t, sc, e.srv.URL+fileLink[1])
	wantStatus(t, "download", resp, body, http.StatusOK)
	if body != "%PDF ingevuld" {
		t.Errorf("downloaded %q", body)
	}
	resp, _ = get(t, sc, own+"/zip")
	if resp.StatusCode != http.StatusOK {
		t.Errorf("zip: %d", resp.StatusCode)
	}
}

// TestZipNamedByDate: a transfer without a subject downloads as a ZIP
// named after the day it was sent, not after a random id.
func TestZipNamedByDate(t *testing.T) {
	e := newSenderEnv(t, nil)
	s := e.send(t, kluis.PasswordManual, "Zeven-Groene-Appels", "", map[string][]byte{"a.txt": []byte("a"), "b.txt": []byte("b")})
	base := e.srv.URL + "/r/" + s.access
	rc := e.client(t)
	resp, body := post(t, rc, base+"/unlock", url.Values{"password": {s.secret}})
	wantStatus(t, "unlock", resp, body, http.StatusSeeOther)
	resp, body = get(t, rc, base+"/zip")
	wantStatus(t, "zip", resp, body, http.StatusOK)
	if cd := resp.Header.Get("Content-Disposition"); !regexp.MustCompile(`filename="kluis-\d{4}-\d{2}-\d{2}\.zip"`).MatchString(cd) {
		t.Errorf("ZIP Content-Disposition %q, want kluis-<date>.zip", cd)
	}
}

// TestMessageOnlyPages: a transfer with only a message never speaks of
// downloading files, on the open page nor on the reply form.
func TestMessageOnlyPages(t *testing.T) {
	e := newSenderEnv(t, nil)
	s := e.send(t, kluis.PasswordManual, "Zeven-Groene-Appels", "Uw afspraak is op dinsdag.", nil)
	base := e.srv.URL + "/r/" + s.access
	rc := e.client(t)
	resp, body := post(t, rc, base+"/unlock", url.Values{"password": {s.secret}})
	wantStatus(t, "unlock", resp, body, http.StatusSeeOther)
	for _, lang := range []string{"nl", "en"} {
		_, body = getLang(t, rc, base+"/open", lang)
		if !strings.Contains(body, "Uw afspraak is op dinsdag.") {
			t.Fatalf("open page (%s) lacks the message", lang)
		}
		for _, key := range []string{"open.safety_heading", "open.download_zip"} {
			if strings.Contains(body, html.EscapeString(translate(lang, key))) {
				t.Errorf("message-only open page (%s) says %q", lang, translate(lang, key))
			}
		}
		if strings.Contains(body, html.EscapeString(strings.SplitN(translate(lang, "open.available_until", "X"), "X", 2)[0])) {
			t.Errorf("message-only open page (%s) offers to download files until a date", lang)
		}
		_, body = getLang(t, rc, base+"/reply", lang)
		if strings.Contains(body, html.EscapeString(translate(lang, "reply.back"))) || !strings.Contains(body, html.EscapeString(translate(lang, "reply.back_message"))) {
			t.Errorf("message-only reply form (%s) links back to files", lang)
		}
	}
}

// TestRevokeConfirmPromisesOnlySentMails: the confirmation step of a
// revoke says a mail goes out only to recipients who were sent their link.
func TestRevokeConfirmPromisesOnlySentMails(t *testing.T) {
	e := newSenderEnv(t, nil)
	c, err := e.svc.Create(context.Background(), transfer.CreateRequest{
		SenderEmail: "a.jansen@gemeente.example.nl", To: []string{"burger@example.nl"}, Lang: "nl",
		PasswordMode: kluis.PasswordManual, Password: "Zeven-Groene-Appels",
	})
	if err != nil {
		t.Fatal(err)
	}
	sc := e.client(t)
	e.login(t, sc, "a.jansen@gemeente.example.nl")
	resp, body := post(t, sc, e.srv.URL+"/transfers/"+c.Transfer.ID+"/revoke", url.Values{})
	wantStatus(t, "revoke step", resp, body, http.StatusOK)
	if strings.Contains(body, html.EscapeString(translate("nl", "mine.confirm_final"))) || !strings.Contains(body, html.EscapeString(translate("nl", "mine.confirm_final_nomail"))) {
		t.Errorf("the revoke step of a transfer nobody was mailed promises a mail:\n%s", body)
	}
}

// TestRevokeDoneSaysWhatConfirmSaid: the page after a revoke says a mail
// went out only when the confirmation step said so, and speaks of "what
// you sent" (a transfer may hold only a message), in Dutch and English.
func TestRevokeDoneSaysWhatConfirmSaid(t *testing.T) {
	e := newSenderEnv(t, nil)
	unsent, err := e.svc.Create(context.Background(), transfer.CreateRequest{
		SenderEmail: "a.jansen@gemeente.example.nl", To: []string{"burger@example.nl"}, Lang: "nl",
		PasswordMode: kluis.PasswordManual, Password: "Zeven-Groene-Appels",
	})
	if err != nil {
		t.Fatal(err)
	}
	sent := e.send(t, kluis.PasswordManual, "Zeven-Groene-Appels", "Uw afspraak is op dinsdag.", nil)
	if e.mails.last(mail.KindNotify, "burger@example.nl") == nil {
		t.Fatal("the recipient was not sent their link")
	}
	sc := e.client(t)
	e.login(t, sc, "a.jansen@gemeente.example.nl")
	for _, tc := range []struct {
		id, recipient, done, bad string
	}{
		{unsent.Transfer.ID, "", "mine.done_revoked_nomail", "mine.done_revoked"},
		{sent.owner.TransferID, "", "mine.done_revoked", "mine.done_revoked_nomail"},
	} {
		resp, body := post(t, sc, e.srv.URL+"/transfers/"+tc.id+"/revoke", url.Values{"confirm": {"yes"}})
		wantStatus(t, "revoke", resp, body, http.StatusSeeOther)
		for _, lang := range []string{"nl", "en"} {
			_, body = getLang(t, sc, e.srv.URL+resp.Header.Get("Location"), lang)
			if !strings.Contains(body, html.EscapeString(translate(lang, tc.done))) || strings.Contains(body, html.EscapeString(translate(lang, tc.bad))) {
				t.Errorf("after the revoke (%s, %s): want %s:\n%.2000s", tc.id, lang, tc.done, body)
			}
			if strings.Contains(body, html.EscapeString(translate(lang, tc.done))) && strings.Contains(translate(lang, tc.done), map[string]string{"nl": "bestanden", "en": "files"}[lang]) {
				t.Errorf("%s (%s) speaks of files", tc.done, lang)
			}
		}
	}
}

// TestMyTransfersReplyCount (issue 13, item 4): the list of My transfers
// says how many replies a transfer got, so the sender sees where to look
// without opening each one.
func TestMyTransfersReplyCount(t *testing.T) {
	e := newSenderEnv(t, nil)
	s := e.send(t, kluis.PasswordManual, "Zeven-Groene-Appels", "Vult u het formulier in?", nil)
	quiet := e.send(t, kluis.PasswordManual, "Zeven-Groene-Appels", "Geen antwoord nodig.", nil)
	base := e.srv.URL + "/r/" + s.access
	rc := e.client(t)
	resp, body := post(t, rc, base+"/unlock", url.Values{"password": {s.secret}})
	wantStatus(t, "unlock", resp, body, http.StatusSeeOther)
	sc := e.client(t)
	e.login(t, sc, "a.jansen@gemeente.example.nl")
	row := func(lang, id string) string {
		t.Helper()
		_, body := getLang(t, sc, e.srv.URL+"/transfers", lang)
		i := strings.Index(body, `href="/transfers/`+id+`"`)
		if i < 0 {
			t.Fatalf("the list lacks %s:\n%s", id, body)
		}
		end := strings.Index(body[i:], "</tr>")
		return body[i : i+end]
	}
	for want := 1; want <= 2; want++ {
		resp, body = postReply(t, rc, base+"/reply", "Antwoord "+strconv.Itoa(want))
		wantStatus(t, "reply", resp, body, http.StatusOK)
		for _, lang := range []string{"nl", "en"} {
			text := translate(lang, "mine.one_reply")
			if want > 1 {
				text = translate(lang, "mine.n_replies", want)
			}
			if got := row(lang, s.owner.TransferID); !strings.Contains(got, text) {
				t.Errorf("after %d replies (%s) the row lacks %q: %s", want, lang, text, got)
			}
		}
	}
	for _, lang := range []string{"nl", "en"} {
		got := row(lang, quiet.owner.TransferID)
		if strings.Contains(got, translate(lang, "mine.one_reply")) || strings.Contains(got, strings.TrimPrefix(translate(lang, "mine.n_replies", 0), "0")) {
			t.Errorf("a transfer without replies (%s) shows a count: %s", lang, got)
		}
	}
}
