package config

import "net/netip"

// alwaysDenied are the networks no probe may connect to, whatever
// global.allowed_networks says (0.0.0.0/0 included): link-local with the
// instance metadata service (169.254.0.0/16, fe80::/10), the metadata
// service's IPv6 range (fd00:ec2::/32), "this network" (0.0.0.0/8, which
// Linux connects to the host itself) and the IPv6 unspecified address (::,
// the same). The probes package refuses them on every dial, before
// connect(2); config refuses a target written as such an address at load.
var alwaysDenied = []netip.Prefix{
	netip.MustParsePrefix("169.254.0.0/16"),
	netip.MustParsePrefix("fe80::/10"),
	netip.MustParsePrefix("fd00:ec2::/32"),
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("::/128"),
}

// AlwaysDeniedNetwork returns the always-denied network holding a (an
// IPv4-mapped address judged as IPv4, a zone ignored), or false.
func AlwaysDeniedNetwork(a netip.Addr) (netip.Prefix, bool) {
	a = a.Unmap().WithZone("")
	for _, p := range alwaysDenied {
		if p.Contains(a) {
			return p, true
		}
	}
	return netip.Prefix{}, false
}
