// Package rules generates the Prometheus recording and alerting rules for
// medic's own metrics (docs/metrics.md), in the monitoring-mixin spirit: one
// set of parameters (Params) in, one rule file out. The file checked in at
// alerts/rules/medic.rules.yml is Generate(Default()); a different SLO or
// threshold is a different Params, rendered with
//
//	go run ./alerts/rules/cmd/medic-rules -slo 0.995 > medic.rules.yml
//
// Every alert carries a severity label (info, warning, critical), a summary,
// a description with the values that raised it, and a runbook_url pointing at
// its section of docs/runbook.md. Severity follows medic's rule: only what
// needs a person now is critical (pages); what needs a person in working
// hours is warning; what medic handles by itself is info. The same three
// values are the severities of what medic's notification sinks send
// (alerts.Severity): one vocabulary, documented in docs/runbook.md.
//
// Each alertname has one source. These rules own the alerts on medic's
// metrics; medic's Alertmanager sink owns the alerts of its events
// (Medic<Kind>, e.g. MedicReplacementNotRecovered) and leaves out the event
// kinds whose condition a rule here already alerts on (alerts.RuleOwned).
package rules

import (
	"bytes"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Params are the knobs of the generated rules. Zero values are not defaults:
// start from Default() and change what differs.
type Params struct {
	// Selector holds the label matchers that select medic's own series,
	// without braces (`job="medic"`). Empty selects every series.
	Selector string
	// SLO is the availability objective of each service endpoint, as a
	// fraction of endpoint probes that pass (0.999 = 99.9%). The error
	// budget is 1-SLO; the burn-rate alerts are multiples of it.
	SLO float64
	// RunbookURL is where docs/runbook.md is served; each alert appends
	// "#" and its anchor.
	RunbookURL string
	// HealRateHighPerHour: more instances marked Unhealthy than this in one
	// hour, per service, is unusual.
	HealRateHighPerHour int
	// AWSErrorRatio: a larger share of failed (throttled or error) AWS API
	// calls per operation over 10 minutes, for 15 minutes, is reported.
	AWSErrorRatio float64
	// DiscoveryStale: a fleet older than this is stale. Keep it at least
	// three times global.discovery_interval (default 15s) and above the
	// slowest refresh.
	DiscoveryStale time.Duration
	// ExhaustionHorizon: a quota forecast to run out sooner than this is
	// reported (quota increases can take days).
	ExhaustionHorizon time.Duration
}

// Default returns the parameters of the checked-in rule file.
func Default() Params {
	return Params{
		Selector:            `job="medic"`,
		SLO:                 0.999,
		RunbookURL:          "https://github.com/medic-sre/medic/blob/main/docs/runbook.md",
		HealRateHighPerHour: 5,
		AWSErrorRatio:       0.1,
		DiscoveryStale:      2 * time.Minute,
		ExhaustionHorizon:   7 * 24 * time.Hour,
	}
}

// Validate reports every parameter that cannot give working rules.
func (p Params) Validate() error {
	var errs []string
	if !(p.SLO > 0 && p.SLO < 1) {
		errs = append(errs, fmt.Sprintf("slo %v: want 0 < slo < 1", p.SLO))
	} else if 14.4*(1-p.SLO) >= 1 {
		errs = append(errs, fmt.Sprintf("slo %v: the fast burn threshold 14.4×(1-slo) must be below 1, so slo must be above 0.9306", p.SLO))
	}
	if p.RunbookURL == "" {
		errs = append(errs, "runbook url: empty")
	}
	if p.HealRateHighPerHour < 1 {
		errs = append(errs, fmt.Sprintf("heal rate high per hour %d: want at least 1", p.HealRateHighPerHour))
	}
	if !(p.AWSErrorRatio > 0 && p.AWSErrorRatio < 1) {
		errs = append(errs, fmt.Sprintf("aws error ratio %v: want 0 < ratio < 1", p.AWSErrorRatio))
	}
	if p.DiscoveryStale < time.Second {
		errs = append(errs, fmt.Sprintf("discovery stale %v: want at least 1s", p.DiscoveryStale))
	}
	if p.ExhaustionHorizon < time.Hour {
		errs = append(errs, fmt.Sprintf("exhaustion horizon %v: want at least 1h", p.ExhaustionHorizon))
	}
	if strings.ContainsAny(p.Selector, "{}") {
		errs = append(errs, fmt.Sprintf("selector %q: give the matchers without braces", p.Selector))
	}
	if len(errs) > 0 {
		return fmt.Errorf("rules parameters: %s", strings.Join(errs, "; "))
	}
	return nil
}

// File is a Prometheus rule file.
type File struct {
	Groups []Group `yaml:"groups"`
}

// Group is one rule group.
type Group struct {
	Name  string `yaml:"name"`
	Rules []Rule `yaml:"rules"`
}

// Rule is a recording rule (Record set) or an alerting rule (Alert set).
type Rule struct {
	Record      string            `yaml:"record,omitempty"`
	Alert       string            `yaml:"alert,omitempty"`
	Expr        string            `yaml:"expr"`
	For         string            `yaml:"for,omitempty"`
	Labels      map[string]string `yaml:"labels,omitempty"`
	Annotations map[string]string `yaml:"annotations,omitempty"`
}

// Severity labels. Only critical pages.
const (
	Info     = "info"
	Warning  = "warning"
	Critical = "critical"
)

// Burn-rate windows (Google SRE workbook, "alerting on SLOs", multiwindow,
// multi-burn-rate): an alert fires when both its long and its short window
// burn the error budget faster than its factor.
type burnWindow struct {
	long, short string
	factor      float64
	forDur      string
	severity    string
}

var burnWindows = []burnWindow{
	// 2% of a 30-day budget in one hour: a person is needed now.
	{long: "1h", short: "5m", factor: 14.4, forDur: "2m", severity: Critical},
	// 5% of the budget in six hours: look at it today.
	{long: "6h", short: "30m", factor: 6, forDur: "15m", severity: Warning},
}

// ErrorRatioWindows are the windows of the endpoint error-ratio recording rules.
var ErrorRatioWindows = []string{"5m", "30m", "1h", "6h"}

// ErrorRatioRecord names the recorded endpoint error ratio over window.
func ErrorRatioRecord(window string) string {
	return "service:medic_endpoint_probe_errors:ratio_rate" + window
}

// sel renders a selector: p.Selector plus extra matchers.
func (p Params) sel(metric string, extra ...string) string {
	var m []string
	if p.Selector != "" {
		m = append(m, p.Selector)
	}
	m = append(m, extra...)
	if len(m) == 0 {
		return metric
	}
	return metric + "{" + strings.Join(m, ",") + "}"
}

func (p Params) runbook(alert string) string {
	return p.RunbookURL + "#" + strings.ToLower(alert)
}

// num formats a threshold for PromQL and for humans: shortest exact form.
func num(f float64) string {
	return fmt.Sprintf("%v", roundSig(f))
}

// roundSig drops float noise (14.4*0.001 = 0.014400000000000001).
func roundSig(f float64) float64 {
	if f == 0 {
		return 0
	}
	scale := math.Pow(10, 12-math.Ceil(math.Log10(math.Abs(f))))
	return math.Round(f*scale) / scale
}

func pct(f float64) string { return num(f*100) + "%" }

// promDuration renders d the way Prometheus writes durations (7d, 2m, 90s).
func promDuration(d time.Duration) string {
	switch {
	case d%(24*time.Hour) == 0:
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	case d%time.Hour == 0:
		return fmt.Sprintf("%dh", d/time.Hour)
	case d%time.Minute == 0:
		return fmt.Sprintf("%dm", d/time.Minute)
	default:
		return fmt.Sprintf("%ds", d/time.Second)
	}
}

// Generate builds the rule file for p. It does not validate p.
func Generate(p Params) File {
	return File{Groups: []Group{
		{Name: "medic-self", Rules: append(p.selfAlerts(), p.leaseAlerts()...)},
		// The recording rules share a group with the alerts that read them,
		// ahead of them: rules in a group run in order, so the alerts see
		// this evaluation's ratios, not the last one's.
		{Name: "medic-service", Rules: append(p.recordingRules(), p.serviceAlerts()...)},
		{Name: "medic-limits", Rules: p.limitsAlerts()},
	}}
}

// Header opens the generated file.
const Header = "# Code generated by alerts/rules (go test ./alerts/rules -update, or\n" +
	"# go run ./alerts/rules/cmd/medic-rules for other parameters). DO NOT EDIT.\n"

// Marshal validates p and renders its rule file as YAML.
func Marshal(p Params) ([]byte, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	var b bytes.Buffer
	b.WriteString(Header)
	fmt.Fprintf(&b, "# Endpoint SLO %s; discovery stale after %s.\n", pct(p.SLO), promDuration(p.DiscoveryStale))
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(Generate(p)); err != nil {
		return nil, fmt.Errorf("encode rules: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("encode rules: %w", err)
	}
	return b.Bytes(), nil
}

// Queries returns the expression of every rule in the default file, in
// file order.
func Queries() []string { return Default().Queries() }

// Queries returns the expression of every rule generated for p.
func (p Params) Queries() []string {
	var q []string
	for _, g := range Generate(p).Groups {
		for _, r := range g.Rules {
			q = append(q, r.Expr)
		}
	}
	return q
}

// Alerts returns the sorted, distinct alert names generated for p.
func (p Params) Alerts() []string {
	seen := map[string]bool{}
	var names []string
	for _, g := range Generate(p).Groups {
		for _, r := range g.Rules {
			if r.Alert != "" && !seen[r.Alert] {
				seen[r.Alert] = true
				names = append(names, r.Alert)
			}
		}
	}
	sort.Strings(names)
	return names
}

func (p Params) recordingRules() []Rule {
	var rs []Rule
	for _, w := range ErrorRatioWindows {
		rs = append(rs, Rule{
			Record: ErrorRatioRecord(w),
			Expr: fmt.Sprintf("sum by (service) (rate(%s[%s]))\n/\nsum by (service) (rate(%s[%s]))",
				p.sel("medic_probes_total", `scope="endpoint"`, `result="failure"`), w,
				p.sel("medic_probes_total", `scope="endpoint"`), w),
		})
	}
	return rs
}

// eventsIn counts what counter sel counted over window, including a series
// born inside the window: increase() needs two samples and so misses the
// first event of a series that appears at 1 (a label set used for the first
// time since medic started). A series that existed window ago contributes
// its increase; a newer one its whole value.
func eventsIn(sel, window string) string {
	return fmt.Sprintf("  (increase(%[1]s[%[2]s]) and %[1]s offset %[2]s)\n  or\n  (%[1]s unless %[1]s offset %[2]s)", sel, window)
}

// fleetFact aggregates expr with op (max or min) by job and labels: a fact
// every replica of a deployment reports (leader and standbys judge the same
// fleet and read the same quotas) makes one alert, not one per replica's
// instance label.
func fleetFact(op, labels, expr string) string {
	return op + " by (job, " + labels + ") (" + expr + ")"
}

func (p Params) alert(name, expr, forDur, severity, summary, description string, extra ...string) Rule {
	labels := map[string]string{"severity": severity}
	for i := 0; i+1 < len(extra); i += 2 {
		labels[extra[i]] = extra[i+1]
	}
	return Rule{
		Alert:  name,
		Expr:   expr,
		For:    forDur,
		Labels: labels,
		Annotations: map[string]string{
			"summary":     summary,
			"description": description,
			"runbook_url": p.runbook(name),
		},
	}
}

func (p Params) selfAlerts() []Rule {
	up := p.sel("up")
	return []Rule{
		p.alert("MedicDown", up+" == 0", "5m", Warning,
			"medic is down: nothing is being healed.",
			"Prometheus has failed to scrape medic at {{ $labels.instance }} (job {{ $labels.job }}) for 5 minutes. "+
				"While medic is down no instance is probed, judged or marked; the Auto Scaling groups' own health checks still run. "+
				"The services themselves are not affected by this alert."),
		p.alert("MedicNotScraped", "absent("+up+")", "15m", Warning,
			"medic is not scraped: no target matches {"+p.Selector+"}.",
			"Prometheus has had no scrape target matching {"+p.Selector+"} for 15 minutes: medic is not deployed, "+
				"or the scrape configuration lost it. Nothing watches medic, and its other alerts cannot fire."),
		p.alert("MedicNotReady", p.sel("medic_ready")+" == 0", "5m", Warning,
			"medic at {{ $labels.instance }} is not ready and is not healing.",
			"medic at {{ $labels.instance }} has reported not ready (/-/ready not 200) for 5 minutes: its configuration "+
				"is not loaded or no fleet discovery has succeeded since it started. It probes nothing and marks nothing until then."),
		p.alert("MedicDiscoveryStale", p.sel("medic_discovery_age_seconds")+" > "+num(p.DiscoveryStale.Seconds()), "", Warning,
			"medic's view of the fleet is {{ $value | humanizeDuration }} old.",
			"medic at {{ $labels.instance }} last read the fleet from AWS whole {{ $value | humanizeDuration }} ago "+
				"(threshold "+promDuration(p.DiscoveryStale)+"). It judges instances it may no longer have and misses new ones; "+
				"the actions it takes stay safe (a vanished instance is not an error) but new instances are not probed."),
		p.alert("MedicConfigReloadFailed", p.sel("medic_config_last_reload_successful")+" == 0", "10m", Warning,
			"medic at {{ $labels.instance }} refused its new configuration.",
			"The last configuration reload of medic at {{ $labels.instance }} failed validation 10 or more minutes ago. "+
				"medic keeps running with the previous configuration; the change someone made is not in effect. "+
				"The errors, with file:line and field path, are in medic's log."),
		p.alert("MedicAWSAPIErrors", fmt.Sprintf(
			"sum by (job, instance, service, operation) (rate(%s[10m]))\n/\nsum by (job, instance, service, operation) (rate(%s[10m]))\n> %s",
			p.sel("medic_aws_api_calls_total", `result!="success"`), p.sel("medic_aws_api_calls_total"), num(p.AWSErrorRatio)),
			"15m", Info,
			"{{ $value | humanizePercentage }} of medic's {{ $labels.operation }} calls to AWS fail.",
			"Over the last 10 minutes {{ $value | humanizePercentage }} of the {{ $labels.operation }} calls of medic at "+
				"{{ $labels.instance }} were throttled or failed (threshold "+pct(p.AWSErrorRatio)+", for 15 minutes). medic retries "+
				"with backoff; if it cannot catch up, MedicDiscoveryStale or MedicNotReady follow."),
	}
}

// leaseAlerts watch the lease that elects the one acting replica
// (docs/lease.md). medic_lease_* exist only when global.lease is configured:
// without a lease none of these can fire. The leader count is per job: the
// replicas of one deployment share a job and a lease.
func (p Params) leaseAlerts() []Rule {
	leader := p.sel("medic_lease_leader")
	return []Rule{
		p.alert("MedicNoLeader", fmt.Sprintf("count by (job) (%[1]s)\nunless on (job)\n(sum by (job) (%[1]s) > 0)", leader),
			"2m", Warning,
			"No medic replica of job {{ $labels.job }} holds the lease: nobody is healing.",
			"No medic replica of job {{ $labels.job }} has held the lease for 2 minutes ({{ $value }} scraped, all standing by): "+
				"each reports the marks it would make as dry runs, and no bad instance is marked Unhealthy. A takeover takes at most "+
				"duration + renew_every (20 seconds by default). Usually no replica can write the lease item (DynamoDB unreachable, "+
				"table missing, access denied: see MedicLeaseErrors and medic's log), or the leader is running but not scraped (see MedicDown)."),
		p.alert("MedicSeveralLeaders", fmt.Sprintf("sum by (job) (%s) > 1", leader),
			"1m", Warning,
			"{{ $value }} medic replicas of job {{ $labels.job }} act as leader at once.",
			"{{ $value }} medic replicas of job {{ $labels.job }} have each reported holding the lease for 1 minute; "+
				"the lease allows one. Each of them may mark instances Unhealthy, with its own max_actions_per_hour budget. "+
				"The lease's safety margin (duration/5) makes this impossible unless the replicas' clocks are skewed by more than it, "+
				"or the replicas do not share one lease (different global.lease name or table, or a different environment that the default name follows)."),
		p.alert("MedicLeaseErrors", fmt.Sprintf(
			"sum by (job, instance, operation) (rate(%s[5m]))\n/\nsum by (job, instance, operation) (rate(%s[5m]))\n> 0",
			p.sel("medic_lease_operations_total", `result=~"error|throttled"`), p.sel("medic_lease_operations_total")),
			"10m", Info,
			"{{ $value | humanizePercentage }} of medic's lease {{ $labels.operation }} calls to DynamoDB fail.",
			"For 10 minutes, {{ $labels.operation }} calls on the lease item by medic at {{ $labels.instance }} have been throttled or failed "+
				"({{ $value | humanizePercentage }} of them over the last 5 minutes). A PutItem that fails is a missed renewal or takeover: "+
				"a leader that cannot renew stops acting duration/5 before its lease expires, and a replica that can never write never leads. "+
				"If no replica can write, MedicNoLeader follows."),
		p.alert("MedicLeaseItemInvalid", fmt.Sprintf("max by (job) (increase(%s[10m])) > 0",
			p.sel("medic_lease_invalid_items_total")),
			"", Warning,
			"medic found the lease item of job {{ $labels.job }} invalid and took it over.",
			"A medic replica of job {{ $labels.job }} read the lease item with an expiry more than 2 × duration ahead in the last 10 minutes: "+
				"either someone wrote the item by hand (a forged item would freeze every replica until it expires), or the clock of the replica "+
				"that wrote it is far ahead. medic took the item over with a new generation, so an old leader's marks are fenced off. "+
				"Find who can write the lease table and check the replicas' clocks."),
	}
}

func (p Params) serviceAlerts() []Rule {
	budget := 1 - p.SLO
	var rs []Rule
	for _, w := range burnWindows {
		th := num(w.factor * budget)
		rs = append(rs, p.alert("MedicServiceEndpointErrorBudgetBurn",
			fmt.Sprintf("%s > %s\nand\n%s > %s", ErrorRatioRecord(w.long), th, ErrorRatioRecord(w.short), th),
			w.forDur, w.severity,
			"The endpoint of service {{ $labels.service }} burns its error budget "+num(w.factor)+"× too fast.",
			"{{ $value | humanizePercentage }} of the endpoint probes of service {{ $labels.service }} failed over the last "+
				w.long+" (and over the last "+w.short+"), against an objective of "+pct(p.SLO)+" success: at this rate the "+
				"30-day error budget lasts "+strconv.FormatFloat(30/w.factor, 'g', 2, 64)+" days. The failure is seen through the load balancer; "+
				"medic replaces bad instances but cannot fix a fault the whole service shares.",
			"long_window", w.long, "short_window", w.short))
	}
	rs = append(rs,
		p.alert("MedicGuardRefusing", fleetFact("max", "service, reason", p.sel("medic_guard_refusing"))+" == 1", "10m", Warning,
			"medic's guard has refused to heal service {{ $labels.service }} for 10 minutes ({{ $labels.reason }}).",
			"The guard of medic (job {{ $labels.job }}) has refused to mark bad instances of service {{ $labels.service }} "+
				"Unhealthy for 10 minutes, reason {{ $labels.reason }}. Bad instances stay in service until a person looks or "+
				"the condition clears; see the runbook for what each reason means."),
		p.alert("MedicHealRateHigh", fmt.Sprintf(
			"round(sum by (job, service) (\n%s\n)) > %d",
			eventsIn(p.sel("medic_heal_actions_total", `result="marked"`), "1h"), p.HealRateHighPerHour),
			"", Info,
			"medic marked {{ $value | printf \"%.0f\" }} instances of service {{ $labels.service }} Unhealthy in the last hour.",
			"medic marked {{ $value | printf \"%.0f\" }} instances of service {{ $labels.service }} Unhealthy in the last hour (usual: at most "+
				fmt.Sprint(p.HealRateHighPerHour)+"). Each was replaced by its Auto Scaling group; so many suggest a shared cause "+
				"(a bad release or image, a leak, a noisy dependency). medic stops at the service's max_actions_per_hour."),
	)
	return rs
}

func (p Params) limitsAlerts() []Rule {
	// Quota thresholds are medic's config (global, per-quota overrides):
	// medic_quota_state says which one a quota crossed, so the alerts agree
	// with medic's own notifications. The value shown is the headroom.
	// Every replica reports the same quotas, groups and load balancers:
	// each alert aggregates them away (fleetFact) so that a fact fires once.
	quotaLabels := "service_code, quota_code, quota_name"
	headroomAtState := func(state int) string {
		return fleetFact("min", quotaLabels, fmt.Sprintf("\n  %s\n  and on (job, instance, %s)\n  %s == %d\n",
			p.sel("medic_quota_headroom_ratio"), quotaLabels, p.sel("medic_quota_state"), state))
	}
	return []Rule{
		p.alert("MedicQuotaHeadroomLow", headroomAtState(1), "15m", Info,
			"Quota {{ $labels.quota_name }} has {{ $value | humanizePercentage }} headroom left.",
			"Quota {{ $labels.quota_code }} ({{ $labels.quota_name }}) of {{ $labels.service_code }} has {{ $value | humanizePercentage }} "+
				"headroom: its usage is at or above its warning threshold (default 80% used). Scaling and deploys that draw on it fail when it reaches zero."),
		p.alert("MedicQuotaHeadroomLow", headroomAtState(2), "15m", Warning,
			"Quota {{ $labels.quota_name }} is nearly used up: {{ $value | humanizePercentage }} headroom.",
			"Quota {{ $labels.quota_code }} ({{ $labels.quota_name }}) of {{ $labels.service_code }} has {{ $value | humanizePercentage }} "+
				"headroom: its usage is at or above its critical threshold (default 95% used). Request an increase or free capacity before scaling needs it."),
		p.alert("MedicQuotaExhaustionForecast", fmt.Sprintf("%s < %s",
			fleetFact("min", quotaLabels+", method", p.sel("medic_quota_seconds_to_exhaustion", `method="peaks"`)), num(p.ExhaustionHorizon.Seconds())),
			"1h", Warning,
			"Quota {{ $labels.quota_name }} is forecast to run out in {{ $value | humanizeDuration }}.",
			"At the current trend ({{ $labels.method }}), usage of quota {{ $labels.quota_code }} ({{ $labels.quota_name }}) of {{ $labels.service_code }} "+
				"reaches its limit in {{ $value | humanizeDuration }} (horizon "+promDuration(p.ExhaustionHorizon)+"). "+
				"Quota increases can take days: request one now."),
		p.alert("MedicScaleOutNotFeasible", fleetFact("min", "asg", p.sel("medic_scale_out_feasible"))+" == 0", "15m", Warning,
			"Auto Scaling group {{ $labels.asg }} cannot scale out to its MaxSize.",
			"Growing Auto Scaling group {{ $labels.asg }} to its MaxSize would exceed a quota it draws on (vCPUs for its instance types, "+
				"targets per load balancer, ...). It will fail when it tries, typically during a traffic peak."),
		p.alert("MedicPrewarmNeeded", fleetFact("max", "load_balancer", fmt.Sprintf("\n  %s == 1\n  unless on (job, instance, load_balancer)\n  (%s >= on (job, instance, load_balancer) %s)\n",
			p.sel("medic_prewarm_needed"), p.sel("medic_prewarm_applied_lcu"), p.sel("medic_prewarm_recommended_lcu"))),
			"", Warning,
			"Load balancer {{ $labels.load_balancer }} needs pre-warming and has no sufficient capacity reservation.",
			"medic expects traffic to load balancer {{ $labels.load_balancer }} to grow faster than it can scale "+
				"(a ramp, a scheduled event or signs of exhaustion), and no capacity reservation of the recommended size is in place. "+
				"Reserve capacity before the event (or, for a Classic load balancer, ask AWS to pre-warm it)."),
	}
}
