package config

import (
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// document is the YAML tree of a config file indexed by field path
// ("services[1].policy.max_unhealthy"). It answers the two questions the
// decoded structs cannot: on which line a field was written, and whether it
// was written at all (so that an explicit 0 is not mistaken for unset).
type document struct {
	byPath map[string]entry
	byLine map[int][]entry // entries whose key or value starts on the line, in document order
}

// entry is one field of the file: a mapping key and its value, or a list
// item (key nil).
type entry struct {
	path string
	key  *yaml.Node
	val  *yaml.Node
}

// line is where the entry was written: its key, or the item itself.
func (e entry) line() int {
	if e.key != nil {
		return e.key.Line
	}
	return e.val.Line
}

// maxDepth bounds the walk, against alias bombs; real configs are shallow.
const maxDepth = 32

// newDocument indexes the tree under root, a DocumentNode (or a zero Node
// for an empty file).
func newDocument(root *yaml.Node) *document {
	d := &document{byPath: map[string]entry{}, byLine: map[int][]entry{}}
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		d.walk("", nil, root.Content[0], false, 0)
	}
	return d
}

// walk records the entry at path and everything below it. Content reached
// through an alias or a merge key ("<<") is recorded under the path where it
// is used, but its lines stay with the path where it was written.
func (d *document) walk(path string, key, val *yaml.Node, viaAlias bool, depth int) {
	if depth > maxDepth {
		return
	}
	e := entry{path: path, key: key, val: val}
	if _, seen := d.byPath[path]; !seen {
		d.byPath[path] = e
	}
	if !viaAlias {
		if key != nil {
			d.byLine[key.Line] = append(d.byLine[key.Line], e)
		}
		if key == nil || val.Line != key.Line {
			d.byLine[val.Line] = append(d.byLine[val.Line], e)
		}
	}
	if val.Kind == yaml.AliasNode && val.Alias != nil {
		val, viaAlias = val.Alias, true
	}
	switch val.Kind {
	case yaml.SequenceNode:
		for i, item := range val.Content {
			d.walk(itemPath(path, i), nil, item, viaAlias, depth+1)
		}
	case yaml.MappingNode:
		var merges []*yaml.Node
		for i := 0; i+1 < len(val.Content); i += 2 {
			k, v := val.Content[i], val.Content[i+1]
			if k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge" {
				merges = append(merges, v)
				continue
			}
			d.walk(fieldPath(path, k.Value), k, v, viaAlias, depth+1)
		}
		// Keys written in the mapping win over merged ones: walk merges last.
		for _, m := range merges {
			if m.Kind == yaml.SequenceNode {
				for _, item := range m.Content {
					d.merge(path, item, depth)
				}
			} else {
				d.merge(path, m, depth)
			}
		}
	}
}

// merge records the keys of the mapping m (usually an alias) as fields of path.
func (d *document) merge(path string, m *yaml.Node, depth int) {
	if m.Kind == yaml.AliasNode && m.Alias != nil {
		m = m.Alias
	}
	if m.Kind != yaml.MappingNode {
		return
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		d.walk(fieldPath(path, m.Content[i].Value), m.Content[i], m.Content[i+1], true, depth+1)
	}
}

// fieldPath is the path of field name under path.
func fieldPath(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

// itemPath is the path of item i of the list at path.
func itemPath(path string, i int) string {
	return path + "[" + strconv.Itoa(i) + "]"
}

// parentPath strips the last field or index: "a.b[2]" → "a.b" → "a" → "".
func parentPath(path string) string {
	i := strings.LastIndexAny(path, ".[")
	if i < 0 {
		return ""
	}
	return path[:i]
}

// line returns the line of the field at path or, when it was not written,
// of its nearest written ancestor; 1 for an empty file.
func (d *document) line(path string) int {
	for p := path; ; p = parentPath(p) {
		if e, ok := d.byPath[p]; ok {
			return e.line()
		}
		if p == "" {
			return 1
		}
	}
}

// isSet reports whether the field at path was written with a non-null value.
func (d *document) isSet(path string) bool {
	e, ok := d.byPath[path]
	if !ok {
		return false
	}
	v := e.val
	if v.Kind == yaml.AliasNode && v.Alias != nil {
		v = v.Alias
	}
	return v.ShortTag() != "!!null"
}

// nullItems returns the paths of list items written empty ("- " or "~"),
// sorted. The decoder drops them silently, shifting the items after them.
func (d *document) nullItems() []string {
	var paths []string
	for p, e := range d.byPath {
		if e.key == nil && e.val.Kind == yaml.ScalarNode && e.val.ShortTag() == "!!null" {
			paths = append(paths, p)
		}
	}
	slices.Sort(paths)
	return paths
}

// fieldSet reports whether a field, named relative to some section, was
// written in the file. Sections use it to tell "unset" from an explicit zero.
type fieldSet func(field string) bool

// under returns the fieldSet of a sub-section ("policy", "services[0]").
func (f fieldSet) under(section string) fieldSet {
	return func(field string) bool { return f(fieldPath(section, field)) }
}

// pathAt finds the path of the node a decoding message points at, on line:
// the last entry accepted by match (the deepest: a list and its first item
// can start on the same line), else the last mapping key on the line, else
// the last entry on it; "" when the line holds nothing.
func (d *document) pathAt(line int, match func(entry) bool) string {
	es := d.byLine[line]
	if match != nil {
		for i := len(es) - 1; i >= 0; i-- {
			if match(es[i]) {
				return es[i].path
			}
		}
	}
	for i := len(es) - 1; i >= 0; i-- {
		if es[i].key != nil && es[i].key.Line == line {
			return es[i].path
		}
	}
	if len(es) > 0 {
		return es[len(es)-1].path
	}
	return ""
}
