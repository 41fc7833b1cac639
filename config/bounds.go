package config

import (
	"fmt"

	"go.yaml.in/yaml/v3"
)

// Bounds on what a config file may cost to read. Real configs are a few
// kilobytes and a few thousand nodes; these are far above that and far
// below what would hurt: the tree is checked against them before anything
// walks or decodes it, so a small file of nested aliases (a "billion
// laughs") is refused in microseconds instead of expanding in memory.
const (
	// MaxFileBytes bounds the size of a config file.
	MaxFileBytes = 4 << 20
	// MaxNodes bounds the YAML nodes of a file with every alias expanded
	// where it is used: what the line-number walk and the decoder visit.
	MaxNodes = 200_000
)

// expandedNodes counts the nodes under n as the decoder sees them, each
// alias standing for a copy of its anchor's tree. It stops counting past
// limit and returns limit+1; a node's count is computed once (memo), so
// the cost is linear in the tree as written, whatever the aliases multiply.
func expandedNodes(n *yaml.Node, limit int, memo map[*yaml.Node]int) int {
	if n == nil {
		return 0
	}
	if c, ok := memo[n]; ok {
		if c < 0 { // an alias inside its own anchor
			return limit + 1
		}
		return c
	}
	memo[n] = -1
	total := 1
	if n.Kind == yaml.AliasNode {
		total += expandedNodes(n.Alias, limit, memo)
	}
	for _, c := range n.Content {
		if total > limit {
			break
		}
		total += expandedNodes(c, limit, memo)
	}
	total = min(total, limit+1)
	memo[n] = total
	return total
}

// checkBounds reports, as a problem on c, a file over MaxFileBytes or a
// tree (root, aliases expanded) over MaxNodes. It reports whether the file
// is within both.
func (c *checker) checkBounds(size int, root *yaml.Node) bool {
	if size > MaxFileBytes {
		c.add(1, topLevel, fmt.Sprintf("the file is %d bytes, over the limit of %d; is this the config file?", size, MaxFileBytes))
		return false
	}
	if root == nil {
		return true
	}
	if n := expandedNodes(root, MaxNodes, map[*yaml.Node]int{}); n > MaxNodes {
		c.add(1, topLevel, fmt.Sprintf("with its aliases expanded the document has over %d nodes (nested aliases?); refused before decoding", MaxNodes))
		return false
	}
	return true
}
