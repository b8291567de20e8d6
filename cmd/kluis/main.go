// Command kluis is the Kluis server and its command-line tools in one
// binary. See `kluis help`. The commands live in internal/cli; this
// package wires kluis serve and the process to them.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/kluis-nl/kluis/internal/cli"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// program is the kluis command with kluis serve wired in.
var program = cli.Program{Version: version, Serve: runServe}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := program.Run(ctx, os.Args[1:], os.Getenv, cli.OSStdio())
	stop()
	os.Exit(code)
}
