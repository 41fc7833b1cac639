package config_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/medic-sre/medic/config"
)

// probeTypes stands in for the keys of probes.Probers.
var probeTypes = []string{"http", "tcp"}

// parse parses an inline config written with tabs for indentation, which
// YAML refuses: each leading tab becomes two spaces.
func parse(t *testing.T, src string) (*config.Config, error) {
	t.Helper()
	lines := strings.Split(strings.TrimPrefix(src, "\n"), "\n")
	for i, l := range lines {
		trimmed := strings.TrimLeft(l, "\t")
		lines[i] = strings.Repeat("  ", len(l)-len(trimmed)) + trimmed
	}
	return config.Parse([]byte(strings.Join(lines, "\n")), "inline.yml", probeTypes)
}

// problems returns the problems of err, failing the test unless err is an
// *config.Error.
func problems(t *testing.T, err error) []string {
	t.Helper()
	var ce *config.Error
	if !errors.As(err, &ce) {
		t.Fatalf("error %v (%T) is not a *config.Error", err, err)
	}
	return ce.Problems
}

func TestExampleLoads(t *testing.T) {
	cfg, err := config.Load("../examples/medic.yml", probeTypes)
	if err != nil {
		t.Fatalf("examples/medic.yml does not load:\n%v", err)
	}
	web := cfg.Service("web")
	if web == nil {
		t.Fatal(`no service "web"`)
	}
	ep := web.EndpointProbe
	if ep.Scheme != "https" || ep.Port != 443 || ep.Path != "/health" {
		t.Errorf("endpoint probe scheme, port, path = %s, %d, %s; want https, 443, /health", ep.Scheme, ep.Port, ep.Path)
	}
	if ep.Interval.D() != 5*time.Second || ep.Timeout.D() != 2*time.Second {
		t.Errorf("endpoint probe interval, timeout = %s, %s; want its own 5s, 2s", ep.Interval, ep.Timeout)
	}
	if ep.BodyMustMatch == nil || !ep.BodyMustMatch.MatchString(`{"status": "ok"}`) {
		t.Errorf("endpoint probe did not take body_must_match from the instance probe: %v", ep.BodyMustMatch)
	}
	if ep.Headers["User-Agent"] != "medic" {
		t.Errorf("endpoint probe headers = %v, want the instance probe's", ep.Headers)
	}
	legacy := cfg.Service("legacy-db-proxy")
	if legacy == nil || legacy.Policy.MaxActionsPerHour != 0 || legacy.Policy.UnhealthyAfter != 3 {
		t.Errorf("legacy-db-proxy policy = %+v, want max_actions_per_hour 0 and defaults", legacy.Policy)
	}
	if cfg.File != "../examples/medic.yml" {
		t.Errorf("File = %q", cfg.File)
	}
}

// TestInvalidFiles holds one file per validation rule, each matched against
// every problem it must produce, with file and line.
func TestInvalidFiles(t *testing.T) {
	tests := []struct {
		desc string
		file string
		want []string // "LINE: path: message"; the file name is prepended
	}{
		{"bad YAML syntax", "invalid-syntax.yml", []string{
			`2: syntax error: did not find expected ',' or ']'`}},
		{"unknown key, with a suggestion", "invalid-unknown-key.yml", []string{
			`6: services[0].instance_probe.intervall: unknown field; did you mean "interval"?`}},
		{"bad duration", "invalid-duration.yml", []string{
			`6: services[0].instance_probe.interval: "2 seconds" is not a duration (write e.g. 500ms, 2s, 1h30m, 7d)`}},
		{"durations in neither Prometheus's nor Go's syntax, each with its line", "invalid-duration-unit.yml", []string{
			`7: services[0].policy.grace_period: "2days" is neither "asg" nor a duration (write e.g. asg or 5m)`,
			`10: services[0].instance_probe.interval: "2h1d" is not a duration (write e.g. 500ms, 2s, 1h30m, 7d)`,
			`11: services[0].instance_probe.timeout: "5x" is not a duration (write e.g. 500ms, 2s, 1h30m, 7d)`}},
		{"nested aliases (a billion laughs in 254 bytes), refused before any walk", "invalid-alias-bomb.yml", []string{
			`1: (top level): with its aliases expanded the document has over 200000 nodes (nested aliases?); refused before decoding`}},
		{"no services", "invalid-no-services.yml", []string{
			`3: services: at least one service is required`}},
		{"empty service name", "invalid-empty-name.yml", []string{
			`2: services[0].name: must not be empty`}},
		{"duplicate service name", "invalid-duplicate-name.yml", []string{
			`6: services[1].name: "web" is already the name of services[0]`}},
		{"neither groups nor static targets", "invalid-no-targets.yml", []string{
			`2: services[0]: has neither auto_scaling_groups nor static_targets: nothing to probe`}},
		{"bad regular expression", "invalid-regex.yml", []string{
			"6: services[0].instance_probe.body_must_match: bad regular expression: error parsing regexp: missing closing ): `status: (ok`"}},
		{"port out of range", "invalid-port-range.yml", []string{
			`5: services[0].instance_probe.port: 70000 is out of range 1-65535`}},
		{"port missing with groups: reported at the probe", "invalid-port-missing.yml", []string{
			`4: services[0].instance_probe.port: is required when the service has auto_scaling_groups`}},
		{"unknown probe type", "invalid-probe-type.yml", []string{
			`5: services[0].instance_probe.type: unknown probe type "grpc" (known: http, tcp)`}},
		{"timeout longer than interval", "invalid-timeout-over-interval.yml", []string{
			`7: services[0].instance_probe.timeout: 3s is longer than interval 2s`}},
		{"interval and timeout zero", "invalid-interval-zero.yml", []string{
			`6: services[0].instance_probe.interval: must be positive, got 0s`,
			`7: services[0].instance_probe.timeout: must be positive, got 0s`}},
		{"expect_status outside 100-599", "invalid-expect-status-range.yml", []string{
			`8: services[0].instance_probe.expect_status[1]: 600 is out of range 100-599`,
			`9: services[0].instance_probe.expect_status[2]: 99-200 is out of range 100-599`}},
		{"expect_status low above high", "invalid-expect-status-order.yml", []string{
			`6: services[0].instance_probe.expect_status[0]: 299-200: low is above high`}},
		{"max_unhealthy above 100%", "invalid-max-unhealthy-percent.yml", []string{
			`7: services[0].policy.max_unhealthy: 101% is above 100%`}},
		{"max_unhealthy negative", "invalid-max-unhealthy-negative.yml", []string{
			`7: services[0].policy.max_unhealthy: must not be negative, got -1`}},
		{"unhealthy_after and healthy_after below 1", "invalid-unhealthy-after.yml", []string{
			`7: services[0].policy.unhealthy_after: must be at least 1, got 0`,
			`8: services[0].policy.healthy_after: must be at least 1, got -1`}},
		{"endpoint not an http(s) URL", "invalid-endpoint-url.yml", []string{
			`3: services[0].endpoint: "ftp://web.example.com/health" is not an http or https URL`,
			`8: services[1].endpoint: "/health" is not an http or https URL`}},
		{"endpoint IP outside allowed_networks", "invalid-endpoint-network.yml", []string{
			`5: services[0].endpoint: address 203.0.113.10 is outside global.allowed_networks`}},
		{"static target not host:port, port 0", "invalid-static-target.yml", []string{
			`6: services[0].static_targets[1]: "127.0.0.6" is not host:port`,
			`7: services[0].static_targets[2]: "127.0.0.7:0" has port 0, out of range 1-65535`}},
		{"static target IP outside allowed_networks", "invalid-static-target-network.yml", []string{
			`5: services[0].static_targets[1]: address 203.0.113.5 is outside global.allowed_networks`}},
		{"bad CIDR, host bits set", "invalid-cidr.yml", []string{
			`4: global.allowed_networks[1]: "10.300.0.0/16" is not a CIDR network (write e.g. 10.0.0.0/8)`,
			`5: global.allowed_networks[2]: "192.168.1.1/16" has host bits set; did you mean 192.168.0.0/16?`}},
		{"discovery_interval below 1s", "invalid-discovery-interval.yml", []string{
			`2: global.discovery_interval: 500ms is below the minimum of 1s`}},
		{"scheme not http or https", "invalid-scheme.yml", []string{
			`6: services[0].instance_probe.scheme: "HTTPS" is not http or https`}},
		{"headers_from_env variable unset", "invalid-env-unset.yml", []string{
			`7: services[0].instance_probe.headers_from_env.Authorization: environment variable MEDIC_TEST_UNSET_TOKEN is not set`}},
		{"credential in clear in headers", "invalid-credential-header.yml", []string{
			`7: services[0].instance_probe.headers.Authorization: Authorization carries a credential, which the file must not hold: use headers_from_env`}},
		{"lease duration below 3s", "invalid-lease-duration.yml", []string{
			`3: global.lease.duration: 2s is below the minimum of 3s`}},
		{"lease renew_every exactly half the duration", "invalid-lease-renew-every.yml", []string{
			`4: global.lease.renew_every: 5s is not below half of duration 10s`}},
		{"lease renew_every zero", "invalid-lease-renew-every-zero.yml", []string{
			`3: global.lease.renew_every: must be positive, got 0s`}},
		{"lease table not a DynamoDB name, empty lease name", "invalid-lease-table.yml", []string{
			`3: global.lease.table: "medic lease" is not a DynamoDB table name (3-255 of a-z A-Z 0-9 _ - .)`,
			`4: global.lease.name: must not be empty`}},
		{"limits forecast gates, request headroom and reservation retries", "invalid-limits-forecast.yml", []string{
			`6: limits.history: must be at least trend_window (24h0m0s), got 12h0m0s`,
			`7: limits.trend_window: must span at least min_peaks (1) peak windows of 48h0m0s, got 24h0m0s`,
			`9: limits.min_peaks: must be at least 2 (a line needs two points), got 1`,
			`10: limits.min_r_squared: must be in (0, 1]: the share of the peaks' variance the trend must explain, got 1.5`,
			`12: limits.increase_requests.headroom: must not be negative, got -0.1`,
			`14: limits.prewarm.max_retries: must not be negative`}},
		{"every problem at once, decode and checks, in line order", "invalid-many.yml", []string{
			`2: global.discovery_interval: "fast" is not a duration (write e.g. 500ms, 2s, 1h30m, 7d)`,
			`3: global.allowed_networks[1]: "not-a-network" is not a CIDR network (write e.g. 10.0.0.0/8)`,
			`8: services[0].instance_probe.port: 70000 is out of range 1-65535`,
			`9: services[0].instance_probe.timeout: 5s is longer than interval 2s`,
			`10: services[0].instance_probe.colour: unknown field (known: body_must_match, expect_status, follow_redirects, headers, headers_from_env, interval, keep_alive, max_body_bytes, method, path, port, scheme, timeout, tls, type)`,
			`12: services[0].policy.max_unhealthy: 150% is above 100%`,
			`13: services[1]: has neither auto_scaling_groups nor static_targets: nothing to probe`,
			`13: services[1].name: "web" is already the name of services[0]`}},
	}
	seen := map[string]bool{}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			seen[tt.file] = true
			path := filepath.Join("testdata", tt.file)
			cfg, err := config.Load(path, probeTypes)
			if err == nil {
				t.Fatalf("loaded %s without error: %+v", path, cfg)
			}
			if cfg != nil {
				t.Errorf("returned a Config along with the error")
			}
			var want []string
			for _, w := range tt.want {
				want = append(want, path+":"+w)
			}
			if got := problems(t, err); !slices.Equal(got, want) {
				t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
			if err.Error() != strings.Join(want, "\n") {
				t.Errorf("Error() = %q, want the problems joined by newlines", err.Error())
			}
		})
	}
	files, _ := filepath.Glob("testdata/invalid-*.yml")
	for _, f := range files {
		if !seen[filepath.Base(f)] {
			t.Errorf("%s has no row in the table", f)
		}
	}
}

// TestInvalidInline covers rules beyond the one-file-per-rule list.
func TestInvalidInline(t *testing.T) {
	const svc = `
services:
	- name: web
		auto_scaling_groups: [web-asg]
		instance_probe:
			port: 8080` // no final newline: rows append lines
	tests := []struct {
		desc string
		src  string
		want []string // "LINE: path: message"
	}{
		{"a group in two services", `
services:
	- name: a
		auto_scaling_groups: [shared, a-asg]
		instance_probe: {port: 80}
	- name: b
		auto_scaling_groups: [b-asg, shared]
		instance_probe: {port: 80}
`, []string{`6: services[1].auto_scaling_groups[1]: group "shared" already belongs to services[0] ("a"): one group, one service`}},
		{"a group listed twice, an empty group", `
services:
	- name: a
		auto_scaling_groups: [a-asg, a-asg, ""]
		instance_probe: {port: 80}
`, []string{
			`3: services[0].auto_scaling_groups[1]: "a-asg" is listed twice`,
			`3: services[0].auto_scaling_groups[2]: must not be empty`}},
		{"endpoint_probe without endpoint", svc + `
		endpoint_probe: {interval: 5s}
`, []string{`6: services[0].endpoint_probe: is set but endpoint is empty`}},
		{"endpoint_probe port, scheme, path come from endpoint", `
global: {allowed_networks: [127.0.0.0/8]}
services:
	- name: web
		endpoint: https://web.example.com/health
		static_targets: [127.0.0.1:80]
		endpoint_probe:
			port: 8443
			scheme: https
			path: /x
`, []string{
			`7: services[0].endpoint_probe.port: is taken from endpoint; write it there`,
			`8: services[0].endpoint_probe.scheme: is taken from endpoint; write it there`,
			`9: services[0].endpoint_probe.path: is taken from endpoint; write it there`}},
		{"endpoint with credentials, without host, with a bad port", `
global: {allowed_networks: [127.0.0.0/8]}
services:
	- name: a
		endpoint: https://user:hunter2@web.example.com/
		static_targets: [127.0.0.1:80]
	- name: b
		endpoint: "http:///health"
		static_targets: [127.0.0.1:80]
	- name: c
		endpoint: http://web.example.com:0/
		static_targets: [127.0.0.1:80]
`, []string{
			`4: services[0].endpoint: "https://user:xxxxx@web.example.com/" holds credentials; send them with endpoint_probe.headers_from_env`,
			`7: services[1].endpoint: "http:///health" has no host`,
			`10: services[2].endpoint: "http://web.example.com:0/" has port 0, out of range 1-65535`}},
		{"endpoint IPv6 literal outside allowed_networks", `
services:
	- name: a
		endpoint: http://[2001:db8::1]:8080/
		static_targets: ["[fd00::1]:80"]
`, []string{
			`3: services[0].endpoint: address 2001:db8::1 is outside global.allowed_networks`,
			`4: services[0].static_targets[0]: address fd00::1 is outside global.allowed_networks`}},
		{"always-denied addresses, even with 0.0.0.0/0 and ::/0 allowed", `
global: {allowed_networks: [0.0.0.0/0, "::/0"]}
services:
	- name: a
		endpoint: http://169.254.169.254/latest/meta-data/
		static_targets: [0.0.0.0:80, "[::]:80", "[fd00:ec2::254]:80", "[fe80::1]:80", "[::ffff:169.254.170.2]:80", 169.254.255.255:80, 169.255.0.1:80]
`, []string{
			`4: services[0].endpoint: address 169.254.169.254 is always denied (169.254.0.0/16), whatever global.allowed_networks says`,
			`5: services[0].static_targets[0]: address 0.0.0.0 is always denied (0.0.0.0/8), whatever global.allowed_networks says`,
			`5: services[0].static_targets[1]: address :: is always denied (::/128), whatever global.allowed_networks says`,
			`5: services[0].static_targets[2]: address fd00:ec2::254 is always denied (fd00:ec2::/32), whatever global.allowed_networks says`,
			`5: services[0].static_targets[3]: address fe80::1 is always denied (fe80::/10), whatever global.allowed_networks says`,
			`5: services[0].static_targets[4]: address ::ffff:169.254.170.2 is always denied (169.254.0.0/16), whatever global.allowed_networks says`,
			`5: services[0].static_targets[5]: address 169.254.255.255 is always denied (169.254.0.0/16), whatever global.allowed_networks says`}},
		{"method, path, max_body_bytes", svc + `
			method: get
			path: health
			max_body_bytes: 0
`, []string{
			`6: services[0].instance_probe.method: "get" is not one of GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS`,
			`7: services[0].instance_probe.path: "health" does not start with /`,
			`8: services[0].instance_probe.max_body_bytes: must be positive, got 0`}},
		{"expect_status written empty", svc + `
			expect_status: []
`, []string{`6: services[0].instance_probe.expect_status: must list at least one status`}},
		{"allowed_networks written empty, max_concurrent_probes 0", `
global:
	allowed_networks: []
	max_concurrent_probes: 0
` + svc, []string{
			`2: global.allowed_networks: must list at least one network (0.0.0.0/0 and ::/0 allow any)`,
			`3: global.max_concurrent_probes: must be at least 1, got 0`}},
		{"negative grace_period and max_actions_per_hour", svc + `
		policy:
			grace_period: -1m
			max_actions_per_hour: -1
`, []string{
			`7: services[0].policy.grace_period: must not be negative, got -1m0s`,
			`8: services[0].policy.max_actions_per_hour: must not be negative, got -1`}},
		{"bad grace_period, bad max_unhealthy", svc + `
		policy:
			grace_period: never
			max_unhealthy: 1.5%
`, []string{
			`7: services[0].policy.grace_period: "never" is neither "asg" nor a duration (write e.g. asg or 5m)`,
			`8: services[0].policy.max_unhealthy: "1.5%" is not a whole count or percentage (write e.g. 2 or 34%)`}},
		{"headers: bad name, line break; headers_from_env: bad variable, duplicate header", svc + `
			headers: {"Bad Name": x, X-A: "a\nb", x-dup: 1}
			headers_from_env: {X-Dup: SOME_VAR, X-B: "not-a-var"}
`, []string{
			`6: services[0].instance_probe.headers.Bad Name: "Bad Name" is not a valid header name`,
			`6: services[0].instance_probe.headers.X-A: the value holds a line break or NUL`,
			`7: services[0].instance_probe.headers_from_env.X-B: "not-a-var" is not an environment variable name`,
			`7: services[0].instance_probe.headers_from_env.X-Dup: environment variable SOME_VAR is not set`,
			`7: services[0].instance_probe.headers_from_env.X-Dup: header X-Dup is also in headers; set it in one place`}},
		{"wrong kinds: a list for a string, a string for a list, a mapping for a duration", `
services:
	- name: [web]
		auto_scaling_groups: web-asg
		instance_probe:
			port: 8080
			interval: {seconds: 2}
`, []string{
			`2: services[0].name: expected a string, got a list`,
			`3: services[0].auto_scaling_groups: expected a list, got "web-asg"`,
			`6: services[0].instance_probe.interval: expected a duration, got a mapping`}},
		{"empty list items, which the decoder would drop", `
services:
	-
	- name: web
		auto_scaling_groups: [a, ~, b]
		instance_probe: {port: 8080}
`, []string{
			`2: services[0]: empty list item`,
			`4: services[1].auto_scaling_groups[1]: empty list item`}},
		{"a key set twice", svc + `
			port: 9090
`, []string{`6: services[0].instance_probe.port: is set twice (first on line 5)`}},
		{"a list instead of the whole config", `
- name: web
`, []string{`1: (top level): expected a mapping, got a list`}},
		{"two documents", svc + `
---
services: []
`, []string{`7: (top level): a second YAML document; a config file holds one`}},
		{"empty file", ``, []string{`1: services: at least one service is required`}},
		{"unknown top-level key, far from any", svc + `
probers: {}
`, []string{`6: probers: unknown field (known: global, limits, notifications, services)`}},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			_, err := parse(t, tt.src)
			if err == nil {
				t.Fatal("parsed without error")
			}
			var want []string
			for _, w := range tt.want {
				want = append(want, "inline.yml:"+w)
			}
			if got := problems(t, err); !slices.Equal(got, want) {
				t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("the error shows a password: %v", err)
			}
		})
	}
}

func TestDefaults(t *testing.T) {
	cfg, err := parse(t, `
services:
	- name: web
		endpoint: http://web.example.com:8080
		auto_scaling_groups: [web-asg]
		instance_probe:
			port: 8080
`)
	if err != nil {
		t.Fatal(err)
	}
	wantGlobal := config.Global{
		AllowedNetworks:     config.DefaultAllowedNetworks(),
		DiscoveryInterval:   config.Duration(15 * time.Second),
		MaxConcurrentProbes: 512,
	}
	if !reflect.DeepEqual(cfg.Global, wantGlobal) {
		t.Errorf("global = %+v\nwant %+v", cfg.Global, wantGlobal)
	}
	probe := config.Probe{
		Type: "http", Scheme: "http", Path: "/", Method: "GET",
		Interval: config.Duration(2 * time.Second), Timeout: config.Duration(time.Second),
		ExpectStatus: []config.StatusRange{{Low: 200, High: 299}},
		MaxBodyBytes: 65536,
	}
	wantInstance := probe
	wantInstance.Port = 8080
	wantEndpoint := probe
	wantEndpoint.Port = 8080 // from the URL, like scheme and path
	want := config.Service{
		Name:              "web",
		Endpoint:          "http://web.example.com:8080",
		AutoScalingGroups: []string{"web-asg"},
		InstanceProbe:     wantInstance,
		EndpointProbe:     wantEndpoint,
		Policy: config.Policy{
			UnhealthyAfter: 3, HealthyAfter: 2,
			MaxUnhealthy:      config.IntOrPercent{Value: 34, IsPercent: true},
			GracePeriod:       config.GracePeriod{FromASG: true},
			MaxActionsPerHour: 10,
			AZCorrelation:     true,
		},
	}
	if !reflect.DeepEqual(cfg.Services[0], want) {
		t.Errorf("service =\n%+v\nwant\n%+v", cfg.Services[0], want)
	}
}

// TestWrittenZeroIsKept: a value written as zero (or null, or "") is the
// author's, not a default's.
func TestWrittenZeroIsKept(t *testing.T) {
	const head = `
services:
	- name: web
		auto_scaling_groups: [web-asg]
		instance_probe:
			port: 8080
`
	tests := []struct {
		desc  string
		extra string
		check func(s config.Service) string // "" when right
	}{
		{"max_actions_per_hour: 0 means never act", "\t\tpolicy: {max_actions_per_hour: 0}", func(s config.Service) string {
			if s.Policy.MaxActionsPerHour != 0 {
				return fmt.Sprint("max_actions_per_hour = ", s.Policy.MaxActionsPerHour)
			}
			return ""
		}},
		{"max_unhealthy: 0 is a count of zero", "\t\tpolicy: {max_unhealthy: 0}", func(s config.Service) string {
			if s.Policy.MaxUnhealthy != (config.IntOrPercent{}) {
				return fmt.Sprint("max_unhealthy = ", s.Policy.MaxUnhealthy)
			}
			return ""
		}},
		{"max_unhealthy: 100% is allowed", "\t\tpolicy: {max_unhealthy: 100%}", func(s config.Service) string {
			if s.Policy.MaxUnhealthy != (config.IntOrPercent{Value: 100, IsPercent: true}) {
				return fmt.Sprint("max_unhealthy = ", s.Policy.MaxUnhealthy)
			}
			return ""
		}},
		{"grace_period: 0s is no grace, not the group's", "\t\tpolicy: {grace_period: 0s}", func(s config.Service) string {
			if s.Policy.GracePeriod != (config.GracePeriod{}) {
				return fmt.Sprint("grace_period = ", s.Policy.GracePeriod)
			}
			return ""
		}},
		{"unhealthy_after: 1 and healthy_after: 1, the lowest allowed", "\t\tpolicy: {unhealthy_after: 1, healthy_after: 1}", func(s config.Service) string {
			if s.Policy.UnhealthyAfter != 1 || s.Policy.HealthyAfter != 1 {
				return fmt.Sprintf("policy = %+v", s.Policy)
			}
			return ""
		}},
		{`body_must_match: "" asks for no match`, "\t\t\tbody_must_match: \"\"", func(s config.Service) string {
			if s.InstanceProbe.BodyMustMatch != nil {
				return fmt.Sprint("body_must_match = ", s.InstanceProbe.BodyMustMatch)
			}
			return ""
		}},
		{"null is unset: the default applies", "\t\t\tinterval:\n\t\t\texpect_status: ~", func(s config.Service) string {
			if s.InstanceProbe.Interval.D() != 2*time.Second || len(s.InstanceProbe.ExpectStatus) != 1 {
				return fmt.Sprintf("interval = %s, expect_status = %v", s.InstanceProbe.Interval, s.InstanceProbe.ExpectStatus)
			}
			return ""
		}},
		{"timeout equal to interval is allowed", "\t\t\tinterval: 1s\n\t\t\ttimeout: 1s", func(s config.Service) string {
			if s.InstanceProbe.Timeout != s.InstanceProbe.Interval {
				return fmt.Sprintf("timeout %s, interval %s", s.InstanceProbe.Timeout, s.InstanceProbe.Interval)
			}
			return ""
		}},
		{"ports 1 and 65535 are in range", "\t\tendpoint: http://10.0.0.1:65535/\n\t\tstatic_targets: [10.0.0.2:1]", func(s config.Service) string {
			if s.EndpointProbe.Port != 65535 {
				return fmt.Sprint("endpoint port = ", s.EndpointProbe.Port)
			}
			return ""
		}},
		{"expect_status bounds 100 and 599, a single code", "\t\t\texpect_status: [100-599, 302]", func(s config.Service) string {
			want := []config.StatusRange{{Low: 100, High: 599}, {Low: 302, High: 302}}
			if !slices.Equal(s.InstanceProbe.ExpectStatus, want) {
				return fmt.Sprint("expect_status = ", s.InstanceProbe.ExpectStatus)
			}
			return ""
		}},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			cfg, err := parse(t, head+tt.extra)
			if err != nil {
				t.Fatal(err)
			}
			if msg := tt.check(cfg.Services[0]); msg != "" {
				t.Error(msg)
			}
		})
	}
}

func TestEndpointProbeInherits(t *testing.T) {
	cfg, err := parse(t, `
services:
	- name: web
		endpoint: https://web.example.com/ready?deep=1
		auto_scaling_groups: [web-asg]
		instance_probe:
			port: 8080
			interval: 10s
			timeout: 4s
			method: HEAD
			expect_status: ["204"]
			body_must_match: ok
			headers: {X-Probe: medic}
			max_body_bytes: 100
			keep_alive: true
		endpoint_probe:
			timeout: 3s
			method: GET
`)
	if err != nil {
		t.Fatal(err)
	}
	ep := cfg.Services[0].EndpointProbe
	tests := []struct {
		desc      string
		got, want any
	}{
		{"interval from the instance probe", ep.Interval.D(), 10 * time.Second},
		{"timeout its own", ep.Timeout.D(), 3 * time.Second},
		{"method its own", ep.Method, "GET"},
		{"expect_status from the instance probe", ep.ExpectStatus, []config.StatusRange{{Low: 204, High: 204}}},
		{"body_must_match from the instance probe", ep.BodyMustMatch.Source, "ok"},
		{"headers from the instance probe", ep.Headers, map[string]string{"X-Probe": "medic"}},
		{"max_body_bytes from the instance probe", ep.MaxBodyBytes, int64(100)},
		{"keep_alive not inherited", ep.KeepAlive, false},
		{"type default", ep.Type, "http"},
		{"scheme from the URL", ep.Scheme, "https"},
		{"port from the URL's scheme", ep.Port, 443},
		{"path and query from the URL", ep.Path, "/ready?deep=1"},
	}
	for _, tt := range tests {
		if !reflect.DeepEqual(tt.got, tt.want) {
			t.Errorf("%s: got %v, want %v", tt.desc, tt.got, tt.want)
		}
	}
}

func TestHeadersFromEnv(t *testing.T) {
	const token = "Bearer s3cr3t-value"
	t.Setenv("MEDIC_TEST_TOKEN", token)
	cfg, err := parse(t, `
services:
	- name: web
		endpoint: https://web.example.com/
		auto_scaling_groups: [web-asg]
		instance_probe:
			port: 8080
			headers: {X-Probe: medic}
			headers_from_env: {authorization: MEDIC_TEST_TOKEN}
`)
	if err != nil {
		t.Fatal(err)
	}
	s := cfg.Services[0]
	for _, p := range []config.Probe{s.InstanceProbe, s.EndpointProbe} {
		h := p.RequestHeader()
		if h.Get("Authorization") != token || h.Get("X-Probe") != "medic" {
			t.Errorf("RequestHeader() = %v, want the token and X-Probe", h)
		}
	}

	// Nothing that prints the config shows the value.
	js, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ym, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	secret := s.InstanceProbe.SecretHeaders["Authorization"]
	for _, out := range []string{
		fmt.Sprintf("%v", cfg), fmt.Sprintf("%+v", cfg), fmt.Sprintf("%#v", cfg),
		fmt.Sprintf("%s|%q|%d|%x", secret, secret, secret, secret), secret.String(),
		string(js), string(ym),
	} {
		if strings.Contains(out, "s3cr3t") {
			t.Errorf("printed config shows the secret: %s", out)
		}
	}

	t.Run("empty variable", func(t *testing.T) {
		t.Setenv("MEDIC_TEST_EMPTY", "")
		_, err := parse(t, `
global: {allowed_networks: [127.0.0.0/8]}
services:
	- name: web
		static_targets: [127.0.0.1:80]
		endpoint: http://web.example.com/
		endpoint_probe:
			headers_from_env: {X-Token: MEDIC_TEST_EMPTY}
`)
		want := []string{`inline.yml:7: services[0].endpoint_probe.headers_from_env.X-Token: environment variable MEDIC_TEST_EMPTY is empty`}
		if got := problems(t, err); !slices.Equal(got, want) {
			t.Errorf("problems %q, want %q", got, want)
		}
	})
}

func TestAllows(t *testing.T) {
	g := config.Global{AllowedNetworks: []config.Prefix{
		{Prefix: netip.MustParsePrefix("127.0.0.0/8")},
		{Prefix: netip.MustParsePrefix("fd00::/8")},
	}}
	tests := []struct {
		desc string
		addr string
		want bool
	}{
		{"inside", "127.0.0.1", true},
		{"last address of the network", "127.255.255.255", true},
		{"just outside", "128.0.0.0", false},
		{"private but not listed", "10.0.0.1", false},
		{"IPv4-mapped IPv6 judged as IPv4", "::ffff:127.0.0.1", true},
		{"IPv6 inside", "fd12::1", true},
		{"IPv6 with a zone", "fd12::1%eth0", true},
		{"IPv6 outside", "2001:db8::1", false},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			if got := g.Allows(netip.MustParseAddr(tt.addr)); got != tt.want {
				t.Errorf("Allows(%s) = %v, want %v", tt.addr, got, tt.want)
			}
		})
	}
	if (config.Global{}).Allows(netip.MustParseAddr("127.0.0.1")) {
		t.Error("no networks must allow nothing")
	}
}

func TestService(t *testing.T) {
	cfg, err := config.Load("../examples/medic.yml", probeTypes)
	if err != nil {
		t.Fatal(err)
	}
	s := cfg.Service("web")
	if s == nil || s != &cfg.Services[0] {
		t.Errorf(`Service("web") = %p, want %p`, s, &cfg.Services[0])
	}
	if s := cfg.Service("nope"); s != nil {
		t.Errorf(`Service("nope") = %+v, want nil`, s)
	}
}

func TestYAMLFeatures(t *testing.T) {
	cfg, err := parse(t, `
services:
	- name: web
		auto_scaling_groups: [web-asg]
		instance_probe: &probe
			port: 8080
			interval: 5s
			timeout: &t 2s
	- name: api
		auto_scaling_groups: [api-asg]
		instance_probe:
			<<: *probe
			port: 9090
		endpoint: http://api.example.com/
		endpoint_probe:
			timeout: *t
`)
	if err != nil {
		t.Fatal(err)
	}
	api := cfg.Services[1].InstanceProbe
	if api.Port != 9090 || api.Interval.D() != 5*time.Second || api.Timeout.D() != 2*time.Second {
		t.Errorf("merged probe = port %d, interval %s, timeout %s; want 9090, 5s, 2s", api.Port, api.Interval, api.Timeout)
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := config.Load(filepath.Join(t.TempDir(), "nope.yml"), probeTypes)
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("err = %v, want one wrapping fs.ErrNotExist", err)
	}
	var ce *config.Error
	if errors.As(err, &ce) {
		t.Errorf("an unreadable file is not a config problem: %v", err)
	}
}

func TestValuesPrint(t *testing.T) {
	tests := []struct {
		desc string
		v    any
		want string
	}{
		{"duration", config.Duration(90 * time.Second), "1m30s"},
		{"status range", config.StatusRange{Low: 200, High: 299}, "200-299"},
		{"single status", config.StatusRange{Low: 204, High: 204}, "204"},
		{"percent", config.IntOrPercent{Value: 34, IsPercent: true}, "34%"},
		{"count", config.IntOrPercent{Value: 2}, "2"},
		{"grace from the group", config.GracePeriod{FromASG: true}, "asg"},
		{"grace fixed", config.GracePeriod{Duration: 5 * time.Minute}, "5m0s"},
		{"secret", config.Secret("x"), "<secret>"},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			out, err := yaml.Marshal(tt.v)
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.TrimSpace(string(out)); got != tt.want {
				t.Errorf("yaml = %q, want %q", got, tt.want)
			}
			if got := fmt.Sprint(tt.v); got != tt.want {
				t.Errorf("fmt = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestMain(m *testing.M) {
	// invalid-env-unset.yml relies on this variable being unset.
	os.Unsetenv("MEDIC_TEST_UNSET_TOKEN")
	os.Exit(m.Run())
}

// TestDurationSyntax: durations take Prometheus's syntax (7d, 1w, 1h30m)
// and Go's (1.5s), wherever the config has one.
func TestDurationSyntax(t *testing.T) {
	tests := []struct {
		desc string
		in   string
		want time.Duration
	}{
		{"Prometheus days", "7d", 7 * 24 * time.Hour},
		{"Prometheus weeks", "1w", 7 * 24 * time.Hour},
		{"Prometheus compound", "1h30m", 90 * time.Minute},
		{"Prometheus milliseconds", "500ms", 500 * time.Millisecond},
		{"Prometheus year", "1y", 365 * 24 * time.Hour},
		{"Go fraction", "1.5h", 90 * time.Minute},
		{"Go compound with seconds", "1m30s", 90 * time.Second},
		{"zero", "0s", 0},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			cfg, err := parse(t, `
global:
	discovery_interval: `+tt.in+`
services:
	- name: web
		auto_scaling_groups: [web-asg]
		instance_probe: {port: 8080}
		policy:
			grace_period: `+tt.in+`
`)
			if tt.want < time.Second { // below the discovery_interval minimum
				if err == nil {
					t.Fatalf("%s accepted as discovery_interval", tt.in)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := cfg.Global.DiscoveryInterval.D(); got != tt.want {
				t.Errorf("discovery_interval %s = %s, want %s", tt.in, got, tt.want)
			}
			if got := cfg.Services[0].Policy.GracePeriod.Duration; got != tt.want {
				t.Errorf("grace_period %s = %s, want %s", tt.in, got, tt.want)
			}
		})
	}
}
