package api_test

import (
	"bytes"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/kluis-nl/kluis/internal/secret"
)

// TestErrorShape: every API error is {"error":{"code","message"}} with the
// status of its code, and says what to fix without internal detail.
func TestErrorShape(t *testing.T) {
	t.Parallel()
	e := newAPIEnv(t)
	s := e.shared([]string{"a.bin"}, []int{1000})
	other := e.shared([]string{"b.bin"}, []int{10})
	json := map[string]string{"Content-Type": "application/json"}
	unlock := "/api/v1/links/" + s.access[0] + "/unlock"
	cases := []struct {
		name         string
		method, path string
		token        string
		header       map[string]string
		body         any
		status       int
		code         string
		messageHas   string
	}{
		{"bad JSON", "POST", unlock, "", json, `{"secret": ]}`, 400, "invalid", "not valid JSON"},
		{"truncated JSON", "POST", unlock, "", json, `{"secret": "`, 400, "invalid", "JSON"},
		{"unknown field", "POST", unlock, "", json, `{"bogus": 1}`, 400, "invalid", `"bogus"`},
		{"wrong type", "POST", unlock, "", json, `{"secret": 5}`, 400, "invalid", "wrong type"},
		{"trailing data", "POST", unlock, "", json, `{} {}`, 400, "invalid", "after the JSON"},
		{"empty body", "POST", unlock, "", json, ``, 400, "invalid", "empty"},
		{"wrong content type", "POST", unlock, "", map[string]string{"Content-Type": "text/plain"}, `{}`, 400, "invalid", "application/json"},
		{"form content type", "POST", unlock, "", map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, `a=b`, 400, "invalid", "JSON"},
		{"body too large", "POST", unlock, "", json, `{"secret":"` + strings.Repeat("x", 2<<20) + `"}`, 413, "too_large", "too large"},
		{"bad date", "POST", "/api/v1/transfers/" + s.c.ID + "/extend", s.c.UploadToken, json, `{"expires_at":"morgen"}`, 400, "invalid", ""},
		{"create unverified", "POST", "/api/v1/transfers", "", json, `{}`, 401, "unauthorized", ""},
		{"missing bearer", "GET", "/api/v1/transfers/" + s.c.ID, "", nil, nil, 401, "unauthorized", "upload token"},
		{"bad bearer", "GET", "/api/v1/transfers/" + s.c.ID, secret.NewToken(), nil, nil, 401, "unauthorized", "upload token"},
		{"another transfer's token", "GET", "/api/v1/transfers/" + s.c.ID, other.c.UploadToken, nil, nil, 404, "not_found", "does not exist"},
		{"another transfer's token, finish", "POST", "/api/v1/transfers/" + s.c.ID + "/finish", other.c.UploadToken, nil, nil, 404, "not_found", "does not exist"},
		{"another transfer's token, revoke", "POST", "/api/v1/transfers/" + s.c.ID + "/revoke", other.c.UploadToken, nil, nil, 404, "not_found", "does not exist"},
		{"plain upload without name", "PUT", "/api/v1/transfers/" + s.c.ID + "/files", s.c.UploadToken, nil, "x", 409, "conflict", ""},
		{"tus without bearer", "POST", "/api/v1/uploads/", "", map[string]string{"Upload-Length": "1", "Tus-Resumable": "1.0.0"}, nil, 401, "unauthorized", "upload token"},
		{"tus without length", "POST", "/api/v1/uploads/", s.c.UploadToken, map[string]string{"Tus-Resumable": "1.0.0"}, nil, 400, "invalid", "Upload-Length"},
		{"session missing bearer", "GET", "/api/v1/session", "", nil, nil, 401, "unauthorized", "Unlock"},
		{"session bad bearer", "GET", "/api/v1/session", "not-a-session", nil, nil, 401, "unauthorized", "not valid"},
		{"session made-up token", "GET", "/api/v1/session/zip", strings.Repeat("A", 64), nil, nil, 401, "unauthorized", "ended"},
		{"upload token as session", "GET", "/api/v1/session", s.c.UploadToken, nil, nil, 401, "unauthorized", ""},
		{"unknown file", "GET", "/api/v1/session/files/" + secret.NewID(), s.session, nil, nil, 404, "not_found", "does not exist"},
		{"another transfer's file", "GET", "/api/v1/session/files/" + other.files[0].ID, s.session, nil, nil, 404, "not_found", "does not exist"},
		{"unknown link", "GET", "/api/v1/links/" + secret.NewAccessID(), "", nil, nil, 404, "not_found", "no transfer"},
		{"garbage link", "GET", "/api/v1/links/%2e%2e%2f", "", nil, nil, 404, "not_found", "no transfer"},
		{"wrong password", "POST", "/api/v1/links/" + s.access[0] + "/unlock", "", json, `{"secret":"fout"}`, 401, "wrong_password", "not correct"},
		{"unlock unknown field", "POST", "/api/v1/links/" + s.access[0] + "/unlock", "", json, `{"password":"x"}`, 400, "invalid", `"password"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp := e.req(tc.method, tc.path, tc.token, tc.header, tc.body)
			if tc.name == "plain upload without name" {
				// Finished transfer: the file name check or the state check
				// may come first; both are client errors in JSON.
				if resp.StatusCode != 400 && resp.StatusCode != 409 {
					t.Fatalf("status %d", resp.StatusCode)
				}
				apiError(t, resp, resp.StatusCode)
				return
			}
			code, msg, _ := apiError(t, resp, tc.status)
			if code != tc.code {
				t.Errorf("code %q, want %q (message %q)", code, tc.code, msg)
			}
			if !strings.Contains(msg, tc.messageHas) {
				t.Errorf("message %q does not mention %q", msg, tc.messageHas)
			}
			if strings.Contains(msg, "sql") || strings.Contains(msg, "runtime") || strings.Contains(msg, "/tmp/") {
				t.Errorf("message leaks internals: %q", msg)
			}
		})
	}

	// tus answers for its own routes; an upload that is not the caller's is
	// 404 whatever the token.
	t.Run("unknown upload", func(t *testing.T) {
		for _, tok := range []string{s.c.UploadToken, other.c.UploadToken} {
			for _, m := range []string{"HEAD", "PATCH"} {
				h := map[string]string{"Tus-Resumable": "1.0.0"}
				var body any
				if m == "PATCH" {
					h["Content-Type"] = "application/offset+octet-stream"
					h["Upload-Offset"] = "0"
					body = "x"
				}
				id := secret.NewID()
				if tok == other.c.UploadToken {
					id = s.files[0].ID // exists, but belongs to s
				}
				resp := e.req(m, "/api/v1/uploads/"+id, tok, h, body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusNotFound {
					t.Errorf("%s unknown upload: status %d, want 404", m, resp.StatusCode)
				}
			}
		}
	})

	// Expired: 410 with the date.
	t.Run("expired link", func(t *testing.T) {
		e.clock.Set(s.c.ExpiresAt.Add(time.Second))
		defer e.clock.Set(time.Now().UTC())
		code, _, at := apiError(t, e.req("GET", "/api/v1/links/"+s.access[0], "", nil, nil), http.StatusGone)
		if code != "expired" || at == nil || !at.Equal(s.c.ExpiresAt) {
			t.Errorf("code %s at %v, want expired at %v", code, at, s.c.ExpiresAt)
		}
		code, _, _ = apiError(t, e.req("GET", "/api/v1/session", s.session, nil, nil), http.StatusUnauthorized)
		_ = code
	})

	// No bearer secret of any kind reaches the log (URLs are not logged).
	logs := e.logs.Bytes()
	for name, v := range map[string]string{
		"access id": s.access[0], "upload token": s.c.UploadToken, "session": s.session, "password": s.c.Password,
		"other access id": other.access[0], "other session": other.session,
	} {
		if bytes.Contains(logs, []byte(v)) {
			t.Errorf("the log holds the %s", name)
		}
	}
	if !bytes.Contains(logs, []byte(`"route"`)) {
		t.Error("no access log lines: the log check proves nothing")
	}
}
