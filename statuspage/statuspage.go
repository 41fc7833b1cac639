// Package statuspage renders medic's status page: each service, its
// instances with their last probes, judged state and reason, and what
// medic did or refused to do.
package statuspage

import (
	"net/http"

	"github.com/go-kit/log"

	"github.com/medic-sre/medic/controller"
)

// Source gives the page what to show.
type Source interface {
	Statuses() []controller.Status
}

// Handler serves the page at / (placeholder until the full page lands).
func Handler(src Source, logger log.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		for _, s := range src.Statuses() {
			_, _ = w.Write([]byte(s.Service.Name + "\n"))
		}
	})
}
