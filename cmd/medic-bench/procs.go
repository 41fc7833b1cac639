package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// proc is a child process the benchmark started and stops.
type proc struct {
	name  string
	cmd   *exec.Cmd
	stats string // a target server's /gaps address
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

// stop sends SIGTERM to the child (by its pid) and waits for it, a few
// seconds at most before SIGKILL.
func (p *proc) stop() {
	if p == nil || p.cmd.Process == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-done
	}
}

// perServer is the most listeners one target server process holds: with
// a connection per target open at once (keep-alive) it stays well under a
// 20,000 file descriptor limit.
const perServer = 5000

// servers are the target server processes of one benchmark.
type servers []*proc

func (ss servers) stop() {
	for _, p := range ss {
		p.stop()
	}
}

// startServers starts `medic-bench serve` processes for n listeners in
// all and returns them with the addresses they listen on.
func startServers(self string, n int) (servers, []string, error) {
	var ss servers
	var addrs []string
	for off := 0; off < n; off += perServer {
		p, a, err := startServer(self, min(perServer, n-off), off)
		if err != nil {
			ss.stop()
			return nil, nil, err
		}
		ss = append(ss, p)
		addrs = append(addrs, a...)
	}
	return ss, addrs, nil
}

// startServer starts one `medic-bench serve` with n listeners from offset.
func startServer(self string, n, offset int) (*proc, []string, error) {
	cmd := exec.Command(self, "serve", "-listeners", fmt.Sprint(n), "-offset", fmt.Sprint(offset))
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, nil, fmt.Errorf("start target server: %w", err)
	}
	p := &proc{name: "server", cmd: cmd}
	var addrs []string
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if a, ok := strings.CutPrefix(sc.Text(), "stats "); ok {
			p.stats = a
			continue
		}
		if sc.Text() == "ready" {
			go io.Copy(io.Discard, out)
			return p, addrs, nil
		}
		addrs = append(addrs, sc.Text())
	}
	p.stop()
	return nil, nil, fmt.Errorf("target server ended before it was ready")
}

// freePort returns a loopback address with a port free at the moment.
func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// targetSet spreads n targets over the listeners: services of at most
// len(addrs) targets each (a service lists an address once), named
// bench-000, bench-001, ... from offset on, so that two sets with
// different offsets share no target.
type targetSet struct {
	services [][]string
	offset   int
}

func spread(addrs []string, n, offset int) targetSet {
	ts := targetSet{offset: offset}
	for n > 0 {
		k := min(n, len(addrs))
		ts.services = append(ts.services, addrs[:k])
		n -= k
	}
	return ts
}

func (ts targetSet) count() int {
	n := 0
	for _, s := range ts.services {
		n += len(s)
	}
	return n
}

// writeConfig writes a medic config probing ts over HTTP at interval, with
// keep-alive or a fresh connection per probe; workers 0 keeps medic's
// default max_concurrent_probes.
// probeTimeout is the timeout of every probe at interval, medic's and the
// plain loop's alike: at most the interval (medic's config requires it),
// at most medic's default of 1 s.
func probeTimeout(interval time.Duration) time.Duration { return min(interval, time.Second) }

func writeConfig(path string, ts targetSet, interval time.Duration, keepAlive bool, workers int) error {
	var b strings.Builder
	b.WriteString("global:\n  region: us-east-1\n  allowed_networks: [127.0.0.0/8]\n")
	if workers > 0 {
		fmt.Fprintf(&b, "  max_concurrent_probes: %d\n", workers)
	}
	b.WriteString("services:\n")
	timeout := probeTimeout(interval)
	for i, addrs := range ts.services {
		fmt.Fprintf(&b, "  - name: bench-%03d\n    static_targets: [%s]\n", ts.offset+i, strings.Join(addrs, ", "))
		fmt.Fprintf(&b, "    instance_probe: {type: http, interval: %s, timeout: %s, keep_alive: %t}\n",
			interval, timeout, keepAlive)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(b.String()), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// startMedic runs bin/medic on config with no AWS reachable (static
// targets need none): the SDK is pointed at a closed loopback port and
// instance metadata is off. It returns once /-/healthy answers.
func startMedic(bin, config, dir string, extra ...string) (*proc, string, error) {
	addr, err := freePort()
	if err != nil {
		return nil, "", err
	}
	args := append([]string{"--config.file=" + config, "--web.listen-address=" + addr, "--log.level=warn"}, extra...)
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(),
		"AWS_EC2_METADATA_DISABLED=true", "AWS_REGION=us-east-1",
		"AWS_ACCESS_KEY_ID=bench", "AWS_SECRET_ACCESS_KEY=bench",
		"AWS_ENDPOINT_URL=http://127.0.0.1:9")
	logf, err := os.Create(filepath.Join(dir, "medic.log"))
	if err != nil {
		return nil, "", err
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return nil, "", fmt.Errorf("start medic: %w", err)
	}
	p := &proc{name: "medic", cmd: cmd}
	base := "http://" + addr
	if err := poll(30*time.Second, func() bool {
		resp, err := http.Get(base + "/-/healthy")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}); err != nil {
		p.stop()
		return nil, "", fmt.Errorf("medic did not answer /-/healthy (see %s): %w", logf.Name(), err)
	}
	return p, base, nil
}

// startLoop runs the plain-loop baseline on the targets of ts.
func startLoop(bin, dir string, ts targetSet, workers int, keepAlive bool, timeout time.Duration, pprof bool) (*proc, string, error) {
	var all []string
	for _, s := range ts.services {
		all = append(all, s...)
	}
	file := filepath.Join(dir, "targets.txt")
	if err := os.WriteFile(file, []byte(strings.Join(all, "\n")+"\n"), 0o644); err != nil {
		return nil, "", err
	}
	cmd := exec.Command(bin, "-targets", file, "-path", loopPath, "-workers", fmt.Sprint(workers), fmt.Sprintf("-keep-alive=%t", keepAlive),
		"-timeout", timeout.String(), fmt.Sprintf("-debug.pprof=%t", pprof))
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, "", err
	}
	if err := cmd.Start(); err != nil {
		return nil, "", fmt.Errorf("start plain loop: %w", err)
	}
	p := &proc{name: "loop", cmd: cmd}
	sc := bufio.NewScanner(out)
	if !sc.Scan() {
		p.stop()
		return nil, "", fmt.Errorf("plain loop printed no address")
	}
	go io.Copy(io.Discard, out)
	return p, "http://" + sc.Text(), nil
}

// reload asks medic to re-read its config.
func reload(base string) error {
	resp, err := http.Post(base+"/-/reload", "", nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("reload: %s: %s", resp.Status, b)
	}
	return nil
}

// poll calls ok every 100 ms until it says true or limit passes.
func poll(limit time.Duration, ok func() bool) error {
	deadline := time.Now().Add(limit)
	for !ok() {
		if time.Now().After(deadline) {
			return fmt.Errorf("not within %s", limit)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return nil
}

// waitTargets waits until medic schedules n targets.
func waitTargets(base string, n int) error {
	return poll(60*time.Second, func() bool {
		s, err := scrapeMetrics(base)
		return err == nil && int(s.targets) == n
	})
}
