package api_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/kluis-nl/kluis/internal/audit"
)

// auditEnv is apiEnv with an API key for a sender, so transfers are
// created over HTTP, and a plain client (not checked against the OpenAPI
// document).
type auditEnv struct {
	*apiEnv
	rec    *audit.Recorder
	keyID  string
	apiKey string
}

func newAuditEnv(t *testing.T) *auditEnv {
	t.Helper()
	e := newAPIEnv(t)
	id, key, err := e.senders.CreateAPIKey(e.ctx, "afzender@example.nl")
	if err != nil {
		t.Fatal(err)
	}
	e.client = &http.Client{Transport: &http.Transport{DisableCompression: true}}
	return &auditEnv{apiEnv: e, rec: e.app.Audit, keyID: id, apiKey: key}
}

func (e *auditEnv) entries() []audit.Entry {
	e.t.Helper()
	var b bytes.Buffer
	if err := e.rec.Export(e.ctx, time.Time{}, audit.JSON, &b); err != nil {
		e.t.Fatal(err)
	}
	var out []audit.Entry
	sc := bufio.NewScanner(&b)
	for sc.Scan() {
		var a audit.Entry
		if err := json.Unmarshal(sc.Bytes(), &a); err != nil {
			e.t.Fatal(err)
		}
		out = append(out, a)
	}
	return out
}

// logLines parses the captured log as JSON lines; every line must parse.
func logLines(t *testing.T, b []byte) []map[string]any {
	t.Helper()
	var out []map[string]any
	for i, l := range bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n")) {
		if len(l) == 0 {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal(l, &m); err != nil {
			t.Fatalf("log line %d is not one JSON object: %q", i+1, l)
		}
		out = append(out, m)
	}
	return out
}

// TestAuditOverHTTP is security.md items 17 and 22: a whole transfer over
// HTTP leaves one audit entry per event, each with actor, action, object,
// result, IP and UTC time; one download is exactly one entry. The log of
// the whole run holds none of the secrets (the log canary).
func TestAuditOverHTTP(t *testing.T) {
	e := newAuditEnv(t)
	const message, fileName = "kanarie-bericht-api", "kanarie-bestand-api.txt"
	var c struct {
		ID          string `json:"id"`
		UploadToken string `json:"upload_token"`
		Password    string `json:"password"`
	}
	e.jsonOK(e.req("POST", "/api/v1/transfers", e.apiKey, nil, map[string]any{
		"to": []string{"ontvanger@example.nl"}, "message": message, "password": map[string]string{"mode": "generate"},
	}), http.StatusCreated, &c)
	var f fileJSON
	e.jsonOK(e.req("PUT", "/api/v1/transfers/"+c.ID+"/files", c.UploadToken,
		map[string]string{"Kluis-File-Name": url.PathEscape(fileName)}, []byte("inhoud van het bestand")), http.StatusCreated, &f)
	access := e.finish(created{ID: c.ID, UploadToken: c.UploadToken})
	apiError(t, e.req("POST", "/api/v1/links/"+access[0]+"/unlock", "", nil, map[string]string{"secret": "niet-het-wachtwoord"}), http.StatusUnauthorized)
	session := e.unlock(access[0], c.Password)
	resp := e.req("GET", "/api/v1/session/files/"+f.ID, session, nil, nil)
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("download: %d", resp.StatusCode)
	}
	// Erasing a live transfer is refused with a clear message.
	_, msg, _ := apiError(t, e.req("DELETE", "/api/v1/transfers/"+c.ID, e.apiKey, nil, nil), http.StatusConflict)
	if !strings.Contains(msg, "Revoke it first") {
		t.Errorf("erase of a live transfer: %q", msg)
	}
	e.jsonOK(e.req("POST", "/api/v1/transfers/"+c.ID+"/revoke", e.apiKey, nil, nil), http.StatusOK, nil)
	if _, err := e.svc.Purge(e.ctx); err != nil {
		t.Fatal(err)
	}
	// The purge ended the upload token (issue 11 item 14); the sender
	// erases as the verified sender.
	apiError(t, e.req("DELETE", "/api/v1/transfers/"+c.ID, c.UploadToken, nil, nil), http.StatusUnauthorized)
	resp = e.req("DELETE", "/api/v1/transfers/"+c.ID, e.apiKey, nil, nil)
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("erase: %d", resp.StatusCode)
	}
	apiError(t, e.req("GET", "/api/v1/transfers/"+c.ID, e.apiKey, nil, nil), http.StatusNotFound)

	type key struct{ actor, action, result string }
	got := map[key]int{}
	for _, a := range e.entries() {
		got[key{a.Actor, a.Action, a.Result}]++
		if a.At.Location() != time.UTC || a.At.IsZero() {
			t.Errorf("entry time %v", a.At)
		}
		if a.Actor != audit.System && a.Action != audit.APIKeyCreate && a.IP != "127.0.0.1" {
			t.Errorf("entry %+v without the client IP", a)
		}
		if a.Action != audit.APIKeyCreate && a.Object != c.ID {
			t.Errorf("entry %+v: object is not the transfer", a)
		}
	}
	ak := audit.APIKey(e.keyID)
	for _, want := range []key{
		{"admin", "apikey.create", "ok"},
		{ak, "transfer.create", "ok"},
		{"upload_token", "upload.file_complete", "ok"},
		{"upload_token", "transfer.finish", "ok"},
		{"recipient:1", "recipient.unlock_failed", "wrong_password"},
		{"recipient:1", "recipient.unlock", "ok"},
		{"recipient:1", "file.download", "ok"},
		{ak, "transfer.revoke", "ok"},
		{"system", "transfer.purge", "ok"},
		{"sender", "transfer.erase", "ok"},
	} {
		if got[want] != 1 {
			t.Errorf("%d entries %v, want exactly 1; all: %v", got[want], want, got)
		}
	}

	// The log canary: no secret of this run is in the log, and every line
	// is one JSON object.
	logs := e.logs.Bytes()
	logLines(t, logs)
	canaries := map[string]string{
		"password": c.Password, "upload token": c.UploadToken, "access id": access[0], "session token": session,
		"api key": e.apiKey, "message": message, "file name": fileName, "recipient address": "ontvanger@example.nl",
	}
	for name, v := range canaries {
		if v != "" && bytes.Contains(logs, []byte(v)) {
			t.Errorf("the log holds the %s", name)
		}
	}
}

// TestLogInjection is security.md item 17: CR/LF in an e-mail address (or
// any user input) cannot forge a log line or an audit entry.
func TestLogInjection(t *testing.T) {
	e := newAuditEnv(t)
	forged := "a@example.nl\r\n{\"time\":\"2025-01-01T00:00:00Z\",\"level\":\"ERROR\",\"msg\":\"forged\"}\n"
	apiError(t, e.req("POST", "/api/v1/verify", "", nil, map[string]string{"email": forged}), http.StatusBadRequest)
	apiError(t, e.req("POST", "/api/v1/verify", "", nil, map[string]string{"email": "ok@example.nl", "name": forged}), http.StatusBadRequest)
	apiError(t, e.req("POST", "/api/v1/transfers", e.apiKey, nil, map[string]any{"to": []string{forged}}), http.StatusBadRequest)
	apiError(t, e.req("POST", "/api/v1/transfers", e.apiKey, nil, map[string]any{"to": []string{"o@example.nl"}, "subject": forged}), http.StatusBadRequest)
	apiError(t, e.req("POST", "/api/v1/links/"+url.PathEscape(forged)+"/unlock", "", nil, map[string]string{"secret": forged}), http.StatusNotFound)
	// The same value given straight to the logger stays on one line.
	e.logs.Logger().Warn("user input", "email", forged)

	lines := logLines(t, e.logs.Bytes())
	if len(lines) == 0 {
		t.Fatal("nothing logged")
	}
	for _, l := range lines {
		if l["msg"] == "forged" {
			t.Errorf("a forged line made it into the log: %v", l)
		}
	}
	for _, a := range e.entries() {
		if strings.ContainsAny(a.Actor+a.Object+a.Detail, "\r\n") {
			t.Errorf("audit entry with a line break: %+v", a)
		}
	}
}
