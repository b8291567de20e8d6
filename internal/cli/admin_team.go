package cli

import (
	"context"
	"fmt"
	"text/tabwriter"

	"github.com/kluis-nl/kluis/internal/audit"
	"github.com/kluis-nl/kluis/internal/sender"
)

// adminTeam is kluis admin team add|remove|rekey|list TEAM [ADDRESS]: the
// members of a drop-off team (package sender, team.go). Adding and
// removing are audited with the administrator and --reason; removing
// renews the team key.
func (a *app) adminTeam(ctx context.Context, args []string) error {
	cmds := map[string]int{"add": 2, "remove": 2, "rekey": 1, "list": 1}
	if len(args) == 0 || cmds[args[0]] == 0 {
		f := a.flags("admin team", "cli.team.usage")
		if _, err := f.parse(args); err != nil {
			return err
		}
		return f.usageError("cli.team.which")
	}
	cmd := args[0]
	f := a.flags("admin team "+cmd, "cli.team.usage")
	var reason *string
	if cmd != "list" {
		reason = f.reasonFlag()
	}
	sf := f.storeFlags(true)
	pos, err := f.parse(args[1:])
	if err != nil {
		return err
	}
	if len(pos) != cmds[cmd] {
		return f.usageError("cli.team.args")
	}
	if reason != nil {
		if ctx, err = a.breakGlass(ctx, f, *reason, cmd == "remove"); err != nil {
			return err
		}
	}
	st, db, err := a.openStoreFlags(ctx, sf)
	if err != nil {
		return err
	}
	defer db.Close()
	keys, err := a.adminKeys(st)
	if err != nil {
		return err
	}
	svc := sender.New(sender.Deps{DB: db, Keys: keys, Config: sender.DefaultConfig(), Audit: audit.New(db, 0, nil, nil)})
	var team *sender.TeamState
	switch cmd {
	case "add":
		team, err = svc.AddTeamMember(ctx, pos[0], pos[1])
	case "remove":
		team, err = svc.RemoveTeamMember(ctx, pos[0], pos[1])
	case "rekey":
		team, err = svc.RekeyTeam(ctx, pos[0])
	default:
		team, err = svc.Team(ctx, pos[0])
	}
	if err != nil {
		return err
	}
	if team.Generation == 0 {
		fmt.Fprintln(a.io.Err, a.p.T("cli.team.no_key", team.Team))
	} else {
		fmt.Fprintln(a.io.Err, a.p.T("cli.team.key", team.Team, team.Generation))
	}
	tw := tabwriter.NewWriter(a.io.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, a.p.T("cli.team.header"))
	for _, m := range team.Members {
		state := a.p.T("cli.team.holds")
		switch {
		case !m.HasInbox:
			state = a.p.T("cli.team.no_inbox")
		case !m.Holds:
			state = a.p.T("cli.team.waits")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", m.Email, a.date(&m.AddedAt), state)
	}
	return tw.Flush()
}
