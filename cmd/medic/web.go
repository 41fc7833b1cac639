package main

import (
	"fmt"
	"net/http"
	"net/http/pprof"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/medic-sre/medic/controller"
)

// routes serves medic's endpoints: /metrics, /-/healthy, /-/ready,
// /-/reload and the status page at /.
func routes(ctrl *controller.Controller, page http.Handler, rl *reloader, reg *prometheus.Registry, pprofOn bool) http.Handler {
	mux := http.NewServeMux()
	if pprofOn { // --debug.pprof
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	}
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg, EnableOpenMetrics: true}))
	mux.HandleFunc("/-/healthy", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "medic is healthy.")
	})
	mux.HandleFunc("/-/ready", func(w http.ResponseWriter, _ *http.Request) {
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
	mux.HandleFunc("/-/reload", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost && r.Method != http.MethodPut {
			w.Header().Set("Allow", "POST, PUT")
			http.Error(w, "use POST to reload", http.StatusMethodNotAllowed)
			return
		}
		if err := rl.reload(r.Context()); err != nil {
			http.Error(w, "reload refused; the running config stays:\n"+err.Error(), http.StatusBadRequest)
			return
		}
		fmt.Fprintln(w, "config reloaded.")
	})
	mux.Handle("/", page) // the status page and its /debug/target view
	mux.Handle("/debug/", page)
	return mux
}
