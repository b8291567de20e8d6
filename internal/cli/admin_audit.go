package cli

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/kluis-nl/kluis/internal/audit"
	"github.com/kluis-nl/kluis/internal/store"
	"github.com/kluis-nl/kluis/internal/unit"
)

// adminAudit is kluis admin audit export: the audit log as CSV or JSON
// Lines (the same in every language: it is for programs).
func (a *app) adminAudit(ctx context.Context, args []string) error {
	if len(args) > 0 && args[0] == "verify" {
		return a.adminAuditVerify(ctx, args[1:])
	}
	f := a.flags("admin audit export", "cli.audit.usage")
	if len(args) == 0 || args[0] != "export" {
		if _, err := f.parse(args); err != nil {
			return err
		}
		return f.usageError("cli.audit.which")
	}
	reason := f.reasonFlag()
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
	ctx, err = a.breakGlass(ctx, f, *reason, false)
	if err != nil {
		return err
	}
	_, db, err := a.openStoreFlags(ctx, sf)
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
	rec := audit.New(db, 0, nil, nil)
	err = rec.Export(ctx, since, *format, w)
	if err == nil {
		// The log holds personal data: who took a copy is in it too.
		err = rec.Record(ctx, db.Q, audit.Event{Action: audit.AuditExport, Detail: "format=" + *format + " since=" + since.Format(time.RFC3339)})
	}
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

// adminAuditVerify is kluis admin audit verify: walk the hash chain from
// the retention checkpoint to the newest entry; a break is exit code 5
// (integrity) with the first broken entry's id and time.
func (a *app) adminAuditVerify(ctx context.Context, args []string) error {
	f := a.flags("admin audit verify", "cli.audit.verify_usage")
	sf := f.storeFlags(false)
	if err := f.parseNone(args); err != nil {
		return err
	}
	_, db, err := a.openStoreFlags(ctx, sf)
	if err != nil {
		return err
	}
	defer db.Close()
	v, err := audit.New(db, 0, nil, nil).Verify(ctx)
	if err != nil {
		return err
	}
	h := v.Head
	if v.Break != nil {
		b := v.Break
		key := auditBreakKeys[b.Problem]
		return a.fail(exitIntegrity, a.p.T("cli.hint.audit_broken"), key, b.ID, formatAuditTime(b.At), h.LastID)
	}
	if h.CutID > 0 {
		fmt.Fprintln(a.io.Out, a.p.T("cli.audit.verify_checkpoint", h.CutID, formatAuditTime(h.CutAt), hex.EncodeToString(h.CutHash)))
	}
	fmt.Fprintln(a.io.Out, a.p.T("cli.audit.verify_ok", v.Entries, h.LastID, hex.EncodeToString(h.LastHash)))
	return nil
}

// auditBreakKeys say each problem store.VerifyAudit reports.
var auditBreakKeys = map[string]string{
	store.AuditEdited:     "cli.audit.verify_edited",
	store.AuditLink:       "cli.audit.verify_link",
	store.AuditBeyondHead: "cli.audit.verify_beyond_head",
	store.AuditTail:       "cli.audit.verify_tail",
}

func formatAuditTime(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05.000Z") }

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
