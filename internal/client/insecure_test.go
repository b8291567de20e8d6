package client

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

// TestPlainHTTPOnlyToThisComputer: a plain http:// server that is not on
// this computer is refused before any request, unless AllowInsecureHTTP
// is given; loopback and https:// need nothing.
func TestPlainHTTPOnlyToThisComputer(t *testing.T) {
	t.Parallel()
	for _, base := range []string{"http://kluis.example.nl", "http://10.0.0.5:8080", "http://192.168.1.1/kluis", "HTTP://kluis.example.nl", "http://localhost.example.nl", "http://127.0.0.1.example.nl", "http://[fe80::1]:8080"} {
		_, err := New(base, nil)
		var ie *InsecureError
		if !errors.As(err, &ie) || !strings.Contains(err.Error(), "unencrypted") {
			t.Errorf("New(%q): %v, want an InsecureError", base, err)
		}
		if _, err := New(base, nil, AllowInsecureHTTP()); err != nil {
			t.Errorf("New(%q, AllowInsecureHTTP()): %v", base, err)
		}
	}
	for _, base := range []string{"https://kluis.example.nl", "http://localhost:8080", "http://LOCALHOST.:1", "http://127.0.0.1:8080", "http://127.9.9.9", "http://[::1]:8080", "http://[::ffff:127.0.0.1]:80"} {
		if _, err := New(base, nil); err != nil {
			t.Errorf("New(%q): %v", base, err)
		}
	}
}

// TestNoRedirectToPlainHTTP: an https:// server that redirects to plain
// http:// on another computer does not get the Bearer token or the
// password sent on; with AllowInsecureHTTP the redirect is followed.
func TestNoRedirectToPlainHTTP(t *testing.T) {
	t.Parallel()
	var plainHits atomic.Int32
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		plainHits.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"session":"s"}`))
	}))
	defer plain.Close()
	secure := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "http://kluis.example.nl"+r.URL.Path, http.StatusPermanentRedirect)
	}))
	defer secure.Close()
	// Every connection to kluis.example.nl goes to the plain test server,
	// so nothing leaves this computer.
	hc := secure.Client()
	tr := hc.Transport.(*http.Transport).Clone()
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		if addr == "kluis.example.nl:80" {
			addr = plain.Listener.Addr().String()
		}
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}
	hc.Transport = tr

	c, err := New(secure.URL, hc)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Unlock(context.Background(), "abcde", "het wachtwoord")
	var ie *InsecureError
	if !errors.As(err, &ie) || !ie.Redirect || !strings.Contains(err.Error(), "http://kluis.example.nl") {
		t.Fatalf("redirect to http: %#v, want an InsecureError", err)
	}
	if n := plainHits.Load(); n != 0 {
		t.Fatalf("the plain http server got %d requests", n)
	}

	c, err = New(secure.URL, hc, AllowInsecureHTTP())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Unlock(context.Background(), "abcde", "het wachtwoord"); err != nil {
		t.Fatalf("with AllowInsecureHTTP: %v", err)
	}
	if n := plainHits.Load(); n != 1 {
		t.Fatalf("the plain http server got %d requests, want 1", n)
	}
}
