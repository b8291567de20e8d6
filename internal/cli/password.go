package cli

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// maxSecret bounds a password or link secret read from a file or standard
// input; a longer one is refused rather than cut short.
const maxSecret = 4096

// secretFlags are --password-file and --password-stdin.
type secretFlags struct {
	file  *string
	stdin *bool
}

// secretFlags defines --password-file FILE and --password-stdin.
func (f *flagSet) secretFlags() secretFlags {
	return secretFlags{
		file:  f.String("password-file", "cli.ph.file", "cli.flag.password_file"),
		stdin: f.Bool("password-stdin", "cli.flag.password_stdin"),
	}
}

// given reports whether a password flag was given.
func (s secretFlags) given() bool { return *s.file != "" || *s.stdin }

// errNoSecret is the error of readSecret when no flag was given and there
// is no terminal to ask on (or prompt is ""): the command says what to give.
var errNoSecret = errors.New("no password source")

// readSecret reads a password from --password-file, from --password-stdin
// (one trailing line break dropped from either), or else, when prompt is
// not "" and standard input is a terminal, from the terminal without echo
// after showing prompt on Err. The one place kluis reads passwords.
func (a *app) readSecret(f *flagSet, s secretFlags, prompt string) (string, error) {
	var v string
	switch {
	case *s.file != "" && *s.stdin:
		return "", f.usageError("cli.password.both")
	case *s.file != "":
		b, err := readLimited(func() (io.ReadCloser, error) { return os.Open(*s.file) })
		if err != nil {
			return "", f.usageError("cli.password.file", a.secretText(err))
		}
		v = trimOneNewline(string(b))
	case *s.stdin:
		b, err := readLimited(func() (io.ReadCloser, error) { return io.NopCloser(a.io.In), nil })
		if err != nil {
			return "", f.usageError("cli.password.stdin", a.secretText(err))
		}
		v = trimOneNewline(string(b))
	case prompt != "" && a.io.Terminal != nil:
		fmt.Fprint(a.io.Err, prompt)
		b, err := a.io.Terminal.ReadPassword()
		fmt.Fprintln(a.io.Err)
		if err != nil {
			return "", f.usageError("cli.password.terminal", err.Error())
		}
		v = string(b)
	default:
		return "", errNoSecret
	}
	if v == "" {
		return "", f.usageError("cli.password.empty")
	}
	return v, nil
}

var errSecretTooLong = errors.New("longer than the limit")

func readLimited(open func() (io.ReadCloser, error)) ([]byte, error) {
	r, err := open()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	b, err := io.ReadAll(io.LimitReader(r, maxSecret+2))
	if err == nil && len(trimOneNewline(string(b))) > maxSecret {
		err = errSecretTooLong
	}
	return b, err
}

func (a *app) secretText(err error) string {
	if errors.Is(err, errSecretTooLong) {
		return a.p.T("cli.password.too_long", maxSecret)
	}
	return a.fileText(err)
}

// readLine reads one line (a code) from standard input, showing prompt
// first when it is a terminal. The text is visible as it is typed.
func (a *app) readLine(prompt string) (string, error) {
	if a.io.Terminal != nil {
		fmt.Fprint(a.io.Err, prompt)
	}
	line, err := bufio.NewReader(a.io.In).ReadString('\n')
	if err != nil && !(errors.Is(err, io.EOF) && line != "") {
		return "", err
	}
	return strings.TrimSpace(line), nil
}

// trimOneNewline drops one trailing line break ("\n" or "\r\n").
func trimOneNewline(s string) string {
	if strings.HasSuffix(s, "\r\n") {
		return s[:len(s)-2]
	}
	return strings.TrimSuffix(s, "\n")
}
