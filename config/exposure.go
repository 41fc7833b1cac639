package config

import (
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strings"
)

// secretQueryWords are the query keys, lower-cased without "-", "_" and
// ".", that name a secret: an endpoint URL carrying one would show it on
// the status page, in notifications and in logs.
var secretQueryWords = []string{"key", "sig", "auth", "code", "pass", "pwd", "jwt", "session", "sid"}

// secretQueryParts are the parts that make any query key a secret one
// ("access_token", "X-Amz-Signature", "client_secret").
var secretQueryParts = []string{"token", "secret", "password", "passwd", "apikey", "accesskey",
	"signature", "credential", "authorization", "privatekey"}

// secretQueryKey reports whether a query key names a secret.
func secretQueryKey(k string) bool {
	n := strings.NewReplacer("-", "", "_", "", ".", "").Replace(strings.ToLower(k))
	if slices.Contains(secretQueryWords, n) {
		return true
	}
	for _, p := range secretQueryParts {
		if strings.Contains(n, p) {
			return true
		}
	}
	return false
}

// secretQueryKeys returns the query keys of u that name a secret, sorted.
func secretQueryKeys(u *url.URL) []string {
	var keys []string
	for k := range u.Query() {
		if secretQueryKey(k) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	return keys
}

// RedactURL returns s with its password and the value of every query
// parameter replaced by "xxxxx", for showing a URL to people (status page,
// notifications, logs). Load refuses endpoints whose query names a secret;
// this hides what a query holds that Load could not tell was one. A string
// that is not a URL comes back as it is.
func RedactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return s
	}
	if u.RawQuery != "" {
		q := u.Query()
		for _, k := range slices.Sorted(maps.Keys(q)) {
			for i := range q[k] {
				q[k][i] = "xxxxx"
			}
		}
		u.RawQuery = q.Encode()
	}
	return u.Redacted()
}

// checkExposure warns about secret headers (headers_from_env) that a probe
// would send where others can read them or to a server it does not verify.
func (s *Service) checkExposure(c *checker, path string) {
	for _, p := range []struct {
		name  string
		probe *Probe
	}{{"instance_probe", &s.InstanceProbe}, {"endpoint_probe", &s.EndpointProbe}} {
		if len(p.probe.SecretHeaders) == 0 || (p.name == "endpoint_probe" && s.Endpoint == "") {
			continue
		}
		pp := path + "." + p.name
		at := pp + ".headers_from_env"
		if !c.set(at) { // an endpoint probe inherits the instance probe's
			at = path + ".instance_probe.headers_from_env"
		}
		names := strings.Join(slices.Sorted(maps.Keys(p.probe.SecretHeaders)), ", ")
		switch {
		case p.probe.Scheme == "http":
			c.warnf(at, "%s sends %s from headers_from_env over plain http: anyone on the path can read it; use https", p.name, names)
		case p.probe.TLS.InsecureSkipVerify:
			c.warnf(at, "%s sends %s from headers_from_env with tls.insecure_skip_verify: any server that answers gets it", p.name, names)
		}
	}
}

// warnf records a warning about the field at path: the config loads, but
// the author should know.
func (c *checker) warnf(path, format string, args ...any) {
	line := 0
	if c.line != nil {
		line = c.line(path)
	}
	c.warns = append(c.warns, problem{line, fmt.Sprintf("%s:%d: %s: %s", c.file, line, path, fmt.Sprintf(format, args...))})
}

// warnings returns the warnings in line order.
func (c *checker) warnings() []string {
	ps := slices.Clone(c.warns)
	slices.SortStableFunc(ps, func(a, b problem) int { return a.line - b.line })
	var out []string
	for _, p := range ps {
		out = append(out, p.text)
	}
	return out
}
