package kluis_test

import (
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
)

// TestLayoutTableNamesEveryPackage keeps the README's "Project layout"
// table true: every folder with Go code has a row, or is named (as
// `parent/child`) in the row of a folder above it. A new package without a
// row fails here (issue 12: internal/metrics had none).
func TestLayoutTableNamesEveryPackage(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, table, ok := strings.Cut(string(readme), "\n## Project layout\n")
	if !ok {
		t.Fatal("README.md has no section \"Project layout\"")
	}
	if end := strings.Index(table, "\n## "); end >= 0 {
		table = table[:end]
	}
	rows := map[string]string{} // folder → the row's text
	row := regexp.MustCompile("(?m)^\\| `([^`]+)`[^|]*\\|(.*)\\|\\s*$")
	for _, m := range row.FindAllStringSubmatch(table, -1) {
		rows[m[1]] = m[2]
	}
	if len(rows) < 10 {
		t.Fatalf("found only %d rows in the layout table; is its format changed?", len(rows))
	}

	var pkgs []string
	err = filepath.WalkDir(".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if p != "." && (name == "testdata" || name == "node_modules" || strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_")) {
				return filepath.SkipDir
			}
			return nil
		}
		if strings.HasSuffix(name, ".go") {
			pkgs = append(pkgs, filepath.ToSlash(filepath.Dir(p)))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(pkgs)
	pkgs = slices.Compact(pkgs)
	if len(pkgs) < 20 {
		t.Fatalf("found only %d folders with Go code", len(pkgs))
	}
	for _, p := range pkgs {
		if !named(rows, p) {
			t.Errorf("package folder %s has no row in the README's layout table (nor a mention as `%s` in the row of a folder above it)", p, path.Join(path.Base(path.Dir(p)), path.Base(p)))
		}
	}
}

// named reports whether the table's rows name folder p.
func named(rows map[string]string, p string) bool {
	if _, ok := rows[p]; ok {
		return true
	}
	for up := path.Dir(p); up != "." && up != "/"; up = path.Dir(up) {
		text, ok := rows[up]
		if !ok {
			continue
		}
		// The row of internal/mail names internal/mail/smtp as mail/smtp.
		rel := strings.TrimPrefix(p, path.Dir(up)+"/")
		if strings.Contains(text, "`"+rel+"`") {
			return true
		}
	}
	return false
}
