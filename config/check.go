package config

import "fmt"

// checker collects the problems found after decoding, each tied to the
// YAML field path it concerns ("services[0].instance_probe.port"), so that
// Load can report them all at once with file and line.
//
// Every section of the config has a setDefaults() and a
// check(c *checker, path string) method; Load calls them in order.
type checker struct {
	file  string
	line  func(path string) int // line of a field path, 0 when unknown
	probs []string
}

// errorf records a problem with the field at path.
func (c *checker) errorf(path, format string, args ...any) {
	line := 0
	if c.line != nil {
		line = c.line(path)
	}
	c.probs = append(c.probs, fmt.Sprintf("%s:%d: %s: %s", c.file, line, path, fmt.Sprintf(format, args...)))
}
