package config

import (
	"strings"
	"time"
)

// Lease makes one replica among several the acting one (see lease/ and
// docs/lease.md). Global.Lease is nil when the file has no global.lease:
// then this replica always acts, and exactly one replica must run.
type Lease struct {
	// Table is the DynamoDB table holding the lease (partition key "name",
	// a string). Default medic-lease.
	Table string `yaml:"table"`
	// Name is the lease's item in the table; replicas sharing it elect one
	// leader. Default "medic-" + global.environment, or "medic".
	Name string `yaml:"name"`
	// Duration a write holds the lease. Default 15s, at least 3s.
	Duration Duration `yaml:"duration"`
	// RenewEvery is how often the holder renews (and a standby tries).
	// Default 5s, under half of Duration.
	RenewEvery Duration `yaml:"renew_every"`
}

// Lease defaults and bounds; docs/configuration.md lists the same.
const (
	defaultLeaseTable      = "medic-lease"
	defaultLeaseDuration   = 15 * time.Second
	minLeaseDuration       = 3 * time.Second
	defaultLeaseRenewEvery = 5 * time.Second
)

// setDefaults fills the fields left out; the name follows environment.
func (l *Lease) setDefaults(set fieldSet, environment string) {
	if !set("table") {
		l.Table = defaultLeaseTable
	}
	if !set("name") {
		l.Name = "medic"
		if environment != "" {
			l.Name = "medic-" + environment
		}
	}
	if !set("duration") {
		l.Duration = Duration(defaultLeaseDuration)
	}
	if !set("renew_every") {
		l.RenewEvery = Duration(defaultLeaseRenewEvery)
	}
}

func (l *Lease) check(c *checker, path string) {
	if !validTableName(l.Table) {
		c.errorf(path+".table", "%q is not a DynamoDB table name (3-255 of a-z A-Z 0-9 _ - .)", l.Table)
	}
	if strings.TrimSpace(l.Name) == "" {
		c.errorf(path+".name", "must not be empty")
	}
	if l.Duration.D() < minLeaseDuration {
		c.errorf(path+".duration", "%s is below the minimum of %s", l.Duration, minLeaseDuration)
	}
	switch {
	case l.RenewEvery <= 0:
		c.errorf(path+".renew_every", "must be positive, got %s", l.RenewEvery)
	case l.Duration.D() >= minLeaseDuration && l.RenewEvery.D() >= l.Duration.D()/2:
		c.errorf(path+".renew_every", "%s is not below half of duration %s", l.RenewEvery, l.Duration)
	}
}

// validTableName reports whether s is a valid DynamoDB table name.
func validTableName(s string) bool {
	if len(s) < 3 || len(s) > 255 {
		return false
	}
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '_', r == '-', r == '.':
		default:
			return false
		}
	}
	return true
}
