package statuspage

import (
	"bufio"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/go-kit/log/level"

	"github.com/medic-sre/medic/alerts"
	"github.com/medic-sre/medic/config"
	"github.com/medic-sre/medic/controller"
	"github.com/medic-sre/medic/discovery"
	"github.com/medic-sre/medic/healer"
	"github.com/medic-sre/medic/internal/logkeys"
	"github.com/medic-sre/medic/probes"
)

// serveDebug prints one target's settings, its judged state (for an
// instance) and every kept probe result as text/plain; 404 for a key no
// service has. Probe headers are never printed: they may hold credentials.
func (p *Page) serveDebug(w http.ResponseWriter, key string) {
	now := p.now()
	sts := p.src.Statuses()
	st, t := findTarget(sts, key)
	securityHeaders(w.Header())
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if t == nil {
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprintf(w, "unknown target %q: no configured service probes it.\nKeys look like <service>/endpoint, <service>/<instance id> or <service>/static/<host:port>.\n", key)
		return
	}
	bw := bufio.NewWriter(w)
	writeDebug(bw, st, t, st.History(t.Key), now)
	if err := bw.Flush(); err != nil {
		level.Debug(p.logger).Log(logkeys.Msg, "writing the debug view failed", logkeys.Target, key, logkeys.Err, err)
	}
}

func findTarget(sts []controller.Status, key string) (*controller.Status, *probes.Target) {
	if key == "" {
		return nil, nil
	}
	for i := range sts {
		for j := range sts[i].Targets {
			if sts[i].Targets[j].Key == key {
				return &sts[i], &sts[i].Targets[j]
			}
		}
	}
	return nil, nil
}

// lbDebug is the target groups' view of an instance, one "name state
// (reason)" per registration; evidence only, medic does not act on it.
func lbDebug(hs []discovery.TargetHealth) string {
	if len(hs) == 0 {
		return "no target group reports it"
	}
	parts := make([]string, len(hs))
	for i, h := range hs {
		parts[i] = h.TargetGroup + " " + h.State
		if h.Reason != "" {
			parts[i] += " (" + h.Reason + ")"
		}
	}
	return strings.Join(parts, ", ") + " (evidence only, not acted on)"
}

func writeDebug(w *bufio.Writer, st *controller.Status, t *probes.Target, h []probes.Result, now time.Time) {
	fmt.Fprintf(w, "Target:   %s\n", t.Key)
	fmt.Fprintf(w, "Service:  %s\n", t.Service)
	switch {
	case t.InstanceID != "":
		fmt.Fprintf(w, "Instance: %s (AZ %s)\n", t.InstanceID, t.AZ)
	case st.Service.Endpoint != "" && t.Address == st.Service.Endpoint:
		fmt.Fprintf(w, "Kind:     service endpoint (through the load balancer)\n")
	default:
		fmt.Fprintf(w, "Kind:     static target (probed, never acted on)\n")
	}
	fmt.Fprintf(w, "Address:  %s\n", config.RedactURL(t.Address))
	s := t.Probe()
	typ := s.Type
	if typ == "" {
		typ = "http"
	}
	fmt.Fprintf(w, "Probe:    %s", typ)
	if typ == "http" {
		url := t.Address // endpoints: already a URL
		if !strings.Contains(url, "://") {
			url = s.Scheme + "://" + t.Address + s.Path
		}
		fmt.Fprintf(w, " %s %s", s.Method, config.RedactURL(url))
		if len(s.ExpectStatus) > 0 {
			fmt.Fprintf(w, ", expect status %v", s.ExpectStatus)
		}
		if s.BodyMustMatch != nil && s.BodyMustMatch.Regexp != nil {
			fmt.Fprintf(w, ", body must match %q", s.BodyMustMatch.Source)
		}
	}
	fmt.Fprintf(w, ", every %s, timeout %s (headers not shown)\n", s.Interval, s.Timeout)
	if len(t.Allowed) > 0 {
		fmt.Fprintf(w, "Allowed:  %v\n", t.Allowed)
	}
	if t.InstanceID != "" {
		var vd *healer.Verdict
		for i := range st.Report.Verdicts {
			if st.Report.Verdicts[i].Instance.ID == t.InstanceID {
				vd = &st.Report.Verdicts[i]
				break
			}
		}
		if vd != nil {
			in := vd.Instance
			fmt.Fprintf(w, "Group:    %s, %s, %s per the group\n", in.Group, in.LifecycleState, in.HealthStatus)
			fmt.Fprintf(w, "LB view:  %s\n", lbDebug(in.LBHealth))
			fmt.Fprintf(w, "Judged:   %s: %s\n", vd.State, vd.Reason)
			if !vd.Since.IsZero() {
				fmt.Fprintf(w, "Since:    %s (%s)\n", vd.Since.UTC().Format(time.RFC3339Nano), ago(now, vd.Since))
			}
		} else {
			fmt.Fprintf(w, "Judged:   not in the last heal cycle\n")
		}
		if s, os, ok := st.Report.Insight.StandingOf(t.InstanceID); ok {
			fmt.Fprintf(w, "Latency:  %s: %s\n", s.Status, s.Reason)
			if os.Degraded {
				fmt.Fprintf(w, "Outlier:  %s\n", os.Reason)
			}
		}
		for _, rf := range st.Report.Decision.Refusals {
			for _, id := range rf.Instances {
				if id == t.InstanceID {
					fmt.Fprintf(w, "Guard:    refused (%s): %s\n", rf.Reason, rf.Detail)
				}
			}
		}
		for i := range st.Events { // newest first: its latest marking
			if e := &st.Events[i]; e.Kind == alerts.InstanceMarked && e.Subject == t.InstanceID {
				fmt.Fprintf(w, "Action:   %s (%s)\n", e.Action, ago(now, e.Time))
				break
			}
		}
	}
	fmt.Fprintf(w, "Now:      %s\n\n", now.UTC().Format(time.RFC3339Nano))

	if len(h) == 0 {
		fmt.Fprintf(w, "No probe result yet.\n")
	} else {
		fmt.Fprintf(w, "Last %d probes, oldest first:\n", len(h))
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "start\tduration\tlateness\tstatus\tsuccess\treason")
		for _, r := range h {
			status := "-"
			if r.StatusCode != 0 {
				status = strconv.Itoa(r.StatusCode)
			}
			reason := r.Reason
			if reason == "" {
				reason = "-"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%t\t%s\n",
				r.Start.UTC().Format("2006-01-02T15:04:05.000Z07:00"), r.Duration, r.Lateness, status, r.Success, reason)
		}
		_ = tw.Flush()
	}
	fmt.Fprintf(w, "\nLogs: medic keeps no per-probe log; its log lines about this target carry %s=%q.\n", logkeys.Target, t.Key)
}
