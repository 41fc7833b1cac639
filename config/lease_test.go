package config_test

import (
	"reflect"
	"testing"
	"time"

	"github.com/medic-sre/medic/config"
)

// TestLeaseDefaults: global.lease is optional; written (even as {}), it
// takes its defaults, its name following the environment.
func TestLeaseDefaults(t *testing.T) {
	const services = `
services:
	- name: web
		static_targets: [web.example.com:8080]
`
	tests := []struct {
		desc   string
		global string
		want   *config.Lease
	}{
		{"absent: no lease, this replica always acts", "", nil},
		{"written null: the same as absent", "global:\n\tlease:\n", nil},
		{"empty mapping, no environment", "global:\n\tlease: {}\n",
			&config.Lease{Table: "medic-lease", Name: "medic", Duration: config.Duration(15 * time.Second), RenewEvery: config.Duration(5 * time.Second)}},
		{"empty mapping, environment names the lease", "global:\n\tenvironment: prod\n\tlease: {}\n",
			&config.Lease{Table: "medic-lease", Name: "medic-prod", Duration: config.Duration(15 * time.Second), RenewEvery: config.Duration(5 * time.Second)}},
		{"written values kept; renew_every just below half", "global:\n\tenvironment: prod\n\tlease:\n\t\ttable: ops.leases\n\t\tname: medic-blue\n\t\tduration: 3s\n\t\trenew_every: 1499ms\n",
			&config.Lease{Table: "ops.leases", Name: "medic-blue", Duration: config.Duration(3 * time.Second), RenewEvery: config.Duration(1499 * time.Millisecond)}},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			cfg, err := parse(t, tt.global+services)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(cfg.Global.Lease, tt.want) {
				t.Errorf("global.lease = %+v, want %+v", cfg.Global.Lease, tt.want)
			}
		})
	}
}
