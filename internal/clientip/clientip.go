// Package clientip says who sent a request: the client's address, believed
// from X-Forwarded-For only when the peer is a configured reverse proxy, and
// whether a request came directly from this machine.
//
// The server's outermost middleware ([Middleware]) works the address out
// once and puts it in the request's context; the rate limiter, the audit
// log and the pages read it from there ([FromContext]), so they all agree
// on it.
//
// # Local requests
//
// Some views are only for someone on the machine itself (the development
// mailbox; without a token, /metrics and the /healthz details).
// [LocalRequest] is the one rule for them: a loopback peer, no forwarding
// header (a reverse proxy on the same host connects from loopback too) and
// a loopback host name (a page of another site that the browser reaches on
// loopback under that site's name, DNS rebinding, is not local).
package clientip

import (
	"context"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// Of returns the address of the client that sent r. RemoteAddr is the
// peer; only when the peer is in trusted is X-Forwarded-For read, from the
// right, skipping addresses that are themselves trusted proxies. The first
// untrusted address found is the client. A malformed entry stops the walk:
// the last address known good (a trusted proxy) is returned, so a client can
// never choose its own address. IPv4-mapped IPv6 addresses are unmapped.
// Returns the zero Addr only if RemoteAddr cannot be parsed.
func Of(r *http.Request, trusted []netip.Prefix) netip.Addr {
	ip := parseHostAddr(r.RemoteAddr)
	if !ip.IsValid() || !contains(trusted, ip) {
		return ip
	}
	// All X-Forwarded-For headers form one list, in order.
	var hops []string
	for _, v := range r.Header.Values("X-Forwarded-For") {
		for _, part := range strings.Split(v, ",") {
			hops = append(hops, strings.TrimSpace(part))
		}
	}
	for i := len(hops) - 1; i >= 0; i-- {
		hop := parseHostAddr(hops[i])
		if !hop.IsValid() {
			return ip
		}
		ip = hop
		if !contains(trusted, ip) {
			return ip
		}
	}
	return ip
}

// parseHostAddr parses "addr", "addr:port" or "[v6]:port".
func parseHostAddr(s string) netip.Addr {
	s = strings.TrimSpace(s)
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap()
	}
	if host, _, err := net.SplitHostPort(s); err == nil {
		s = host
	}
	s = strings.TrimSuffix(strings.TrimPrefix(s, "["), "]")
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap()
	}
	return netip.Addr{}
}

func contains(prefixes []netip.Prefix, ip netip.Addr) bool {
	for _, p := range prefixes {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// ParsePrefixes parses a list of CIDR prefixes or single addresses,
// separated by commas or spaces ("10.0.0.0/8, 192.0.2.7, ::1").
func ParsePrefixes(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' }) {
		if strings.Contains(f, "/") {
			p, err := netip.ParsePrefix(f)
			if err != nil {
				return nil, err
			}
			if p.Addr().Is4In6() {
				p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
			}
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(f)
		if err != nil {
			return nil, err
		}
		a = a.Unmap()
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

type ipKey struct{}

// NewContext returns ctx carrying the client address ip.
func NewContext(ctx context.Context, ip netip.Addr) context.Context {
	return context.WithValue(ctx, ipKey{}, ip)
}

// FromContext returns the client address that [Middleware] (or
// [NewContext]) stored; false if there is none.
func FromContext(ctx context.Context) (netip.Addr, bool) {
	ip, ok := ctx.Value(ipKey{}).(netip.Addr)
	return ip, ok && ip.IsValid()
}

// Middleware stores Of(r, trusted) in every request's context.
func Middleware(trusted []netip.Prefix, next http.Handler) http.Handler {
	trusted = append([]netip.Prefix(nil), trusted...)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(w, r.WithContext(NewContext(r.Context(), Of(r, trusted))))
	})
}

// forwardHeaders mark a request passed on by a proxy.
var forwardHeaders = []string{"Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", "X-Real-Ip", "Via"}

// LocalRequest reports whether r came straight from this machine: a
// loopback peer, no forwarding header (not even an empty one) and a
// loopback host name in the request (see the package documentation).
func LocalRequest(r *http.Request) bool {
	for _, h := range forwardHeaders {
		if _, ok := r.Header[h]; ok {
			return false
		}
	}
	peer, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	ip, err := netip.ParseAddr(peer)
	if err != nil || !ip.Unmap().IsLoopback() {
		return false
	}
	host := r.Host
	if h, _, err := net.SplitHostPort(r.Host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	return LoopbackHost(host) || strings.HasSuffix(strings.ToLower(host), ".localhost")
}

// LoopbackHost reports whether host (a name or an address, without port
// or brackets) is "localhost" or a loopback address.
func LoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	if i := strings.IndexByte(host, '%'); i >= 0 { // zone, as in ::1%lo
		host = host[:i]
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
