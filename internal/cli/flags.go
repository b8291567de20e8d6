package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"regexp"
	"strings"
	"time"

	"github.com/kluis-nl/kluis/internal/locale"
)

// flagSet is the flags of one command: they may come before, between or
// after the arguments ("--" ends them), and --help and every parse error
// are in the person's language.
type flagSet struct {
	fs    *flag.FlagSet
	a     *app
	cmd   string // as typed after kluis: "send", "admin apikey create"
	usage string // catalog key of the synopsis and description
	help  []flagHelp
}

type flagHelp struct {
	name  string
	value string // placeholder of the value ("FILE"); "" for a switch
	text  string
}

// flags starts the flag set of cmd, whose help begins with the text of
// usageKey.
func (a *app) flags(cmd, usageKey string) *flagSet {
	fs := flag.NewFlagSet("kluis "+cmd, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors and help are written by parse
	fs.Usage = func() {}
	return &flagSet{fs: fs, a: a, cmd: cmd, usage: usageKey}
}

func (f *flagSet) describe(name, valueKey, textKey string, args []any) string {
	value := ""
	if valueKey != "" {
		value = f.a.p.T(valueKey)
	}
	text := f.a.p.T(textKey, args...)
	f.help = append(f.help, flagHelp{name: name, value: value, text: text})
	return text
}

// String defines --name VALUE (placeholder valueKey) described by textKey
// (formatted with args).
func (f *flagSet) String(name, valueKey, textKey string, args ...any) *string {
	return f.fs.String(name, "", f.describe(name, valueKey, textKey, args))
}

// StringDefault is String with a default value.
func (f *flagSet) StringDefault(name, def, valueKey, textKey string, args ...any) *string {
	return f.fs.String(name, def, f.describe(name, valueKey, textKey, args))
}

// Bool defines the switch --name.
func (f *flagSet) Bool(name, textKey string, args ...any) *bool {
	return f.fs.Bool(name, false, f.describe(name, "", textKey, args))
}

// Duration defines --name DURATION with a default.
func (f *flagSet) Duration(name string, def time.Duration, valueKey, textKey string, args ...any) *time.Duration {
	return f.fs.Duration(name, def, f.describe(name, valueKey, textKey, args))
}

// List defines --name LIST, which may repeat; each value may hold several
// entries separated by ';' or ','.
func (f *flagSet) List(name, valueKey, textKey string, args ...any) *listFlag {
	l := &listFlag{}
	f.fs.Var(l, name, f.describe(name, valueKey, textKey, args))
	return l
}

// listFlag collects repeated list flags.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error {
	for _, part := range strings.FieldsFunc(v, func(r rune) bool { return r == ';' || r == ',' }) {
		if s := strings.TrimSpace(part); s != "" {
			*l = append(*l, s)
		}
	}
	return nil
}

// parseNone is parse for a command that takes flags only: an argument that
// is not a flag is a usage error naming it.
func (f *flagSet) parseNone(args []string) error {
	pos, err := f.parse(args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return f.usageError("cli.err.unexpected_argument", pos[0])
	}
	return nil
}

// parse parses args and returns the arguments that are not flags. --help
// writes the help to Err and returns flag.ErrHelp (exit 0); a wrong flag
// is a usage error (exit 1) that points at --help.
func (f *flagSet) parse(args []string) ([]string, error) {
	var tail []string
	for i, a := range args {
		if a == "--" {
			tail = args[i+1:]
			args = args[:i]
			break
		}
	}
	var pos []string
	for {
		if err := f.fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				f.printHelp(f.a.io.Err)
				return nil, err
			}
			return nil, f.a.usageError(f.cmd, f.errorText(err))
		}
		args = f.fs.Args()
		if len(args) == 0 {
			break
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
	return append(pos, tail...), nil
}

// usageError is a usage error of this command.
func (f *flagSet) usageError(key string, args ...any) error {
	return f.a.usageError(f.cmd, f.a.p.T(key, args...))
}

func (f *flagSet) printHelp(w io.Writer) {
	fmt.Fprint(w, f.a.p.T(f.usage))
	if len(f.help) == 0 {
		return
	}
	fmt.Fprintf(w, "\n%s\n", f.a.p.T("cli.help.flags"))
	for _, h := range f.help {
		if h.value != "" {
			fmt.Fprintf(w, "  --%s %s\n", h.name, h.value)
		} else {
			fmt.Fprintf(w, "  --%s\n", h.name)
		}
		for _, l := range wrap(h.text, 70) {
			fmt.Fprintf(w, "        %s\n", l)
		}
	}
}

// wrap breaks text into lines of at most width runes where it can.
func wrap(text string, width int) []string {
	var lines []string
	var cur []string
	n := 0
	for _, w := range strings.Fields(text) {
		l := len([]rune(w))
		if n > 0 && n+1+l > width {
			lines = append(lines, strings.Join(cur, " "))
			cur, n = nil, 0
		}
		if n > 0 {
			n++
		}
		cur = append(cur, w)
		n += l
	}
	if len(cur) > 0 {
		lines = append(lines, strings.Join(cur, " "))
	}
	return lines
}

var invalidValue = regexp.MustCompile(`^invalid (?:boolean )?value (".*") for (?:flag )?-(\S+): (.*)$`)

// errorText says what is wrong with the flags in the person's language.
// The flag package's errors are English sentences; these are all of them.
func (f *flagSet) errorText(err error) string {
	s := err.Error()
	if rest, ok := strings.CutPrefix(s, "flag provided but not defined: -"); ok {
		return f.a.p.T("cli.flag.unknown", "--"+rest)
	}
	if rest, ok := strings.CutPrefix(s, "flag needs an argument: -"); ok {
		return f.a.p.T("cli.flag.needs_value", "--"+rest)
	}
	if rest, ok := strings.CutPrefix(s, "bad flag syntax: "); ok {
		return f.a.p.T("cli.flag.syntax", rest)
	}
	if m := invalidValue.FindStringSubmatch(s); m != nil {
		return f.a.p.T("cli.flag.invalid", m[1], "--"+m[2], m[3])
	}
	return s
}

// Lang defines --lang CODE: a language Kluis speaks (locale.Codes), kept
// as its code; any other value is a usage error before anything is sent.
func (f *flagSet) Lang(textKey string) *string {
	l := &langFlag{f: f}
	f.fs.Var(l, "lang", f.describe("lang", "cli.ph.lang", textKey, []any{strings.Join(locale.Codes(), ", ")}))
	return &l.code
}

type langFlag struct {
	f    *flagSet
	code string
}

func (l *langFlag) String() string { return l.code }
func (l *langFlag) Set(v string) error {
	lang, ok := locale.Parse(v)
	if !ok {
		return errors.New(l.f.a.p.T("cli.flag.lang_unknown", strings.Join(locale.Codes(), ", ")))
	}
	l.code = string(lang)
	return nil
}
