package probes

import (
	"context"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/go-kit/log"
)

// TestAlwaysDenied probes the always-deny list with allowed_networks
// 0.0.0.0/0 and ::/0: every address is refused before connect(2), with the
// reason naming the list.
func TestAlwaysDenied(t *testing.T) {
	srv := newCountingServer(t, http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	_, port, _ := net.SplitHostPort(srv.addr())
	tests := []struct {
		desc, address, reason string
	}{
		{desc: "instance metadata", address: "169.254.169.254:80", reason: "address 169.254.169.254 is always denied (169.254.0.0/16)"},
		{desc: "link-local, upper end", address: "169.254.255.255:80", reason: "address 169.254.255.255 is always denied (169.254.0.0/16)"},
		{desc: "metadata as IPv4-mapped IPv6", address: "[::ffff:169.254.169.254]:80", reason: "address 169.254.169.254 is always denied (169.254.0.0/16)"},
		{desc: "0.0.0.0 reaches the host itself", address: "0.0.0.0:" + port, reason: "address 0.0.0.0 is always denied (0.0.0.0/8)"},
		{desc: "this network, upper end", address: "0.255.255.255:" + port, reason: "address 0.255.255.255 is always denied (0.0.0.0/8)"},
		{desc: "IPv6 unspecified", address: "[::]:" + port, reason: "address :: is always denied (::/128)"},
		{desc: "IPv6 link-local", address: "[fe80::1%25lo]:80", reason: "address fe80::1 is always denied (fe80::/10)"},
		{desc: "IPv6 metadata service", address: "[fd00:ec2::254]:80", reason: "address fd00:ec2::254 is always denied (fd00:ec2::/32)"},
	}
	for _, prober := range []string{"http", "tcp"} {
		for _, tc := range tests {
			t.Run(prober+"/"+tc.desc, func(t *testing.T) {
				target := Target{Key: tc.desc, Address: tc.address, Settings: probeSettings(), Allowed: prefixes(t, "0.0.0.0/0", "::/0")}
				if prober == "http" && strings.Contains(tc.address, "%25") {
					target.Address = "http://" + tc.address + "/"
				} else if strings.Contains(tc.address, "%25") {
					target.Address = strings.Replace(tc.address, "%25", "%", 1)
				}
				r := Probers[prober](context.Background(), target, log.NewNopLogger())
				if r.Success || r.Reason != tc.reason {
					t.Errorf("got success=%v reason=%q, want reason %q", r.Success, r.Reason, tc.reason)
				}
			})
		}
	}
	if n := srv.conns.Load(); n != 0 {
		t.Errorf("server accepted %d connections, want 0", n)
	}
}

// TestOwnAddressDenied: medic's own listen address is refused whatever the
// allowlist says, exactly (address and port) or, for a listener on all
// addresses, its port on loopback; the list is replaced, not added to.
func TestOwnAddressDenied(t *testing.T) {
	t.Cleanup(func() { SetOwnAddresses() })
	own := newCountingServer(t, http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	other := newCountingServer(t, http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	_, port, _ := net.SplitHostPort(own.addr())
	probe := func(addr string) Result {
		target := Target{Key: addr, Address: addr, Settings: probeSettings(), Allowed: prefixes(t, "0.0.0.0/0", "::/0")}
		return Probers["http"](context.Background(), target, log.NewNopLogger())
	}

	if err := SetOwnAddresses(own.Listener.Addr()); err != nil {
		t.Fatal(err)
	}
	if r := probe(own.addr()); r.Reason != "address "+own.addr()+" is medic's own listen address" {
		t.Errorf("own address: reason %q", r.Reason)
	}
	if r := probe(other.addr()); !r.Success {
		t.Errorf("another port: got %q, want success", r.Reason)
	}

	if err := SetOwnAddresses(&net.TCPAddr{IP: net.IPv6unspecified, Port: own.Listener.Addr().(*net.TCPAddr).Port}); err != nil {
		t.Fatal(err)
	}
	if r := probe("127.0.0.9:" + port); r.Reason != "address 127.0.0.9:"+port+" is medic's own listen address" {
		t.Errorf("listener on [::], probe on another loopback address: reason %q", r.Reason)
	}

	if err := SetOwnAddresses(); err != nil {
		t.Fatal(err)
	}
	if r := probe(own.addr()); !r.Success {
		t.Errorf("after clearing: got %q, want success", r.Reason)
	}
	if n := own.conns.Load(); n != 1 {
		t.Errorf("own server accepted %d connections, want 1 (after clearing only)", n)
	}
}
