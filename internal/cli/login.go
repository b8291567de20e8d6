package cli

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/kluis-nl/kluis/internal/client"
)

// login is kluis login: verify an address as a sender with a mailed code,
// or (--sso) sign in with the organisation account.
func (a *app) login(ctx context.Context, args []string) error {
	f := a.flags("login", "cli.login.usage")
	server := f.serverFlags()
	email := f.String("email", "cli.ph.address", "cli.flag.email")
	name := f.String("name", "cli.ph.name", "cli.flag.name")
	phone := f.String("phone", "cli.ph.phone", "cli.flag.phone")
	sso := f.Bool("sso", "cli.flag.sso")
	browser := f.Bool("browser", "cli.flag.browser")
	lang := f.Lang("cli.flag.login_lang")
	pos, err := f.parse(args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return f.usageError("cli.login.no_email")
	}
	switch {
	case *sso && (*email != "" || *name != "" || *phone != ""):
		return f.usageError("cli.login.sso_and_email")
	case *browser && !*sso:
		return f.usageError("cli.login.browser_needs_sso")
	case !*sso && *email == "":
		return f.usageError("cli.login.no_email")
	}
	c, err := a.newClient(*server.url, server)
	if err != nil {
		return err
	}
	if *sso {
		return a.loginSSO(ctx, c, *browser, *lang)
	}
	v, err := c.StartVerification(ctx, *email, *name, *phone, *lang)
	if err != nil {
		var ae *client.APIError
		if errors.As(err, &ae) && slices.Contains(ae.Fields, "sso_required") {
			// Staff of the organisation sign in with its account.
			return &cliError{code: exitRefused, msg: a.p.T("cli.login.sso_required", *email), hint: a.p.T("cli.hint.sso_login"), err: err}
		}
		return a.explain(err, "sender")
	}
	digits := v.CodeDigits
	if digits == 0 {
		digits = 8
	}
	fmt.Fprintln(a.io.Err, a.p.T("cli.login.code_sent", digits, *email, a.p.Date(v.ExpiresAt)))
	code, err := a.readLine(a.p.T("cli.login.enter_code"))
	if err != nil {
		return a.fail(exitUsage, a.p.T("cli.hint.enter_code"), "cli.login.no_code")
	}
	l, err := c.Confirm(ctx, v.Verification, code)
	if err != nil {
		return a.explain(err, "login")
	}
	return a.storeLogin(c, l, *email)
}

// storeLogin keeps the token of l for c's server in the token file.
func (a *app) storeLogin(c *client.Client, l *client.Login, email string) error {
	tf, path, err := a.readTokens()
	if err != nil {
		return err
	}
	addr := email
	if l.Sender != nil && l.Sender.Email != "" {
		addr = l.Sender.Email
	}
	tf.Servers[serverKey(c.Base())] = storedLogin{Token: l.Token, Email: addr, ExpiresAt: l.ExpiresAt}
	if err := a.writeTokens(path, tf); err != nil {
		return err
	}
	fmt.Fprintln(a.io.Out, a.p.T("cli.login.done", addr, c.Base(), a.p.Date(l.ExpiresAt)))
	return nil
}

// logout is kluis logout: end the login here and at the server.
func (a *app) logout(ctx context.Context, args []string) error {
	f := a.flags("logout", "cli.logout.usage")
	server := f.serverFlags()
	pos, err := f.parse(args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return f.usageError("cli.err.no_arguments", "logout")
	}
	c, err := a.newClient(*server.url, server)
	if err != nil {
		return err
	}
	tf, path, err := a.readTokens()
	if err != nil {
		return err
	}
	key := serverKey(c.Base())
	l, ok := tf.Servers[key]
	if !ok {
		fmt.Fprintln(a.io.Out, a.p.T("cli.logout.not_logged_in", key))
		return nil
	}
	// Forget the token locally in any case; tell the server if it answers.
	delete(tf.Servers, key)
	if err := a.writeTokens(path, tf); err != nil {
		return err
	}
	if err := c.Logout(ctx, l.Token); err != nil {
		fmt.Fprintln(a.io.Err, "kluis: "+a.p.T("cli.logout.server_not_told", a.explain(err, "sender").msg))
	}
	fmt.Fprintln(a.io.Out, a.p.T("cli.logout.done", l.Email, key))
	return nil
}
