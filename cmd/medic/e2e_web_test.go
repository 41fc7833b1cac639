package main

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// TestE2EWebConfigBasicAuth: with --web.config.file (exporter-toolkit's
// format) every endpoint asks for the configured user; --config.check
// refuses a broken web config.
func TestE2EWebConfigBasicAuth(t *testing.T) {
	w := newWorld(t, fleetOpts{PerAZ: 1})
	hash, err := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	webCfg := filepath.Join(dir, "web.yml")
	if err := os.WriteFile(webCfg, []byte("basic_auth_users:\n  prom: "+string(hash)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := w.writeConfig("medic.yml", w.config(cfgOpts{}))
	m := w.startMedic(cfg, "--web.config.file="+webCfg)

	get := func(path, user, pass string) int {
		req, _ := http.NewRequest(http.MethodGet, "http://"+m.addr+path, nil)
		if user != "" {
			req.SetBasicAuth(user, pass)
		}
		resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, path := range []string{"/metrics", "/-/healthy", "/"} {
		if code := get(path, "", ""); code != http.StatusUnauthorized {
			t.Errorf("GET %s without credentials = %d, want 401", path, code)
		}
		if code := get(path, "prom", "wrong"); code != http.StatusUnauthorized {
			t.Errorf("GET %s with a wrong password = %d, want 401", path, code)
		}
		if code := get(path, "prom", "s3cret"); code != http.StatusOK {
			t.Errorf("GET %s with the password = %d, want 200", path, code)
		}
	}
	if strings.Contains(m.out.String(), "s3cret") {
		t.Error("medic's output shows the password")
	}

	bad := filepath.Join(dir, "bad-web.yml")
	if err := os.WriteFile(bad, []byte("tls_server_config:\n  cert_file: /nonexistent.pem\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out := runToEnd(t, append(os.Environ(), w.proxy.Env()...), "--config.check", "--config.file="+cfg, "--web.config.file="+bad)
	if code == 0 {
		t.Errorf("--config.check with a broken web config exited 0:\n%s", out)
	}
}
