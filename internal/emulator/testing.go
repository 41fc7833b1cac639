package emulator

import (
	"context"
	"fmt"
	"os"
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

// MainWithMoto is a TestMain for a package whose tests share one
// moto_server: it starts it, stores it in *shared, runs the tests, stops
// it and exits with the tests' code.
func MainWithMoto(m *testing.M, shared **Moto) {
	mo, err := StartMoto(context.Background(), nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, "start moto:", err)
		os.Exit(1)
	}
	*shared = mo
	code := m.Run()
	mo.Stop()
	os.Exit(code)
}
