package cli

import (
	"context"
	"os"
	"os/user"
	"strings"

	"github.com/kluis-nl/kluis/internal/audit"
)

// reasonFlag defines --reason TEXT: why the administrator acts, recorded
// in the audit log with the action.
func (f *flagSet) reasonFlag() *string {
	return f.String("reason", "cli.ph.reason", "cli.flag.reason")
}

// breakGlass returns ctx carrying the local administrator for the audit
// log: kluis admin on the server is the break-glass path (no sign-in, no
// MFA), so its entries name the operating system user and host, the role
// "break-glass-admin" and the reason. With required, an empty reason is a
// usage error.
func (a *app) breakGlass(ctx context.Context, f *flagSet, reason string, required bool) (context.Context, error) {
	reason = strings.TrimSpace(reason)
	if reason == "" && required {
		return nil, f.usageError("cli.admin.reason_required")
	}
	name := a.getenv("USER")
	if u, err := user.Current(); err == nil && u.Username != "" {
		name = u.Username // the account, not what USER claims
	}
	if name == "" {
		name = "unknown"
	}
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "unknown"
	}
	ctx = audit.WithActor(ctx, audit.BreakGlass(name, host))
	ctx = audit.WithRole(ctx, audit.BreakGlassRole)
	return audit.WithReason(ctx, reason), nil
}
