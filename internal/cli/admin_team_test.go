package cli

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kluis-nl/kluis/internal/store"
)

// TestAdminTeam adds, lists and removes members with kluis admin team and
// finds each change in the audit log with the administrator's reason.
func TestAdminTeam(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	e := openKeysEngine(t, dir) // makes the database and the master key
	e.db.Close()
	var out, errOut bytes.Buffer
	do := func(args ...string) error {
		out.Reset()
		errOut.Reset()
		return run(ctx, append(append([]string{"admin", "team"}, args...), "--data", dir), english(noEnv), &out, &errOut)
	}
	if err := do("add", "inkomen", "Anna@Gemeente.nl", "--reason", "new colleague"); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "anna@gemeente.nl") || !strings.Contains(out.String(), "has no inbox yet") || !strings.Contains(errOut.String(), "has no key") {
		t.Fatalf("add:\n%s\n%s", out.String(), errOut.String())
	}
	if err := do("list", "inkomen"); err != nil || !strings.Contains(out.String(), "anna@gemeente.nl") {
		t.Fatalf("list: %v\n%s", err, out.String())
	}
	if err := do("remove", "inkomen", "anna@gemeente.nl"); exitCode(err) != exitUsage {
		t.Fatalf("remove without a reason: %v", err)
	}
	if err := do("remove", "inkomen", "anna@gemeente.nl", "--reason", "moved to another team"); err != nil {
		t.Fatal(err)
	}
	if err := do("remove", "inkomen", "anna@gemeente.nl", "--reason", "again"); err == nil || !strings.Contains(err.Error(), "not a member") {
		t.Fatalf("removed twice: %v", err)
	}
	if err := do("add", "Team Inkomen", "a@gemeente.nl"); err == nil || !strings.Contains(err.Error(), "not a team id") {
		t.Fatalf("bad team id: %v", err)
	}
	if err := do("wipe", "inkomen"); exitCode(err) != exitUsage {
		t.Fatalf("unknown subcommand: %v", err)
	}
	db, err := store.OpenSQLite(ctx, filepath.Join(dir, "kluis.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var got []string
	if err := db.AuditSince(ctx, time.Time{}, func(r *store.AuditRow) error {
		if strings.HasPrefix(r.Action, "team.") {
			got = append(got, r.Action+" "+r.Actor+" "+r.Reason+" "+r.Detail)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	joined := strings.Join(got, "\n")
	for _, want := range []string{"team.add break-glass:", "new colleague member=anna@gemeente.nl", "team.remove break-glass:", "moved to another team member=anna@gemeente.nl"} {
		if !strings.Contains(joined, want) {
			t.Errorf("audit lacks %q:\n%s", want, joined)
		}
	}
}
