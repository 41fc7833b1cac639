package config

import (
	"fmt"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"go.yaml.in/yaml/v3"
)

// The scalar types below parse themselves from a yaml.Node. A value that does
// not parse is reported as a *yaml.TypeError, so that decoding goes on and
// every problem in the file is reported at once. The message carries the
// node's line and column ("line 3: column 12: ..."): Parse uses them to find
// the field path, even among the items of a flow list on one line.

// nodeError reports a problem with the value at n.
func nodeError(n *yaml.Node, format string, args ...any) error {
	return &yaml.TypeError{Errors: []string{
		fmt.Sprintf("line %d: column %d: %s", n.Line, n.Column, fmt.Sprintf(format, args...)),
	}}
}

// scalar returns the scalar node at n, following an alias, or an error
// naming what was wanted instead (what: "a duration").
func scalar(n *yaml.Node, what string) (*yaml.Node, error) {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if n.Kind != yaml.ScalarNode {
		return nil, nodeError(n, "expected %s, got %s", what, kindName(n))
	}
	return n, nil
}

// scalarValue returns the trimmed text of the scalar at n.
func scalarValue(n *yaml.Node, what string) (string, error) {
	s, err := scalar(n, what)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(s.Value), nil
}

// kindName names a node's kind for messages.
func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	default:
		return fmt.Sprintf("%q", n.Value)
	}
}

// UnmarshalYAML parses a duration in Prometheus's syntax ("500ms", "2s",
// "1h30m", "7d", "1w") or, for what that syntax lacks, Go's ("1.5s",
// "-1s"). Its sign and size are checked by the section holding it.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	s, err := scalarValue(n, "a duration")
	if err != nil {
		return err
	}
	v, ok := parseDuration(s)
	if !ok {
		return nodeError(n, "%q is not a duration (write e.g. 500ms, 2s, 1h30m, 7d)", s)
	}
	*d = Duration(v)
	return nil
}

// parseDuration reads Prometheus's duration syntax (units ms, s, m, h, d,
// w, y, largest first, no fraction: what every Prometheus config takes),
// then Go's (fractions, a sign, µs and ns).
func parseDuration(s string) (time.Duration, bool) {
	if v, err := model.ParseDuration(s); err == nil {
		return time.Duration(v), true
	}
	v, err := time.ParseDuration(s)
	return v, err == nil
}

// MarshalYAML writes the duration as a Go duration string.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// String returns the Go duration string ("2s").
func (d Duration) String() string { return time.Duration(d).String() }

// UnmarshalYAML parses a CIDR network. A prefix with host bits set
// ("10.1.2.3/8") is refused: it is more often a typo than a network.
func (p *Prefix) UnmarshalYAML(n *yaml.Node) error {
	s, err := scalarValue(n, "a CIDR network")
	if err != nil {
		return err
	}
	v, err := netip.ParsePrefix(s)
	if err != nil {
		return nodeError(n, "%q is not a CIDR network (write e.g. 10.0.0.0/8)", s)
	}
	if v != v.Masked() {
		return nodeError(n, "%q has host bits set; did you mean %s?", s, v.Masked())
	}
	p.Prefix = v
	return nil
}

// UnmarshalYAML compiles a regular expression (RE2 syntax, unanchored). The
// empty string leaves the Regexp nil: no match is asked for.
func (r *Regexp) UnmarshalYAML(n *yaml.Node) error {
	sn, err := scalar(n, "a regular expression")
	if err != nil {
		return err
	}
	s := sn.Value // as written: leading or trailing spaces may matter
	if s == "" {
		*r = Regexp{}
		return nil
	}
	re, err := regexp.Compile(s)
	if err != nil {
		return nodeError(n, "bad regular expression: %v", err)
	}
	*r = Regexp{Regexp: re, Source: s}
	return nil
}

// MarshalYAML writes the source of the expression.
func (r Regexp) MarshalYAML() (any, error) { return r.Source, nil }

// UnmarshalYAML parses "200-299" or "200". Whether the codes are valid
// HTTP statuses is checked by the probe holding the range.
func (r *StatusRange) UnmarshalYAML(n *yaml.Node) error {
	s, err := scalarValue(n, "a status code or range")
	if err != nil {
		return err
	}
	lo, hi, isRange := strings.Cut(s, "-")
	if !isRange {
		hi = lo
	}
	low, err1 := strconv.Atoi(strings.TrimSpace(lo))
	high, err2 := strconv.Atoi(strings.TrimSpace(hi))
	if err1 != nil || err2 != nil {
		return nodeError(n, "%q is not a status code or range (write e.g. 200 or 200-299)", s)
	}
	*r = StatusRange{Low: low, High: high}
	return nil
}

// MarshalYAML writes the range as "200-299", or 200 for a single code.
func (r StatusRange) MarshalYAML() (any, error) {
	if r.Low == r.High {
		return r.Low, nil
	}
	return r.String(), nil
}

// String returns "200-299", or "200" for a single code.
func (r StatusRange) String() string {
	if r.Low == r.High {
		return strconv.Itoa(r.Low)
	}
	return fmt.Sprintf("%d-%d", r.Low, r.High)
}

// UnmarshalYAML parses a count ("2") or a percentage ("34%"). The bounds
// are checked by the section holding the value.
func (v *IntOrPercent) UnmarshalYAML(n *yaml.Node) error {
	s, err := scalarValue(n, "a count or a percentage")
	if err != nil {
		return err
	}
	num, pct := strings.CutSuffix(s, "%")
	i, err := strconv.Atoi(strings.TrimSpace(num))
	if err != nil {
		return nodeError(n, "%q is not a whole count or percentage (write e.g. 2 or 34%%)", s)
	}
	*v = IntOrPercent{Value: i, IsPercent: pct}
	return nil
}

// MarshalYAML writes 34% or 2.
func (v IntOrPercent) MarshalYAML() (any, error) {
	if !v.IsPercent {
		return v.Value, nil
	}
	return v.String(), nil
}

// String returns "34%" or "2".
func (v IntOrPercent) String() string {
	if v.IsPercent {
		return strconv.Itoa(v.Value) + "%"
	}
	return strconv.Itoa(v.Value)
}

// UnmarshalYAML parses "asg" (use the group's HealthCheckGracePeriod) or a
// duration (see Duration).
func (g *GracePeriod) UnmarshalYAML(n *yaml.Node) error {
	s, err := scalarValue(n, `"asg" or a duration`)
	if err != nil {
		return err
	}
	if s == "asg" {
		*g = GracePeriod{FromASG: true}
		return nil
	}
	d, ok := parseDuration(s)
	if !ok {
		return nodeError(n, `%q is neither "asg" nor a duration (write e.g. asg or 5m)`, s)
	}
	*g = GracePeriod{Duration: d}
	return nil
}

// MarshalYAML writes "asg" or the duration.
func (g GracePeriod) MarshalYAML() (any, error) { return g.String(), nil }

// String returns "asg" or the duration ("5m0s").
func (g GracePeriod) String() string {
	if g.FromASG {
		return "asg"
	}
	return g.Duration.String()
}
