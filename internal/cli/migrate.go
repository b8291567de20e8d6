package cli

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/kluis-nl/kluis/internal/store"
)

// migrate is kluis migrate: apply the database migrations and list them.
// Unlike the other administration commands it creates a SQLite database,
// but only in a data folder that exists.
func (a *app) migrate(ctx context.Context, args []string) error {
	f := a.flags("migrate", "cli.migrate.usage")
	sf := f.storeFlags(false)
	if err := f.parseNone(args); err != nil {
		return err
	}
	st, err := a.store(sf)
	if err != nil {
		return err
	}
	if st.DB == "" {
		if fi, err := os.Stat(st.DataDir); err != nil || !fi.IsDir() {
			return a.fail(exitUsage, a.p.T("cli.hint.data_folder"), "cli.migrate.no_data", st.DataDir)
		}
	}
	if p, ok := strings.CutPrefix(st.DB, "sqlite:"); ok {
		if fi, err := os.Stat(filepath.Dir(p)); err != nil || !fi.IsDir() {
			return a.fail(exitUsage, a.p.T("cli.hint.check_db"), "cli.migrate.no_folder", p)
		}
	}
	db, err := store.Open(ctx, st.DB, st.DataDir)
	if err != nil {
		return err
	}
	defer db.Close()
	ms, err := db.Migrations(ctx)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(a.io.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, a.p.T("cli.migrate.header"))
	for _, m := range ms {
		fmt.Fprintf(tw, "%s\t%s\n", m.Version, a.p.Date(m.AppliedAt))
	}
	tw.Flush()
	fmt.Fprintln(a.io.Out, a.p.N("cli.migrate.done", len(ms), dbDisplay(st), db.Dialect()))
	return nil
}
