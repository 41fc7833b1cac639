package healer

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/arczonalshift"
	arctypes "github.com/aws/aws-sdk-go-v2/service/arczonalshift/types"

	"github.com/medic-sre/medic/discovery"
	"github.com/medic-sre/medic/internal/emulator"
)

// zh is a zone's health in shorthand: "a:1/4" is us-east-1a with 1 of 4
// probed instances bad.
func zh(specs ...string) []ZoneHealth {
	var out []ZoneHealth
	for _, s := range specs {
		var z ZoneHealth
		var name string
		if _, err := fmt.Sscanf(strings.Replace(s, ":", " ", 1), "%s %d/%d", &name, &z.Bad, &z.Probed); err != nil {
			panic(s + ": " + err.Error())
		}
		z.AZ = "us-east-1" + name
		out = append(out, z)
	}
	return out
}

func TestDecideZonal(t *testing.T) {
	on := ZonalPolicy{Enabled: true, Expiry: 2 * time.Hour}
	mine := ActiveShift{ID: "zs-1", AZ: "us-east-1a", Started: latNow.Add(-10 * time.Minute), Expires: latNow.Add(time.Hour), ByMedic: true}
	theirs := ActiveShift{ID: "zs-9", AZ: "us-east-1b", Started: latNow.Add(-time.Minute), Expires: latNow.Add(time.Hour)}
	newer := mine
	newer.ID, newer.Started = "zs-2", latNow.Add(-time.Minute)
	tests := []struct {
		desc   string
		zones  []ZoneHealth
		active []ActiveShift
		policy ZonalPolicy
		action ZonalAction
		reason ZonalReason
		az     string
	}{
		{"all zones fine", zh("a:0/3", "b:0/3"), nil, on, ZonalNone, ZoneHealthy, ""},
		{"one zone impaired, the other fine: start", zh("a:3/4", "b:0/3"), nil, on, ZonalStart, ZoneImpaired, "us-east-1a"},
		{"exactly half of the zone, 2 bad: impaired", zh("a:2/4", "b:0/3"), nil, on, ZonalStart, ZoneImpaired, "us-east-1a"},
		{"under half of the zone: not impaired", zh("a:2/5", "b:0/3"), nil, on, ZonalNone, ZoneHealthy, ""},
		{"a single bad instance is not a zone", zh("a:1/1", "b:0/3"), nil, on, ZonalNone, ZoneHealthy, ""},
		{"a single zone probed: nothing to shift to", zh("a:3/3"), nil, on, ZonalNone, ZoneHealthy, ""},
		{"impaired, but the other zone has a bad instance: never", zh("a:3/4", "b:1/3"), nil, on, ZonalNone, ZoneOthersUnhealthy, "us-east-1a"},
		{"two zones impaired: never", zh("a:3/4", "b:2/3", "c:0/3"), nil, on, ZonalNone, ZoneOthersUnhealthy, "us-east-1a"},
		{"impaired but not opted in: report only", zh("a:3/4", "b:0/3"), nil, ZonalPolicy{}, ZonalNone, ZoneImpairedReportOnly, "us-east-1a"},
		{"someone else's shift active: at most one, and never theirs", zh("a:3/4", "b:0/3"), []ActiveShift{theirs}, on, ZonalNone, ZoneShiftByOthers, "us-east-1b"},
		{"ours and someone else's: still hands off", zh("a:0/4", "b:0/3"), []ActiveShift{mine, theirs}, on, ZonalNone, ZoneShiftByOthers, "us-east-1b"},
		{"ours active, zone still impaired: keep", zh("a:3/4", "b:0/3"), []ActiveShift{mine}, on, ZonalKeep, ZoneStillImpaired, "us-east-1a"},
		{"ours active, zone partly better but one bad: keep", zh("a:1/4", "b:0/3"), []ActiveShift{mine}, on, ZonalKeep, ZoneStillImpaired, "us-east-1a"},
		{"ours active, zone not probed: keep, no evidence", zh("b:0/3"), []ActiveShift{mine}, on, ZonalKeep, ZoneStillImpaired, "us-east-1a"},
		{"ours active, zone recovered: cancel", zh("a:0/4", "b:0/3"), []ActiveShift{mine}, on, ZonalCancel, ZoneRecovered, "us-east-1a"},
		{"ours active, other zones now bad too: cancel", zh("a:3/4", "b:1/3"), []ActiveShift{mine}, on, ZonalCancel, ZoneOthersUnhealthy, "us-east-1a"},
		{"ours active, turned off: cancel", zh("a:3/4", "b:0/3"), []ActiveShift{mine}, ZonalPolicy{}, ZonalCancel, ZoneShiftDisabled, "us-east-1a"},
		{"two of ours: cancel the newer", zh("a:3/4", "b:0/3"), []ActiveShift{newer, mine}, on, ZonalCancel, ZoneExtraShift, "us-east-1a"},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			d := DecideZonal(ZonalInput{Zones: tt.zones, Active: tt.active, Policy: tt.policy, Now: latNow})
			if d.Action != tt.action || d.Reason != tt.reason || d.AZ != tt.az {
				t.Errorf("got %s %s %q, want %s %s %q (%s)", d.Action, d.Reason, d.AZ, tt.action, tt.reason, tt.az, d.Detail)
			}
			if d.Detail == "" {
				t.Error("no detail")
			}
			if d.Action == ZonalStart && d.ExpiresIn != 2*time.Hour {
				t.Errorf("expires in %s", d.ExpiresIn)
			}
			if tt.reason == ZoneExtraShift && d.ShiftID != "zs-2" {
				t.Errorf("cancels %s, want the newer zs-2", d.ShiftID)
			}
		})
	}
}

func TestExpiresIn(t *testing.T) {
	tests := []struct {
		desc string
		d    time.Duration
		want string
	}{
		{"default", 0, "1h"},
		{"whole hours", 2 * time.Hour, "2h"},
		{"minutes", 90 * time.Minute, "90m"},
		{"rounded to the minute", 90*time.Second + time.Millisecond, "2m"},
		{"at least a minute", time.Second, "1m"},
		{"at most 72h", 100 * time.Hour, "72h"},
	}
	for _, tt := range tests {
		if got := expiresIn(tt.d); got != tt.want {
			t.Errorf("%s: %q, want %q", tt.desc, got, tt.want)
		}
	}
}

func TestZoneHealthFrom(t *testing.T) {
	v := func(az string, s State) Verdict { return Verdict{Instance: discovery.Instance{AZ: az}, State: s} }
	got := ZoneHealthFrom([]Verdict{v("b", Healthy), v("a", Bad), v("a", Suspect), v("a", Grace), v("c", Unknown)})
	want := []ZoneHealth{{AZ: "a", Probed: 2, Bad: 1}, {AZ: "b", Probed: 1}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

// newFakeARC starts the FAKE ARC zonal shift server (emulator.FakeARC: moto
// lacks the API) and returns it with the real SDK client pointed at it
// through BaseEndpoint.
func newFakeARC(t *testing.T, now func() time.Time) (*emulator.FakeARC, *arczonalshift.Client) {
	f := emulator.StartFakeARCT(t, now)
	c := arczonalshift.New(arczonalshift.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(f.URL()),
		Credentials:  credentials.NewStaticCredentialsProvider("AKIDFAKE", "fake-secret", ""),
	})
	return f, c
}

// TestZonalShiftOnFakeARC: failures clustered in one zone start one zonal
// shift (on the fake ARC, through the real SDK client), the shift is kept
// while the zone stays impaired, and cancelled when it recovers.
func TestZonalShiftOnFakeARC(t *testing.T) {
	ctx := context.Background()
	now := latNow
	fake, client := newFakeARC(t, func() time.Time { return now })
	const lb = "arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/app/web/0123456789abcdef"
	act := ZonalShiftActuator{Client: client, Resource: lb, ZoneIDs: map[string]string{"us-east-1a": "use1-az1", "us-east-1b": "use1-az2"}}
	policy := ZonalPolicy{Enabled: true, Expiry: 30 * time.Minute}

	cycle := func(zones []ZoneHealth) (ZonalDecision, string) {
		t.Helper()
		active, err := act.Active(ctx)
		if err != nil {
			t.Fatal(err)
		}
		d := DecideZonal(ZonalInput{Zones: zones, Active: active, Policy: policy, Now: now})
		id, err := act.Apply(ctx, d)
		if err != nil {
			t.Fatal(err)
		}
		return d, id
	}

	d, id := cycle(zh("a:3/4", "b:0/4"))
	if d.Action != ZonalStart || id != "zs-1" {
		t.Fatalf("impaired zone: %s %q (%s)", d.Action, id, d.Detail)
	}
	active, err := act.Active(ctx)
	if err != nil || len(active) != 1 {
		t.Fatalf("active after start: %+v, %v", active, err)
	}
	if a := active[0]; a.AZ != "us-east-1a" || !a.ByMedic || !a.Expires.Equal(now.Add(30*time.Minute)) || !a.Started.Equal(now) {
		t.Errorf("active shift %+v", a)
	}

	now = now.Add(time.Minute)
	if d, _ = cycle(zh("a:3/4", "b:0/4")); d.Action != ZonalKeep {
		t.Fatalf("still impaired: %s (%s)", d.Action, d.Detail)
	}

	// A second start for the same resource is what ARC refuses: the fake does too.
	_, err = act.Apply(ctx, ZonalDecision{Action: ZonalStart, AZ: "us-east-1b", ExpiresIn: time.Hour, Detail: "test"})
	var conflict *arctypes.ConflictException
	if !errors.As(err, &conflict) || conflict.Reason != arctypes.ConflictExceptionReasonSimultaneousZonalShiftsConflict {
		t.Errorf("second start: %v, want a SimultaneousZonalShiftsConflict", err)
	}

	now = now.Add(time.Minute)
	d, id = cycle(zh("a:0/4", "b:0/4"))
	if d.Action != ZonalCancel || d.Reason != ZoneRecovered || id != "zs-1" {
		t.Fatalf("recovered: %s %s %q (%s)", d.Action, d.Reason, id, d.Detail)
	}
	if active, err = act.Active(ctx); err != nil || len(active) != 0 {
		t.Errorf("active after cancel: %+v, %v", active, err)
	}
	shifts := fake.Shifts()
	if len(shifts) != 1 || shifts[0].AwayFrom != "use1-az1" || shifts[0].Status != "CANCELED" || shifts[0].Resource != lb ||
		!strings.HasPrefix(shifts[0].Comment, "medic: us-east-1a is impaired: 3 of 4 probed instances bad") {
		t.Errorf("shifts on the fake: %+v", shifts)
	}
	want := []string{"GET /zonalshifts", "POST /zonalshifts", "GET /zonalshifts", "GET /zonalshifts", "POST /zonalshifts",
		"GET /zonalshifts", "DELETE /zonalshifts/zs-1", "GET /zonalshifts"}
	if got := fake.Calls(); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("calls on the fake:\n got %q\nwant %q", got, want)
	}
}

// TestZonalShiftDryRun: with the dry-run wrapper nothing reaches ARC but the
// listing.
func TestZonalShiftDryRun(t *testing.T) {
	fake, client := newFakeARC(t, func() time.Time { return latNow })
	act := ZonalShiftActuator{Client: DryRunZonalShifter(client, nil), Resource: "arn:lb", ZoneIDs: map[string]string{"us-east-1a": "use1-az1"}}
	ctx := context.Background()
	tests := []struct {
		desc string
		d    ZonalDecision
		want string
	}{
		{"start", ZonalDecision{Action: ZonalStart, AZ: "us-east-1a", ExpiresIn: time.Hour, Detail: "test"}, "dry-run"},
		{"cancel", ZonalDecision{Action: ZonalCancel, ShiftID: "zs-7"}, "zs-7"},
	}
	for _, tt := range tests {
		if id, err := act.Apply(ctx, tt.d); err != nil || id != tt.want {
			t.Errorf("%s: %q, %v", tt.desc, id, err)
		}
	}
	if active, err := act.Active(ctx); err != nil || len(active) != 0 {
		t.Errorf("active %v, %v", active, err)
	}
	if got := fake.Calls(); strings.Join(got, ",") != "GET /zonalshifts" {
		t.Errorf("calls on the fake: %q, want only the listing", got)
	}
}

// TestFakeARCThroughEnvironment: the medic binary reaches the fake the
// production way, through the SDK's service-specific endpoint variable.
func TestFakeARCThroughEnvironment(t *testing.T) {
	fake := emulator.StartFakeARCT(t, nil)
	t.Setenv("AWS_ENDPOINT_URL_ARC_ZONAL_SHIFT", fake.URL())
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDFAKE")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "fake-secret")
	t.Setenv("AWS_REGION", "us-east-1")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("AWS_CONFIG_FILE", os.DevNull)
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", os.DevNull)
	cfg, err := awsconfig.LoadDefaultConfig(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	act := ZonalShiftActuator{Client: arczonalshift.NewFromConfig(cfg), Resource: "arn:lb"}
	if _, err := act.Active(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := fake.Calls(); len(got) != 1 || got[0] != "GET /zonalshifts" {
		t.Errorf("calls on the fake: %q", got)
	}
}
