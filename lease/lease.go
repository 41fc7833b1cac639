// Package lease makes one medic replica among several the acting one. The
// replicas share one DynamoDB item; the one that holds it (the leader) may
// call mutating AWS APIs, the others judge, report and export metrics in
// standby, and take the item over when the leader stops renewing it.
//
// The item is written with conditional PutItem calls only: a replica writes
// it when nobody holds it, when it holds it already, or when the holder's
// expiry (as written, in unix milliseconds) is before the writer's clock. A
// holder counts itself leader only until the START of its last successful
// write plus Duration minus a safety margin of Duration/5, so that a leader
// that cannot renew stops acting before anyone else may take over, even with
// that much clock skew between the replicas.
//
// The item carries a generation, a fencing token: kept by renewals,
// incremented by every takeover, and checked by every write's condition. A
// holder's action (healer.LeaderOnly) asks StillLeads(generation) right
// before each mutating call, which re-reads the item. An item whose expiry
// lies further ahead than Duration plus MaxSkewBehind (more than an honest
// holder can put it) is invalid: forged or written by a broken clock, it
// is taken over at once, logged and counted. See docs/lease.md.
package lease

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/medic-sre/medic/awsapi"
	"github.com/medic-sre/medic/internal/logkeys"
)

// Attribute names of the lease item. The table's partition key is "name"
// (a string); the other attributes are written by PutItem.
const (
	attrName       = "name"
	attrHolder     = "holder"
	attrExpires    = "expires"     // unix milliseconds, the holder's clock
	attrAcquiredAt = "acquired_at" // unix milliseconds, when this holder first took it
	attrGeneration = "generation"  // the fencing token: +1 on every takeover
)

// The conditions of the writes. A replica writes when there is no item, or
// when the item holds the generation it last saw (or none: an item written
// before generations existed) and it is the holder, or the holder's expiry
// is before its clock (:now), or the expiry is invalid: further ahead than
// Duration plus MaxSkewBehind (:far).
const (
	acquireCondition = "attribute_not_exists(#n) OR ((#h = :me OR #e < :now OR #e > :far) AND (attribute_not_exists(#g) OR #g = :seen))"
	releaseCondition = "#h = :me"
)

// MinDuration is the shortest lease Run accepts; config asks for at least 3s.
const MinDuration = 100 * time.Millisecond

// Client is the DynamoDB calls the lease makes, shaped exactly like the SDK
// v2 methods; *dynamodb.Client satisfies it.
type Client interface {
	PutItem(ctx context.Context, params *dynamodb.PutItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error)
	GetItem(ctx context.Context, params *dynamodb.GetItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
	DeleteItem(ctx context.Context, params *dynamodb.DeleteItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error)
}

// Options configure a Lease.
type Options struct {
	// Client reaches DynamoDB. Required.
	Client Client
	// Table is the DynamoDB table (partition key "name", a string). Required.
	Table string
	// Name is the lease's item in the table: replicas that share a name
	// elect one leader. Required.
	Name string
	// Holder names this replica, unique among those sharing the lease;
	// HolderID builds it. Required.
	Holder string
	// Duration is how long a write holds the lease. At least MinDuration.
	Duration time.Duration
	// RenewEvery is the period of the writes, under Duration/2.
	RenewEvery time.Duration
	// Logger receives acquisitions, losses, takeovers and failed calls.
	// Nil discards.
	Logger log.Logger
	// Registerer receives the lease's metrics. Nil registers nothing.
	Registerer prometheus.Registerer
	// Now is the clock. Nil means time.Now.
	Now func() time.Time
}

// validate reports the first option Run cannot work with.
func (o *Options) validate() error {
	switch {
	case o.Client == nil:
		return errors.New("lease: no DynamoDB client")
	case o.Table == "":
		return errors.New("lease: no table")
	case o.Name == "":
		return errors.New("lease: no lease name")
	case o.Holder == "":
		return errors.New("lease: no holder identity")
	case o.Duration < MinDuration:
		return fmt.Errorf("lease: duration %s is below the minimum of %s", o.Duration, MinDuration)
	case o.RenewEvery <= 0 || o.RenewEvery >= o.Duration/2:
		return fmt.Errorf("lease: renew_every %s must be positive and below half the duration (%s)", o.RenewEvery, o.Duration)
	}
	return nil
}

// HolderID is the holder identity of a replica: its EC2 instance id (empty
// when unknown), host name and process id, e.g. "i-0abc/ip-10-0-1-5/4242".
func HolderID(instanceID, hostname string, pid int) string {
	if instanceID == "" {
		instanceID = "-"
	}
	return instanceID + "/" + hostname + "/" + strconv.Itoa(pid)
}

// Lease is one replica's view of a shared lease. Run keeps it; IsLeader,
// Leader and LeaderFor may be called from any goroutine.
type Lease struct {
	o      Options
	now    func() time.Time
	margin time.Duration
	logger log.Logger
	m      *metrics

	mu sync.Mutex
	// leaderUntil: this replica is leader while the clock is before it.
	// Zero when it is not.
	leaderUntil time.Time
	// leading is the state last recorded (metrics, logs), to see changes.
	leading bool
	// mayHold: the item may be ours (our last write succeeded or its
	// outcome is unknown), so shutdown deletes it, conditionally.
	mayHold bool
	// acquiredAt is when this replica last took the lease from another
	// holder or from nobody; kept in the item across renewals.
	acquiredAt time.Time
	// holder and until: the last known holder and the expiry written in
	// the item. holder is "" when unknown or when nobody holds it.
	holder string
	until  time.Time
	// lastErr is the last failed call, for the reason of a loss.
	lastErr error
	// gen is the generation in the item as last written or read;
	// leadGen the one this replica leads under (0 when it never led).
	gen, leadGen int64
	// invalidSeen is the last invalid expiry logged, not to repeat it.
	invalidSeen time.Time
}

// New returns a Lease; Run starts it. New never fails: options are checked
// by Run, and a metric that cannot be registered is logged.
func New(o Options) *Lease {
	l := &Lease{o: o, now: o.Now, logger: o.Logger, margin: o.Duration / 5}
	if l.now == nil {
		l.now = time.Now
	}
	if l.logger == nil {
		l.logger = log.NewNopLogger()
	}
	l.logger = log.With(l.logger, logkeys.Component, "lease", logkeys.Lease, o.Name)
	l.m = newMetrics(o.Registerer, l, l.logger)
	return l
}

// Holder is this replica's holder identity, as written in the item.
func (l *Lease) Holder() string { return l.o.Holder }

// IsLeader reports whether this replica may act now: its last successful
// write started less than Duration minus the margin ago (by this replica's
// clock), and no later call showed another holder.
func (l *Lease) IsLeader() bool { return l.LeaderFor() > 0 }

// LeaderFor is how much longer this replica stays leader without another
// successful write: 0 when it is not leader. Guarded bounds an action by it.
func (l *Lease) LeaderFor() time.Duration {
	l.mu.Lock()
	until := l.leaderUntil
	l.mu.Unlock()
	if until.IsZero() {
		return 0
	}
	return max(until.Sub(l.now()), 0)
}

// Leading is the generation this replica leads under and how much longer
// it leads without another successful write; left 0 when it does not lead.
func (l *Lease) Leading() (generation int64, left time.Duration) {
	left = l.LeaderFor()
	l.mu.Lock()
	defer l.mu.Unlock()
	if left == 0 {
		return 0, 0
	}
	return l.leadGen, left
}

// Generation is the generation in the item as last written or read (0
// before any).
func (l *Lease) Generation() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.gen
}

// StillLeads is the fence: it reports whether this replica leads now under
// generation, by its own clock and by the item itself, re-read with one
// consistent GetItem (bounded by RenewEvery): the holder must be this
// replica, with that generation and a valid expiry. Any doubt (the read
// fails) is false: better a mark delayed to the next cycle than two
// replicas acting.
func (l *Lease) StillLeads(ctx context.Context, generation int64) bool {
	gen, left := l.Leading()
	if left == 0 || gen != generation {
		return false
	}
	holder, until, g, err := l.read(ctx)
	if err != nil {
		level.Warn(l.logger).Log(logkeys.Msg, "cannot confirm the lease before acting: standing by for this action",
			logkeys.LeaseGeneration, generation, logkeys.Err, err)
		return false
	}
	return holder == l.o.Holder && g == generation && !l.invalid(l.now(), until)
}

// invalid reports whether expiry lies further ahead of now than any
// honest write can put it: an honest holder writes its own clock plus
// Duration, so by a reader's clock that is at most Duration plus the skew
// between them; the skew tolerated here is MaxSkewBehind.
func (l *Lease) invalid(now, expiry time.Time) bool {
	return expiry.After(l.horizon(now))
}

// horizon is the latest valid expiry by a clock reading now.
func (l *Lease) horizon(now time.Time) time.Time {
	return now.Add(l.o.Duration + MaxSkewBehind(l.o.Duration))
}

// MaxSkewBehind is how far a replica's clock may run behind the holder's
// before it takes the holder's honest item for an invalid one and takes it
// over: Duration. (A clock running ahead is bounded by the margin,
// Duration/5.) So a forged item, or one written by a clock far ahead,
// freezes the replicas for at most two durations, never indefinitely.
func MaxSkewBehind(d time.Duration) time.Duration { return d }

// Leader returns the last known holder and the expiry written in the item
// (by the holder's clock). holder is "" when no holder is known: before the
// first call, or when nobody held the lease at the last look. This replica
// may be the holder and still not leader: when its renewals are overdue.
func (l *Lease) Leader() (holder string, until time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.holder, l.until
}

// Run (call it once) writes the lease every RenewEvery (counted from the start of the
// previous write) until ctx ends. A failed call (throttling, a timeout, an
// outage) is tried again on that schedule; meanwhile the replica stays
// leader only until its margin runs out. When ctx ends Run stops leading
// and deletes the item if it may be this replica's, so that another
// replica takes over at once.
//
// Run returns an error for unusable options, or when that last delete
// failed (the lease then expires on its own after Duration); nil otherwise.
func (l *Lease) Run(ctx context.Context) error {
	if err := l.o.validate(); err != nil {
		return err
	}
	level.Info(l.logger).Log(logkeys.Msg, "lease loop started", logkeys.Holder, l.o.Holder,
		logkeys.Table, l.o.Table, logkeys.Duration, l.o.Duration)
	timer := time.NewTimer(0)
	defer timer.Stop()
	next := l.now()
	for {
		select {
		case <-ctx.Done():
			return l.release(ctx)
		case <-timer.C:
		}
		if !l.now().Before(next) {
			started, takeable := l.attempt(ctx)
			if takeable && ctx.Err() == nil {
				// The item we were refused by is up for grabs (expired,
				// invalid or gone) and now known: write again at once.
				l.attempt(ctx)
			}
			next = started.Add(l.o.RenewEvery)
		}
		now := l.now()
		l.observe(now, l.overdueReason)
		wake := next
		l.mu.Lock()
		if l.leading && l.leaderUntil.Before(wake) {
			wake = l.leaderUntil // to record the loss when it happens
		}
		l.mu.Unlock()
		timer.Reset(max(wake.Sub(now), 0))
	}
}

// attempt makes one conditional write and records what came of it. It
// returns when the write started, and whether it was refused by an item
// that may be taken over now (worth one more write at once).
//
// A leader renews under its generation; any other write is a takeover
// (from another holder, from nobody, or by this replica after its
// leadership lapsed) and writes the generation last seen plus one.
func (l *Lease) attempt(ctx context.Context) (time.Time, bool) {
	start := l.now()
	expires := ceilMillis(start.Add(l.o.Duration))
	l.mu.Lock()
	acquiredAt := l.acquiredAt
	if !l.mayHold || l.holder != l.o.Holder || acquiredAt.IsZero() {
		acquiredAt = start
	}
	seen := l.gen
	gen := seen + 1
	if !l.leaderUntil.IsZero() && start.Before(l.leaderUntil) && l.leadGen == seen {
		gen = seen
	}
	l.mu.Unlock()

	cctx, cancel := context.WithTimeout(ctx, l.o.RenewEvery)
	_, err := l.o.Client.PutItem(cctx, &dynamodb.PutItemInput{
		TableName: aws.String(l.o.Table),
		Item: map[string]types.AttributeValue{
			attrName:       &types.AttributeValueMemberS{Value: l.o.Name},
			attrHolder:     &types.AttributeValueMemberS{Value: l.o.Holder},
			attrExpires:    millisValue(expires),
			attrAcquiredAt: millisValue(acquiredAt.UnixMilli()),
			attrGeneration: millisValue(gen),
		},
		ConditionExpression: aws.String(acquireCondition),
		ExpressionAttributeNames: map[string]string{"#n": attrName, "#h": attrHolder, "#e": attrExpires,
			"#g": attrGeneration},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":me":   &types.AttributeValueMemberS{Value: l.o.Holder},
			":now":  millisValue(start.UnixMilli()),
			":far":  millisValue(l.horizon(start).UnixMilli()),
			":seen": millisValue(seen),
		},
	}, awsapi.NoRetryDynamoDB)
	cancel()

	takeable := false
	switch {
	case err == nil:
		l.m.op(opPut, resultSuccess)
		l.won(start, time.UnixMilli(expires), acquiredAt, gen)
	case isConditionFailed(err):
		l.m.op(opPut, resultConflict)
		takeable = l.heldByOther(ctx)
	case ctx.Err() != nil:
		// Shutting down: Run releases next; the write may have landed.
		l.mu.Lock()
		l.mayHold = true
		l.mu.Unlock()
	default:
		l.m.op(opPut, classify(err))
		l.failed(start, err)
	}
	return start, takeable
}

// won records a successful write that started at start.
func (l *Lease) won(start, expires, acquiredAt time.Time, gen int64) {
	l.mu.Lock()
	prevGen := l.leadGen
	l.gen, l.leadGen = gen, gen
	l.leaderUntil = start.Add(l.o.Duration - l.margin)
	l.mayHold = true
	l.acquiredAt = acquiredAt
	prev := l.holder
	l.holder, l.until = l.o.Holder, expires
	l.lastErr = nil
	l.mu.Unlock()
	l.m.expiry.Set(float64(expires.UnixMilli()) / 1000)
	l.observe(l.now(), nil)
	switch {
	case prev != "" && prev != l.o.Holder:
		level.Info(l.logger).Log(logkeys.Msg, "took over the lease from another holder",
			logkeys.Holder, l.o.Holder, logkeys.PreviousHolder, prev, logkeys.LeaseGeneration, gen)
	case gen != prevGen:
		level.Info(l.logger).Log(logkeys.Msg, "took the lease", logkeys.Holder, l.o.Holder,
			logkeys.LeaseGeneration, gen)
	}
}

// heldByOther records a write refused because another replica holds the
// lease (or the item changed generation), and reads who (consistently) for
// Leader, the logs and metrics. It reports whether the item read may be
// taken over now: none, expired, or invalid.
func (l *Lease) heldByOther(ctx context.Context) bool {
	l.mu.Lock()
	l.leaderUntil = time.Time{}
	l.mayHold = false
	prev := l.holder
	l.mu.Unlock()

	holder, until, gen, err := l.read(ctx)
	if err != nil {
		level.Warn(l.logger).Log(logkeys.Msg, "the lease is held by another replica; cannot read which",
			logkeys.Operation, "GetItem", logkeys.Err, err)
		l.observe(l.now(), func() string { return "another replica holds the lease" })
		return false
	}
	now := l.now()
	invalid := holder != "" && l.invalid(now, until)
	l.mu.Lock()
	l.holder, l.until, l.gen = holder, until, gen
	logInvalid := invalid && !until.Equal(l.invalidSeen)
	if logInvalid {
		l.invalidSeen = until
	}
	l.mu.Unlock()
	if invalid {
		l.m.invalid.Inc()
	}
	if logInvalid {
		level.Error(l.logger).Log(logkeys.Msg, "invalid lease item: its expiry lies further ahead than twice the duration; taking it over",
			logkeys.Holder, holder, logkeys.Until, until, logkeys.LeaseGeneration, gen)
	}
	if holder != "" {
		l.m.expiry.Set(float64(until.UnixMilli()) / 1000)
	}
	l.observe(l.now(), func() string { return "the lease is held by " + holder })
	switch {
	case holder == "" || holder == prev:
	case prev == "" || prev == l.o.Holder:
		level.Info(l.logger).Log(logkeys.Msg, "another replica holds the lease: standing by",
			logkeys.Holder, holder, logkeys.Until, until)
	default:
		level.Info(l.logger).Log(logkeys.Msg, "another replica took over the lease: standing by",
			logkeys.Holder, holder, logkeys.PreviousHolder, prev, logkeys.Until, until)
	}
	return holder == "" || until.Before(now) || invalid
}

// read returns the holder, expiry and generation in the item; holder ""
// when there is no item.
func (l *Lease) read(ctx context.Context) (holder string, until time.Time, gen int64, err error) {
	cctx, cancel := context.WithTimeout(ctx, l.o.RenewEvery)
	defer cancel()
	out, err := l.o.Client.GetItem(cctx, &dynamodb.GetItemInput{
		TableName:      aws.String(l.o.Table),
		Key:            map[string]types.AttributeValue{attrName: &types.AttributeValueMemberS{Value: l.o.Name}},
		ConsistentRead: aws.Bool(true),
	}, awsapi.NoRetryDynamoDB)
	if err != nil {
		l.m.op(opGet, classify(err))
		return "", time.Time{}, 0, fmt.Errorf("read lease %s from table %s: %w", l.o.Name, l.o.Table, err)
	}
	l.m.op(opGet, resultSuccess)
	if len(out.Item) == 0 {
		return "", time.Time{}, 0, nil
	}
	if s, ok := out.Item[attrHolder].(*types.AttributeValueMemberS); ok {
		holder = s.Value
	}
	if n, ok := out.Item[attrExpires].(*types.AttributeValueMemberN); ok {
		if ms, perr := strconv.ParseInt(n.Value, 10, 64); perr == nil {
			until = time.UnixMilli(ms)
		}
	}
	if n, ok := out.Item[attrGeneration].(*types.AttributeValueMemberN); ok {
		gen, _ = strconv.ParseInt(n.Value, 10, 64)
	}
	return holder, until, gen, nil
}

// failed records a write that failed without an answer on the lease
// (throttling, timeout, outage, access denied). The item may have been
// written all the same, so shutdown will try to delete it.
func (l *Lease) failed(start time.Time, err error) {
	l.mu.Lock()
	l.mayHold = true
	l.lastErr = err
	leading := l.leading
	left := l.leaderUntil.Sub(l.now())
	l.mu.Unlock()
	err = fmt.Errorf("write lease %s to table %s: %w", l.o.Name, l.o.Table, err)
	if leading && left > 0 {
		level.Warn(l.logger).Log(logkeys.Msg, "cannot renew the lease; still leader for a while, retrying",
			logkeys.Operation, "PutItem", logkeys.Duration, left, logkeys.Err, err)
		return
	}
	level.Warn(l.logger).Log(logkeys.Msg, "cannot write the lease, retrying",
		logkeys.Operation, "PutItem", logkeys.Err, err)
}

// overdueReason says why a leader whose margin ran out lost the lease.
func (l *Lease) overdueReason() string {
	l.mu.Lock()
	err := l.lastErr
	l.mu.Unlock()
	if err == nil {
		return "not renewed within duration minus the safety margin"
	}
	return "not renewed within duration minus the safety margin: " + err.Error()
}

// observe records a change of this replica's leadership at now: the
// transition counter and one log line. reason (nil: none known) says why
// a loss happened.
func (l *Lease) observe(now time.Time, reason func() string) {
	l.mu.Lock()
	leading := !l.leaderUntil.IsZero() && now.Before(l.leaderUntil)
	changed := leading != l.leading
	l.leading = leading
	until := l.until
	l.mu.Unlock()
	if !changed {
		return
	}
	l.m.transitions.Inc()
	if leading {
		level.Info(l.logger).Log(logkeys.Msg, "acquired the lease: this replica acts",
			logkeys.Holder, l.o.Holder, logkeys.Until, until)
		return
	}
	why := "lost"
	if reason != nil {
		why = reason()
	}
	level.Warn(l.logger).Log(logkeys.Msg, "lost the lease: this replica stands by",
		logkeys.Holder, l.o.Holder, logkeys.Reason, why)
}

// release stops leading and deletes the item if it may be ours, with a
// condition on the holder so that another replica's item is never deleted.
func (l *Lease) release(ctx context.Context) error {
	l.mu.Lock()
	l.leaderUntil = time.Time{}
	wasLeading := l.leading
	l.leading = false
	mayHold := l.mayHold
	l.mayHold = false
	l.mu.Unlock()
	if wasLeading {
		l.m.transitions.Inc()
		level.Info(l.logger).Log(logkeys.Msg, "stopped leading: shutting down", logkeys.Holder, l.o.Holder)
	}
	if !mayHold {
		return nil
	}

	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), l.o.RenewEvery)
	defer cancel()
	_, err := l.o.Client.DeleteItem(cctx, &dynamodb.DeleteItemInput{
		TableName:                 aws.String(l.o.Table),
		Key:                       map[string]types.AttributeValue{attrName: &types.AttributeValueMemberS{Value: l.o.Name}},
		ConditionExpression:       aws.String(releaseCondition),
		ExpressionAttributeNames:  map[string]string{"#h": attrHolder},
		ExpressionAttributeValues: map[string]types.AttributeValue{":me": &types.AttributeValueMemberS{Value: l.o.Holder}},
	}, awsapi.NoRetryDynamoDB)
	switch {
	case err == nil:
		l.m.op(opDelete, resultSuccess)
		l.mu.Lock()
		if l.holder == l.o.Holder {
			l.holder, l.until = "", time.Time{}
		}
		l.mu.Unlock()
		level.Info(l.logger).Log(logkeys.Msg, "released the lease", logkeys.Holder, l.o.Holder)
		return nil
	case isConditionFailed(err):
		l.m.op(opDelete, resultConflict)
		level.Info(l.logger).Log(logkeys.Msg, "nothing to release: the lease is not this replica's", logkeys.Holder, l.o.Holder)
		return nil
	default:
		l.m.op(opDelete, classify(err))
		err = fmt.Errorf("release lease %s in table %s: %w", l.o.Name, l.o.Table, err)
		level.Warn(l.logger).Log(logkeys.Msg, "cannot release the lease; it expires on its own",
			logkeys.Operation, "DeleteItem", logkeys.Err, err)
		return err
	}
}

// isConditionFailed reports whether err is DynamoDB refusing a write
// because its condition did not hold: another replica holds the lease.
func isConditionFailed(err error) bool {
	var ccf *types.ConditionalCheckFailedException
	return errors.As(err, &ccf)
}

// classify names a failed call's result label: throttled or error.
func classify(err error) string {
	if awsapi.IsThrottle(err) {
		return resultThrottled
	}
	return resultError
}

// ceilMillis is t in unix milliseconds, rounded up, so that the expiry
// written is never before t.
func ceilMillis(t time.Time) int64 {
	ms := t.UnixMilli()
	if time.UnixMilli(ms).Before(t) {
		ms++
	}
	return ms
}

func millisValue(ms int64) types.AttributeValue {
	return &types.AttributeValueMemberN{Value: strconv.FormatInt(ms, 10)}
}
