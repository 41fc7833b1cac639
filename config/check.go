package config

import (
	"fmt"
	"slices"
	"strings"
)

// checker collects the problems found after decoding, each tied to the
// YAML field path it concerns ("services[0].instance_probe.port"), so that
// Load can report them all at once with file and line.
//
// Every section of the config has a setDefaults and a
// check(c *checker, path string) method; Parse calls them in order: all
// defaults first, then all checks. The sections in this package take a
// fieldSet in setDefaults, to tell a field left out from one written as
// zero (max_actions_per_hour: 0); Limits and Notifications fill zero values.
type checker struct {
	file  string
	line  func(path string) int // line of a field path, 0 when unknown
	probs []problem

	// isSet reports whether the field at a full path was written in the
	// file; nil means nothing was.
	isSet func(path string) bool
	// probeTypes are the valid values of a probe's type.
	probeTypes []string
	// decodeFailed holds the paths whose values did not decode. A problem
	// found at or below one of them is a consequence and is not reported.
	decodeFailed []string
	// warns are what the author should know about a config that loads.
	warns []problem
}

// problem is one line of an *Error.
type problem struct {
	line int
	text string
}

// errorf records a problem with the field at path.
func (c *checker) errorf(path, format string, args ...any) {
	if c.followsDecodeFailure(path) {
		return
	}
	line := 0
	if c.line != nil {
		line = c.line(path)
	}
	c.add(line, path, fmt.Sprintf(format, args...))
}

// add records a problem at a known line.
func (c *checker) add(line int, path, msg string) {
	c.probs = append(c.probs, problem{line, fmt.Sprintf("%s:%d: %s: %s", c.file, line, path, msg)})
}

// set reports whether the field at path was written in the file.
func (c *checker) set(path string) bool { return c.isSet != nil && c.isSet(path) }

// followsDecodeFailure reports whether path is, or lies below, a value that
// failed to decode. A list with a failed item counts as failed whole: the
// decoder drops the item, so the indexes of the rest no longer match the file.
func (c *checker) followsDecodeFailure(path string) bool {
	for _, f := range c.decodeFailed {
		if strings.HasSuffix(f, "]") {
			f = parentPath(f)
		}
		if f == "" || path == f || strings.HasPrefix(path, f+".") || strings.HasPrefix(path, f+"[") {
			return true
		}
	}
	return false
}

// err returns the problems as an *Error in line order, or nil when there
// are none.
func (c *checker) err() error {
	if len(c.probs) == 0 {
		return nil
	}
	ps := slices.Clone(c.probs)
	slices.SortStableFunc(ps, func(a, b problem) int { return a.line - b.line })
	e := &Error{Problems: make([]string, len(ps))}
	for i, p := range ps {
		e.Problems[i] = p.text
	}
	return e
}

// Error is every problem found in a config file, one per line, each
// "FILE:LINE: field.path: message".
type Error struct {
	Problems []string
}

func (e *Error) Error() string { return strings.Join(e.Problems, "\n") }
