package cli

import (
	"io"
	"os"

	"golang.org/x/term"
)

// Stdio is what a command reads from and writes to. Commands use only
// these, never os.Stdin, os.Stdout or os.Stderr, so tests can drive them.
type Stdio struct {
	In  io.Reader
	Out io.Writer // results: what scripts read
	Err io.Writer // prompts, progress, notices and errors: what people read
	// Terminal is the terminal In reads from, or nil when In is a file or a
	// pipe. Passwords are read from it without echo.
	Terminal Terminal
	// Progress reports that Err is a terminal: progress lines are drawn
	// only there.
	Progress bool
}

// Terminal is the terminal a person types on.
type Terminal interface {
	// ReadPassword reads one line without showing what is typed.
	ReadPassword() ([]byte, error)
}

// OSStdio returns the process's standard streams, with the terminal of
// standard input if it is one.
func OSStdio() Stdio {
	return Stdio{
		In: os.Stdin, Out: os.Stdout, Err: os.Stderr,
		Terminal: TerminalOf(os.Stdin),
		Progress: term.IsTerminal(int(os.Stderr.Fd())),
	}
}

// TerminalOf returns f as a Terminal, or nil when f is not a terminal.
func TerminalOf(f *os.File) Terminal {
	if !term.IsTerminal(int(f.Fd())) {
		return nil
	}
	return fileTerminal{f}
}

type fileTerminal struct{ f *os.File }

func (t fileTerminal) ReadPassword() ([]byte, error) { return term.ReadPassword(int(t.f.Fd())) }
