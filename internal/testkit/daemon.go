package testkit

import (
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// StartDaemon runs bin (Prometheus, Alertmanager: a daemon with a
// /-/ready endpoint) with the arguments args gives for a free loopback
// address and a fresh data directory, and returns its base URL
// ("http://127.0.0.1:PORT") once GET /-/ready answers 200. The free port may
// be taken by someone else before the daemon binds it: then it exits and
// another port is tried, three times in all. The daemon's process group is
// killed when the test ends, and its output logged if the test failed.
func StartDaemon(t testing.TB, name, bin string, args func(addr, dataDir string) []string) string {
	t.Helper()
	dir := t.TempDir()
	var out SyncBuffer
	for try := 1; try <= 3; try++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		cmd := exec.Command(bin, args(addr, filepath.Join(dir, fmt.Sprint("data", try)))...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan struct{})
		go func() { _ = cmd.Wait(); close(exited) }()
		t.Cleanup(func() {
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
			if t.Failed() {
				t.Logf("%s output:\n%s", name, out.String())
			}
		})
		base := "http://" + addr
		if waitReady(base+"/-/ready", exited, 30*time.Second) {
			return base
		}
	}
	t.Fatalf("%s did not start:\n%s", name, out.String())
	return ""
}

// waitReady polls url until it answers 200 (true), the process exits or
// timeout passes (false).
func waitReady(url string, exited <-chan struct{}, timeout time.Duration) bool {
	c := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return false
		default:
		}
		if resp, err := c.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return true
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return false
}
