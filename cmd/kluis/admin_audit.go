package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/kluis-nl/kluis/internal/audit"
	"github.com/kluis-nl/kluis/internal/unit"
)

const adminAuditUsage = `Usage:
  kluis admin audit export [--since WHEN] [--format csv|json] [--output FILE] [--data DIR] [--db DB]

Writes the audit log: every entry with its time (UTC), actor, action,
object, result, IP address and detail, oldest first.

  --since   entries from this moment on: a date (2025-01-31), a time in
            RFC 3339 (2025-01-31T12:00:00Z), or an age (30d, 12h).
            Default: every entry still kept (see kluis serve --audit-retention).
  --format  csv (a header row; values a spreadsheet would take for a formula
            are prefixed with ') or json (JSON Lines: one object per line).
            Default: csv.
  --output  file to write (created with mode 0600; default: standard output).
  --data    the server's data folder (or KLUIS_DATA; default ./kluis-data).
  --db      the database, as kluis serve --db takes it (or KLUIS_DB or
            KLUIS_DB_FILE; default DATA/kluis.db): sqlite:PATH or postgres://...
`

func runAdminAudit(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) < 1 || args[0] != "export" {
		fmt.Fprint(stderr, adminAuditUsage)
		return usageError{errors.New("unknown audit command")}
	}
	fs := flag.NewFlagSet("kluis admin audit export", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, adminAuditUsage) }
	data := fs.String("data", envOr(getenv, "KLUIS_DATA", "./kluis-data"), "data folder")
	dbSpec := dbFlag(fs)
	sinceArg := fs.String("since", "", "first moment to export")
	format := fs.String("format", audit.CSV, "csv or json")
	output := fs.String("output", "", "file to write")
	if err := fs.Parse(args[1:]); err != nil {
		return usageError{err}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	if *format != audit.CSV && *format != audit.JSON {
		return usageError{fmt.Errorf("--format %q: choose csv or json", *format)}
	}
	since, err := parseSince(*sinceArg, time.Now())
	if err != nil {
		return usageError{err}
	}
	spec, err := resolveDB(*dbSpec, getenv)
	if err != nil {
		return err
	}
	db, err := openAdminDB(ctx, spec, *data)
	if err != nil {
		return err
	}
	defer db.Close()
	w := stdout
	var f *os.File
	if *output != "" {
		f, err = os.OpenFile(*output, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return fmt.Errorf("--output: %w", err)
		}
		w = f
	}
	err = audit.New(db, 0, nil, nil).Export(ctx, since, *format, w)
	if f != nil {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			os.Remove(*output)
		}
	}
	return err
}

// parseSince reads --since: empty (everything), a date, an RFC 3339 time,
// or an age such as 30d or 12h counted back from now.
func parseSince(v string, now time.Time) (time.Time, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t.UTC(), nil
	}
	if t, err := time.Parse("2006-01-02", v); err == nil {
		return t.UTC(), nil
	}
	if d, err := unit.ParseDuration(v); err == nil {
		return now.Add(-d).UTC(), nil
	}
	return time.Time{}, fmt.Errorf("--since %q: give a date (2025-01-31), a time (2025-01-31T12:00:00Z) or an age (30d, 12h)", v)
}
