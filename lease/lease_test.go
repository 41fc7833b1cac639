package lease

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/medic-sre/medic/internal/testkit"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/go-kit/log"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

const (
	testTable = "medic-lease"
	testName  = "medic-test"
)

// replica is one Lease on a fake table, with its connection, logs and
// metrics, and (for simulate) when its next write is due.
type replica struct {
	l    *Lease
	c    *conn
	logs *testkit.SyncBuffer
	reg  *prometheus.Registry
	next time.Time
}

func newReplica(table *fakeTable, holder string, d, every time.Duration, now func() time.Time) *replica {
	r := &replica{c: table.conn(), logs: &testkit.SyncBuffer{}, reg: prometheus.NewRegistry()}
	r.l = New(Options{
		Client: r.c, Table: testTable, Name: testName, Holder: holder,
		Duration: d, RenewEvery: every,
		Logger: log.NewLogfmtLogger(r.logs), Registerer: r.reg, Now: now,
	})
	if err := r.l.o.validate(); err != nil {
		panic(err)
	}
	return r
}

// simulate plays Run's schedule on the shared clock, tick by tick, until
// end: each replica writes when its write is due (RenewEvery after the
// start of its previous one, in the clock's time) and records a loss when
// its margin runs out, as Run does. check runs after every tick.
func simulate(clk *clock, rs []*replica, tick time.Duration, end time.Time, check func(now time.Time)) {
	ctx := context.Background()
	for now := clk.Now(); now.Before(end); now = clk.Now() {
		for _, r := range rs {
			if !clk.Now().Before(r.next) {
				start := clk.Now()
				r.l.attempt(ctx)
				r.next = start.Add(r.l.o.RenewEvery)
			}
			r.l.observe(r.l.now(), r.l.overdueReason)
		}
		check(clk.Now())
		clk.Advance(tick)
	}
}

// TestLeaderStepsDownBeforeExpiry: a leader whose writes stop getting
// through (throttling, timeouts, an answer lost) stays leader exactly until
// its last acknowledged write's start + duration − margin, never past the
// expiry written in the table; the standby takes over only after that
// expiry, and never while the old leader still acts.
func TestLeaderStepsDownBeforeExpiry(t *testing.T) {
	// A fault answers a's n-th write from the fault on; wait lets time
	// pass during the call, checked millisecond by millisecond.
	type fault func(wait func(time.Duration), every time.Duration, n int) (err error, landed bool)
	throttle := func(func(time.Duration), time.Duration, int) (error, bool) { return throttled, false }
	timeout := func(wait func(time.Duration), every time.Duration, _ int) (error, bool) {
		wait(every) // the call hangs until its timeout
		return context.DeadlineExceeded, false
	}
	answerLostOnce := func(_ func(time.Duration), _ time.Duration, n int) (error, bool) {
		if n == 0 {
			return errors.New("connection reset (fake)"), true // the write landed; its answer did not
		}
		return throttled, false
	}
	tests := []struct {
		desc       string
		d, every   time.Duration
		fault      fault
		wantReason string
	}{
		{"defaults, throttled", 15 * time.Second, 5 * time.Second, throttle, "throttled (fake)"},
		{"shortest lease, throttled", 3 * time.Second, time.Second, throttle, "throttled (fake)"},
		{"renew_every just below half: one retry before the margin", 10 * time.Second, 4999 * time.Millisecond, throttle, "throttled (fake)"},
		{"every call times out after renew_every", 15 * time.Second, 5 * time.Second, timeout, "deadline exceeded"},
		{"a renewal lands but its answer is lost, then throttled", 15 * time.Second, 5 * time.Second, answerLostOnce, "throttled (fake)"},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			clk := newClock()
			t0 := clk.Now()
			table := newFakeTable()
			a := newReplica(table, "a", tt.d, tt.every, clk.Now)
			b := newReplica(table, "b", tt.d, tt.every, clk.Now)
			b.next = t0.Add(time.Millisecond) // a writes first
			margin := tt.d / 5

			// a's acknowledged writes, and its faults from tFault on.
			tFault := t0.Add(2*tt.every + tt.every/2)
			var lastOK, callStart time.Time
			var pending error
			var check func(now time.Time)
			wait := func(d time.Duration) {
				for range d / time.Millisecond {
					clk.Advance(time.Millisecond)
					check(clk.Now())
				}
			}
			n := 0
			a.c.before = func(op string) error {
				callStart = clk.Now()
				if op != "PutItem" || callStart.Before(tFault) {
					return nil
				}
				err, landed := tt.fault(wait, tt.every, n)
				n++
				if !landed {
					return err
				}
				pending = err
				return nil
			}
			a.c.after = func(string) error {
				if err := pending; err != nil {
					pending = nil
					return err
				}
				lastOK = callStart
				return nil
			}

			var tB time.Time
			var expiresA int64 // the latest expiry a wrote
			end := tFault.Add(2 * tt.d)
			check = func(now time.Time) {
				holder, expires, _ := table.item(testName)
				if holder == "a" {
					expiresA = expires
				}
				aLeads, bLeads := a.l.IsLeader(), b.l.IsLeader()
				if aLeads && bLeads {
					t.Fatalf("%s: both replicas are leader", now.Sub(t0))
				}
				if want := now.Before(lastOK.Add(tt.d - margin)); aLeads != want {
					t.Fatalf("%s: a.IsLeader = %v, want %v (last acknowledged write started at %s)", now.Sub(t0), aLeads, want, lastOK.Sub(t0))
				}
				if aLeads && (holder != "a" || now.UnixMilli()+margin.Milliseconds() > expires) {
					t.Fatalf("%s: a leads within margin %s of the table's expiry: holder %q, expires at %s", now.Sub(t0), margin, holder, time.UnixMilli(expires).Sub(t0))
				}
				if bLeads && holder != "b" {
					t.Fatalf("%s: b leads but the table names %q", now.Sub(t0), holder)
				}
				if bLeads && tB.IsZero() {
					tB = now
				}
			}
			simulate(clk, []*replica{a, b}, time.Millisecond, end, check)
			if tB.IsZero() {
				t.Fatalf("b never took over")
			}
			if tB.UnixMilli() <= expiresA {
				t.Errorf("b took over at %s, not after a's expiry %s", tB.Sub(t0), time.UnixMilli(expiresA).Sub(t0))
			}
			if a.l.IsLeader() {
				t.Errorf("a is still leader at the end")
			}
			logs := a.logs.String()
			if !strings.Contains(logs, `msg="lost the lease: this replica stands by"`) || !strings.Contains(logs, tt.wantReason) {
				t.Errorf("a's logs do not tell the loss with reason %q:\n%s", tt.wantReason, logs)
			}
			if got := testutil.ToFloat64(a.l.m.transitions); got != 2 {
				t.Errorf("a's transitions = %v, want 2 (acquired, lost)", got)
			}
			if got := testutil.ToFloat64(b.l.m.transitions); got != 1 {
				t.Errorf("b's transitions = %v, want 1 (acquired)", got)
			}
			if !strings.Contains(b.logs.String(), `msg="took over the lease from another holder" holder=b previous_holder=a`) {
				t.Errorf("b's logs do not tell the takeover:\n%s", b.logs.String())
			}
		})
	}
}

// TestClockSkewMargin: the margin (duration/5) is the clock skew the lease
// tolerates. A standby whose clock runs ahead of the leader's by up to the
// margin takes over only once the leader has stopped acting; further ahead,
// the two overlap: the limit the margin sets, shown by the last rows.
func TestClockSkewMargin(t *testing.T) {
	tests := []struct {
		desc        string
		d           time.Duration
		skew        time.Duration // b's clock minus a's
		wantOverlap bool
	}{
		{"same clocks", 15 * time.Second, 0, false},
		{"standby behind", 15 * time.Second, -5 * time.Second, false},
		{"standby ahead by less than the margin", 15 * time.Second, 3*time.Second - time.Millisecond, false},
		{"standby ahead by exactly the margin", 15 * time.Second, 3 * time.Second, false},
		{"shortest lease, ahead by exactly the margin", 3 * time.Second, 600 * time.Millisecond, false},
		{"standby ahead by 10ms past the margin: overlap", 15 * time.Second, 3*time.Second + 10*time.Millisecond, true},
		{"shortest lease, 10ms past the margin: overlap", 3 * time.Second, 610 * time.Millisecond, true},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			clk := newClock()
			t0 := clk.Now()
			table := newFakeTable()
			a := newReplica(table, "a", tt.d, tt.d/3, clk.Now)
			// b tries every millisecond: the earliest takeover its clock allows.
			b := newReplica(table, "b", tt.d, time.Millisecond, clk.skewed(tt.skew))
			b.next = t0.Add(time.Millisecond)
			a.c.before = func(string) error { // a is cut off after its first write
				if clk.Now().After(t0) {
					return throttled
				}
				return nil
			}

			overlap := false
			var tB time.Time
			simulate(clk, []*replica{a, b}, time.Millisecond, t0.Add(tt.d+6*time.Second), func(now time.Time) {
				aLeads, bLeads := a.l.IsLeader(), b.l.IsLeader()
				overlap = overlap || (aLeads && bLeads)
				if bLeads && tB.IsZero() {
					tB = now
				}
			})
			if overlap != tt.wantOverlap {
				t.Errorf("overlap = %v, want %v", overlap, tt.wantOverlap)
			}
			// b's clock must read past the expiry a wrote (t0 + d).
			if want := t0.Add(tt.d - tt.skew + time.Millisecond); !tB.Equal(want) {
				t.Errorf("b took over at %s, want %s (a's expiry by b's clock, plus 1ms)", tB.Sub(t0), want.Sub(t0))
			}
		})
	}
}

// TestLeadershipCountsFromCallStart: a replica is leader until the START
// of its successful write + duration − margin, however long the call took;
// a write that took longer than that succeeds without making it leader.
func TestLeadershipCountsFromCallStart(t *testing.T) {
	const d = 15 * time.Second // margin 3s: leader for 12s from the start
	tests := []struct {
		desc       string
		latency    time.Duration
		wantLeader time.Duration // LeaderFor right after the call
	}{
		{"instant", 0, 12 * time.Second},
		{"slow call", 2 * time.Second, 10 * time.Second},
		{"1ms short of the margin", 12*time.Second - time.Millisecond, time.Millisecond},
		{"exactly duration − margin", 12 * time.Second, 0},
		{"longer than the duration", 16 * time.Second, 0},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			clk := newClock()
			t0 := clk.Now()
			table := newFakeTable()
			a := newReplica(table, "a", d, 5*time.Second, clk.Now)
			a.c.before = func(string) error { clk.Advance(tt.latency); return nil }

			a.l.attempt(context.Background())
			a.l.observe(a.l.now(), a.l.overdueReason)

			if got := a.l.LeaderFor(); got != tt.wantLeader {
				t.Errorf("LeaderFor = %s, want %s", got, tt.wantLeader)
			}
			if got, want := a.l.IsLeader(), tt.wantLeader > 0; got != want {
				t.Errorf("IsLeader = %v, want %v", got, want)
			}
			holder, expires, _ := table.item(testName)
			if holder != "a" || expires != t0.Add(d).UnixMilli() {
				t.Errorf("table holds %q until %s, want a until t0+%s", holder, time.UnixMilli(expires).Sub(t0), d)
			}
			if h, until := a.l.Leader(); h != "a" || !until.Equal(t0.Add(d)) {
				t.Errorf("Leader() = %q, %s; want a, t0+%s", h, until.Sub(t0), d)
			}
			if got, want := testutil.ToFloat64(a.l.m.transitions), map[bool]float64{true: 1, false: 0}[tt.wantLeader > 0]; got != want {
				t.Errorf("transitions = %v, want %v", got, want)
			}
		})
	}
}

// TestAnotherHolderEndsLeadershipAtOnce: a leader whose renewal is refused
// (another holder wrote the item: a replica whose clock is far ahead, an
// operator) stops leading at once, not at its margin, and reports who.
func TestAnotherHolderEndsLeadershipAtOnce(t *testing.T) {
	clk := newClock()
	t0 := clk.Now()
	table := newFakeTable()
	a := newReplica(table, "a", 15*time.Second, 5*time.Second, clk.Now)
	intruder := newReplica(table, "c", 15*time.Second, 5*time.Second, clk.skewed(time.Hour))
	ctx := context.Background()

	a.l.attempt(ctx)
	clk.Advance(time.Second)
	// Its clock says a's lease ran out long ago: refused first (it had not
	// seen the generation), then, having read the item, it takes it over,
	// as Run does at once.
	if _, takeable := intruder.l.attempt(ctx); !takeable {
		t.Fatal("the intruder does not see a's item as takeable")
	}
	intruder.l.attempt(ctx)
	clk.Advance(4 * time.Second)
	if !a.l.IsLeader() {
		t.Fatal("a is not leader before its renewal")
	}
	a.l.attempt(ctx)
	if a.l.IsLeader() {
		t.Errorf("a is still leader after a refused renewal")
	}
	if h, until := a.l.Leader(); h != "c" || !until.Equal(t0.Add(time.Hour+16*time.Second)) {
		t.Errorf("Leader() = %q, %s; want c, t0+1h16s", h, until.Sub(t0))
	}
	logs := a.logs.String()
	for _, want := range []string{
		`msg="lost the lease: this replica stands by" holder=a reason="the lease is held by c"`,
		`msg="another replica holds the lease: standing by" holder=c`,
	} {
		if !strings.Contains(logs, want) {
			t.Errorf("a's logs lack %s:\n%s", want, logs)
		}
	}
	if got := a.c.callCount("GetItem"); got != 1 {
		t.Errorf("GetItem calls = %d, want 1 (who holds it, read once)", got)
	}

	// By a's clock c's expiry lies an hour ahead: invalid, taken back at
	// a's next write under a new generation, counted and logged once.
	if got := testutil.ToFloat64(a.l.m.invalid); got != 1 {
		t.Errorf("invalid items seen = %v, want 1", got)
	}
	if !strings.Contains(logs, `msg="invalid lease item`) {
		t.Errorf("a's logs lack the invalid item:\n%s", logs)
	}
	a.l.attempt(ctx)
	if gen, left := a.l.Leading(); gen != 3 || left <= 0 {
		t.Errorf("after taking the invalid item back: Leading() = %d, %s; want generation 3 (a 1, c 2, a 3)", gen, left)
	}
	if intruder.l.StillLeads(ctx, 2) {
		t.Error("the intruder still leads under generation 2 after a took it back")
	}
}

// TestForgedAndDeletedItem (issue 12 item 6): an item forged with an
// expiry in the far future is taken over within one write, not obeyed; an
// item deleted under a leader's feet fences that leader at its next check,
// before any renewal.
func TestForgedAndDeletedItem(t *testing.T) {
	clk := newClock()
	table := newFakeTable()
	a := newReplica(table, "a", 15*time.Second, 5*time.Second, clk.Now)
	ctx := context.Background()
	forged := map[string]types.AttributeValue{
		attrName:       &types.AttributeValueMemberS{Value: testName},
		attrHolder:     &types.AttributeValueMemberS{Value: "mallory"},
		attrExpires:    millisValue(clk.Now().Add(365 * 24 * time.Hour).UnixMilli()),
		attrGeneration: millisValue(41),
	}
	table.mu.Lock()
	table.items[testName] = forged
	table.mu.Unlock()

	if _, takeable := a.l.attempt(ctx); !takeable {
		t.Fatal("a forged far-future item is not takeable")
	}
	a.l.attempt(ctx) // Run writes again at once
	gen, left := a.l.Leading()
	if gen != 42 || left <= 0 {
		t.Fatalf("Leading() = %d, %s; want generation 42, leading", gen, left)
	}
	if !a.l.StillLeads(ctx, 42) {
		t.Fatal("StillLeads(42) false right after taking over")
	}
	if got := testutil.ToFloat64(a.l.m.invalid); got != 1 {
		t.Errorf("invalid items seen = %v, want 1", got)
	}

	// Someone deletes the item: a is still leader by its clock, but the
	// fence reads the item and refuses.
	table.mu.Lock()
	delete(table.items, testName)
	table.mu.Unlock()
	if !a.l.IsLeader() {
		t.Fatal("a lost leadership by its clock")
	}
	if a.l.StillLeads(ctx, 42) {
		t.Error("StillLeads(42) holds with the item deleted")
	}
}

// TestReleaseHandsOver: a clean shutdown deletes the item, so the standby
// takes over at its next write rather than after the expiry; a replica
// that never held the lease deletes nothing; another's item is never
// deleted.
func TestReleaseHandsOver(t *testing.T) {
	clk := newClock()
	table := newFakeTable()
	a := newReplica(table, "a", 15*time.Second, 5*time.Second, clk.Now)
	b := newReplica(table, "b", 15*time.Second, 5*time.Second, clk.Now)
	ctx := context.Background()

	a.l.attempt(ctx)
	b.l.attempt(ctx)
	if err := b.l.release(ctx); err != nil {
		t.Fatalf("standby release: %v", err)
	}
	if got := b.c.callCount("DeleteItem"); got != 0 {
		t.Errorf("the standby called DeleteItem %d times, want none", got)
	}
	if h, _, ok := table.item(testName); !ok || h != "a" {
		t.Fatalf("table holds %q after the standby's release, want a", h)
	}

	if err := a.l.release(ctx); err != nil {
		t.Fatalf("leader release: %v", err)
	}
	if a.l.IsLeader() {
		t.Errorf("a is leader after releasing")
	}
	if _, _, ok := table.item(testName); ok {
		t.Fatalf("the item is still there after release")
	}
	clk.Advance(time.Second) // well before the 15s expiry
	b.l.attempt(ctx)
	if !b.l.IsLeader() {
		t.Errorf("b did not take over right after the release")
	}
	if !strings.Contains(a.logs.String(), `msg="released the lease" holder=a`) {
		t.Errorf("a's logs lack the release:\n%s", a.logs.String())
	}

	// a comes back believing it may hold the item (its last write's answer
	// was lost): its delete is refused by the condition, b keeps the lease.
	a.l.mayHold = true
	if err := a.l.release(ctx); err != nil {
		t.Fatalf("release of another's item: %v", err)
	}
	if h, _, _ := table.item(testName); h != "b" {
		t.Errorf("table holds %q, want b: a deleted another's lease", h)
	}
}

// TestRun drives the real loop (real clock) on the fake table: it acquires,
// and on cancellation releases and returns nil; a release that fails is
// Run's error. Bad options are refused.
func TestRun(t *testing.T) {
	table := newFakeTable()
	r := newReplica(table, "a", 3*time.Second, time.Second, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.l.Run(ctx) }()
	waitFor(t, 5*time.Second, "a leads", r.l.IsLeader)
	r.c.before = func(op string) error {
		if op == "DeleteItem" {
			return throttled
		}
		return nil
	}
	cancel()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "release lease medic-test in table medic-lease") {
			t.Errorf("Run = %v, want the failed release", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	if r.l.IsLeader() {
		t.Errorf("leader after Run returned")
	}

	r2 := newReplica(table, "b", 3*time.Second, time.Second, nil)
	ctx, cancel = context.WithCancel(context.Background())
	go func() { done <- r2.l.Run(ctx) }()
	waitFor(t, 10*time.Second, "b leads after a's lease expired", r2.l.IsLeader)
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run = %v, want nil after a clean release", err)
	}
	if _, _, ok := table.item(testName); ok {
		t.Errorf("the item is still there after b's release")
	}

	for _, o := range []Options{
		{},
		{Client: table.conn(), Table: "t", Name: "n", Holder: "h", Duration: 3 * time.Second, RenewEvery: 1500 * time.Millisecond},
		{Client: table.conn(), Table: "t", Name: "n", Holder: "h", Duration: 3 * time.Second},
		{Client: table.conn(), Table: "t", Name: "n", Holder: "h", Duration: time.Millisecond, RenewEvery: time.Microsecond},
	} {
		if err := New(o).Run(context.Background()); err == nil {
			t.Errorf("Run accepted options %+v", o)
		}
	}
}

// waitFor polls cond every 20ms for at most timeout.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting until %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestMetrics(t *testing.T) {
	clk := newClock()
	t0 := clk.Now()
	table := newFakeTable()
	a := newReplica(table, "a", 15*time.Second, 5*time.Second, clk.Now)
	b := newReplica(table, "b", 15*time.Second, 5*time.Second, clk.Now)
	ctx := context.Background()
	a.l.attempt(ctx)
	b.l.attempt(ctx)
	clk.Advance(5 * time.Second)
	a.c.before = func(string) error { return throttled }
	a.l.attempt(ctx)

	expiry := float64(t0.Add(15 * time.Second).Unix())
	const head = `
# HELP medic_lease_leader 1 while this replica holds the lease and may act, 0 in standby.
# TYPE medic_lease_leader gauge
medic_lease_leader %d
# HELP medic_lease_transitions_total Times this replica became leader or stopped being leader.
# TYPE medic_lease_transitions_total counter
medic_lease_transitions_total %d
# HELP medic_lease_expiry_timestamp_seconds When the lease expires as last written or read, by the holder's clock; 0 until known.
# TYPE medic_lease_expiry_timestamp_seconds gauge
medic_lease_expiry_timestamp_seconds %g
# HELP medic_lease_invalid_items_total Times the lease item was read with an expiry further ahead than twice the lease duration (forged, or a clock far ahead); such an item is taken over.
# TYPE medic_lease_invalid_items_total counter
medic_lease_invalid_items_total 0
# HELP medic_lease_operations_total DynamoDB calls on the lease item by operation and result (success, conflict, throttled, error).
# TYPE medic_lease_operations_total counter
medic_lease_operations_total{operation="DeleteItem",result="conflict"} 0
medic_lease_operations_total{operation="DeleteItem",result="error"} 0
medic_lease_operations_total{operation="DeleteItem",result="success"} 0
medic_lease_operations_total{operation="DeleteItem",result="throttled"} 0
medic_lease_operations_total{operation="GetItem",result="error"} 0
medic_lease_operations_total{operation="GetItem",result="success"} %d
medic_lease_operations_total{operation="GetItem",result="throttled"} 0
medic_lease_operations_total{operation="PutItem",result="conflict"} %d
medic_lease_operations_total{operation="PutItem",result="error"} 0
medic_lease_operations_total{operation="PutItem",result="success"} %d
medic_lease_operations_total{operation="PutItem",result="throttled"} %d
`
	for _, tt := range []struct {
		r    *replica
		want string
	}{
		{a, fmt.Sprintf(head, 1, 1, expiry, 0, 0, 1, 1)},
		{b, fmt.Sprintf(head, 0, 0, expiry, 1, 1, 0, 0)},
	} {
		if err := testutil.GatherAndCompare(tt.r.reg, strings.NewReader(tt.want)); err != nil {
			t.Errorf("%s: %v", tt.r.l.o.Holder, err)
		}
	}
}

func TestHolderID(t *testing.T) {
	if got := HolderID("i-0abc", "ip-10-0-1-5", 4242); got != "i-0abc/ip-10-0-1-5/4242" {
		t.Errorf("HolderID = %q", got)
	}
	if got := HolderID("", "laptop", 7); got != "-/laptop/7" {
		t.Errorf("HolderID without instance = %q", got)
	}
}
