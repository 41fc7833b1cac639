package alerts

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/medic-sre/medic/internal/testkit"
)

const runbookDoc = "../docs/runbook.md"

// TestRunbookLinksLandOnAHeading: the runbook link every sink puts in a
// message of each kind names a heading of docs/runbook.md (by GitHub's
// anchor rules), so it never lands at the top of the page; and every
// in-page link of the runbook lands too.
func TestRunbookLinksLandOnAHeading(t *testing.T) {
	anchors := testkit.MarkdownAnchors(t, runbookDoc)
	const base = "https://github.com/medic-sre/medic/blob/main/docs/runbook.md"
	for _, k := range allKinds {
		link := runbookLink(base, k)
		_, anchor, ok := strings.Cut(link, "#")
		if !ok || !anchors[anchor] {
			t.Errorf("%s: runbook link %q: docs/runbook.md has no heading with anchor %q", k, link, anchor)
		}
	}
	md, err := os.ReadFile(runbookDoc)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range regexp.MustCompile(`\]\(#([^)\s]+)\)`).FindAllStringSubmatch(string(md), -1) {
		if !anchors[m[1]] {
			t.Errorf("docs/runbook.md links to #%s, which is no heading of it", m[1])
		}
	}
}
