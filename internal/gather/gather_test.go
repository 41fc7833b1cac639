package gather

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// families is a Gatherer of empty gauge families with the given names and
// help, and err.
type families struct {
	names []string
	help  string
	err   error
}

func (f families) Gather() ([]*dto.MetricFamily, error) {
	var out []*dto.MetricFamily
	for _, n := range f.names {
		out = append(out, &dto.MetricFamily{Name: &n, Help: &f.help, Type: dto.MetricType_GAUGE.Enum()})
	}
	return out, f.err
}

// TestMerge: the families of every gatherer, sorted by name; a name in two
// is served once and fails the gather.
func TestMerge(t *testing.T) {
	for _, tc := range []struct {
		desc    string
		gs      []prometheus.Gatherer
		want    []string // name and help of each family
		wantErr []string // each in the error; none: no error
	}{
		{desc: "nothing to merge"},
		{
			desc: "sorted by name across gatherers",
			gs:   []prometheus.Gatherer{families{names: []string{"b", "d"}, help: "1"}, families{names: []string{"a", "c", "e"}, help: "2"}},
			want: []string{"a 2", "b 1", "c 2", "d 1", "e 2"},
		},
		{
			desc:    "a name in both: the first gatherer's kept, an error",
			gs:      []prometheus.Gatherer{families{names: []string{"b", "x"}, help: "1"}, families{names: []string{"a", "x"}, help: "2"}},
			want:    []string{"a 2", "b 1", "x 1"},
			wantErr: []string{"metric family x gathered twice"},
		},
		{
			desc:    "a gatherer's error passed on with its families",
			gs:      []prometheus.Gatherer{families{names: []string{"b"}, help: "1", err: errors.New("collect b: boom")}, families{names: []string{"a"}, help: "2"}},
			want:    []string{"a 2", "b 1"},
			wantErr: []string{"collect b: boom"},
		},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			mfs, err := Merge(tc.gs...).Gather()
			var got []string
			for _, mf := range mfs {
				got = append(got, mf.GetName()+" "+mf.GetHelp())
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("families %q, want %q", got, tc.want)
			}
			switch {
			case len(tc.wantErr) == 0 && err != nil:
				t.Errorf("error %v, want none", err)
			case len(tc.wantErr) > 0 && err == nil:
				t.Errorf("no error, want one naming %q", tc.wantErr)
			}
			for _, w := range tc.wantErr {
				if err != nil && !strings.Contains(err.Error(), w) {
					t.Errorf("error %q, want it to name %q", err, w)
				}
			}
		})
	}
}
