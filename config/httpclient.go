package config

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"strings"

	promconfig "github.com/prometheus/common/config"
	"go.yaml.in/yaml/v3"
)

// HTTPClientConfig is the http_config of an HTTP notification sink: the
// fields of Prometheus's and Alertmanager's http_config (basic_auth,
// authorization, oauth2, tls_config, proxy_url, ...), decoded strictly and
// checked with file:line like the rest of the file.
//
// Secrets never sit in the config itself: each comes from a file (the
// *_file fields, read at every request as Alertmanager does) or from the
// environment (the *_ref fields name an environment variable; see
// EnvSecrets).
type HTTPClientConfig promconfig.HTTPClientConfig

// httpClientYAML is HTTPClientConfig as decoded. Prometheus's types
// validate while they decode, and such an error stops the whole decoder
// without a line: here tls_config, oauth2 and proxy_url decode without
// it (a bad TLS version or proxy URL is a decode error at its line and
// column), and check validates the rest afterwards, at its field.
type httpClientYAML struct {
	BasicAuth          *promconfig.BasicAuth     `yaml:"basic_auth,omitempty"`
	Authorization      *promconfig.Authorization `yaml:"authorization,omitempty"`
	OAuth2             *oauth2YAML               `yaml:"oauth2,omitempty"`
	BearerToken        promconfig.Secret         `yaml:"bearer_token,omitempty"`
	BearerTokenFile    string                    `yaml:"bearer_token_file,omitempty"`
	TLSConfig          tlsYAML                   `yaml:"tls_config,omitempty"`
	FollowRedirects    bool                      `yaml:"follow_redirects"`
	EnableHTTP2        bool                      `yaml:"enable_http2"`
	ProxyURL           proxyURL                  `yaml:"proxy_url,omitempty"`
	NoProxy            string                    `yaml:"no_proxy,omitempty"`
	ProxyFromEnv       bool                      `yaml:"proxy_from_environment,omitempty"`
	ProxyConnectHeader promconfig.ProxyHeader    `yaml:"proxy_connect_header,omitempty"`
	HTTPHeaders        *promconfig.Headers       `yaml:"http_headers,omitempty"`
}

// tlsYAML is promconfig.TLSConfig with versions that report their line.
type tlsYAML struct {
	CA                 string            `yaml:"ca,omitempty"`
	Cert               string            `yaml:"cert,omitempty"`
	Key                promconfig.Secret `yaml:"key,omitempty"`
	CAFile             string            `yaml:"ca_file,omitempty"`
	CertFile           string            `yaml:"cert_file,omitempty"`
	KeyFile            string            `yaml:"key_file,omitempty"`
	CARef              string            `yaml:"ca_ref,omitempty"`
	CertRef            string            `yaml:"cert_ref,omitempty"`
	KeyRef             string            `yaml:"key_ref,omitempty"`
	ServerName         string            `yaml:"server_name,omitempty"`
	InsecureSkipVerify bool              `yaml:"insecure_skip_verify"`
	MinVersion         tlsVersion        `yaml:"min_version,omitempty"`
	MaxVersion         tlsVersion        `yaml:"max_version,omitempty"`
}

func (t tlsYAML) prom() promconfig.TLSConfig {
	return promconfig.TLSConfig{
		CA: t.CA, Cert: t.Cert, Key: t.Key, CAFile: t.CAFile, CertFile: t.CertFile, KeyFile: t.KeyFile,
		CARef: t.CARef, CertRef: t.CertRef, KeyRef: t.KeyRef, ServerName: t.ServerName,
		InsecureSkipVerify: t.InsecureSkipVerify,
		MinVersion:         promconfig.TLSVersion(t.MinVersion), MaxVersion: promconfig.TLSVersion(t.MaxVersion),
	}
}

// oauth2YAML decodes oauth2 without its decode-time validation.
type oauth2YAML promconfig.OAuth2

// tlsVersion is a TLS version name (TLS10 ... TLS13).
type tlsVersion promconfig.TLSVersion

func (v *tlsVersion) UnmarshalYAML(n *yaml.Node) error {
	if t, ok := promconfig.TLSVersions[n.Value]; ok && n.Kind == yaml.ScalarNode {
		*v = tlsVersion(t)
		return nil
	}
	return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: column %d: %q is not a TLS version (TLS10, TLS11, TLS12, TLS13)", n.Line, n.Column, n.Value)}}
}

// proxyURL is a proxy URL that reports its line when it does not parse.
type proxyURL struct{ *url.URL }

func (u *proxyURL) UnmarshalYAML(n *yaml.Node) error {
	p, err := url.Parse(n.Value)
	if err != nil || n.Kind != yaml.ScalarNode {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: column %d: %q is not a URL", n.Line, n.Column, n.Value)}}
	}
	u.URL = p
	return nil
}

// UnmarshalYAML decodes h strictly, without Prometheus's decode-time
// validation (check does it, with lines).
func (h *HTTPClientConfig) UnmarshalYAML(unmarshal func(any) error) error {
	var y httpClientYAML
	if err := unmarshal(&y); err != nil {
		return err
	}
	*h = HTTPClientConfig{
		BasicAuth:       y.BasicAuth,
		Authorization:   y.Authorization,
		OAuth2:          (*promconfig.OAuth2)(y.OAuth2),
		BearerToken:     y.BearerToken,
		BearerTokenFile: y.BearerTokenFile,
		TLSConfig:       y.TLSConfig.prom(),
		FollowRedirects: y.FollowRedirects,
		EnableHTTP2:     y.EnableHTTP2,
		ProxyConfig: promconfig.ProxyConfig{
			ProxyURL: promconfig.URL{URL: y.ProxyURL.URL}, NoProxy: y.NoProxy,
			ProxyFromEnvironment: y.ProxyFromEnv, ProxyConnectHeader: y.ProxyConnectHeader,
		},
		HTTPHeaders: y.HTTPHeaders,
	}
	return nil
}

// Client returns the validated Prometheus form of h (nil h: the defaults of
// a sink without http_config: no redirects, proxies from the environment).
// The deprecated bearer_token_file is moved into authorization, as
// Prometheus does.
func (h *HTTPClientConfig) Client() (promconfig.HTTPClientConfig, error) {
	if h == nil {
		return promconfig.HTTPClientConfig{ProxyConfig: promconfig.ProxyConfig{ProxyFromEnvironment: true}}, nil
	}
	pc := promconfig.HTTPClientConfig(*h)
	if err := pc.TLSConfig.Validate(); err != nil {
		return pc, err
	}
	if pc.OAuth2 != nil {
		if err := pc.OAuth2.Validate(); err != nil {
			return pc, err
		}
	}
	if err := pc.Validate(); err != nil {
		return pc, err
	}
	return pc, nil
}

// EnvSecrets is the secret manager of http_config's *_ref fields
// (password_ref, credentials_ref, client_secret_ref, ca_ref, cert_ref,
// key_ref): a ref names an environment variable holding the secret.
type EnvSecrets struct{}

// Fetch returns the value of the environment variable ref, trimmed.
func (EnvSecrets) Fetch(_ context.Context, ref string) (string, error) {
	v, ok := os.LookupEnv(ref)
	if !ok || strings.TrimSpace(v) == "" {
		return "", fmt.Errorf("environment variable %s is not set or empty", ref)
	}
	return strings.TrimSpace(v), nil
}

// check reports what cannot work in h, each problem at its field: a secret
// written inline, a *_file that cannot be read, a *_ref whose environment
// variable is unset, and whatever Prometheus's own Validate refuses.
func (h *HTTPClientConfig) check(c *checker, p string) {
	if h == nil {
		return
	}
	inline := func(field string, set bool, alt string) {
		if set {
			c.errorf(p+"."+field, "a secret: put it in a file (%[1]s_file) or the environment (%[1]s_ref names the variable), not in the config", alt)
		}
	}
	file := func(field, path string) {
		if path == "" {
			return
		}
		if _, err := readSecretFile(path); err != nil {
			c.errorf(p+"."+field, "%v", err)
		}
	}
	ref := func(field, name string) {
		if name == "" {
			return
		}
		if _, err := (EnvSecrets{}).Fetch(context.Background(), name); err != nil {
			c.errorf(p+"."+field, "%v", err)
		}
	}
	if a := h.BasicAuth; a != nil {
		inline("basic_auth.password", a.Password != "", "password")
		file("basic_auth.username_file", a.UsernameFile)
		file("basic_auth.password_file", a.PasswordFile)
		ref("basic_auth.username_ref", a.UsernameRef)
		ref("basic_auth.password_ref", a.PasswordRef)
	}
	if a := h.Authorization; a != nil {
		inline("authorization.credentials", a.Credentials != "", "credentials")
		file("authorization.credentials_file", a.CredentialsFile)
		ref("authorization.credentials_ref", a.CredentialsRef)
	}
	if h.BearerToken != "" {
		c.errorf(p+".bearer_token", "a secret: use bearer_token_file, or authorization.credentials_file / credentials_ref")
	}
	file("bearer_token_file", h.BearerTokenFile)
	if o := h.OAuth2; o != nil {
		inline("oauth2.client_secret", o.ClientSecret != "", "client_secret")
		file("oauth2.client_secret_file", o.ClientSecretFile)
		ref("oauth2.client_secret_ref", o.ClientSecretRef)
	}
	t := h.TLSConfig
	inline("tls_config.key", t.Key != "", "key")
	file("tls_config.ca_file", t.CAFile)
	file("tls_config.cert_file", t.CertFile)
	file("tls_config.key_file", t.KeyFile)
	ref("tls_config.ca_ref", t.CARef)
	ref("tls_config.cert_ref", t.CertRef)
	ref("tls_config.key_ref", t.KeyRef)
	if u := h.ProxyURL.URL; u != nil && u.String() != "" {
		if u.Scheme != "http" && u.Scheme != "https" && u.Scheme != "socks5" {
			c.errorf(p+".proxy_url", "scheme must be http, https or socks5, got %q", u.Scheme)
		}
		if u.User != nil {
			c.errorf(p+".proxy_url", "must not carry credentials (user:password@); use proxy_connect_header with a file")
		}
	}
	section := p
	switch {
	case h.TLSConfig.Validate() != nil:
		section += ".tls_config"
	case h.OAuth2 != nil && h.OAuth2.Validate() != nil:
		section += ".oauth2"
	}
	if _, err := h.Client(); err != nil {
		c.errorf(section, "%v", err)
	}
}
