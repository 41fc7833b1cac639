package main

import (
	"context"
	"errors"
	"fmt"
	"mime"
	"net"
	"net/http"
	"net/http/pprof"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/coreos/go-systemd/v22/activation"
	"github.com/mdlayher/vsock"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/exporter-toolkit/web"
	"golang.org/x/time/rate"

	"github.com/medic-sre/medic/controller"
	"github.com/medic-sre/medic/internal/gather"
)

// Web server bounds. A scrape of /metrics or the status page of a large
// fleet is written well within WriteTimeout; a client that sends headers
// or a body slower than that is cut off.
const (
	readHeaderTimeout = 10 * time.Second
	readTimeout       = 30 * time.Second
	writeTimeout      = 60 * time.Second
	idleTimeout       = 2 * time.Minute
	maxHeaderBytes    = 64 << 10
)

// newServer is medic's HTTP server: h with timeouts on every phase of a
// request and a cap on its headers.
func newServer(h http.Handler) *http.Server {
	return &http.Server{Handler: h, ReadHeaderTimeout: readHeaderTimeout, ReadTimeout: readTimeout,
		WriteTimeout: writeTimeout, IdleTimeout: idleTimeout, MaxHeaderBytes: maxHeaderBytes}
}

// listen opens the web listeners: systemd's sockets with
// --web.systemd-socket, else one TCP listener per --web.listen-address.
func listen(f *web.FlagConfig) ([]net.Listener, error) {
	if f.WebSystemdSocket != nil && *f.WebSystemdSocket {
		ls, err := activation.Listeners()
		if err != nil {
			return nil, fmt.Errorf("systemd socket activation: %w", err)
		}
		if len(ls) == 0 {
			return nil, errors.New("--web.systemd-socket: systemd passed no socket")
		}
		return ls, nil
	}
	var ls []net.Listener
	for _, addr := range *f.WebListenAddresses {
		ln, err := listenOne(addr)
		if err != nil {
			for _, l := range ls {
				_ = l.Close()
			}
			return nil, fmt.Errorf("listen on %s: %w", addr, err)
		}
		ls = append(ls, ln)
	}
	return ls, nil
}

// listenOne listens on a TCP address, or on a vsock port written
// vsock://:PORT (exporter-toolkit's syntax).
func listenOne(addr string) (net.Listener, error) {
	rest, ok := strings.CutPrefix(addr, "vsock://")
	if !ok {
		return net.Listen("tcp", addr)
	}
	_, p, err := net.SplitHostPort(rest)
	if err != nil {
		return nil, err
	}
	port, err := strconv.ParseUint(p, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("vsock port %q: %w", p, err)
	}
	return vsock.Listen(uint32(port), nil)
}

// routes serves medic's endpoints under prefix ("" or "/path"):
// /metrics, /-/healthy, /-/ready, /-/reload and the status page at /
// (with /debug/target). /metrics serves reg's families and the
// controller's per-target ones merged. The status page's links are
// relative, so they follow the prefix. With a prefix, "/" and the bare
// prefix redirect to the status page.
func routes(prefix string, ctrl *controller.Controller, page http.Handler, reload http.Handler, reg *prometheus.Registry, pprofOn bool) http.Handler {
	mux := http.NewServeMux()
	if pprofOn { // --debug.pprof
		mux.HandleFunc(prefix+"/debug/pprof/", pprof.Index)
		mux.HandleFunc(prefix+"/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc(prefix+"/debug/pprof/trace", pprof.Trace)
		mux.HandleFunc(prefix+"/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc(prefix+"/debug/pprof/cmdline", pprof.Cmdline)
	}
	mux.Handle(prefix+"/metrics", gzipFast(promhttp.HandlerFor(gather.Merge(reg, ctrl.Gatherer()), promhttp.HandlerOpts{
		Registry: reg, EnableOpenMetrics: true, DisableCompression: true})))
	mux.HandleFunc(prefix+"/-/healthy", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "medic is healthy.")
	})
	mux.HandleFunc(prefix+"/-/ready", func(w http.ResponseWriter, _ *http.Request) {
		ok, why := ctrl.Ready()
		if !ok {
			http.Error(w, "medic is not ready: "+why, http.StatusServiceUnavailable)
			return
		}
		if why != "ok" { // ready, but some service refuses on its own
			fmt.Fprintln(w, "medic is ready; "+strings.TrimPrefix(why, "ok; "))
			return
		}
		fmt.Fprintln(w, "medic is ready.")
	})
	mux.Handle(prefix+"/-/reload", reload)
	stripped := http.StripPrefix(prefix, page)
	mux.Handle(prefix+"/", stripped) // the status page and its /debug/target view
	if prefix != "" {
		mux.Handle("/{$}", http.RedirectHandler(prefix+"/", http.StatusFound))
		mux.Handle(prefix, http.RedirectHandler(prefix+"/", http.StatusMovedPermanently))
	}
	return mux
}

// Reload requests over the web: at most one a second, with a burst of
// reloadBurst (a deploy tool, a person and a file watcher at once).
const (
	reloadEvery = time.Second
	reloadBurst = 3
)

// reloadHandler is POST /-/reload: a reload as SIGHUP does, guarded
// against the web. A browser cannot be made to trigger it from another
// site (http.CrossOriginProtection on Sec-Fetch-Site and Origin, plus a
// foreign Referer; --web.external-url is a trusted origin), nor with a
// form; requests beyond the rate limit get 429. An invalid config gets
// 500 with its problems, as Prometheus answers.
type reloadHandler struct {
	reload func(context.Context) (changed bool, err error) // (*reloader).reload

	cop      *http.CrossOriginProtection
	external *url.URL
	limit    *rate.Limiter
}

func newReloadHandler(reload func(context.Context) (bool, error), external *url.URL) http.Handler {
	h := &reloadHandler{reload: reload, cop: http.NewCrossOriginProtection(), external: external,
		limit: rate.NewLimiter(rate.Every(reloadEvery), reloadBurst)}
	if external != nil {
		_ = h.cop.AddTrustedOrigin(external.Scheme + "://" + external.Host) // webURLs checked its form
	}
	return h
}

func (h *reloadHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost && r.Method != http.MethodPut {
		w.Header().Set("Allow", "POST, PUT")
		http.Error(w, "use POST to reload", http.StatusMethodNotAllowed)
		return
	}
	if err := h.cop.Check(r); err != nil || h.foreignReferer(r) {
		http.Error(w, "reload refused: a cross-origin request", http.StatusForbidden)
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != "" {
		if mt, _, _ := mime.ParseMediaType(ct); mt == "application/x-www-form-urlencoded" || mt == "multipart/form-data" {
			http.Error(w, "reload refused: a form; POST with no body", http.StatusUnsupportedMediaType)
			return
		}
	}
	if !h.limit.Allow() {
		w.Header().Set("Retry-After", strconv.Itoa(int(reloadEvery/time.Second)))
		http.Error(w, "too many reloads; try again in a second", http.StatusTooManyRequests)
		return
	}
	changed, err := h.reload(r.Context())
	switch {
	case err != nil:
		http.Error(w, "reload refused; the running config stays:\n"+err.Error(), http.StatusInternalServerError)
	case !changed:
		fmt.Fprintln(w, "config unchanged; nothing to do.")
	default:
		fmt.Fprintln(w, "config reloaded.")
	}
}

// foreignReferer reports whether r came with a Referer (and no Origin,
// which CrossOriginProtection judged) from a host that is neither the one
// it was sent to nor the external URL's: a browser too old for
// Sec-Fetch-Site following a link or form of another site.
func (h *reloadHandler) foreignReferer(r *http.Request) bool {
	ref := r.Header.Get("Referer")
	if ref == "" || r.Header.Get("Origin") != "" {
		return false
	}
	u, err := url.Parse(ref)
	if err != nil || u.Host == "" {
		return true
	}
	return u.Host != r.Host && (h.external == nil || u.Host != h.external.Host)
}
