package gateway

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/emersion/go-smtp"
	"golang.org/x/net/idna"

	"github.com/kluis-nl/kluis"
)

// Addressing through the gateway's own domain (issue 18 item 2).
//
// Besides a subject marker, a mail is taken when it is addressed through
// the gateway's domain (Config.Domain, --gateway-domain): the real
// recipient's address is written with "=" in place of its "@", followed by
// "@" and the gateway's domain. alice=example.org@secure.example.nl is
// alice@example.org. The organisation's mail server routes the whole
// domain to the gateway (a Postfix transport map, an Exchange send
// connector for the domain), so no subject marker and no transport rule on
// subjects is needed.
//
// The last "=" splits: a domain has no "=", so a recipient whose own local
// part has one stays whole (a=b=example.org@… is a=b@example.org). The
// same trust, policy and loop rules apply as for a marked mail; an address
// at the gateway's domain that does not decode is refused in RCPT TO with
// a 553 that says how to write it.

// route returns the recipient an envelope or header address names: for an
// address at the gateway's domain the decoded recipient and true, for any
// other address addr itself and false. addr is a bare address, lower case.
// Returns an error saying what is wrong with an address at the gateway's
// domain that does not decode.
func route(addr, domain string) (string, bool, error) {
	at := strings.LastIndexByte(addr, '@')
	if at < 0 || domain == "" || !strings.EqualFold(addr[at+1:], domain) {
		return addr, false, nil
	}
	local := addr[:at]
	eq := strings.LastIndexByte(local, '=')
	if eq <= 0 || eq == len(local)-1 {
		return "", true, fmt.Errorf("%s is addressed through Kluis but does not say to whom: write the recipient's address with = instead of @, then @%s (for example alice=example.org@%s)", addr, domain, domain)
	}
	name, dom := local[:eq], local[eq+1:]
	ascii, err := idna.Lookup.ToASCII(dom)
	if err != nil || !strings.Contains(ascii, ".") {
		return "", true, fmt.Errorf("%s is addressed through Kluis, but %q after the last = is not a domain name: write the recipient's address with = instead of @, then @%s (for example alice=example.org@%s)", addr, dom, domain, domain)
	}
	if strings.EqualFold(ascii, domain) || strings.HasSuffix(ascii, "."+strings.ToLower(domain)) {
		return "", true, fmt.Errorf("%s names Kluis's own domain %s as the recipient's domain; that would go round in a loop", addr, domain)
	}
	to, err := kluis.ParseAddress(name + "@" + ascii)
	if err != nil {
		var ke *kluis.Error
		msg := err.Error()
		if errors.As(err, &ke) {
			msg = ke.Message
		}
		return "", true, fmt.Errorf("%s is addressed through Kluis, but the recipient it names is not a valid address: %s", addr, strings.TrimSuffix(msg, "."))
	}
	return strings.ToLower(to), true, nil
}

// routingDomain is the domain mail can be addressed through: the
// gateway's domain when it is a domain name ("" for an IP address or a
// name without a dot, such as localhost).
func routingDomain(domain string) string {
	if _, err := netip.ParseAddr(domain); err == nil || !strings.Contains(domain, ".") {
		return ""
	}
	if _, err := idna.Lookup.ToASCII(domain); err != nil {
		return ""
	}
	return domain
}

// routeRcpt is route for RCPT TO: a malformed address at the gateway's
// domain is refused with 553 5.1.3 (bad destination address syntax).
func (g *Gateway) routeRcpt(addr string) (string, bool, error) {
	to, routed, err := route(addr, g.via)
	if err != nil {
		return "", true, smtpErr(553, smtp.EnhancedCode{5, 1, 3}, oneLine(err.Error())+".")
	}
	return to, routed, nil
}

// unmarkOrRouted returns the subject without its marker. A mail without a
// marker is taken only when every recipient is addressed through the
// gateway's domain (its subject is then kept whole); else it is refused,
// saying both ways.
func (g *Gateway) unmarkOrRouted(subject string, env envelope) (string, error) {
	if rest, ok := g.unmark(subject); ok {
		return rest, nil
	}
	if len(env.Plain) == 0 && len(env.To) > 0 {
		return strings.TrimSpace(subject), nil
	}
	why := "This mail is not marked for secure sending: start the subject with " + strings.Join(g.cfg.Markers, " or ")
	if g.via != "" {
		why += ", or address every recipient through " + g.via + " (alice=example.org@" + g.via + " for alice@example.org)"
		if len(env.Plain) < len(env.To) {
			why += "; " + env.Plain[0] + " is not"
		}
	}
	return "", smtpErr(550, smtp.EnhancedCode{5, 7, 1}, oneLine(why)+".")
}
