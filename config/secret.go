package config

import (
	"fmt"
	"io"
	"net/http"
)

const redacted = "<secret>"

// Secret is a value read from the environment at load (a credential). Every
// way of printing it — fmt verbs, String, YAML, JSON, text marshalling —
// shows "<secret>"; only Reveal returns the value.
type Secret string

// Reveal returns the value itself, for the one place that must send it.
func (s Secret) Reveal() string { return string(s) }

// String returns "<secret>".
func (Secret) String() string { return redacted }

// Format prints "<secret>" whatever the verb.
func (Secret) Format(f fmt.State, _ rune) { io.WriteString(f, redacted) }

// MarshalText returns "<secret>".
func (Secret) MarshalText() ([]byte, error) { return []byte(redacted), nil }

// MarshalYAML returns "<secret>".
func (Secret) MarshalYAML() (any, error) { return redacted, nil }

// RequestHeader returns the headers an http probe sends: Headers and the
// resolved HeadersFromEnv, with canonical names. The result holds secrets in
// clear; send it, never log it.
func (p Probe) RequestHeader() http.Header {
	h := make(http.Header, len(p.Headers)+len(p.SecretHeaders))
	for k, v := range p.Headers {
		h.Set(k, v)
	}
	for k, v := range p.SecretHeaders {
		h.Set(k, v.Reveal())
	}
	return h
}
