package config

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The administration commands read the store settings with the names,
// precedence and defaults of kluis serve.
func TestResolveStoreMatchesServe(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	dbFile := filepath.Join(dir, "db")
	if err := os.WriteFile(dbFile, []byte("postgres://k:geheim@db.example.nl/kluis\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		flags Store
		env   map[string]string
	}{
		{name: "defaults"},
		{name: "environment", env: map[string]string{"KLUIS_DATA": "/var/lib/kluis", "KLUIS_DB": "sqlite:/srv/k.db", "KLUIS_MASTER_KEY_FILE": "/etc/kluis/key"}},
		{name: "db from a file", env: map[string]string{"KLUIS_DB_FILE": dbFile}},
		{name: "flags win", flags: Store{DataDir: "/data", DB: "sqlite:/x.db", MasterKeyFile: "/k"},
			env: map[string]string{"KLUIS_DATA": "/other", "KLUIS_DB": "sqlite:/other.db", "KLUIS_MASTER_KEY_FILE": "/other.key"}},
		{name: "key in the environment", env: map[string]string{"KLUIS_MASTER_KEY": "a2V5"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			getenv := env(tc.env)
			got, err := ResolveStore(tc.flags, getenv)
			if err != nil {
				t.Fatal(err)
			}
			var args []string
			for _, f := range []struct{ name, v string }{{"data", tc.flags.DataDir}, {"db", tc.flags.DB}, {"master-key-file", tc.flags.MasterKeyFile}} {
				if f.v != "" {
					args = append(args, "--"+f.name, f.v)
				}
			}
			serve, err := ParseServe(args, getenv, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			want := Store{DataDir: serve.DataDir, DB: serve.DB, MasterKeyFile: serve.MasterKeyFile, MasterKey: serve.MasterKey}
			if *got != want {
				t.Errorf("ResolveStore = %+v, kluis serve reads %+v", *got, want)
			}
		})
	}
}

func TestResolveStoreProblems(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		flags   Store
		env     map[string]string
		setting string
		problem Problem
	}{
		{"both", Store{}, map[string]string{"KLUIS_DB": "sqlite:/x", "KLUIS_DB_FILE": empty}, "KLUIS_DB_FILE", ProblemBoth},
		{"unreadable", Store{}, map[string]string{"KLUIS_DB_FILE": filepath.Join(dir, "none")}, "KLUIS_DB_FILE", ProblemUnreadable},
		{"empty", Store{}, map[string]string{"KLUIS_DB_FILE": empty}, "KLUIS_DB_FILE", ProblemEmpty},
		{"form", Store{DB: "mysql://u:geheim@h/d"}, nil, "--db", ProblemDBForm},
		{"empty sqlite path", Store{DB: "sqlite:"}, nil, "--db", ProblemDBForm},
	} {
		_, err := ResolveStore(tc.flags, env(tc.env))
		var se *SettingError
		if !errors.As(err, &se) || se.Setting != tc.setting || se.Problem != tc.problem {
			t.Errorf("%s: got %v, want %s problem %d", tc.name, err, tc.setting, tc.problem)
			continue
		}
		if strings.Contains(err.Error(), "geheim") {
			t.Errorf("%s: the error shows the value: %v", tc.name, err)
		}
	}
	// A flag wins: a broken KLUIS_DB_FILE is not read.
	if _, err := ResolveStore(Store{DB: "sqlite:/x.db"}, env(map[string]string{"KLUIS_DB_FILE": filepath.Join(dir, "none")})); err != nil {
		t.Errorf("--db given: %v", err)
	}
}
