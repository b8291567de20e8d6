package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"
)

const healthcheckUsage = `Usage:
  kluis healthcheck [--ready] [--url URL] [--timeout 5s]

Asks a running kluis serve whether it is alive (GET /healthz) or, with
--ready, whether it can serve requests (GET /readyz: the database and the
storage answer). Exits 0 if it answers 200 OK, 4 otherwise. Meant for
container health checks (images without curl or wget) and scripts.

  --url      the server's base address (default: derived from KLUIS_ADDR as
             kluis serve reads it: http://127.0.0.1:8080; https:// when
             KLUIS_TLS_CERT is set, verified against KLUIS_BASE_URL's host)
  --ready    check /readyz instead of /healthz
  --timeout  how long to wait for the answer (default 5s)

/healthz answers while the process runs; use it for liveness (a restart
helps). /readyz fails while the database or the storage is unreachable; use
it to take an instance out of a load balancer (a restart does not help).
`

func runHealthcheck(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("kluis healthcheck", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, healthcheckUsage) }
	base := fs.String("url", "", "server base address")
	ready := fs.Bool("ready", false, "check /readyz")
	timeout := fs.Duration("timeout", 5*time.Second, "how long to wait")
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	serverName := ""
	if *base == "" {
		var err error
		*base, serverName, err = localBase(getenv)
		if err != nil {
			return usageError{err}
		}
	}
	u, err := url.Parse(*base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return usageError{fmt.Errorf("--url %q: give http://HOST:PORT or https://HOST:PORT", *base)}
	}
	path := "/healthz"
	if *ready {
		path = "/readyz"
	}
	u.Path, u.RawQuery = path, ""
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil // a health check asks this server, never a proxy
	if serverName != "" {
		tr.TLSClientConfig = &tls.Config{ServerName: serverName, MinVersion: tls.VersionTLS12}
	}
	c := &http.Client{Transport: tr, Timeout: *timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return usageError{err}
	}
	resp, err := c.Do(req)
	if err != nil {
		return &cliError{code: exitNetwork, err: fmt.Errorf("health check %s: %w", u, err)}
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return &cliError{code: exitNetwork, err: fmt.Errorf("health check %s: %s", u, resp.Status)}
	}
	fmt.Fprintf(stdout, "%s: %s\n", u, resp.Status)
	return nil
}

// localBase derives the address of the local server from KLUIS_ADDR (a
// wildcard host becomes loopback) and, with KLUIS_TLS_CERT, the name its
// certificate is checked for (KLUIS_BASE_URL's host).
func localBase(getenv func(string) string) (base, serverName string, err error) {
	addr := envOr(getenv, "KLUIS_ADDR", "127.0.0.1:8080")
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", "", fmt.Errorf("KLUIS_ADDR %q: want HOST:PORT", addr)
	}
	switch host {
	case "", "0.0.0.0":
		host = "127.0.0.1"
	case "::":
		host = "::1"
	}
	scheme := "http"
	if getenv("KLUIS_TLS_CERT") != "" {
		scheme = "https"
		if b, err := url.Parse(getenv("KLUIS_BASE_URL")); err == nil && b.Hostname() != "" {
			serverName = b.Hostname()
		} else {
			return "", "", errors.New("KLUIS_TLS_CERT is set but KLUIS_BASE_URL is not: give --url https://NAME:PORT")
		}
	}
	return scheme + "://" + net.JoinHostPort(host, port), serverName, nil
}
