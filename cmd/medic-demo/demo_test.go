package main

import (
	"bytes"
	"net"
	"os/exec"
	"strings"
	"testing"
)

// TestDemo runs the README's first command the way a newcomer would (go
// run), bounded, and checks it shows the whole loop: an instance broken,
// marked Unhealthy by medic, replaced, and the fleet healthy again.
func TestDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("the demo takes about a minute")
	}
	addr := freeAddr(t)
	var out bytes.Buffer
	cmd := exec.Command("go", "run", ".", "-exit-after-recovery", "-break-after", "5s", "-timeout", "3m", "-web.listen-address", addr)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("demo failed: %v\n%s", err, out.String())
	}
	for _, want := range []string{"BREAKING i-", "medic marked i-", "the group launched i-", "RECOVERED: medic judges 6 instances healthy again"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("demo output lacks %q:\n%s", want, out.String())
		}
	}
}

// freeAddr is a loopback address with a port free right now.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
