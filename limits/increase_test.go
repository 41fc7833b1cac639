package limits

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/servicequotas"
	sqtypes "github.com/aws/aws-sdk-go-v2/service/servicequotas/types"

	"github.com/medic-sre/medic/config"
)

// fakeIncreases is a local in-memory fake of the two quota-request calls
// (moto answers 500 to both): requests it files stay PENDING.
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

func (f *fakeIncreases) ListRequestedServiceQuotaChangeHistoryByQuota(_ context.Context, in *servicequotas.ListRequestedServiceQuotaChangeHistoryByQuotaInput, _ ...func(*servicequotas.Options)) (*servicequotas.ListRequestedServiceQuotaChangeHistoryByQuotaOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []sqtypes.RequestedServiceQuotaChange
	for _, r := range f.reqs {
		if aws.ToString(r.QuotaCode) == aws.ToString(in.QuotaCode) && aws.ToString(r.ServiceCode) == aws.ToString(in.ServiceCode) {
			out = append(out, r)
		}
	}
	return &servicequotas.ListRequestedServiceQuotaChangeHistoryByQuotaOutput{RequestedQuotas: out}, nil
}

func (f *fakeIncreases) count() int { f.mu.Lock(); defer f.mu.Unlock(); return len(f.reqs) }

// TestIncreaseRequests: VPCs grow one per 10 minutes towards moto's limit
// of 5; with requests on, one request is filed and then tracked, never a
// second; under dry-run none is filed and the same report says DRY_RUN.
func TestIncreaseRequests(t *testing.T) {
	ctx := context.Background()
	for _, dry := range []bool{false, true} {
		t.Run(fmt.Sprintf("dry_run=%v", dry), func(t *testing.T) {
			cfg := startMoto(t)
			ec := ec2.NewFromConfig(cfg)
			vpcs, err := ec.DescribeVpcs(ctx, &ec2.DescribeVpcsInput{})
			if err != nil {
				t.Fatal(err)
			}
			n0 := len(vpcs.Vpcs)
			var mu sync.Mutex
			now := t0
			l := defaults(config.Limits{ServiceQuotasRPS: 1000, IncreaseRequests: config.IncreaseRequests{Enabled: true}})
			w := New(Options{Config: l, AWS: cfg, DryRun: dry, Now: func() time.Time { mu.Lock(); defer mu.Unlock(); return now }})
			w.setBackOff(fastBackOff)
			fake := &fakeIncreases{}
			if dry {
				w.c.increase = dryRunIncrease{fake}
			} else {
				w.c.increase = fake
			}
			var s Snapshot
			for i := 0; n0+i+1 <= 4; i++ {
				if _, err := ec.CreateVpc(ctx, &ec2.CreateVpcInput{CidrBlock: aws.String(fmt.Sprintf("127.%d.0.0/16", i))}); err != nil {
					t.Fatal(err)
				}
				mu.Lock()
				now = t0.Add(time.Duration(i) * 10 * time.Minute)
				mu.Unlock()
				s = w.RefreshOnce(ctx)
			}
			q := mustQuota(t, s, "vpc/L-F678F1CE")
			if !q.Forecast.Growing || q.Request == nil || q.Request.Desired != 8 {
				t.Fatalf("quota: %+v request %+v", q, q.Request)
			}
			want, status := 1, "PENDING"
			if dry {
				want, status = 0, "DRY_RUN"
			}
			if fake.count() != want || q.Request.Status != status {
				t.Errorf("filed %d, status %s; want %d, %s", fake.count(), q.Request.Status, want, status)
			}
		})
	}
}
