package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/kluis-nl/kluis/internal/locale"
)

// codeKeys returns the catalog keys the package's code names: every string
// literal that is a cli.* key (keys are never built from pieces, so this
// finds them all).
func codeKeys(t *testing.T) map[string]bool {
	t.Helper()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	isKey := regexp.MustCompile(`^cli\.[a-z0-9_.]+$`)
	keys := map[string]bool{}
	fset := token.NewFileSet()
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			if lit, ok := n.(*ast.BasicLit); ok && lit.Kind == token.STRING {
				if s, err := strconv.Unquote(lit.Value); err == nil && isKey.MatchString(s) {
					keys[s] = true
				}
			}
			return true
		})
	}
	if len(keys) < 200 {
		t.Fatalf("found only %d keys in the code; did the way keys are named change?", len(keys))
	}
	return keys
}

// Every key the code uses is in the Dutch and the English catalog, and
// every cli.* key of the catalogs is used.
func TestCatalogKeys(t *testing.T) {
	used := codeKeys(t)
	for _, l := range []locale.Lang{locale.NL, locale.EN} {
		p := locale.For(l)
		for k := range used {
			if !p.Has(k) {
				t.Errorf("%s: the code uses %s, which the catalog lacks", l, k)
			}
		}
		for _, k := range locale.Keys(l) {
			if strings.HasPrefix(k, "cli.") && !used[k] {
				t.Errorf("%s: %s is in the catalog but no code uses it", l, k)
			}
		}
	}
	if got := langCodes(); strings.Join(got, ",") != "nl,en" {
		t.Errorf("the client speaks %v, want nl and en", got)
	}
}

var verb = regexp.MustCompile(`%(?:\[(\d+)\])?[-+# 0]*\d*(?:\.\d+)?(?:\[(\d+)\])?([a-zA-Z%])`)

// Every text formats without fmt's complaints (%!) when given arguments of
// the kinds its verbs ask for.
func TestCatalogTextsFormat(t *testing.T) {
	for _, l := range []locale.Lang{locale.NL, locale.EN} {
		p := locale.For(l)
		b, err := os.ReadFile(filepath.Join("..", "locale", "catalog", string(l), "cli.json"))
		if err != nil {
			t.Fatal(err)
		}
		var texts map[string]any
		if err := json.Unmarshal(b, &texts); err != nil {
			t.Fatal(err)
		}
		for k, v := range texts {
			raw, _ := v.(string)
			plural := false
			if forms, ok := v.(map[string]any); ok {
				raw, plural = forms["other"].(string), true
			}
			var args []any
			next := 1
			for _, m := range verb.FindAllStringSubmatch(raw, -1) {
				if m[3] == "%" {
					continue
				}
				i := next
				if m[1] != "" {
					i, _ = strconv.Atoi(m[1])
				} else if m[2] != "" {
					i, _ = strconv.Atoi(m[2])
				}
				next = i + 1
				for len(args) < i {
					args = append(args, nil)
				}
				if strings.ContainsRune("dx", rune(m[3][0])) {
					args[i-1] = 2
				} else {
					args[i-1] = "x"
				}
			}
			for i := range args {
				if args[i] == nil {
					args[i] = "x"
				}
			}
			if len(args) == 0 {
				continue
			}
			if plural {
				args[0] = 2
			}
			if got := p.T(k, args...); strings.Contains(got, "%!") {
				t.Errorf("%s: %s formats as %q", l, k, got)
			}
		}
	}
}

// Every command's --help, in both languages: exit 0, the usage and every
// flag, and no raw key or formatting error.
func TestHelpOfEveryCommand(t *testing.T) {
	commands := [][]string{
		{"login"}, {"logout"}, {"send"}, {"receive"}, {"status"}, {"revoke"}, {"healthcheck"}, {"migrate"},
		{"admin", "apikey", "create"}, {"admin", "apikey", "revoke"}, {"admin", "apikey", "list"},
		{"admin", "policy", "check"}, {"admin", "audit", "export"}, {"admin", "audit", "verify"}, {"admin", "rotate-master-key"},
		{"admin", "export-identity"},
	}
	for _, lang := range []string{"nl", "en"} {
		env := func(k string) string {
			if k == "KLUIS_LANG" {
				return lang
			}
			return ""
		}
		for _, cmd := range commands {
			var out, errOut bytes.Buffer
			err := run(context.Background(), append(append([]string{}, cmd...), "--help"), env, &out, &errOut)
			if code := exitCode(err); code != exitOK {
				t.Errorf("%s: kluis %s --help: exit %d (%v)", lang, strings.Join(cmd, " "), code, err)
			}
			help := errOut.String()
			for _, bad := range []string{"cli.", "%!"} {
				if strings.Contains(help, bad) {
					t.Errorf("%s: kluis %s --help shows %q:\n%s", lang, strings.Join(cmd, " "), bad, help)
				}
			}
			flags := strings.Contains(help, "\n  --") || cmd[1] == "policy"
			if !strings.Contains(help, "kluis "+strings.Join(cmd, " ")) || !flags {
				t.Errorf("%s: kluis %s --help lacks its usage or flags:\n%s", lang, strings.Join(cmd, " "), help)
			}
		}
		for _, cmd := range [][]string{{"help"}, {"admin", "help"}} {
			var out bytes.Buffer
			if err := run(context.Background(), cmd, env, &out, &out); err != nil || strings.Contains(out.String(), "cli.") {
				t.Errorf("%s: kluis %s: %v\n%s", lang, strings.Join(cmd, " "), err, out.String())
			}
		}
	}
}
