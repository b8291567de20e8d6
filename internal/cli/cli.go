// Package cli is the kluis command: the client commands (login, send,
// receive, status, revoke), the administration commands (kluis admin …,
// kluis migrate) and kluis healthcheck. kluis serve is wired in cmd/kluis
// and reached through Program.Serve.
//
// # Streams
//
// Commands read and write only the Stdio they are given: results on Out,
// prompts, progress and errors on Err, input on In, passwords from the
// Terminal without echo. Nothing reads os.Stdin or writes os.Stdout
// directly, so tests drive every command in-process.
//
// # Language
//
// Every text for people comes from the catalogs cli.json of package
// locale, in the language KLUIS_LANG names, else the one of LC_ALL,
// LC_MESSAGES or LANG (nl_NL.UTF-8 is Dutch), else English. Output made
// for programs (--json, the API key of kluis admin apikey create, the CSV
// of the audit export) is the same in every language.
//
// # Exit codes
//
// 0 success (also --help), 1 usage, 2 refused by the server's rules, 3
// authentication, 4 network, 5 integrity; see the README. Scripts rely on
// them.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/kluis-nl/kluis/internal/locale"
)

// Program is the kluis command.
type Program struct {
	// Version is printed by kluis version and sent in the User-Agent.
	Version string
	// Serve runs kluis serve with the arguments after "serve". It writes
	// its log to stderr. A nil Serve makes kluis serve a usage error.
	Serve func(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error
}

// app is what every command works with: the streams, the environment and
// the printer of the person's language.
type app struct {
	prog   Program
	getenv func(string) string
	io     Stdio
	p      *locale.Printer
	// wrapPart, if set, wraps every part file of kluis receive (tests).
	wrapPart func(*os.File) partFile
	// openURL opens an address in the person's browser (kluis login
	// --sso); tests replace it.
	openURL func(string) error
}

// Run runs the command line args (without the program's name) and returns
// the exit code. It reads the environment only through getenv and uses
// only the streams of stdio.
func (prog Program) Run(ctx context.Context, args []string, getenv func(string) string, stdio Stdio) int {
	a, err := prog.newApp(getenv, stdio)
	if err == nil {
		err = a.run(ctx, args)
	}
	return a.report(err)
}

func (prog Program) newApp(getenv func(string) string, stdio Stdio) (*app, error) {
	lang, err := chooseLang(getenv)
	return &app{prog: prog, getenv: getenv, io: stdio, p: locale.For(lang), openURL: openBrowser}, err
}

func (a *app) run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		fmt.Fprint(a.io.Err, a.p.T("cli.usage"))
		return a.usageError("", a.p.T("cli.err.no_command"))
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "serve":
		if a.prog.Serve == nil {
			return a.usageError("", a.p.T("cli.err.unknown_command", cmd))
		}
		return a.prog.Serve(ctx, rest, a.getenv, a.io.Out, a.io.Err)
	case "admin":
		return a.admin(ctx, rest)
	case "migrate":
		return a.migrate(ctx, rest)
	case "healthcheck":
		return a.healthcheck(ctx, rest)
	case "login":
		return a.login(ctx, rest)
	case "logout":
		return a.logout(ctx, rest)
	case "send":
		return a.send(ctx, rest)
	case "receive":
		return a.receive(ctx, rest)
	case "status":
		return a.status(ctx, rest)
	case "revoke":
		return a.revoke(ctx, rest)
	case "request":
		return a.request(ctx, rest)
	case "inbox":
		return a.inbox(ctx, rest)
	case "version", "--version", "-version":
		fmt.Fprintf(a.io.Out, "kluis %s\n", a.prog.Version)
		return nil
	case "help", "--help", "-help", "-h":
		fmt.Fprint(a.io.Out, a.p.T("cli.usage"))
		return nil
	}
	fmt.Fprint(a.io.Err, a.p.T("cli.usage"))
	return a.usageError("", a.p.T("cli.err.unknown_command", cmd))
}

// report writes err for the person (on Err) and returns the exit code.
func (a *app) report(err error) int {
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	ce := a.explain(err, "")
	// Errors can quote a server or a sender (a file name in a ZIP, a
	// path): a terminal shows them, it does not obey them.
	fmt.Fprintln(a.io.Err, "kluis: "+visible(ce.Error()))
	return ce.code
}
