package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/term"

	"github.com/kluis-nl/kluis/internal/locale"
)

func termIsTerminal(fd int) bool { return term.IsTerminal(fd) }

const loginUsage = `Usage: kluis login --email ADDRESS [--name NAME] [--phone PHONE] [--lang CODE] [--server URL] [--insecure-http]

Verifies your e-mail address as a sender: the server mails you a code, and
you type it here (or give it as one line on standard input). The login is
stored in your configuration folder (kluis/token.json, readable only by you)
and lasts as long as a verification in the browser.
`

func runLogin(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlags("kluis login", loginUsage, stderr)
	server := serverFlag(fs, getenv)
	email := fs.String("email", "", "your e-mail `ADDRESS`")
	name := fs.String("name", "", "your `NAME`, shown to recipients")
	phone := fs.String("phone", "", "your `PHONE` number, shown to recipients")
	lang := fs.String("lang", "", "language of the code mail and your later mails, as its `CODE`: "+strings.Join(locale.Codes(), ", ")+" (default nl)")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return flagErr(err)
	}
	if len(pos) > 0 || *email == "" {
		fs.Usage()
		return usageError{errors.New("give your e-mail address with --email ADDRESS")}
	}
	if *lang != "" {
		l, ok := locale.Parse(*lang)
		if !ok {
			return usageError{fmt.Errorf("--lang %q is not a language Kluis speaks: use one of %s", *lang, strings.Join(locale.Codes(), ", "))}
		}
		*lang = string(l)
	}
	c, err := newClient(*server.url, server)
	if err != nil {
		return err
	}
	v, err := c.StartVerification(ctx, *email, *name, *phone, *lang)
	if err != nil {
		return explain(err, "sender")
	}
	digits := v.CodeDigits
	if digits == 0 {
		digits = 8
	}
	fmt.Fprintf(stderr, "A code of %d digits was sent to %s. It is valid until %s.\n", digits, *email, v.ExpiresAt.Local().Format("15:04"))
	var code string
	if isTerminal(os.Stdin) {
		fmt.Fprint(stderr, "Enter the code: ")
	}
	line, err := bufio.NewReader(os.Stdin).ReadString('\n')
	if err != nil && !(errors.Is(err, io.EOF) && line != "") {
		return fail(exitUsage, "Type the code from the e-mail, or give it as one line on standard input.", "no code was entered")
	}
	code = strings.TrimSpace(line)
	l, err := c.Confirm(ctx, v.Verification, code)
	if err != nil {
		return explain(err, "login")
	}
	tf, path, err := readTokens(getenv)
	if err != nil {
		return err
	}
	addr := *email
	if l.Sender != nil && l.Sender.Email != "" {
		addr = l.Sender.Email
	}
	tf.Servers[serverKey(c.Base())] = storedLogin{Token: l.Token, Email: addr, ExpiresAt: l.ExpiresAt}
	if err := writeTokens(path, tf); err != nil {
		return fmt.Errorf("storing the login: %w", err)
	}
	fmt.Fprintf(stdout, "Logged in as %s at %s until %s.\n", addr, c.Base(), l.ExpiresAt.Local().Format("2006-01-02 15:04"))
	return nil
}

const logoutUsage = `Usage: kluis logout [--server URL] [--insecure-http]

Ends your login at the server and removes it from this computer.
`

func runLogout(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlags("kluis logout", logoutUsage, stderr)
	server := serverFlag(fs, getenv)
	pos, err := parseArgs(fs, args)
	if err != nil {
		return flagErr(err)
	}
	if len(pos) > 0 {
		fs.Usage()
		return usageError{errors.New("kluis logout takes no arguments")}
	}
	c, err := newClient(*server.url, server)
	if err != nil {
		return err
	}
	tf, path, err := readTokens(getenv)
	if err != nil {
		return err
	}
	key := serverKey(c.Base())
	l, ok := tf.Servers[key]
	if !ok {
		fmt.Fprintf(stdout, "You were not logged in at %s.\n", key)
		return nil
	}
	// Forget the token locally in any case; tell the server if it answers.
	delete(tf.Servers, key)
	if err := writeTokens(path, tf); err != nil {
		return err
	}
	if err := c.Logout(ctx, l.Token); err != nil {
		fmt.Fprintf(stderr, "kluis: removed the login from this computer, but the server could not be told (%v); it ends by itself.\n", err)
	}
	fmt.Fprintf(stdout, "Logged out %s at %s.\n", l.Email, key)
	return nil
}
