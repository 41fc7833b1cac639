// Package deploy holds no code: its tests check the deployment files
// (IAM policies, CloudFormation) against the code they deploy.
package deploy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/medic-sre/medic/limits"
)

// Features are the parts of medic that need AWS permissions, each with the
// policy file that grants them. The base policy covers what runs in every
// deployment: core (discovery, healing) and the limits watcher, which runs
// by default (docs/limits.md); the others are opt-in.
var features = []struct {
	name, policy string
}{
	{"core", "iam-policy.json"},
	{"limits", "iam-policy.json"},
	{"quota requests", "iam-policy-quota-requests.json"},
	{"pre-warm apply", "iam-policy-prewarm-apply.json"},
	{"lease", "iam-policy-lease.json"},
	{"sns", "iam-policy-sns.json"},
}

// featureOf names the feature a call belongs to by where it is made: the
// file (slash path from the module root) and the enclosing function. The
// first matching row wins.
func featureOf(file, fn string) string {
	rules := []struct{ prefix, fn, feature string }{
		{"lease/", "", "lease"},
		{"alerts/", "", "sns"},
		{"limits/increase.go", "", "quota requests"},
		{"limits/prewarm.go", "reserve", "pre-warm apply"},
		{"limits/", "", "limits"},
	}
	for _, r := range rules {
		if strings.HasPrefix(file, r.prefix) && (r.fn == "" || r.fn == fn) {
			return r.feature
		}
	}
	return "core"
}

// iamPrefix maps an SDK v2 service package to its IAM action prefix.
var iamPrefix = map[string]string{
	"autoscaling":            "autoscaling",
	"cloudwatch":             "cloudwatch",
	"dynamodb":               "dynamodb",
	"ec2":                    "ec2",
	"elasticloadbalancing":   "elasticloadbalancing",
	"elasticloadbalancingv2": "elasticloadbalancing",
	"servicequotas":          "servicequotas",
	"sns":                    "sns",
	"sqs":                    "sqs",
}

// notDeployed are the directories whose code never runs in a deployment:
// the test emulator and helpers, and the demo.
var notDeployed = []string{"internal/emulator/", "internal/testkit/", "cmd/medic-demo/"}

const sdkService = "github.com/aws/aws-sdk-go-v2/service/"

// awsCalls extracts every AWS operation the module's deployed code calls,
// by feature, as IAM actions ("ec2:DescribeInstances"), with one place each
// is seen. It reads the syntax of every non-test file: an operation is
// called where its input is built (a composite literal of
// <service>.<Op>Input) or its paginator made (<service>.New<Op>Paginator);
// an operation a consumer interface declares (a method taking
// *<service>.<Op>Input) counts too, so a call with a nil input is not missed.
func awsCalls(t *testing.T, root string) map[string]map[string]string {
	t.Helper()
	byFeature := map[string]map[string]string{}
	declared := map[string]string{} // action -> feature, from interfaces
	add := func(m map[string]map[string]string, feature, action, where string) {
		if m[feature] == nil {
			m[feature] = map[string]string{}
		}
		if _, ok := m[feature][action]; !ok {
			m[feature][action] = where
		}
	}
	fset := token.NewFileSet()
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			if path != root && strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata" {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		for _, nd := range notDeployed {
			if strings.HasPrefix(rel, nd) {
				return nil
			}
		}
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		services := map[string]string{} // import name -> IAM prefix
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			svc, ok := strings.CutPrefix(p, sdkService)
			if !ok || strings.Contains(svc, "/") {
				continue
			}
			prefix, known := iamPrefix[svc]
			if !known {
				t.Errorf("%s imports %s: add its IAM prefix to iamPrefix", rel, p)
				continue
			}
			name := svc
			if imp.Name != nil {
				name = imp.Name.Name
			}
			services[name] = prefix
		}
		if len(services) == 0 {
			return nil
		}
		// op returns the IAM action of svc.<Op><suffix>, or "".
		op := func(e ast.Expr, prefix, suffix string) string {
			sel, ok := e.(*ast.SelectorExpr)
			if !ok {
				return ""
			}
			id, ok := sel.X.(*ast.Ident)
			if !ok || services[id.Name] == "" {
				return ""
			}
			name, ok := strings.CutSuffix(sel.Sel.Name, suffix)
			if !ok || !strings.HasPrefix(name, prefix) {
				return ""
			}
			return services[id.Name] + ":" + strings.TrimPrefix(name, prefix)
		}
		for _, decl := range f.Decls {
			fn := ""
			if fd, ok := decl.(*ast.FuncDecl); ok {
				fn = fd.Name.Name
			}
			ast.Inspect(decl, func(n ast.Node) bool {
				where := func() string { return fset.Position(n.Pos()).String() }
				switch n := n.(type) {
				case *ast.CompositeLit:
					if a := op(n.Type, "", "Input"); a != "" {
						add(byFeature, featureOf(rel, fn), a, where())
					}
				case *ast.CallExpr:
					if a := op(n.Fun, "New", "Paginator"); a != "" {
						add(byFeature, featureOf(rel, fn), a, where())
					}
				case *ast.InterfaceType:
					for _, m := range n.Methods.List {
						ft, ok := m.Type.(*ast.FuncType)
						if !ok || len(m.Names) == 0 {
							continue
						}
						for _, p := range ft.Params.List {
							star, ok := p.Type.(*ast.StarExpr)
							if !ok {
								continue
							}
							if a := op(star.X, "", "Input"); a != "" && strings.HasSuffix(a, ":"+m.Names[0].Name) {
								declared[a] = featureOf(rel, fn)
							}
						}
					}
				}
				return true
			})
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for a, feature := range declared {
		seen := false
		for _, m := range byFeature {
			if _, ok := m[a]; ok {
				seen = true
			}
		}
		if !seen {
			add(byFeature, feature, a, "an interface declaration")
		}
	}
	return byFeature
}

// policy is the part of an IAM policy document the test reads.
type policy struct {
	Version   string
	Statement []statement
}

type statement struct {
	Sid       string
	Effect    string
	Action    stringList
	Resource  stringList
	Condition map[string]map[string]stringList `json:",omitempty"`
}

// stringList is a JSON string or list of strings.
type stringList []string

func (s *stringList) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*s = stringList{one}
		return nil
	}
	var many []string
	err := json.Unmarshal(b, &many)
	*s = many
	return err
}

// readJSON decodes a JSON file into a T, refusing fields T does not have.
func readJSON[T any](t *testing.T, file string) T {
	t.Helper()
	var v T
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return v
}

// actions is every action the policy allows.
func (p policy) actions() map[string]bool {
	out := map[string]bool{}
	for _, s := range p.Statement {
		if s.Effect == "Allow" {
			for _, a := range s.Action {
				out[a] = true
			}
		}
	}
	return out
}

// readOnly reports whether an action only reads, by AWS's naming.
func readOnly(action string) bool {
	_, name, _ := strings.Cut(action, ":")
	for _, p := range []string{"Describe", "List", "Get"} {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// TestIAMPolicyIsExactlyTheCalls compares the operations the code calls,
// per feature, with the policy files: no call without its action, no action
// without a call, every mutating action resource-scoped.
func TestIAMPolicyIsExactlyTheCalls(t *testing.T) {
	calls := awsCalls(t, "..")
	for f := range calls {
		if !slices.ContainsFunc(features, func(x struct{ name, policy string }) bool { return x.name == f }) {
			t.Errorf("feature %q has no policy file", f)
		}
	}
	want := map[string]map[string]string{} // policy file -> action -> where called
	for _, f := range features {
		if len(calls[f.name]) == 0 {
			t.Errorf("no AWS call found for feature %q: has the code moved? (see featureOf)", f.name)
		}
		if want[f.policy] == nil {
			want[f.policy] = map[string]string{}
		}
		maps.Copy(want[f.policy], calls[f.name])
		t.Logf("%s (%s): %s", f.name, f.policy, strings.Join(slices.Sorted(maps.Keys(calls[f.name])), " "))
	}
	files, _ := filepath.Glob("iam-policy*.json")
	for _, file := range files {
		if want[file] == nil {
			t.Errorf("%s belongs to no feature", file)
		}
	}
	for _, file := range slices.Sorted(maps.Keys(want)) {
		p := readJSON[policy](t, file)
		if p.Version != "2012-10-17" {
			t.Errorf("%s: Version %q, want 2012-10-17", file, p.Version)
		}
		got := p.actions()
		for _, a := range slices.Sorted(maps.Keys(want[file])) {
			if !got[a] {
				t.Errorf("%s: missing %s, called at %s", file, a, want[file][a])
			}
		}
		for _, a := range slices.Sorted(maps.Keys(got)) {
			if _, called := want[file][a]; !called {
				t.Errorf("%s: allows %s, which the code never calls", file, a)
			}
		}
		for _, s := range p.Statement {
			if s.Effect != "Allow" {
				t.Errorf("%s: statement %s: Effect %q, want Allow", file, s.Sid, s.Effect)
			}
			for _, a := range s.Action {
				if strings.Contains(a, "*") {
					t.Errorf("%s: statement %s: wildcard action %s", file, s.Sid, a)
				}
				if !readOnly(a) && slices.Contains(s.Resource, "*") {
					t.Errorf("%s: statement %s: %s changes state on Resource \"*\"; scope it", file, s.Sid, a)
				}
			}
		}
	}
}

// TestQuotaRequestScopeCoversCatalogue: the quota-request policy names
// every service of the built-in catalogue (a quota added in config for
// another service needs its ARN added).
func TestQuotaRequestScopeCoversCatalogue(t *testing.T) {
	p := readJSON[policy](t, "iam-policy-quota-requests.json")
	var res []string
	for _, s := range p.Statement {
		res = append(res, s.Resource...)
	}
	for _, q := range limits.Catalogue {
		arn := fmt.Sprintf("arn:aws:servicequotas:*:*:%s/*", q.ServiceCode)
		if !slices.Contains(res, arn) {
			t.Errorf("iam-policy-quota-requests.json: no %s for catalogue quota %s", arn, q.Key())
		}
	}
}

// TestExtractionFindsTheIssueActions pins the extraction itself: the calls
// issue 12 found missing from the old policy are seen, and one it listed
// but nothing calls is not.
func TestExtractionFindsTheIssueActions(t *testing.T) {
	calls := awsCalls(t, "..")
	all := map[string]bool{}
	for _, m := range calls {
		for a := range m {
			all[a] = true
		}
	}
	for _, a := range []string{"ec2:DescribeLaunchTemplateVersions", "ec2:DescribeSubnets", "ec2:DescribeNetworkInterfaces",
		"ec2:DescribeInternetGateways", "elasticloadbalancing:DescribeListeners", "autoscaling:SetInstanceHealth"} {
		if !all[a] {
			t.Errorf("extraction missed %s", a)
		}
	}
	if all["servicequotas:GetServiceQuota"] {
		t.Errorf("extraction found servicequotas:GetServiceQuota, which nothing calls")
	}
}
