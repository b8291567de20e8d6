package web

import (
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/kluis-nl/kluis"
	"github.com/kluis-nl/kluis/internal/mail"
	"github.com/kluis-nl/kluis/internal/transfer"
)

// TestLockedPageNamesTheSender: a locked-out recipient is told how to reach
// the sender (name and address, as in the mail), and when the lock waits
// for the sender, that only the sender can unblock it (issue 11, item 9).
func TestLockedPageNamesTheSender(t *testing.T) {
	e := newSenderEnv(t, func(c *transfer.Config) {
		c.MaxFailures, c.HoldAfter, c.Lockouts = 2, 4, []time.Duration{time.Second}
	})
	s := e.send(t, kluis.PasswordManual, "Zeven-Groene-Appels", "", map[string][]byte{"a.txt": []byte("a")})
	rc := e.client(t)
	base := e.srv.URL + "/r/" + s.access
	var resp *http.Response
	var body string
	for range 2 {
		resp, body = post(t, rc, base+"/unlock", url.Values{"password": {"verkeerd wachtwoord"}})
	}
	wantStatus(t, "locked", resp, body, http.StatusLocked)
	for _, want := range []string{"Toegang tijdelijk geblokkeerd", "U kunt het weer proberen na", "A. Jansen", `href="mailto:a.jansen@gemeente.example.nl"`} {
		if !strings.Contains(body, want) {
			t.Errorf("locked page lacks %q", want)
		}
	}
	e.app.Clock.Advance(1100 * time.Millisecond) // the first lock ends
	for range 2 {
		resp, body = post(t, rc, base+"/unlock", url.Values{"password": {"verkeerd wachtwoord"}})
	}
	wantStatus(t, "held", resp, body, http.StatusLocked)
	for _, want := range []string{"Toegang geblokkeerd", "tot de afzender die weer vrijgeeft", "A. Jansen", "a.jansen@gemeente.example.nl"} {
		if !strings.Contains(body, want) {
			t.Errorf("held page lacks %q", want)
		}
	}
	if strings.Contains(body, "U kunt het weer proberen na") {
		t.Error("held page gives a date")
	}
	_, body = getLang(t, rc, base, "en")
	for _, want := range []string{"Access blocked", "until the sender unblocks it", "The sender of the files"} {
		if !strings.Contains(body, want) {
			t.Errorf("English held page lacks %q", want)
		}
	}
}

// TestSenderUnblocks: the sender unblocks a held recipient from My
// transfers, or with the lock-out mail's one-time link, which works only
// in the sender's own session, shows a confirmation first and works once.
func TestSenderUnblocks(t *testing.T) {
	e := newSenderEnv(t, func(c *transfer.Config) { c.MaxFailures = 2; c.HoldAfter = 2 })
	s := e.send(t, kluis.PasswordManual, "Zeven-Groene-Appels", "", map[string][]byte{"a.txt": []byte("a")})
	id := s.owner.TransferID
	rc := e.client(t)
	base := e.srv.URL + "/r/" + s.access
	lock := func() string {
		t.Helper()
		for range 2 {
			post(t, rc, base+"/unlock", url.Values{"password": {"verkeerd wachtwoord"}})
		}
		m := e.mails.last(mail.KindLockout, "a.jansen@gemeente.example.nl")
		if m == nil {
			t.Fatal("no lock-out mail")
		}
		link := regexp.MustCompile(`https?://\S+/transfers/` + id + `/unlock/\S+`).FindString(m.Text)
		if link == "" {
			t.Fatalf("no unblock link in the mail:\n%s", m.Text)
		}
		u, _ := url.Parse(link)
		return u.Path
	}
	opens := func() bool {
		t.Helper()
		resp, _ := post(t, e.client(t), base+"/unlock", url.Values{"password": {s.secret}})
		return resp.StatusCode == http.StatusSeeOther
	}

	path := lock()
	if opens() {
		t.Fatal("the right password opens a held lock")
	}
	// Without a session: to the verification page, which comes back.
	resp, body := get(t, e.client(t), e.srv.URL+path)
	wantStatus(t, "link without session", resp, body, http.StatusSeeOther)
	if loc := resp.Header.Get("Location"); loc != "/send?next="+url.QueryEscape(path) {
		t.Errorf("link without session redirects to %q", loc)
	}
	// Another sender's session: not found, and nothing changes.
	other := e.client(t)
	e.login(t, other, "iemand.anders@gemeente.example.nl")
	resp, body = get(t, other, e.srv.URL+path)
	wantStatus(t, "other sender's link", resp, body, http.StatusNotFound)
	resp, body = post(t, other, e.srv.URL+"/transfers/"+id+"/unlock", url.Values{"token": {strings.TrimPrefix(path, "/transfers/"+id+"/unlock/")}})
	wantStatus(t, "other sender's unblock", resp, body, http.StatusNotFound)
	// The sender: a confirmation (GET changes nothing), then the POST.
	c := e.client(t)
	e.login(t, c, "a.jansen@gemeente.example.nl")
	resp, body = get(t, c, e.srv.URL+path)
	wantStatus(t, "confirmation", resp, body, http.StatusOK)
	if !strings.Contains(body, "Toegang vrijgeven voor burger@example.nl") || !strings.Contains(body, `name="token"`) {
		t.Fatalf("confirmation page:\n%s", body)
	}
	if opens() {
		t.Fatal("opening the link unblocked without the confirmation")
	}
	token := regexp.MustCompile(`name="token" value="([^"]+)"`).FindStringSubmatch(body)[1]
	resp, body = post(t, c, e.srv.URL+"/transfers/"+id+"/unlock", url.Values{"token": {token}})
	wantStatus(t, "unblock with the link", resp, body, http.StatusSeeOther)
	if loc := resp.Header.Get("Location"); loc != "/transfers/"+id+"?done=unlocked" {
		t.Errorf("unblock redirects to %q", loc)
	}
	if !opens() {
		t.Fatal("the right password does not open after the unblock")
	}
	// The link works once.
	resp, body = get(t, c, e.srv.URL+path)
	wantStatus(t, "link again", resp, body, http.StatusNotFound)
	if !strings.Contains(body, "Deze link werkt niet meer") {
		t.Errorf("used link page:\n%.600s", body)
	}

	// From My transfers: a button per locked recipient.
	lock()
	_, body = get(t, c, e.srv.URL+"/transfers/"+id)
	if !strings.Contains(body, "Alleen u kunt de toegang weer vrijgeven") {
		t.Error("detail page does not say the recipient waits for the sender")
	}
	rid := regexp.MustCompile(`action="/transfers/[^"]+/unlock">\s*<input type="hidden" name="recipient" value="(\d+)"`).FindStringSubmatch(body)
	if rid == nil {
		t.Fatal("no unblock button")
	}
	resp, body = post(t, other, e.srv.URL+"/transfers/"+id+"/unlock", url.Values{"recipient": {rid[1]}})
	wantStatus(t, "other sender's button", resp, body, http.StatusNotFound)
	resp, body = post(t, c, e.srv.URL+"/transfers/"+id+"/unlock", url.Values{"recipient": {rid[1]}})
	wantStatus(t, "unblock button", resp, body, http.StatusSeeOther)
	_, body = get(t, c, e.srv.URL+"/transfers/"+id+"?done=unlocked")
	if !strings.Contains(body, translate("nl", "mine.done_unlocked")) || strings.Contains(body, "Alleen u kunt de toegang weer vrijgeven") {
		t.Error("detail page after the unblock")
	}
	if !opens() {
		t.Fatal("the right password does not open after the unblock from My transfers")
	}
}
