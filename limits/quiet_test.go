package limits

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/go-kit/log"
)

// lines is a logger that keeps each line as "level msg source".
type lines struct {
	mu sync.Mutex
	l  []string
}

func (x *lines) Log(kv ...interface{}) error {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[fmt.Sprint(kv[i])] = fmt.Sprint(kv[i+1])
	}
	x.mu.Lock()
	x.l = append(x.l, m["level"]+" "+m["source"]+" "+m["msg"])
	x.mu.Unlock()
	return nil
}

// TestSourceFailuresLoggedOnce: a source failing the same way is logged
// at warn once, then only at debug, again at warn when the failure
// changes, and at info once when it recovers.
func TestSourceFailuresLoggedOnce(t *testing.T) {
	rec := &lines{}
	w := New(Options{Logger: log.Logger(rec)})
	denied := SourceStatus{Name: "ec2_account_attributes", Sig: "ec2:DescribeAccountAttributes: UnauthorizedOperation", Err: "ec2:DescribeAccountAttributes: UnauthorizedOperation: no"}
	throttled := SourceStatus{Name: "ec2_account_attributes", Sig: "ec2:DescribeAccountAttributes: Throttling", Err: "ec2:DescribeAccountAttributes: Throttling: slow down"}
	ok := SourceStatus{Name: "ec2_account_attributes", OK: true}
	other := SourceStatus{Name: "vpc", OK: true}
	for _, step := range []struct {
		desc string
		src  []SourceStatus
		want string // the level logged for the source; "" for nothing
	}{
		{"first failure: warn", []SourceStatus{denied, other}, "warn"},
		{"the same failure again: debug", []SourceStatus{denied, other}, "debug"},
		{"and again: debug", []SourceStatus{denied, other}, "debug"},
		{"a different failure: warn", []SourceStatus{throttled, other}, "warn"},
		{"recovered: info", []SourceStatus{ok, other}, "info"},
		{"still fine: nothing", []SourceStatus{ok, other}, ""},
		{"failing again after recovery: warn", []SourceStatus{denied, other}, "warn"},
	} {
		rec.l = nil
		w.logSources(step.src)
		got := ""
		for _, l := range rec.l {
			if strings.Contains(l, "ec2_account_attributes") {
				got = strings.SplitN(l, " ", 2)[0]
			}
		}
		if got != step.want {
			t.Errorf("%s: logged %q (%v), want %q", step.desc, got, rec.l, step.want)
		}
	}
}

// TestSubnetAddressesAreAQuota: a group whose subnets have fewer free
// addresses than the instances it would launch cannot grow, whatever the
// vCPU quotas say; exactly enough fits.
func TestSubnetAddressesAreAQuota(t *testing.T) {
	vcpu := QuotaStatus{ServiceCode: "ec2", Code: "L-1216C47A", Name: "vCPUs", Limit: 1000, LimitKnown: true, UsageKnown: true}
	for _, tc := range []struct {
		desc       string
		free       map[string]float64
		known, fit bool
	}{
		{"two subnets with 3 free: 4 instances fit exactly", map[string]float64{"subnet-a": 1, "subnet-b": 3}, true, true},
		{"3 free for 4 instances: does not fit", map[string]float64{"subnet-a": 1, "subnet-b": 2}, true, false},
		{"one subnet not read: unknown", map[string]float64{"subnet-a": 10}, false, false},
	} {
		g := newGathered()
		g.groups["web"] = &groupInfo{spec: GroupSpec{Name: "web", Max: 4, OnDemandPercent: 100,
			Types: []TypeOption{{Type: "m5.large", Weight: 1}}, Subnets: []string{"subnet-a", "subnet-b"}}}
		g.subnetFree = tc.free
		gs := evaluateGroups([]string{"web"}, g, []QuotaStatus{vcpu}, map[string]int{"m5.large": 2})
		if gs[0].Known != tc.known || gs[0].Feasible != tc.fit {
			t.Errorf("%s: %+v", tc.desc, gs[0])
		}
	}
}
