package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/kluis-nl/kluis/internal/policy"
)

const adminPolicyUsage = `Usage:
  kluis admin policy check FILE

Checks an organisation policy file (JSON, see docs/policy.example.json) the
way kluis serve --policy FILE does at start and on SIGHUP, and prints what
it allows. Exit status 0 when the file is valid, 1 when it is not.
`

// runAdminPolicy is `kluis admin policy ...`.
func runAdminPolicy(_ context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 1 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
		fmt.Fprint(stdout, adminPolicyUsage)
		return nil
	}
	if len(args) != 2 || args[0] != "check" {
		fmt.Fprint(stderr, adminPolicyUsage)
		return usageError{errors.New("give the file to check: kluis admin policy check FILE")}
	}
	p, err := policy.Load(args[1])
	if err != nil {
		return fmt.Errorf("%w\nThe policy is NOT valid; kluis serve would not start with it (and a reload would keep the old one)", err)
	}
	fmt.Fprintf(stdout, "Policy file %s\n", args[1])
	p.Describe(stdout)
	fmt.Fprintln(stdout, "Limits the policy leaves open, and any above them, follow the server's flags (--max-transfer-size, --default-expiry, --max-expiry, --max-recipients).")
	fmt.Fprintln(stdout, "OK")
	return nil
}
