package e2e

import (
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestBrowserUnblock: a recipient whose access stays locked until the
// sender acts sees whom to contact; the sender follows the lock-out mail's
// one-time link (verifying in the browser first), confirms and unblocks;
// a second lock is unblocked with the button in My transfers. Every page
// is checked with axe-core, in Dutch and in English.
func TestBrowserUnblock(t *testing.T) {
	needBrowser(t)
	mp := startMailpit(t)
	// startBrowserServer sets --max-failures 3: with a hold after 3, the
	// first lock waits for the sender.
	s := startBrowserServer(t, "--smtp", mp.smtpURL(), "--mail-from", "Kluis Test <kluis@example.nl>", "--lockout-hold-after", "3")
	codeRE := regexp.MustCompile(`(?m)^\s*(\d{8})\s*$`)
	words := map[string][]string{
		"nl": {"Toegang geblokkeerd", "De afzender van het bericht", "Toegang vrijgeven voor", "De toegang is weer vrijgegeven", "Alleen u kunt"},
		"en": {"Access blocked", "The sender of the message", "Unblock access for", "Access is unblocked", "Only you can"},
	}
	for _, lang := range []string{"nl", "en"} {
		t.Run(lang, func(t *testing.T) {
			w := words[lang]
			const pw = "Lente-Druif-64"
			to := "geblokkeerd-" + lang + "@example.nl"
			c := createReq(t, s, s.senderKey(t), map[string]any{
				"sender":   map[string]string{"email": "sender@example.nl", "name": "Sanne Sender"},
				"to":       []string{to},
				"lang":     lang,
				"password": password{Mode: "manual", Value: pw},
				"message":  "Vertrouwelijk",
			})
			access, _ := splitLink(t, finishLinks(t, s, c)[0].URL)
			lockOut := func(n int) string {
				t.Helper()
				for range 3 {
					call(t, "POST", s.base+"/api/v1/links/"+access+"/unlock", "", map[string]string{"secret": "verkeerd"}, nil)
				}
				msgs := mp.waitMail(t, 15*time.Second, "the lock-out mail", func(ms []*mpMessage) bool {
					return len(lockoutMails(ms, c.ID)) >= n
				})
				got := lockoutMails(msgs, c.ID)
				link := regexp.MustCompile(`https?://\S+/transfers/` + c.ID + `/unlock/[A-Za-z0-9_-]+`).FindString(got[len(got)-1].Text)
				if link == "" {
					t.Fatalf("no unblock link in:\n%s", got[len(got)-1].Text)
				}
				u, _ := url.Parse(link)
				return u.Path
			}

			path := lockOut(1)
			rb := newBrowser(t, s.base, "-recipient")
			rb.setLang(lang, "/")
			rb.open("/r/" + access)
			if main := rb.text("main"); !strings.Contains(main, w[0]) || !strings.Contains(main, w[1]) || !strings.Contains(main, "Sanne Sender") || !strings.Contains(main, "sender@example.nl") {
				t.Errorf("locked page: %q", main)
			}
			rb.check("locked-held")

			// The sender opens the mail's link: verification first, then
			// back to the link.
			b := newBrowser(t, s.base)
			b.setLang(lang, "/")
			b.open(path)
			if p := b.path(); !strings.HasPrefix(p, "/send") {
				t.Fatalf("the link without a session went to %s, want the verification page", p)
			}
			before := len(mailsTo(mp.all(t), "sender@example.nl"))
			if st := b.await(`fetch("/api/v1/verify", {method: "POST", headers: {"Content-Type": "application/json"},
				body: JSON.stringify({email: "sender@example.nl", name: "Sanne Sender", lang: "` + lang + `"})}).then(r => String(r.status))`); st != "202" {
				t.Fatalf("verify: %s", st)
			}
			msgs := mp.waitMail(t, 15*time.Second, "the verification code", func(ms []*mpMessage) bool {
				got := mailsTo(ms, "sender@example.nl")
				return len(got) > before && codeRE.MatchString(got[len(got)-1].Text)
			})
			got := mailsTo(msgs, "sender@example.nl")
			code := codeRE.FindStringSubmatch(got[len(got)-1].Text)[1]
			if st := b.await(`fetch("/api/v1/verify/confirm", {method: "POST", headers: {"Content-Type": "application/json"},
				body: JSON.stringify({code: "` + code + `"})}).then(r => String(r.status))`); st != "200" {
				t.Fatalf("confirm: %s", st)
			}
			b.open(path)
			if main := b.text("main"); !strings.Contains(main, w[2]) || !strings.Contains(main, to) {
				t.Fatalf("confirmation page: %q", main)
			}
			b.check("unblock-confirm")
			b.submit("main form button[type=submit]")
			if main := b.text("main"); !strings.Contains(main, w[3]) {
				t.Errorf("after the unblock: %q", main)
			}
			b.check("unblocked")
			if st, _ := call(t, "POST", s.base+"/api/v1/links/"+access+"/unlock", "", map[string]string{"secret": pw}, nil); st != http.StatusOK {
				t.Fatalf("the right password after the unblock: %d", st)
			}

			// A second lock: the button in My transfers.
			lockOut(2)
			b.open("/transfers/" + c.ID)
			if main := b.text("main"); !strings.Contains(main, w[4]) || !strings.Contains(main, w[2]) {
				t.Errorf("detail of a locked recipient: %q", main)
			}
			b.check("detail-locked")
			b.submit(`main form[action$="/unlock"] button`)
			if main := b.text("main"); !strings.Contains(main, w[3]) || strings.Contains(main, w[4]) {
				t.Errorf("after the button: %q", main)
			}
			if st, _ := call(t, "POST", s.base+"/api/v1/links/"+access+"/unlock", "", map[string]string{"secret": pw}, nil); st != http.StatusOK {
				t.Fatalf("the right password after the button: %d", st)
			}
		})
	}
}

// lockoutMails are the lock-out mails about transfer id, oldest first.
func lockoutMails(ms []*mpMessage, id string) []*mpMessage {
	var out []*mpMessage
	for _, m := range ms {
		if strings.Contains(m.Text, "/transfers/"+id+"/unlock/") {
			out = append(out, m)
		}
	}
	return out
}
