package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/kluis-nl/kluis/internal/audit"
	"github.com/kluis-nl/kluis/internal/secret"
	"github.com/kluis-nl/kluis/internal/sender"
	"github.com/kluis-nl/kluis/internal/store"
)

const adminUsage = `Usage:
  kluis admin apikey create --sender ADDRESS [--data DIR] [--db DB]
  kluis admin apikey revoke ID [--data DIR] [--db DB]
  kluis admin apikey list [--data DIR] [--db DB]
  kluis admin policy check FILE
  kluis admin audit export [--since DATE|30d] [--format csv|json] [--output FILE] [--data DIR] [--db DB]
  kluis admin rotate-master-key [--data DIR] [--db DB] [--master-key-file FILE]
  kluis admin export-identity TRANSFER [--data DIR] [--db DB] [--password-file FILE | --password-stdin] [-o FILE]

An API key lets a script send as one sender address without the e-mail code.
The key is shown once; only its hash is stored. --data (or KLUIS_DATA) is the
server's data folder (default ./kluis-data). --db (or KLUIS_DB, or
KLUIS_DB_FILE naming a file that holds it) is the database as kluis serve
takes it: empty for DATA/kluis.db, sqlite:PATH, or a postgres:// URL. Prefer
KLUIS_DB_FILE for a URL with a password: a flag shows in the process list.
`

func runAdmin(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "policy" {
		return runAdminPolicy(ctx, args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "audit" {
		return runAdminAudit(ctx, args[1:], getenv, stdout, stderr)
	}
	if len(args) > 0 && args[0] == "rotate-master-key" {
		return runAdminRotateKey(ctx, args[1:], getenv, stdout, stderr)
	}
	if len(args) > 0 && args[0] == "export-identity" {
		return runAdminExportIdentity(ctx, args[1:], getenv, stdout, stderr)
	}
	if len(args) < 2 || args[0] != "apikey" {
		fmt.Fprint(stderr, adminUsage)
		return usageError{errors.New("unknown admin command")}
	}
	cmd := args[1]
	fs := flag.NewFlagSet("kluis admin apikey "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, adminUsage) }
	data := fs.String("data", envOr(getenv, "KLUIS_DATA", "./kluis-data"), "data folder")
	dbSpec := dbFlag(fs)
	addr := fs.String("sender", "", "sender address the key is bound to")
	// Allow the id before or after the flags.
	rest := args[2:]
	var positional []string
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
	spec, err := resolveDB(*dbSpec, getenv)
	if err != nil {
		return err
	}
	svc, closeFn, err := openSenders(ctx, spec, *data)
	if err != nil {
		return err
	}
	defer closeFn()
	switch cmd {
	case "create":
		if *addr == "" || len(positional) > 0 {
			return usageError{errors.New("give the sender address with --sender ADDRESS")}
		}
		id, key, err := svc.CreateAPIKey(ctx, *addr)
		if err != nil {
			return err
		}
		fmt.Fprintf(stderr, "API key %s created for %s. It is shown only now; store it as a secret.\n", id, *addr)
		fmt.Fprintln(stdout, key)
	case "revoke":
		if len(positional) != 1 {
			return usageError{errors.New("give the id of the key to revoke (see kluis admin apikey list)")}
		}
		if err := svc.RevokeAPIKey(ctx, positional[0]); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "API key %s revoked.\n", positional[0])
	case "list":
		keys, err := svc.APIKeys(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tSENDER\tCREATED\tREVOKED")
		for _, k := range keys {
			revoked := "-"
			if k.RevokedAt != nil {
				revoked = k.RevokedAt.Format("2006-01-02 15:04")
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", k.ID, k.Email, k.CreatedAt.Format("2006-01-02 15:04"), revoked)
		}
		tw.Flush()
	default:
		fmt.Fprint(stderr, adminUsage)
		return usageError{fmt.Errorf("unknown apikey command %q", cmd)}
	}
	return nil
}

func envOr(getenv func(string) string, key, def string) string {
	if v := getenv(key); v != "" {
		return v
	}
	return def
}

// dbFlag defines --db; its value is resolved with resolveDB after parsing.
func dbFlag(fs *flag.FlagSet) *string {
	return fs.String("db", "", "database: empty for DATA/kluis.db, sqlite:PATH, or postgres://... (default KLUIS_DB or KLUIS_DB_FILE)")
}

// resolveDB gives the database spec as kluis serve reads it: the --db flag,
// else KLUIS_DB, else the contents of the file KLUIS_DB_FILE names (not
// both variables). Empty means SQLite in the data folder.
func resolveDB(flagValue string, getenv func(string) string) (string, error) {
	if flagValue != "" {
		return flagValue, nil
	}
	v, file := getenv("KLUIS_DB"), getenv("KLUIS_DB_FILE")
	if file == "" {
		return v, nil
	}
	if v != "" {
		return "", usageError{errors.New("set either KLUIS_DB or KLUIS_DB_FILE, not both")}
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("KLUIS_DB_FILE: %w", err)
	}
	return strings.TrimRight(string(b), "\r\n"), nil
}

// openAdminDB opens the database for administration. It never creates a
// SQLite database or data folder: a typo must not start an empty one.
func openAdminDB(ctx context.Context, spec, data string) (*store.DB, error) {
	return store.OpenExisting(ctx, spec, data)
}

// openSenders opens the database for API key administration.
func openSenders(ctx context.Context, spec, data string) (*sender.Service, func(), error) {
	db, err := openAdminDB(ctx, spec, data)
	if err != nil {
		return nil, nil, err
	}
	keys, err := secret.NewKeyring(secret.GenerateMasterKey()) // API keys need no master key
	if err != nil {
		db.Close()
		return nil, nil, err
	}
	svc := sender.New(sender.Deps{DB: db, Keys: keys, Config: sender.DefaultConfig(), Audit: audit.New(db, 0, nil, nil)}) // actor "admin"
	return svc, func() { db.Close() }, nil
}
