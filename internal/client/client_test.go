package client

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestErrors(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/api/v1/links/abc":
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(410)
			io.WriteString(w, `{"error":{"code":"expired","message":"This transfer has expired.","at":"2026-12-05T00:18:26Z"}}`)
		case "/api/v1/uploads/f1":
			w.WriteHeader(409)
			io.WriteString(w, "ERR_MISMATCHED_OFFSET: mismatched offset\n")
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	c, err := New(srv.URL+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Lookup(context.Background(), "A-b c")
	var ae *APIError
	if !errors.As(err, &ae) || ae.Code != "expired" || ae.Status != 410 || ae.At == nil || ae.Message != "This transfer has expired." {
		t.Fatalf("lookup: %#v", err)
	}
	_, err = c.Patch(context.Background(), "tok", "/api/v1/uploads/f1", 0, strings.NewReader("x"), 1)
	if Code(err) != "mismatched_offset" {
		t.Fatalf("patch: %v (%q)", err, Code(err))
	}
	_, err = c.Transfers(context.Background(), "tok")
	if Code(err) != "not_found" {
		t.Fatalf("plain 404: %v", err)
	}
	bad, _ := New("http://127.0.0.1:1", nil)
	_, err = bad.Lookup(context.Background(), "abc")
	var ne *NetError
	if !errors.As(err, &ne) {
		t.Fatalf("unreachable: %#v", err)
	}
	if strings.Contains(err.Error(), "abc") {
		t.Errorf("the access id is in the error: %v", err)
	}
	if _, err := New("ftp://x", nil); err == nil {
		t.Error("ftp:// accepted")
	}
}
