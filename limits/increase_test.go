package limits

import (
	"context"
	"fmt"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/servicequotas"
	sqtypes "github.com/aws/aws-sdk-go-v2/service/servicequotas/types"

	"github.com/medic-sre/medic/config"
)

// fakeIncreases is a local in-memory fake of the two quota-request calls
// medic makes (moto answers 500 to both): requests it files stay PENDING.
type fakeIncreases struct {
	mu   sync.Mutex
	reqs []sqtypes.RequestedServiceQuotaChange
}

func (f *fakeIncreases) RequestServiceQuotaIncrease(_ context.Context, in *servicequotas.RequestServiceQuotaIncreaseInput, _ ...func(*servicequotas.Options)) (*servicequotas.RequestServiceQuotaIncreaseOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r := sqtypes.RequestedServiceQuotaChange{Id: aws.String(fmt.Sprintf("req-%d", len(f.reqs)+1)), ServiceCode: in.ServiceCode, QuotaCode: in.QuotaCode,
		DesiredValue: in.DesiredValue, Status: sqtypes.RequestStatusPending}
	f.reqs = append(f.reqs, r)
	return &servicequotas.RequestServiceQuotaIncreaseOutput{RequestedQuota: &r}, nil
}

func (f *fakeIncreases) ListRequestedServiceQuotaChangeHistory(_ context.Context, in *servicequotas.ListRequestedServiceQuotaChangeHistoryInput, _ ...func(*servicequotas.Options)) (*servicequotas.ListRequestedServiceQuotaChangeHistoryOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []sqtypes.RequestedServiceQuotaChange
	for _, r := range f.reqs {
		if in.Status == "" || r.Status == in.Status {
			out = append(out, r)
		}
	}
	return &servicequotas.ListRequestedServiceQuotaChangeHistoryOutput{RequestedQuotas: out}, nil
}

func (f *fakeIncreases) count() int { f.mu.Lock(); defer f.mu.Unlock(); return len(f.reqs) }

func TestDesiredQuota(t *testing.T) {
	for _, tc := range []struct {
		desc                          string
		limit, factor, peak, headroom float64
		want                          float64
	}{
		{"limit × factor wins", 100, 1.5, 110, 0.2, 150},
		{"forecast peak plus headroom wins", 100, 1.5, 200, 0.2, 240},
		{"small limit: at least limit + 1", 1, 1.1, 0, 0.2, 2},
		{"limit 0 growing: the peak decides", 0, 1.5, 10, 0.2, 12},
		{"limit 0, no peak: limit + 1", 0, 2, 0, 0.2, 1},
		{"rounded up", 5, 1.5, 0, 0, 8},
	} {
		if got := DesiredQuota(tc.limit, tc.factor, tc.peak, tc.headroom); got != tc.want {
			t.Errorf("%s: DesiredQuota = %g, want %g", tc.desc, got, tc.want)
		}
	}
}

func TestPlanIncreases(t *testing.T) {
	w := func(k string, h int) IncreaseWant { return IncreaseWant{Key: k, In: time.Duration(h) * time.Hour} }
	for _, tc := range []struct {
		desc                 string
		wants                []IncreaseWant
		openQuota            map[string]bool
		openRegion, openAcct int
		file                 []string
		held                 int
	}{
		{"nothing wanted", nil, nil, 0, 0, nil, 0},
		{"one wanted, none open", []IncreaseWant{w("a", 5)}, nil, 0, 0, []string{"a"}, 0},
		{"three wanted: the two soonest, the third held by the Region cap", []IncreaseWant{w("a", 50), w("b", 5), w("c", 20)}, nil, 0, 0, []string{"b", "c"}, 1},
		{"one open in the Region: one more", []IncreaseWant{w("a", 5), w("b", 6)}, map[string]bool{"x": true}, 1, 1, []string{"a"}, 1},
		{"a request open for the quota itself", []IncreaseWant{w("a", 5)}, map[string]bool{"a": true}, 1, 1, nil, 1},
		{"exactly at the Region cap", []IncreaseWant{w("a", 5)}, nil, 2, 2, nil, 1},
		{"account cap reached though the Region has room", []IncreaseWant{w("a", 5)}, nil, 0, 20, nil, 1},
		{"one below the account cap", []IncreaseWant{w("a", 5), w("b", 6)}, nil, 0, 19, []string{"a"}, 1},
	} {
		file, held := PlanIncreases(tc.wants, tc.openQuota, tc.openRegion, tc.openAcct)
		if fmt.Sprint(file) != fmt.Sprint(tc.file) || len(held) != tc.held {
			t.Errorf("%s: file %v held %v; want file %v, %d held", tc.desc, file, held, tc.file, tc.held)
		}
	}
}

func TestWantsIncrease(t *testing.T) {
	trend := Forecast{Known: true, Growing: true, Trend: true, In: time.Hour}
	for _, tc := range []struct {
		desc string
		q    QuotaStatus
		want bool
	}{
		{"gated trend within the horizon", QuotaStatus{Adjustable: true, LimitKnown: true, Forecast: trend}, true},
		{"not adjustable", QuotaStatus{LimitKnown: true, Forecast: trend}, false},
		{"at the limit without a trend", QuotaStatus{Adjustable: true, LimitKnown: true, Forecast: Forecast{Known: true, Growing: true, Method: "at_limit"}}, false},
		{"limit 0 not in use", QuotaStatus{Adjustable: true, LimitKnown: true, Forecast: Forecast{Known: true}}, false},
		{"beyond the horizon", QuotaStatus{Adjustable: true, LimitKnown: true, Forecast: Forecast{Known: true, Growing: true, Trend: true, In: 400 * time.Hour}}, false},
	} {
		if got := wantsIncrease(tc.q, 336*time.Hour); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.desc, got, tc.want)
		}
	}
}

// TestIncreaseRequestsOnMoto: three adjustable vpc quotas (limits from
// moto's Service Quotas defaults) with daily peaks growing toward their
// limits in AWS/Usage, one with a step, one at a limit of 0 with nothing
// used. Only the growing ones want a request; AWS's Region cap lets two be
// filed (the soonest first) and holds the third; the next refresh files
// nothing more. Under dry-run nothing is filed and the same plan reads
// DRY_RUN. The request calls go to a named local fake (fakeIncreases):
// moto answers 500 to them.
func TestIncreaseRequestsOnMoto(t *testing.T) {
	ctx := context.Background()
	for _, dry := range []bool{false, true} {
		t.Run(fmt.Sprintf("dry_run=%v", dry), func(t *testing.T) {
			cfg := startMoto(t)
			now := time.Now().UTC().Truncate(time.Hour)
			cw := newCW(cfg)
			days := func(t time.Time) float64 { return t.Sub(now).Hours() / 24 }
			// Limits 5, 20, 5 (moto's defaults); daily peaks grow toward them.
			shapes := map[string]func(time.Time) float64{
				"L-45FE3B85": func(t time.Time) float64 { return 3 + 0.2*days(t) + 0.5*math.Cos(2*math.Pi*float64(t.Hour())/24) }, // ~8 days
				"L-1B52E74A": func(t time.Time) float64 { return 12 + 1*days(t) + 2*math.Cos(2*math.Pi*float64(t.Hour())/24) },    // ~6 days
				"L-83CA0A9D": func(t time.Time) float64 { return 3 + 0.3*days(t) + 0.5*math.Cos(2*math.Pi*float64(t.Hour())/24) }, // ~5 days
				"L-2C462E13": func(t time.Time) float64 { // a step yesterday: 10 → 60 of 100
					if now.Sub(t) < day {
						return 60
					}
					return 10
				},
				"L-7E9ECCDB": func(time.Time) float64 { return 0 }, // limit 0 by config: not in use
			}
			zero := 0.0
			var qs []config.Quota
			for code, f := range shapes {
				var pts []Point
				for d := 8 * day; d >= 0; d -= time.Hour {
					pts = append(pts, Point{T: now.Add(-d), V: f(now.Add(-d))})
				}
				putUsage(t, cw, code, pts)
				q := config.Quota{ServiceCode: "vpc", Code: code, Name: code,
					Usage: config.QuotaUsage{CloudWatch: &config.UsageMetric{Service: "Test", Type: "Resource", Resource: code, Class: "None"}}}
				if code == "L-7E9ECCDB" {
					q.Limit = &zero
				}
				qs = append(qs, q)
			}
			l := defaults(config.Limits{ServiceQuotasRPS: 1000, Quotas: qs, UsageMaxAge: config.Duration(2 * time.Hour),
				IncreaseRequests: config.IncreaseRequests{Enabled: true}})
			w := New(Options{Config: l, AWS: cfg, DryRun: dry, Now: func() time.Time { return now }})
			fake := &fakeIncreases{}
			if dry {
				w.c.increase = dryRunIncrease{fake}
			} else {
				w.c.increase = fake
			}
			s := w.RefreshOnce(ctx)
			status := map[string]string{}
			for _, q := range s.Quotas {
				if q.Request != nil {
					status[q.Code] = q.Request.Status
				}
			}
			filed, wantFiled := "PENDING", 2
			if dry {
				filed, wantFiled = "DRY_RUN", 0
			}
			want := map[string]string{"L-83CA0A9D": filed, "L-1B52E74A": filed, "L-45FE3B85": "HELD"}
			if fmt.Sprint(status) != fmt.Sprint(want) {
				for _, q := range s.Quotas {
					if _, ok := shapes[q.Code]; ok {
						t.Logf("%s: usage %v limit %v forecast %+v", q.Code, q.Usage, q.Limit, q.Forecast)
					}
				}
				t.Fatalf("requests %v, want %v", status, want)
			}
			if fake.count() != wantFiled {
				t.Errorf("filed %d, want %d", fake.count(), wantFiled)
			}
			q := mustQuota(t, s, "vpc/L-1B52E74A")
			if q.Request.Desired < math.Ceil(q.Forecast.PeakAt(l.IncreaseRequests.Horizon.D())*1.2) || q.Request.Desired < 30 {
				t.Errorf("desired %g below the forecast peak plus headroom (%s)", q.Request.Desired, q.Forecast.Why)
			}
			if z := mustQuota(t, s, "vpc/L-7E9ECCDB"); z.State != StateNotInUse || z.Request != nil || z.Forecast.Growing {
				t.Errorf("limit 0, nothing used: %+v", z)
			}
			w.RefreshOnce(ctx)
			if fake.count() != wantFiled {
				t.Errorf("second refresh filed more: %d", fake.count())
			}
		})
	}
}
