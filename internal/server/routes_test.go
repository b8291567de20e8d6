package server_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/kluis-nl/kluis/internal/sender"
)

// actor is who calls a route.
type actor string

const (
	anonymous   actor = "anonymous"
	other       actor = "other sender"              // another verified sender (API key)
	otherUpload actor = "other sender's upload"     // the upload token of another sender's transfer
	owner       actor = "owner"                     // the sender who made the transfers (API key)
	uploader    actor = "owner's upload token"      // the open transfer's upload token
	recipient   actor = "recipient"                 // unlocked: holds a download session
	wrongPass   actor = "recipient, wrong password" // unlock failed: holds no session
)

var actors = []actor{anonymous, other, otherUpload, owner, uploader, recipient, wrongPass}

type want struct {
	status int
	code   string // error code in the JSON body; "" for success
}

// req is what an actor sends to a route.
type req struct {
	method, path string
	hdr          map[string]string
	body         any
}

type routeRow struct {
	pattern string
	req     func(fx *fixture, a actor) req
	want    map[actor]want
	// check, if set, looks at a successful answer's body.
	check func(t *testing.T, fx *fixture, a actor, body []byte)
}

// everyone expects the same answer for every actor.
func everyone(w want) map[actor]want {
	m := map[actor]want{}
	for _, a := range actors {
		m[a] = w
	}
	return m
}

// only: the listed actors get their answers, everyone else deny.
func only(deny want, allowed map[actor]want) map[actor]want {
	m := everyone(deny)
	for a, w := range allowed {
		m[a] = w
	}
	return m
}

var (
	unauthorized = want{http.StatusUnauthorized, "unauthorized"}
	notFound     = want{http.StatusNotFound, "not_found"}
	wrongSecret  = want{http.StatusUnauthorized, "wrong_password"}
)

func get(path string) func(*fixture, actor) req {
	return func(*fixture, actor) req { return req{method: "GET", path: path} }
}

// senderRoute: verified senders (session or API key) only.
func senderRoute(ok want) map[actor]want {
	return only(unauthorized, map[actor]want{other: ok, owner: ok})
}

// ownerRoute: the owner by API key or upload token. Another sender is told
// the transfer does not exist; another transfer's upload token too.
func ownerRoute(ok want) map[actor]want {
	return only(unauthorized, map[actor]want{owner: ok, uploader: ok, other: notFound, otherUpload: notFound})
}

// tusRoute: only the transfer's upload token. Another transfer's token
// gets tusd's "upload not found" (plain text, not our JSON).
func tusRoute(ok want) map[actor]want {
	return only(unauthorized, map[actor]want{uploader: ok, otherUpload: {http.StatusNotFound, ""}})
}

// sessionRoute: only the unlocked recipient.
func sessionRoute(ok want) map[actor]want {
	return only(unauthorized, map[actor]want{recipient: ok})
}

func routeTable() []routeRow {
	tus := func(method string, hdr map[string]string, body any) func(*fixture, actor) req {
		return func(fx *fixture, _ actor) req {
			fx.tus()
			h := map[string]string{"Tus-Resumable": "1.0.0"}
			for k, v := range hdr {
				h[k] = v
			}
			return req{method: method, path: "/api/v1/uploads/" + fx.tusID, hdr: h, body: body}
		}
	}
	onOpen := func(method, suffix string, hdr map[string]string, body any) func(*fixture, actor) req {
		return func(fx *fixture, _ actor) req {
			fx.open()
			return req{method: method, path: "/api/v1/transfers/" + fx.openID + suffix, hdr: hdr, body: body}
		}
	}
	return []routeRow{
		{pattern: "POST /api/v1/verify",
			req: func(_ *fixture, a actor) req {
				return req{method: "POST", path: "/api/v1/verify", body: map[string]string{"email": fmt.Sprintf("nieuw-%d@example.nl", slices.Index(actors, a))}}
			},
			want: everyone(want{http.StatusAccepted, ""})},
		{pattern: "POST /api/v1/verify/confirm",
			req: func(*fixture, actor) req {
				return req{method: "POST", path: "/api/v1/verify/confirm", body: map[string]string{"code": strings.Repeat("1", sender.CodeDigits), "verification": "onbekend"}}
			},
			want: everyone(unauthorized)},
		// Without --oidc-issuer there is no single sign-on: not found.
		{pattern: "POST /api/v1/sso/start",
			req: func(*fixture, actor) req {
				return req{method: "POST", path: "/api/v1/sso/start", body: map[string]string{"redirect_uri": "http://127.0.0.1:9/callback"}}
			},
			want: everyone(want{http.StatusNotFound, ""})},
		{pattern: "POST /api/v1/sso/finish",
			req: func(*fixture, actor) req {
				return req{method: "POST", path: "/api/v1/sso/finish", body: map[string]string{"handle": "onbekend"}}
			},
			want: everyone(want{http.StatusNotFound, ""})},
		{pattern: "POST /api/v1/logout", req: func(*fixture, actor) req { return req{method: "POST", path: "/api/v1/logout"} },
			want: everyone(want{http.StatusNoContent, ""})},
		{pattern: "GET /api/v1/me", req: get("/api/v1/me"), want: senderRoute(want{http.StatusOK, ""}),
			check: func(t *testing.T, _ *fixture, a actor, b []byte) {
				email := map[actor]string{owner: ownerEmail, other: otherEmail}[a]
				if !strings.Contains(string(b), email) {
					t.Errorf("me for %s: %s", a, b)
				}
			}},
		{pattern: "GET /api/v1/config", req: get("/api/v1/config"), want: everyone(want{http.StatusOK, ""})},
		{pattern: "GET /api/v1/openapi.json", req: get("/api/v1/openapi.json"), want: everyone(want{http.StatusOK, ""})},
		{pattern: "GET /api/v1/transfers", req: func(fx *fixture, _ actor) req { fx.open(); return req{method: "GET", path: "/api/v1/transfers"} }, want: senderRoute(want{http.StatusOK, ""}),
			check: func(t *testing.T, fx *fixture, a actor, b []byte) {
				has := strings.Contains(string(b), fx.openID)
				if has != (a == owner) {
					t.Errorf("transfer list for %s: contains the owner's transfer = %v", a, has)
				}
			}},
		{pattern: "POST /api/v1/transfers",
			req: func(*fixture, actor) req {
				return req{method: "POST", path: "/api/v1/transfers", body: map[string]any{
					"to": []string{"iemand@example.nl"}, "password": map[string]string{"mode": "generate"}}}
			},
			want: senderRoute(want{http.StatusCreated, ""})},
		{pattern: "GET /api/v1/transfers/{id}", req: onOpen("GET", "", nil, nil), want: ownerRoute(want{http.StatusOK, ""})},
		{pattern: "DELETE /api/v1/transfers/{id}",
			req: func(fx *fixture, a actor) req {
				// Erasing needs a revoked transfer. A revoke wakes the
				// app's purge loop, and the purge ends the upload token
				// (issue 11 item 14); purge here, so the answer does not
				// depend on which of the two runs first.
				fx.open()
				fx.e.must(http.StatusOK, "POST", "/api/v1/transfers/"+fx.openID+"/revoke", fx.openToken, nil, nil, nil)
				if _, err := fx.e.svc.Purge(fx.e.ctx); err != nil {
					fx.e.t.Fatal(err)
				}
				return req{method: "DELETE", path: "/api/v1/transfers/" + fx.openID}
			},
			// The purged transfer's upload token is answered as unknown;
			// the verified sender erases the minimal record.
			want: only(unauthorized, map[actor]want{owner: {http.StatusNoContent, ""}, other: notFound, otherUpload: notFound})},
		{pattern: "PUT /api/v1/transfers/{id}/files",
			req:  onOpen("PUT", "/files", map[string]string{"Kluis-File-Name": "c.txt", "Content-Type": "text/plain"}, []byte("derde bestand")),
			want: ownerRoute(want{http.StatusCreated, ""})},
		{pattern: "POST /api/v1/transfers/{id}/finish", req: onOpen("POST", "/finish", nil, nil), want: ownerRoute(want{http.StatusOK, ""})},
		{pattern: "POST /api/v1/transfers/{id}/revoke", req: onOpen("POST", "/revoke", nil, nil), want: ownerRoute(want{http.StatusOK, ""})},
		{pattern: "POST /api/v1/transfers/{id}/extend",
			req:  onOpen("POST", "/extend", nil, map[string]any{"expires_at": time.Now().Add(48 * time.Hour).UTC()}),
			want: ownerRoute(want{http.StatusOK, ""})},
		{pattern: "POST /api/v1/uploads/",
			req: func(*fixture, actor) req {
				return req{method: "POST", path: "/api/v1/uploads/", hdr: map[string]string{
					"Tus-Resumable": "1.0.0", "Upload-Length": "3", "Upload-Metadata": "filename ZC50eHQ="}}
			},
			// Another transfer's token creates an upload in that transfer,
			// not in this one: nothing to refuse.
			want: only(unauthorized, map[actor]want{uploader: {http.StatusCreated, ""}, otherUpload: {http.StatusCreated, ""}})},
		{pattern: "HEAD /api/v1/uploads/{fid}", req: tus("HEAD", nil, nil), want: tusRoute(want{http.StatusOK, ""})},
		{pattern: "PATCH /api/v1/uploads/{fid}",
			req:  tus("PATCH", map[string]string{"Content-Type": "application/offset+octet-stream", "Upload-Offset": "0"}, []byte("12345")),
			want: tusRoute(want{http.StatusNoContent, ""})},
		{pattern: "DELETE /api/v1/uploads/{fid}", req: tus("DELETE", nil, nil), want: tusRoute(want{http.StatusNoContent, ""})},
		{pattern: "OPTIONS /api/v1/uploads/", req: func(*fixture, actor) req { return req{method: "OPTIONS", path: "/api/v1/uploads/"} },
			want: everyone(want{http.StatusOK, ""})},
		{pattern: "OPTIONS /api/v1/uploads/{fid}", req: tus("OPTIONS", nil, nil), want: everyone(want{http.StatusOK, ""})},
		// Inbox and file requests (issue 17): verified senders only. The
		// fixture's senders use API keys, which may read the inbox state
		// but not set a passphrase, and have no inbox to ask for files
		// with; a request of someone else's (or none) is not found.
		{pattern: "GET /api/v1/inbox", req: get("/api/v1/inbox"), want: senderRoute(want{http.StatusOK, ""})},
		{pattern: "POST /api/v1/inbox",
			req: func(*fixture, actor) req {
				return req{method: "POST", path: "/api/v1/inbox", body: map[string]string{"passphrase": password}}
			},
			want: senderRoute(want{http.StatusForbidden, "forbidden"})},
		// Changing the inbox passphrase: verified senders only; the
		// fixture's API-key senders have no inbox to change.
		{pattern: "POST /api/v1/inbox/passphrase",
			req: func(*fixture, actor) req {
				return req{method: "POST", path: "/api/v1/inbox/passphrase",
					body: map[string]string{"passphrase": password, "new_passphrase": "Nieuwe-Inbox-Zin-42"}}
			},
			want: senderRoute(want{http.StatusForbidden, "forbidden"})},
		{pattern: "GET /api/v1/requests", req: get("/api/v1/requests"), want: senderRoute(want{http.StatusOK, ""})},
		{pattern: "POST /api/v1/requests",
			req: func(*fixture, actor) req {
				return req{method: "POST", path: "/api/v1/requests", body: map[string]any{"to": []string{"burger@example.org"}, "message": "Loonstroken"}}
			},
			want: senderRoute(want{http.StatusConflict, "conflict"})},
		{pattern: "GET /api/v1/requests/{id}", req: get("/api/v1/requests/onbekend"), want: senderRoute(notFound)},
		{pattern: "POST /api/v1/requests/{id}/revoke", req: func(*fixture, actor) req { return req{method: "POST", path: "/api/v1/requests/onbekend/revoke"} },
			want: senderRoute(notFound)},
		{pattern: "POST /api/v1/requests/{id}/open",
			req: func(*fixture, actor) req {
				return req{method: "POST", path: "/api/v1/requests/onbekend/open", body: map[string]string{"passphrase": password}}
			},
			want: senderRoute(notFound)},
		{pattern: "GET /api/v1/links/{access}",
			req: func(fx *fixture, _ actor) req {
				fx.ready()
				return req{method: "GET", path: "/api/v1/links/" + fx.access}
			},
			want: everyone(want{http.StatusOK, ""})},
		{pattern: "POST /api/v1/links/{access}/unlock",
			req: func(fx *fixture, a actor) req {
				fx.ready()
				sec := "niet-het-wachtwoord"
				if a == recipient {
					sec = password
				}
				return req{method: "POST", path: "/api/v1/links/" + fx.access + "/unlock", body: map[string]string{"secret": sec}}
			},
			want: only(wrongSecret, map[actor]want{recipient: {http.StatusOK, ""}})},
		{pattern: "GET /api/v1/session", req: get("/api/v1/session"), want: sessionRoute(want{http.StatusOK, ""}),
			check: func(t *testing.T, fx *fixture, _ actor, b []byte) {
				if !strings.Contains(string(b), "b.txt") {
					t.Errorf("session contents: %s", b)
				}
			}},
		{pattern: "GET /api/v1/session/files/{fid}",
			req: func(fx *fixture, _ actor) req {
				fx.ready()
				return req{method: "GET", path: "/api/v1/session/files/" + fx.fileID}
			},
			want: sessionRoute(want{http.StatusOK, ""}),
			check: func(t *testing.T, _ *fixture, _ actor, b []byte) {
				if string(b) != "inhoud van b.txt" {
					t.Errorf("download: %q", b)
				}
			}},
		{pattern: "GET /api/v1/session/zip", req: get("/api/v1/session/zip"), want: sessionRoute(want{http.StatusOK, ""})},
		{pattern: "GET /healthz", req: get("/healthz"), want: everyone(want{http.StatusOK, ""})},
		{pattern: "GET /readyz", req: get("/readyz"), want: everyone(want{http.StatusOK, ""})},
		// Loopback clients without a configured token: allowed, whatever
		// Authorization they send (TestMetricsAccess covers the refusals).
		{pattern: "GET /metrics", req: get("/metrics"), want: everyone(want{http.StatusOK, ""})},
		{pattern: "GET /dev/mailbox", req: get("/dev/mailbox"), want: everyone(want{http.StatusOK, ""})},
		{pattern: "GET /dev/mailbox.json", req: get("/dev/mailbox.json"), want: everyone(want{http.StatusOK, ""})},
		{pattern: "GET /dev/mailbox/{file}", req: get("/dev/mailbox/onbekend"), want: everyone(want{http.StatusNotFound, ""})},

		// Web pages. The recipient's browser holds the session cookie.
		{pattern: "GET /{$}", req: get("/"), want: everyone(want{http.StatusOK, ""})},
		{pattern: "GET /send", req: get("/send"), want: everyone(want{http.StatusOK, ""})},
		// The send pages know only the browser's sender session cookie,
		// never an API key or upload token: every actor here is a visitor.
		{pattern: "POST /send/verify",
			req: func(fx *fixture, a actor) req {
				// One address per actor: code mails per address are limited.
				return webReq(fx, a, "POST", "/send/verify", fmt.Sprintf("name=A.+Jansen&email=a.jansen-%d%%40example.nl&next=%%2Fsend", slices.Index(actors, a)))
			},
			want: everyone(want{http.StatusOK, ""})},
		{pattern: "POST /send/confirm",
			req: func(fx *fixture, a actor) req {
				return webReq(fx, a, "POST", "/send/confirm", "code=12345678&next=%2Fsend")
			},
			want: everyone(want{http.StatusUnprocessableEntity, ""})},
		{pattern: "POST /send/transfer",
			req: func(fx *fixture, a actor) req {
				return req{method: "POST", path: "/send/transfer", body: map[string]any{"to": "burger@example.nl", "password_mode": "generate", "message": "x"}}
			},
			want: everyone(want{http.StatusUnauthorized, ""})},
		{pattern: "POST /send/review",
			req: func(fx *fixture, a actor) req {
				return webReq(fx, a, "POST", "/send/review", "to=burger%40example.nl&password_mode=generate")
			},
			// Not signed in as a sender: to the sign-in page (as GET /send).
			want: everyone(want{http.StatusSeeOther, ""})},
		{pattern: "POST /send/preview",
			req:  func(fx *fixture, a actor) req { return webReq(fx, a, "POST", "/send/preview", "subject=x&body=y") },
			want: everyone(want{http.StatusUnauthorized, ""})},
		{pattern: "GET /help", req: get("/help"), want: everyone(want{http.StatusOK, ""})},
		{pattern: "GET /help/send", req: get("/help/send"), want: everyone(want{http.StatusOK, ""})},
		{pattern: "GET /accessibility", req: get("/accessibility"), want: everyone(want{http.StatusOK, ""})},
		{pattern: "GET /privacy", req: get("/privacy"), want: everyone(want{http.StatusOK, ""})},
		{pattern: "GET /receive", req: get("/receive"), want: everyone(want{http.StatusOK, ""})},
		{pattern: "GET /lang", req: get("/lang?to=en&next=/help"), want: everyone(want{http.StatusSeeOther, ""})},
		{pattern: "GET /static/{sum}/{name...}", req: get("/static/0/kluis.css"), want: everyone(want{http.StatusOK, ""})},
		{pattern: "POST /receive",
			req: func(fx *fixture, a actor) req {
				fx.ready()
				return webReq(fx, a, "POST", "/receive", "code="+fx.access)
			},
			want: everyone(want{http.StatusSeeOther, ""})},
		{pattern: "GET /r/{access}",
			req:  func(fx *fixture, a actor) req { fx.ready(); return webReq(fx, a, "GET", "/r/"+fx.access, "") },
			want: only(want{http.StatusOK, ""}, map[actor]want{recipient: {http.StatusSeeOther, ""}})},
		{pattern: "POST /r/{access}/unlock",
			req: func(fx *fixture, a actor) req {
				fx.ready()
				pw := "niet-het-wachtwoord"
				if a == recipient {
					pw = password
				}
				return webReq(fx, a, "POST", "/r/"+fx.access+"/unlock", "password="+pw)
			},
			want: only(want{http.StatusUnprocessableEntity, ""}, map[actor]want{recipient: {http.StatusSeeOther, ""}})},
		// The fixture's recipient has no SMS code: the code page sends
		// everyone to the link's page (internal/web's TestSMSCodePage
		// covers a pending session).
		{pattern: "GET /r/{access}/code",
			req:  func(fx *fixture, a actor) req { fx.ready(); return webReq(fx, a, "GET", "/r/"+fx.access+"/code", "") },
			want: everyone(want{http.StatusSeeOther, ""})},
		{pattern: "POST /r/{access}/code",
			req: func(fx *fixture, a actor) req {
				fx.ready()
				return webReq(fx, a, "POST", "/r/"+fx.access+"/code", "code=123456")
			},
			want: everyone(want{http.StatusSeeOther, ""})},
		{pattern: "GET /r/{access}/open",
			req:  func(fx *fixture, a actor) req { fx.ready(); return webReq(fx, a, "GET", "/r/"+fx.access+"/open", "") },
			want: only(want{http.StatusSeeOther, ""}, map[actor]want{recipient: {http.StatusOK, ""}})},
		// A recipient without a login step (the fixture's password-only
		// one) is sent on to the files; anyone else back to the link.
		{pattern: "GET /r/{access}/login",
			req:  func(fx *fixture, a actor) req { fx.ready(); return webReq(fx, a, "GET", "/r/"+fx.access+"/login", "") },
			want: everyone(want{http.StatusSeeOther, ""})},
		{pattern: "GET /r/{access}/login/start",
			req: func(fx *fixture, a actor) req {
				fx.ready()
				return webReq(fx, a, "GET", "/r/"+fx.access+"/login/start", "")
			},
			want: everyone(want{http.StatusSeeOther, ""})},
		// Without the browser's login cookie there is no login to finish.
		{pattern: "GET /r/login/callback", req: get("/r/login/callback?state=x&code=y"), want: everyone(want{http.StatusUnauthorized, ""})},
		{pattern: "GET /r/{access}/files/{fid}",
			req: func(fx *fixture, a actor) req {
				fx.ready()
				return webReq(fx, a, "GET", "/r/"+fx.access+"/files/"+fx.fileID, "")
			},
			want: only(want{http.StatusSeeOther, ""}, map[actor]want{recipient: {http.StatusOK, ""}}),
			check: func(t *testing.T, _ *fixture, _ actor, b []byte) {
				if string(b) != "inhoud van b.txt" {
					t.Errorf("download: %q", b)
				}
			}},
		{pattern: "GET /r/{access}/zip",
			req:  func(fx *fixture, a actor) req { fx.ready(); return webReq(fx, a, "GET", "/r/"+fx.access+"/zip", "") },
			want: only(want{http.StatusSeeOther, ""}, map[actor]want{recipient: {http.StatusOK, ""}})},
		{pattern: "GET /r/{access}/reply",
			req:  func(fx *fixture, a actor) req { fx.ready(); return webReq(fx, a, "GET", "/r/"+fx.access+"/reply", "") },
			want: only(want{http.StatusSeeOther, ""}, map[actor]want{recipient: {http.StatusOK, ""}})},
		{pattern: "POST /r/{access}/reply",
			req: func(fx *fixture, a actor) req {
				fx.ready()
				rq := webReq(fx, a, "POST", "/r/"+fx.access+"/reply", "")
				rq.hdr["Content-Type"] = "multipart/form-data; boundary=kluisgrens"
				rq.body = "--kluisgrens\r\nContent-Disposition: form-data; name=\"message\"\r\n\r\nAntwoord\r\n--kluisgrens--\r\n"
				return rq
			},
			want: only(want{http.StatusSeeOther, ""}, map[actor]want{recipient: {http.StatusOK, ""}})},
		// My transfers take only the browser's sender session cookie, not
		// API keys or upload tokens: every actor here is sent to the
		// verification page. Owner against other sender is covered by
		// TestMyTransfers in internal/web.
		{pattern: "GET /transfers", req: get("/transfers"), want: everyone(want{http.StatusSeeOther, ""})},
		{pattern: "GET /transfers/{id}",
			req:  func(fx *fixture, a actor) req { fx.open(); return webReq(fx, a, "GET", "/transfers/"+fx.openID, "") },
			want: everyone(want{http.StatusSeeOther, ""})},
		{pattern: "POST /transfers/{id}/revoke",
			req: func(fx *fixture, a actor) req {
				fx.open()
				return webReq(fx, a, "POST", "/transfers/"+fx.openID+"/revoke", "confirm=yes")
			},
			want: everyone(want{http.StatusSeeOther, ""})},
		{pattern: "POST /transfers/{id}/extend",
			req: func(fx *fixture, a actor) req {
				fx.open()
				return webReq(fx, a, "POST", "/transfers/"+fx.openID+"/extend", "expires=2099-01-01")
			},
			want: everyone(want{http.StatusSeeOther, ""})},
		{pattern: "POST /transfers/{id}/unlock",
			req: func(fx *fixture, a actor) req {
				fx.open()
				return webReq(fx, a, "POST", "/transfers/"+fx.openID+"/unlock", "recipient=1")
			},
			want: everyone(want{http.StatusSeeOther, ""})},
		{pattern: "GET /transfers/{id}/unlock/{token}",
			req: func(fx *fixture, a actor) req {
				fx.open()
				return webReq(fx, a, "GET", "/transfers/"+fx.openID+"/unlock/onbekend", "")
			},
			want: everyone(want{http.StatusSeeOther, ""})},
		// A reply opened from the sender's own pages: only the browser's
		// sender session gets past the first step; owner, other sender and
		// the reply's recipient are covered by TestOwnReply in internal/web.
		{pattern: "GET /transfers/{id}/replies/{rid}",
			req: func(fx *fixture, a actor) req {
				fx.open()
				return webReq(fx, a, "GET", "/transfers/"+fx.openID+"/replies/onbekend", "")
			},
			want: everyone(want{http.StatusSeeOther, ""})},
		{pattern: "POST /transfers/{id}/replies/{rid}/unlock",
			req: func(fx *fixture, a actor) req {
				fx.open()
				return webReq(fx, a, "POST", "/transfers/"+fx.openID+"/replies/onbekend/unlock", "password=geraden")
			},
			want: everyone(want{http.StatusSeeOther, ""})},
		{pattern: "GET /transfers/{id}/replies/{rid}/open",
			req: func(fx *fixture, a actor) req {
				fx.open()
				return webReq(fx, a, "GET", "/transfers/"+fx.openID+"/replies/onbekend/open", "")
			},
			want: everyone(want{http.StatusSeeOther, ""})},
		{pattern: "GET /transfers/{id}/replies/{rid}/files/{fid}",
			req: func(fx *fixture, a actor) req {
				fx.open()
				return webReq(fx, a, "GET", "/transfers/"+fx.openID+"/replies/onbekend/files/x", "")
			},
			want: everyone(want{http.StatusSeeOther, ""})},
		{pattern: "GET /transfers/{id}/replies/{rid}/zip",
			req: func(fx *fixture, a actor) req {
				fx.open()
				return webReq(fx, a, "GET", "/transfers/"+fx.openID+"/replies/onbekend/zip", "")
			},
			want: everyone(want{http.StatusSeeOther, ""})},
		// The inbox, too, takes only the browser's sender session; each
		// session sees only its own sender's inbox (TestInboxPages in
		// internal/web).
		{pattern: "GET /inbox", req: get("/inbox"), want: everyone(want{http.StatusSeeOther, ""})},
		{pattern: "POST /inbox", req: func(fx *fixture, a actor) req {
			return webReq(fx, a, "POST", "/inbox", "passphrase=Lange-Inbox-Zin-42&passphrase_again=Lange-Inbox-Zin-42")
		}, want: everyone(want{http.StatusSeeOther, ""})},
		{pattern: "POST /inbox/unlock", req: func(fx *fixture, a actor) req { return webReq(fx, a, "POST", "/inbox/unlock", "passphrase=x") },
			want: everyone(want{http.StatusSeeOther, ""})},
		{pattern: "POST /inbox/passphrase", req: func(fx *fixture, a actor) req {
			return webReq(fx, a, "POST", "/inbox/passphrase", "passphrase=x&new_passphrase=Nieuwe-Inbox-Zin-42&new_passphrase_again=Nieuwe-Inbox-Zin-42")
		}, want: everyone(want{http.StatusSeeOther, ""})},
		{pattern: "POST /inbox/lock", req: func(fx *fixture, a actor) req { return webReq(fx, a, "POST", "/inbox/lock", "") },
			want: everyone(want{http.StatusSeeOther, ""})},
		// File requests: the requester's pages take only the browser's
		// sender session (TestFileRequestPages in internal/web); a link
		// never issued is not found for everyone.
		{pattern: "GET /requests", req: get("/requests"), want: everyone(want{http.StatusSeeOther, ""})},
		{pattern: "POST /requests", req: func(fx *fixture, a actor) req {
			return webReq(fx, a, "POST", "/requests", "address=burger%40example.org&message=Loonstroken")
		}, want: everyone(want{http.StatusSeeOther, ""})},
		{pattern: "GET /requests/{id}", req: get("/requests/onbekend"), want: everyone(want{http.StatusSeeOther, ""})},
		{pattern: "POST /requests/{id}/revoke", req: func(fx *fixture, a actor) req { return webReq(fx, a, "POST", "/requests/onbekend/revoke", "") },
			want: everyone(want{http.StatusSeeOther, ""})},
		{pattern: "POST /requests/{id}/open", req: func(fx *fixture, a actor) req { return webReq(fx, a, "POST", "/requests/onbekend/open", "") },
			want: everyone(want{http.StatusSeeOther, ""})},
		{pattern: "GET /requests/{id}/open", req: get("/requests/onbekend/open"), want: everyone(want{http.StatusSeeOther, ""})},
		{pattern: "GET /requests/{id}/files/{fid}", req: get("/requests/onbekend/files/x"), want: everyone(want{http.StatusSeeOther, ""})},
		{pattern: "GET /requests/{id}/zip", req: get("/requests/onbekend/zip"), want: everyone(want{http.StatusSeeOther, ""})},
		// Drop-off points: the fixture's policy has none; the team pages
		// need a verified sender.
		{pattern: "GET /to/{slug}", req: get("/to/inkomen"), want: everyone(want{http.StatusNotFound, ""})},
		{pattern: "POST /to/{slug}", req: func(fx *fixture, a actor) req {
			rq := webReq(fx, a, "POST", "/to/inkomen", "")
			rq.hdr["Content-Type"] = "multipart/form-data; boundary=kluisgrens"
			rq.body = "--kluisgrens\r\nContent-Disposition: form-data; name=\"message\"\r\n\r\nHier\r\n--kluisgrens--\r\n"
			return rq
		}, want: everyone(want{http.StatusNotFound, ""})},
		{pattern: "POST /to/{slug}/verify", req: func(fx *fixture, a actor) req {
			return webReq(fx, a, "POST", "/to/inkomen/verify", "name=Petro&email=petro%40example.org")
		}, want: everyone(want{http.StatusNotFound, ""})},
		{pattern: "POST /to/{slug}/code", req: func(fx *fixture, a actor) req { return webReq(fx, a, "POST", "/to/inkomen/code", "code=12345678") },
			want: everyone(want{http.StatusNotFound, ""})},
		{pattern: "POST /to/{slug}/start", req: func(fx *fixture, a actor) req { return webReq(fx, a, "POST", "/to/inkomen/start", "message=Hier") },
			want: everyone(want{http.StatusNotFound, ""})},
		{pattern: "POST /to/{slug}/done", req: func(fx *fixture, a actor) req { return webReq(fx, a, "POST", "/to/inkomen/done", "") },
			want: everyone(want{http.StatusNotFound, ""})},
		{pattern: "GET /dropoffs", req: get("/dropoffs"), want: everyone(want{http.StatusSeeOther, ""})},
		{pattern: "GET /dropoffs/{id}", req: get("/dropoffs/onbekend"), want: everyone(want{http.StatusSeeOther, ""})},
		{pattern: "POST /dropoffs/{id}/open", req: func(fx *fixture, a actor) req { return webReq(fx, a, "POST", "/dropoffs/onbekend/open", "") },
			want: everyone(want{http.StatusSeeOther, ""})},
		{pattern: "GET /dropoffs/{id}/open", req: get("/dropoffs/onbekend/open"), want: everyone(want{http.StatusSeeOther, ""})},
		{pattern: "GET /dropoffs/{id}/files/{fid}", req: get("/dropoffs/onbekend/files/x"), want: everyone(want{http.StatusSeeOther, ""})},
		{pattern: "GET /dropoffs/{id}/zip", req: get("/dropoffs/onbekend/zip"), want: everyone(want{http.StatusSeeOther, ""})},
		{pattern: "GET /q/{access}", req: get("/q/abcdefghijklmnopqrstuvwxyz"), want: everyone(want{http.StatusNotFound, ""})},
		{pattern: "POST /q/{access}", req: func(fx *fixture, a actor) req {
			rq := webReq(fx, a, "POST", "/q/abcdefghijklmnopqrstuvwxyz", "")
			rq.hdr["Content-Type"] = "multipart/form-data; boundary=kluisgrens"
			rq.body = "--kluisgrens\r\nContent-Disposition: form-data; name=\"message\"\r\n\r\nHier\r\n--kluisgrens--\r\n"
			return rq
		}, want: everyone(want{http.StatusNotFound, ""})},
		{pattern: "POST /q/{access}/start", req: func(fx *fixture, a actor) req {
			return webReq(fx, a, "POST", "/q/abcdefghijklmnopqrstuvwxyz/start", "message=Hier")
		}, want: everyone(want{http.StatusNotFound, ""})},
		{pattern: "POST /q/{access}/done", req: func(fx *fixture, a actor) req {
			return webReq(fx, a, "POST", "/q/abcdefghijklmnopqrstuvwxyz/done", "")
		}, want: everyone(want{http.StatusNotFound, ""})},
		{pattern: "POST /transfers/{id}/password",
			req: func(fx *fixture, a actor) req {
				fx.open()
				return webReq(fx, a, "POST", "/transfers/"+fx.openID+"/password", "token=onbekend")
			},
			want: everyone(want{http.StatusSeeOther, ""})},
		{pattern: "GET /transfers/{id}/password/{token}",
			req: func(fx *fixture, a actor) req {
				fx.open()
				return webReq(fx, a, "GET", "/transfers/"+fx.openID+"/password/onbekend", "")
			},
			want: everyone(want{http.StatusSeeOther, ""})},
		{pattern: "POST /logout", req: func(fx *fixture, a actor) req { return webReq(fx, a, "POST", "/logout", "") },
			want: everyone(want{http.StatusSeeOther, ""})},
		{pattern: "GET /logout", req: get("/logout"), want: everyone(want{http.StatusOK, ""})},
		// Without --oidc-issuer there is no sign-in at a provider.
		{pattern: "GET /sso/start", req: get("/sso/start"), want: everyone(want{http.StatusNotFound, ""})},
		{pattern: "GET /sso/callback", req: get("/sso/callback?state=x&code=y"), want: everyone(want{http.StatusNotFound, ""})},
		{pattern: "GET /admin", req: func(fx *fixture, a actor) req { return webReq(fx, a, "GET", "/admin", "") },
			want: everyone(want{http.StatusSeeOther, ""})},
		// The rest of the admin console: no actor here has a staff
		// session, so each goes to the sign-in (every role and 403 in
		// internal/web's TestConsoleRolesPerRoute).
		{pattern: "GET /admin/transfers", req: get("/admin/transfers?sender=" + ownerEmail), want: everyone(want{http.StatusSeeOther, ""})},
		{pattern: "GET /admin/transfers/{id}/revoke",
			req: func(fx *fixture, a actor) req {
				fx.open()
				return webReq(fx, a, "GET", "/admin/transfers/"+fx.openID+"/revoke", "")
			},
			want: everyone(want{http.StatusSeeOther, ""})},
		{pattern: "POST /admin/transfers/{id}/revoke",
			req: func(fx *fixture, a actor) req {
				fx.open()
				return webReq(fx, a, "POST", "/admin/transfers/"+fx.openID+"/revoke", "reason=een+reden+hier")
			},
			want: everyone(want{http.StatusSeeOther, ""})},
		{pattern: "GET /admin/audit", req: get("/admin/audit"), want: everyone(want{http.StatusSeeOther, ""})},
		{pattern: "GET /admin/audit/export", req: get("/admin/audit/export?format=csv"), want: everyone(want{http.StatusSeeOther, ""})},
		{pattern: "GET /admin/stats", req: get("/admin/stats"), want: everyone(want{http.StatusSeeOther, ""})},
		{pattern: "POST /admin/transfers/bulk",
			req: func(fx *fixture, a actor) req {
				fx.open()
				return webReq(fx, a, "POST", "/admin/transfers/bulk", "id="+fx.openID)
			},
			want: everyone(want{http.StatusSeeOther, ""})},
		{pattern: "GET /admin/keys", req: get("/admin/keys"), want: everyone(want{http.StatusSeeOther, ""})},
		{pattern: "POST /admin/keys", req: func(fx *fixture, a actor) req {
			return webReq(fx, a, "POST", "/admin/keys", "sender=a%40example.nl&name=x&days=1&reason=een+reden+hier")
		}, want: everyone(want{http.StatusSeeOther, ""})},
		{pattern: "GET /admin/keys/{id}", req: get("/admin/keys/onbekend"), want: everyone(want{http.StatusSeeOther, ""})},
		{pattern: "POST /admin/keys/{id}", req: func(fx *fixture, a actor) req {
			return webReq(fx, a, "POST", "/admin/keys/onbekend", "action=revoke&reason=een+reden+hier")
		}, want: everyone(want{http.StatusSeeOther, ""})},
		{pattern: "GET /admin/mail", req: get("/admin/mail?state=pending"), want: everyone(want{http.StatusSeeOther, ""})},
		{pattern: "POST /admin/mail/{id}/retry", req: func(fx *fixture, a actor) req { return webReq(fx, a, "POST", "/admin/mail/m1/retry", "") },
			want: everyone(want{http.StatusSeeOther, ""})},
		{pattern: "GET /admin/mail/{id}/drop", req: get("/admin/mail/m1/drop"), want: everyone(want{http.StatusSeeOther, ""})},
		{pattern: "POST /admin/mail/{id}/drop", req: func(fx *fixture, a actor) req {
			return webReq(fx, a, "POST", "/admin/mail/m1/drop", "reason=een+reden+hier")
		}, want: everyone(want{http.StatusSeeOther, ""})},
		{pattern: "GET /admin/policy", req: get("/admin/policy?sender=a@example.nl&recipient=b@example.nl"), want: everyone(want{http.StatusSeeOther, ""})},
		{pattern: "POST /admin/policy/validate", req: func(fx *fixture, a actor) req {
			return webReq(fx, a, "POST", "/admin/policy/validate", "text=%7B%7D")
		}, want: everyone(want{http.StatusSeeOther, ""})},

		{pattern: "GET /.well-known/security.txt", req: get("/.well-known/security.txt"), want: everyone(want{http.StatusOK, ""})},
	}
}

// TestRouteTable calls every registered route as every actor, each on fresh
// transfers, and checks status, error code and the security headers. It
// fails for a registered route without a row (and a row without a route):
// the patterns come from the handler server.New built, so a route added
// anywhere (api.Register or server.New) needs a row here.
func TestRouteTable(t *testing.T) {
	e := newEnv(t, envOptions{})
	_, ownerKey, err := e.senders.CreateAPIKey(e.ctx, ownerEmail)
	if err != nil {
		t.Fatal(err)
	}
	_, otherKey, err := e.senders.CreateAPIKey(e.ctx, otherEmail)
	if err != nil {
		t.Fatal(err)
	}

	registered := routesOf(t, e)
	rows := map[string]routeRow{}
	for _, r := range routeTable() {
		rows[r.pattern] = r
	}
	for _, p := range registered {
		if _, ok := rows[p]; !ok {
			t.Errorf("route %q has no row in the route table test: add one with the expected answer for every actor", p)
		}
	}
	reg := map[string]bool{}
	for _, p := range registered {
		reg[p] = true
	}
	for p := range rows {
		if !reg[p] {
			t.Errorf("row %q is not a registered route; remove or rename it", p)
		}
	}

	for _, p := range registered {
		row, ok := rows[p]
		if !ok {
			continue
		}
		for _, a := range actors {
			w, ok := row.want[a]
			if !ok {
				t.Errorf("%s: no expectation for %s", p, a)
				continue
			}
			t.Run(fmt.Sprintf("%s/%s", p, a), func(t *testing.T) {
				t.Parallel()
				fx := e.fixture(t)
				var token string
				switch a {
				case other:
					token = otherKey
				case owner:
					token = ownerKey
				case otherUpload:
					fx.otherUpload()
					token = fx.otherUploadToken
				case uploader:
					fx.open()
					token = fx.openToken
				case recipient:
					fx.unlock()
					token = fx.session
				case wrongPass:
					fx.ready()
				}
				if a == wrongPass {
					resp, b := fx.e.do("POST", "/api/v1/links/"+fx.access+"/unlock", "", nil, map[string]string{"secret": "fout-wachtwoord"})
					if resp.StatusCode != http.StatusUnauthorized || errCode(b) != "wrong_password" {
						t.Fatalf("wrong password: %d %s", resp.StatusCode, b)
					}
				}
				rq := row.req(fx, a)
				resp, body := fx.e.do(rq.method, rq.path, token, rq.hdr, rq.body)
				if resp.StatusCode != w.status {
					t.Fatalf("%s %s as %s: %d, want %d: %.300s", rq.method, rq.path, a, resp.StatusCode, w.status, body)
				}
				if w.code != "" && rq.method != "HEAD" {
					if got := errCode(body); got != w.code {
						t.Errorf("%s as %s: error code %q, want %q: %.300s", p, a, got, w.code, body)
					}
				}
				if resp.StatusCode >= 400 && strings.HasPrefix(rq.path, "/api/") && !strings.HasPrefix(rq.path, "/api/v1/uploads/") && rq.method != "HEAD" {
					var v map[string]json.RawMessage
					if json.Unmarshal(body, &v) != nil || v["error"] == nil {
						t.Errorf("%s as %s: error body is not JSON {\"error\":...}: %.300s", p, a, body)
					}
				}
				if resp.StatusCode < 300 && row.check != nil {
					row.check(t, fx, a, body)
				}
				checkHeaders(t, p, resp, false)
			})
		}
	}
	if t.Failed() {
		t.Log("the cross-origin, header and rate-limit tests use the same routes")
	}
}

// webReq is a browser's request: a form body, and for the recipient the
// download session cookie.
func webReq(fx *fixture, a actor, method, path, form string) req {
	h := map[string]string{}
	if a == recipient {
		h["Cookie"] = "__Host-kluis-dl=" + fx.session
	}
	var body any
	if form != "" {
		h["Content-Type"] = "application/x-www-form-urlencoded"
		body = form
	}
	return req{method: method, path: path, hdr: h, body: body}
}

// routesOf returns the patterns the handler registered.
func routesOf(t testing.TB, e *env) []string {
	t.Helper()
	rt, ok := e.handler.(interface{ Routes() []string })
	if !ok {
		t.Fatal("server.New's handler does not list its routes")
	}
	p := rt.Routes()
	if len(p) < 20 {
		t.Fatalf("only %d routes registered: %v", len(p), p)
	}
	sort.Strings(p)
	return p
}

// checkHeaders checks the headers every answer must carry.
func checkHeaders(t *testing.T, what string, resp *http.Response, overTLS bool) {
	t.Helper()
	h := resp.Header
	expect := func(name, want string) {
		if got := h.Get(name); got != want {
			t.Errorf("%s: %s = %q, want %q", what, name, got, want)
		}
	}
	expect("X-Content-Type-Options", "nosniff")
	expect("Referrer-Policy", "no-referrer")
	expect("X-Frame-Options", "DENY")
	expect("Cross-Origin-Opener-Policy", "same-origin")
	if v := h.Values("Server"); len(v) > 0 {
		t.Errorf("%s: Server header %q (no version banner)", what, v)
	}
	if v := h.Get("X-Powered-By"); v != "" {
		t.Errorf("%s: X-Powered-By %q", what, v)
	}
	csp := h.Get("Content-Security-Policy")
	switch {
	case csp == "sandbox; default-src 'none'; frame-ancestors 'none'" && what == "GET /dev/mailbox/{file}":
		// A mail in the development mailbox, shown as plain text.
		if ct := h.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
			t.Errorf("%s: sandboxed mail view as %q, want text/plain", what, ct)
		}
	case csp == "sandbox; default-src 'none'; frame-ancestors 'none'":
		// A download: the stricter sandbox replaces the page policy
		// (X-Frame-Options DENY still forbids framing).
		if h.Get("Content-Disposition") == "" || !strings.HasPrefix(h.Get("Content-Disposition"), "attachment") {
			t.Errorf("%s: sandbox CSP without an attachment", what)
		}
	default:
		if !strings.Contains(csp, "frame-ancestors 'none'") {
			t.Errorf("%s: CSP %q lacks frame-ancestors 'none'", what, csp)
		}
		if !strings.Contains(csp, "object-src 'none'") && !strings.Contains(csp, "default-src 'none'") {
			t.Errorf("%s: CSP %q lacks object-src 'none'", what, csp)
		}
		if strings.HasPrefix(h.Get("Content-Type"), "text/html") && !strings.Contains(csp, "base-uri 'none'") {
			t.Errorf("%s: CSP %q lacks base-uri 'none'", what, csp)
		}
	}
	if strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") {
		t.Errorf("%s: CSP allows inline script: %q", what, csp)
	}
	if what != "GET /.well-known/security.txt" && what != "GET /static/{sum}/{name...}" {
		expect("Cache-Control", "no-store")
	}
	if ct := h.Get("Content-Type"); strings.HasPrefix(ct, "text/") {
		if !strings.Contains(strings.ToLower(ct), "charset=utf-8") {
			t.Errorf("%s: Content-Type %q without charset", what, ct)
		}
	}
	hsts := h.Get("Strict-Transport-Security")
	if overTLS {
		var age int
		if _, err := fmt.Sscanf(hsts, "max-age=%d", &age); err != nil || age < 31536000 {
			t.Errorf("%s over TLS: HSTS %q, want max-age of at least a year", what, hsts)
		}
	} else if hsts != "" {
		t.Errorf("%s over plain HTTP: HSTS %q", what, hsts)
	}
}
