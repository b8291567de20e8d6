package api_test

import (
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/kluis-nl/kluis/internal/app/apptest"
)

// TestQuotaAPI: the policy's quotas answer 429 quota_exceeded in the API's
// error format: a sender's unfinished transfers on create, the daily
// volume on a tus upload's creation (with Retry-After: the volume frees up
// as the day goes on).
func TestQuotaAPI(t *testing.T) {
	e := startAPIEnv(t, apptest.Options{Policy: `{"defaults": {"max_open_drafts": 2, "max_bytes_per_day": "100kB"}}`})
	_, key, err := e.senders.CreateAPIKey(e.ctx, "afzender@example.nl")
	if err != nil {
		t.Fatal(err)
	}
	body := func() map[string]any {
		return map[string]any{"to": []string{"b@example.nl"}, "password": map[string]string{"mode": "manual", "value": "Vrolijk-Paarse-Olifant-42"}}
	}
	var c struct {
		ID          string `json:"id"`
		UploadToken string `json:"upload_token"`
	}
	e.jsonOK(e.req("POST", "/api/v1/transfers", key, nil, body()), http.StatusCreated, &c)
	e.jsonOK(e.req("POST", "/api/v1/transfers", key, nil, body()), http.StatusCreated, nil)
	resp := e.req("POST", "/api/v1/transfers", key, nil, body())
	if code, msg, _ := apiError(t, resp, http.StatusTooManyRequests); code != "quota_exceeded" || !strings.Contains(msg, "not sent yet") {
		t.Errorf("third draft: %s %q", code, msg)
	}

	tus := func(n int) *http.Response {
		return e.req("POST", "/api/v1/uploads/", c.UploadToken, map[string]string{"Tus-Resumable": "1.0.0", "Upload-Length": strconv.Itoa(n)}, nil)
	}
	if r := tus(80_000); r.StatusCode != http.StatusCreated {
		t.Fatalf("first upload: %d", r.StatusCode)
	}
	r := tus(30_000)
	defer r.Body.Close()
	if r.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("upload over the daily volume: status %d, want 429", r.StatusCode)
	}
	if s, err := strconv.Atoi(r.Header.Get("Retry-After")); err != nil || s < 1 || s > 24*3600 {
		t.Errorf("Retry-After %q", r.Header.Get("Retry-After"))
	}
}
