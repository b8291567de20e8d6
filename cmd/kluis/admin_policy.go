package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

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

// loadPolicy reads --policy at start: no file is the demo policy.
func loadPolicy(file string, log *slog.Logger) (*policy.Holder, error) {
	if file == "" {
		log.Warn("no --policy file: this is a demo installation, every sender and recipient address is allowed")
		return policy.NewHolder(policy.Default()), nil
	}
	p, err := policy.Load(file)
	if err != nil {
		return nil, fmt.Errorf("--policy: %w", err)
	}
	logPolicy(log, "policy loaded", file, p)
	return policy.NewHolder(p), nil
}

func logPolicy(log *slog.Logger, msg, file string, p *policy.Policy) {
	if p.Demo() {
		log.Warn(msg+"; it names no organisation_domains, so this is a demo installation: every address is allowed", "file", file)
		return
	}
	log.Info(msg, "file", file, "organisation_domains", p.Domains())
}

// notifyHangup delivers SIGHUP on the returned channel until stop.
func notifyHangup() (<-chan os.Signal, func()) {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGHUP)
	return ch, func() { signal.Stop(ch) }
}

// watchPolicy reloads the policy file on every signal from hup until ctx
// ends. A file that does not validate is logged and the policy in force
// stays.
func watchPolicy(ctx context.Context, hup <-chan os.Signal, h *policy.Holder, file string, log *slog.Logger) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
		}
		if file == "" {
			log.Info("SIGHUP: no --policy file configured; nothing to reload")
			continue
		}
		if err := h.Reload(file); err != nil {
			log.Error("policy reload failed; the previous policy stays in force", "file", file, "err", err.Error())
			continue
		}
		logPolicy(log, "policy reloaded", file, h.Get())
	}
}
