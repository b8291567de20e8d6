package config

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// The defaults of kluis serve that other commands share: the administration
// commands find the data where the server keeps it, and kluis healthcheck
// asks where the server listens.
const (
	DefaultDataDir = "./kluis-data"
	DefaultAddr    = "127.0.0.1:8080"
)

// Store says where an installation keeps its data, read as kluis serve
// reads it: what the administration commands (kluis admin …, kluis
// migrate) need of the configuration.
type Store struct {
	DataDir       string // --data, KLUIS_DATA
	DB            string // --db, KLUIS_DB or KLUIS_DB_FILE; "" is SQLite at DATA/kluis.db. May hold a password.
	MasterKeyFile string // --master-key-file, KLUIS_MASTER_KEY_FILE; default DATA/master.key
	MasterKey     string // KLUIS_MASTER_KEY (environment only: a flag would show in ps); base64
}

// ResolveStore completes the store settings given on a command line
// (flags: "" where a flag was not given) from the environment, with the
// names, precedence and defaults of ParseServe: a flag wins over its
// KLUIS_ variable, the database may come from the file KLUIS_DB_FILE
// names, and the data folder defaults to DefaultDataDir. A problem with a
// setting is a *SettingError.
func ResolveStore(flags Store, getenv func(string) string) (*Store, error) {
	s := flags
	if s.DataDir == "" {
		s.DataDir = getenv(envName("data"))
	}
	if s.DataDir == "" {
		s.DataDir = DefaultDataDir
	}
	s.DataDir = filepath.Clean(s.DataDir)
	if s.DB == "" {
		v, err := secretSetting(getenv, envName("db"))
		if err != nil {
			return nil, err
		}
		s.DB = v
	}
	if err := checkDB(s.DB); err != nil {
		return nil, err
	}
	if s.MasterKeyFile == "" {
		s.MasterKeyFile = getenv(envName("master-key-file"))
	}
	if s.MasterKeyFile == "" {
		s.MasterKeyFile = filepath.Join(s.DataDir, "master.key")
	}
	s.MasterKey = getenv("KLUIS_MASTER_KEY")
	return &s, nil
}

// Problem is what is wrong with a setting.
type Problem int

// The problems a SettingError reports.
const (
	ProblemBoth       Problem = iota + 1 // both VAR and VAR_FILE are set
	ProblemUnreadable                    // the file VAR_FILE names cannot be read (Err says why)
	ProblemEmpty                         // the file VAR_FILE names is empty
	ProblemDBForm                        // the database is not sqlite:PATH or a postgres:// URL
)

// SettingError is a setting that cannot be used. Setting names it as the
// person wrote it ("KLUIS_DB_FILE", "--db"); its value is never part of
// the error, as it may hold a password.
type SettingError struct {
	Setting string
	Problem Problem
	Err     error // the file's error, for ProblemUnreadable
}

func (e *SettingError) Error() string {
	switch e.Problem {
	case ProblemBoth:
		v := strings.TrimSuffix(e.Setting, "_FILE")
		return fmt.Sprintf("set either %s or %s_FILE, not both", v, v)
	case ProblemUnreadable:
		return fmt.Sprintf("%s: %v", e.Setting, e.Err)
	case ProblemEmpty:
		return fmt.Sprintf("%s: the file is empty; put the value in it, or remove %s", e.Setting, e.Setting)
	case ProblemDBForm:
		return e.Setting + ": give sqlite:PATH or a postgres:// URL"
	}
	return e.Setting + ": not usable"
}

func (e *SettingError) Unwrap() error { return e.Err }

// secretSetting reads the variable env, or the file env_FILE names (one
// trailing line break dropped), as ParseServe does for secrets.
func secretSetting(getenv func(string) string, env string) (string, error) {
	v, file := getenv(env), getenv(env+"_FILE")
	if file == "" {
		return v, nil
	}
	if v != "" {
		return "", &SettingError{Setting: env + "_FILE", Problem: ProblemBoth}
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", &SettingError{Setting: env + "_FILE", Problem: ProblemUnreadable, Err: err}
	}
	v = strings.TrimRight(string(b), "\r\n")
	if v == "" {
		return "", &SettingError{Setting: env + "_FILE", Problem: ProblemEmpty}
	}
	return v, nil
}

// checkDB accepts the database forms kluis serve takes.
func checkDB(spec string) error {
	switch {
	case spec == "", strings.HasPrefix(spec, "postgres://"), strings.HasPrefix(spec, "postgresql://"):
		return nil
	case strings.HasPrefix(spec, "sqlite:") && spec != "sqlite:":
		return nil
	}
	return &SettingError{Setting: "--db", Problem: ProblemDBForm}
}

// IsPostgres reports whether a database setting names PostgreSQL.
func IsPostgres(spec string) bool {
	return strings.HasPrefix(spec, "postgres://") || strings.HasPrefix(spec, "postgresql://")
}
