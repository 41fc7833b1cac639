package main

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// A second service names a group that does not exist: only that service
// refuses, with the reason; the first heals as usual, and readiness names
// the missing group without going unready (issue 7, isolation).
func TestE2EMissingGroupRefusesItsOwnServiceOnly(t *testing.T) {
	w := newWorld(t, fleetOpts{PerAZ: 2})
	cfg := w.config(cfgOpts{}) + fmt.Sprintf(`  - name: ghost
    auto_scaling_groups: [no-such-group]
    instance_probe: {type: http, port: %d, path: /health, interval: 1s, timeout: 500ms}
`, w.port)
	m := w.startMedic(w.writeConfig("medic.yml", cfg))
	m.waitJudged(svc, "healthy", len(w.instances()), 30*time.Second)
	eventually(t, 15*time.Second, "/-/ready naming the missing group", func() (bool, string) {
		code, body, err := m.get("/-/ready")
		return code == http.StatusOK && strings.Contains(body, "no-such-group"), fmt.Sprintf("%d %q %v", code, body, err)
	})
	victim := w.instances()[0].ID
	if err := w.app(victim).Status(http.StatusInternalServerError); err != nil {
		t.Fatal(err)
	}
	w.waitUnhealthy(victim, 15*time.Second)
	w.assertOnlyUnhealthy(victim)
	if n := w.proxy.Count("SetInstanceHealth"); n != 1 {
		t.Errorf("SetInstanceHealth calls = %d, want 1", n)
	}
}
