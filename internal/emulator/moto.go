// Package emulator is the AWS-on-loopback harness shared by end-to-end
// tests, `make demo` and benchmarks: a moto_server process, a fleet built in
// it whose instances have loopback private IPs, one small app server per
// instance IP, a player for the Auto Scaling group's replacements, and a
// fault-injecting proxy in front of moto.
//
// Everything it starts listens on, and sends traffic to, 127.0.0.0/8 only.
package emulator

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
)

// Region is the region every emulated fleet lives in.
const Region = "us-east-1"

// StartTimeout bounds how long StartMoto waits for moto_server to answer.
const StartTimeout = 60 * time.Second

// Moto is one moto_server process on a loopback port.
type Moto struct {
	url  string
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited
	err  error         // exit status, valid after done

	stopOnce sync.Once
}

// StartMoto starts moto_server (or `python3 -m moto.server` when that is
// not on PATH) on a free 127.0.0.1 port in its own process group, and
// returns once it answers HTTP. Its output goes to logger (nil: discarded).
// ctx bounds only the start; the process lives until Stop.
func StartMoto(ctx context.Context, logger io.Writer) (*Moto, error) {
	if logger == nil {
		logger = io.Discard
	}
	var lastErr error
	// The port is free when chosen but could be taken before moto binds
	// it: try a few ports.
	for range 3 {
		port, err := freePort("127.0.0.1")
		if err != nil {
			return nil, err
		}
		m, err := startMotoOn(ctx, port, logger)
		if err == nil {
			return m, nil
		}
		lastErr = err
		if ctx.Err() != nil {
			break
		}
	}
	return nil, lastErr
}

func startMotoOn(ctx context.Context, port int, logger io.Writer) (*Moto, error) {
	args := []string{"-H", "127.0.0.1", "-p", strconv.Itoa(port)}
	var cmd *exec.Cmd
	if path, err := exec.LookPath("moto_server"); err == nil {
		cmd = exec.Command(path, args...)
	} else {
		cmd = exec.Command("python3", append([]string{"-m", "moto.server"}, args...)...)
	}
	cmd.Stdout = logger
	cmd.Stderr = logger
	// Own process group, so Stop reaches every child; and killed if the
	// test process dies first.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start moto_server: %w", err)
	}
	m := &Moto{
		url:  "http://127.0.0.1:" + strconv.Itoa(port),
		cmd:  cmd,
		done: make(chan struct{}),
	}
	go func() {
		m.err = cmd.Wait()
		close(m.done)
	}()

	ctx, cancel := context.WithTimeout(ctx, StartTimeout)
	defer cancel()
	client := &http.Client{Timeout: time.Second}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, m.url+"/moto-api/data.json", nil)
		if resp, err := client.Do(req); err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			return m, nil
		}
		select {
		case <-m.done:
			return nil, fmt.Errorf("moto_server on port %d exited before answering: %v", port, m.err)
		case <-ctx.Done():
			m.Stop()
			return nil, fmt.Errorf("moto_server on port %d did not answer: %w", port, ctx.Err())
		case <-tick.C:
		}
	}
}

// URL is moto's base URL, http://127.0.0.1:PORT.
func (m *Moto) URL() string { return m.url }

// Stop kills moto's whole process group and waits for it to exit. It is
// safe to call more than once.
func (m *Moto) Stop() {
	m.stopOnce.Do(func() {
		pgid := m.cmd.Process.Pid
		_ = syscall.Kill(-pgid, syscall.SIGTERM)
		select {
		case <-m.done:
		case <-time.After(5 * time.Second):
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
			<-m.done
		}
		// Children that ignored SIGTERM go too.
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
	})
}

// Env is what a process needs to reach this moto through the SDK's
// standard configuration, as KEY=VALUE pairs: the endpoint, dummy
// credentials, the region, no instance metadata and no shared config files.
func (m *Moto) Env() []string { return EnvFor(m.url) }

// SetEnv calls setenv (t.Setenv, os.Setenv) for each of Env.
func (m *Moto) SetEnv(setenv func(key, value string)) {
	for _, kv := range m.Env() {
		k, v, _ := strings.Cut(kv, "=")
		setenv(k, v)
	}
}

// EnvFor is Env for any endpoint, e.g. a FaultProxy's URL.
func EnvFor(endpoint string) []string {
	return []string{
		"AWS_ENDPOINT_URL=" + endpoint,
		"AWS_ACCESS_KEY_ID=test",
		"AWS_SECRET_ACCESS_KEY=test",
		"AWS_SESSION_TOKEN=",
		"AWS_REGION=" + Region,
		"AWS_EC2_METADATA_DISABLED=true",
		"AWS_CONFIG_FILE=/dev/null",
		"AWS_SHARED_CREDENTIALS_FILE=/dev/null",
		"AWS_PROFILE=",
	}
}

// Config is an aws.Config that reaches this moto without reading the
// process environment: for harness code and tests that must not depend on
// (or change) it.
func (m *Moto) Config() aws.Config { return ConfigFor(m.url) }

// ConfigFor is Config for any endpoint.
func ConfigFor(endpoint string) aws.Config {
	return aws.Config{
		Region:       Region,
		Credentials:  credentials.NewStaticCredentialsProvider("test", "test", ""),
		BaseEndpoint: aws.String(endpoint),
	}
}

// Reset empties moto's state (POST /moto-api/reset).
func (m *Moto) Reset(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, m.url+"/moto-api/reset", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("reset moto: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("reset moto: HTTP %d", resp.StatusCode)
	}
	return nil
}

// freePort returns a TCP port that was free on ip a moment ago.
func freePort(ip string) (int, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		return 0, fmt.Errorf("find a free port on %s: %w", ip, err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

var errClosed = errors.New("emulator: closed")
