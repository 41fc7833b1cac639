package limits

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/servicequotas"
	sqtypes "github.com/aws/aws-sdk-go-v2/service/servicequotas/types"
	"github.com/go-kit/log/level"

	"github.com/medic-sre/medic/config"
	"github.com/medic-sre/medic/internal/logkeys"
)

// IncreaseRequest is a quota-increase request medic filed or found open.
type IncreaseRequest struct {
	ID      string
	Desired float64
	// Status as Service Quotas reports it (PENDING, CASE_OPENED, APPROVED,
	// DENIED, …), or DRY_RUN when medic only says what it would file, or
	// FAILED when filing failed (Err says why).
	Status string
	Err    string
	At     time.Time
}

// DesiredQuota is the value requested: the limit times factor, rounded up,
// and never below the limit plus one.
func DesiredQuota(limit, factor float64) float64 {
	return math.Max(math.Ceil(limit*factor), limit+1)
}

// wantsIncrease decides whether a quota gets a request: enabled, known to be
// adjustable, and forecast to reach its limit within the horizon.
func wantsIncrease(q QuotaStatus, horizon time.Duration) bool {
	return q.Adjustable && q.LimitKnown && q.Forecast.Known && q.Forecast.Growing && q.Forecast.In <= horizon
}

// requestIncreases files at most one open request per quota (AWS's cap):
// an open request is found with ListRequestedServiceQuotaChangeHistoryByQuota
// and tracked instead of filing another.
func (w *Watcher) requestIncreases(ctx context.Context, cfg config.Limits, qs []QuotaStatus, g *gathered, now time.Time) {
	for i := range qs {
		q := &qs[i]
		if !wantsIncrease(*q, cfg.IncreaseRequests.Horizon.D()) {
			continue
		}
		var hist *servicequotas.ListRequestedServiceQuotaChangeHistoryByQuotaOutput
		err := w.call.do(ctx, "servicequotas:ListRequestedServiceQuotaChangeHistoryByQuota", func(ctx context.Context) (err error) {
			hist, err = w.c.increase.ListRequestedServiceQuotaChangeHistoryByQuota(ctx, &servicequotas.ListRequestedServiceQuotaChangeHistoryByQuotaInput{
				ServiceCode: aws.String(q.ServiceCode), QuotaCode: aws.String(q.Code)})
			return err
		})
		if err != nil {
			q.Request = &IncreaseRequest{Status: "FAILED", Err: err.Error(), At: now}
			g.sources = append(g.sources, SourceStatus{Name: "service_quotas_requests", Err: err.Error()})
			continue
		}
		open := false
		for _, r := range hist.RequestedQuotas {
			if r.Status == sqtypes.RequestStatusPending || r.Status == sqtypes.RequestStatusCaseOpened {
				q.Request = &IncreaseRequest{ID: aws.ToString(r.Id), Desired: aws.ToFloat64(r.DesiredValue), Status: string(r.Status), At: aws.ToTime(r.Created)}
				open = true
				break
			}
		}
		if open {
			continue
		}
		desired := DesiredQuota(q.Limit, cfg.IncreaseRequests.Factor)
		var out *servicequotas.RequestServiceQuotaIncreaseOutput
		err = w.call.do(ctx, "servicequotas:RequestServiceQuotaIncrease", func(ctx context.Context) (err error) {
			out, err = w.c.increase.RequestServiceQuotaIncrease(ctx, &servicequotas.RequestServiceQuotaIncreaseInput{
				ServiceCode: aws.String(q.ServiceCode), QuotaCode: aws.String(q.Code), DesiredValue: aws.Float64(desired)})
			return err
		})
		if err != nil {
			q.Request = &IncreaseRequest{Desired: desired, Status: "FAILED", Err: err.Error(), At: now}
			level.Warn(w.logger).Log(logkeys.Msg, "quota increase request failed", logkeys.Quota, q.Key(), logkeys.Err, err)
			continue
		}
		r := out.RequestedQuota
		q.Request = &IncreaseRequest{Desired: desired, At: now}
		if r != nil {
			q.Request.ID, q.Request.Status = aws.ToString(r.Id), string(r.Status)
		}
		level.Info(w.logger).Log(logkeys.Msg, "quota increase requested", logkeys.Quota, q.Key(), "desired", desired,
			logkeys.Result, q.Request.Status, logkeys.DryRun, w.dryRun)
	}
}

// dryRunIncrease is the dry-run actuator for quota requests: it reads as
// usual and files nothing, answering with status DRY_RUN.
type dryRunIncrease struct{ increaseAPI }

func (dryRunIncrease) RequestServiceQuotaIncrease(_ context.Context, in *servicequotas.RequestServiceQuotaIncreaseInput, _ ...func(*servicequotas.Options)) (*servicequotas.RequestServiceQuotaIncreaseOutput, error) {
	return &servicequotas.RequestServiceQuotaIncreaseOutput{RequestedQuota: &sqtypes.RequestedServiceQuotaChange{
		Id:          aws.String(fmt.Sprintf("dry-run:%s/%s", aws.ToString(in.ServiceCode), aws.ToString(in.QuotaCode))),
		ServiceCode: in.ServiceCode, QuotaCode: in.QuotaCode, DesiredValue: in.DesiredValue, Status: "DRY_RUN"}}, nil
}
