package emulator_test

import (
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/medic-sre/medic/internal/testkit"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"

	"github.com/medic-sre/medic/internal/emulator"
)

// TestFaultProxyOnAction: a hook sees only the calls the proxy forwards
// (not throttled ones), may answer in the emulator's place, and when it
// lets a call through the emulator still gets the whole request.
func TestFaultProxyOnAction(t *testing.T) {
	t.Parallel()
	ctx := testkit.Context(t)
	p, cfg := emulator.FaultProxyT(t, moto.URL())
	asg := autoscaling.NewFromConfig(cfg)
	mark := func() error {
		_, err := asg.SetInstanceHealth(ctx, &autoscaling.SetInstanceHealthInput{
			InstanceId: aws.String("i-00000000000000000"), HealthStatus: aws.String("Unhealthy"),
		})
		return err
	}

	var (
		mu     sync.Mutex // the hook runs on the proxy's goroutines
		seen   []string
		answer bool
	)
	p.OnAction("SetInstanceHealth", func(w http.ResponseWriter, r *http.Request) bool {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, string(b))
		if !answer {
			return false
		}
		w.Header().Set("Content-Type", "text/xml")
		w.WriteHeader(http.StatusBadRequest)
		_, _ = io.WriteString(w, `<ErrorResponse><Error><Type>Sender</Type><Code>ValidationError</Code><Message>from the hook</Message></Error><RequestId>1</RequestId></ErrorResponse>`)
		return true
	})

	// Let through: the emulator answers, with the body the hook read.
	if code := apiCode(mark()); code != "InvalidInstanceID.NotFound" {
		t.Errorf("let through: code %q, want the emulator's InvalidInstanceID.NotFound", code)
	}
	// Answered by the hook.
	mu.Lock()
	answer = true
	mu.Unlock()
	if code := apiCode(mark()); code != "ValidationError" {
		t.Errorf("answered: code %q, want the hook's ValidationError", code)
	}
	// Throttled calls never reach the hook.
	p.ThrottleFraction(1)
	if code := apiCode(mark()); code != "Throttling" {
		t.Errorf("throttled: code %q, want Throttling", code)
	}
	p.ThrottleFraction(0)
	// Removed: forwarded as before.
	p.OnAction("SetInstanceHealth", nil)
	if code := apiCode(mark()); code != "InvalidInstanceID.NotFound" {
		t.Errorf("hook removed: code %q, want InvalidInstanceID.NotFound", code)
	}

	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 2 || !strings.Contains(seen[0], "Action=SetInstanceHealth") {
		t.Errorf("hook saw %q, want 2 SetInstanceHealth bodies", seen)
	}
	if got, want := p.Count("SetInstanceHealth"), 4; got != want {
		t.Errorf("Count = %d, want %d", got, want)
	}
	if got, want := p.Forwarded("SetInstanceHealth"), 3; got != want {
		t.Errorf("Forwarded = %d, want %d (all but the throttled one)", got, want)
	}
	p.ResetCounts()
	if got := p.Forwarded("SetInstanceHealth"); got != 0 {
		t.Errorf("Forwarded after ResetCounts = %d", got)
	}
}
