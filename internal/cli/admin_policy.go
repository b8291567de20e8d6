package cli

import (
	"fmt"

	"github.com/kluis-nl/kluis/internal/policy"
)

// adminPolicy is kluis admin policy check FILE: check a policy file the way
// kluis serve --policy FILE does at start and on SIGHUP.
func (a *app) adminPolicy(args []string) error {
	f := a.flags("admin policy check", "cli.policy.usage")
	if len(args) == 0 || args[0] != "check" {
		if _, err := f.parse(args); err != nil {
			return err
		}
		return f.usageError("cli.policy.give_file")
	}
	pos, err := f.parse(args[1:])
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return f.usageError("cli.policy.give_file")
	}
	p, err := policy.Load(pos[0])
	if err != nil {
		return &cliError{code: exitUsage, msg: err.Error(), hint: a.p.T("cli.policy.invalid"), err: err}
	}
	fmt.Fprintln(a.io.Out, a.p.T("cli.policy.file", pos[0]))
	p.Describe(a.io.Out)
	fmt.Fprintln(a.io.Out, a.p.T("cli.policy.open_limits"))
	fmt.Fprintln(a.io.Out, "OK")
	return nil
}
