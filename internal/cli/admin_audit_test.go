package cli

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kluis-nl/kluis/internal/audit"
	"github.com/kluis-nl/kluis/internal/store"
)

// TestAdminBreakGlassAndVerify: a destructive admin command without
// --reason is refused and changes nothing; with it, the audit entry names
// the break-glass administrator (OS user and host), the role and the
// reason; kluis admin audit verify passes, and after an entry is edited in
// the database it fails with exit code 5 naming that entry.
func TestAdminBreakGlassAndVerify(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db, err := store.OpenSQLite(ctx, filepath.Join(dir, "kluis.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	cmd := func(args ...string) (string, string, error) {
		var out, errOut bytes.Buffer
		err := run(ctx, append(args, "--data", dir), noEnv, &out, &errOut)
		return out.String(), errOut.String(), err
	}
	if _, e, err := cmd("admin", "apikey", "create", "--sender", "a@example.nl"); err != nil {
		t.Fatalf("create: %v %s", err, e)
	}
	keys, err := db.APIKeys(ctx)
	if err != nil || len(keys) != 1 {
		t.Fatalf("keys %v %v", keys, err)
	}
	id := keys[0].ID

	for _, reason := range []string{"", "   "} {
		args := []string{"admin", "apikey", "revoke", id}
		if reason != "" {
			args = append(args, "--reason", reason)
		}
		_, _, err := cmd(args...)
		if exitCode(err) != exitUsage || !strings.Contains(err.Error(), "--reason") {
			t.Fatalf("revoke with reason %q: exit %d, %v", reason, exitCode(err), err)
		}
	}
	if k, _ := db.APIKeys(ctx); k[0].RevokedAt != nil {
		t.Fatal("revoked without a reason")
	}
	for _, args := range [][]string{{"admin", "rotate-master-key"}, {"admin", "export-identity", "t1", "--password-stdin"}} {
		if _, _, err := cmd(args...); exitCode(err) != exitUsage || !strings.Contains(err.Error(), "--reason") {
			t.Errorf("%v without --reason: exit %d, %v", args, exitCode(err), err)
		}
	}
	if _, e, err := cmd("admin", "apikey", "revoke", id, "--reason", "ticket 42: script retired"); err != nil {
		t.Fatalf("revoke: %v %s", err, e)
	}

	out, _, err := cmd("admin", "audit", "export", "--format", "json")
	if err != nil {
		t.Fatal(err)
	}
	var revoke, create *audit.Entry
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var e audit.Entry
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatal(err)
		}
		switch e.Action {
		case audit.APIKeyRevoke:
			revoke = &e
		case audit.APIKeyCreate:
			create = &e
		}
	}
	if revoke == nil || !strings.HasPrefix(revoke.Actor, "break-glass:") || !strings.Contains(revoke.Actor, "@") ||
		revoke.Role != audit.BreakGlassRole || revoke.Reason != "ticket 42: script retired" || revoke.Object != id {
		t.Errorf("revoke entry %+v", revoke)
	}
	if create == nil || create.Actor != revoke.Actor || create.Role != audit.BreakGlassRole || create.Reason != "" {
		t.Errorf("create entry %+v", create)
	}

	out, _, err = cmd("admin", "audit", "verify")
	if err != nil || !strings.Contains(out, "whole") {
		t.Fatalf("verify: %v %q", err, out)
	}

	raw, err := sql.Open("sqlite", filepath.Join(dir, "kluis.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	for _, q := range []string{`DROP TRIGGER audit_no_update`, `UPDATE audit SET reason = 'routine' WHERE action = 'apikey.revoke'`} {
		if _, err := raw.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	_, _, err = cmd("admin", "audit", "verify")
	if exitCode(err) != exitIntegrity || err == nil || !strings.Contains(err.Error(), "does not match its hash") {
		t.Fatalf("verify after an edit: exit %d, %v", exitCode(err), err)
	}
	if !strings.Contains(err.Error(), "entry "+itoa(revokeID(t, db))) {
		t.Errorf("the break does not name the edited entry: %v", err)
	}
}

func revokeID(t *testing.T, db *store.DB) int64 {
	var id int64
	err := db.AuditChain(context.Background(), 0, func(a *store.AuditRow) error {
		if a.Action == audit.APIKeyRevoke {
			id = a.ID
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func itoa(v int64) string { b, _ := json.Marshal(v); return string(b) }
