package probes

import (
	"fmt"
	"net"
	"net/netip"
	"sync/atomic"
)

// alwaysDenied are the networks no probe may connect to, whatever
// allowed_networks says (0.0.0.0/0 included): the instance metadata
// service and the rest of link-local (169.254.0.0/16, fe80::/10), the
// metadata service's IPv6 address range (fd00:ec2::/32), "this network"
// (0.0.0.0/8, which Linux connects to the host itself) and the IPv6
// unspecified address (::, which does the same).
var alwaysDenied = []netip.Prefix{
	netip.MustParsePrefix("169.254.0.0/16"),
	netip.MustParsePrefix("fe80::/10"),
	netip.MustParsePrefix("fd00:ec2::/32"),
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("::/128"),
}

// ownAddresses are medic's own listen addresses (address and port): a probe
// there would reach medic's own endpoints (/-/reload among them). Set by
// SetOwnAddresses; read on every dial.
var ownAddresses atomic.Pointer[[]netip.AddrPort]

// SetOwnAddresses replaces the listen addresses no probe may connect to:
// medic's own web server. A listener on an unspecified address (":9717",
// "[::]:9717") denies its port on loopback and on every address of the
// host's interfaces. No arguments clears the list.
func SetOwnAddresses(addrs ...net.Addr) error {
	var out []netip.AddrPort
	for _, a := range addrs {
		ap, err := netip.ParseAddrPort(a.String())
		if err != nil {
			return fmt.Errorf("own listen address %q: %w", a.String(), err)
		}
		ip := ap.Addr().Unmap().WithZone("")
		if !ip.IsUnspecified() {
			out = append(out, netip.AddrPortFrom(ip, ap.Port()))
			continue
		}
		// Unspecified: every local address. Loopback is matched by
		// network in denial(); list the interfaces' addresses here.
		out = append(out, netip.AddrPortFrom(ip, ap.Port()))
		ifAddrs, err := net.InterfaceAddrs()
		if err != nil {
			return fmt.Errorf("own listen address %q: listing interface addresses: %w", a.String(), err)
		}
		for _, ia := range ifAddrs {
			if pn, ok := ia.(*net.IPNet); ok {
				if local, ok := netip.AddrFromSlice(pn.IP); ok {
					out = append(out, netip.AddrPortFrom(local.Unmap(), ap.Port()))
				}
			}
		}
	}
	if len(out) == 0 {
		ownAddresses.Store(nil)
		return nil
	}
	ownAddresses.Store(&out)
	return nil
}

// denial reports why a connection to ap is refused whatever the allowlist
// says, or "" when it is not. ap's address is unmapped and without zone.
func denial(ap netip.AddrPort) string {
	a := ap.Addr()
	for _, p := range alwaysDenied {
		if p.Contains(a) {
			return "address " + a.String() + " is always denied (" + p.String() + ")"
		}
	}
	if own := ownAddresses.Load(); own != nil {
		for _, o := range *own {
			if o.Port() != ap.Port() {
				continue
			}
			if o.Addr() == a || (o.Addr().IsUnspecified() && a.IsLoopback()) {
				return "address " + ap.String() + " is medic's own listen address"
			}
		}
	}
	return ""
}
