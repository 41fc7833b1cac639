package probes

import (
	"math"
	"time"
)

// record is a Result as a target's history ring keeps it: 40 bytes instead
// of 72, which is most of the scheduler's memory per target (16 a target).
// Start keeps its wall-clock reading to the nanosecond (not the monotonic
// one: compare Starts with Equal, Before, Sub — not ==); Duration and
// Lateness keep microseconds.
type record struct {
	start    int64 // Unix nanoseconds
	duration int32 // microseconds, saturated
	lateness int32 // microseconds, saturated
	reason   string
	status   int16
	success  bool
}

func toRecord(r *Result) record {
	return record{
		start:    r.Start.UnixNano(),
		duration: micros(r.Duration),
		lateness: micros(r.Lateness),
		reason:   r.Reason,
		status:   int16(min(max(r.StatusCode, math.MinInt16), math.MaxInt16)),
		success:  r.Success,
	}
}

func (c *record) result() Result {
	return Result{
		Start:      time.Unix(0, c.start),
		Duration:   time.Duration(c.duration) * time.Microsecond,
		Success:    c.success,
		Reason:     c.reason,
		StatusCode: int(c.status),
		Lateness:   time.Duration(c.lateness) * time.Microsecond,
	}
}

func micros(d time.Duration) int32 {
	return int32(min(max(d/time.Microsecond, math.MinInt32), math.MaxInt32))
}
