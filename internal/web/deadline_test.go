package web

import (
	"context"
	"html"
	"net/http"
	"strings"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/kluis-nl/kluis/internal/locale"
	"github.com/kluis-nl/kluis/internal/transfer"
)

// TestFileRequestPageSentAtDeadline: people in every language upload a
// file and never press Done; after the deadline's purge round each link's
// page says plainly, in the request's language, that what they uploaded
// was sent, to whom and when; the requester's page of each says it was
// sent at the deadline.
func TestFileRequestPageSentAtDeadline(t *testing.T) {
	t.Parallel()
	e := newSenderEnv(t, nil)
	ctx := context.Background()
	inbox, _ := age.GenerateX25519Identity()
	links := map[string]string{}
	var deadline time.Time
	for _, lang := range locale.Codes() {
		fr, link, err := e.svc.CreateFileRequest(ctx, transfer.FileRequestInput{Requester: "anna@example.nl", RequesterName: "Anna",
			Inbox: inbox.Recipient().String(), Address: "burger-" + lang + "@example.org", Message: "Stuur uw loonstroken.", Lang: lang})
		if err != nil {
			t.Fatal(err)
		}
		access := link[strings.Index(link, "/q/")+3:]
		up, err := e.svc.StartFileRequest(ctx, access, "")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.svc.AddRequestFile(ctx, up, "maart.pdf", "application/pdf", strings.NewReader("loonstrook")); err != nil {
			t.Fatal(err)
		}
		links[lang], deadline = link[strings.Index(link, "/q/"):], fr.ExpiresAt
	}
	e.app.Clock.Set(deadline.Add(time.Minute))
	if _, err := e.svc.Purge(ctx); err != nil {
		t.Fatal(err)
	}
	citizen := e.client(t)
	anna := e.client(t)
	e.login(t, anna, "anna@example.nl")
	for lang, path := range links {
		fr, err := e.svc.FileRequestByLink(ctx, path[3:])
		if err != nil || !fr.AtDeadline() {
			t.Fatalf("%s: %v %+v", lang, err, fr)
		}
		resp, body := get(t, citizen, e.srv.URL+path)
		p := locale.For(locale.Lang(lang))
		// Purged: the requester's name went with the request's details.
		want := p.T("filereq.sent_deadline_text", fr.Requester, p.Date(*fr.DoneAt))
		if resp.StatusCode != http.StatusOK || !strings.Contains(html.UnescapeString(body), want) ||
			!strings.Contains(html.UnescapeString(body), p.T("filereq.sent_heading")) {
			t.Errorf("%s: %d, page lacks %q", lang, resp.StatusCode, want)
		}
		// The requester's page of the request says it was sent at the
		// deadline.
		resp, body = get(t, anna, e.srv.URL+"/requests/"+fr.ID)
		if resp.StatusCode != http.StatusOK || !strings.Contains(html.UnescapeString(body), translate("nl", "request.state_done_deadline")) {
			t.Errorf("%s: requester's page %d lacks request.state_done_deadline", lang, resp.StatusCode)
		}
	}
}
