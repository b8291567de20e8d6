// Package role is the staff roles of Kluis and the one place they are
// checked. Roles come from the organisation's identity provider (group
// claims, mapped by configuration) and are stored with the sender session
// at sign-in; a role that needs a second factor is granted only when the
// sign-in proved one (the acr/amr check is done at sign-in, in package
// oidc), so a check here is a plain membership test.
package role

import (
	"fmt"
	"slices"
	"strings"

	"github.com/kluis-nl/kluis"
)

// Role is a staff role.
type Role string

// The roles. Admin administers Kluis; Auditor reads the audit log and
// statistics, nothing else; Helpdesk looks up a transfer's status and can
// revoke it, never its content.
const (
	Admin    Role = "admin"
	Auditor  Role = "auditor"
	Helpdesk Role = "helpdesk"
)

// All lists the roles in a fixed order.
var All = []Role{Admin, Auditor, Helpdesk}

// Parse turns a role's name into a Role.
func Parse(s string) (Role, error) {
	r := Role(strings.TrimSpace(strings.ToLower(s)))
	if !slices.Contains(All, r) {
		return "", fmt.Errorf("unknown role %q: use admin, auditor or helpdesk", s)
	}
	return r, nil
}

// Set is the roles a session holds.
type Set []Role

// ParseSet reads the stored form of a Set ("admin,helpdesk"); unknown
// names are dropped, so a role removed from Kluis grants nothing.
func ParseSet(s string) Set {
	var out Set
	for _, f := range strings.Split(s, ",") {
		if r, err := Parse(f); err == nil && !slices.Contains(out, r) {
			out = append(out, r)
		}
	}
	return out
}

// String is the stored form.
func (s Set) String() string {
	names := make([]string, len(s))
	for i, r := range s {
		names[i] = string(r)
	}
	return strings.Join(names, ",")
}

// Has reports whether s holds r.
func (s Set) Has(r Role) bool { return slices.Contains(s, r) }

// Require returns nil if s holds r, else a forbidden error. Every
// server-side role check goes through here.
func (s Set) Require(r Role) error {
	if s.Has(r) {
		return nil
	}
	return kluis.Errorf(kluis.EFORBIDDEN, "This needs the %s role, signed in with your organisation account and a second factor (MFA) where the role requires it.", r)
}
