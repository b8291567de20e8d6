// Command kluis is the Kluis server and its command-line tools in one
// binary. See `kluis help`.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "kluis:", err)
		os.Exit(exitCode(err))
	}
}

type usageError struct{ error }

const usage = `Kluis sends confidential files and messages securely.

Usage:
  kluis serve [flags]     start the server (kluis serve --help lists the flags)
  kluis admin apikey ...  issue and revoke API keys for scripts
  kluis admin policy check FILE   validate a policy file
  kluis admin audit export        export the audit log as CSV or JSON
  kluis admin rotate-master-key   re-seal the database under a new master key
  kluis admin export-identity TRANSFER   export a transfer's age identity (recovery)
  kluis migrate           apply database migrations and list them
  kluis healthcheck [--ready]   ask a running server for /healthz (or /readyz)
  kluis version           print the version

Client commands (each takes --server URL, else KLUIS_SERVER, else http://127.0.0.1:8080;
plain http:// only to this computer unless --insecure-http; kluis COMMAND --help lists
the flags):
  kluis login --email ADDRESS       verify your address as a sender (a code is mailed)
  kluis logout                      end the login
  kluis send --to LIST ... FILE...  send files; resumes an interrupted upload when run again
  kluis receive LINK [-o DIR]       download a link's files and read its message
  kluis status [TRANSFER]           your transfers, or per recipient what happened
  kluis revoke TRANSFER             revoke a transfer (or one --recipient)

Exit codes: 0 success, 1 usage, 2 refused by the server's rules (policy,
expired, revoked, ...), 3 authentication or wrong password, 4 network,
5 integrity (tampered or corrupt data).

`

// run is the whole program; main only wires the process to it.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return usageError{errors.New("no command given")}
	}
	switch args[0] {
	case "serve":
		return runServe(ctx, args[1:], getenv, stdout, stderr)
	case "admin":
		return runAdmin(ctx, args[1:], getenv, stdout, stderr)
	case "migrate":
		return runMigrate(ctx, args[1:], getenv, stdout, stderr)
	case "healthcheck":
		return runHealthcheck(ctx, args[1:], getenv, stdout, stderr)
	case "login":
		return runLogin(ctx, args[1:], getenv, stdout, stderr)
	case "logout":
		return runLogout(ctx, args[1:], getenv, stdout, stderr)
	case "send":
		return runSend(ctx, args[1:], getenv, stdout, stderr)
	case "receive":
		return runReceive(ctx, args[1:], getenv, stdout, stderr)
	case "status":
		return runStatus(ctx, args[1:], getenv, stdout, stderr)
	case "revoke":
		return runRevoke(ctx, args[1:], getenv, stdout, stderr)
	case "version", "--version", "-version":
		fmt.Fprintf(stdout, "kluis %s\n", version)
		return nil
	case "help", "--help", "-help", "-h":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return usageError{fmt.Errorf("unknown command %q", args[0])}
}
