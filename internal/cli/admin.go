package cli

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/kluis-nl/kluis/internal/audit"
	"github.com/kluis-nl/kluis/internal/config"
	"github.com/kluis-nl/kluis/internal/secret"
	"github.com/kluis-nl/kluis/internal/sender"
	"github.com/kluis-nl/kluis/internal/store"
	"github.com/kluis-nl/kluis/internal/unit"
)

// admin is kluis admin …: commands for the operator, on the server's
// database and key files directly.
func (a *app) admin(ctx context.Context, args []string) error {
	sub := ""
	if len(args) > 0 {
		sub = args[0]
	}
	switch sub {
	case "apikey":
		return a.adminAPIKey(ctx, args[1:])
	case "policy":
		return a.adminPolicy(args[1:])
	case "team":
		return a.adminTeam(ctx, args[1:])
	case "audit":
		return a.adminAudit(ctx, args[1:])
	case "rotate-master-key":
		return a.adminRotateKey(ctx, args[1:])
	case "export-identity":
		return a.adminExportIdentity(ctx, args[1:])
	case "help", "-h", "-help", "--help":
		fmt.Fprint(a.io.Out, a.p.T("cli.admin.usage"))
		return nil
	}
	fmt.Fprint(a.io.Err, a.p.T("cli.admin.usage"))
	if sub == "" {
		return a.usageError("admin", a.p.T("cli.err.no_command"))
	}
	return a.usageError("admin", a.p.T("cli.err.unknown_command", "admin "+sub))
}

// storeFlags are --data and --db and, for the commands that need the
// master key, --master-key-file: where the installation keeps its data.
type storeFlags struct {
	data, db, keyFile *string
}

func (f *flagSet) storeFlags(withKey bool) storeFlags {
	s := storeFlags{
		data: f.String("data", "cli.ph.dir", "cli.flag.data", config.DefaultDataDir),
		db:   f.String("db", "cli.ph.db", "cli.flag.db"),
	}
	if withKey {
		s.keyFile = f.String("master-key-file", "cli.ph.file", "cli.flag.master_key_file")
	}
	return s
}

// store reads the store settings as kluis serve does: the flags, else the
// environment, else the defaults (package config).
func (a *app) store(s storeFlags) (*config.Store, error) {
	given := config.Store{DataDir: *s.data, DB: *s.db}
	if s.keyFile != nil {
		given.MasterKeyFile = *s.keyFile
	}
	return config.ResolveStore(given, a.getenv)
}

// openStoreFlags resolves the store flags and opens the database they
// name (the pair every admin command that reads the database starts with).
func (a *app) openStoreFlags(ctx context.Context, sf storeFlags) (*config.Store, *store.DB, error) {
	st, err := a.store(sf)
	if err != nil {
		return nil, nil, err
	}
	db, err := a.openStore(ctx, st)
	if err != nil {
		return nil, nil, err
	}
	return st, db, nil
}

// openStore opens the database for administration. It never creates a
// SQLite database or data folder: a typo must not start an empty one.
func (a *app) openStore(ctx context.Context, st *config.Store) (*store.DB, error) {
	if err := a.checkSQLite(st); err != nil {
		return nil, err
	}
	return store.OpenExisting(ctx, st.DB, st.DataDir)
}

// checkSQLite says in the person's language when a SQLite database is not
// where the settings say.
func (a *app) checkSQLite(st *config.Store) error {
	if config.IsPostgres(st.DB) {
		return nil
	}
	path := dbDisplay(st)
	if fi, err := os.Stat(path); err != nil || !fi.Mode().IsRegular() {
		return a.fail(exitUsage, a.p.T("cli.hint.data_folder"), "cli.admin.no_database", path)
	}
	return nil
}

// dbDisplay names the database for messages: the SQLite path, or the
// PostgreSQL host and database name (never the user or password).
func dbDisplay(st *config.Store) string {
	switch {
	case st.DB == "":
		return filepath.Join(st.DataDir, "kluis.db")
	case strings.HasPrefix(st.DB, "sqlite:"):
		return strings.TrimPrefix(st.DB, "sqlite:")
	}
	if u, err := url.Parse(st.DB); err == nil {
		return "postgres://" + u.Host + u.Path
	}
	return "postgres"
}

// adminAPIKey is kluis admin apikey create|revoke|list.
func (a *app) adminAPIKey(ctx context.Context, args []string) error {
	if len(args) == 0 || !slices.Contains([]string{"create", "revoke", "expire", "list"}, args[0]) {
		f := a.flags("admin apikey", "cli.apikey.usage")
		if _, err := f.parse(args); err != nil {
			return err
		}
		return f.usageError("cli.apikey.which")
	}
	cmd := args[0]
	f := a.flags("admin apikey "+cmd, "cli.apikey.usage")
	var addr, name, valid *string
	var reason *string
	if cmd == "create" {
		addr = f.String("sender", "cli.ph.address", "cli.flag.sender")
		name = f.String("name", "cli.ph.text", "cli.flag.key_name")
		valid = f.StringDefault("expires", "90d", "cli.ph.duration", "cli.flag.key_expires", int(sender.DefaultAPIKeyMaxAge.Hours()/24))
	}
	if cmd != "list" {
		reason = f.reasonFlag()
	}
	sf := f.storeFlags(false)
	pos, err := f.parse(args[1:])
	if err != nil {
		return err
	}
	switch {
	case cmd == "create" && (*addr == "" || len(pos) > 0):
		return f.usageError("cli.apikey.no_sender")
	case (cmd == "revoke" || cmd == "expire") && len(pos) != 1:
		return f.usageError("cli.apikey.no_id")
	case cmd == "list" && len(pos) > 0:
		return f.usageError("cli.err.unexpected_argument", pos[0])
	}
	if reason != nil {
		// Ending a key cuts a script off: say why. Creating may say why.
		if ctx, err = a.breakGlass(ctx, f, *reason, cmd != "create"); err != nil {
			return err
		}
	}
	_, db, err := a.openStoreFlags(ctx, sf)
	if err != nil {
		return err
	}
	defer db.Close()
	keys, err := secret.NewKeyring(secret.GenerateMasterKey()) // API keys need no master key
	if err != nil {
		return err
	}
	svc := sender.New(sender.Deps{DB: db, Keys: keys, Config: sender.DefaultConfig(), Audit: audit.New(db, 0, nil, nil)}) // actor: the break-glass administrator
	switch cmd {
	case "create":
		d, err := unit.ParseDuration(*valid)
		if err != nil || d <= 0 {
			return f.usageError("cli.apikey.bad_expires", *valid)
		}
		id, key, err := svc.IssueAPIKey(ctx, sender.APIKeyRequest{Email: *addr, Name: *name, Expires: time.Now().Add(d)})
		if err != nil {
			return err
		}
		fmt.Fprintln(a.io.Err, a.p.T("cli.apikey.created", id, *addr))
		fmt.Fprintln(a.io.Out, key)
	case "revoke":
		if err := svc.RevokeAPIKey(ctx, pos[0]); err != nil {
			return err
		}
		fmt.Fprintln(a.io.Out, a.p.T("cli.apikey.revoked", pos[0]))
	case "expire":
		if err := svc.ExpireAPIKey(ctx, pos[0]); err != nil {
			return err
		}
		fmt.Fprintln(a.io.Out, a.p.T("cli.apikey.expired", pos[0]))
	case "list":
		keys, err := svc.APIKeys(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(a.io.Out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, a.p.T("cli.apikey.header"))
		for _, k := range keys {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", k.ID, k.Email, a.date(&k.CreatedAt), a.date(&k.ExpiresAt), a.date(k.LastUsedAt), a.date(k.RevokedAt), k.Name)
		}
		tw.Flush()
	}
	return nil
}
