package webhook

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"syscall"
)

// An endpoint is registered by an admin, and the deliverer then makes
// requests to it from inside the deployment: a server-side request forgery
// waiting to happen (the cloud's metadata service at 169.254.169.254, the
// database on 10.0.0.5, NATS's monitoring port on 127.0.0.1). So an endpoint
// must be an http(s) URL of a public host: CheckURL refuses the obvious
// (private address literals, localhost, single-label intranet names) when it
// is registered, and every connection the deliverer makes is checked again
// on the address actually dialled (dialGuard), which no DNS answer, rebinding
// or numeric trick gets around. AllowPrivate lets endpoints be on loopback
// and private addresses, for `wxflow dev` and for deployments whose shops
// are inside the same network; link-local addresses (the metadata service),
// multicast and reserved ones stay refused.

// Errors of endpoint URLs that callers handle.
var (
	// ErrBadURL: not an http(s) URL wxflow would send to.
	ErrBadURL = errors.New("webhook: bad endpoint URL")
	// ErrPrivateTarget: the URL or the address dialled is not public.
	ErrPrivateTarget = errors.New("webhook: endpoint is not on a public address")
)

// MaxURLBytes bounds an endpoint URL.
const MaxURLBytes = 2048

// CheckURL says whether raw can be an endpoint, and returns it in the form
// to store: http or https (lowercase), a host, no user or password (they
// would be sent to every redirect-free request and shown in every list), no
// fragment, visible ASCII only. An IP address must be [Permitted]. Unless
// allowPrivate, a name must be dotted, its last label alphabetic, and not
// localhost, .local, .internal or .home.arpa. A name's addresses are
// checked when each delivery connects, not here.
func CheckURL(raw string, allowPrivate bool) (string, error) {
	if raw == "" || len(raw) > MaxURLBytes {
		return "", fmt.Errorf("%w: want 1 to %d bytes", ErrBadURL, MaxURLBytes)
	}
	for i := 0; i < len(raw); i++ {
		if raw[i] <= ' ' || raw[i] >= 0x7f {
			return "", fmt.Errorf("%w: visible ASCII only (percent-encode the rest, punycode for names)", ErrBadURL)
		}
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrBadURL, errors.Unwrap(err))
	}
	u.Scheme = strings.ToLower(u.Scheme)
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return "", fmt.Errorf("%w: want http:// or https://", ErrBadURL)
	case u.Opaque != "" || u.Host == "":
		return "", fmt.Errorf("%w: no host", ErrBadURL)
	case u.User != nil:
		return "", fmt.Errorf("%w: no user or password in the URL", ErrBadURL)
	case u.Fragment != "" || strings.Contains(raw, "#"):
		return "", fmt.Errorf("%w: no fragment", ErrBadURL)
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return "", fmt.Errorf("%w: port %q", ErrBadURL, p)
		}
	} else if strings.HasSuffix(u.Host, ":") {
		return "", fmt.Errorf("%w: empty port", ErrBadURL)
	}
	host := strings.ToLower(u.Hostname())
	if strings.HasPrefix(u.Host, "[") { // an IPv6 literal
		a, err := netip.ParseAddr(host)
		if err != nil || a.Zone() != "" || !a.Is6() {
			return "", fmt.Errorf("%w: IPv6 address %q", ErrBadURL, host)
		}
		if !Permitted(a, allowPrivate) {
			return "", fmt.Errorf("%w: %s", ErrPrivateTarget, a)
		}
		return u.String(), nil
	}
	if a, err := netip.ParseAddr(host); err == nil {
		if !Permitted(a, allowPrivate) {
			return "", fmt.Errorf("%w: %s", ErrPrivateTarget, a)
		}
		return u.String(), nil
	}
	if !validName(host) {
		return "", fmt.Errorf("%w: host %q is not a DNS name", ErrBadURL, host)
	}
	if !allowPrivate {
		labels := strings.Split(host, ".")
		tld := labels[len(labels)-1]
		switch {
		case len(labels) < 2:
			return "", fmt.Errorf("%w: %s is a single-label (intranet) name", ErrPrivateTarget, host)
		case strings.Trim(tld, "abcdefghijklmnopqrstuvwxyz") != "" && !strings.HasPrefix(tld, "xn--"):
			return "", fmt.Errorf("%w: %s does not end in a top-level domain", ErrPrivateTarget, host)
		case host == "localhost" || tld == "localhost" || tld == "local" || tld == "internal" || strings.HasSuffix(host, ".home.arpa"):
			return "", fmt.Errorf("%w: %s is a local name", ErrPrivateTarget, host)
		}
	}
	u.Host = strings.ToLower(u.Host)
	return u.String(), nil
}

// validName: labels of [a-z0-9-] (1–63, not starting or ending with '-')
// joined by single dots, 253 bytes at most, no trailing dot.
func validName(h string) bool {
	if len(h) == 0 || len(h) > 253 {
		return false
	}
	for l := range strings.SplitSeq(h, ".") {
		if len(l) == 0 || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' || strings.Trim(l, "abcdefghijklmnopqrstuvwxyz0123456789-") != "" {
			return false
		}
	}
	return true
}

// notPublic are ranges that are not the public internet beyond what
// netip.Addr's predicates name: this network, shared address space (CGNAT),
// IETF protocol assignments, documentation, benchmarking, reserved and
// broadcast; IPv6 discard, documentation, Teredo and the deprecated
// site-local block.
var notPublic = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("100.64.0.0/10"),
	netip.MustParsePrefix("192.0.0.0/24"),
	netip.MustParsePrefix("192.0.2.0/24"),
	netip.MustParsePrefix("198.18.0.0/15"),
	netip.MustParsePrefix("198.51.100.0/24"),
	netip.MustParsePrefix("203.0.113.0/24"),
	netip.MustParsePrefix("240.0.0.0/4"),
	netip.MustParsePrefix("100::/64"),
	netip.MustParsePrefix("2001::/32"),
	netip.MustParsePrefix("2001:db8::/32"),
	netip.MustParsePrefix("fec0::/10"),
}

// IPv6 ranges that carry an IPv4 address: NAT64 (in its last 4 bytes) and
// 6to4 (in bytes 2 to 5).
var (
	nat64      = netip.MustParsePrefix("64:ff9b::/96")
	nat64Local = netip.MustParsePrefix("64:ff9b:1::/48")
	sixToFour  = netip.MustParsePrefix("2002::/16")
)

// Public reports whether a is an address on the public internet: not
// unspecified, loopback, private (RFC 1918, fc00::/7), link-local (the
// cloud metadata service 169.254.169.254 among them), multicast, or one of
// the special ranges. An IPv4 address carried in IPv6 (mapped, NAT64,
// 6to4) is judged as the IPv4 address it carries.
func Public(a netip.Addr) bool {
	a = a.Unmap()
	if !a.IsValid() || a.Zone() != "" {
		return false
	}
	if a.Is6() {
		b := a.As16()
		switch {
		case nat64.Contains(a), nat64Local.Contains(a):
			return Public(netip.AddrFrom4([4]byte(b[12:16])))
		case sixToFour.Contains(a):
			return Public(netip.AddrFrom4([4]byte(b[2:6])))
		}
	}
	if a.IsUnspecified() || a.IsLoopback() || a.IsPrivate() || a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast() ||
		a.IsInterfaceLocalMulticast() || a.IsMulticast() {
		return false
	}
	for _, p := range notPublic {
		if p.Contains(a) {
			return false
		}
	}
	return true
}

// Permitted reports whether a delivery may connect to a: a [Public]
// address, or with allowPrivate also loopback and private ones (RFC 1918,
// fc00::/7, shared address space). Link-local addresses (the cloud
// metadata service at 169.254.169.254, fe80::/10), multicast, unspecified
// and reserved ones are never permitted: no shop's endpoint is there.
func Permitted(a netip.Addr, allowPrivate bool) bool {
	if Public(a) {
		return true
	}
	if !allowPrivate {
		return false
	}
	a = a.Unmap()
	if a.Is6() {
		b := a.As16()
		switch {
		case nat64.Contains(a), nat64Local.Contains(a):
			return Permitted(netip.AddrFrom4([4]byte(b[12:16])), true)
		case sixToFour.Contains(a):
			return Permitted(netip.AddrFrom4([4]byte(b[2:6])), true)
		}
	}
	return a.Zone() == "" && (a.IsLoopback() || a.IsPrivate() || sharedSpace.Contains(a))
}

// sharedSpace is the carrier-grade NAT range, private to a provider's network.
var sharedSpace = netip.MustParsePrefix("100.64.0.0/10")

// dialGuard returns the net.Dialer Control that refuses, as a connection
// is made, an address not [Permitted]: it sees the address actually
// dialled, after every lookup.
func dialGuard(allowPrivate bool) func(string, string, syscall.RawConn) error {
	return func(_, address string, _ syscall.RawConn) error {
		ap, err := netip.ParseAddrPort(address)
		if err != nil {
			return fmt.Errorf("%w: %q", ErrPrivateTarget, address)
		}
		if !Permitted(ap.Addr(), allowPrivate) {
			hint := " (WXFLOW_WEBHOOK_ALLOW_PRIVATE allows loopback and private addresses)"
			if allowPrivate {
				hint = " (link-local, multicast and reserved addresses are never allowed)"
			}
			return fmt.Errorf("%w: %s%s", ErrPrivateTarget, ap.Addr(), hint)
		}
		return nil
	}
}
