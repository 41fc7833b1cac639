package limits

import (
	"os"
	"testing"
	"time"
)

// fastRetry is the SDK retryer's backoff in tests: the same number of
// attempts, a millisecond apart.
type fastRetry struct{}

func (fastRetry) BackoffDelay(int, error) (time.Duration, error) { return time.Millisecond, nil }

func TestMain(m *testing.M) {
	defaultRetryBackoff = fastRetry{}
	os.Exit(m.Run())
}
