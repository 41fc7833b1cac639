package config

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"strings"
	"time"
)

// Notifications configures where medic's events are sent (see alerts/ and
// docs/notifications.md). Webhook URLs and tokens are secrets: they are read
// from a file or the environment, never written in the config.
type Notifications struct {
	// DedupWindow: an event identical to one delivered less than this ago
	// (same kind, service, subject and resolved flag) is not sent again.
	// Default 10m.
	DedupWindow Duration `yaml:"dedup_window"`
	// DigestWindow and DigestThreshold: when more than DigestThreshold
	// events of one kind for one service arrive within DigestWindow, the
	// rest of them are sent as one digest at the end of the window.
	// Defaults 10m and 5.
	DigestWindow    Duration `yaml:"digest_window"`
	DigestThreshold int      `yaml:"digest_threshold"`
	// QueueSize bounds each sink's queue; when full, the oldest queued
	// event is dropped. Default 1000.
	QueueSize int `yaml:"queue_size"`
	// Timeout of one delivery attempt. Default 10s.
	Timeout Duration           `yaml:"timeout"`
	Retry   NotificationRetry  `yaml:"retry"`
	Sinks   []NotificationSink `yaml:"sinks"`
}

// NotificationRetry bounds the retries of one delivery (exponential
// backoff with jitter).
type NotificationRetry struct {
	// MaxAttempts, the first one included. Default 5.
	MaxAttempts     int      `yaml:"max_attempts"`
	InitialInterval Duration `yaml:"initial_interval"` // default 1s
	MaxInterval     Duration `yaml:"max_interval"`     // default 30s
}

// Sink types.
const (
	SinkSNS          = "sns"
	SinkWebhook      = "webhook"
	SinkSlack        = "slack"
	SinkAlertmanager = "alertmanager"
)

// NotificationSink is one destination for events.
type NotificationSink struct {
	// Name labels the sink's metrics and logs. Default: the type.
	Name string `yaml:"name"`
	Type string `yaml:"type"` // sns | webhook | slack | alertmanager

	// TopicARN (sns): the SNS topic published to. The SNS client is
	// built from the controller's AWS config (AWS_ENDPOINT_URL applies).
	TopicARN string `yaml:"topic_arn"`

	// URL (alertmanager only, without credentials): Alertmanager's base
	// URL, e.g. http://127.0.0.1:9093. Webhook and Slack URLs are secrets
	// and come from URLFile (a file holding the URL) or URLEnv (the name of
	// an environment variable holding it).
	URL     string `yaml:"url"`
	URLFile string `yaml:"url_file"`
	URLEnv  string `yaml:"url_env"`
	// URLs (alertmanager only, instead of url): the base URLs of every
	// Alertmanager of a cluster. As Prometheus does, each alert is posted
	// to each of them; a delivery counts as sent when one took it.
	URLs []string `yaml:"urls"`
	// HTTPConfig (webhook, slack, alertmanager): TLS, basic auth or
	// authorization, OAuth2, proxy, as in Alertmanager's receivers. Its
	// secrets come from *_file fields or from environment variables named
	// by *_ref fields, never from the config itself.
	HTTPConfig *HTTPClientConfig `yaml:"http_config"`
	// TokenFile / TokenEnv (webhook, alertmanager): a bearer token sent as
	// "Authorization: Bearer <token>".
	TokenFile string `yaml:"token_file"`
	TokenEnv  string `yaml:"token_env"`

	// Timeout and QueueSize override the notifications-wide values.
	Timeout   Duration `yaml:"timeout"`
	QueueSize int      `yaml:"queue_size"`
	// MinSeverity: events below it are not sent here (info < warning <
	// critical; "action", the former name of critical, is still
	// accepted). Default info.
	MinSeverity string `yaml:"min_severity"`
	// RunbookURL, when set, is linked from messages (with "#<kind>").
	RunbookURL string `yaml:"runbook_url"`

	// ResendInterval (alertmanager): active alerts are posted again this
	// often so Alertmanager does not resolve them. Default 1m.
	ResendInterval Duration `yaml:"resend_interval"`
	// AlertTTL (alertmanager): an alert with no fresh event and no
	// resolution for this long is no longer re-posted, and Alertmanager
	// resolves it. Default 1h.
	AlertTTL Duration `yaml:"alert_ttl"`
}

// Defaulted returns a copy of n with every default applied, whether or not
// setDefaults ran before (it is idempotent). Code that builds a
// Notifications by hand (tests, alerts.NewDispatcher) goes through it.
func (n Notifications) Defaulted() Notifications {
	out := n
	out.Sinks = append([]NotificationSink(nil), n.Sinks...)
	out.setDefaults()
	return out
}

func (n *Notifications) setDefaults() {
	setDur := func(d *Duration, def time.Duration) {
		if *d == 0 {
			*d = Duration(def)
		}
	}
	setDur(&n.DedupWindow, 10*time.Minute)
	setDur(&n.DigestWindow, 10*time.Minute)
	if n.DigestThreshold == 0 {
		n.DigestThreshold = 5
	}
	if n.QueueSize == 0 {
		n.QueueSize = 1000
	}
	setDur(&n.Timeout, 10*time.Second)
	if n.Retry.MaxAttempts == 0 {
		n.Retry.MaxAttempts = 5
	}
	setDur(&n.Retry.InitialInterval, time.Second)
	setDur(&n.Retry.MaxInterval, 30*time.Second)
	for i := range n.Sinks {
		s := &n.Sinks[i]
		if s.Name == "" {
			s.Name = s.Type
		}
		setDur(&s.Timeout, n.Timeout.D())
		if s.QueueSize == 0 {
			s.QueueSize = n.QueueSize
		}
		if s.MinSeverity == "" {
			s.MinSeverity = "info"
		}
		if s.Type == SinkAlertmanager {
			setDur(&s.ResendInterval, time.Minute)
			setDur(&s.AlertTTL, time.Hour)
		}
	}
}

var sinkNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// topicARNRE matches arn:PARTITION:sns:REGION:ACCOUNT:NAME.
var topicARNRE = regexp.MustCompile(`^arn:aws[a-z-]*:sns:[a-z0-9-]+:[0-9]{12}:[A-Za-z0-9_-]{1,256}(\.fifo)?$`)

func (n *Notifications) check(c *checker, path string) {
	positive := func(field string, d Duration) {
		if d <= 0 {
			c.errorf(path+"."+field, "must be positive, got %s", d.D())
		}
	}
	positive("dedup_window", n.DedupWindow)
	positive("digest_window", n.DigestWindow)
	positive("timeout", n.Timeout)
	positive("retry.initial_interval", n.Retry.InitialInterval)
	positive("retry.max_interval", n.Retry.MaxInterval)
	if n.DigestThreshold < 1 {
		c.errorf(path+".digest_threshold", "must be at least 1, got %d", n.DigestThreshold)
	}
	if n.QueueSize < 1 || n.QueueSize > 1_000_000 {
		c.errorf(path+".queue_size", "must be between 1 and 1000000, got %d", n.QueueSize)
	}
	if n.Retry.MaxAttempts < 1 || n.Retry.MaxAttempts > 20 {
		c.errorf(path+".retry.max_attempts", "must be between 1 and 20, got %d", n.Retry.MaxAttempts)
	}
	if n.Retry.InitialInterval > n.Retry.MaxInterval {
		c.errorf(path+".retry.initial_interval", "must not exceed retry.max_interval (%s)", n.Retry.MaxInterval.D())
	}
	seen := map[string]int{}
	for i := range n.Sinks {
		p := fmt.Sprintf("%s.sinks[%d]", path, i)
		n.Sinks[i].check(c, p)
		name := n.Sinks[i].Name
		if j, ok := seen[name]; ok {
			c.errorf(p+".name", "duplicate sink name %q (also sinks[%d]); give each sink a name", name, j)
		} else {
			seen[name] = i
		}
	}
}

func (s *NotificationSink) check(c *checker, p string) {
	if !sinkNameRE.MatchString(s.Name) {
		c.errorf(p+".name", "%q must match %s", s.Name, sinkNameRE)
	}
	switch s.MinSeverity {
	case "info", "warning", "critical", "action":
	default:
		c.errorf(p+".min_severity", "%q is not one of info, warning, critical", s.MinSeverity)
	}
	if s.Timeout <= 0 {
		c.errorf(p+".timeout", "must be positive, got %s", s.Timeout.D())
	}
	if s.QueueSize < 1 || s.QueueSize > 1_000_000 {
		c.errorf(p+".queue_size", "must be between 1 and 1000000, got %d", s.QueueSize)
	}
	if s.RunbookURL != "" {
		if err := checkPlainURL(s.RunbookURL); err != nil {
			c.errorf(p+".runbook_url", "%v", err)
		}
	}
	// refuse sets the error for every field that the type does not take.
	refuse := func(field, val string) {
		if val != "" {
			c.errorf(p+"."+field, "not used by the %s sink type", s.Type)
		}
	}
	if s.Type != SinkAlertmanager {
		if s.ResendInterval != 0 {
			c.errorf(p+".resend_interval", "only for an alertmanager sink")
		}
		if s.AlertTTL != 0 {
			c.errorf(p+".alert_ttl", "only for an alertmanager sink")
		}
	}

	switch s.Type {
	case SinkSNS:
		if s.TopicARN == "" {
			c.errorf(p+".topic_arn", "required for an sns sink")
		} else if !topicARNRE.MatchString(s.TopicARN) {
			c.errorf(p+".topic_arn", "%q is not an SNS topic ARN (arn:aws:sns:REGION:ACCOUNT:NAME)", s.TopicARN)
		}
		refuse("url", s.URL)
		refuse("url_file", s.URLFile)
		refuse("url_env", s.URLEnv)
		refuse("token_file", s.TokenFile)
		refuse("token_env", s.TokenEnv)
		if len(s.URLs) > 0 {
			c.errorf(p+".urls", "not used by the %s sink type", s.Type)
		}
		if s.HTTPConfig != nil {
			c.errorf(p+".http_config", "not used by the %s sink type", s.Type)
		}
		return
	case SinkWebhook, SinkSlack, SinkAlertmanager:
		refuse("topic_arn", s.TopicARN)
	case "":
		c.errorf(p+".type", "required: one of sns, webhook, slack, alertmanager")
		return
	default:
		c.errorf(p+".type", "%q is not one of sns, webhook, slack, alertmanager", s.Type)
		return
	}

	if s.Type == SinkSlack {
		refuse("token_file", s.TokenFile)
		refuse("token_env", s.TokenEnv)
	}
	if s.Type == SinkAlertmanager {
		if s.ResendInterval <= 0 {
			c.errorf(p+".resend_interval", "must be positive, got %s", s.ResendInterval.D())
		}
		if s.AlertTTL < s.ResendInterval {
			c.errorf(p+".alert_ttl", "must be at least resend_interval (%s)", s.ResendInterval.D())
		}
	}

	s.HTTPConfig.check(c, p+".http_config")
	if (s.TokenFile != "" || s.TokenEnv != "") && s.HTTPConfig != nil &&
		(s.HTTPConfig.BasicAuth != nil || s.HTTPConfig.Authorization != nil || s.HTTPConfig.OAuth2 != nil || s.HTTPConfig.BearerTokenFile != "") {
		c.errorf(p, "set the credentials once: token_file/token_env or http_config's basic_auth, authorization, oauth2 or bearer_token_file")
	}

	set := 0
	for _, v := range []string{s.URL, s.URLFile, s.URLEnv} {
		if v != "" {
			set++
		}
	}
	if len(s.URLs) > 0 {
		set++
		if s.Type != SinkAlertmanager {
			c.errorf(p+".urls", "only for an alertmanager sink (a %s URL is a secret: url_file or url_env)", s.Type)
		}
		seen := map[string]bool{}
		for i, u := range s.URLs {
			f := fmt.Sprintf("%s.urls[%d]", p, i)
			if err := checkPlainURL(u); err != nil {
				c.errorf(f, "%v", err)
			}
			if k := strings.TrimSuffix(u, "/"); seen[k] {
				c.errorf(f, "%q is listed twice", u)
			} else {
				seen[k] = true
			}
		}
	}
	switch {
	case s.URL != "" && s.Type != SinkAlertmanager:
		// Never echo the value: it is likely a secret.
		c.errorf(p+".url", "a %s URL is a secret: put it in a file (url_file) or the environment (url_env), not in the config", s.Type)
	case set == 0:
		if s.Type == SinkAlertmanager {
			c.errorf(p, "one of url, urls, url_file or url_env is required")
		} else {
			c.errorf(p, "one of url_file or url_env is required")
		}
	case set > 1:
		c.errorf(p, "set only one of url, urls, url_file and url_env")
	case len(s.URLs) > 0:
	case s.URL != "":
		if err := checkPlainURL(s.URL); err != nil {
			c.errorf(p+".url", "%v", err)
		}
	default:
		field := "url_file"
		if s.URLEnv != "" {
			field = "url_env"
		}
		if _, err := s.ResolveURL(); err != nil {
			c.errorf(p+"."+field, "%v", err)
		}
	}

	if s.Type == SinkSlack {
		return // a Slack URL carries its own token; refused above
	}
	if s.TokenFile != "" && s.TokenEnv != "" {
		c.errorf(p, "set only one of token_file and token_env")
	} else if s.TokenFile != "" || s.TokenEnv != "" {
		field := "token_file"
		if s.TokenEnv != "" {
			field = "token_env"
		}
		if _, err := s.ResolveToken(); err != nil {
			c.errorf(p+"."+field, "%v", err)
		}
	}
}

// checkPlainURL accepts an http(s) URL that carries no credentials: no
// user info and no query string (where tokens hide).
func checkPlainURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return errors.New("not a valid URL")
	}
	if u.User != nil {
		return errors.New("must not carry credentials (user:password@); use url_file or url_env")
	}
	if u.RawQuery != "" {
		return errors.New("must not carry a query string (it may hold a token); use url_file or url_env")
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("scheme must be http or https, got %q", u.Scheme)
	}
	if u.Host == "" {
		return errors.New("has no host")
	}
	return nil
}

// ResolveURL returns the sink's URL from url, url_file or url_env. Errors
// name where the URL was looked for, never the URL itself.
func (s NotificationSink) ResolveURL() (string, error) {
	var raw string
	switch {
	case s.URL != "":
		raw = s.URL
	case s.URLFile != "":
		v, err := readSecretFile(s.URLFile)
		if err != nil {
			return "", err
		}
		raw = v
	case s.URLEnv != "":
		v, ok := os.LookupEnv(s.URLEnv)
		if !ok || strings.TrimSpace(v) == "" {
			return "", fmt.Errorf("environment variable %s is not set or empty", s.URLEnv)
		}
		raw = strings.TrimSpace(v)
	default:
		return "", errors.New("no url, url_file or url_env")
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", errors.New("the secret does not hold an http or https URL")
	}
	return raw, nil
}

// ResolveToken returns the bearer token from token_file or token_env, or
// "" when neither is set.
func (s NotificationSink) ResolveToken() (string, error) {
	switch {
	case s.TokenFile != "":
		return readSecretFile(s.TokenFile)
	case s.TokenEnv != "":
		v, ok := os.LookupEnv(s.TokenEnv)
		if !ok || strings.TrimSpace(v) == "" {
			return "", fmt.Errorf("environment variable %s is not set or empty", s.TokenEnv)
		}
		return strings.TrimSpace(v), nil
	}
	return "", nil
}

// readSecretFile returns the file's content without surrounding space.
func readSecretFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		// The *PathError names the file, not its content.
		return "", fmt.Errorf("reading secret: %w", err)
	}
	v := strings.TrimSpace(string(b))
	if v == "" {
		return "", fmt.Errorf("secret file %s is empty", path)
	}
	return v, nil
}
