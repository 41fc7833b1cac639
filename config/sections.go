package config

import (
	"fmt"
	"maps"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Defaults, in one place; docs/configuration.md lists the same.
const (
	defaultDiscoveryInterval   = 15 * time.Second
	minDiscoveryInterval       = time.Second
	defaultMaxConcurrentProbes = 512

	defaultProbeType      = "http"
	defaultScheme         = "http"
	defaultPath           = "/"
	defaultMethod         = "GET"
	defaultInterval       = 2 * time.Second
	defaultTimeout        = time.Second
	defaultMaxBodyBytes   = 64 << 10
	defaultUnhealthyAfter = 3
	defaultHealthyAfter   = 2
	defaultMaxUnhealthy   = 34 // percent
	defaultMaxActionsHr   = 10
)

// DefaultAllowedNetworks are the networks probes may reach when
// global.allowed_networks is not written: the private ranges. Loopback is
// not among them (a probe there reaches the host medic runs on, its own
// endpoints included): a config probing loopback names 127.0.0.0/8.
func DefaultAllowedNetworks() []Prefix {
	var ps []Prefix
	for _, s := range []string{"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"} {
		ps = append(ps, Prefix{netip.MustParsePrefix(s)})
	}
	return ps
}

// httpMethods are the methods a probe may use.
var httpMethods = []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}

// credentialHeaders may not be written in clear in headers.
var credentialHeaders = []string{"Authorization", "Proxy-Authorization", "Cookie"}

// setDefaults fills every field the file left out.
func (cfg *Config) setDefaults(set fieldSet) {
	cfg.Global.setDefaults(set.under("global"))
	for i := range cfg.Services {
		cfg.Services[i].setDefaults(set.under(itemPath("services", i)))
	}
	cfg.Limits.setDefaults()
	cfg.Notifications.setDefaults()
}

// resolveSecrets reads the environment variables named by headers_from_env.
func (cfg *Config) resolveSecrets(c *checker) {
	for i := range cfg.Services {
		cfg.Services[i].resolveSecrets(c, itemPath("services", i))
	}
}

// check records every problem of the whole config, including those that
// span sections: unique service names, a group owned by one service only,
// targets inside the allowed networks.
func (cfg *Config) check(c *checker) {
	cfg.Global.check(c, "global")
	if len(cfg.Services) == 0 {
		c.errorf("services", "at least one service is required")
	}
	names := map[string]int{}
	groups := map[string]int{}
	for i := range cfg.Services {
		s := &cfg.Services[i]
		path := itemPath("services", i)
		s.check(c, path)
		if j, dup := names[s.Name]; dup && s.Name != "" {
			c.errorf(path+".name", "%q is already the name of services[%d]", s.Name, j)
		} else {
			names[s.Name] = i
		}
		for k, g := range s.AutoScalingGroups {
			if j, dup := groups[g]; dup && j != i && g != "" {
				c.errorf(itemPath(path+".auto_scaling_groups", k), "group %q already belongs to services[%d] (%q): one group, one service", g, j, cfg.Services[j].Name)
			} else if !dup {
				groups[g] = i
			}
		}
		if len(cfg.Global.AllowedNetworks) > 0 {
			s.checkNetworks(c, path, cfg.Global)
		}
		s.checkExposure(c, path)
	}
	cfg.Limits.check(c, "limits")
	cfg.Notifications.check(c, "notifications")
}

func (g *Global) setDefaults(set fieldSet) {
	if !set("allowed_networks") {
		g.AllowedNetworks = DefaultAllowedNetworks()
	}
	if !set("discovery_interval") {
		g.DiscoveryInterval = Duration(defaultDiscoveryInterval)
	}
	if !set("max_concurrent_probes") {
		g.MaxConcurrentProbes = defaultMaxConcurrentProbes
	}
	if g.Lease != nil {
		g.Lease.setDefaults(set.under("lease"), g.Environment)
	}
}

func (g *Global) check(c *checker, path string) {
	if len(g.AllowedNetworks) == 0 {
		c.errorf(path+".allowed_networks", "must list at least one network (0.0.0.0/0 and ::/0 allow any)")
	}
	if g.DiscoveryInterval.D() < minDiscoveryInterval {
		c.errorf(path+".discovery_interval", "%s is below the minimum of %s", g.DiscoveryInterval, minDiscoveryInterval)
	}
	if g.MaxConcurrentProbes < 1 {
		c.errorf(path+".max_concurrent_probes", "must be at least 1, got %d", g.MaxConcurrentProbes)
	}
	if g.Lease != nil {
		g.Lease.check(c, path+".lease")
	}
}

// Allows reports whether a probe may connect to a: whether it lies in one of
// AllowedNetworks. An IPv4-mapped IPv6 address is judged as IPv4, and a zone
// is ignored.
func (g Global) Allows(a netip.Addr) bool {
	a = a.Unmap().WithZone("")
	for _, p := range g.AllowedNetworks {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// Service returns the service with the given name, or nil.
func (cfg *Config) Service(name string) *Service {
	for i := range cfg.Services {
		if cfg.Services[i].Name == name {
			return &cfg.Services[i]
		}
	}
	return nil
}

// Groups lists every Auto Scaling group the services name, in config order.
func (cfg *Config) Groups() []string {
	var out []string
	for _, s := range cfg.Services {
		out = append(out, s.AutoScalingGroups...)
	}
	return out
}

// setDefaults fills the probes and the policy. The endpoint probe takes the
// instance probe's settings for the fields it leaves out, and its scheme,
// port and path from the endpoint URL.
func (s *Service) setDefaults(set fieldSet) {
	s.InstanceProbe.setDefaults(set.under("instance_probe"))
	ep := set.under("endpoint_probe")
	s.EndpointProbe.setDefaults(ep)
	s.EndpointProbe.inherit(&s.InstanceProbe, ep)
	if u, err := url.Parse(s.Endpoint); err == nil && (u.Scheme == "http" || u.Scheme == "https") {
		s.EndpointProbe.Scheme = u.Scheme
		s.EndpointProbe.Path = u.RequestURI()
		s.EndpointProbe.Port = 80
		if u.Scheme == "https" {
			s.EndpointProbe.Port = 443
		}
		if p, err := strconv.Atoi(u.Port()); err == nil {
			s.EndpointProbe.Port = p
		}
	}
	s.Policy.setDefaults(set.under("policy"))
}

// resolveSecrets reads the headers_from_env of both probes. An endpoint
// probe that does not write its own headers_from_env takes the values read
// for the instance probe.
func (s *Service) resolveSecrets(c *checker, path string) {
	s.InstanceProbe.resolveSecrets(c, path+".instance_probe")
	if c.set(path + ".endpoint_probe.headers_from_env") {
		s.EndpointProbe.resolveSecrets(c, path+".endpoint_probe")
	} else {
		s.EndpointProbe.SecretHeaders = maps.Clone(s.InstanceProbe.SecretHeaders)
	}
}

func (s *Service) check(c *checker, path string) {
	if strings.TrimSpace(s.Name) == "" {
		c.errorf(path+".name", "must not be empty")
	}
	if len(s.AutoScalingGroups) == 0 && len(s.StaticTargets) == 0 &&
		!c.followsDecodeFailure(path+".auto_scaling_groups") && !c.followsDecodeFailure(path+".static_targets") {
		c.errorf(path, "has neither auto_scaling_groups nor static_targets: nothing to probe")
	}
	checkList(c, path+".auto_scaling_groups", s.AutoScalingGroups)
	checkList(c, path+".static_targets", s.StaticTargets)
	for i, t := range s.StaticTargets {
		if t == "" {
			continue
		}
		if _, _, err := splitTarget(t); err != nil {
			c.errorf(itemPath(path+".static_targets", i), "%q %v", t, err)
		}
	}

	ip := path + ".instance_probe"
	s.InstanceProbe.check(c, ip)
	if len(s.AutoScalingGroups) > 0 && !c.set(ip+".port") {
		c.errorf(ip+".port", "is required when the service has auto_scaling_groups")
	}

	ep := path + ".endpoint_probe"
	if s.Endpoint == "" {
		if c.set(ep) {
			c.errorf(ep, "is set but endpoint is empty")
		}
	} else {
		if _, err := parseEndpoint(s.Endpoint); err != nil {
			c.errorf(path+".endpoint", "%q %v", RedactURL(s.Endpoint), err)
		}
		for _, f := range []string{"port", "scheme", "path"} {
			if c.set(ep + "." + f) {
				c.errorf(ep+"."+f, "is taken from endpoint; write it there")
			}
		}
		s.EndpointProbe.check(c, ep)
	}
	s.Policy.check(c, path+".policy")
}

// checkList records empty and repeated items of a list of names.
func checkList(c *checker, path string, items []string) {
	seen := map[string]bool{}
	for i, v := range items {
		switch {
		case strings.TrimSpace(v) == "":
			c.errorf(itemPath(path, i), "must not be empty")
		case seen[v]:
			c.errorf(itemPath(path, i), "%q is listed twice", v)
		}
		seen[v] = true
	}
}

// checkNetworks records endpoint and static targets written as IP addresses
// outside g's allowed networks or in the always-denied ones. Host names are resolved, and checked, by
// the prober on every probe.
func (s *Service) checkNetworks(c *checker, path string, g Global) {
	if u, err := parseEndpoint(s.Endpoint); err == nil {
		if a, err := netip.ParseAddr(u.Hostname()); err == nil {
			if p, denied := AlwaysDeniedNetwork(a); denied {
				c.errorf(path+".endpoint", "address %s is always denied (%s), whatever global.allowed_networks says", a, p)
			} else if !g.Allows(a) {
				c.errorf(path+".endpoint", "address %s is outside global.allowed_networks", a)
			}
		}
	}
	for i, t := range s.StaticTargets {
		host, _, err := splitTarget(t)
		if err != nil {
			continue
		}
		if a, err := netip.ParseAddr(host); err == nil {
			if p, denied := AlwaysDeniedNetwork(a); denied {
				c.errorf(itemPath(path+".static_targets", i), "address %s is always denied (%s), whatever global.allowed_networks says", a, p)
			} else if !g.Allows(a) {
				c.errorf(itemPath(path+".static_targets", i), "address %s is outside global.allowed_networks", a)
			}
		}
	}
}

// parseEndpoint parses an endpoint URL; the error completes a sentence
// that starts with the quoted URL.
func parseEndpoint(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	switch {
	case err != nil || (u.Scheme != "http" && u.Scheme != "https"):
		return nil, fmt.Errorf("is not an http or https URL")
	case u.Host == "" || u.Hostname() == "":
		return nil, fmt.Errorf("has no host")
	case u.User != nil:
		return nil, fmt.Errorf("holds credentials; send them with endpoint_probe.headers_from_env")
	case len(secretQueryKeys(u)) > 0:
		return nil, fmt.Errorf("holds a secret in its query (%s), which would show on the status page, in notifications and in logs; send it with endpoint_probe.headers_from_env",
			strings.Join(secretQueryKeys(u), ", "))
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("has port %s, out of range 1-65535", p)
		}
	}
	return u, nil
}

// splitTarget splits a static target into host and port; the error
// completes a sentence that starts with the quoted target.
func splitTarget(t string) (host string, port int, err error) {
	host, p, err := net.SplitHostPort(t)
	if err != nil || host == "" {
		return "", 0, fmt.Errorf("is not host:port")
	}
	port, err = strconv.Atoi(p)
	if err != nil || port < 1 || port > 65535 {
		return "", 0, fmt.Errorf("has port %s, out of range 1-65535", p)
	}
	return host, port, nil
}

func (p *Probe) setDefaults(set fieldSet) {
	if !set("type") {
		p.Type = defaultProbeType
	}
	if !set("scheme") {
		p.Scheme = defaultScheme
	}
	if !set("path") {
		p.Path = defaultPath
	}
	if !set("method") {
		p.Method = defaultMethod
	}
	if !set("interval") {
		p.Interval = Duration(defaultInterval)
	}
	if !set("timeout") {
		p.Timeout = Duration(defaultTimeout)
	}
	if !set("expect_status") {
		p.ExpectStatus = []StatusRange{{200, 299}}
	}
	if !set("max_body_bytes") {
		p.MaxBodyBytes = defaultMaxBodyBytes
	}
	if p.BodyMustMatch != nil && p.BodyMustMatch.Regexp == nil {
		p.BodyMustMatch = nil // written as "": no match asked for
	}
}

// inherit copies from the fields that p leaves out (set says which were
// written): the settings an endpoint probe shares with the instance probe.
func (p *Probe) inherit(from *Probe, set fieldSet) {
	if !set("interval") {
		p.Interval = from.Interval
	}
	if !set("timeout") {
		p.Timeout = from.Timeout
	}
	if !set("expect_status") {
		p.ExpectStatus = slices.Clone(from.ExpectStatus)
	}
	if !set("body_must_match") {
		p.BodyMustMatch = from.BodyMustMatch
	}
	if !set("max_body_bytes") {
		p.MaxBodyBytes = from.MaxBodyBytes
	}
	if !set("method") {
		p.Method = from.Method
	}
	if !set("headers") {
		p.Headers = maps.Clone(from.Headers)
	}
	if !set("headers_from_env") {
		p.HeadersFromEnv = maps.Clone(from.HeadersFromEnv)
	}
}

// resolveSecrets reads each variable named in HeadersFromEnv into
// SecretHeaders. Problems name the header and the variable, never a value.
func (p *Probe) resolveSecrets(c *checker, path string) {
	p.SecretHeaders = nil
	for _, h := range slices.Sorted(maps.Keys(p.HeadersFromEnv)) {
		env := p.HeadersFromEnv[h]
		hp := path + ".headers_from_env." + h
		if !validEnvName(env) {
			c.errorf(hp, "%q is not an environment variable name", env)
			continue
		}
		v, ok := os.LookupEnv(env)
		switch {
		case !ok:
			c.errorf(hp, "environment variable %s is not set", env)
			continue
		case v == "":
			c.errorf(hp, "environment variable %s is empty", env)
			continue
		case strings.ContainsAny(v, "\r\n\x00"):
			c.errorf(hp, "environment variable %s holds a line break or NUL", env)
			continue
		}
		if p.SecretHeaders == nil {
			p.SecretHeaders = map[string]Secret{}
		}
		p.SecretHeaders[http.CanonicalHeaderKey(h)] = Secret(v)
	}
}

func (p *Probe) check(c *checker, path string) {
	if !slices.Contains(c.probeTypes, p.Type) {
		c.errorf(path+".type", "unknown probe type %q (known: %s)", p.Type, strings.Join(slices.Sorted(slices.Values(c.probeTypes)), ", "))
	}
	if c.set(path+".port") && (p.Port < 1 || p.Port > 65535) {
		c.errorf(path+".port", "%d is out of range 1-65535", p.Port)
	}
	if p.Scheme != "http" && p.Scheme != "https" {
		c.errorf(path+".scheme", "%q is not http or https", p.Scheme)
	}
	if !strings.HasPrefix(p.Path, "/") {
		c.errorf(path+".path", "%q does not start with /", p.Path)
	}
	if !slices.Contains(httpMethods, p.Method) {
		c.errorf(path+".method", "%q is not one of %s", p.Method, strings.Join(httpMethods, ", "))
	}
	if p.Interval <= 0 {
		c.errorf(path+".interval", "must be positive, got %s", p.Interval)
	}
	if p.Timeout <= 0 {
		c.errorf(path+".timeout", "must be positive, got %s", p.Timeout)
	} else if p.Interval > 0 && p.Timeout > p.Interval {
		c.errorf(path+".timeout", "%s is longer than interval %s", p.Timeout, p.Interval)
	}
	if len(p.ExpectStatus) == 0 {
		c.errorf(path+".expect_status", "must list at least one status")
	}
	for i, r := range p.ExpectStatus {
		rp := itemPath(path+".expect_status", i)
		switch {
		case r.Low < 100 || r.Low > 599 || r.High < 100 || r.High > 599:
			c.errorf(rp, "%s is out of range 100-599", r)
		case r.Low > r.High:
			c.errorf(rp, "%s: low is above high", r)
		}
	}
	if p.MaxBodyBytes < 1 {
		c.errorf(path+".max_body_bytes", "must be positive, got %d", p.MaxBodyBytes)
	}
	plain := map[string]bool{}
	for _, h := range slices.Sorted(maps.Keys(p.Headers)) {
		hp := path + ".headers." + h
		ch := http.CanonicalHeaderKey(h)
		plain[ch] = true
		switch {
		case !validHeaderName(h):
			c.errorf(hp, "%q is not a valid header name", h)
		case slices.Contains(credentialHeaders, ch):
			c.errorf(hp, "%s carries a credential, which the file must not hold: use headers_from_env", ch)
		case strings.ContainsAny(p.Headers[h], "\r\n\x00"):
			c.errorf(hp, "the value holds a line break or NUL")
		}
	}
	for _, h := range slices.Sorted(maps.Keys(p.HeadersFromEnv)) {
		hp := path + ".headers_from_env." + h
		switch {
		case !validHeaderName(h):
			c.errorf(hp, "%q is not a valid header name", h)
		case plain[http.CanonicalHeaderKey(h)]:
			c.errorf(hp, "header %s is also in headers; set it in one place", http.CanonicalHeaderKey(h))
		}
	}
}

// validHeaderName reports whether s is an HTTP field name (RFC 9110 token).
func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		case strings.ContainsRune("!#$%&'*+-.^_`|~", r):
		default:
			return false
		}
	}
	return true
}

// validEnvName reports whether s is a portable environment variable name.
func validEnvName(s string) bool {
	if s == "" || (s[0] >= '0' && s[0] <= '9') {
		return false
	}
	for _, r := range s {
		if !(r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}

func (p *Policy) setDefaults(set fieldSet) {
	if !set("unhealthy_after") {
		p.UnhealthyAfter = defaultUnhealthyAfter
	}
	if !set("healthy_after") {
		p.HealthyAfter = defaultHealthyAfter
	}
	if !set("max_unhealthy") {
		p.MaxUnhealthy = IntOrPercent{Value: defaultMaxUnhealthy, IsPercent: true}
	}
	if !set("grace_period") {
		p.GracePeriod = GracePeriod{FromASG: true}
	}
	if !set("max_actions_per_hour") {
		p.MaxActionsPerHour = defaultMaxActionsHr
	}
	if !set("az_correlation") {
		p.AZCorrelation = true
	}
}

func (p *Policy) check(c *checker, path string) {
	if p.UnhealthyAfter < 1 {
		c.errorf(path+".unhealthy_after", "must be at least 1, got %d", p.UnhealthyAfter)
	}
	if p.HealthyAfter < 1 {
		c.errorf(path+".healthy_after", "must be at least 1, got %d", p.HealthyAfter)
	}
	switch mu := p.MaxUnhealthy; {
	case mu.Value < 0:
		c.errorf(path+".max_unhealthy", "must not be negative, got %s", mu)
	case mu.IsPercent && mu.Value > 100:
		c.errorf(path+".max_unhealthy", "%s is above 100%%", mu)
	}
	if !p.GracePeriod.FromASG && p.GracePeriod.Duration < 0 {
		c.errorf(path+".grace_period", "must not be negative, got %s", p.GracePeriod)
	}
	if p.MaxActionsPerHour < 0 {
		c.errorf(path+".max_actions_per_hour", "must not be negative, got %d", p.MaxActionsPerHour)
	}
}
