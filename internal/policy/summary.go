package policy

// RuleSummary is one rule as the admin console shows it.
type RuleSummary struct {
	Name, Description string
	Deny              bool
	// Senders and Recipients are the rule's patterns as written in the
	// file (a domain as "domain:x.nl"); empty matches everyone.
	Senders, Recipients []string
	// Limits are what an allow rule gives (its own limits over the
	// defaults); nil when the rule sets none of its own.
	Limits *Limits
}

// Rules returns the policy's rules in order: the first that matches a
// sender and recipient decides.
func (p *Policy) Rules() []RuleSummary {
	if p == nil {
		return nil
	}
	out := make([]RuleSummary, 0, len(p.rules))
	for _, r := range p.rules {
		s := RuleSummary{Name: r.name, Description: r.description, Deny: r.deny,
			Senders: patternStrings(r.senders), Recipients: patternStrings(r.recipients)}
		if r.limits != nil && !r.deny {
			l := r.limits.over(p.Defaults())
			s.Limits = &l
		}
		out = append(out, s)
	}
	return out
}

func patternStrings(ps []pattern) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.String())
	}
	return out
}
