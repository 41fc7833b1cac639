package emulator

import (
	"context"
	"fmt"
	"os"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
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

// DefaultConfigT starts a moto_server for a test, points the process
// environment at it the production way (AWS_ENDPOINT_URL, dummy
// credentials, no instance metadata, no shared config files; via
// tb.Setenv, so not for parallel tests), and returns the SDK's default
// config as medic itself would load it.
func DefaultConfigT(tb testing.TB) aws.Config {
	tb.Helper()
	m := StartMotoT(tb)
	m.SetEnv(tb.Setenv)
	cfg, err := awsconfig.LoadDefaultConfig(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	return cfg
}

// FaultProxyT starts a FaultProxy in front of target for a test, closes it
// when the test ends, and returns it with an aws.Config that reaches moto
// through it with the SDK's retries off, so the proxy counts every call
// the code under test makes.
func FaultProxyT(tb testing.TB, target string) (*FaultProxy, aws.Config) {
	tb.Helper()
	p, err := StartFaultProxy(target)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = p.Close() })
	cfg := ConfigFor(p.URL())
	cfg.Retryer = func() aws.Retryer { return aws.NopRetryer{} }
	return p, cfg
}
