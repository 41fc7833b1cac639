package discovery

import (
	"testing"
	"time"
)

// TestTrackLifecycle: InServiceSince across refreshes, one row per
// transition; each row is a sequence of looks at one instance.
func TestTrackLifecycle(t *testing.T) {
	launch := time.Date(2026, 3, 1, 11, 0, 0, 0, time.UTC)
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	at := func(i int) time.Time { return t0.Add(time.Duration(i) * 10 * time.Second) }
	type look struct {
		state string
		want  time.Time // InServiceSince after this look
	}
	tests := []struct {
		desc         string
		groupKnown   bool // the group was seen before the first look
		noLaunchTime bool
		looks        []look
	}{
		{desc: "first sight InService at start: since launch",
			looks: []look{{"InService", launch}, {"InService", launch}}},
		{desc: "first sight InService at start, no launch time known: since that refresh",
			noLaunchTime: true, looks: []look{{"InService", at(0)}}},
		{desc: "first sight InService in a group seen before (attached): since that refresh",
			groupKnown: true, looks: []look{{"InService", at(0)}, {"InService", at(0)}}},
		{desc: "Pending → InService: since the refresh that saw it InService",
			looks: []look{{"Pending", time.Time{}}, {"Pending:Wait", time.Time{}}, {"InService", at(2)}, {"InService", at(2)}}},
		{desc: "InService → Standby → InService: grace again from the return",
			looks: []look{{"InService", launch}, {"Standby", time.Time{}}, {"Standby", time.Time{}}, {"InService", at(3)}, {"InService", at(3)}}},
		{desc: "InService → Detaching: not InService, zero",
			looks: []look{{"InService", launch}, {"Detaching", time.Time{}}}},
		{desc: "Warmed:Running → InService (from a warm pool): since that refresh",
			looks: []look{{"Warmed:Running", time.Time{}}, {"InService", at(1)}}},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			mem := map[string]seen{}
			known := tc.groupKnown
			for i, l := range tc.looks {
				inst := Instance{ID: "i-1", LifecycleState: l.state, LaunchTime: launch}
				if tc.noLaunchTime {
					inst.LaunchTime = time.Time{}
				}
				mem = map[string]seen{"i-1": trackLifecycle(mem, &inst, known, at(i))}
				known = true
				if !inst.InServiceSince.Equal(l.want) {
					t.Errorf("look %d (%s): InServiceSince = %v, want %v", i, l.state, inst.InServiceSince, l.want)
				}
			}
		})
	}
}
