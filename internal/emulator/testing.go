package emulator

import (
	"context"
	"testing"
)

// StartMotoT starts a moto_server for a test, fails the test if it cannot,
// and stops it (process group and all) when the test ends. moto's own
// request log is discarded.
func StartMotoT(t testing.TB) *Moto {
	t.Helper()
	m, err := StartMoto(context.Background(), nil)
	if err != nil {
		t.Fatalf("start moto: %v", err)
	}
	t.Cleanup(m.Stop)
	return m
}
