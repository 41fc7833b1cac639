package dashboards

import "fmt"

// All returns medic's dashboards, in a stable order.
func All() []Dashboard {
	return []Dashboard{Overview(), Probes(), Limits()}
}

// scope is the matcher every query carries: the medic deployment (job)
// and the replicas (instance) chosen in the dashboard's variables.
const scope = `job=~"$job",instance=~"$instance"`

// svc is the matcher every service-scoped query carries.
const svc = scope + `,service=~"$service"`

// sel is metric{scope,extra...}.
func sel(metric string, extra ...string) string {
	m := scope
	for _, e := range extra {
		m += "," + e
	}
	return metric + "{" + m + "}"
}

// once aggregates expr so that a fact every replica of a deployment
// reports (the fleet, the guard, what was marked) counts once: the largest
// value any replica reports, per job and labels. Leader and standby probe
// and judge the same fleet and export the same series; only their
// instance label differs.
func once(labels, expr string) string {
	return "max by (job, " + labels + ") (" + expr + ")"
}

func newDashboard(uid, title, description string) Dashboard {
	return Dashboard{
		UID:           uid,
		Title:         title,
		Description:   description,
		Tags:          []string{"medic"},
		Timezone:      "utc",
		Editable:      true,
		GraphTooltip:  1, // shared crosshair
		Refresh:       "30s",
		SchemaVersion: 39,
		Version:       1,
		Time:          TimeRange{From: "now-6h", To: "now"},
		Templating: Templating{List: []Variable{
			{
				Name: "datasource", Label: "Data source", Type: "datasource", Query: "prometheus",
				Refresh: 1, Current: map[string]any{}, Options: []any{},
			},
			queryVariable("job", "Job", "medic deployments: the scrape jobs with medic_build_info (the rules select job=\"medic\").",
				"label_values(medic_build_info, job)"),
			queryVariable("instance", "Replica", "medic replicas (scrape targets) of the chosen jobs: leader and standbys.",
				`label_values(medic_build_info{job=~"$job"}, instance)`),
			queryVariable("service", "Service", "Services from medic's config.",
				`label_values(medic_instances{`+scope+`}, service)`),
		}},
		Annotations: Annotations{List: []any{}},
		Links: []Link{{Title: "medic", Type: "dashboards", Tags: []string{"medic"},
			AsDropdown: true, IncludeVars: true, KeepTime: true}},
	}
}

// queryVariable is a multi-value variable over label values, All by
// default, refreshed when the time range changes.
func queryVariable(name, label, description, query string) Variable {
	return Variable{
		Name: name, Label: label, Type: "query", Description: description,
		Query: query, Definition: query, Datasource: DatasourceRef,
		Refresh: 2, Sort: 1, IncludeAll: true, Multi: true, AllValue: ".+",
		Current: map[string]any{"selected": true, "text": []string{"All"}, "value": []string{"$__all"}},
		Options: []any{},
	}
}

// grid places panels left to right, top to bottom, on 24 columns.
type grid struct {
	d       *Dashboard
	x, y, h int
}

// row starts a new row of panels under a row header.
func (g *grid) row(title string) {
	g.x, g.y, g.h = 0, g.y+g.h, 0
	collapsed := false
	g.d.Panels = append(g.d.Panels, Panel{ID: len(g.d.Panels) + 1, Type: "row", Title: title,
		Datasource: DatasourceRef, GridPos: GridPos{H: 1, W: 24, X: 0, Y: g.y}, Targets: []Target{},
		Collapsed: &collapsed, Panels: []Panel{}})
	g.y++
}

func (g *grid) add(w, h int, p Panel) {
	if g.x+w > 24 {
		g.x, g.y, g.h = 0, g.y+g.h, 0
	}
	p.ID = len(g.d.Panels) + 1
	p.GridPos = GridPos{H: h, W: w, X: g.x, Y: g.y}
	p.Datasource = DatasourceRef
	for i := range p.Targets {
		p.Targets[i].RefID = string(rune('A' + i))
		p.Targets[i].Datasource = DatasourceRef
		if p.Targets[i].Format == "" {
			p.Targets[i].Format = "time_series"
		}
		if !p.Targets[i].Instant {
			p.Targets[i].Range = true
		}
	}
	if p.FieldConfig.Defaults.Mappings == nil {
		p.FieldConfig.Defaults.Mappings = []any{}
	}
	if p.FieldConfig.Overrides == nil {
		p.FieldConfig.Overrides = []Override{}
	}
	g.d.Panels = append(g.d.Panels, p)
	g.x += w
	if h > g.h {
		g.h = h
	}
}

// q is a range query with a legend.
func q(expr, legend string) Target { return Target{Expr: expr, LegendFormat: legend} }

// instant is an instant query shown as a table.
func instant(expr string) Target { return Target{Expr: expr, Format: "table", Instant: true} }

func f(v float64) *float64 { return &v }

func thresholds(base string, steps ...any) *Thresholds {
	t := &Thresholds{Mode: "absolute", Steps: []Step{{Color: base}}}
	for i := 0; i+1 < len(steps); i += 2 {
		t.Steps = append(t.Steps, Step{Value: f(steps[i].(float64)), Color: steps[i+1].(string)})
	}
	return t
}

func legendOpts(calcs ...string) map[string]any {
	if calcs == nil {
		calcs = []string{}
	}
	return map[string]any{
		"legend":  map[string]any{"displayMode": "table", "placement": "right", "showLegend": true, "calcs": calcs},
		"tooltip": map[string]any{"mode": "multi", "sort": "desc"},
	}
}

func timeseries(title, description, unit string, targets ...Target) Panel {
	return Panel{Type: "timeseries", Title: title, Description: description, Targets: targets,
		FieldConfig: FieldConfig{Defaults: FieldDefaults{Unit: unit,
			Custom: map[string]any{"drawStyle": "line", "lineWidth": 1, "fillOpacity": 10, "showPoints": "never", "spanNulls": false}}},
		Options: legendOpts("lastNotNull", "max")}
}

// stacked is a stacked bar/area time series for counts.
func stacked(title, description, unit, draw string, targets ...Target) Panel {
	p := timeseries(title, description, unit, targets...)
	p.FieldConfig.Defaults.Custom = map[string]any{"drawStyle": draw, "lineWidth": 1, "fillOpacity": 70,
		"showPoints": "never", "stacking": map[string]any{"mode": "normal", "group": "A"}}
	p.Options = legendOpts("lastNotNull", "sum")
	return p
}

func stat(title, description, unit string, th *Thresholds, targets ...Target) Panel {
	return Panel{Type: "stat", Title: title, Description: description, Targets: targets,
		FieldConfig: FieldConfig{Defaults: FieldDefaults{Unit: unit, Thresholds: th,
			Color: map[string]any{"mode": "thresholds"}}},
		Options: map[string]any{"colorMode": "background", "graphMode": "none", "textMode": "value_and_name",
			"justifyMode": "auto", "orientation": "auto",
			"reduceOptions": map[string]any{"calcs": []string{"lastNotNull"}, "fields": "", "values": false}}}
}

func table(title, description, unit string, targets ...Target) Panel {
	return Panel{Type: "table", Title: title, Description: description, Targets: targets,
		FieldConfig: FieldConfig{Defaults: FieldDefaults{Unit: unit, Custom: map[string]any{"align": "auto", "filterable": true}}},
		Options:     map[string]any{"showHeader": true, "cellHeight": "sm", "footer": map[string]any{"show": false}},
		Transformations: []Transformation{
			{ID: "merge", Options: map[string]any{}},
			{ID: "organize", Options: map[string]any{"excludeByName": map[string]bool{"Time": true}}},
		}}
}

// sortDesc sorts a table by field, largest first.
func sortDesc(p Panel, field string) Panel {
	p.Transformations = append(p.Transformations, Transformation{ID: "sortBy",
		Options: map[string]any{"sort": []map[string]any{{"field": field, "desc": true}}}})
	return p
}

func heatmap(title, description, expr string) Panel {
	return Panel{Type: "heatmap", Title: title, Description: description,
		Targets: []Target{{Expr: expr, LegendFormat: "{{le}}", Format: "heatmap"}},
		FieldConfig: FieldConfig{Defaults: FieldDefaults{
			Custom: map[string]any{"scaleDistribution": map[string]any{"type": "linear"}}}},
		Options: map[string]any{
			"calculate": false,
			"cellGap":   1,
			"color":     map[string]any{"mode": "scheme", "scheme": "Oranges", "steps": 64, "exponent": 0.5, "fill": "dark-orange", "reverse": false},
			"yAxis":     map[string]any{"axisPlacement": "left", "unit": "s", "reverse": false},
			"rowsFrame": map[string]any{"layout": "auto"},
			"tooltip":   map[string]any{"mode": "single", "yHistogram": true},
			"legend":    map[string]any{"show": true},
			"exemplars": map[string]any{"color": "rgba(255,0,255,0.7)"},
		}}
}

func stateTimeline(title, description string, mappings []any, th *Thresholds, targets ...Target) Panel {
	return Panel{Type: "state-timeline", Title: title, Description: description, Targets: targets,
		FieldConfig: FieldConfig{Defaults: FieldDefaults{Mappings: mappings, Thresholds: th,
			Color:  map[string]any{"mode": "thresholds"},
			Custom: map[string]any{"fillOpacity": 80, "lineWidth": 0}}},
		Options: map[string]any{"showValue": "never", "mergeValues": true, "rowHeight": 0.9,
			"legend":  map[string]any{"displayMode": "list", "placement": "bottom", "showLegend": true},
			"tooltip": map[string]any{"mode": "single", "sort": "none"}}}
}

// valueText maps numeric values to words ("0" → "no").
func valueText(pairs ...string) []any {
	opts := map[string]any{}
	for i := 0; i+2 < len(pairs); i += 3 {
		opts[pairs[i]] = map[string]any{"text": pairs[i+1], "color": pairs[i+2], "index": i / 3}
	}
	return []any{map[string]any{"type": "value", "options": opts}}
}

// rate is the per-second rate of counter sel over Grafana's rate interval.
func rate(sel string) string { return fmt.Sprintf("rate(%s[$__rate_interval])", sel) }
