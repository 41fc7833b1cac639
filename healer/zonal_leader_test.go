package healer

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/arczonalshift"

	"github.com/medic-sre/medic/internal/emulator"
)

// Only the leading replica starts or cancels a zonal shift; a standby
// calls nothing (checked at the FAKE ARC, moto lacks it) and says so.
func TestLeaderOnlyZonal(t *testing.T) {
	for _, tc := range []struct {
		desc  string
		l     *stubLeadership
		calls int
	}{
		{"leads and still leads: the start goes through", &stubLeadership{gen: 3, left: 10 * time.Second, still: true}, 1},
		{"lost the lease right before the call: nothing", &stubLeadership{gen: 3, left: 10 * time.Second}, 0},
		{"does not lead: nothing", &stubLeadership{holder: "other"}, 0},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			arc := emulator.StartFakeARCT(t, nil)
			c := arczonalshift.New(arczonalshift.Options{Region: "us-east-1", BaseEndpoint: aws.String(arc.URL()),
				Credentials: aws.AnonymousCredentials{}})
			z := LeaderOnlyZonal(c, tc.l)
			_, err := z.StartZonalShift(context.Background(), &arczonalshift.StartZonalShiftInput{ResourceIdentifier: aws.String("arn:aws:elasticloadbalancing:us-east-1:1:loadbalancer/app/w/1"),
				AwayFrom: aws.String("use1-az1"), ExpiresIn: aws.String("30m"), Comment: aws.String("medic: test")})
			if got := len(arc.Shifts()); got != tc.calls {
				t.Fatalf("shifts started = %d, want %d (err %v)", got, tc.calls, err)
			}
			if tc.calls == 0 && !errors.Is(err, ErrZonalStandby) {
				t.Errorf("err = %v, want ErrZonalStandby", err)
			}
			if tc.calls == 1 && err != nil {
				t.Errorf("err = %v", err)
			}
		})
	}
}
