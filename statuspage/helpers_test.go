package statuspage

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/medic-sre/medic/alerts"
	"github.com/medic-sre/medic/config"
	"github.com/medic-sre/medic/controller"
	"github.com/medic-sre/medic/discovery"
	"github.com/medic-sre/medic/healer"
	"github.com/medic-sre/medic/limits"
	"github.com/medic-sre/medic/probes"
)

// testNow is the fake clock of every test.
var testNow = time.Date(2026, 5, 1, 12, 0, 30, 0, time.UTC)

// Names and reasons with markup: the page must show them as text.
const (
	evilService = `<script>alert(1)</script>`
	evilReason  = `2 consecutive failed probes (body did not match <img src=x onerror="document.body.dataset.pwned=1">)`
	evilDetail  = `all 2 probed instances are bad <b>and</b> the endpoint fails`
	// evilLBReason would close the tooltip's attribute if not escaped.
	evilLBReason = `Target."><img src=x onerror="document.body.dataset.pwned=2">`
	badReason    = "3 consecutive failed probes (status 500, status 500, status 500) since 12:00:25Z"
)

// fakeSource is a Source with fixed statuses.
type fakeSource struct{ sts []controller.Status }

func (f *fakeSource) Statuses() []controller.Status { return f.sts }

// notReadySource is a Source that says it is not ready.
type notReadySource struct{ fakeSource }

func (notReadySource) Ready() (bool, string) {
	return false, "last good discovery 2m0s ago: describe groups: <throttled>"
}

// fakeLimits is a Limits with a fixed snapshot.
type fakeLimits struct{ snap limits.Snapshot }

func (f fakeLimits) Snapshot() limits.Snapshot { return f.snap }

func testPolicy(maxActions int) config.Policy {
	return config.Policy{
		UnhealthyAfter: 3, HealthyAfter: 2,
		MaxUnhealthy:      config.IntOrPercent{Value: 34, IsPercent: true},
		GracePeriod:       config.GracePeriod{FromASG: true},
		MaxActionsPerHour: maxActions,
	}
}

func testProbe() config.Probe {
	return config.Probe{Type: "http", Port: 8080, Scheme: "http", Path: "/healthz", Method: "GET",
		Interval: config.Duration(2 * time.Second), Timeout: config.Duration(time.Second),
		Headers: map[string]string{"X-Probe": "medic"}}
}

// history returns n results two seconds apart ending at end; the last
// fails of them fail with status 500.
func history(end time.Time, n, fails int) []probes.Result {
	out := make([]probes.Result, n)
	for i := range out {
		r := probes.Result{
			Start:    end.Add(-time.Duration(n-1-i) * 2 * time.Second),
			Duration: time.Duration(3+i%4) * time.Millisecond, Success: true, StatusCode: 200,
			Lateness: time.Duration(i%3) * time.Millisecond,
		}
		if i >= n-fails {
			r.Success, r.StatusCode, r.Reason = false, 500, "status 500"
			r.Duration = 41 * time.Millisecond
		}
		out[i] = r
	}
	return out
}

// demoStatuses is a realistic picture: "web" with six instances in two
// AZs, one bad and marked, one suspect; and a service named with markup,
// frozen, whose guard refuses a service-wide failure.
func demoStatuses() []controller.Status {
	end := testNow.Add(-time.Second)
	web := config.Service{Name: "web", Endpoint: "http://127.0.0.1:18080/healthz", AutoScalingGroups: []string{"web-asg"},
		InstanceProbe: testProbe(), EndpointProbe: testProbe(), Policy: testPolicy(10)}
	st := controller.Status{
		Service: web,
		Snapshot: discovery.Snapshot{Service: "web", At: testNow.Add(-4 * time.Second),
			Groups: []discovery.Group{{Name: "web-asg", GracePeriod: 60 * time.Second, Min: 3, Max: 9, Desired: 6}}},
		Probes: map[string][]probes.Result{},
		Report: healer.Report{RequestID: "5f2c9a1e0b7d4c33", ActionsLastHour: 1,
			Outcomes: map[string]healer.Outcome{"i-0bad": {Result: healer.ResultMarked, Attempts: 1}}},
		// Newest first, as the reporter hands them over.
		Events: []alerts.Event{
			{Kind: alerts.ReplacementNotRecovered, Severity: alerts.Critical, Time: testNow.Add(-2 * time.Second), Service: "web",
				Subject: "i-0old", AZ: "us-east-1b", NeedsAction: true, RequestID: "0c1d2e3f4a5b6c7d",
				Summary: "i-0old was marked Unhealthy 6m0s ago, but no healthy replacement has joined web-asg (endpoint passing: true).",
				Action:  "marked i-0old Unhealthy; a person should check why the group has not recovered"},
			{Kind: alerts.InstanceMarked, Severity: alerts.Info, Time: testNow.Add(-3 * time.Second), Service: "web",
				Subject: "i-0bad", AZ: "us-east-1a", RequestID: "5f2c9a1e0b7d4c33",
				Labels:  map[string]string{"asg": "web-asg", "result": string(healer.ResultMarked)},
				Summary: "i-0bad in web (us-east-1a) was bad: " + badReason + ".",
				Action:  "marked Unhealthy in web-asg; the group replaces it"},
			{Kind: alerts.MarkRefused, Severity: alerts.Info, Time: testNow.Add(-time.Minute), Service: "web",
				Subject: string(healer.RateLimit), Resolved: true, Summary: "the guard no longer refuses (rate_limit) in web", Action: "nothing"},
		},
	}
	epKey := "web/endpoint"
	st.Targets = append(st.Targets, probes.Target{Key: epKey, Service: "web", Address: web.Endpoint, Settings: &web.EndpointProbe})
	st.Probes[epKey] = history(end, 16, 0)
	ids := []string{"i-0a11", "i-0a12", "i-0bad", "i-0b21", "i-0b22", "i-0b23"}
	for n, id := range ids {
		az, subnet := "us-east-1a", 1
		if n >= 3 {
			az, subnet = "us-east-1b", 2
		}
		in := discovery.Instance{ID: id, Group: "web-asg", AZ: az, PrivateIP: netip.AddrFrom4([4]byte{127, 0, byte(subnet), byte(10 + n)}),
			LaunchTime: testNow.Add(-3 * time.Hour), LifecycleState: "InService", HealthStatus: "Healthy",
			LBHealth: []discovery.TargetHealth{{TargetGroup: "web-tg", State: "healthy"}}}
		if id == "i-0bad" {
			in.LBHealth = []discovery.TargetHealth{
				{TargetGroup: "web-tg", State: "unhealthy", Reason: "Target.ResponseCodeMismatch"},
				{TargetGroup: "admin-tg", State: "draining", Reason: "Target.DeregistrationInProgress"},
			}
		}
		vd := healer.Verdict{Instance: in, State: healer.Healthy, Since: testNow.Add(-2 * time.Hour),
			Reason: "16 passing probes since 11:59:59Z"}
		h := history(end, 16, 0)
		switch id {
		case "i-0bad":
			in.HealthStatus = "Unhealthy"
			vd.Instance.HealthStatus = "Unhealthy"
			vd.State, vd.Reason, vd.Since = healer.Bad, badReason, end.Add(-4*time.Second)
			h = history(end, 16, 3)
			st.Report.Decision.Mark = append(st.Report.Decision.Mark, vd)
		case "i-0b22":
			vd.State, vd.Reason, vd.Since = healer.Suspect, "1 failed probe (timeout) since 12:00:29Z, below unhealthy_after 3", end
			h = history(end, 16, 1)
			h[15].StatusCode, h[15].Reason = 0, "timeout"
		}
		st.Snapshot.Instances = append(st.Snapshot.Instances, in)
		st.Report.Verdicts = append(st.Report.Verdicts, vd)
		key := "web/" + id
		st.Targets = append(st.Targets, probes.Target{Key: key, Service: "web", InstanceID: id, AZ: az,
			Address: netip.AddrPortFrom(in.PrivateIP, 8080).String(), Settings: &web.InstanceProbe})
		st.Probes[key] = h
	}

	evil := config.Service{Name: evilService, AutoScalingGroups: []string{"evil-asg"}, InstanceProbe: testProbe(), Policy: testPolicy(0)}
	ev := controller.Status{
		Service: evil,
		Snapshot: discovery.Snapshot{Service: evilService, At: testNow.Add(-5 * time.Minute),
			Groups: []discovery.Group{{Name: "evil-asg", Min: 1, Max: 4, Desired: 2}}},
		Probes: map[string][]probes.Result{},
		Report: healer.Report{RequestID: "0c0ffee000000001", Frozen: true},
	}
	for n, id := range []string{"i-0e01", "i-0e02"} {
		in := discovery.Instance{ID: id, Group: "evil-asg", AZ: "us-east-1a", PrivateIP: netip.AddrFrom4([4]byte{127, 0, 3, byte(10 + n)}),
			LaunchTime: testNow.Add(-time.Hour), LifecycleState: "InService", HealthStatus: "Healthy"}
		if n == 0 {
			in.LBHealth = []discovery.TargetHealth{{TargetGroup: "evil-tg", State: "unhealthy", Reason: evilLBReason}}
		}
		ev.Snapshot.Instances = append(ev.Snapshot.Instances, in)
		ev.Report.Verdicts = append(ev.Report.Verdicts, healer.Verdict{Instance: in, State: healer.Bad, Reason: evilReason, Since: end.Add(-2 * time.Second)})
		key := evilService + "/" + id
		ev.Targets = append(ev.Targets, probes.Target{Key: key, Service: evilService, InstanceID: id, AZ: in.AZ,
			Address: netip.AddrPortFrom(in.PrivateIP, 8080).String(), Settings: &evil.InstanceProbe})
		h := history(end, 4, 2)
		h[3].Reason = `body did not match <img src=x onerror="document.body.dataset.pwned=1">`
		ev.Probes[key] = h
	}
	ev.Report.Decision.Refusals = []healer.Refusal{{Reason: healer.ServiceWideFailure, Detail: evilDetail, Instances: []string{"i-0e01", "i-0e02"}}}
	ev.Events = []alerts.Event{{Kind: alerts.MarkRefused, Severity: alerts.Warning, Time: testNow.Add(-time.Second), Service: evilService,
		Subject: string(healer.ServiceWideFailure), Summary: "medic refused to mark instances of " + evilService + ": " + evilDetail,
		Action: "nothing: the guard refused (service_wide_failure)"}}
	return []controller.Status{ev, st} // sorted by name, as Controller.Statuses does: '<' sorts before 'w'
}

func demoLimits() fakeLimits {
	return fakeLimits{snap: limits.Snapshot{
		At: testNow.Add(-40 * time.Second),
		Quotas: []limits.QuotaStatus{
			{ServiceCode: "ec2", Code: "L-1216C47A", Name: "Running On-Demand Standard instances (vCPUs)",
				Limit: 64, LimitKnown: true, LimitSource: "config", Usage: 60, UsageKnown: true, Headroom: 4.0 / 64, HeadroomKnown: true,
				State: limits.StateCritical, Forecast: limits.Forecast{Known: true, Growing: true, Trend: true, In: 26 * time.Hour,
					Early: 20 * time.Hour, Late: 40 * time.Hour, Method: "peaks", Why: "peaks of 7 24h0m0s windows grow 3.6/day"}},
			{ServiceCode: "autoscaling", Code: "L-CDE20ADC", Name: "Auto Scaling groups per region",
				Limit: 200, LimitKnown: true, Usage: 12, UsageKnown: true, Headroom: 188.0 / 200, HeadroomKnown: true,
				State: limits.StateOK, Forecast: limits.Forecast{Known: true}},
			{ServiceCode: "elasticloadbalancing", Code: "L-53DA6B97", Name: "Application Load Balancers per Region",
				State: limits.StateUnknown},
			{ServiceCode: "ec2", Code: "L-417A185B", Name: "Running On-Demand P instances (vCPUs)",
				Limit: 0, LimitKnown: true, UsageKnown: true, State: limits.StateNotInUse, Forecast: limits.Forecast{Known: true}},
		},
		Groups: []limits.GroupStatus{{Name: "web-asg", Current: 6, Max: 9, Feasibility: limits.Feasibility{Known: true, Feasible: true, Why: "every quota it draws on has room"}}},
		Sources: []limits.SourceStatus{{Name: "service_quotas_applied:ec2", OK: false, Err: errors.New("servicequotas:ListServiceQuotas: HTTP 500").Error()},
			{Name: "autoscaling_account_limits", OK: false, Err: "autoscaling:DescribeAccountLimits: HTTP 500"}},
	}}
}

// bigStatuses is one service with n instances (and its endpoint), each with
// a full probe history; every 100th instance is bad, with a refusal.
func bigStatuses(n int) []controller.Status {
	end := testNow.Add(-time.Second)
	svc := config.Service{Name: "big", Endpoint: "http://127.0.0.1:18080/", AutoScalingGroups: []string{"big-a", "big-b"},
		InstanceProbe: testProbe(), EndpointProbe: testProbe(), Policy: testPolicy(10)}
	st := controller.Status{
		Service: svc,
		Snapshot: discovery.Snapshot{Service: "big", At: testNow.Add(-3 * time.Second), Groups: []discovery.Group{
			{Name: "big-a", Min: 1, Max: n, Desired: n / 2}, {Name: "big-b", Min: 1, Max: n, Desired: n - n/2}}},
		Probes:  make(map[string][]probes.Result, n+1),
		Targets: make([]probes.Target, 0, n+1),
		Report:  healer.Report{RequestID: "feedfacecafebeef", ActionsLastHour: 10},
	}
	st.Targets = append(st.Targets, probes.Target{Key: "big/endpoint", Service: "big", Address: svc.Endpoint})
	st.Probes["big/endpoint"] = history(end, 16, 0)
	ok, bad := history(end, 16, 0), history(end, 16, 4)
	var refused []string
	for i := range n {
		id := fmt.Sprintf("i-%017x", 0xabc000+i)
		g, az := "big-a", "us-east-1a"
		if i%2 == 1 {
			g, az = "big-b", "us-east-1b"
		}
		in := discovery.Instance{ID: id, Group: g, AZ: az, PrivateIP: netip.AddrFrom4([4]byte{127, byte(1 + i>>16), byte(i >> 8), byte(i)}),
			LifecycleState: "InService", HealthStatus: "Healthy", LaunchTime: testNow.Add(-time.Hour)}
		vd := healer.Verdict{Instance: in, State: healer.Healthy, Reason: "16 passing probes since 11:59:59Z", Since: testNow.Add(-time.Hour)}
		h := ok
		if i%100 == 7 {
			vd.State, vd.Reason, vd.Since, h = healer.Bad, badReason, end.Add(-6*time.Second), bad
			refused = append(refused, id)
		}
		st.Snapshot.Instances = append(st.Snapshot.Instances, in)
		st.Report.Verdicts = append(st.Report.Verdicts, vd)
		key := "big/" + id
		st.Targets = append(st.Targets, probes.Target{Key: key, Service: "big", InstanceID: id, AZ: az,
			Address: netip.AddrPortFrom(in.PrivateIP, 8080).String()})
		st.Probes[key] = h
	}
	st.Report.Decision.Refusals = []healer.Refusal{{Reason: healer.RateLimit,
		Detail: "10 marks in the last hour of max_actions_per_hour 10: marking 0 now, " + fmt.Sprint(len(refused)) + " bad instances wait", Instances: refused}}
	return []controller.Status{st}
}
