package config_test

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/medic-sre/medic/config"
)

// http_config, urls and the secrets' sources load as written.
func TestNotificationsHTTPConfig(t *testing.T) {
	t.Setenv("MEDIC_TEST_HOOK_URL", "http://127.0.0.1:1/hook")
	t.Setenv("MEDIC_TEST_HOOK_TOKEN", "tok")
	cfg, err := config.Load(filepath.Join("testdata", "notifications", "valid-http-config.yml"), probeTypes)
	if err != nil {
		t.Fatal(err)
	}
	am := cfg.Notifications.Sinks[0]
	if len(am.URLs) != 2 || am.HTTPConfig == nil || am.HTTPConfig.BasicAuth.Username != "medic" ||
		am.HTTPConfig.TLSConfig.ServerName != "alertmanager.example" || am.HTTPConfig.ProxyURL.String() != "http://127.0.0.1:3128" {
		t.Errorf("alertmanager sink = %+v", am)
	}
	pc, err := am.HTTPConfig.Client()
	if err != nil || pc.BasicAuth.PasswordFile == "" {
		t.Errorf("Client() = %+v, %v", pc, err)
	}
	if cfg.Notifications.Sinks[2].MinSeverity != "critical" {
		t.Errorf("min_severity = %q", cfg.Notifications.Sinks[2].MinSeverity)
	}
	// Without http_config: no redirects, proxies from the environment.
	pc, err = cfg.Notifications.Sinks[2].HTTPConfig.Client()
	if err != nil || pc.FollowRedirects || !pc.ProxyFromEnvironment {
		t.Errorf("default Client() = %+v, %v", pc, err)
	}
	v, err := config.EnvSecrets{}.Fetch(t.Context(), "MEDIC_TEST_HOOK_TOKEN")
	if err != nil || v != "tok" {
		t.Errorf("EnvSecrets.Fetch = %q, %v", v, err)
	}
}

// Every problem of http_config and urls, each with its line and field.
func TestNotificationsHTTPConfigInvalid(t *testing.T) {
	t.Setenv("MEDIC_TEST_HOOK_URL", "http://127.0.0.1:1/hook")
	t.Setenv("MEDIC_TEST_HOOK_TOKEN", "tok")
	path := filepath.Join("testdata", "notifications", "invalid-http-config.yml")
	_, err := config.Load(path, probeTypes)
	if err == nil {
		t.Fatal("loaded without error")
	}
	want := []string{
		`9: notifications.sinks[0].urls[1]: "http://127.0.0.1:9093/" is listed twice`,
		`9: notifications.sinks[0].urls[2]: scheme must be http or https, got "ftp"`,
		`13: notifications.sinks[0].http_config.basic_auth.password: a secret: put it in a file (password_file) or the environment (password_ref names the variable), not in the config`,
		`14: notifications.sinks[0].http_config.tls_config: exactly one of cert or cert_file must be configured when a client key is configured`,
		`15: notifications.sinks[0].http_config.tls_config.key_file: reading secret: open testdata/notifications/missing.key: no such file or directory`,
		`16: notifications.sinks[0].http_config.proxy_url: must not carry credentials (user:password@); use proxy_connect_header with a file`,
		`17: notifications.sinks[1]: set the credentials once: token_file/token_env or http_config's basic_auth, authorization, oauth2 or bearer_token_file`,
		`23: notifications.sinks[1].http_config.authorization.credentials_ref: environment variable MEDIC_TEST_UNSET_TOKEN is not set or empty`,
		`27: notifications.sinks[2].urls: not used by the sns sink type`,
		`28: notifications.sinks[2].http_config: not used by the sns sink type`,
		`29: notifications.sinks[3]: set only one of url, urls, url_file and url_env`,
		`32: notifications.sinks[3].urls: only for an alertmanager sink (a slack URL is a secret: url_file or url_env)`,
		`33: notifications.sinks[3].http_config: at most one of basic_auth password, password_file & password_ref must be configured`,
		`34: notifications.sinks[3].http_config.basic_auth.password_file: reading secret: open a: no such file or directory`,
		`34: notifications.sinks[3].http_config.basic_auth.password_ref: environment variable B is not set or empty`,
		`35: notifications.sinks[3].min_severity: "page" is not one of info, warning, critical`,
	}
	for i := range want {
		want[i] = path + ":" + want[i]
	}
	got := problems(t, err)
	if !slices.Equal(got, want) {
		t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if strings.Contains(err.Error(), "hunter2") {
		t.Errorf("the error shows the inline password")
	}
}

// What Prometheus's types would refuse while decoding, without a line,
// is reported at its line and field, with the other decode errors.
func TestNotificationsHTTPConfigDecodeErrors(t *testing.T) {
	path := filepath.Join("testdata", "notifications", "invalid-http-config-decode.yml")
	_, err := config.Load(path, probeTypes)
	if err == nil {
		t.Fatal("loaded without error")
	}
	want := []string{
		`12: notifications.sinks[0].http_config.tls_config.insecure_skip_verfy: unknown field`,
		`13: notifications.sinks[0].http_config.tls_config.min_version: "TLS9" is not a TLS version (TLS10, TLS11, TLS12, TLS13)`,
		`14: notifications.sinks[0].http_config.proxy_url: "http://[::1" is not a URL`,
	}
	for i := range want {
		want[i] = path + ":" + want[i]
	}
	if got := problems(t, err); !slices.Equal(got, want) {
		t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
