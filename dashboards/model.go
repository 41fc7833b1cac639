// Package dashboards generates medic's Grafana dashboards from code: plain
// structs marshalled to Grafana's dashboard JSON model, no SDK. The JSON
// files beside this package (medic-*.json) are the output of All(), kept in
// the repository for import and refreshed with
//
//	go test ./dashboards -update
//
// Every dashboard has a datasource variable (any Prometheus), job and
// instance variables (the medic deployments and replicas) and a service
// variable; every query is filtered by job and instance; every panel
// queries ${datasource}; panels sit in rows; no panel names an instance id.
// What every replica reports alike (the fleet, the guard, what was marked)
// is counted once whatever the number of replicas (see once).
package dashboards

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// DatasourceRef is what every panel and target points at: the datasource
// variable.
var DatasourceRef = &Ref{Type: "prometheus", UID: "${datasource}"}

// Ref names a datasource.
type Ref struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

// Dashboard is the subset of Grafana's dashboard model medic uses.
type Dashboard struct {
	UID           string      `json:"uid"`
	Title         string      `json:"title"`
	Description   string      `json:"description,omitempty"`
	Tags          []string    `json:"tags"`
	Timezone      string      `json:"timezone"`
	Editable      bool        `json:"editable"`
	GraphTooltip  int         `json:"graphTooltip"`
	Refresh       string      `json:"refresh"`
	SchemaVersion int         `json:"schemaVersion"`
	Version       int         `json:"version"`
	Time          TimeRange   `json:"time"`
	Templating    Templating  `json:"templating"`
	Annotations   Annotations `json:"annotations"`
	Links         []Link      `json:"links"`
	Panels        []Panel     `json:"panels"`
}

// TimeRange is the default time range.
type TimeRange struct {
	From string `json:"from"`
	To   string `json:"to"`
}

// Templating holds the dashboard variables.
type Templating struct {
	List []Variable `json:"list"`
}

// Annotations holds annotation queries (none; the list must exist).
type Annotations struct {
	List []any `json:"list"`
}

// Link is a dashboard link.
type Link struct {
	Title       string   `json:"title"`
	Type        string   `json:"type"`
	Tags        []string `json:"tags"`
	AsDropdown  bool     `json:"asDropdown"`
	IncludeVars bool     `json:"includeVars"`
	KeepTime    bool     `json:"keepTime"`
}

// Variable is a template variable.
type Variable struct {
	Name        string         `json:"name"`
	Label       string         `json:"label"`
	Type        string         `json:"type"`
	Description string         `json:"description,omitempty"`
	Query       string         `json:"query"`
	Definition  string         `json:"definition,omitempty"`
	Datasource  *Ref           `json:"datasource,omitempty"`
	Refresh     int            `json:"refresh"`
	Regex       string         `json:"regex"`
	Sort        int            `json:"sort"`
	IncludeAll  bool           `json:"includeAll"`
	Multi       bool           `json:"multi"`
	AllValue    string         `json:"allValue,omitempty"`
	Hide        int            `json:"hide"`
	Current     map[string]any `json:"current"`
	Options     []any          `json:"options"`
}

// Panel is one panel.
type Panel struct {
	ID              int              `json:"id"`
	Type            string           `json:"type"`
	Title           string           `json:"title"`
	Description     string           `json:"description,omitempty"`
	Datasource      *Ref             `json:"datasource"`
	GridPos         GridPos          `json:"gridPos"`
	Interval        string           `json:"interval,omitempty"`
	Targets         []Target         `json:"targets"`
	FieldConfig     FieldConfig      `json:"fieldConfig"`
	Options         map[string]any   `json:"options"`
	Transformations []Transformation `json:"transformations,omitempty"`
	// Collapsed and Panels are a row's (Type "row").
	Collapsed *bool   `json:"collapsed,omitempty"`
	Panels    []Panel `json:"panels,omitempty"`
}

// GridPos places a panel on the 24-column grid.
type GridPos struct {
	H int `json:"h"`
	W int `json:"w"`
	X int `json:"x"`
	Y int `json:"y"`
}

// Target is one PromQL query of a panel.
type Target struct {
	RefID        string `json:"refId"`
	Datasource   *Ref   `json:"datasource"`
	Expr         string `json:"expr"`
	LegendFormat string `json:"legendFormat,omitempty"`
	Format       string `json:"format"` // time_series | table | heatmap
	Instant      bool   `json:"instant"`
	Range        bool   `json:"range"`
	Interval     string `json:"interval,omitempty"`
}

// FieldConfig holds field defaults and overrides.
type FieldConfig struct {
	Defaults  FieldDefaults `json:"defaults"`
	Overrides []Override    `json:"overrides"`
}

// FieldDefaults are the defaults of every field of a panel.
type FieldDefaults struct {
	Unit       string         `json:"unit,omitempty"`
	Decimals   *int           `json:"decimals,omitempty"`
	Min        *float64       `json:"min,omitempty"`
	Max        *float64       `json:"max,omitempty"`
	Color      map[string]any `json:"color,omitempty"`
	Thresholds *Thresholds    `json:"thresholds,omitempty"`
	Mappings   []any          `json:"mappings"`
	Custom     map[string]any `json:"custom,omitempty"`
}

// Thresholds colour values by steps.
type Thresholds struct {
	Mode  string `json:"mode"`
	Steps []Step `json:"steps"`
}

// Step is one threshold step; a nil Value is the base.
type Step struct {
	Color string   `json:"color"`
	Value *float64 `json:"value"`
}

// Override changes properties of matching fields.
type Override struct {
	Matcher    Matcher    `json:"matcher"`
	Properties []Property `json:"properties"`
}

// Matcher selects fields.
type Matcher struct {
	ID      string `json:"id"`
	Options any    `json:"options"`
}

// Property is one overridden property.
type Property struct {
	ID    string `json:"id"`
	Value any    `json:"value"`
}

// Transformation is a data transformation of a table panel.
type Transformation struct {
	ID      string         `json:"id"`
	Options map[string]any `json:"options"`
}

// JSON renders d as indented JSON with a trailing newline.
func (d Dashboard) JSON() ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(d); err != nil {
		return nil, fmt.Errorf("dashboard %s: %w", d.UID, err)
	}
	return b.Bytes(), nil
}

// FileName is where d is kept, relative to this package.
func (d Dashboard) FileName() string { return d.UID + ".json" }
