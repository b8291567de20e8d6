package cli

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/kluis-nl/kluis/internal/config"
)

// healthcheck is kluis healthcheck: ask a running kluis serve for /healthz
// (or /readyz). Exit 0 on 200 OK, 4 otherwise.
func (a *app) healthcheck(ctx context.Context, args []string) error {
	f := a.flags("healthcheck", "cli.healthcheck.usage")
	base := f.String("url", "cli.ph.url", "cli.flag.healthcheck_url")
	ready := f.Bool("ready", "cli.flag.ready")
	timeout := f.Duration("timeout", 5*time.Second, "cli.ph.duration", "cli.flag.timeout")
	if err := f.parseNone(args); err != nil {
		return err
	}
	serverName := ""
	if *base == "" {
		var err error
		if *base, serverName, err = a.localBase(); err != nil {
			return f.usageError("cli.healthcheck.no_base", err.Error())
		}
	}
	u, err := url.Parse(*base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return f.usageError("cli.healthcheck.bad_url", *base)
	}
	u.Path, u.RawQuery = "/healthz", ""
	if *ready {
		u.Path = "/readyz"
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil // a health check asks this server, never a proxy
	if serverName != "" {
		tr.TLSClientConfig = &tls.Config{ServerName: serverName, MinVersion: tls.VersionTLS12}
	}
	c := &http.Client{Transport: tr, Timeout: *timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return f.usageError("cli.healthcheck.bad_url", *base)
	}
	resp, err := c.Do(req)
	if err != nil {
		return a.fail(exitNetwork, "", "cli.healthcheck.failed", u.String(), err.Error())
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return a.fail(exitNetwork, "", "cli.healthcheck.failed", u.String(), resp.Status)
	}
	fmt.Fprintf(a.io.Out, "%s: %s\n", u, resp.Status)
	return nil
}

// localBase derives the address of the local server as kluis serve reads
// it: KLUIS_ADDR (a wildcard host becomes loopback) and, with
// KLUIS_TLS_CERT, the name its certificate is checked for (KLUIS_BASE_URL's
// host).
func (a *app) localBase() (base, serverName string, err error) {
	addr := a.getenv("KLUIS_ADDR")
	if addr == "" {
		addr = config.DefaultAddr
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", "", errors.New(a.p.T("cli.healthcheck.bad_addr", addr))
	}
	switch host {
	case "", "0.0.0.0":
		host = "127.0.0.1"
	case "::":
		host = "::1"
	}
	scheme := "http"
	if a.getenv("KLUIS_TLS_CERT") != "" {
		scheme = "https"
		b, err := url.Parse(a.getenv("KLUIS_BASE_URL"))
		if err != nil || b.Hostname() == "" {
			return "", "", errors.New(a.p.T("cli.healthcheck.no_base_url"))
		}
		serverName = b.Hostname()
	}
	return scheme + "://" + net.JoinHostPort(host, port), serverName, nil
}
