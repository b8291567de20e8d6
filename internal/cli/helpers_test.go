package cli

import (
	"context"
	"errors"
	"flag"
	"io"
	"strings"

	"github.com/kluis-nl/kluis/internal/locale"
)

func noEnv(string) string { return "" }

// english runs commands in English unless the environment chooses.
func english(getenv func(string) string) func(string) string {
	return func(k string) string {
		if k == "KLUIS_LANG" && getenv(k) == "" {
			return "en"
		}
		return getenv(k)
	}
}

// run runs a command line in-process, as Program.Run does, and returns its
// error before it is reported, so tests can look at its type and code.
// Standard input is empty and not a terminal.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	a, err := Program{Version: "test"}.newApp(english(getenv), Stdio{In: strings.NewReader(""), Out: stdout, Err: stderr})
	if err != nil {
		return err
	}
	return a.run(ctx, args)
}

// exitCode is the exit code Program.Run gives for err.
func exitCode(err error) int {
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	return (&app{p: locale.For(locale.EN)}).explain(err, "").code
}
