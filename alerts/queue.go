package alerts

import "sync"

// queue is a bounded FIFO of events. push never blocks: when the queue is
// full it drops the oldest event, because the newest one carries the
// service's state now, and a stale backlog is worth less than the latest
// news.
type queue struct {
	mu    sync.Mutex
	buf   []Event // ring
	head  int
	n     int
	ready chan struct{} // has a value while the queue may be non-empty
}

func newQueue(size int) *queue {
	return &queue{buf: make([]Event, size), ready: make(chan struct{}, 1)}
}

// push appends e and reports whether an older event was dropped to make
// room, and the length after.
func (q *queue) push(e Event) (dropped bool, length int) {
	q.mu.Lock()
	if q.n == len(q.buf) {
		q.buf[q.head] = Event{}
		q.head = (q.head + 1) % len(q.buf)
		q.n--
		dropped = true
	}
	q.buf[(q.head+q.n)%len(q.buf)] = e
	q.n++
	length = q.n
	q.mu.Unlock()
	select {
	case q.ready <- struct{}{}:
	default:
	}
	return dropped, length
}

// pop removes the oldest event.
func (q *queue) pop() (e Event, ok bool, length int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.n == 0 {
		return Event{}, false, 0
	}
	e = q.buf[q.head]
	q.buf[q.head] = Event{}
	q.head = (q.head + 1) % len(q.buf)
	q.n--
	return e, true, q.n
}

// takeAll empties the queue and returns its events, oldest first.
func (q *queue) takeAll() []Event {
	q.mu.Lock()
	defer q.mu.Unlock()
	out := make([]Event, 0, q.n)
	for q.n > 0 {
		out = append(out, q.buf[q.head])
		q.buf[q.head] = Event{}
		q.head = (q.head + 1) % len(q.buf)
		q.n--
	}
	return out
}

func (q *queue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.n
}
