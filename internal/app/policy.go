package app

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/kluis-nl/kluis/internal/policy"
)

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
