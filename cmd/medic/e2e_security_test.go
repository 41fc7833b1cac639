package main

import (
	"fmt"
	"syscall"
	"testing"
	"time"
)

// TestE2EProbesNeverReachMedicItself: an endpoint pointed at medic's own
// web server (as a redirect or a hostile config would point it at
// /-/reload) is refused before connect(2), with allowed_networks naming
// loopback: main hands the listen address to the probes' deny list.
func TestE2EProbesNeverReachMedicItself(t *testing.T) {
	w := newWorld(t, fleetOpts{PerAZ: 1})
	m := w.steady(w.config(cfgOpts{}))

	cfg := w.config(cfgOpts{Endpoint: fmt.Sprintf("http://%s/-/reload", m.addr)})
	w.writeConfig("medic.yml", cfg)
	if err := m.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("address %s is medic's own listen address", m.addr)
	eventually(t, 15*time.Second, "the endpoint probe refused", func() (bool, string) {
		return len(m.logsWith("msg", "probe failed", "reason", want)) > 0, "no 'probe failed' line with reason " + want
	})
	if n := len(m.logsWith("msg", "config reloaded", "trigger", "/-/reload")); n != 0 {
		t.Errorf("%d reloads by /-/reload, want 0: a probe reached medic itself", n)
	}
}
