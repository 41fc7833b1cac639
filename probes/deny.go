package probes

import (
	"fmt"
	"net"
	"net/netip"
	"sync/atomic"

	"github.com/medic-sre/medic/config"
)

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
// says (config's always-denied networks, medic's own listen addresses), or
// "" when it is not. ap's address is unmapped and without zone.
func denial(ap netip.AddrPort) string {
	a := ap.Addr()
	if p, denied := config.AlwaysDeniedNetwork(a); denied {
		return "address " + a.String() + " is always denied (" + p.String() + ")"
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
