package web

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/kluis-nl/kluis"
	"github.com/kluis-nl/kluis/internal/api"
	kpolicy "github.com/kluis-nl/kluis/internal/policy"
)

// allCodes are the error codes of package kluis.
var allCodes = []kluis.Code{
	kluis.ECONFLICT, kluis.EINTERNAL, kluis.EINVALID, kluis.ENOTFOUND, kluis.EUNAUTHORIZED,
	kluis.EFORBIDDEN, kluis.EWRONGSECRET, kluis.ELOCKED, kluis.EEXPIRED, kluis.EREVOKED,
	kluis.ETOOLARGE, kluis.ENOSPACE, kluis.EUNAVAILABLE, kluis.EINTEGRITY, kluis.ETOOMANY,
	kluis.ETOOMANYREQUESTS, kluis.EPOLICY, kluis.EQUOTA,
}

// TestErrorPagesUseAPIStatus (issue 12): a page that answers an engine
// error has the status that api.Status, Kluis's one code→status map, gives
// the error's code; the page only chooses the words. Before, the pages
// mapped codes themselves and answered, for example, 500 for a refusal by
// policy and 503 for a rate limit. Only our own failures are logged as
// errors, and internal detail never reaches the page.
func TestErrorPagesUseAPIStatus(t *testing.T) {
	e := newEnv(t)
	w, logs := e.web, e.logs
	for _, code := range allCodes {
		t.Run(string(code), func(t *testing.T) {
			err := &kluis.Error{Code: code, Message: "secret internal detail"}
			want := api.Status(code)
			for _, c := range []struct {
				name   string
				answer func(http.ResponseWriter, *http.Request)
			}{
				{"link page", func(rw http.ResponseWriter, r *http.Request) { w.linkError(rw, r, "abc", err) }},
				{"verification page", func(rw http.ResponseWriter, r *http.Request) { w.sendProblem(rw, r, err) }},
			} {
				before := len(logs.Records())
				rec := httptest.NewRecorder()
				c.answer(rec, httptest.NewRequest("GET", "/r/abc", nil))
				if rec.Code != want {
					t.Errorf("%s: status %d, want %d (api.Status)", c.name, rec.Code, want)
				}
				if strings.Contains(rec.Body.String(), "secret internal detail") {
					t.Errorf("%s: the error's detail is on the page", c.name)
				}
				logged := false
				for _, r := range logs.Records()[before:] {
					logged = logged || r.Level == slog.LevelError
				}
				if logged != (code == kluis.EINTERNAL || code == kluis.EINTEGRITY) {
					t.Errorf("%s: logged as an error: %v", c.name, logged)
				}
			}
		})
	}
}

// TestReplyQuotaStatus: a reply refused by the recipient's own daily
// volume (EQUOTA) is the reply form again with the error at the files, and
// the status of a quota: 429 with Retry-After, as in the API (it was 422).
func TestReplyQuotaStatus(t *testing.T) {
	e := newSenderEnv(t, nil)
	p, err := kpolicy.Parse([]byte(`{"defaults": {"max_bytes_per_day": "10B"}}`))
	if err != nil {
		t.Fatal(err)
	}
	e.app.Policy.Set(p)
	s := e.send(t, kluis.PasswordGenerate, "", "", map[string][]byte{"a.txt": []byte("a")})
	base := e.srv.URL + "/r/" + s.access
	rc := e.client(t)
	resp, body := post(t, rc, base+"/unlock", url.Values{"password": {s.secret}})
	wantStatus(t, "unlock", resp, body, http.StatusSeeOther)
	resp, body = postReply(t, rc, base+"/reply", "antwoord", replyFile{"groot.bin", bytes.Repeat([]byte{7}, 100)})
	wantStatus(t, "reply over the daily volume", resp, body, http.StatusTooManyRequests)
	if !strings.Contains(body, `href="#files"`) || !strings.Contains(body, translate("nl", "reply.error_quota")) {
		t.Errorf("no linked quota error on the form: %.400s", body)
	}
	if resp.Header.Get("Retry-After") == "" {
		t.Error("no Retry-After")
	}
	if mine, _ := e.svc.SenderTransfers(context.Background(), "burger@example.nl"); len(mine) != 0 {
		t.Errorf("a refused reply left %d transfers", len(mine))
	}
}
