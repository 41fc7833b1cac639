package deploy

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/prometheus/exporter-toolkit/web"
	"go.yaml.in/yaml/v3"
	"golang.org/x/crypto/bcrypt"

	"github.com/medic-sre/medic/internal/emulator"
)

const template = "cloudformation.yml"

// generic turns a YAML node into plain Go values (maps, slices, strings,
// numbers, bools) as encoding/json would give them; a CloudFormation short
// tag (!Ref x) becomes its long form ({"Ref": x}, {"Fn::Sub": x}).
func generic(n *yaml.Node) any {
	var v any
	switch n.Kind {
	case yaml.DocumentNode:
		return generic(n.Content[0])
	case yaml.AliasNode:
		return generic(n.Alias)
	case yaml.MappingNode:
		m := map[string]any{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			m[n.Content[i].Value] = generic(n.Content[i+1])
		}
		v = m
	case yaml.SequenceNode:
		s := []any{}
		for _, c := range n.Content {
			s = append(s, generic(c))
		}
		v = s
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!int", "!!float":
			f, _ := strconv.ParseFloat(n.Value, 64)
			v = f
		case "!!bool":
			v = n.Value == "true"
		case "!!null":
			v = nil
		default:
			v = n.Value
		}
	}
	if tag := n.Tag; strings.HasPrefix(tag, "!") && !strings.HasPrefix(tag, "!!") {
		name := strings.TrimPrefix(tag, "!")
		if name != "Ref" && name != "Condition" {
			name = "Fn::" + name
		}
		if name == "Fn::GetAtt" {
			if s, ok := v.(string); ok {
				a, b, _ := strings.Cut(s, ".")
				v = []any{a, b}
			}
		}
		return map[string]any{name: v}
	}
	return v
}

func readTemplate(t *testing.T) map[string]any {
	t.Helper()
	b, err := os.ReadFile(template)
	if err != nil {
		t.Fatal(err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatalf("%s: %v", template, err)
	}
	return generic(&doc).(map[string]any)
}

// dig follows keys (string for maps, int for lists) through plain values.
func dig(t *testing.T, v any, path ...any) any {
	t.Helper()
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				t.Fatalf("%v: not a map at %q", path, k)
			}
			v = m[k]
		case int:
			s, ok := v.([]any)
			if !ok || k >= len(s) {
				t.Fatalf("%v: no item %d", path, k)
			}
			v = s[k]
		}
	}
	return v
}

// inlinePolicy returns the role's inline policy document by name.
func inlinePolicy(t *testing.T, tmpl map[string]any, name string) any {
	t.Helper()
	for _, p := range dig(t, tmpl, "Resources", "Role", "Properties", "Policies").([]any) {
		if dig(t, p, "PolicyName") == name {
			return dig(t, p, "PolicyDocument")
		}
	}
	t.Fatalf("%s: Role has no inline policy %q", template, name)
	return nil
}

// TestCloudFormationLockedDown reads the template: the base inline policy
// is deploy/iam-policy.json exactly; S3 reads are the two artifact objects
// only; the web port admits Prometheus's security group and no CIDR; the
// unit runs medic with a web config holding basic auth; the binary is
// checked against its SHA-256 before it is installed.
func TestCloudFormationLockedDown(t *testing.T) {
	tmpl := readTemplate(t)

	if got, want := inlinePolicy(t, tmpl, "medic"), readJSON[any](t, "iam-policy.json"); !reflect.DeepEqual(got, want) {
		g, _ := json.MarshalIndent(got, "", "  ")
		t.Errorf("inline policy medic differs from iam-policy.json:\n%s", g)
	}
	art := inlinePolicy(t, tmpl, "medic-artifacts")
	for i, s := range dig(t, art, "Statement").([]any) {
		if a := dig(t, s, "Action"); !reflect.DeepEqual(a, []any{"s3:GetObject"}) {
			t.Errorf("medic-artifacts statement %d: Action %v, want [s3:GetObject]", i, a)
		}
		for _, r := range dig(t, s, "Resource").([]any) {
			sub, ok := dig(t, r, "Fn::Sub").(string)
			if !ok || !strings.HasPrefix(sub, "arn:${AWS::Partition}:s3:::${ArtifactBucket}/${") || strings.Contains(sub, "*") {
				t.Errorf("medic-artifacts statement %d: Resource %v is not one artifact object", i, r)
			}
		}
	}

	ingress := dig(t, tmpl, "Resources", "SecurityGroup", "Properties", "SecurityGroupIngress").([]any)
	if len(ingress) != 1 {
		t.Fatalf("SecurityGroupIngress has %d rules, want 1", len(ingress))
	}
	rule := ingress[0].(map[string]any)
	if !reflect.DeepEqual(rule["SourceSecurityGroupId"], map[string]any{"Ref": "PrometheusSecurityGroupId"}) {
		t.Errorf("ingress source %v, want the PrometheusSecurityGroupId parameter", rule["SourceSecurityGroupId"])
	}
	for _, k := range []string{"CidrIp", "CidrIpv6", "SourcePrefixListId"} {
		if _, ok := rule[k]; ok {
			t.Errorf("ingress rule has %s: the web port must be open to Prometheus's group only", k)
		}
	}

	ud := dig(t, tmpl, "Resources", "LaunchTemplate", "Properties", "LaunchTemplateData", "UserData", "Fn::Base64", "Fn::Sub").(string)
	checks := []struct{ desc, before, after string }{
		{"checksum checked before install", `sha256sum --check --strict`, `install -o root -g root -m 0755 "$tmp/medic" /usr/local/bin/medic`},
		{"web config written before the unit starts", "basic_auth_users:\n  ${WebUser}: '${WebPasswordBcrypt}'", "systemctl daemon-reload && systemctl enable --now medic"},
	}
	for _, c := range checks {
		i, j := strings.Index(ud, c.before), strings.Index(ud, c.after)
		if i < 0 || j < 0 || i > j {
			t.Errorf("UserData: %s: want %q before %q", c.desc, c.before, c.after)
		}
	}
	if !strings.Contains(ud, `echo "${BinarySha256}  $tmp/medic" | sha256sum`) {
		t.Errorf("UserData does not check the binary against the BinarySha256 parameter")
	}
	if !strings.Contains(ud, "--web.config.file=") {
		t.Errorf("UserData: the unit does not pass --web.config.file")
	}
}

// TestCloudFormationLint runs cfn-lint on the template when it is
// installed (pip install cfn-lint; .ci/deps installs it).
func TestCloudFormationLint(t *testing.T) {
	bin, err := exec.LookPath("cfn-lint")
	if err != nil {
		t.Skip("cfn-lint is not installed (pip install cfn-lint)")
	}
	out, err := exec.Command(bin, "--", template).CombinedOutput()
	if err != nil {
		t.Errorf("cfn-lint %s: %v\n%s", template, err, out)
	}
}

// cfnQuery calls a query-protocol AWS API (CloudFormation, IAM) on moto
// with form values: the SDK's CloudFormation and IAM clients are not
// dependencies of medic, and moto does not check signatures; the
// Authorization header only names the service.
func cfnQuery(t *testing.T, endpoint, service, version, action string, params url.Values, out any) {
	t.Helper()
	form := url.Values{"Action": {action}, "Version": {version}}
	for k, v := range params {
		form[k] = v
	}
	req, err := http.NewRequest(http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=test/20260101/"+emulator.Region+"/"+service+"/aws4_request, SignedHeaders=host, Signature=0")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", service, action, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s %s: HTTP %d: %s", service, action, resp.StatusCode, body)
	}
	if out != nil {
		if err := xml.Unmarshal(body, out); err != nil {
			t.Fatalf("%s %s: %v\n%s", service, action, err, body)
		}
	}
}

type describeStacks struct {
	Stacks []struct {
		StackStatus       string
		StackStatusReason string
		Outputs           []struct{ OutputKey, OutputValue string } `xml:"Outputs>member"`
	} `xml:"DescribeStacksResult>Stacks>member"`
}

type stackResources struct {
	Resources []struct{ LogicalResourceId, ResourceStatus, PhysicalResourceId string } `xml:"DescribeStackResourcesResult>StackResources>member"`
}

// TestCloudFormationStackOnMoto creates the stack on moto and reads back
// what it made: the role's inline policy is iam-policy.json, the web port
// admits Prometheus's group only, the launch template's user data checks
// the binary's checksum.
func TestCloudFormationStackOnMoto(t *testing.T) {
	m := emulator.StartMotoT(t)
	ctx := context.Background()
	ec := ec2.NewFromConfig(m.Config())
	vpc, err := ec.CreateVpc(ctx, &ec2.CreateVpcInput{CidrBlock: aws.String("10.0.0.0/16")})
	if err != nil {
		t.Fatal(err)
	}
	var subnets []string
	for i, az := range []string{"a", "b"} {
		sn, err := ec.CreateSubnet(ctx, &ec2.CreateSubnetInput{VpcId: vpc.Vpc.VpcId,
			CidrBlock: aws.String(fmt.Sprintf("10.0.%d.0/24", i)), AvailabilityZone: aws.String(emulator.Region + az)})
		if err != nil {
			t.Fatal(err)
		}
		subnets = append(subnets, *sn.Subnet.SubnetId)
	}
	prom, err := ec.CreateSecurityGroup(ctx, &ec2.CreateSecurityGroupInput{GroupName: aws.String("prometheus"),
		Description: aws.String("prometheus"), VpcId: vpc.Vpc.VpcId})
	if err != nil {
		t.Fatal(err)
	}
	body, err := os.ReadFile(template)
	if err != nil {
		t.Fatal(err)
	}
	sha := strings.Repeat("0123456789abcdef", 4)
	params := url.Values{"StackName": {"medic"}, "TemplateBody": {string(body)}, "Capabilities.member.1": {"CAPABILITY_IAM"}}
	for i, kv := range [][2]string{
		{"VpcId", *vpc.Vpc.VpcId}, {"SubnetIds", strings.Join(subnets, ",")},
		{"ArtifactBucket", "medic-artifacts"}, {"BinaryKey", "v1/medic"}, {"BinarySha256", sha}, {"ConfigKey", "v1/medic.yml"},
		{"PrometheusSecurityGroupId", *prom.GroupId}, {"WebPasswordBcrypt", "$2y$12$" + strings.Repeat("a", 53)},
	} {
		params.Set(fmt.Sprintf("Parameters.member.%d.ParameterKey", i+1), kv[0])
		params.Set(fmt.Sprintf("Parameters.member.%d.ParameterValue", i+1), kv[1])
	}
	const cfnVersion = "2010-05-15"
	cfnQuery(t, m.URL(), "cloudformation", cfnVersion, "CreateStack", params, nil)

	var ds describeStacks
	deadline := time.Now().Add(30 * time.Second)
	for {
		ds = describeStacks{}
		cfnQuery(t, m.URL(), "cloudformation", cfnVersion, "DescribeStacks", url.Values{"StackName": {"medic"}}, &ds)
		if len(ds.Stacks) == 1 && !strings.HasSuffix(ds.Stacks[0].StackStatus, "_IN_PROGRESS") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("stack still in progress after 30s: %+v", ds)
		}
		time.Sleep(100 * time.Millisecond)
	}
	var res stackResources
	cfnQuery(t, m.URL(), "cloudformation", cfnVersion, "DescribeStackResources", url.Values{"StackName": {"medic"}}, &res)
	phys := map[string]string{}
	for _, r := range res.Resources {
		phys[r.LogicalResourceId] = r.PhysicalResourceId
		if r.ResourceStatus != "CREATE_COMPLETE" {
			t.Errorf("resource %s: %s", r.LogicalResourceId, r.ResourceStatus)
		}
	}
	if st := ds.Stacks[0]; st.StackStatus != "CREATE_COMPLETE" {
		t.Fatalf("stack %s: %s (resources %+v)", st.StackStatus, st.StackStatusReason, res.Resources)
	}

	// The role's inline policy, as IAM holds it, is the policy file.
	var rp struct {
		Document string `xml:"GetRolePolicyResult>PolicyDocument"`
	}
	cfnQuery(t, m.URL(), "iam", "2010-05-08", "GetRolePolicy", url.Values{"RoleName": {phys["Role"]}, "PolicyName": {"medic"}}, &rp)
	doc, err := url.QueryUnescape(rp.Document)
	if err != nil {
		doc = rp.Document
	}
	var got any
	if err := json.Unmarshal([]byte(doc), &got); err != nil {
		// moto (5.2.1) keeps an inline policy made by CloudFormation as the
		// Python repr of the document; this one holds no quotes of its own.
		if err2 := json.Unmarshal([]byte(strings.ReplaceAll(doc, "'", `"`)), &got); err2 != nil {
			t.Fatalf("role policy %q: %v", doc, err)
		}
	}
	if want := readJSON[any](t, "iam-policy.json"); !reflect.DeepEqual(got, want) {
		t.Errorf("the stack's role policy differs from iam-policy.json:\n%s", doc)
	}

	// The web port admits Prometheus's group and nothing else.
	sgs, err := ec.DescribeSecurityGroups(ctx, &ec2.DescribeSecurityGroupsInput{GroupIds: []string{phys["SecurityGroup"]}})
	if err != nil || len(sgs.SecurityGroups) != 1 {
		t.Fatalf("security group %s: %v", phys["SecurityGroup"], err)
	}
	perms := sgs.SecurityGroups[0].IpPermissions
	if len(perms) != 1 || aws.ToInt32(perms[0].FromPort) != 9717 || len(perms[0].IpRanges) != 0 || len(perms[0].Ipv6Ranges) != 0 ||
		len(perms[0].UserIdGroupPairs) != 1 || aws.ToString(perms[0].UserIdGroupPairs[0].GroupId) != *prom.GroupId {
		t.Errorf("ingress %s, want tcp 9717 from %s only", describePerms(perms), *prom.GroupId)
	}

	// The instances start from user data that checks the binary.
	lt, err := ec.DescribeLaunchTemplateVersions(ctx, &ec2.DescribeLaunchTemplateVersionsInput{LaunchTemplateId: aws.String(phys["LaunchTemplate"])})
	if err != nil || len(lt.LaunchTemplateVersions) == 0 {
		t.Fatalf("launch template %s: %v", phys["LaunchTemplate"], err)
	}
	ud, err := base64.StdEncoding.DecodeString(aws.ToString(lt.LaunchTemplateVersions[0].LaunchTemplateData.UserData))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(ud), `echo "`+sha+`  $tmp/medic" | sha256sum --check --strict -`) {
		t.Errorf("user data does not check the binary's checksum:\n%s", ud)
	}
}

func describePerms(ps []ec2types.IpPermission) string {
	b, _ := json.Marshal(ps)
	return string(b)
}

// TestCloudFormationWebConfigAsksForAuth takes the web config the
// template's UserData writes, fills in a user and a real bcrypt hash, and
// serves with it the way medic does (exporter-toolkit): it validates, and
// a request without the password gets 401, with it 200.
func TestCloudFormationWebConfigAsksForAuth(t *testing.T) {
	ud := dig(t, readTemplate(t), "Resources", "LaunchTemplate", "Properties", "LaunchTemplateData", "UserData", "Fn::Base64", "Fn::Sub").(string)
	_, rest, ok := strings.Cut(ud, "<<'WEB'\n")
	block, _, ok2 := strings.Cut(rest, "\nWEB\n")
	if !ok || !ok2 {
		t.Fatalf("UserData has no <<'WEB' … WEB block:\n%s", ud)
	}
	hash, err := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	cfg := strings.NewReplacer("${WebUser}", "prometheus", "${WebPasswordBcrypt}", string(hash)).Replace(block)
	file := filepath.Join(t.TempDir(), "web.yml")
	if err := os.WriteFile(file, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := web.Validate(file); err != nil {
		t.Fatalf("web config %q: %v", cfg, err)
	}

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "metrics") }),
		ReadHeaderTimeout: 5 * time.Second}
	served := make(chan error, 1)
	go func() {
		served <- web.Serve(l, srv, &web.FlagConfig{WebConfigFile: &file}, slog.New(slog.DiscardHandler))
	}()
	t.Cleanup(func() { srv.Close(); <-served })

	get := func(user, pass string) int {
		req, _ := http.NewRequest(http.MethodGet, "http://"+l.Addr().String()+"/metrics", nil)
		if user != "" {
			req.SetBasicAuth(user, pass)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, c := range []struct {
		desc, user, pass string
		want             int
	}{
		{"no credentials", "", "", http.StatusUnauthorized},
		{"wrong password", "prometheus", "guess", http.StatusUnauthorized},
		{"right password", "prometheus", "s3cret", http.StatusOK},
	} {
		if got := get(c.user, c.pass); got != c.want {
			t.Errorf("%s: HTTP %d, want %d", c.desc, got, c.want)
		}
	}
}
