package lease

import (
	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/medic-sre/medic/internal/logkeys"
)

// The operation and result labels of medic_lease_operations_total.
const (
	opPut    = "PutItem"
	opGet    = "GetItem"
	opDelete = "DeleteItem"

	resultSuccess   = "success"
	resultConflict  = "conflict" // the condition failed: another replica holds the lease
	resultThrottled = "throttled"
	resultError     = "error"
)

type metrics struct {
	leader      prometheus.GaugeFunc
	transitions prometheus.Counter
	ops         *prometheus.CounterVec
	expiry      prometheus.Gauge
	invalid     prometheus.Counter
}

// newMetrics builds the lease's metrics and registers them with r (nil:
// none). Every operation series exists from the start, at 0.
func newMetrics(r prometheus.Registerer, l *Lease, logger log.Logger) *metrics {
	m := &metrics{
		leader: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "medic_lease_leader",
			Help: "1 while this replica holds the lease and may act, 0 in standby.",
		}, func() float64 {
			if l.IsLeader() {
				return 1
			}
			return 0
		}),
		transitions: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "medic_lease_transitions_total",
			Help: "Times this replica became leader or stopped being leader.",
		}),
		ops: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "medic_lease_operations_total",
			Help: "DynamoDB calls on the lease item by operation and result (success, conflict, throttled, error).",
		}, []string{"operation", "result"}),
		expiry: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "medic_lease_expiry_timestamp_seconds",
			Help: "When the lease expires as last written or read, by the holder's clock; 0 until known.",
		}),
		invalid: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "medic_lease_invalid_items_total",
			Help: "Times the lease item was read with an expiry further ahead than twice the lease duration (forged, or a clock far ahead); such an item is taken over.",
		}),
	}
	for _, op := range []string{opPut, opGet, opDelete} {
		for _, res := range []string{resultSuccess, resultConflict, resultThrottled, resultError} {
			if op == opGet && res == resultConflict {
				continue // reads have no condition
			}
			m.ops.WithLabelValues(op, res)
		}
	}
	if r == nil {
		return m
	}
	for _, c := range []prometheus.Collector{m.leader, m.transitions, m.ops, m.expiry, m.invalid} {
		if err := r.Register(c); err != nil {
			level.Error(logger).Log(logkeys.Msg, "cannot register lease metric", logkeys.Err, err)
		}
	}
	return m
}

func (m *metrics) op(operation, result string) { m.ops.WithLabelValues(operation, result).Inc() }
