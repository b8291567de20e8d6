package cli

import (
	"context"
	"errors"
	"os"
	"strings"
	"time"

	"github.com/kluis-nl/kluis/internal/audit"
	"github.com/kluis-nl/kluis/internal/unit"
)

// adminAudit is kluis admin audit export: the audit log as CSV or JSON
// Lines (the same in every language: it is for programs).
func (a *app) adminAudit(ctx context.Context, args []string) error {
	f := a.flags("admin audit export", "cli.audit.usage")
	if len(args) == 0 || args[0] != "export" {
		if _, err := f.parse(args); err != nil {
			return err
		}
		return f.usageError("cli.audit.which")
	}
	sinceArg := f.String("since", "cli.ph.when", "cli.flag.since")
	format := f.StringDefault("format", audit.CSV, "cli.ph.format", "cli.flag.format")
	output := f.String("output", "cli.ph.file", "cli.flag.output")
	sf := f.storeFlags(false)
	pos, err := f.parse(args[1:])
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return f.usageError("cli.err.unexpected_argument", pos[0])
	}
	if *format != audit.CSV && *format != audit.JSON {
		return f.usageError("cli.audit.format", *format)
	}
	since, err := parseSince(*sinceArg, time.Now())
	if err != nil {
		return f.usageError("cli.audit.since", *sinceArg)
	}
	st, err := a.store(sf)
	if err != nil {
		return err
	}
	db, err := a.openStore(ctx, st)
	if err != nil {
		return err
	}
	defer db.Close()
	w := a.io.Out
	var file *os.File
	if *output != "" {
		file, err = os.OpenFile(*output, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return a.fail(exitUsage, "", "cli.err.flag_file", "--output", a.fileText(err))
		}
		w = file
	}
	err = audit.New(db, 0, nil, nil).Export(ctx, since, *format, w)
	if file != nil {
		if cerr := file.Close(); err == nil {
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
	return time.Time{}, errors.New("not a date, time or age")
}
