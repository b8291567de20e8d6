package main

import (
	"context"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"text/tabwriter"
	"time"

	"golang.org/x/term"

	"github.com/kluis-nl/kluis/internal/secret"
	"github.com/kluis-nl/kluis/internal/store"
	"github.com/kluis-nl/kluis/internal/transfer"
)

const adminRotateUsage = `Usage:
  kluis admin rotate-master-key [--data DIR] [--db DB] [--master-key-file FILE]

Makes a new master key and re-seals every value in the database that is
sealed under the master key with it, in one transaction. Stop the server
(every instance) first: the command refuses to run while another process has
the database open. On PostgreSQL every kluis serve (on any host) holds a
shared lock in the database while it runs; the command names the sessions
that hold it, and while it runs no instance can start.

Steps, so that an interruption at any point can be finished by running the
command again:
  1. the new key is written to FILE.new (mode 0600);
  2. the database is re-sealed and committed;
  3. the old key is kept as FILE.old-KEYID (mode 0600) and FILE.new is
     renamed over FILE.
If FILE.new exists when the command starts, an earlier run was interrupted:
the command continues with that key (values already under it are left
alone). Do not start the server before the command has finished.

  --data             the server's data folder (or KLUIS_DATA; default ./kluis-data)
  --db               the database, as kluis serve --db takes it (or KLUIS_DB or
                     KLUIS_DB_FILE; default DATA/kluis.db)
  --master-key-file  the master key file (or KLUIS_MASTER_KEY_FILE; default DATA/master.key)

With several instances, give every instance the new key (it is in FILE
afterwards) before starting them again.
`

const adminExportUsage = `Usage:
  kluis admin export-identity TRANSFER [--data DIR] [--db DB] [--password-file FILE | --password-stdin] [-o FILE]

Unwraps the age identity of one transfer with its password (for a transfer
without password: the link secret, the part of the link after #; the whole
link is accepted too), so its stored files can be decrypted with the
standard age tool, without Kluis. Without --password-file or
--password-stdin the password is asked for on the terminal.

  -o FILE            write the identity to FILE (mode 0600; an existing file
                     is not overwritten). Default: standard output.
  --data             the server's data folder (or KLUIS_DATA; default ./kluis-data)
  --db               the database, as kluis serve --db takes it (or KLUIS_DB or
                     KLUIS_DB_FILE; default DATA/kluis.db)
  --master-key-file  the master key file (or KLUIS_MASTER_KEY_FILE; default
                     DATA/master.key; KLUIS_MASTER_KEY may hold the key itself)

The identity opens every file of the transfer: keep it as secret as the
password, and delete it when done.
`

const migrateUsage = `Usage:
  kluis migrate [--data DIR] [--db DB]

Applies the database migrations that are not applied yet and lists all
applied ones. kluis serve does this at every start as well (on PostgreSQL
under a lock, so instances starting together migrate once).

  --data  the server's data folder (or KLUIS_DATA; default ./kluis-data)
  --db    the database, as kluis serve --db takes it (or KLUIS_DB or
          KLUIS_DB_FILE; default DATA/kluis.db). A SQLite database is created
          if the data folder exists and holds none yet.
`

// lockWait is how long rotate-master-key waits for the database lock.
var lockWait = 2 * time.Second

func keyFileFlag(fs *flag.FlagSet, getenv func(string) string) *string {
	return fs.String("master-key-file", getenv("KLUIS_MASTER_KEY_FILE"), "master key file (default DATA/master.key)")
}

func runAdminRotateKey(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("kluis admin rotate-master-key", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, adminRotateUsage) }
	data := fs.String("data", envOr(getenv, "KLUIS_DATA", "./kluis-data"), "data folder")
	dbSpec := dbFlag(fs)
	keyFile := keyFileFlag(fs, getenv)
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	if getenv("KLUIS_MASTER_KEY") != "" {
		return errors.New("the master key is given in KLUIS_MASTER_KEY: rotation works on a key file. Write the key to a file (mode 0600), unset KLUIS_MASTER_KEY and give the file with --master-key-file")
	}
	spec, err := resolveDB(*dbSpec, getenv)
	if err != nil {
		return err
	}
	dbName := dbDisplay(spec, *data)
	if !isPostgres(spec) {
		// Before reading keys: a mistyped folder should say so first.
		if st, err := os.Stat(dbName); err != nil || !st.Mode().IsRegular() {
			return fmt.Errorf("no Kluis database at %s: give the server's data folder with --data, or the database with --db", dbName)
		}
	}
	if *keyFile == "" {
		*keyFile = filepath.Join(*data, "master.key")
	}
	oldText, err := os.ReadFile(*keyFile)
	if err != nil {
		return fmt.Errorf("master key: %w", err)
	}
	oldKeys, err := secret.LoadMasterKey(*keyFile)
	if err != nil {
		return err
	}
	newPath := *keyFile + ".new"
	newKeys, err := secret.LoadMasterKey(newPath)
	resuming := err == nil
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("%s exists but cannot be used (%v). It is left from an interrupted rotation; if the database was not re-sealed with it, remove it and run again", newPath, err)
	}
	if resuming {
		if newKeys.ID() == oldKeys.ID() {
			return fmt.Errorf("%s holds the same key as %s; remove %s and run again", newPath, *keyFile, newPath)
		}
		fmt.Fprintf(stderr, "Found %s (key %s) from an interrupted rotation. Continuing with it:\n"+
			"values already sealed under it are kept, the others are re-sealed, then the key files are swapped.\n", newPath, newKeys.ID())
	}

	fmt.Fprintln(stderr, "The server must be stopped (every instance that uses this database) during the rotation.")
	db, err := store.OpenExclusive(ctx, spec, *data, lockWait)
	if errors.Is(err, store.ErrBusy) {
		return fmt.Errorf("the database %s is in use, probably by a running kluis serve (%v). Stop every instance and run this command again. Nothing was changed", dbName, err)
	}
	if err != nil {
		return err
	}
	defer db.Close()

	if !resuming {
		raw := secret.GenerateMasterKey()
		newKeys, err = secret.NewKeyring(raw)
		if err != nil {
			return err
		}
		if err := writeKeyFileAtomic(newPath, []byte(base64.StdEncoding.EncodeToString(raw)+"\n")); err != nil {
			return fmt.Errorf("write the new master key: %w", err)
		}
		clear(raw)
	}
	counts, err := transfer.RotateMasterKey(ctx, db, oldKeys, newKeys)
	if err != nil {
		return fmt.Errorf("%w\nNothing in the database was changed; %s is kept, so running the command again continues with it", err, newPath)
	}
	if err := db.Close(); err != nil {
		return err
	}

	oldPath := *keyFile + ".old-" + oldKeys.ID()
	if err := writeKeyFileAtomic(oldPath, oldText); err != nil {
		return fmt.Errorf("the database is re-sealed under the new key %s, but keeping the old key failed: %w. Run the command again to finish; do not start the server before", newKeys.ID(), err)
	}
	if err := os.Rename(newPath, *keyFile); err != nil {
		return fmt.Errorf("the database is re-sealed under the new key %s, but %s could not be renamed to %s: %w. Run the command again to finish; do not start the server before", newKeys.ID(), newPath, *keyFile, err)
	}
	if err := syncDir(filepath.Dir(*keyFile)); err != nil {
		return fmt.Errorf("sync %s: %w", filepath.Dir(*keyFile), err)
	}

	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "COLUMN\tRE-SEALED\tALREADY NEW")
	for _, c := range counts {
		fmt.Fprintf(tw, "%s\t%d\t%d\n", c.Column, c.Resealed, c.Already)
	}
	tw.Flush()
	fmt.Fprintf(stdout, "Master key rotated: %s -> %s (%s).\n", oldKeys.ID(), newKeys.ID(), *keyFile)
	fmt.Fprintf(stderr, "\nBack up the new key in %s now: without it no stored transfer can be opened.\n"+
		"The old key is kept in %s. Start the server, check that transfers open,\n"+
		"then destroy the old key file and every backup of it (shred -u %s).\n"+
		"Database backups made before now open only with the old key: destroy it only\n"+
		"together with them, or when losing them is acceptable.\n", *keyFile, oldPath, oldPath)
	return nil
}

// writeKeyFileAtomic writes data to path with mode 0600 through a temporary
// file in the same folder: synced, renamed over path, folder synced. A
// crash leaves either the old file or the new one, never half of one.
func writeKeyFileAtomic(path string, data []byte) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err = f.Chmod(0o600); err != nil && runtime.GOOS != "windows" {
		return err
	}
	if _, err = f.Write(data); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = os.Rename(tmp, path); err != nil {
		return err
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// adminKeys loads the master key as kluis serve would, but never creates one.
func adminKeys(getenv func(string) string, keyFile, data string) (*secret.Keyring, error) {
	if v := getenv("KLUIS_MASTER_KEY"); v != "" {
		b, err := base64.StdEncoding.DecodeString(v)
		if err != nil {
			return nil, errors.New("KLUIS_MASTER_KEY: not valid base64")
		}
		return secret.NewKeyring(b)
	}
	if keyFile == "" {
		keyFile = filepath.Join(data, "master.key")
	}
	return secret.LoadMasterKey(keyFile)
}

func runAdminExportIdentity(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("kluis admin export-identity", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, adminExportUsage) }
	data := fs.String("data", envOr(getenv, "KLUIS_DATA", "./kluis-data"), "data folder")
	dbSpec := dbFlag(fs)
	keyFile := keyFileFlag(fs, getenv)
	pwFile := fs.String("password-file", "", "read the password from FILE")
	pwStdin := fs.Bool("password-stdin", false, "read the password from standard input")
	out := fs.String("o", "", "write the identity to FILE")
	// Allow the transfer id before or after the flags.
	var positional []string
	rest := args
	for len(rest) > 0 {
		if err := fs.Parse(rest); err != nil {
			return usageError{err}
		}
		rest = fs.Args()
		if len(rest) > 0 {
			positional = append(positional, rest[0])
			rest = rest[1:]
		}
	}
	if len(positional) != 1 {
		fmt.Fprint(stderr, adminExportUsage)
		return usageError{errors.New("give the id of one transfer")}
	}
	if *pwFile != "" && *pwStdin {
		return usageError{errors.New("give --password-file or --password-stdin, not both")}
	}
	transferID := positional[0]
	spec, err := resolveDB(*dbSpec, getenv)
	if err != nil {
		return err
	}
	db, err := openAdminDB(ctx, spec, *data)
	if err != nil {
		return err
	}
	defer db.Close()
	keys, err := adminKeys(getenv, *keyFile, *data)
	if err != nil {
		return err
	}
	var sec string
	switch {
	case *pwFile != "":
		b, err := os.ReadFile(*pwFile)
		if err != nil {
			return fmt.Errorf("reading the password file: %w", err)
		}
		sec = trimOneNewline(string(b))
	case *pwStdin:
		b, err := io.ReadAll(io.LimitReader(os.Stdin, 4096))
		if err != nil {
			return fmt.Errorf("reading the password from standard input: %w", err)
		}
		sec = trimOneNewline(string(b))
	case isTerminal(os.Stdin):
		fmt.Fprint(stderr, "Password of the transfer (or its link secret): ")
		b, err := term.ReadPassword(int(os.Stdin.Fd()))
		fmt.Fprintln(stderr)
		if err != nil {
			return fmt.Errorf("reading the password: %w", err)
		}
		sec = string(b)
	default:
		return usageError{errors.New("give the password with --password-file FILE or --password-stdin")}
	}
	// A pasted link: its secret is the part after #.
	if i := strings.LastIndexByte(sec, '#'); i >= 0 && strings.Contains(sec[:i], "/") {
		sec = sec[i+1:]
	}
	if sec == "" {
		return usageError{errors.New("the password is empty")}
	}
	var f *os.File
	if *out != "" {
		// Before the scrypt work, so a mistake shows at once.
		f, err = os.OpenFile(*out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return fmt.Errorf("-o: %w", err)
		}
	}
	identity, err := exportIdentity(ctx, db, keys, transferID, sec)
	if err != nil {
		if f != nil {
			f.Close()
			os.Remove(*out)
		}
		return err
	}
	if f == nil {
		fmt.Fprintln(stdout, identity)
	} else {
		_, err = fmt.Fprintf(f, "# age identity of Kluis transfer %s, exported %s\n%s\n", transferID, time.Now().UTC().Format(time.RFC3339), identity)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			os.Remove(*out)
			return fmt.Errorf("-o: %w", err)
		}
	}
	idFile := *out
	if idFile == "" {
		idFile = "IDENTITY-FILE"
	}
	seg := filepath.Join(*data, "blobs", "t", transferID)
	fmt.Fprintf(stderr, "Identity of transfer %s exported. Keep it secret and delete it when done.\n\n"+
		"Each file of the transfer is stored as numbered segments in %s/<file id>/,\n"+
		"each a standard age file. Decrypt one with the age tool (https://age-encryption.org):\n"+
		"  age -d -i %s %s/<file id>/<segment>\n"+
		"and concatenate the segments of a file in the order of their numbers, for example:\n"+
		"  for s in %s/<file id>/*; do age -d -i %s \"$s\" || break; done > file\n"+
		"With S3 storage (--storage s3://BUCKET[/PREFIX]) the segments are the objects\n"+
		"under [PREFIX/]t/%s/<file id>/ in the bucket: copy them to a folder first.\n",
		transferID, seg, idFile, seg, seg, idFile, transferID)
	return nil
}

func exportIdentity(ctx context.Context, db *store.DB, keys *secret.Keyring, transferID, sec string) (string, error) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	svc := transfer.New(transfer.Deps{DB: db, Keys: keys, Config: transfer.DefaultConfig(), Log: log}) // no blobs needed
	return svc.ExportIdentity(ctx, transferID, sec)
}

func runMigrate(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("kluis migrate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, migrateUsage) }
	data := fs.String("data", envOr(getenv, "KLUIS_DATA", "./kluis-data"), "data folder")
	dbSpec := dbFlag(fs)
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	spec, err := resolveDB(*dbSpec, getenv)
	if err != nil {
		return err
	}
	if spec == "" {
		if st, err := os.Stat(*data); err != nil || !st.IsDir() {
			return fmt.Errorf("no data folder %s: give the server's data folder with --data", *data)
		}
	}
	if p, ok := strings.CutPrefix(spec, "sqlite:"); ok {
		if st, err := os.Stat(filepath.Dir(p)); err != nil || !st.IsDir() {
			return fmt.Errorf("no folder for the database %s: check --db", p)
		}
	}
	db, err := store.Open(ctx, spec, *data)
	if err != nil {
		return err
	}
	defer db.Close()
	ms, err := db.Migrations(ctx)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "VERSION\tAPPLIED (UTC)")
	for _, m := range ms {
		fmt.Fprintf(tw, "%s\t%s\n", m.Version, m.AppliedAt.Format("2006-01-02 15:04:05"))
	}
	tw.Flush()
	fmt.Fprintf(stdout, "Database %s (%s) is up to date (%d migrations).\n", dbDisplay(spec, *data), db.Dialect(), len(ms))
	return nil
}

func isPostgres(spec string) bool {
	return strings.HasPrefix(spec, "postgres://") || strings.HasPrefix(spec, "postgresql://")
}

// dbDisplay names the database for messages: the SQLite path, or the
// PostgreSQL host and database name (never the user or password).
func dbDisplay(spec, data string) string {
	switch {
	case spec == "":
		return filepath.Join(data, "kluis.db")
	case strings.HasPrefix(spec, "sqlite:"):
		return strings.TrimPrefix(spec, "sqlite:")
	case isPostgres(spec):
		if u, err := url.Parse(spec); err == nil {
			return "postgres://" + u.Host + u.Path
		}
		return "postgres"
	}
	return "the database"
}
