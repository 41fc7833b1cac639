package config_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/medic-sre/medic/config"
)

// TestEndpointQuerySecrets: an endpoint whose query names a secret is
// refused at load, with the value hidden in the message.
func TestEndpointQuerySecrets(t *testing.T) {
	tests := []struct {
		desc     string
		endpoint string
		refused  string // the keys named in the problem; "" when it loads
	}{
		{"token", "https://web.example.com/health?token=abc123", "token"},
		{"access_token among others", "https://web.example.com/health?x=1&access_token=abc", "access_token"},
		{"api key written three ways", "https://web.example.com/?apikey=a&api_key=b&Api-Key=c", "Api-Key, api_key, apikey"},
		{"bare key", "https://web.example.com/?key=a", "key"},
		{"signed URL", "https://web.example.com/?X-Amz-Signature=a&X-Amz-Credential=b", "X-Amz-Credential, X-Amz-Signature"},
		{"password and secret", "https://web.example.com/?password=a&client_secret=b", "client_secret, password"},
		{"harmless query", "https://web.example.com/health?verbose=1&format=json", ""},
		{"a word that only contains key-ish letters", "https://web.example.com/health?monkey=1&keyboard=2", ""},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			_, err := parse(t, `
services:
	- name: web
		endpoint: "`+tt.endpoint+`"
		static_targets: [web.example.com:80]
`)
			if tt.refused == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			got := problems(t, err)
			want := "holds a secret in its query (" + tt.refused + ")"
			if len(got) != 1 || !strings.Contains(got[0], want) {
				t.Fatalf("problems = %q, want one saying %q", got, want)
			}
			if strings.Contains(got[0], "abc") || strings.Contains(got[0], "=a") {
				t.Errorf("the problem shows a secret value: %s", got[0])
			}
		})
	}
}

// TestSecretHeaderWarnings: headers_from_env sent over plain http or to an
// unverified server loads, with a warning at the line that asks for it.
func TestSecretHeaderWarnings(t *testing.T) {
	t.Setenv("MEDIC_TEST_TOKEN", "s3cret")
	tests := []struct {
		desc string
		src  string
		want []string
	}{
		{"instance probe over http; the endpoint probe inherits it over http", `
services:
	- name: web
		endpoint: http://web.example.com/health
		auto_scaling_groups: [web-asg]
		instance_probe:
			port: 8080
			headers_from_env: {X-Api-Key: MEDIC_TEST_TOKEN}
`, []string{
			"inline.yml:7: services[0].instance_probe.headers_from_env: instance_probe sends X-Api-Key from headers_from_env over plain http: anyone on the path can read it; use https",
			"inline.yml:7: services[0].instance_probe.headers_from_env: endpoint_probe sends X-Api-Key from headers_from_env over plain http: anyone on the path can read it; use https"}},
		{"https without verification", `
services:
	- name: web
		endpoint: https://web.example.com/health
		static_targets: [web.example.com:80]
		endpoint_probe:
			tls: {insecure_skip_verify: true}
			headers_from_env: {Authorization: MEDIC_TEST_TOKEN}
`, []string{
			"inline.yml:7: services[0].endpoint_probe.headers_from_env: endpoint_probe sends Authorization from headers_from_env with tls.insecure_skip_verify: any server that answers gets it"}},
		{"https, verified: nothing to say", `
services:
	- name: web
		endpoint: https://web.example.com/health
		static_targets: [web.example.com:80]
		endpoint_probe:
			headers_from_env: {Authorization: MEDIC_TEST_TOKEN}
`, nil},
		{"http without secret headers: nothing to say", `
services:
	- name: web
		auto_scaling_groups: [web-asg]
		instance_probe: {port: 8080}
`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			cfg, err := parse(t, tt.src)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(cfg.Warnings, tt.want) {
				t.Errorf("warnings:\n%s\nwant:\n%s", strings.Join(cfg.Warnings, "\n"), strings.Join(tt.want, "\n"))
			}
			if strings.Contains(strings.Join(cfg.Warnings, ""), "s3cret") {
				t.Error("a warning shows the secret")
			}
		})
	}
}

func TestRedactURL(t *testing.T) {
	tests := []struct{ desc, in, want string }{
		{"query values hidden, keys kept", "https://h.example.com/p?a=1&b=two", "https://h.example.com/p?a=xxxxx&b=xxxxx"},
		{"password hidden", "https://u:pw@h.example.com/", "https://u:xxxxx@h.example.com/"},
		{"nothing to hide", "http://h.example.com:8080/health", "http://h.example.com:8080/health"},
		{"not a URL", "127.0.0.1:80", "127.0.0.1:80"},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			if got := config.RedactURL(tt.in); got != tt.want {
				t.Errorf("RedactURL(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}
