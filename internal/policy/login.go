package policy

// Login providers for recipients (issue 15, item 3): the OpenID providers a
// sender may ask a recipient to log in with, after the password
// (kluis.AuthPasswordLogin). The policy file lists them:
//
//	"recipient_login_providers": [
//	  {"name": "digid", "label": "DigiD", "issuer": "https://broker.example.nl",
//	   "client_id": "kluis", "client_secret_file": "/run/secrets/digid",
//	   "claim": "sub", "acr": ["urn:oasis:names:tc:SAML:2.0:ac:classes:Smartcard"]},
//	  {"name": "entra", "issuer": "https://login.microsoftonline.com/TID/v2.0",
//	   "client_id": "…", "client_secret_file": "entra.secret", "claim": "oid", "tenant": "TID"},
//	  {"name": "gemeente", "issuer": "https://id.gemeente.nl", "client_id": "kluis",
//	   "client_secret_file": "id.secret", "claim": "email", "email_domains": ["gemeente.nl"]}
//	]
//
// The match is always the provider's issuer (the ID token is verified
// against it) plus one claim: sub (a stable subject, or a broker's
// pseudonym: preferred), Entra's oid within the configured tenant (an oid
// is unique only within its tid), or email, which is accepted only from a
// provider configured as authoritative for the mail domain (a public or
// multi-tenant provider lets its users set their own address), and never
// when the provider says the address is not verified.

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/kluis-nl/kluis"
)

// Claims a login provider can match on.
const (
	ClaimSub   = "sub"
	ClaimOID   = "oid"
	ClaimEmail = "email"
)

// MaxLoginValue bounds the expected claim value a sender gives.
const MaxLoginValue = 256

// LoginProvider is one OpenID provider recipients may log in with.
type LoginProvider struct {
	// Name is how senders choose it (--recipient-login ADDR=NAME:VALUE);
	// Label is what recipients read ("Log in with <Label>").
	Name, Label string
	Issuer      string
	ClientID    string
	// ClientSecretFile holds the client secret; Load reads it into
	// ClientSecret (a relative path is relative to the policy file).
	ClientSecretFile string
	ClientSecret     string
	// Scopes to ask for besides openid.
	Scopes []string
	// Claim is what must match the sender's value: ClaimSub, ClaimOID
	// (with Tenant) or ClaimEmail (with EmailDomains).
	Claim        string
	Tenant       string
	EmailDomains []string
	// ACR, when set, lists the acr values a login must have.
	ACR []string
}

var loginName = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,31}$`)

var uuidLike = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

func parseLoginProviders(at string, raw json.RawMessage) ([]LoginProvider, error) {
	var items []json.RawMessage
	if isNull(raw) {
		return nil, nil
	}
	if err := json.Unmarshal(raw, &items); err != nil {
		return nil, errAt(at, "must be a list of providers: [{\"name\": ..., \"issuer\": ..., \"client_id\": ...}, ...]")
	}
	var out []LoginProvider
	var errs ParseErrors // every provider's first problem
	names := map[string]int{}
	for i, item := range items {
		p, err := parseLoginProvider(fmt.Sprintf("%s[%d]", at, i), item)
		if err != nil {
			errs.add(err)
			continue
		}
		if j, dup := names[p.Name]; dup {
			errs.add(errAt(fmt.Sprintf("%s[%d].name", at, i), "the name %q is already used by %s[%d]; give every provider its own name", p.Name, at, j))
			continue
		}
		names[p.Name] = i
		out = append(out, p)
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return out, nil
}

func parseLoginProvider(at string, raw json.RawMessage) (LoginProvider, error) {
	var p LoginProvider
	obj, err := object(at, raw, "name", "label", "issuer", "client_id", "client_secret_file", "scopes", "claim", "tenant", "email_domains", "acr")
	if err != nil {
		return p, err
	}
	str := func(k string, required bool) (string, error) {
		v, ok := obj[k]
		if !ok {
			if required {
				return "", errAt(join(at, k), "is required")
			}
			return "", nil
		}
		return text(join(at, k), v, 1000, true)
	}
	if p.Name, err = str("name", true); err != nil {
		return p, err
	}
	if !loginName.MatchString(p.Name) {
		return p, errAt(join(at, "name"), "%q is not a name senders can type; use lower-case letters, digits and dashes (at most 32), e.g. \"digid\"", p.Name)
	}
	if p.Label, err = str("label", false); err != nil {
		return p, err
	}
	if p.Label == "" {
		p.Label = p.Name
	}
	if p.Issuer, err = str("issuer", true); err != nil {
		return p, err
	}
	if u, err := url.Parse(p.Issuer); err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") || u.RawQuery != "" || u.Fragment != "" {
		return p, errAt(join(at, "issuer"), "%q is not an issuer URL; write it as the provider publishes it, e.g. https://login.example.nl", p.Issuer)
	}
	if p.ClientID, err = str("client_id", true); err != nil {
		return p, err
	}
	if p.ClientSecretFile, err = str("client_secret_file", true); err != nil {
		return p, err
	}
	if v, ok := obj["scopes"]; ok {
		if p.Scopes, err = stringList(join(at, "scopes"), v); err != nil {
			return p, err
		}
	}
	if p.Claim, err = str("claim", false); err != nil {
		return p, err
	}
	if p.Claim == "" {
		p.Claim = ClaimSub
	}
	if p.Tenant, err = str("tenant", false); err != nil {
		return p, err
	}
	if v, ok := obj["email_domains"]; ok {
		list, err := stringList(join(at, "email_domains"), v)
		if err != nil {
			return p, err
		}
		for i, s := range list {
			d, err := parseDomain(s)
			if err != nil {
				return p, errAt(fmt.Sprintf("%s.email_domains[%d]", at, i), "%s", err)
			}
			p.EmailDomains = append(p.EmailDomains, d)
		}
	}
	if v, ok := obj["acr"]; ok {
		if p.ACR, err = stringList(join(at, "acr"), v); err != nil {
			return p, err
		}
	}
	switch p.Claim {
	case ClaimSub:
	case ClaimOID:
		if !uuidLike.MatchString(p.Tenant) {
			return p, errAt(join(at, "tenant"), "claim \"oid\" needs the Entra tenant id (a GUID): an oid is unique only within its tenant")
		}
	case ClaimEmail:
		if len(p.EmailDomains) == 0 {
			return p, errAt(join(at, "email_domains"), "claim \"email\" needs the mail domains this provider is authoritative for: a public or multi-tenant provider lets its users choose their address")
		}
	default:
		return p, errAt(join(at, "claim"), "%q cannot be matched; choose sub (preferred), oid (Entra, with tenant) or email (with email_domains)", p.Claim)
	}
	if p.Claim != ClaimOID && p.Tenant != "" {
		return p, errAt(join(at, "tenant"), "only applies with claim \"oid\"")
	}
	if p.Claim != ClaimEmail && len(p.EmailDomains) > 0 {
		return p, errAt(join(at, "email_domains"), "only applies with claim \"email\"")
	}
	return p, nil
}

// readLoginSecrets reads the client secret files; relative paths are
// relative to dir (the policy file's folder).
func (p *Policy) readLoginSecrets(dir string) error {
	for i := range p.logins {
		lp := &p.logins[i]
		f := lp.ClientSecretFile
		if !filepath.IsAbs(f) {
			f = filepath.Join(dir, f)
		}
		b, err := os.ReadFile(f)
		if err != nil {
			return errAt(fmt.Sprintf("recipient_login_providers[%d].client_secret_file", i), "cannot read the client secret: %v", err)
		}
		lp.ClientSecret = strings.TrimSpace(string(b))
		if lp.ClientSecret == "" {
			return errAt(fmt.Sprintf("recipient_login_providers[%d].client_secret_file", i), "%s is empty; put the client secret in it", f)
		}
	}
	return nil
}

// LoginProvider returns the provider called name.
func (p *Policy) LoginProvider(name string) (LoginProvider, bool) {
	if p == nil {
		return LoginProvider{}, false
	}
	i := slices.IndexFunc(p.logins, func(l LoginProvider) bool { return l.Name == name })
	if i < 0 {
		return LoginProvider{}, false
	}
	return p.logins[i], true
}

// Login value problems, for the sender's form and the API.
var (
	ErrLoginValueMissing = errors.New("give the value the login must show")
	ErrLoginValueInvalid = errors.New("the value does not fit this provider")
	ErrLoginEmailDomain  = errors.New("the provider is not authoritative for this mail domain")
)

// ExpectedValue checks the value a sender gives for recipient addr and
// returns it normalised. With claim email an empty value means the
// recipient's own address.
func (lp LoginProvider) ExpectedValue(addr, value string) (string, error) {
	value = strings.TrimSpace(value)
	if len(value) > MaxLoginValue || strings.ContainsFunc(value, func(r rune) bool { return r < ' ' || r == 0x7f }) {
		return "", ErrLoginValueInvalid
	}
	switch lp.Claim {
	case ClaimOID:
		if value == "" {
			return "", ErrLoginValueMissing
		}
		if !uuidLike.MatchString(value) {
			return "", ErrLoginValueInvalid
		}
		return strings.ToLower(value), nil
	case ClaimEmail:
		if value == "" {
			value = addr
		}
		a, err := kluis.ParseAddress(value)
		if err != nil {
			return "", ErrLoginValueInvalid
		}
		if !slices.ContainsFunc(lp.EmailDomains, func(d string) bool { return inDomain(domainOf(a), d) }) {
			return "", ErrLoginEmailDomain
		}
		return strings.ToLower(a), nil
	default:
		if value == "" {
			return "", ErrLoginValueMissing
		}
		return value, nil
	}
}

// Match reports whether the claims of a verified ID token of this
// provider match expected (as ExpectedValue returned it), and its acr is
// one the provider asks for. why says what failed, for the log (never
// the values).
func (lp LoginProvider) Match(claims map[string]any, expected string) (ok bool, why string) {
	str := func(k string) string { s, _ := claims[k].(string); return s }
	if len(lp.ACR) > 0 && !slices.Contains(lp.ACR, str("acr")) {
		return false, "acr"
	}
	switch lp.Claim {
	case ClaimOID:
		if !strings.EqualFold(str("tid"), lp.Tenant) {
			return false, "tid"
		}
		if !strings.EqualFold(str("oid"), expected) {
			return false, "oid"
		}
	case ClaimEmail:
		if v, ok := claims["email_verified"].(bool); ok && !v {
			return false, "email_verified"
		}
		got := str("email")
		a, err := kluis.ParseAddress(got)
		if err != nil || !strings.EqualFold(a, expected) {
			return false, "email"
		}
		if !slices.ContainsFunc(lp.EmailDomains, func(d string) bool { return inDomain(domainOf(a), d) }) {
			return false, "email_domain"
		}
	default:
		if got := str("sub"); got == "" || got != expected {
			return false, "sub"
		}
	}
	return true, ""
}

// LoginProviders returns the providers recipients may log in with.
func (p *Policy) LoginProviders() []LoginProvider {
	if p == nil {
		return nil
	}
	return slices.Clone(p.logins)
}
