package rules_test

import (
	"bytes"
	"flag"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/medic-sre/medic/alerts/rules"
	"github.com/medic-sre/medic/internal/testkit"
)

var update = flag.Bool("update", false, "rewrite medic.rules.yml from rules.Default()")

const (
	ruleFile = "medic.rules.yml"
	testFile = "medic.rules.test.yml"
	runbook  = "../../docs/runbook.md"
)

// TestGolden keeps medic.rules.yml equal to what the generator gives for
// the default parameters. Refresh with: go test ./alerts/rules -update
func TestGolden(t *testing.T) {
	got, err := rules.Marshal(rules.Default())
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := os.WriteFile(ruleFile, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(ruleFile)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s is out of date: run go test ./alerts/rules -update", ruleFile)
	}
}

func promtool(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not installed (Debian package prometheus); CI installs it")
	}
	return path
}

func runPromtool(t *testing.T, args ...string) {
	t.Helper()
	cmd := exec.Command(promtool(t), args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	t.Logf("promtool %s:\n%s", strings.Join(args, " "), out)
}

func TestPromtoolCheckRules(t *testing.T) {
	runPromtool(t, "check", "rules", ruleFile)
}

func TestPromtoolTestRules(t *testing.T) {
	runPromtool(t, "test", "rules", testFile)
}

// TestPromtoolCheckOtherParams renders rules for non-default parameters
// (what cmd/medic-rules does) and checks them too.
func TestPromtoolCheckOtherParams(t *testing.T) {
	p := rules.Default()
	p.SLO = 0.995
	p.Selector = `job=~"medic|medic-canary",env="prod"`
	p.DiscoveryStale = 45 * time.Second
	b, err := rules.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"ratio_rate1h > 0.072\n", // 14.4 × 0.5%
		"ratio_rate6h > 0.03\n",  // 6 × 0.5%
		`medic_discovery_age_seconds{job=~"medic|medic-canary",env="prod"} > 45`,
	} {
		if !bytes.Contains(b, []byte(want)) {
			t.Errorf("rules for %+v lack %q", p, want)
		}
	}
	f := t.TempDir() + "/other.rules.yml"
	if err := os.WriteFile(f, b, 0o644); err != nil {
		t.Fatal(err)
	}
	runPromtool(t, "check", "rules", f)
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		desc    string
		mod     func(*rules.Params)
		wantErr string
	}{
		{desc: "defaults", mod: func(*rules.Params) {}},
		{desc: "slo 1", mod: func(p *rules.Params) { p.SLO = 1 }, wantErr: "want 0 < slo < 1"},
		{desc: "slo 0", mod: func(p *rules.Params) { p.SLO = 0 }, wantErr: "want 0 < slo < 1"},
		{desc: "slo so low the fast burn threshold reaches 100%", mod: func(p *rules.Params) { p.SLO = 0.93 }, wantErr: "fast burn threshold"},
		{desc: "slo just high enough", mod: func(p *rules.Params) { p.SLO = 0.931 }},
		{desc: "selector with braces", mod: func(p *rules.Params) { p.Selector = `{job="medic"}` }, wantErr: "without braces"},
		{desc: "empty selector is allowed", mod: func(p *rules.Params) { p.Selector = "" }},
		{desc: "every error at once", mod: func(p *rules.Params) { p.SLO = 2; p.RunbookURL = ""; p.HealRateHighPerHour = 0 }, wantErr: "slo 2: want 0 < slo < 1; runbook url: empty; heal rate high per hour 0"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			p := rules.Default()
			tc.mod(&p)
			err := p.Validate()
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

// TestEveryAlertIsDocumentedAndTested: each alert has a runbook section
// whose anchor its runbook_url names, and promtool test cases.
func TestEveryAlertIsDocumentedAndTested(t *testing.T) {
	md, err := os.ReadFile(runbook)
	if err != nil {
		t.Fatal(err)
	}
	headings := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^## (\S+)\s*$`).FindAllStringSubmatch(string(md), -1) {
		headings[m[1]] = true
	}
	tests, err := os.ReadFile(testFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range rules.Default().Alerts() {
		if !headings[a] {
			t.Errorf("docs/runbook.md has no section \"## %s\"", a)
		}
		if !bytes.Contains(tests, []byte("alertname: "+a+"\n")) {
			t.Errorf("%s has no alert_rule_test for %s", testFile, a)
		}
	}
	anchors := testkit.MarkdownAnchors(t, runbook)
	for _, g := range rules.Generate(rules.Default()).Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			if _, anchor, _ := strings.Cut(r.Annotations["runbook_url"], "#"); !anchors[anchor] {
				t.Errorf("%s: runbook_url %q: docs/runbook.md has no heading with anchor %q", r.Alert, r.Annotations["runbook_url"], anchor)
			}
			switch r.Labels["severity"] {
			case rules.Info, rules.Warning, rules.Critical:
			default:
				t.Errorf("%s: severity %q", r.Alert, r.Labels["severity"])
			}
			for _, k := range []string{"summary", "description"} {
				if r.Annotations[k] == "" {
					t.Errorf("%s: no %s", r.Alert, k)
				}
			}
		}
	}
}
