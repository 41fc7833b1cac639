package limits

import (
	"context"
	"fmt"
	"math"
	"sort"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/servicequotas"
	sqtypes "github.com/aws/aws-sdk-go-v2/service/servicequotas/types"
	"github.com/go-kit/log/level"

	"github.com/medic-sre/medic/config"
	"github.com/medic-sre/medic/internal/logkeys"
)

// AWS's caps on open quota-increase requests (PENDING or CASE_OPENED).
const (
	openPerQuota   = 1
	openPerRegion  = 2
	openPerAccount = 20
)

// IncreaseRequest is a quota-increase request medic filed, found open, or
// holds back.
type IncreaseRequest struct {
	ID      string
	Desired float64
	// Status as Service Quotas reports it (PENDING, CASE_OPENED, APPROVED,
	// DENIED, …), or DRY_RUN when medic only says what it would file,
	// HELD when a cap keeps it back (Err says which), or FAILED when filing
	// failed (Err says why).
	Status string
	Err    string
	At     time.Time
}

// DesiredQuota is the value requested: at least the limit × factor, at
// least the forecast peak at the horizon plus headroom, and never below
// the limit plus one — each rounded up.
func DesiredQuota(limit, factor, peakAtHorizon, headroom float64) float64 {
	return math.Max(math.Max(math.Ceil(limit*factor), math.Ceil(peakAtHorizon*(1+headroom)-1e-9)), limit+1)
}

// wantsIncrease decides whether a quota may get a request: known to be
// adjustable, its limit known, and a forecast from a trend that passed
// every gate reaching the limit within the horizon. A quota at its limit
// without such a trend, or at a limit of 0 with flat usage, never does.
func wantsIncrease(q QuotaStatus, horizon time.Duration) bool {
	f := q.Forecast
	return q.Adjustable && q.LimitKnown && f.Known && f.Growing && f.Trend && f.In <= horizon
}

// IncreaseWant is a quota that wants a request.
type IncreaseWant struct {
	Key string
	In  time.Duration
}

// PlanIncreases decides which wants are filed now, soonest exhaustion
// first, within AWS's caps: none for a quota with a request open, at most
// openPerRegion open in the Region and openPerAccount in the account
// (counting those already open). held says why each other want waits.
func PlanIncreases(wants []IncreaseWant, openQuota map[string]bool, openRegion, openAccount int) (file []string, held map[string]string) {
	held = map[string]string{}
	ws := append([]IncreaseWant(nil), wants...)
	sort.SliceStable(ws, func(i, j int) bool { return ws[i].In < ws[j].In })
	for _, w := range ws {
		switch {
		case openQuota[w.Key]:
			held[w.Key] = fmt.Sprintf("a request for this quota is open (AWS allows %d per quota)", openPerQuota)
		case openRegion >= openPerRegion:
			held[w.Key] = fmt.Sprintf("%d requests are open in this Region (AWS allows %d)", openRegion, openPerRegion)
		case openAccount >= openPerAccount:
			held[w.Key] = fmt.Sprintf("%d requests are open in the account (AWS allows %d)", openAccount, openPerAccount)
		default:
			file = append(file, w.Key)
			openRegion++
			openAccount++
		}
	}
	return file, held
}

// openRequests lists the Region's open requests by quota key.
func (w *Watcher) openRequests(ctx context.Context) (map[string]sqtypes.RequestedServiceQuotaChange, error) {
	open := map[string]sqtypes.RequestedServiceQuotaChange{}
	for _, st := range []sqtypes.RequestStatus{sqtypes.RequestStatusPending, sqtypes.RequestStatusCaseOpened} {
		p := servicequotas.NewListRequestedServiceQuotaChangeHistoryPaginator(w.c.increase,
			&servicequotas.ListRequestedServiceQuotaChangeHistoryInput{Status: st})
		err := eachPage(ctx, w.call, "servicequotas:ListRequestedServiceQuotaChangeHistory", p.HasMorePages,
			func(ctx context.Context) (*servicequotas.ListRequestedServiceQuotaChangeHistoryOutput, error) {
				return p.NextPage(ctx)
			},
			func(out *servicequotas.ListRequestedServiceQuotaChangeHistoryOutput) {
				for _, r := range out.RequestedQuotas {
					open[aws.ToString(r.ServiceCode)+"/"+aws.ToString(r.QuotaCode)] = r
				}
			})
		if err != nil {
			return nil, err
		}
	}
	return open, nil
}

// requestIncreases files requests for the quotas that want one, within
// AWS's caps; an open request is tracked instead of filing another, and a
// want a cap holds back is reported as HELD with the cap.
func (w *Watcher) requestIncreases(ctx context.Context, cfg config.Limits, qs []QuotaStatus, g *gathered, now time.Time) {
	horizon := cfg.IncreaseRequests.Horizon.D()
	var wants []IncreaseWant
	idx := map[string]int{}
	for i := range qs {
		if wantsIncrease(qs[i], horizon) {
			wants = append(wants, IncreaseWant{Key: qs[i].Key(), In: qs[i].Forecast.In})
			idx[qs[i].Key()] = i
		}
	}
	if len(wants) == 0 {
		return
	}
	start := time.Now()
	open, err := w.openRequests(ctx)
	if err != nil {
		st := failed("service_quotas_requests", err, time.Since(start))
		g.set(func() { g.sources = append(g.sources, st) })
		for _, wt := range wants {
			qs[idx[wt.Key]].Request = &IncreaseRequest{Status: "FAILED", Err: "open requests could not be listed: " + st.Err, At: now}
		}
		return
	}
	openQuota := map[string]bool{}
	for k, r := range open {
		openQuota[k] = true
		if i, ok := idx[k]; ok {
			qs[i].Request = &IncreaseRequest{ID: aws.ToString(r.Id), Desired: aws.ToFloat64(r.DesiredValue), Status: string(r.Status), At: aws.ToTime(r.Created)}
		}
	}
	file, held := PlanIncreases(wants, openQuota, len(open), len(open))
	for k, why := range held {
		if q := &qs[idx[k]]; q.Request == nil {
			q.Request = &IncreaseRequest{Desired: desiredFor(*q, cfg), Status: "HELD", Err: why, At: now}
		}
	}
	for _, k := range file {
		w.fileIncrease(ctx, &qs[idx[k]], desiredFor(qs[idx[k]], cfg), now)
	}
	g.set(func() {
		g.sources = append(g.sources, SourceStatus{Name: "service_quotas_requests", OK: true, Duration: time.Since(start)})
	})
}

func desiredFor(q QuotaStatus, cfg config.Limits) float64 {
	ir := cfg.IncreaseRequests
	return DesiredQuota(q.Limit, ir.Factor, q.Forecast.PeakAt(ir.Horizon.D()), ir.Headroom)
}

func (w *Watcher) fileIncrease(ctx context.Context, q *QuotaStatus, desired float64, now time.Time) {
	var out *servicequotas.RequestServiceQuotaIncreaseOutput
	err := w.call.do(ctx, "servicequotas:RequestServiceQuotaIncrease", func(ctx context.Context) (err error) {
		out, err = w.c.increase.RequestServiceQuotaIncrease(ctx, &servicequotas.RequestServiceQuotaIncreaseInput{
			ServiceCode: aws.String(q.ServiceCode), QuotaCode: aws.String(q.Code), DesiredValue: aws.Float64(desired)})
		return err
	})
	if err != nil {
		_, text := Describe(err)
		q.Request = &IncreaseRequest{Desired: desired, Status: "FAILED", Err: text, At: now}
		level.Warn(w.logger).Log(logkeys.Msg, "quota increase request failed", logkeys.Quota, q.Key(), logkeys.Err, text)
		return
	}
	q.Request = &IncreaseRequest{Desired: desired, At: now}
	if r := out.RequestedQuota; r != nil {
		q.Request.ID, q.Request.Status = aws.ToString(r.Id), string(r.Status)
	}
	level.Info(w.logger).Log(logkeys.Msg, "quota increase requested", logkeys.Quota, q.Key(), "desired", desired,
		logkeys.Result, q.Request.Status, logkeys.DryRun, w.dryRun)
}

// dryRunIncrease is the dry-run actuator for quota requests: it reads as
// usual and files nothing, answering with status DRY_RUN.
type dryRunIncrease struct{ increaseAPI }

func (dryRunIncrease) RequestServiceQuotaIncrease(_ context.Context, in *servicequotas.RequestServiceQuotaIncreaseInput, _ ...func(*servicequotas.Options)) (*servicequotas.RequestServiceQuotaIncreaseOutput, error) {
	return &servicequotas.RequestServiceQuotaIncreaseOutput{RequestedQuota: &sqtypes.RequestedServiceQuotaChange{
		Id:          aws.String(fmt.Sprintf("dry-run:%s/%s", aws.ToString(in.ServiceCode), aws.ToString(in.QuotaCode))),
		ServiceCode: in.ServiceCode, QuotaCode: in.QuotaCode, DesiredValue: in.DesiredValue, Status: "DRY_RUN"}}, nil
}
