package sms_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kluis-nl/kluis/internal/sms"
)

func TestParsePhone(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		in, want string
		err      error
	}{
		{"+31 6 1234 5678", "+31612345678", nil},
		{"0031-6-12345678", "+31612345678", nil},
		{"+49 (151) 234.567.89", "+4915123456789", nil},
		{"06 12345678", "", sms.ErrPhoneCountry},
		{"", "", sms.ErrPhoneEmpty},
		{"+31 6 1234abcd", "", sms.ErrPhoneInvalid},
		{"+3161", "", sms.ErrPhoneInvalid},
		{"+0612345678", "", sms.ErrPhoneInvalid},
		{"+31612345678\n", "+31612345678", nil},
		{"+3161234567\r\n8", "", sms.ErrPhoneInvalid},
	} {
		got, err := sms.ParsePhone(c.in)
		if got != c.want || !errors.Is(err, c.err) {
			t.Errorf("ParsePhone(%q) = %q, %v; want %q, %v", c.in, got, err, c.want, c.err)
		}
	}
}

func TestMask(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"+31612345678":   "+31 6 •••• ••78",
		"+4915123456789": "+49 1 •• •••• ••89",
	} {
		if got := sms.Mask(in); got != want {
			t.Errorf("Mask(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestHTTPGateway: the request carries the headers of the file and the
// body of the template, encoded; a non-2xx answer is an error that names
// neither the number nor the text.
func TestHTTPGateway(t *testing.T) {
	t.Parallel()
	var gotBody, gotType, gotAuth string
	status := http.StatusOK
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		gotBody, gotType, gotAuth = string(b), r.Header.Get("Content-Type"), r.Header.Get("Authorization")
		w.WriteHeader(status)
	}))
	defer srv.Close()
	hf := filepath.Join(t.TempDir(), "headers")
	if err := os.WriteFile(hf, []byte("# credentials\nAuthorization: AccessKey abc\n\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	h, err := sms.ReadHeaders(hf)
	if err != nil {
		t.Fatal(err)
	}
	g, err := sms.NewHTTP(sms.Config{URL: srv.URL, Headers: h, Body: `{"recipients": [{{.To}}], "body": {{.Text}}}`})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Send(context.Background(), "+31612345678", `Gemeente "Test": 123456`); err != nil {
		t.Fatal(err)
	}
	if want := `{"recipients": ["+31612345678"], "body": "Gemeente \"Test\": 123456"}`; gotBody != want || gotType != "application/json" || gotAuth != "AccessKey abc" {
		t.Errorf("request %q %q %q, want %q", gotBody, gotType, gotAuth, want)
	}
	f, err := sms.NewHTTP(sms.Config{URL: srv.URL, Encoding: sms.EncodingForm, Body: "To={{.To}}&Body={{.Text}}"})
	if err != nil {
		t.Fatal(err)
	}
	status = http.StatusUnauthorized
	err = f.Send(context.Background(), "+31612345678", "code 123456")
	if err == nil || strings.Contains(err.Error(), "31612345678") || strings.Contains(err.Error(), "123456") {
		t.Errorf("refused send: %v", err)
	}
	if gotBody != "To=%2B31612345678&Body=code+123456" || gotType != "application/x-www-form-urlencoded" {
		t.Errorf("form request %q %q", gotBody, gotType)
	}
	for _, bad := range []sms.Config{
		{URL: "ftp://x", Body: "{}"},
		{URL: srv.URL, Body: `{"to": "{{.To}}"}`},
		{URL: srv.URL, Body: "{{.Phone}}"},
		{URL: srv.URL, Body: "x", Encoding: "xml"},
		{URL: srv.URL},
	} {
		if _, err := sms.NewHTTP(bad); err == nil {
			t.Errorf("NewHTTP(%+v) accepted", bad)
		}
	}
	os.WriteFile(hf, []byte("no colon here\n"), 0o600)
	if _, err := sms.ReadHeaders(hf); err == nil || !strings.Contains(err.Error(), "line 1") {
		t.Errorf("bad headers file: %v", err)
	}
}

// TestStatusErrorPermanent: a gateway's 4xx refuses the message for good,
// except 408, 425 and 429; a 5xx is worth another try. The error names the
// status only.
func TestStatusErrorPermanent(t *testing.T) {
	for code, want := range map[int]bool{400: true, 401: true, 404: true, 422: true, 408: false, 425: false, 429: false, 500: false, 503: false} {
		var got int
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got++; w.WriteHeader(code) }))
		g, err := sms.NewHTTP(sms.Config{URL: srv.URL, Body: `{"to": {{.To}}, "text": {{.Text}}}`})
		if err != nil {
			t.Fatal(err)
		}
		err = g.Send(context.Background(), "+31699887766", "geheime tekst")
		srv.Close()
		var se *sms.StatusError
		if got != 1 || !errors.As(err, &se) || se.Code != code || se.Permanent() != want {
			t.Errorf("%d: %v (permanent %v), want permanent %v", code, err, se != nil && se.Permanent(), want)
		}
		if err != nil && (strings.Contains(err.Error(), "9988") || strings.Contains(err.Error(), "geheime")) {
			t.Errorf("%d: the error %q names the number or the text", code, err)
		}
	}
}
