// Package statuspage renders medic's status page: each service, its
// instances with their last probes, judged state and reason, what medic did
// or refused to do and why, and, when a Limits is given, quota headroom.
//
// The page is server-rendered with html/template (every name, reason and
// detail is escaped), needs no JavaScript, refreshes itself every
// RefreshSeconds and is served with a Content-Security-Policy that allows
// no script at all. A per-target debug view, like blackbox_exporter's
// debug=true, prints a target's recent probes as text/plain.
package statuspage

import (
	"bufio"
	_ "embed"
	"html/template"
	"net/http"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"

	"github.com/medic-sre/medic/controller"
	"github.com/medic-sre/medic/internal/logkeys"
	"github.com/medic-sre/medic/limits"
)

// RefreshSeconds is how often the page reloads itself.
const RefreshSeconds = 5

// DefaultMaxRows bounds the instance rows shown per service unless the
// request asks for all=1. Rows are sorted worst first (bad, suspect,
// unknown, not in service, grace, healthy), so what is left out is the
// least interesting; the page says how many rows it left out.
const DefaultMaxRows = 500

// Source gives the page what to show. *controller.Controller is one.
type Source interface {
	Statuses() []controller.Status
}

// Readiness is optionally implemented by a Source: when it says not ready,
// the page shows why at the top. *controller.Controller implements it.
type Readiness interface {
	Ready() (bool, string)
}

// Limits gives the page the quota headroom section. *limits.Watcher is
// one. Without a Limits the section is left out.
type Limits interface {
	Snapshot() limits.Snapshot
}

// Option tunes a Page.
type Option func(*Page)

// WithLimits adds the quota headroom section, read from l at each request.
func WithLimits(l Limits) Option { return func(p *Page) { p.limits = l } }

// WithClock sets the clock used for "x ago". Default time.Now.
func WithClock(now func() time.Time) Option { return func(p *Page) { p.now = now } }

// WithMaxRows sets how many instance rows a service shows without all=1
// (default DefaultMaxRows; 0 or less shows every row).
func WithMaxRows(n int) Option { return func(p *Page) { p.maxRows = n } }

// Page is the status page handler. It keeps nothing between requests: the
// recent events it lists are the ones the controller's reporter made
// (controller.Status.Events).
type Page struct {
	src     Source
	limits  Limits
	logger  log.Logger
	now     func() time.Time
	maxRows int
	tmpl    *template.Template
}

//go:embed page.html.tmpl
var pageTemplate string

var tmpl = template.Must(template.New("page").Parse(pageTemplate))

// Handler returns the status page: "/" renders every service;
// "/debug/target?key=K" (or "/?target=K&debug=true") prints target K's
// recent probes as text/plain, 404 for an unknown key. Any other path is 404.
func Handler(src Source, logger log.Logger, opts ...Option) http.Handler {
	return New(src, logger, opts...)
}

// New returns the Page behind Handler.
func New(src Source, logger log.Logger, opts ...Option) *Page {
	if logger == nil {
		logger = log.NewNopLogger()
	}
	p := &Page{
		src:     src,
		logger:  log.With(logger, logkeys.Component, "statuspage"),
		now:     time.Now,
		maxRows: DefaultMaxRows,
		tmpl:    tmpl,
	}
	for _, o := range opts {
		o(p)
	}
	return p
}

// ServeHTTP routes the page and the debug view.
func (p *Page) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "the status page is read-only: use GET", http.StatusMethodNotAllowed)
		return
	}
	q := r.URL.Query()
	switch {
	case r.URL.Path == "/debug/target":
		p.serveDebug(w, q.Get("key"))
	case r.URL.Path == "/" && q.Get("debug") == "true" && q.Has("target"):
		p.serveDebug(w, q.Get("target"))
	case r.URL.Path == "/":
		p.servePage(w, q.Get("all") == "1")
	default:
		http.NotFound(w, r)
	}
}

// securityHeaders forbid scripts, frames and MIME sniffing: even markup
// that slipped past escaping could not run.
func securityHeaders(h http.Header) {
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
}

func (p *Page) servePage(w http.ResponseWriter, all bool) {
	now := p.now()
	sts := p.src.Statuses()
	v := p.build(sts, now, all)

	securityHeaders(w.Header())
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	bw := bufio.NewWriterSize(w, 64<<10)
	if err := p.tmpl.Execute(bw, v); err != nil {
		// Headers are gone; the page ends short. Say so in the log.
		level.Error(p.logger).Log(logkeys.Msg, "rendering the status page failed", logkeys.Err, err)
	}
	if err := bw.Flush(); err != nil {
		level.Debug(p.logger).Log(logkeys.Msg, "writing the status page failed", logkeys.Err, err)
	}
}
