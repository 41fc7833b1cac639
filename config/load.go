package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// topLevel stands for the field path of the document itself.
const topLevel = "(top level)"

// Load reads and parses the config file at path; see Parse. An unreadable
// file is reported as the wrapped I/O error, not as an *Error; a file over
// MaxFileBytes is refused without reading it all.
func Load(path string, probeTypes []string) (*Config, error) {
	data, err := ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(data, path, probeTypes)
}

// ReadFile reads the config file at path, at most MaxFileBytes of it and
// one byte more: enough for Parse to tell that it is too big.
func ReadFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return data, nil
}

// Parse decodes a config file strictly (an unknown key is an error),
// applies the defaults, reads the secrets named by headers_from_env and
// validates the result. probeTypes are the valid values of a probe's type.
//
// It returns a Config only when there is no problem at all. Otherwise the
// error is an *Error listing every problem in line order, each as
// "FILE:LINE: field.path: message", file as given. A YAML syntax error stops
// decoding, so it is reported alone; so is a file over MaxFileBytes, or
// one whose aliases expand to more than MaxNodes nodes.
func Parse(data []byte, file string, probeTypes []string) (*Config, error) {
	c := &checker{file: file, probeTypes: probeTypes}
	if !c.checkBounds(len(data), nil) {
		return nil, c.err()
	}

	// The tree, for lines and presence; it also catches syntax errors.
	// Building it does not expand aliases: its size is that of the file.
	var root yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&root); err != nil && !errors.Is(err, io.EOF) {
		c.abort(err)
		return nil, c.err()
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case err == nil && len(extra.Content) > 0 && extra.Content[0].ShortTag() != "!!null":
		c.add(extra.Content[0].Line, topLevel, "a second YAML document; a config file holds one")
		return nil, c.err()
	case err != nil && !errors.Is(err, io.EOF):
		c.abort(err)
		return nil, c.err()
	}
	if !c.checkBounds(len(data), &root) {
		return nil, c.err()
	}
	doc := newDocument(&root)
	c.line, c.isSet = doc.line, doc.isSet
	for _, p := range doc.nullItems() {
		c.add(doc.line(p), p, "empty list item")
		c.markFailed(p)
	}

	// The structs, strictly. Type errors do not stop the decoder: all of
	// them are collected, and the checks below still run on the rest.
	cfg := &Config{}
	strict := yaml.NewDecoder(bytes.NewReader(data))
	strict.KnownFields(true)
	if err := strict.Decode(cfg); err != nil && !errors.Is(err, io.EOF) {
		var te *yaml.TypeError
		if !errors.As(err, &te) {
			// An unmarshaler returned a plain error, which stops the decoder.
			line, msg := yamlErrorLine(err)
			path := doc.pathAt(line, nil)
			if path == "" {
				path = topLevel
			}
			c.add(line, path, msg)
			return nil, c.err()
		}
		for _, msg := range te.Errors {
			c.decodeError(doc, msg)
		}
	}
	cfg.File = file

	cfg.setDefaults(doc.isSet)
	cfg.resolveSecrets(c)
	cfg.check(c)
	if err := c.err(); err != nil {
		return nil, err
	}
	cfg.Warnings = c.warnings()
	return cfg, nil
}

var (
	reLine      = regexp.MustCompile(`^(?:yaml: )?line (\d+): (?:column (\d+): )?((?s).*)$`)
	reUnknown   = regexp.MustCompile(`^field (.+) not found in type (\S+)$`)
	reSetTwice  = regexp.MustCompile(`^field (.+) already set in type \S+$`)
	reDupKey    = regexp.MustCompile(`^mapping key "(.*)" already defined at line (\d+)$`)
	reCannotUse = regexp.MustCompile("^cannot unmarshal (!!\\w+)(?: `(.*)`)? into (.+)$")
)

// abort records an error that stopped the YAML parser: bad syntax, an
// unknown anchor, a second document that does not parse.
func (c *checker) abort(err error) {
	line, msg := yamlErrorLine(err)
	c.add(line, "syntax error", msg)
}

// yamlErrorLine splits a yaml.v3 error into its line (1 when it has none)
// and its message.
func yamlErrorLine(err error) (int, string) {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	m := reLine.FindStringSubmatch(msg)
	if m == nil {
		return 1, msg
	}
	line, _ := strconv.Atoi(m[1])
	msg = m[3]
	if zeroBasedLine[msg] {
		line++
	}
	return line, msg
}

// zeroBasedLine holds the messages of yaml.v3's parser (as opposed to its
// scanner), which it reports with a 0-based line: the line where the
// mapping, list or document being parsed starts. (go.yaml.in/yaml/v3, the
// maintained fork of gopkg.in/yaml.v3, keeps them; the config tests would
// show a change.)
var zeroBasedLine = map[string]bool{
	"did not find expected <stream-start>":   true,
	"did not find expected <document start>": true,
	"did not find expected node content":     true,
	"did not find expected '-' indicator":    true,
	"did not find expected key":              true,
	"did not find expected ',' or ']'":       true,
	"did not find expected ',' or '}'":       true,
	"found undefined tag handle":             true,
	"found duplicate %YAML directive":        true,
	"found duplicate %TAG directive":         true,
	"found incompatible YAML document":       true,
}

// decodeError turns one message of a *yaml.TypeError into a problem: finds
// the field it concerns in doc, rewrites the message in the config's terms
// and marks the field as failed, so that checks do not report it again.
func (c *checker) decodeError(doc *document, msg string) {
	m := reLine.FindStringSubmatch(msg)
	if m == nil {
		c.add(1, topLevel, msg)
		return
	}
	line, _ := strconv.Atoi(m[1])
	text := m[3]
	failed := true
	var match func(entry) bool

	switch {
	case m[2] != "": // from the unmarshalers in values.go: exact position
		col, _ := strconv.Atoi(m[2])
		match = func(e entry) bool { return e.val.Line == line && e.val.Column == col }

	case reUnknown.MatchString(text):
		u := reUnknown.FindStringSubmatch(text)
		name := u[1]
		match = keyNamed(line, name)
		text = "unknown field" + suggest(name, knownFields[u[2]])
		failed = false

	case reSetTwice.MatchString(text), reDupKey.MatchString(text):
		name := ""
		if s := reSetTwice.FindStringSubmatch(text); s != nil {
			name = s[1]
		} else {
			name = reDupKey.FindStringSubmatch(text)[1]
		}
		match = keyNamed(line, name)
		text = "is set twice"
		p := doc.pathAt(line, match)
		if first := doc.line(p); p != "" && first != line {
			text = fmt.Sprintf("is set twice (first on line %d)", first)
		}
		// The decoder skips the whole mapping that holds the key.
		c.markFailed(parentPath(p))
		failed = false

	case reCannotUse.MatchString(text):
		u := reCannotUse.FindStringSubmatch(text)
		tag, val := u[1], u[2]
		match = func(e entry) bool {
			v := e.val
			if v.Line != line {
				return false
			}
			switch tag {
			case "!!seq":
				return v.Kind == yaml.SequenceNode
			case "!!map":
				return v.Kind == yaml.MappingNode
			}
			if short, ok := strings.CutSuffix(val, "..."); ok {
				return v.Kind == yaml.ScalarNode && strings.HasPrefix(v.Value, short)
			}
			return v.Kind == yaml.ScalarNode && v.Value == val
		}
		got := fmt.Sprintf("%q", val)
		switch tag {
		case "!!seq":
			got = "a list"
		case "!!map":
			got = "a mapping"
		}
		text = fmt.Sprintf("expected %s, got %s", describeGoType(u[3]), got)
	}

	path := doc.pathAt(line, match)
	if failed {
		c.markFailed(path)
	}
	if path == "" {
		path = topLevel
	}
	c.add(line, path, text)
}

// markFailed records that the value at path did not decode. What an
// endpoint probe inherits from a failed instance probe field failed too.
func (c *checker) markFailed(path string) {
	c.decodeFailed = append(c.decodeFailed, path)
	if before, after, ok := strings.Cut(path, ".instance_probe"); ok {
		c.decodeFailed = append(c.decodeFailed, before+".endpoint_probe"+after)
	}
}

// keyNamed matches the mapping key written as name on line.
func keyNamed(line int, name string) func(entry) bool {
	return func(e entry) bool { return e.key != nil && e.key.Line == line && e.key.Value == name }
}

// describeGoType names, for a config's author, the kind of value a Go type
// (as the decoder prints it) expects.
func describeGoType(t string) string {
	switch {
	case strings.HasPrefix(t, "[]"):
		return "a list"
	case strings.HasPrefix(t, "map["), strings.Contains(t, "."):
		return "a mapping"
	case strings.HasPrefix(t, "int"), strings.HasPrefix(t, "uint"):
		return "a whole number"
	case strings.HasPrefix(t, "float"):
		return "a number"
	case t == "bool":
		return "true or false"
	case t == "string":
		return "a string"
	}
	return t
}

// knownFields maps each struct type reachable from Config, named as the
// decoder prints it ("config.Probe"), to its YAML field names.
var knownFields = func() map[string][]string {
	known := map[string][]string{}
	var visit func(t reflect.Type)
	visit = func(t reflect.Type) {
		for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice || t.Kind() == reflect.Map {
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct {
			return
		}
		if _, done := known[t.String()]; done {
			return
		}
		known[t.String()] = nil
		var names []string
		for i := range t.NumField() {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if !f.IsExported() || name == "-" || name == "" {
				continue
			}
			names = append(names, name)
			visit(f.Type)
		}
		known[t.String()] = names
	}
	visit(reflect.TypeFor[Config]())
	return known
}()

// suggest returns "; did you mean \"x\"?" for the known field closest to
// name, or the list of known fields when none is close.
func suggest(name string, known []string) string {
	if len(known) == 0 {
		return ""
	}
	best, bestDist := "", 3 // at most two edits away
	for _, k := range known {
		if d := editDistance(strings.ToLower(name), k); d < bestDist {
			best, bestDist = k, d
		}
	}
	if best != "" {
		return fmt.Sprintf("; did you mean %q?", best)
	}
	return " (known: " + strings.Join(slices.Sorted(slices.Values(known)), ", ") + ")"
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
