// Package policy is the organisation's sending policy: which senders may
// send to which recipients, and with which limits.
//
// A policy is a JSON file, validated strictly when the server starts, when
// it is reloaded (SIGHUP) and by `kluis admin policy check FILE`:
//
//	{
//	  "organisation_domains": ["gemeente.nl"],
//	  "defaults": {"max_transfer_size": "2GB", "max_expiry": "14d"},
//	  "rules": [
//	    {"name": "no private mail", "recipients": ["gmail.com"], "action": "deny",
//	     "description": "Send to a work address instead."},
//	    {"name": "care partners", "recipients": ["*.zorg.nl"], "action": "allow",
//	     "limits": {"password_modes": ["manual"], "allow_show_filenames": false}}
//	  ]
//	}
//
// Each (sender, recipient) pair is decided by the first rule whose senders
// match the sender and whose recipients match the recipient (an empty list
// matches everyone). A deny rule refuses the transfer; an allow rule allows
// it with the defaults overridden by the rule's own limits. When no rule
// matches, the default rule decides: with organisation domains configured
// it allows a pair only when the sender or the recipient is inside one of
// them (subdomains included), so Kluis is never an open relay; with none
// configured (a demo installation) it allows every pair. A transfer gets
// the strictest limits over all its recipients, and the server's own flags
// (--max-transfer-size, --max-expiry, ...) stay the ceiling.
package policy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/kluis-nl/kluis"
	"github.com/kluis-nl/kluis/internal/unit"
)

// MaxFileSize bounds a policy file.
const MaxFileSize = 1 << 20

// Field names of the limits, as in the file. Decision.Source takes them.
const (
	FieldMaxTransferSize    = "max_transfer_size"
	FieldDefaultExpiry      = "default_expiry"
	FieldMaxExpiry          = "max_expiry"
	FieldPasswordModes      = "password_modes"
	FieldAllowMessage       = "allow_message"
	FieldAllowCustomText    = "allow_custom_text"
	FieldAllowShowFilenames = "allow_show_filenames"
	FieldMaxRecipients      = "max_recipients"
	FieldMaxOpenDrafts      = "max_open_drafts"
	FieldMaxBytesPerDay     = "max_bytes_per_day"
	FieldMaxReplies         = "max_replies"
	FieldRecipientAuth      = "recipient_auth"
)

var limitFields = []string{FieldMaxTransferSize, FieldDefaultExpiry, FieldMaxExpiry, FieldPasswordModes,
	FieldAllowMessage, FieldAllowCustomText, FieldAllowShowFilenames, FieldMaxRecipients,
	FieldMaxOpenDrafts, FieldMaxBytesPerDay, FieldMaxReplies, FieldRecipientAuth}

// AuthLimits are the recipient verification methods a rule allows (see
// RecipientAuth). Unlike the other limits they apply per recipient: each
// recipient's own rule decides, so an outside recipient can need an SMS
// code while a colleague in the same transfer does not.
type AuthLimits struct {
	// Allowed methods, in order of kluis.AuthMethod.Level.
	Allowed []kluis.AuthMethod
	// Minimum is the weakest method allowed; SpecialMinimum the weakest
	// when the sender marks the transfer as containing special personal
	// data (AVG art. 9, BSN, medical data).
	Minimum, SpecialMinimum kluis.AuthMethod
	// SpecialDefault ticks "special personal data" on the send form.
	SpecialDefault bool
}

// AllAuthMethods returns the recipient verification methods, weakest first.
func AllAuthMethods() []kluis.AuthMethod {
	return []kluis.AuthMethod{kluis.AuthPassword, kluis.AuthPasswordSMS, kluis.AuthPasswordLogin}
}

// DefaultAuthLimits: every method allowed, the password alone is enough,
// and a transfer with special personal data needs the SMS code.
func DefaultAuthLimits() AuthLimits {
	return AuthLimits{Allowed: AllAuthMethods(), Minimum: kluis.AuthPassword, SpecialMinimum: kluis.AuthPasswordSMS}
}

// Allows reports whether m is allowed and at least the minimum (the
// special one when special).
func (a AuthLimits) Allows(m kluis.AuthMethod, special bool) bool {
	return slices.Contains(a.Allowed, m) && m.Level() >= a.MinimumFor(special).Level()
}

// MinimumFor is the weakest method allowed.
func (a AuthLimits) MinimumFor(special bool) kluis.AuthMethod {
	if special && a.SpecialMinimum.Level() > a.Minimum.Level() {
		return a.SpecialMinimum
	}
	return a.Minimum
}

// Quota defaults, when the policy names none (issue 11, item 6: one sender
// made 100 drafts of 2 GB each in 13 s, one recipient sent 30 replies in
// 3.4 s). A rule can raise them for a sender that needs more (a scanning
// service, an integration); no server flag caps them.
const (
	// DefaultMaxOpenDrafts is how many transfers one sender may have
	// unfinished (draft or uploading) at once.
	DefaultMaxOpenDrafts = 20
	// DefaultMaxBytesPerDay is how many bytes of files one sender may
	// declare in the transfers created in the last 24 hours.
	DefaultMaxBytesPerDay = 20_000_000_000
	// DefaultMaxReplies is how many replies one recipient may send to one
	// transfer.
	DefaultMaxReplies = 10
)

// AllPasswordModes returns the three password modes in their usual order.
func AllPasswordModes() []kluis.PasswordMode {
	return []kluis.PasswordMode{kluis.PasswordNone, kluis.PasswordGenerate, kluis.PasswordManual}
}

// Limits are resolved limits. A zero size, expiry or recipient count means
// the policy sets none of its own: the server's setting applies.
type Limits struct {
	MaxTransferSize    int64
	DefaultExpiry      time.Duration
	MaxExpiry          time.Duration
	PasswordModes      []kluis.PasswordMode // allowed modes, in the order of AllPasswordModes
	AllowMessage       bool
	AllowCustomText    bool // an edited subject or text of the notification mail
	AllowShowFilenames bool
	MaxRecipients      int
	// Quotas of the sender (see the Default* constants): unfinished
	// transfers at once, bytes declared in the transfers of the last 24
	// hours, and replies of one recipient to one transfer. Zero means no
	// limit (only in the server's ceiling, which sets none).
	MaxOpenDrafts  int
	MaxBytesPerDay int64
	MaxReplies     int
	// RecipientAuth is per recipient: Decide leaves it at the defaults;
	// Policy.RecipientAuth gives each recipient's.
	RecipientAuth AuthLimits
}

// AllowsPassword reports whether mode m is allowed.
func (l Limits) AllowsPassword(m kluis.PasswordMode) bool {
	return slices.Contains(l.PasswordModes, m)
}

// Cap returns the stricter of l and c, field by field (a zero number in
// either means "no limit"). The default expiry never exceeds the maximum.
func (l Limits) Cap(c Limits) Limits {
	d := &Decision{Limits: l, sources: map[string]string{}}
	d.Cap(c)
	return d.Limits
}

// partial is one limits block of the file: only the settings it names.
type partial struct {
	MaxTransferSize    *int64
	DefaultExpiry      *time.Duration
	MaxExpiry          *time.Duration
	PasswordModes      []kluis.PasswordMode
	AllowMessage       *bool
	AllowCustomText    *bool
	AllowShowFilenames *bool
	MaxRecipients      *int
	MaxOpenDrafts      *int
	MaxBytesPerDay     *int64
	MaxReplies         *int
	RecipientAuth      *AuthLimits
}

// over returns base with p's settings in place of base's.
func (p *partial) over(base Limits) Limits {
	if p == nil {
		return base
	}
	if p.MaxTransferSize != nil {
		base.MaxTransferSize = *p.MaxTransferSize
	}
	if p.DefaultExpiry != nil {
		base.DefaultExpiry = *p.DefaultExpiry
	}
	if p.MaxExpiry != nil {
		base.MaxExpiry = *p.MaxExpiry
	}
	if p.PasswordModes != nil {
		base.PasswordModes = slices.Clone(p.PasswordModes)
	}
	if p.AllowMessage != nil {
		base.AllowMessage = *p.AllowMessage
	}
	if p.AllowCustomText != nil {
		base.AllowCustomText = *p.AllowCustomText
	}
	if p.AllowShowFilenames != nil {
		base.AllowShowFilenames = *p.AllowShowFilenames
	}
	if p.MaxRecipients != nil {
		base.MaxRecipients = *p.MaxRecipients
	}
	if p.MaxOpenDrafts != nil {
		base.MaxOpenDrafts = *p.MaxOpenDrafts
	}
	if p.MaxBytesPerDay != nil {
		base.MaxBytesPerDay = *p.MaxBytesPerDay
	}
	if p.MaxReplies != nil {
		base.MaxReplies = *p.MaxReplies
	}
	if p.RecipientAuth != nil {
		base.RecipientAuth = *p.RecipientAuth
	}
	if base.DefaultExpiry > 0 && base.MaxExpiry > 0 && base.DefaultExpiry > base.MaxExpiry {
		base.DefaultExpiry = base.MaxExpiry
	}
	return base
}

type patternKind int

const (
	kindAddress    patternKind = iota // user@x.nl
	kindDomain                        // x.nl and its subdomains
	kindGlob                          // *@*.x.nl: path.Match on the address
	kindDomainGlob                    // *.x.nl: path.Match on the domain
)

type pattern struct {
	kind  patternKind
	value string // lower case
}

func (p pattern) String() string {
	if p.kind == kindDomain {
		return "domain:" + p.value
	}
	return p.value
}

func (p pattern) match(addr, domain string) bool {
	switch p.kind {
	case kindAddress:
		return addr == p.value
	case kindDomain:
		return inDomain(domain, p.value)
	case kindGlob:
		ok, _ := path.Match(p.value, addr)
		return ok
	case kindDomainGlob:
		ok, _ := path.Match(p.value, domain)
		return ok
	}
	return false
}

func inDomain(domain, d string) bool {
	return domain == d || strings.HasSuffix(domain, "."+d)
}

func matchAny(ps []pattern, addr, domain string) bool {
	if len(ps) == 0 {
		return true
	}
	for _, p := range ps {
		if p.match(addr, domain) {
			return true
		}
	}
	return false
}

// Rule is one rule of the policy.
type rule struct {
	name        string
	description string
	senders     []pattern
	recipients  []pattern
	deny        bool
	limits      *partial
}

// Policy is a validated policy. The zero value and nil are the demo
// policy: no organisation domains, everything allowed.
type Policy struct {
	domains []string
	// ssoDomains are the sender domains that must sign in with the
	// organisation's identity provider; nil (not in the file): the
	// organisation domains.
	ssoDomains []string
	defaults   *partial
	rules      []rule
	logins     []LoginProvider
	dropoffs   []Dropoff
}

// Default returns the built-in policy: no organisation domains (a demo
// installation: every address is allowed), all three password modes, a
// message, edited notification text and file names allowed, and the
// server's own size, expiry and recipient limits.
func Default() *Policy { return &Policy{} }

// Demo reports whether no organisation domains are configured, so every
// address is allowed by the default rule.
func (p *Policy) Demo() bool { return p == nil || len(p.domains) == 0 }

// Domains returns the organisation domains.
func (p *Policy) Domains() []string {
	if p == nil {
		return nil
	}
	return slices.Clone(p.domains)
}

// baseLimits is what applies before the file says anything.
func baseLimits() Limits {
	return Limits{PasswordModes: AllPasswordModes(), AllowMessage: true, AllowCustomText: true, AllowShowFilenames: true,
		MaxOpenDrafts: DefaultMaxOpenDrafts, MaxBytesPerDay: DefaultMaxBytesPerDay, MaxReplies: DefaultMaxReplies,
		RecipientAuth: DefaultAuthLimits()}
}

// Defaults returns the policy's default limits (what the default rule gives).
func (p *Policy) Defaults() Limits {
	if p == nil {
		return baseLimits()
	}
	return p.defaults.over(baseLimits())
}

// Decision is the outcome of Decide for an allowed transfer.
type Decision struct {
	// Limits are the strictest limits over all recipients.
	Limits Limits
	// Demo is true when no organisation domains are configured.
	Demo bool
	// Rules names the rules that allowed the recipients, in order; "" stands
	// for the default rule.
	Rules   []string
	sources map[string]string
}

// Source says, in words, what set a limit field (FieldMaxTransferSize,
// ...): `rule "name"` or "the default limits". It is empty when the limit
// comes from the server's own settings (see Cap) or from no setting at all.
func (d *Decision) Source(field string) string {
	if d == nil {
		return ""
	}
	return d.sources[field]
}

// Cap makes the decision's limits no looser than c (the server's own
// settings); where c is the stricter, Source becomes "".
func (d *Decision) Cap(c Limits) {
	if d.sources == nil {
		d.sources = map[string]string{}
	}
	d.tighten(c, "")
}

// tighten narrows d.Limits by l, recording src for each field l narrows.
func (d *Decision) tighten(l Limits, src string) {
	x := &d.Limits
	minInt64 := func(field string, cur *int64, v int64) {
		if v > 0 && (*cur == 0 || v < *cur) {
			*cur = v
			d.sources[field] = src
		}
	}
	minDur := func(field string, cur *time.Duration, v time.Duration) {
		if v > 0 && (*cur == 0 || v < *cur) {
			*cur = v
			d.sources[field] = src
		}
	}
	minDur(FieldDefaultExpiry, &x.DefaultExpiry, l.DefaultExpiry)
	minDur(FieldMaxExpiry, &x.MaxExpiry, l.MaxExpiry)
	if x.DefaultExpiry > 0 && x.MaxExpiry > 0 && x.DefaultExpiry > x.MaxExpiry {
		x.DefaultExpiry = x.MaxExpiry
		d.sources[FieldDefaultExpiry] = d.sources[FieldMaxExpiry]
	}
	ms := int64(x.MaxTransferSize)
	minInt64(FieldMaxTransferSize, &ms, l.MaxTransferSize)
	x.MaxTransferSize = ms
	mr := int64(x.MaxRecipients)
	minInt64(FieldMaxRecipients, &mr, int64(l.MaxRecipients))
	x.MaxRecipients = int(mr)
	od := int64(x.MaxOpenDrafts)
	minInt64(FieldMaxOpenDrafts, &od, int64(l.MaxOpenDrafts))
	x.MaxOpenDrafts = int(od)
	minInt64(FieldMaxBytesPerDay, &x.MaxBytesPerDay, l.MaxBytesPerDay)
	rp := int64(x.MaxReplies)
	minInt64(FieldMaxReplies, &rp, int64(l.MaxReplies))
	x.MaxReplies = int(rp)
	var modes []kluis.PasswordMode
	for _, m := range x.PasswordModes {
		if l.AllowsPassword(m) {
			modes = append(modes, m)
		}
	}
	if len(modes) < len(x.PasswordModes) {
		d.sources[FieldPasswordModes] = src
	}
	x.PasswordModes = modes
	and := func(field string, cur *bool, v bool) {
		if *cur && !v {
			*cur = false
			d.sources[field] = src
		}
	}
	and(FieldAllowMessage, &x.AllowMessage, l.AllowMessage)
	and(FieldAllowCustomText, &x.AllowCustomText, l.AllowCustomText)
	and(FieldAllowShowFilenames, &x.AllowShowFilenames, l.AllowShowFilenames)
}

// Decide checks a transfer from sender to recipients (addresses as
// kluis.ParseAddress returns them). It returns a kluis.EPOLICY error that
// names the refused address and the rule when any pair is refused.
func (p *Policy) Decide(sender string, recipients []string) (*Decision, error) {
	s := strings.ToLower(strings.TrimSpace(sender))
	sd := domainOf(s)
	// Start without quotas: each recipient's rule (or the default rule)
	// brings its own, and a rule may raise them above the defaults.
	start := baseLimits()
	start.MaxOpenDrafts, start.MaxBytesPerDay, start.MaxReplies = 0, 0, 0
	d := &Decision{Limits: start, Demo: p.Demo(), sources: map[string]string{}}
	var refusals []string
	var refused []string
	for _, r := range recipients {
		rc := strings.ToLower(strings.TrimSpace(r))
		rd := domainOf(rc)
		decided := p.ruleFor(s, sd, rc, rd)
		switch {
		case decided != nil && decided.deny:
			msg := fmt.Sprintf("Sending from %s to %s is not allowed by rule %q", sender, r, decided.name)
			if decided.description != "" {
				msg += ": " + sentence(decided.description)
			} else {
				msg += "."
			}
			refusals = append(refusals, msg)
			refused = append(refused, r)
		case decided != nil:
			d.tighten(decided.limits.over(p.Defaults()), fmt.Sprintf("rule %q", decided.name))
			d.Rules = appendOnce(d.Rules, decided.name)
		case !p.Demo() && !p.inside(sd) && !p.inside(rd):
			refusals = append(refusals, fmt.Sprintf(
				"Sending from %s to %s is not allowed: neither address belongs to the organisation (%s). By the default rule, Kluis sends only from or to the organisation's own addresses.",
				sender, r, strings.Join(p.domains, ", ")))
			refused = append(refused, r)
		default:
			d.tighten(p.Defaults(), "the default limits")
			d.Rules = appendOnce(d.Rules, "")
		}
	}
	if len(refusals) > 0 {
		msg := refusals[0]
		if len(refused) > 1 {
			others := refused[1:]
			if len(others) > 5 {
				others = append(slices.Clone(others[:5]), "...")
			}
			msg += fmt.Sprintf(" Also refused: %s.", strings.Join(others, ", "))
		}
		return nil, &kluis.Error{Code: kluis.EPOLICY, Message: msg}
	}
	return d, nil
}

// ruleFor is the first rule that matches the pair (lower-case addresses
// and their domains), or nil: the default rule decides.
func (p *Policy) ruleFor(s, sd, rc, rd string) *rule {
	if p == nil {
		return nil
	}
	for i := range p.rules {
		ru := &p.rules[i]
		if matchAny(ru.senders, s, sd) && matchAny(ru.recipients, rc, rd) {
			return ru
		}
	}
	return nil
}

// Refuses reports whether the policy refuses sending from sender to
// recipient, and what refused it: `rule "name"` for a deny rule, "the
// default rule" when neither address is inside the organisation. Decide
// refuses a transfer exactly when Refuses refuses one of its recipients;
// this tells which ones, so each can be named where it was typed.
func (p *Policy) Refuses(sender, recipient string) (by string, refused bool) {
	s := strings.ToLower(strings.TrimSpace(sender))
	rc := strings.ToLower(strings.TrimSpace(recipient))
	sd, rd := domainOf(s), domainOf(rc)
	switch ru := p.ruleFor(s, sd, rc, rd); {
	case ru != nil && ru.deny:
		return fmt.Sprintf("rule %q", ru.name), true
	case ru != nil:
		return "", false
	case !p.Demo() && !p.inside(sd) && !p.inside(rd):
		return DefaultRule, true
	}
	return "", false
}

// RecipientAuth returns the verification methods allowed for recipient
// when sender sends: those of the rule that decides the pair, else the
// default limits'. (A refused pair gets the defaults; Refuses tells it.)
func (p *Policy) RecipientAuth(sender, recipient string) AuthLimits {
	s := strings.ToLower(strings.TrimSpace(sender))
	rc := strings.ToLower(strings.TrimSpace(recipient))
	if ru := p.ruleFor(s, domainOf(s), rc, domainOf(rc)); ru != nil && !ru.deny {
		return ru.limits.over(p.Defaults()).RecipientAuth
	}
	return p.Defaults().RecipientAuth
}

// DefaultRule is what Refuses names when the default rule refused: neither
// address is inside an organisation domain.
const DefaultRule = "the default rule"

func appendOnce(xs []string, x string) []string {
	if slices.Contains(xs, x) {
		return xs
	}
	return append(xs, x)
}

func sentence(s string) string {
	s = strings.TrimSpace(s)
	if s == "" {
		return s
	}
	if r, _ := utf8.DecodeLastRuneInString(s); !strings.ContainsRune(".!?", r) {
		s += "."
	}
	return s
}

func domainOf(addr string) string {
	if i := strings.LastIndexByte(addr, '@'); i >= 0 {
		return addr[i+1:]
	}
	return addr
}

// SSODomains are the sender domains (subdomains included) that must sign
// in with the organisation's identity provider when single sign-on is
// configured: the file's sso_domains, or without it the organisation
// domains. An empty sso_domains list names none.
func (p *Policy) SSODomains() []string {
	if p == nil {
		return nil
	}
	if p.ssoDomains != nil {
		return slices.Clone(p.ssoDomains)
	}
	return slices.Clone(p.domains)
}

// SSORequired reports whether addr is in one of SSODomains: such a sender
// gets no mailed code (package sender refuses it).
func (p *Policy) SSORequired(addr string) bool {
	domain := domainOf(strings.ToLower(strings.TrimSpace(addr)))
	return slices.ContainsFunc(p.SSODomains(), func(d string) bool { return inDomain(domain, d) })
}

// Inside reports whether addr is inside an organisation domain.
func (p *Policy) Inside(addr string) bool {
	return p.inside(domainOf(strings.ToLower(strings.TrimSpace(addr))))
}

func (p *Policy) inside(domain string) bool {
	if p == nil {
		return false
	}
	for _, d := range p.domains {
		if inDomain(domain, d) {
			return true
		}
	}
	return false
}

// Load reads and validates a policy file.
func Load(file string) (*Policy, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, fmt.Errorf("policy file: %w", err)
	}
	defer f.Close()
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(io.LimitReader(f, MaxFileSize+1)); err != nil {
		return nil, fmt.Errorf("policy file %s: %w", file, err)
	}
	p, err := Parse(buf.Bytes())
	if pes := (ParseErrors)(nil); errors.As(err, &pes) && len(pes) > 1 {
		return nil, fmt.Errorf("policy file %s has %d errors:\n%w", file, len(pes), err)
	}
	if err != nil {
		return nil, fmt.Errorf("policy file %s: %w", file, err)
	}
	if err := p.readLoginSecrets(filepath.Dir(file)); err != nil {
		return nil, fmt.Errorf("policy file %s: %w", file, err)
	}
	return p, nil
}

// ParseError is a problem in a policy file: where (a JSON path such as
// rules[2].limits.max_expiry, and the line it is on) and what to fix.
type ParseError struct {
	Line    int // 1-based; 0 when the problem is the whole file
	Path    string
	Message string
}

func (e *ParseError) Error() string {
	switch {
	case e.Path == "":
		return e.Message // about the whole file; a syntax error names line and column itself
	case e.Line > 0:
		return fmt.Sprintf("line %d: %s: %s", e.Line, e.Path, e.Message)
	}
	return e.Path + ": " + e.Message
}

// ParseErrors is every problem Parse found in a policy file, in the order
// of the file. errors.As with a *ParseError gives the first.
type ParseErrors []*ParseError

func (es ParseErrors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap gives the problems one by one.
func (es ParseErrors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

// add appends the problems of err (a *ParseError or ParseErrors).
func (es *ParseErrors) add(err error) {
	var many ParseErrors
	var one *ParseError
	switch {
	case err == nil:
	case errors.As(err, &many):
		*es = append(*es, many...)
	case errors.As(err, &one):
		*es = append(*es, one)
	default:
		*es = append(*es, &ParseError{Message: err.Error()})
	}
}

func errAt(path, format string, args ...any) error {
	return &ParseError{Path: path, Message: fmt.Sprintf(format, args...)}
}

// Parse validates a policy file's contents. Its error is ParseErrors:
// every problem found, each with its line. A syntax error, or a file that
// is not one JSON object, stops the reading there.
func Parse(b []byte) (*Policy, error) {
	p, errs := parse(b)
	if len(errs) == 0 {
		return p, nil
	}
	pos := positions(b)
	for _, e := range errs {
		if e.Line == 0 && e.Path != "" {
			e.Line = lineAt(b, pos, e.Path)
		}
	}
	sort.SliceStable(errs, func(i, j int) bool { return errs[i].Line < errs[j].Line })
	return nil, errs
}

func parse(b []byte) (*Policy, ParseErrors) {
	var errs ParseErrors
	stop := func(err error) (*Policy, ParseErrors) {
		errs.add(err)
		return nil, errs
	}
	if len(b) > MaxFileSize {
		return stop(errAt("", "the file is larger than %d bytes", MaxFileSize))
	}
	if !utf8.Valid(b) {
		return stop(errAt("", "the file is not valid UTF-8 text"))
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return stop(errAt("", "the file is empty; write a JSON object such as {\"organisation_domains\": [\"example.nl\"]}"))
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	var top json.RawMessage
	if err := dec.Decode(&top); err != nil {
		return stop(syntaxError(b, err))
	}
	if dec.More() {
		return stop(errAt("", "there is more after the JSON object; the file must hold exactly one object"))
	}
	var extra json.RawMessage
	if err := dec.Decode(&extra); err == nil {
		return stop(errAt("", "there is more after the JSON object; the file must hold exactly one object"))
	}
	obj, err := object("", top, "organisation_domains", "sso_domains", "defaults", "rules", "recipient_login_providers", "dropoffs")
	if obj == nil {
		return stop(err)
	}
	errs.add(err) // unknown settings; the known ones are still checked
	p := &Policy{}
	if raw, ok := obj["organisation_domains"]; ok {
		list, err := stringList("organisation_domains", raw)
		errs.add(err)
		for i, s := range list {
			at := fmt.Sprintf("organisation_domains[%d]", i)
			d, err := parseDomain(strings.TrimPrefix(strings.TrimSpace(s), "domain:"))
			if err != nil {
				errs.add(errAt(at, "%s", err))
				continue
			}
			if slices.Contains(p.domains, d) {
				errs.add(errAt(at, "%q is listed twice; remove one", d))
				continue
			}
			p.domains = append(p.domains, d)
		}
	}
	if raw, ok := obj["sso_domains"]; ok {
		list, err := stringList("sso_domains", raw)
		errs.add(err)
		p.ssoDomains = []string{}
		for i, s := range list {
			at := fmt.Sprintf("sso_domains[%d]", i)
			d, err := parseDomain(strings.TrimPrefix(strings.TrimSpace(s), "domain:"))
			if err != nil {
				errs.add(errAt(at, "%s", err))
				continue
			}
			if slices.Contains(p.ssoDomains, d) {
				errs.add(errAt(at, "%q is listed twice; remove one", d))
				continue
			}
			p.ssoDomains = append(p.ssoDomains, d)
		}
	}
	if raw, ok := obj["defaults"]; ok {
		l, err := parseLimits("defaults", raw)
		errs.add(err)
		p.defaults = l
	}
	if raw, ok := obj["rules"]; ok {
		var items []json.RawMessage
		if isNull(raw) {
		} else if err := json.Unmarshal(raw, &items); err != nil {
			errs.add(errAt("rules", "must be a list of rules: [{\"name\": ..., \"action\": \"allow\"}, ...]"))
		}
		names := map[string]int{}
		for i, item := range items {
			at := fmt.Sprintf("rules[%d]", i)
			r, err := parseRule(at, item)
			if err != nil {
				errs.add(err)
				continue
			}
			key := strings.ToLower(r.name)
			if j, dup := names[key]; dup {
				errs.add(errAt(at+".name", "the name %q is already used by rules[%d]; give every rule its own name", r.name, j))
				continue
			}
			names[key] = i
			p.rules = append(p.rules, r)
		}
	}
	if raw, ok := obj["recipient_login_providers"]; ok {
		ls, err := parseLoginProviders("recipient_login_providers", raw)
		errs.add(err)
		p.logins = ls
	}
	if raw, ok := obj["dropoffs"]; ok {
		ds, err := parseDropoffs("dropoffs", raw)
		errs.add(err)
		p.dropoffs = ds
	}
	if len(errs) > 0 {
		// The checks across sections below would judge a half-read file.
		return nil, errs
	}
	if err := p.checkDropoffs(); err != nil {
		return stop(err)
	}
	// The defaults with every rule's limits must still make sense together.
	errs.add(checkExpiries("defaults", p.Defaults()))
	for i, r := range p.rules {
		if r.limits != nil && r.limits.DefaultExpiry != nil && r.limits.MaxExpiry == nil {
			if l := r.limits.over(p.Defaults()); l.MaxExpiry > 0 && *r.limits.DefaultExpiry > l.MaxExpiry {
				errs.add(errAt(fmt.Sprintf("rules[%d].limits.default_expiry", i), "%s is longer than the default max_expiry (%s); set max_expiry in this rule too or shorten default_expiry",
					unit.FormatDuration(*r.limits.DefaultExpiry), unit.FormatDuration(l.MaxExpiry)))
			}
		}
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return p, nil
}

// positions maps the JSON path of every value in b (as the errors name
// them: rules[2].limits.max_expiry) to the offset just past its key, or
// past its first token for a list item. b is valid JSON when it is used.
func positions(b []byte) map[string]int64 {
	m := map[string]int64{}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var value func(path string) error
	value = func(path string) error {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		if _, seen := m[path]; !seen {
			m[path] = dec.InputOffset()
		}
		d, ok := tok.(json.Delim)
		if !ok {
			return nil
		}
		for i := 0; dec.More(); i++ {
			p := fmt.Sprintf("%s[%d]", path, i)
			if d == '{' {
				k, err := dec.Token()
				if err != nil {
					return err
				}
				key, _ := k.(string)
				p = join(path, key)
				if _, seen := m[p]; !seen {
					m[p] = dec.InputOffset()
				}
			}
			if err := value(p); err != nil {
				return err
			}
		}
		_, err = dec.Token() // the closing } or ]
		return err
	}
	_ = value("") // b was decoded before; an error here only leaves paths out
	return m
}

// lineAt is the line of path in b, or of the nearest enclosing value that
// is there (a missing setting is reported on its object's line).
func lineAt(b []byte, pos map[string]int64, path string) int {
	for path != "" {
		if off, ok := pos[path]; ok {
			return 1 + bytes.Count(b[:min(int(off), len(b))], []byte("\n"))
		}
		cut := max(strings.LastIndexByte(path, '.'), strings.LastIndexByte(path, '['))
		if cut <= 0 {
			break
		}
		path = path[:cut]
	}
	return 0
}

func checkExpiries(at string, l Limits) error {
	if l.DefaultExpiry > 0 && l.MaxExpiry > 0 && l.DefaultExpiry > l.MaxExpiry {
		return errAt(at+".default_expiry", "%s is longer than max_expiry (%s)", unit.FormatDuration(l.DefaultExpiry), unit.FormatDuration(l.MaxExpiry))
	}
	return nil
}

func syntaxError(b []byte, err error) error {
	var se *json.SyntaxError
	var off int64 = -1
	if errors.As(err, &se) {
		off = se.Offset - 1 // Offset is just past the bad byte
	} else if errors.Is(err, io.ErrUnexpectedEOF) {
		off = int64(len(b))
	}
	if off < 0 {
		return errAt("", "the file is not valid JSON (%v)", err)
	}
	line, col := 1, 1
	for _, c := range b[:min(int(off), len(b))] {
		if c == '\n' {
			line, col = line+1, 1
		} else {
			col++
		}
	}
	what := "the file is not valid JSON"
	if se == nil {
		what = "the file ends in the middle of the JSON"
	}
	return &ParseError{Line: line, Message: fmt.Sprintf("%s at line %d, column %d: %s", what, line, col, strings.TrimPrefix(err.Error(), "json: "))}
}

func isNull(raw json.RawMessage) bool { return string(bytes.TrimSpace(raw)) == "null" }

// object decodes a JSON object and refuses keys that are not allowed: its
// error then lists every one (ParseErrors), and the map holds the others.
func object(at string, raw json.RawMessage, allowed ...string) (map[string]json.RawMessage, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil || m == nil {
		where := at
		if where == "" {
			return nil, errAt("", "the file must be a JSON object: {\"organisation_domains\": [...], \"defaults\": {...}, \"rules\": [...]}")
		}
		return nil, errAt(where, "must be an object {...}")
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var unknown ParseErrors
	for _, k := range keys {
		if !slices.Contains(allowed, k) {
			unknown.add(errAt(join(at, k), "unknown setting %q; known settings here are %s", k, strings.Join(allowed, ", ")))
			delete(m, k)
			continue
		}
		if isNull(m[k]) {
			delete(m, k)
		}
	}
	if len(unknown) > 0 {
		// Every unknown setting; the top level goes on with the known ones.
		return m, unknown
	}
	return m, nil
}

func join(at, k string) string {
	if at == "" {
		return k
	}
	return at + "." + k
}

func stringList(at string, raw json.RawMessage) ([]string, error) {
	var list []string
	if err := json.Unmarshal(raw, &list); err != nil {
		return nil, errAt(at, "must be a list of texts in quotes, such as [\"example.nl\"]")
	}
	return list, nil
}

func text(at string, raw json.RawMessage, max int, singleLine bool) (string, error) {
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", errAt(at, "must be a text in quotes")
	}
	s = strings.TrimSpace(s)
	if len(s) > max {
		return "", errAt(at, "is too long: at most %d characters", max)
	}
	for _, r := range s {
		if unicode.IsControl(r) && (singleLine || r != '\n') {
			return "", errAt(at, "must not contain line breaks or control characters")
		}
	}
	return s, nil
}

func parseRule(at string, raw json.RawMessage) (rule, error) {
	obj, err := object(at, raw, "name", "description", "senders", "recipients", "action", "limits")
	if obj == nil {
		return rule{}, err
	}
	var errs ParseErrors
	errs.add(err) // unknown settings; the known ones are still checked
	var r rule
	if v, ok := obj["name"]; ok {
		r.name, err = text(at+".name", v, 100, true)
		errs.add(err)
	}
	if _, given := obj["name"]; r.name == "" && (!given || err == nil) {
		errs.add(errAt(at+".name", "every rule needs a name; it is shown when the rule refuses a transfer"))
	}
	if v, ok := obj["description"]; ok {
		r.description, err = text(at+".description", v, 500, false)
		errs.add(err)
	}
	for _, side := range []string{"senders", "recipients"} {
		v, ok := obj[side]
		if !ok {
			continue
		}
		list, err := stringList(at+"."+side, v)
		errs.add(err)
		var ps []pattern
		for i, s := range list {
			pt, err := parsePattern(s)
			if err != nil {
				errs.add(errAt(fmt.Sprintf("%s.%s[%d]", at, side, i), "%s", err))
				continue
			}
			ps = append(ps, pt)
		}
		if side == "senders" {
			r.senders = ps
		} else {
			r.recipients = ps
		}
	}
	act, ok := obj["action"]
	if !ok {
		errs.add(errAt(at+".action", "missing; write \"action\": \"allow\" or \"action\": \"deny\""))
	} else if a, err := text(at+".action", act, 10, true); err != nil {
		errs.add(err)
	} else {
		switch a {
		case "allow":
		case "deny":
			r.deny = true
		default:
			errs.add(errAt(at+".action", "%q is not an action; write \"allow\" or \"deny\"", a))
		}
	}
	if v, ok := obj["limits"]; ok {
		if r.deny {
			errs.add(errAt(at+".limits", "a deny rule has no limits; remove them or make the rule \"allow\""))
		} else {
			r.limits, err = parseLimits(at+".limits", v)
			errs.add(err)
		}
	}
	if len(errs) > 0 {
		return r, errs
	}
	return r, nil
}

func parseLimits(at string, raw json.RawMessage) (*partial, error) {
	obj, err := object(at, raw, limitFields...)
	if obj == nil {
		return nil, err
	}
	var errs ParseErrors
	errs.add(err) // unknown settings; the known ones are still checked
	p := &partial{}
	for _, k := range limitFields {
		if v, ok := obj[k]; ok {
			errs.add(p.set(k, at+"."+k, v))
		}
	}
	if len(errs) > 0 {
		return nil, errs
	}
	if p.DefaultExpiry != nil && p.MaxExpiry != nil && *p.DefaultExpiry > *p.MaxExpiry {
		return nil, errAt(at+".default_expiry", "%s is longer than max_expiry (%s)", unit.FormatDuration(*p.DefaultExpiry), unit.FormatDuration(*p.MaxExpiry))
	}
	return p, nil
}

// set reads one limit (k, at path) into p.
func (p *partial) set(k, path string, v json.RawMessage) error {
	switch k {
	case FieldMaxTransferSize:
		n, err := parseSize(path, v)
		if err != nil {
			return err
		}
		p.MaxTransferSize = &n
	case FieldDefaultExpiry, FieldMaxExpiry:
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			return errAt(path, "must be a duration in quotes, such as \"7d\" or \"36h\"")
		}
		d, err := unit.ParseDuration(s)
		if err != nil {
			return errAt(path, "%s", err)
		}
		if d < time.Hour {
			return errAt(path, "%q is too short: at least 1h", s)
		}
		if k == FieldDefaultExpiry {
			p.DefaultExpiry = &d
		} else {
			p.MaxExpiry = &d
		}
	case FieldPasswordModes:
		list, err := stringList(path, v)
		if err != nil {
			return err
		}
		if len(list) == 0 {
			return errAt(path, "allow at least one password mode: none, generate or manual")
		}
		modes := []kluis.PasswordMode{}
		for i, s := range list {
			m := kluis.PasswordMode(strings.ToLower(strings.TrimSpace(s)))
			if !m.Valid() {
				return errAt(fmt.Sprintf("%s[%d]", path, i), "%q is not a password mode; choose none, generate or manual", s)
			}
			if slices.Contains(modes, m) {
				return errAt(fmt.Sprintf("%s[%d]", path, i), "%q is listed twice", s)
			}
			modes = append(modes, m)
		}
		// Keep the usual order, so equal policies look equal.
		p.PasswordModes = slices.DeleteFunc(AllPasswordModes(), func(m kluis.PasswordMode) bool { return !slices.Contains(modes, m) })
	case FieldAllowMessage, FieldAllowCustomText, FieldAllowShowFilenames:
		var b bool
		if err := json.Unmarshal(v, &b); err != nil {
			return errAt(path, "must be true or false (without quotes)")
		}
		switch k {
		case FieldAllowMessage:
			p.AllowMessage = &b
		case FieldAllowCustomText:
			p.AllowCustomText = &b
		default:
			p.AllowShowFilenames = &b
		}
	case FieldMaxRecipients, FieldMaxOpenDrafts, FieldMaxReplies:
		var n int
		if err := json.Unmarshal(v, &n); err != nil || n < 1 || n > 100_000 {
			return errAt(path, "must be a whole number from 1 to 100000")
		}
		switch k {
		case FieldMaxRecipients:
			p.MaxRecipients = &n
		case FieldMaxOpenDrafts:
			p.MaxOpenDrafts = &n
		default:
			p.MaxReplies = &n
		}
	case FieldRecipientAuth:
		a, err := parseAuth(path, v)
		if err != nil {
			return err
		}
		p.RecipientAuth = a
	case FieldMaxBytesPerDay:
		n, err := parseSize(path, v)
		if err != nil {
			return err
		}
		p.MaxBytesPerDay = &n
	}
	return nil
}

func parseSize(at string, raw json.RawMessage) (int64, error) {
	var n int64
	t := bytes.TrimSpace(raw)
	if len(t) > 0 && t[0] == '"' {
		var s string
		if err := json.Unmarshal(t, &s); err != nil {
			return 0, errAt(at, "must be a size such as \"2GB\" or a whole number of bytes")
		}
		v, err := unit.ParseSize(s)
		if err != nil {
			return 0, errAt(at, "%s", err)
		}
		n = v
	} else {
		v, err := strconv.ParseInt(string(t), 10, 64)
		if err != nil {
			return 0, errAt(at, "must be a size such as \"2GB\" or a whole number of bytes")
		}
		n = v
	}
	if n < 1 {
		return 0, errAt(at, "must be at least 1 byte")
	}
	return n, nil
}

// parsePattern reads one sender or recipient pattern: an address
// (user@x.nl), a domain with its subdomains (x.nl or domain:x.nl), or a
// glob with * ? [...] matched on the address (*@*.x.nl) or, without @, on
// the domain (*.x.nl).
func parsePattern(s string) (pattern, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return pattern{}, errors.New("the pattern is empty; write an address, a domain or a pattern such as *@*.example.nl")
	}
	for _, r := range s {
		if unicode.IsControl(r) || unicode.IsSpace(r) {
			return pattern{}, fmt.Errorf("%q contains a space or control character", s)
		}
	}
	low := strings.ToLower(s)
	if rest, ok := strings.CutPrefix(low, "domain:"); ok {
		d, err := parseDomain(rest)
		if err != nil {
			return pattern{}, err
		}
		return pattern{kindDomain, d}, nil
	}
	if strings.ContainsAny(low, "*?[") {
		if _, err := path.Match(low, ""); err != nil {
			return pattern{}, fmt.Errorf("%q is not a valid pattern: check the [ ] brackets (use * for any text, ? for one character)", s)
		}
		if strings.Contains(low, "@") {
			return pattern{kindGlob, low}, nil
		}
		return pattern{kindDomainGlob, low}, nil
	}
	if strings.Contains(low, "@") {
		a, err := kluis.ParseAddress(s)
		if err != nil || strings.ContainsAny(s, "<>\"(),;:") {
			return pattern{}, fmt.Errorf("%q is not a valid e-mail address; write it as name@example.nl", s)
		}
		return pattern{kindAddress, strings.ToLower(a)}, nil
	}
	d, err := parseDomain(low)
	if err != nil {
		return pattern{}, err
	}
	return pattern{kindDomain, d}, nil
}

// parseDomain checks a domain and returns it lower-case in ASCII form.
func parseDomain(s string) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" || strings.ContainsAny(s, "@*?[]<>\" ,;") {
		return "", fmt.Errorf("%q is not a domain; write it as example.nl", s)
	}
	a, err := kluis.ParseAddress("x@" + s)
	if err != nil {
		return "", fmt.Errorf("%q is not a domain; write it as example.nl", s)
	}
	return domainOf(a), nil
}

// parseAuth reads {"allowed": [...], "minimum": "...", "special_minimum":
// "...", "special_default": true}; what it leaves out keeps the default.
func parseAuth(at string, raw json.RawMessage) (*AuthLimits, error) {
	obj, err := object(at, raw, "allowed", "minimum", "special_minimum", "special_default")
	if err != nil {
		return nil, err
	}
	a := DefaultAuthLimits()
	method := func(path, s string) (kluis.AuthMethod, error) {
		m := kluis.AuthMethod(strings.ToLower(strings.TrimSpace(s)))
		if !m.Valid() {
			return "", errAt(path, "%q is not a method; choose password, password+sms or password+login", s)
		}
		return m, nil
	}
	if v, ok := obj["allowed"]; ok {
		list, err := stringList(at+".allowed", v)
		if err != nil {
			return nil, err
		}
		if len(list) == 0 {
			return nil, errAt(at+".allowed", "allow at least one method: password, password+sms or password+login")
		}
		var ms []kluis.AuthMethod
		for i, s := range list {
			m, err := method(fmt.Sprintf("%s.allowed[%d]", at, i), s)
			if err != nil {
				return nil, err
			}
			ms = append(ms, m)
		}
		a.Allowed = slices.DeleteFunc(AllAuthMethods(), func(m kluis.AuthMethod) bool { return !slices.Contains(ms, m) })
		a.Minimum = a.Allowed[0]
	}
	for _, k := range []string{"minimum", "special_minimum"} {
		v, ok := obj[k]
		if !ok {
			continue
		}
		s, err := text(at+"."+k, v, 20, true)
		if err != nil {
			return nil, err
		}
		m, err := method(at+"."+k, s)
		if err != nil {
			return nil, err
		}
		if !slices.Contains(a.Allowed, m) {
			return nil, errAt(at+"."+k, "%q is not in \"allowed\"", s)
		}
		if k == "minimum" {
			a.Minimum = m
		} else {
			a.SpecialMinimum = m
		}
	}
	if _, given := obj["special_minimum"]; !given {
		// Special personal data needs the strongest allowed level
		// unless the rule says otherwise; of equal levels the first
		// (an SMS code before a login, which needs a provider).
		a.SpecialMinimum = a.Allowed[0]
		for _, m := range a.Allowed {
			if m.Level() > a.SpecialMinimum.Level() {
				a.SpecialMinimum = m
			}
		}
	}
	if a.SpecialMinimum.Level() < a.Minimum.Level() {
		return nil, errAt(at+".special_minimum", "must not be weaker than \"minimum\" (%s)", a.Minimum)
	}
	if v, ok := obj["special_default"]; ok {
		if err := json.Unmarshal(v, &a.SpecialDefault); err != nil {
			return nil, errAt(at+".special_default", "must be true or false (without quotes)")
		}
	}
	return &a, nil
}
