package cli

import (
	"context"
	"errors"
	"fmt"
	"html"
	"net"
	"net/http"
	"net/url"
	"os/exec"
	"runtime"
	"time"

	"github.com/kluis-nl/kluis/internal/client"
)

// loginSSO is kluis login --sso: staff sign in with the organisation's
// identity provider, through the server (which is the client at the
// provider and keeps the refresh token for the re-checks). The device
// sign-in (RFC 8628) where the provider offers it: the person opens an
// address on any device and types a code. Otherwise, or with --browser,
// the browser on this computer with a loopback redirect (RFC 8252): a
// listener on 127.0.0.1 receives the provider's answer. Never a password
// typed here. The token lasts at most 30 days and the server re-checks the
// account at the provider regularly, so a disabled account loses it.
func (a *app) loginSSO(ctx context.Context, c *client.Client, browser bool, lang string) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer ln.Close()
	redirect := "http://" + ln.Addr().String() + "/callback"
	method := ""
	if browser {
		method = "browser"
	}
	st, err := c.StartSSO(ctx, redirect, method, lang)
	var ae *client.APIError
	if errors.As(err, &ae) && ae.Code == "not_found" {
		return &cliError{code: exitRefused, msg: a.p.T("cli.login.sso_off", c.Base()), hint: a.p.T("cli.hint.login_email"), err: err}
	}
	if err != nil {
		return a.explain(err, "")
	}
	var l *client.Login
	switch st.Method {
	case "device":
		ln.Close()
		l, err = a.ssoDevice(ctx, c, st)
	case "browser":
		l, err = a.ssoBrowser(ctx, c, st, ln)
	default:
		return a.explain(fmt.Errorf("%w: sign-in method %q", client.ErrUnexpectedAnswer, st.Method), "")
	}
	if err != nil {
		return err
	}
	return a.storeLogin(c, l, "")
}

// ssoDevice shows where to sign in and polls the server until the person
// did (the server waits for the provider up to 20 s per request).
func (a *app) ssoDevice(ctx context.Context, c *client.Client, st *client.SSOStart) (*client.Login, error) {
	fmt.Fprintln(a.io.Err, a.p.T("cli.login.device", st.VerificationURI, st.UserCode))
	if st.VerificationURIComplete != "" {
		fmt.Fprintln(a.io.Err, a.p.T("cli.login.device_complete", st.VerificationURIComplete))
	}
	fmt.Fprintln(a.io.Err, a.p.T("cli.login.waiting", a.p.Date(st.ExpiresAt)))
	wait := time.Duration(max(st.Interval, 1)) * time.Second
	for {
		l, err := c.FinishSSO(ctx, st.Handle, "", "", "")
		if err != nil {
			return nil, a.explain(err, "sso")
		}
		if l != nil {
			return l, nil
		}
		select {
		case <-ctx.Done():
			return nil, a.explain(ctx.Err(), "")
		case <-time.After(wait):
		}
	}
}

// ssoBrowser opens the browser at the provider and waits on ln for the
// provider to send the browser back with a code, then hands the code to
// the server.
func (a *app) ssoBrowser(ctx context.Context, c *client.Client, st *client.SSOStart, ln net.Listener) (*client.Login, error) {
	au, err := url.Parse(st.AuthURL)
	if err != nil {
		return nil, a.explain(fmt.Errorf("%w: %w", client.ErrUnexpectedAnswer, err), "")
	}
	want := au.Query().Get("state")
	got := make(chan url.Values, 1)
	srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if r.URL.Path != "/callback" || q.Get("state") != want || want == "" {
			http.NotFound(w, r)
			return
		}
		key := "cli.login.browser_done"
		if q.Get("error") != "" || q.Get("code") == "" {
			key = "cli.login.browser_failed"
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		text := html.EscapeString(a.p.T(key))
		fmt.Fprintf(w, "<!doctype html><html lang=%q><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\"><title>Kluis</title></head><body><main><h1>Kluis</h1><p>%s</p></main></body></html>", a.p.Lang(), text)
		select {
		case got <- q:
		default:
		}
	})}
	go srv.Serve(ln)
	defer srv.Close()
	fmt.Fprintln(a.io.Err, a.p.T("cli.login.browser", st.AuthURL))
	if err := a.openURL(st.AuthURL); err != nil {
		fmt.Fprintln(a.io.Err, a.p.T("cli.login.browser_not_opened"))
	}
	timer := time.NewTimer(time.Until(st.ExpiresAt))
	defer timer.Stop()
	var q url.Values
	select {
	case q = <-got:
	case <-ctx.Done():
		return nil, a.explain(ctx.Err(), "")
	case <-timer.C:
		return nil, a.fail(exitAuth, a.p.T("cli.hint.sso_again"), "cli.login.browser_timeout")
	}
	l, err := c.FinishSSO(ctx, st.Handle, q.Get("state"), q.Get("code"), q.Get("error"))
	if err != nil {
		return nil, a.explain(err, "sso")
	}
	if l == nil {
		return nil, a.explain(fmt.Errorf("%w: a browser sign-in still pending", client.ErrUnexpectedAnswer), "")
	}
	return l, nil
}

// openBrowser opens u in the person's browser without waiting for it.
func openBrowser(u string) error {
	var cmd *exec.Cmd
	switch runtime.GOOS {
	case "darwin":
		cmd = exec.Command("open", u)
	case "windows":
		cmd = exec.Command("rundll32", "url.dll,FileProtocolHandler", u)
	default:
		cmd = exec.Command("xdg-open", u)
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	go cmd.Wait()
	return nil
}
