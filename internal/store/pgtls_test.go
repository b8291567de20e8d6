package store

import (
	"context"
	"errors"
	"io"
	"net"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kluis-nl/kluis/internal/store/storetest"
)

// TestResolvePostgresTLS (issue 11 item 15): the decision table of the TLS
// rule, on the configuration pgx will really use. No sslmode and a host
// that is not loopback or a socket: verify-full (TLS, no plain fallback,
// certificate and host name checked). An explicit sslmode is honoured, and
// the weak ones are warned about; local hosts keep libpq's default.
func TestResolvePostgresTLS(t *testing.T) {
	t.Setenv("PGSSLMODE", "")
	for _, c := range []struct {
		dsn      string
		mode     string
		explicit bool
		local    bool
		warn     string // in the warning; "" for none
	}{
		{"postgres://kluis:geheim@db.example.nl/kluis", "verify-full", false, false, ""},
		{"postgres://kluis:geheim@db.example.nl:6543/kluis?connect_timeout=5", "verify-full", false, false, ""},
		{"postgresql://kluis@10.0.0.5/kluis", "verify-full", false, false, ""},
		{"postgres://kluis@[2001:db8::5]:5432/kluis", "verify-full", false, false, ""},
		{"postgres://kluis@127.0.0.1.nip.io/kluis", "verify-full", false, false, ""},
		// One remote host among several: the whole URL is remote.
		{"postgres://kluis@127.0.0.1:5432,db.example.nl:5432/kluis", "verify-full", false, false, ""},
		{"postgres://kluis@127.0.0.1/kluis", "prefer", false, true, ""},
		{"postgres://kluis@127.9.9.9/kluis", "prefer", false, true, ""},
		{"postgres://kluis@localhost:55432/kluis", "prefer", false, true, ""},
		{"postgres://kluis@[::1]/kluis", "prefer", false, true, ""},
		{"postgres:///kluis?host=/var/run/postgresql", "disable", false, true, ""},
		{"postgres://kluis@db.example.nl/kluis?sslmode=verify-full", "verify-full", true, false, ""},
		{"postgres://kluis@db.example.nl/kluis?sslmode=disable", "disable", true, false, "without TLS"},
		{"postgres://kluis@db.example.nl/kluis?sslmode=allow", "allow", true, false, "without TLS"},
		{"postgres://kluis@db.example.nl/kluis?sslmode=prefer", "prefer", true, false, "without TLS"},
		{"postgres://kluis@db.example.nl/kluis?sslmode=require", "require", true, false, "does not check the server's certificate"},
		{"postgres://kluis@db.example.nl/kluis?ssl=true", "require", true, false, "does not check the server's certificate"},
		{"postgres://kluis@db.example.nl/kluis?sslmode=verify-ca", "verify-ca", true, false, "not that it names the host"},
		{"postgres://kluis@127.0.0.1/kluis?sslmode=disable", "disable", true, true, ""},
		{"postgres://kluis@127.0.0.1/kluis?sslmode=verify-full", "verify-full", true, true, ""},
	} {
		cfg, got, err := ResolvePostgres(c.dsn)
		if err != nil {
			t.Errorf("%s: %v", c.dsn, err)
			continue
		}
		if got.Mode != c.mode || got.Explicit != c.explicit || got.Local != c.local {
			t.Errorf("%s: %+v, want mode %s, explicit %v, local %v", c.dsn, got, c.mode, c.explicit, c.local)
		}
		if w := got.Warning(); (c.warn == "") != (w == "") || !strings.Contains(w, c.warn) {
			t.Errorf("%s: warning %q, want one with %q", c.dsn, w, c.warn)
		}
		if strings.Contains(got.Warning(), "geheim") {
			t.Errorf("%s: the warning shows the password", c.dsn)
		}
		// What pgx will do: verify-full has no plain fallback and checks
		// the certificate against the host name.
		if got.Mode == "verify-full" {
			if cfg.TLSConfig == nil || cfg.TLSConfig.InsecureSkipVerify || cfg.TLSConfig.ServerName != cfg.Host {
				t.Errorf("%s: the first connection does not check the certificate against the host name", c.dsn)
			}
			for _, f := range cfg.Fallbacks {
				if f.TLSConfig == nil || f.TLSConfig.InsecureSkipVerify || f.TLSConfig.ServerName != f.Host {
					t.Errorf("%s: the attempt on %s would be plain text or unchecked", c.dsn, f.Host)
				}
			}
		}
	}

	// PGSSLMODE counts as an explicit choice.
	t.Setenv("PGSSLMODE", "require")
	if _, got, err := ResolvePostgres("postgres://kluis@db.example.nl/kluis"); err != nil || got.Mode != "require" || !got.Explicit {
		t.Errorf("with PGSSLMODE=require: %+v %v", got, err)
	}
	t.Setenv("PGSSLMODE", "")

	for _, bad := range []string{
		"postgres://kluis:geheim@db.example.nl/kluis?sslmode=verify",
		"postgres://kluis:geheim@db.example.nl:99999/kluis",
		"mysql://kluis:geheim@db.example.nl/kluis",
		"postgres://kluis:geheim@db.example.nl/kluis\x7f",
	} {
		_, _, err := ResolvePostgres(bad)
		if err == nil {
			t.Errorf("%q accepted", bad)
		} else if strings.Contains(err.Error(), "geheim") || strings.Contains(err.Error(), "db.example.nl") {
			t.Errorf("%q: the error shows the URL: %v", bad, err)
		}
	}
}

// TestPostgresTLSRefusedForRemoteHost (issue 11 item 15): a URL without
// sslmode whose host is not loopback does not fall back to plain text. The
// test server speaks no TLS; it is reached through a TCP relay on one of
// this machine's non-loopback addresses, so Kluis sees a remote host. With
// sslmode=disable named explicitly the same path connects; on loopback the
// default still connects.
func TestPostgresTLSRefusedForRemoteHost(t *testing.T) {
	dsn := storetest.Postgres(t)
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Del("sslmode")
	u.RawQuery = q.Encode()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	t.Setenv("PGSSLMODE", "")

	// On loopback, without sslmode: libpq's default, which connects to a
	// server without TLS.
	db, err := OpenPostgres(ctx, u.String())
	if err != nil {
		t.Fatalf("loopback without sslmode: %v", err)
	}
	db.Close()

	relay := startRelay(t, u.Host)
	remote := *u
	remote.Host = relay
	db, err = OpenPostgres(ctx, remote.String())
	if err == nil {
		db.Close()
		t.Fatalf("%s (a non-loopback address) without sslmode: connected without TLS", relay)
	}
	if !strings.Contains(err.Error(), "TLS") {
		t.Errorf("refusal does not say why: %v", err)
	}
	t.Logf("refused: %v", err)

	q.Set("sslmode", "disable")
	remote.RawQuery = q.Encode()
	db, err = OpenPostgres(ctx, remote.String())
	if err != nil {
		t.Fatalf("explicit sslmode=disable through the relay: %v", err)
	}
	db.Close()
}

// startRelay forwards TCP connections from one of this machine's
// non-loopback addresses to target; it skips the test if there is none.
func startRelay(t *testing.T, target string) string {
	t.Helper()
	var ip net.IP
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && !n.IP.IsLinkLocalUnicast() && n.IP.To4() != nil {
			ip = n.IP
			break
		}
	}
	if ip == nil {
		t.Skip("no non-loopback IPv4 address on this machine to relay through")
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(ip.String(), "0"))
	if err != nil {
		t.Skipf("cannot listen on %s: %v", ip, err)
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns []net.Conn
	)
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			mu.Lock()
			conns = append(conns, c, s)
			mu.Unlock()
			wg.Add(2)
			pipe := func(dst, src net.Conn) {
				defer wg.Done()
				_, err := io.Copy(dst, src)
				if err != nil && !errors.Is(err, net.ErrClosed) {
					t.Logf("relay: %v", err)
				}
				dst.Close()
				src.Close()
			}
			go pipe(s, c)
			go pipe(c, s)
		}
	}()
	return ln.Addr().String()
}
