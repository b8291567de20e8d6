package cli

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kluis-nl/kluis/internal/locale"
)

func TestChooseLang(t *testing.T) {
	for _, tc := range []struct {
		env  map[string]string
		want locale.Lang
		err  bool
	}{
		{nil, locale.EN, false},
		{map[string]string{"LANG": "nl_NL.UTF-8"}, locale.NL, false},
		{map[string]string{"LANG": "nl_BE@euro"}, locale.NL, false},
		{map[string]string{"LANG": "en_GB.UTF-8", "LC_MESSAGES": "nl_NL"}, locale.NL, false},
		{map[string]string{"LANG": "nl_NL.UTF-8", "LC_ALL": "C"}, locale.EN, false},           // LC_ALL decides, and C is no language
		{map[string]string{"LANG": "nl_NL.UTF-8", "LC_ALL": "de_DE.UTF-8"}, locale.EN, false}, // not one the client speaks
		{map[string]string{"LANG": "nl_NL.UTF-8", "KLUIS_LANG": "en"}, locale.EN, false},
		{map[string]string{"LC_ALL": "C", "KLUIS_LANG": "NL"}, locale.NL, false},
		{map[string]string{"KLUIS_LANG": "fr"}, locale.EN, true},
		{map[string]string{"KLUIS_LANG": "klingon"}, locale.EN, true},
	} {
		got, err := chooseLang(func(k string) string { return tc.env[k] })
		if got != tc.want || (err != nil) != tc.err {
			t.Errorf("%v: %s, %v; want %s, error %v", tc.env, got, err, tc.want, tc.err)
		}
		if err != nil && exitCode(err) != exitUsage {
			t.Errorf("%v: exit %d, want %d", tc.env, exitCode(err), exitUsage)
		}
	}
	// Through Run: the error is in English and names the languages.
	var errOut bytes.Buffer
	code := Program{}.Run(context.Background(), []string{"help"}, func(k string) string {
		return map[string]string{"KLUIS_LANG": "fr"}[k]
	}, Stdio{In: strings.NewReader(""), Out: &bytes.Buffer{}, Err: &errOut})
	if code != exitUsage || !strings.Contains(errOut.String(), `KLUIS_LANG "fr" is not a language this command speaks (nl, en)`) {
		t.Errorf("exit %d:\n%s", code, errOut.String())
	}
}

// Wrong flags are usage errors in the person's language that point at the
// command's help.
func TestFlagErrors(t *testing.T) {
	for _, tc := range []struct {
		lang string
		args []string
		want string
	}{
		{"en", []string{"send", "--nope"}, "There is no flag --nope.\nSee `kluis send --help`."},
		{"nl", []string{"send", "--nope"}, "De optie --nope bestaat niet.\nZie `kluis send --help`."},
		{"en", []string{"receive", "link", "-o"}, "The flag --o needs a value."},
		{"nl", []string{"status", "--json=misschien"}, `De waarde "misschien" van --json klopt niet`},
		{"en", []string{"healthcheck", "--timeout", "soon"}, `The value "soon" of --timeout is not valid`},
		{"en", []string{"admin", "apikey", "list", "---x"}, "---x is not a flag."},
		{"en", []string{"send", "--to", "a@example.nl", "--password-generate", "--recipient-login", "a@example.nl", "x.txt"},
			`--recipient-login "a@example.nl": write it as ADDRESS=PROVIDER or ADDRESS=PROVIDER:VALUE`},
		{"nl", []string{"send", "--to", "a@example.nl", "--password-generate", "--recipient-login", "a@example.nl=:x", "x.txt"},
			`--recipient-login "a@example.nl=:x": schrijf het als ADRES=DIENST`},
		{"en", []string{"send", "--to", "a@example.nl", "--password-generate", "--recipient-phone", "a@example.nl", "x.txt"},
			`--recipient-phone "a@example.nl": write it as ADDRESS=NUMBER, for example burger@example.nl=+31612345678`},
		{"nl", []string{"send", "--to", "a@example.nl", "--password-generate", "--recipient-phone", "=+31612345678", "x.txt"},
			`--recipient-phone "=+31612345678": schrijf het als ADRES=NUMMER`},
		{"en", []string{"request", "--to", "a@example.nl", "--message", "x", "--mobile", "a@example.nl="},
			`--mobile "a@example.nl=": write NUMBER (one address) or ADDRESS=NUMBER`},
		{"nl", []string{"request", "--to", "a@example.nl", "--message", "x", "--mobile", "+31612345678", "--mobile", "+31687654321"},
			`--mobile "+31687654321": schrijf NUMMER (één adres) of ADRES=NUMMER, één keer per adres`},
	} {
		var out, errOut bytes.Buffer
		err := run(context.Background(), tc.args, func(k string) string {
			if k == "KLUIS_LANG" {
				return tc.lang
			}
			return ""
		}, &out, &errOut)
		if exitCode(err) != exitUsage || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s %v: exit %d, %v; want %q", tc.lang, tc.args, exitCode(err), err, tc.want)
		}
	}
}

func TestReadSecret(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	long := strings.Repeat("x", maxSecret)
	for _, tc := range []struct {
		name  string
		file  string
		stdin *string
		want  string
		err   string // a part of the error; "none" for errNoSecret
	}{
		{name: "file, one newline dropped", file: write("a", "geheim\n\n"), want: "geheim\n"},
		{name: "file, CRLF", file: write("b", "geheim\r\n"), want: "geheim"},
		{name: "file at the limit", file: write("c", long+"\n"), want: long},
		{name: "file over the limit", file: write("d", long+"x"), err: "longer than 4096"},
		{name: "missing file", file: filepath.Join(dir, "none"), err: "does not exist"},
		{name: "empty file", file: write("e", "\n"), err: "empty"},
		{name: "stdin", stdin: ptr("van stdin\n"), want: "van stdin"},
		{name: "stdin over the limit", stdin: ptr(long + "xy"), err: "longer than 4096"},
		{name: "both", file: write("f", "x"), stdin: ptr("y"), err: "not both"},
		{name: "no source, no terminal", err: "none"},
	} {
		in := ""
		if tc.stdin != nil {
			in = *tc.stdin
		}
		a := &app{getenv: noEnv, p: locale.For(locale.EN), io: Stdio{In: strings.NewReader(in), Out: &bytes.Buffer{}, Err: &bytes.Buffer{}}}
		f := a.flags("receive", "cli.receive.usage")
		s := f.secretFlags()
		*s.file, *s.stdin = tc.file, tc.stdin != nil
		got, err := a.readSecret(f, s, "Password: ")
		switch {
		case tc.err == "none":
			if !errors.Is(err, errNoSecret) {
				t.Errorf("%s: %q, %v; want errNoSecret", tc.name, got, err)
			}
		case tc.err != "":
			if err == nil || !strings.Contains(err.Error(), tc.err) || exitCode(err) != exitUsage {
				t.Errorf("%s: %q, %v; want a usage error with %q", tc.name, got, err, tc.err)
			}
		case err != nil || got != tc.want:
			t.Errorf("%s: %q, %v; want %q", tc.name, got, err, tc.want)
		}
	}
}

func ptr(s string) *string { return &s }
