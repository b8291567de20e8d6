package policy

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/kluis-nl/kluis"
	"github.com/kluis-nl/kluis/internal/locale"
	"github.com/kluis-nl/kluis/internal/unit"
)

// fileJSON is the canonical form Marshal writes.
type fileJSON struct {
	OrganisationDomains []string    `json:"organisation_domains,omitempty"`
	SSODomains          *[]string   `json:"sso_domains,omitempty"`
	Defaults            *limitsJSON `json:"defaults,omitempty"`
	Rules               []ruleJSON  `json:"rules,omitempty"`
}

type ruleJSON struct {
	Name        string      `json:"name"`
	Description string      `json:"description,omitempty"`
	Senders     []string    `json:"senders,omitempty"`
	Recipients  []string    `json:"recipients,omitempty"`
	Action      string      `json:"action"`
	Limits      *limitsJSON `json:"limits,omitempty"`
}

type limitsJSON struct {
	MaxTransferSize    *int64               `json:"max_transfer_size,omitempty"`
	DefaultExpiry      string               `json:"default_expiry,omitempty"`
	MaxExpiry          string               `json:"max_expiry,omitempty"`
	PasswordModes      []kluis.PasswordMode `json:"password_modes,omitempty"`
	AllowMessage       *bool                `json:"allow_message,omitempty"`
	AllowCustomText    *bool                `json:"allow_custom_text,omitempty"`
	AllowShowFilenames *bool                `json:"allow_show_filenames,omitempty"`
	MaxRecipients      *int                 `json:"max_recipients,omitempty"`
	MaxOpenDrafts      *int                 `json:"max_open_drafts,omitempty"`
	MaxBytesPerDay     *int64               `json:"max_bytes_per_day,omitempty"`
	MaxReplies         *int                 `json:"max_replies,omitempty"`
}

func (p *partial) toJSON() *limitsJSON {
	if p == nil {
		return nil
	}
	l := &limitsJSON{MaxTransferSize: p.MaxTransferSize, PasswordModes: p.PasswordModes,
		AllowMessage: p.AllowMessage, AllowCustomText: p.AllowCustomText, AllowShowFilenames: p.AllowShowFilenames, MaxRecipients: p.MaxRecipients,
		MaxOpenDrafts: p.MaxOpenDrafts, MaxBytesPerDay: p.MaxBytesPerDay, MaxReplies: p.MaxReplies}
	if p.DefaultExpiry != nil {
		l.DefaultExpiry = unit.FormatDuration(*p.DefaultExpiry)
	}
	if p.MaxExpiry != nil {
		l.MaxExpiry = unit.FormatDuration(*p.MaxExpiry)
	}
	return l
}

// Marshal writes the policy in canonical form: Parse(Marshal(p)) is p.
func (p *Policy) Marshal() ([]byte, error) {
	if p == nil {
		p = Default()
	}
	f := fileJSON{OrganisationDomains: p.domains, Defaults: p.defaults.toJSON()}
	if p.ssoDomains != nil {
		f.SSODomains = &p.ssoDomains
	}
	for _, r := range p.rules {
		rj := ruleJSON{Name: r.name, Description: r.description, Action: "allow", Limits: r.limits.toJSON()}
		if r.deny {
			rj.Action = "deny"
		}
		for _, s := range r.senders {
			rj.Senders = append(rj.Senders, s.String())
		}
		for _, s := range r.recipients {
			rj.Recipients = append(rj.Recipients, s.String())
		}
		f.Rules = append(f.Rules, rj)
	}
	return json.MarshalIndent(f, "", "  ")
}

// Describe writes a summary of the policy for administrators. Limits the
// policy leaves open are shown as "the server's setting" (the --max-*
// flags), which is also the ceiling for every limit.
func (p *Policy) Describe(w io.Writer) {
	if p.Demo() {
		fmt.Fprintln(w, "Organisation domains: none. This is a DEMO policy: the default rule allows every")
		fmt.Fprintln(w, "  address, so Kluis would send from anyone to anyone. Set organisation_domains for real use.")
	} else {
		fmt.Fprintf(w, "Organisation domains: %s (subdomains included)\n", strings.Join(p.domains, ", "))
		fmt.Fprintln(w, "  Default rule: a transfer is allowed only when the sender or the recipient is inside them.")
	}
	if d := p.SSODomains(); len(d) > 0 {
		fmt.Fprintf(w, "Single sign-on required (with --oidc-issuer) for senders at: %s\n", strings.Join(d, ", "))
	}
	describeLogins(w, p.LoginProviders())
	describeDropoffs(w, p.Dropoffs())
	fmt.Fprintln(w, "Default limits:")
	describeLimits(w, "  ", p.Defaults())
	if p == nil || len(p.rules) == 0 {
		fmt.Fprintln(w, "Rules: none")
		return
	}
	fmt.Fprintf(w, "Rules (the first that matches a sender and recipient decides):\n")
	for i, r := range p.rules {
		act := "allow"
		if r.deny {
			act = "DENY"
		}
		fmt.Fprintf(w, "  %d. %q: %s from %s to %s\n", i+1, r.name, act, patterns(r.senders), patterns(r.recipients))
		if r.description != "" {
			fmt.Fprintf(w, "     %s\n", strings.ReplaceAll(r.description, "\n", "\n     "))
		}
		if r.limits != nil {
			describeLimits(w, "     ", r.limits.over(p.Defaults()))
		}
	}
}

func patterns(ps []pattern) string {
	if len(ps) == 0 {
		return "anyone"
	}
	return strings.Join(patternStrings(ps), ", ")
}

func describeLimits(w io.Writer, indent string, l Limits) {
	orServer := func(set bool, v string) string {
		if !set {
			return "the server's setting"
		}
		return v
	}
	yes := func(b bool) string {
		if b {
			return "allowed"
		}
		return "not allowed"
	}
	var modes []string
	for _, m := range l.PasswordModes {
		modes = append(modes, string(m))
	}
	fmt.Fprintf(w, "%smax transfer size: %s\n", indent, orServer(l.MaxTransferSize > 0, locale.For(locale.EN).Size(l.MaxTransferSize)))
	fmt.Fprintf(w, "%sexpiry: default %s, at most %s\n", indent, orServer(l.DefaultExpiry > 0, days(l.DefaultExpiry)), orServer(l.MaxExpiry > 0, days(l.MaxExpiry)))
	fmt.Fprintf(w, "%spassword modes: %s\n", indent, strings.Join(modes, ", "))
	fmt.Fprintf(w, "%sconfidential message: %s; edited notification text: %s; file names in mails: %s\n", indent,
		yes(l.AllowMessage), yes(l.AllowCustomText), yes(l.AllowShowFilenames))
	fmt.Fprintf(w, "%smax recipients: %s\n", indent, orServer(l.MaxRecipients > 0, fmt.Sprint(l.MaxRecipients)))
	fmt.Fprintf(w, "%sper sender: %d unfinished transfers at once, %s of files a day; %d replies per recipient and transfer\n", indent,
		l.MaxOpenDrafts, locale.For(locale.EN).Size(l.MaxBytesPerDay), l.MaxReplies)
	a := l.RecipientAuth
	var allowed []string
	for _, m := range a.Allowed {
		if a.Allows(m, false) { // not below the minimum
			allowed = append(allowed, string(m))
		}
	}
	special := string(a.MinimumFor(true))
	if a.SpecialDefault {
		special += " (marked by default on the send form)"
	}
	fmt.Fprintf(w, "%srecipient verification: %s allowed; at least %s; with special personal data at least %s\n", indent,
		strings.Join(allowed, ", "), a.Minimum, special)
}

// describeDropoffs lists the drop-off points.
func describeDropoffs(w io.Writer, ds []Dropoff) {
	if len(ds) == 0 {
		fmt.Fprintln(w, "Drop-off points: none")
		return
	}
	fmt.Fprintln(w, "Drop-off points (members: kluis admin team list TEAM):")
	for _, d := range ds {
		files := fmt.Sprintf("%d files", d.MaxFiles)
		size := "the default size"
		if d.MaxSize > 0 {
			size = locale.For(locale.EN).Size(d.MaxSize)
		}
		exp := "the default expiry"
		if d.Expiry > 0 {
			exp = days(d.Expiry)
		}
		fmt.Fprintf(w, "  /to/%s %q for team %s: at most %s, %s; kept %s\n", d.Slug, d.Name("en"), d.Team, files, size, exp)
	}
}

// describeLogins lists the OpenID providers recipients may log in with
// after the password (password+login): what senders write, what must
// match, and the acr a login must have.
func describeLogins(w io.Writer, ls []LoginProvider) {
	if len(ls) == 0 {
		fmt.Fprintln(w, "Recipient login providers: none (password+login cannot be chosen)")
		return
	}
	fmt.Fprintln(w, "Recipient login providers (--recipient-login ADDR=NAME:VALUE):")
	for _, lp := range ls {
		match := "claim " + lp.Claim
		switch {
		case lp.Tenant != "":
			match += " in tenant " + lp.Tenant
		case len(lp.EmailDomains) > 0:
			match += " for " + strings.Join(lp.EmailDomains, ", ")
		}
		fmt.Fprintf(w, "  %s: %q, issuer %s, client %s, %s must match the sender's value", lp.Name, lp.Label, lp.Issuer, lp.ClientID, match)
		if len(lp.ACR) > 0 {
			fmt.Fprintf(w, "; acr %s", strings.Join(lp.ACR, " or "))
		}
		fmt.Fprintln(w)
	}
}

func days(d time.Duration) string { return unit.FormatDuration(d) }
