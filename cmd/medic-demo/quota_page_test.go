package main

import (
	"bytes"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/medic-sre/medic/internal/testkit"
)

// TestDemoQuotaHeadroom runs the demo and looks at its status page in
// headless Chromium: quota headroom shows figures (limits the emulator
// lacks come from the demo's config and are marked so), the failing
// sources are one folded line, and no raw SDK error text is on the page.
func TestDemoQuotaHeadroom(t *testing.T) {
	if testing.Short() {
		t.Skip("the demo takes about a minute")
	}
	bin := testkit.Chromium(t)
	addr := freeAddr(t)
	var out testkit.SyncBuffer
	cmd := exec.Command("go", "run", ".", "-break-after", "10m", "-timeout", "4m", "-web.listen-address", addr)
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM) // the demo's own process group only
		_ = cmd.Wait()
	})
	url := "http://" + addr + "/"
	// Bounded polling: until the limits have been read with figures.
	var page string
	deadline := time.Now().Add(3 * time.Minute)
	for time.Now().Before(deadline) {
		if res, err := http.Get(url); err == nil {
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			page = string(b)
			if strings.Contains(page, "limits read") && strings.Contains(page, "ec2/L-1216C47A</td><td class=\"n\">") {
				break
			}
		}
		time.Sleep(time.Second)
	}
	if !strings.Contains(page, "limits read") {
		t.Fatalf("quota headroom never read; demo output:\n%s", out.String())
	}
	dom := string(testkit.RunChromium(t, bin, "--dump-dom", url))
	for _, want := range []struct{ desc, s string }{
		{"the section", "<h2>Quota headroom</h2>"},
		{"vCPU headroom with figures, limit from config", `<td class="mono">ec2/L-1216C47A</td><td class="n">`},
		{"config said so", `64 <span class="meta">config</span>`},
		{"VPCs from the emulator's Service Quotas", `<td class="mono">vpc/L-F678F1CE</td>`},
		{"failing sources folded", "limit sources failing; the others still report. First: "},
	} {
		if !strings.Contains(dom, want.s) {
			t.Errorf("%s: page lacks %q", want.desc, want.s)
		}
	}
	for _, raw := range []string{"operation error", "https response error", "RequestID", "StatusCode:", "api error"} {
		if strings.Contains(dom, raw) {
			t.Errorf("raw SDK error text %q on the page", raw)
		}
	}
	// The whole page, tall enough to hold the quota section below the
	// fleet (Screenshot's 1400×1000 stops above it).
	dir := os.Getenv("MEDIC_ARTIFACTS_DIR")
	if dir == "" {
		dir = t.TempDir()
	}
	shot := filepath.Join(dir, "demo-quota-headroom.png")
	testkit.RunChromium(t, bin, "--screenshot="+shot, "--window-size=1400,2600", url)
	if png, err := os.ReadFile(shot); err != nil || !bytes.HasPrefix(png, []byte("\x89PNG")) {
		t.Fatalf("no screenshot: %v", err)
	}
	t.Logf("screenshot: %s", shot)
}
