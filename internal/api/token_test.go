package api_test

import (
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/kluis-nl/kluis/internal/secret"
)

// TestUploadTokenEndsAtPurge is issue 11 item 14: once a transfer is
// purged, its upload token reads and erases nothing. Every route answers
// it exactly as it answers a token that was never issued, while the
// verified sender still sees and erases the minimal record.
func TestUploadTokenEndsAtPurge(t *testing.T) {
	t.Parallel()
	e := newAuditEnv(t)
	s := e.shared([]string{"a.bin"}, []int{1000})
	id, fid, tok := s.c.ID, s.files[0].ID, s.c.UploadToken
	// Before the purge the token shows the status. (Checked before the
	// revoke: the running app's purge loop wakes at a revoke, so "revoked
	// but not yet purged" is a race the test cannot win every time.)
	e.jsonOK(e.req("GET", "/api/v1/transfers/"+id, tok, nil, nil), http.StatusOK, nil)
	e.jsonOK(e.req("POST", "/api/v1/transfers/"+id+"/revoke", tok, nil, nil), http.StatusOK, nil)
	if _, err := e.svc.Purge(e.ctx); err != nil {
		t.Fatal(err)
	}

	tus := map[string]string{"Tus-Resumable": "1.0.0"}
	routes := []struct {
		method, path string
		header       map[string]string
		body         any
	}{
		{"GET", "/api/v1/transfers/" + id, nil, nil},
		{"DELETE", "/api/v1/transfers/" + id, nil, nil},
		{"POST", "/api/v1/transfers/" + id + "/finish", nil, nil},
		{"POST", "/api/v1/transfers/" + id + "/revoke", nil, nil},
		{"POST", "/api/v1/transfers/" + id + "/extend", nil, map[string]string{"expires_at": time.Now().Add(48 * time.Hour).UTC().Format(time.RFC3339)}},
		{"PUT", "/api/v1/transfers/" + id + "/files", map[string]string{"Kluis-File-Name": "b.txt"}, "inhoud"},
		{"POST", "/api/v1/uploads/", map[string]string{"Tus-Resumable": "1.0.0", "Upload-Length": "5"}, nil},
		{"HEAD", "/api/v1/uploads/" + fid, tus, nil},
		{"PATCH", "/api/v1/uploads/" + fid, map[string]string{"Tus-Resumable": "1.0.0", "Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"}, "x"},
		{"DELETE", "/api/v1/uploads/" + fid, tus, nil},
	}
	unknown := secret.NewToken()
	answer := func(token string, i int) (int, string) {
		rt := routes[i]
		resp := e.req(rt.method, rt.path, token, rt.header, rt.body)
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode, string(b)
	}
	for i, rt := range routes {
		gotStatus, gotBody := answer(tok, i)
		wantStatus, wantBody := answer(unknown, i)
		if gotStatus != wantStatus || gotBody != wantBody {
			t.Errorf("%s %s with the purged transfer's upload token: %d %s; an unknown token gets %d %s",
				rt.method, rt.path, gotStatus, gotBody, wantStatus, wantBody)
		}
		if gotStatus != http.StatusUnauthorized {
			t.Errorf("%s %s with the purged transfer's upload token: %d, want 401", rt.method, rt.path, gotStatus)
		}
	}
	row, err := e.db.Transfer(e.ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if len(row.UploadTokenHash) != 0 {
		t.Errorf("the purged transfer keeps its upload token hash")
	}

	// The verified sender still has the minimal record, and erases it.
	e.jsonOK(e.req("GET", "/api/v1/transfers/"+id, e.apiKey, nil, nil), http.StatusOK, nil)
	resp := e.req("DELETE", "/api/v1/transfers/"+id, e.apiKey, nil, nil)
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("erase by the sender: %d", resp.StatusCode)
	}
}
