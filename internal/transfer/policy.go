package transfer

import (
	"github.com/kluis-nl/kluis/internal/policy"
	"github.com/kluis-nl/kluis/internal/store"
)

// Policy returns the policy in force (Deps.Policy).
func (s *Service) Policy() *policy.Policy {
	if s.policy != nil {
		if p := s.policy(); p != nil {
			return p
		}
	}
	return policy.Default()
}

// ceiling is the server's own limits: the policy can only narrow them.
func (s *Service) ceiling() policy.Limits {
	return policy.Limits{
		MaxTransferSize: s.cfg.MaxTransferSize,
		DefaultExpiry:   s.cfg.DefaultExpiry,
		MaxExpiry:       s.cfg.MaxExpiry,
		PasswordModes:   policy.AllPasswordModes(),
		AllowMessage:    true, AllowCustomText: true, AllowShowFilenames: true,
		MaxRecipients: s.cfg.MaxRecipients,
	}
}

// DefaultLimits are the limits of the default rule within the server's
// own, for display (GET /api/v1/config).
func (s *Service) DefaultLimits() policy.Limits {
	return s.Policy().Defaults().Cap(s.ceiling())
}

// Decide is the policy's decision for a transfer from sender to
// recipients, with its limits capped by the server's own settings: what
// a transfer gets. The send path uses it (decide), and so does the admin
// console's "test this sender and recipient".
func (s *Service) Decide(sender string, recipients []string) (*policy.Decision, error) {
	d, err := s.Policy().Decide(sender, recipients)
	if err != nil {
		return nil, err
	}
	d.Cap(s.ceiling())
	return d, nil
}

// decide is Decide for a transfer being made: a refusal is logged.
func (s *Service) decide(sender string, recipients []string) (*policy.Decision, error) {
	d, err := s.Decide(sender, recipients)
	if err != nil {
		s.log.Info("transfer refused by policy", "action", "transfer.create", "result", "policy")
	}
	return d, err
}

// maxSize is a transfer's size budget: the policy's limit stored at Create,
// never above the server's.
func (s *Service) maxSize(t *store.TransferRow) int64 {
	if m := parseOptions(t.Options).MaxSize; m > 0 && m < s.cfg.MaxTransferSize {
		return m
	}
	return s.cfg.MaxTransferSize
}

// CanSMS reports whether this server can send SMS codes (an SMS gateway
// or the development mailbox is set), so forms offer password+sms only
// where Validate would accept it.
func (s *Service) CanSMS() bool { return s.sms != nil }
