package statuspage

import (
	"cmp"
	"fmt"
	"html/template"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/medic-sre/medic/alerts"
	"github.com/medic-sre/medic/config"
	"github.com/medic-sre/medic/controller"
	"github.com/medic-sre/medic/healer"
	"github.com/medic-sre/medic/limits"
	"github.com/medic-sre/medic/probes"
)

// stripLen is how many recent probes an instance row shows.
const stripLen = 10

// maxListedIDs bounds the instance ids a refusal or event lists inline.
const maxListedIDs = 20

// notJudged is the state of an instance in the fleet snapshot that the last
// heal cycle did not judge (it arrived after the cycle).
const notJudged healer.State = "not_judged"

// severity orders instance rows worst first.
var severity = map[healer.State]int{
	healer.Bad: 0, healer.Suspect: 1, healer.Unknown: 2, notJudged: 3,
	healer.NotInService: 4, healer.Grace: 5, healer.Healthy: 6,
}

type pageView struct {
	Generated string
	Refresh   int
	NotReady  string
	All       bool
	Services  []serviceView
	Quotas    *quotasView
}

type badge struct{ Text, Class string }

type serviceView struct {
	Anchor         string
	Name           string
	Badge          badge
	FleetRead      string
	FleetReadTitle string
	RequestID      string
	NoCycle        bool
	Endpoint       *targetRow
	Counts         []stateCount
	Total          int
	Groups         []groupRow
	Frozen         bool
	Budget         budget
	Policy         string
	Refusals       []refusalRow
	Findings       []findingRow // latency, vantage, scores
	WouldMark      string       // frozen: what the guard would have marked
	Events         []eventRow
	Instances      []instanceRow
	Hidden         int
	Statics        []targetRow
	HiddenStatics  int
}

// staticRank orders static targets worst first: failing, not probed yet,
// passing.
func staticRank(last probes.Result, probed bool) int {
	switch {
	case !probed:
		return 1
	case !last.Success:
		return 0
	}
	return 2
}

type stateCount struct {
	State string
	N     int
}

type groupRow struct {
	Name                     string
	Desired, Min, Max        int
	Grace                    string
	InService, ASGUnhealthy  int
	Healthy, Suspect, Bad, N int
}

type budget struct {
	Used, Max, Left int
	MonitorOnly     bool
	Class           string
}

type refusalRow struct{ Reason, Detail, Instances string }

// findingRow is one line of what the insight checks found.
type findingRow struct{ What, Tag, Class, Text string }

// eventRow is one of the reporter's events.
type eventRow struct {
	At, AtTitle           string
	Kind, Class, Result   string
	Severity, SevClass    string
	Subject, AZ           string
	Summary, Action       string
	RequestID             string
	NeedsAction, Resolved bool
}

type instanceRow struct {
	ID, AZ, IP, Group string
	Lifecycle, ASG    string
	ASGUnhealthy      bool
	State, Reason     string
	Since, SinceTitle string
	Key               string // debug key; empty when not probed
	Strip             template.HTML
	LastProbe         string
	LB                []lbCell // the target groups' view, evidence only
	// Latency is the instance's standing against its peers.
	Latency, LatencyClass, LatencyTitle string
}

// lbCell is one target group's view of an instance.
type lbCell struct{ TargetGroup, State, Reason, Class string }

type targetRow struct {
	Key, Address       string
	Probed, OK         bool
	Reason             string
	Strip              template.HTML
	LastProbe, LastAbs string
}

type quotasView struct {
	At     string
	Age    string
	DryRun bool
	// Rows are the quotas with figures; NotInUse (limit 0, nothing used)
	// and Unknown (a figure missing) are folded below them.
	Rows, NotInUse, Unknown []quotaRow
	// Failing folds the sources that failed in the last refresh: how
	// many, the first, and all of them (brief: operation and AWS's code).
	Failing      []string
	FailingFirst string
	// ConfigLimits counts limits that come from config, not from AWS.
	ConfigLimits int
	Groups       []feasRow
}

type quotaRow struct {
	Service, Code, Name   string
	Usage, Limit          string
	LimitFromConfig       bool
	Headroom              string
	State, Class          string
	Forecast, ForecastWhy string
	Muted                 bool
	Request               string
	sev                   int
}

type feasRow struct {
	Name, Size, State, Class, Why string
}

// build turns the statuses into what the template shows. It is linear in
// targets plus instances (plus a sort of each service's rows).
func (p *Page) build(sts []controller.Status, now time.Time, all bool) pageView {
	v := pageView{Generated: now.UTC().Format(time.RFC3339), Refresh: RefreshSeconds, All: all}
	if rd, ok := p.src.(Readiness); ok {
		if ready, why := rd.Ready(); !ready {
			v.NotReady = why
		}
	}
	v.Services = make([]serviceView, len(sts))
	for i := range sts {
		v.Services[i] = p.buildService(&sts[i], i, now, all)
	}
	if p.limits != nil {
		v.Quotas = buildQuotas(p.limits.Snapshot(), now)
	}
	return v
}

func (p *Page) buildService(st *controller.Status, idx int, now time.Time, all bool) serviceView {
	rep := &st.Report
	sv := serviceView{
		Anchor:    "svc-" + strconv.Itoa(idx),
		Name:      st.Service.Name,
		RequestID: rep.RequestID,
		NoCycle:   rep.RequestID == "" && len(rep.Verdicts) == 0,
		Frozen:    rep.Frozen,
	}
	if !st.Snapshot.At.IsZero() {
		sv.FleetRead = ago(now, st.Snapshot.At)
		sv.FleetReadTitle = st.Snapshot.At.UTC().Format(time.RFC3339)
	}
	pol := st.Service.Policy
	sv.Policy = fmt.Sprintf("unhealthy_after %d · healthy_after %d · max_unhealthy %s · grace %s",
		pol.UnhealthyAfter, pol.HealthyAfter, pol.MaxUnhealthy, pol.GracePeriod)
	sv.Budget = budget{Used: rep.ActionsLastHour, Max: pol.MaxActionsPerHour, MonitorOnly: pol.MaxActionsPerHour == 0}
	sv.Budget.Left = max(sv.Budget.Max-sv.Budget.Used, 0)
	switch {
	case sv.Budget.MonitorOnly:
		sv.Budget.Class = "unknown"
	case sv.Budget.Left == 0:
		sv.Budget.Class = "bad"
	case sv.Budget.Used*2 >= sv.Budget.Max:
		sv.Budget.Class = "suspect"
	default:
		sv.Budget.Class = "healthy"
	}

	// Targets by kind: instance targets by instance id, the endpoint, the rest.
	keyByID := make(map[string]string, len(st.Targets))
	var statics []*probes.Target
	for i := range st.Targets {
		t := &st.Targets[i]
		switch {
		case t.InstanceID != "":
			keyByID[t.InstanceID] = t.Key
		case sv.Endpoint == nil && st.Service.Endpoint != "" && t.Address == st.Service.Endpoint:
			row := targetView(t, st.History(t.Key), now)
			sv.Endpoint = &row
		default:
			statics = append(statics, t)
		}
	}
	if sv.Endpoint == nil && st.Service.Endpoint != "" {
		sv.Endpoint = &targetRow{Address: config.RedactURL(st.Service.Endpoint), Reason: "not probed yet"}
	}
	// Static targets: worst first and capped like the instances, so that
	// a page of 50,000 static targets renders the few that matter.
	// Ranked from each target's last result, read once, into one bucket
	// per rank; each bucket by address. The histories are read for the
	// rows shown only.
	var buckets [3][]*probes.Target
	for _, t := range statics {
		last, ok := st.Last(t.Key)
		r := staticRank(last, ok)
		buckets[r] = append(buckets[r], t)
	}
	statics = statics[:0]
	for _, b := range buckets {
		slices.SortFunc(b, func(x, y *probes.Target) int {
			return cmp.Or(strings.Compare(x.Address, y.Address), strings.Compare(x.Key, y.Key))
		})
		statics = append(statics, b...)
	}
	if !all && p.maxRows > 0 && len(statics) > p.maxRows {
		sv.HiddenStatics = len(statics) - p.maxRows
		statics = statics[:p.maxRows]
	}
	for _, t := range statics {
		sv.Statics = append(sv.Statics, targetView(t, st.History(t.Key), now))
	}

	// Instances: the last cycle's verdicts, then snapshot instances it did
	// not judge yet. Rows stay small until sorted and capped; only the rows
	// shown get their strings.
	type pending struct {
		vd  *healer.Verdict
		sev int
	}
	rows := make([]pending, 0, max(len(rep.Verdicts), len(st.Snapshot.Instances)))
	judged := make(map[string]bool, len(rep.Verdicts))
	for i := range rep.Verdicts {
		vd := &rep.Verdicts[i]
		judged[vd.Instance.ID] = true
		rows = append(rows, pending{vd: vd, sev: severity[vd.State]})
	}
	for i := range st.Snapshot.Instances {
		in := &st.Snapshot.Instances[i]
		if judged[in.ID] {
			continue
		}
		vd := &healer.Verdict{Instance: *in, State: notJudged, Reason: "in the fleet since the last heal cycle; judged at the next"}
		rows = append(rows, pending{vd: vd, sev: severity[notJudged]})
	}

	// Counts by state and per group, in one pass.
	counts := make(map[healer.State]int, len(severity))
	groups := make(map[string]*groupRow, len(st.Snapshot.Groups))
	order := make([]string, 0, len(st.Snapshot.Groups))
	for _, g := range st.Snapshot.Groups {
		groups[g.Name] = &groupRow{Name: g.Name, Desired: g.Desired, Min: g.Min, Max: g.Max, Grace: g.GracePeriod.String()}
		order = append(order, g.Name)
	}
	for _, r := range rows {
		in := &r.vd.Instance
		counts[r.vd.State]++
		g, ok := groups[in.Group]
		if !ok {
			g = &groupRow{Name: in.Group, Grace: "?"}
			groups[in.Group] = g
			order = append(order, in.Group)
		}
		g.N++
		if in.LifecycleState == "InService" {
			g.InService++
		}
		if in.HealthStatus == "Unhealthy" {
			g.ASGUnhealthy++
		}
		switch r.vd.State {
		case healer.Healthy:
			g.Healthy++
		case healer.Suspect:
			g.Suspect++
		case healer.Bad:
			g.Bad++
		}
	}
	for _, s := range append(healer.States[:len(healer.States):len(healer.States)], notJudged) {
		if n := counts[s]; n > 0 {
			sv.Counts = append(sv.Counts, stateCount{State: string(s), N: n})
		}
	}
	sv.Total = len(rows)
	for _, name := range order {
		sv.Groups = append(sv.Groups, *groups[name])
	}

	sort.Slice(rows, func(i, j int) bool {
		if rows[i].sev != rows[j].sev {
			return rows[i].sev < rows[j].sev
		}
		return rows[i].vd.Instance.ID < rows[j].vd.Instance.ID
	})
	if !all && p.maxRows > 0 && len(rows) > p.maxRows {
		sv.Hidden = len(rows) - p.maxRows
		rows = rows[:p.maxRows]
	}
	// The rows shown, their probe strips written into one buffer.
	sv.Instances = make([]instanceRow, len(rows))
	var sb strings.Builder
	sb.Grow(len(rows) * stripLen * 64)
	ends := make([]int, len(rows))
	for i, pr := range rows {
		r := &sv.Instances[i]
		fillInstance(r, pr.vd, now)
		fillLatency(r, rep.Insight)
		if key, ok := keyByID[r.ID]; ok {
			r.Key = key
			h := st.History(key)
			writeStrip(&sb, h)
			if len(h) > 0 {
				r.LastProbe = ago(now, h[len(h)-1].Start)
			}
		}
		ends[i] = sb.Len()
	}
	strips := sb.String()
	start := 0
	for i := range sv.Instances {
		r := &sv.Instances[i]
		switch {
		case r.Key == "":
			r.Strip = notProbed
		case start == ends[i]:
			r.Strip = noResult
		default:
			r.Strip = template.HTML(strips[start:ends[i]]) // #nosec: writeStrip escapes every text
		}
		start = ends[i]
	}

	sv.Findings = findings(rep.Insight)
	if z := st.Zonal; z.Reason != "" && z.Reason != healer.ZoneHealthy {
		c := "suspect"
		if z.Action == healer.ZonalStart || z.Action == healer.ZonalKeep {
			c = "bad"
		}
		sv.Findings = append(sv.Findings, findingRow{What: "zone", Tag: string(z.Action) + ": " + string(z.Reason), Class: c, Text: z.Detail})
	}
	// Guard state.
	for _, rf := range rep.Decision.Refusals {
		sv.Refusals = append(sv.Refusals, refusalRow{Reason: string(rf.Reason), Detail: rf.Detail, Instances: listIDs(rf.Instances)})
	}
	if rep.Frozen && len(rep.Decision.Mark) > 0 {
		ids := make([]string, len(rep.Decision.Mark))
		for i, m := range rep.Decision.Mark {
			ids[i] = m.Instance.ID
		}
		sv.WouldMark = listIDs(ids)
	}

	// Recent events, as the reporter made them, newest first.
	sv.Events = make([]eventRow, len(st.Events))
	for i := range st.Events {
		sv.Events[i] = eventView(&st.Events[i], now)
	}

	sv.Badge = serviceBadge(&sv, counts[healer.Bad])
	return sv
}

// Strips of instances without probe results.
const (
	notProbed template.HTML = `<span class="meta">not probed</span>`
	noResult  template.HTML = `<span class="meta">no result yet</span>`
)

func fillInstance(r *instanceRow, vd *healer.Verdict, now time.Time) {
	in := &vd.Instance
	r.State, r.Reason = string(vd.State), vd.Reason
	r.ID, r.AZ, r.Group = in.ID, in.AZ, in.Group
	if in.PrivateIP.IsValid() {
		r.IP = in.PrivateIP.String()
	}
	r.Lifecycle, r.ASG = in.LifecycleState, in.HealthStatus
	r.ASGUnhealthy = in.HealthStatus == "Unhealthy"
	if len(in.LBHealth) > 0 {
		r.LB = make([]lbCell, len(in.LBHealth))
		for i, h := range in.LBHealth {
			r.LB[i] = lbCell{TargetGroup: h.TargetGroup, State: h.State, Reason: h.Reason, Class: lbClass(h.State)}
		}
	}
	if !vd.Since.IsZero() {
		r.Since = ago(now, vd.Since)
		r.SinceTitle = vd.Since.UTC().Format(time.RFC3339)
	}
}

// lbClass colours a target group's state like the judged states: healthy
// green, unhealthy red, initial (registering) like grace, draining amber,
// the rest (unused, unavailable) grey.
func lbClass(state string) string {
	switch state {
	case "healthy":
		return "healthy"
	case "unhealthy":
		return "bad"
	case "initial":
		return "grace"
	case "draining":
		return "suspect"
	}
	return "unknown"
}

func targetView(t *probes.Target, h []probes.Result, now time.Time) targetRow {
	r := targetRow{Key: t.Key, Address: config.RedactURL(t.Address)} // query values hidden
	if len(h) == 0 {
		r.Reason = "not probed yet"
		return r
	}
	last := h[len(h)-1]
	r.Probed, r.OK, r.Reason = true, last.Success, last.Reason
	if !last.Success && r.Reason == "" && last.StatusCode != 0 {
		r.Reason = "status " + strconv.Itoa(last.StatusCode)
	}
	r.LastProbe = ago(now, last.Start)
	r.LastAbs = last.Start.UTC().Format(time.RFC3339)
	var sb strings.Builder
	writeStrip(&sb, h)
	r.Strip = template.HTML(sb.String()) // #nosec: writeStrip escapes every text
	return r
}

func serviceBadge(sv *serviceView, bad int) badge {
	switch {
	case sv.NoCycle:
		return badge{"waiting for the first cycle", "unknown"}
	case sv.Endpoint != nil && sv.Endpoint.Probed && !sv.Endpoint.OK:
		return badge{"endpoint failing", "bad"}
	case sv.Frozen:
		return badge{"frozen", "suspect"}
	case len(sv.Refusals) > 0:
		return badge{"guard refusing", "suspect"}
	case bad > 0:
		return badge{plural(bad, "bad instance"), "suspect"}
	}
	return badge{"ok", "healthy"}
}

func eventView(e *alerts.Event, now time.Time) eventRow {
	return eventRow{
		At: ago(now, e.Time), AtTitle: e.Time.UTC().Format(time.RFC3339),
		Kind: string(e.Kind), Class: eventClass(e), Result: e.Labels["result"],
		Severity: string(e.Severity), SevClass: severityClass(e.Severity),
		Subject: e.Subject, AZ: e.AZ, Summary: e.Summary, Action: e.Action,
		RequestID: e.RequestID, NeedsAction: e.NeedsAction, Resolved: e.Resolved,
	}
}

// eventClass colours an event's kind: what needs a person red, an end
// green, a mark by its result, a refusal amber.
func eventClass(e *alerts.Event) string {
	switch {
	case e.NeedsAction:
		return "bad"
	case e.Resolved:
		return "healthy"
	case e.Kind == alerts.InstanceMarked:
		switch healer.ActionResult(e.Labels["result"]) {
		case healer.ResultMarked:
			return "act"
		case healer.ResultDryRun, healer.ResultStandby:
			return "grace"
		case healer.ResultFailed, healer.ResultNotApplied:
			return "bad"
		}
		return "unknown"
	case e.Kind == alerts.MarkRefused:
		return "suspect"
	}
	return severityClass(e.Severity)
}

func severityClass(s alerts.Severity) string {
	switch s {
	case alerts.Critical:
		return "bad"
	case alerts.Warning:
		return "suspect"
	}
	return "unknown"
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// listIDs joins ids, at most maxListedIDs of them.
func listIDs(ids []string) string {
	if len(ids) <= maxListedIDs {
		return strings.Join(ids, ", ")
	}
	return strings.Join(ids[:maxListedIDs], ", ") + fmt.Sprintf(" and %d more", len(ids)-maxListedIDs)
}

// writeStrip writes the last stripLen results as ✓/✗ marks, oldest first,
// each with a title giving its time, duration and reason. Every text is
// HTML-escaped here: the result is trusted as template.HTML.
func writeStrip(sb *strings.Builder, h []probes.Result) {
	if len(h) > stripLen {
		h = h[len(h)-stripLen:]
	}
	var buf [64]byte
	for i := range h {
		r := &h[i]
		if r.Success {
			sb.WriteString(`<i class="ok" title="`)
		} else {
			sb.WriteString(`<i class="ko" title="`)
		}
		sb.Write(r.Start.UTC().AppendFormat(buf[:0], "15:04:05Z"))
		sb.WriteString(" · ")
		sb.Write(appendDuration(buf[:0], r.Duration))
		switch {
		case r.Success && r.StatusCode != 0:
			sb.WriteString(" · ok, status ")
			sb.Write(strconv.AppendInt(buf[:0], int64(r.StatusCode), 10))
		case r.Success:
			sb.WriteString(" · ok")
		case r.Reason != "":
			sb.WriteString(" · ")
			escapeTo(sb, r.Reason)
		case r.StatusCode != 0:
			sb.WriteString(" · status ")
			sb.Write(strconv.AppendInt(buf[:0], int64(r.StatusCode), 10))
		default:
			sb.WriteString(" · failed")
		}
		if r.Success {
			sb.WriteString(`">✓</i>`)
		} else {
			sb.WriteString(`">✗</i>`)
		}
	}
}

// escapeTo writes s with &, <, >, " and ' escaped, safe in text and in a
// quoted attribute.
func escapeTo(sb *strings.Builder, s string) {
	last := 0
	for i := 0; i < len(s); i++ {
		var rep string
		switch s[i] {
		case '&':
			rep = "&amp;"
		case '<':
			rep = "&lt;"
		case '>':
			rep = "&gt;"
		case '"':
			rep = "&#34;"
		case '\'':
			rep = "&#39;"
		default:
			continue
		}
		sb.WriteString(s[last:i])
		sb.WriteString(rep)
		last = i + 1
	}
	sb.WriteString(s[last:])
}

// appendDuration writes d in milliseconds ("12ms", "0.4ms", "1500ms").
func appendDuration(b []byte, d time.Duration) []byte {
	if d < 10*time.Millisecond {
		b = strconv.AppendFloat(b, float64(d)/float64(time.Millisecond), 'f', 1, 64)
	} else {
		b = strconv.AppendInt(b, int64(d/time.Millisecond), 10)
	}
	return append(b, "ms"...)
}

// ago says how long before now t was ("4s ago", "3m20s ago", "2h ago");
// "" for a zero t.
func ago(now, t time.Time) string {
	if t.IsZero() {
		return ""
	}
	d := now.Sub(t)
	switch {
	case d < 0:
		return "in " + human(-d)
	case d < time.Second:
		return "just now"
	}
	return human(d) + " ago"
}

// human writes d in at most two units: "45s", "3m20s", "2h", "26h5m", "3d4h".
func human(d time.Duration) string {
	d = d.Round(time.Second)
	two := func(a int64, ua string, b int64, ub string) string {
		s := strconv.FormatInt(a, 10) + ua
		if b > 0 {
			s += strconv.FormatInt(b, 10) + ub
		}
		return s
	}
	switch {
	case d < time.Minute:
		return strconv.FormatInt(int64(d/time.Second), 10) + "s"
	case d < time.Hour:
		return two(int64(d/time.Minute), "m", int64(d%time.Minute/time.Second), "s")
	case d < 48*time.Hour:
		return two(int64(d/time.Hour), "h", int64(d%time.Hour/time.Minute), "m")
	}
	return two(int64(d/(24*time.Hour)), "d", int64(d%(24*time.Hour)/time.Hour), "h")
}

func buildQuotas(s limits.Snapshot, now time.Time) *quotasView {
	qv := &quotasView{DryRun: s.DryRun}
	if !s.At.IsZero() {
		qv.At = s.At.UTC().Format(time.RFC3339)
		qv.Age = ago(now, s.At)
	}
	for _, src := range s.Sources {
		if !src.OK {
			qv.Failing = append(qv.Failing, src.Name+": "+src.Err)
		}
	}
	if len(qv.Failing) > 0 {
		qv.FailingFirst = qv.Failing[0]
	}
	for _, q := range s.Quotas {
		r := newQuotaRow(q)
		if q.LimitKnown && q.LimitSource == "config" {
			qv.ConfigLimits++
		}
		switch {
		case q.State == limits.StateNotInUse:
			qv.NotInUse = append(qv.NotInUse, r)
		case q.State == limits.StateUnknown:
			qv.Unknown = append(qv.Unknown, r)
		default:
			qv.Rows = append(qv.Rows, r)
		}
	}
	sort.SliceStable(qv.Rows, func(i, j int) bool {
		if qv.Rows[i].sev != qv.Rows[j].sev {
			return qv.Rows[i].sev < qv.Rows[j].sev
		}
		return qv.Rows[i].Service+"/"+qv.Rows[i].Code < qv.Rows[j].Service+"/"+qv.Rows[j].Code
	})
	for _, g := range s.Groups {
		r := feasRow{Name: g.Name, Size: fmt.Sprintf("%d → max %d", g.Current, g.Max), Why: g.Why}
		switch {
		case !g.Known:
			r.State, r.Class = "unknown", "unknown"
		case g.Feasible:
			r.State, r.Class = "fits", "healthy"
		default:
			r.State, r.Class = "does not fit", "bad"
		}
		qv.Groups = append(qv.Groups, r)
	}
	return qv
}

// newQuotaRow shows one quota's figures; what is unknown reads "?".
func newQuotaRow(q limits.QuotaStatus) quotaRow {
	r := quotaRow{Service: q.ServiceCode, Code: q.Code, Name: q.Name, State: strings.ReplaceAll(q.State.String(), "_", " "), Muted: q.Muted,
		Usage: "?", Limit: "?", Headroom: "?", LimitFromConfig: q.LimitKnown && q.LimitSource == "config"}
	if q.UsageKnown {
		r.Usage = strconv.FormatFloat(math.Round(q.Usage*100)/100, 'f', -1, 64)
	}
	if q.LimitKnown {
		r.Limit = strconv.FormatFloat(q.Limit, 'f', -1, 64)
	}
	if q.HeadroomKnown {
		r.Headroom = strconv.FormatFloat(q.Headroom*100, 'f', 1, 64) + "%"
	}
	switch q.State {
	case limits.StateCritical:
		r.Class, r.sev = "bad", 0
		if q.Limit == 0 {
			r.State = "over a limit of 0"
		}
	case limits.StateWarning:
		r.Class, r.sev = "suspect", 1
	case limits.StateOK, limits.StateNotInUse:
		r.Class, r.sev = "healthy", 3
	default:
		r.Class, r.sev = "unknown", 2
	}
	r.Forecast, r.ForecastWhy = forecastText(q.Forecast), q.Forecast.Why
	if q.Request != nil {
		r.Request = fmt.Sprintf("increase to %s: %s", strconv.FormatFloat(q.Request.Desired, 'f', -1, 64), strings.ToLower(q.Request.Status))
		if q.Request.Err != "" {
			r.Request += " (" + q.Request.Err + ")"
		}
	}
	return r
}

func forecastText(f limits.Forecast) string {
	switch {
	case !f.Known:
		return "not enough history"
	case f.Method == "at_limit":
		return "at the limit now"
	case !f.Growing:
		return "no exhaustion forecast"
	}
	late := "never"
	if f.Late != time.Duration(math.MaxInt64) {
		late = human(f.Late)
	}
	return fmt.Sprintf("exhausted in %s (%s–%s)", human(f.In), human(f.Early), late)
}

// fillLatency sets the instance's latency standing: its typical latency and
// ratio to its peers, amber while it stands out, red once bad by latency.
func fillLatency(r *instanceRow, ins healer.Insight) {
	s, os, ok := ins.StandingOf(r.ID)
	if !ok {
		return
	}
	r.LatencyTitle = s.Reason
	switch s.Status {
	case healer.LatencyNormal, healer.LatencyOutlier:
		r.Latency = fmt.Sprintf("%s, %.1f× peers", s.Typical.Round(time.Millisecond), s.Ratio)
		r.LatencyClass = "healthy"
		if s.Status == healer.LatencyOutlier {
			r.LatencyClass = "suspect"
			r.Latency += " (outlier)"
		}
		if os.Bad {
			r.LatencyClass = "bad"
		}
	default:
		r.Latency, r.LatencyClass = strings.ReplaceAll(string(s.Status), "_", " "), "unknown"
	}
}

// findings lists the latency finding, the vantage verdict and the
// detectors' scores of the last cycle.
func findings(ins healer.Insight) []findingRow {
	var out []findingRow
	if f := ins.Latency.Finding; f != "" {
		c := "healthy"
		switch f {
		case healer.FindingOutliers, healer.FindingServiceSlow, healer.FindingWidespread:
			c = "suspect"
		case healer.FindingDisabled, healer.FindingInsufficient:
			c = "unknown"
		}
		out = append(out, findingRow{What: "latency", Tag: string(f), Class: c, Text: ins.Latency.Reason})
	}
	if v := ins.Vantage.Verdict; v != "" {
		c := "healthy"
		switch {
		case healer.VantageNotifies(v):
			c = "bad"
		case v != healer.VantageOK && v != healer.VantageNoData:
			c = "suspect"
		}
		out = append(out, findingRow{What: "vantage", Tag: string(v), Class: c, Text: ins.Vantage.Evidence})
	}
	if l := ins.ScoreLine(); l != "" {
		out = append(out, findingRow{What: "detector scores", Tag: "marks", Class: "unknown", Text: l})
	}
	return out
}
