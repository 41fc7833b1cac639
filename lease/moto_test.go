package lease_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/go-kit/log"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/medic-sre/medic/internal/emulator"
	"github.com/medic-sre/medic/lease"
)

// These tests run two replicas against DynamoDB in a real moto_server,
// with the shortest lease config allows (3s, renewed every 1s).
const (
	duration   = 3 * time.Second
	renewEvery = time.Second
)

// cuttable is a replica's link to DynamoDB that the test can cut, as a
// crash or a network partition would: every call then fails unsent.
type cuttable struct {
	*dynamodb.Client
	cut atomic.Bool
}

var errCut = errors.New("link cut by the test")

func (c *cuttable) PutItem(ctx context.Context, in *dynamodb.PutItemInput, o ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	if c.cut.Load() {
		return nil, errCut
	}
	return c.Client.PutItem(ctx, in, o...)
}

func (c *cuttable) DeleteItem(ctx context.Context, in *dynamodb.DeleteItemInput, o ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error) {
	if c.cut.Load() {
		return nil, errCut
	}
	return c.Client.DeleteItem(ctx, in, o...)
}

func (c *cuttable) GetItem(ctx context.Context, in *dynamodb.GetItemInput, o ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error) {
	if c.cut.Load() {
		return nil, errCut
	}
	return c.Client.GetItem(ctx, in, o...)
}

// motoTable starts moto, creates the lease table and returns a client.
func motoTable(t *testing.T, table string) *dynamodb.Client {
	t.Helper()
	m := emulator.StartMotoT(t)
	db := dynamodb.NewFromConfig(m.Config())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := db.CreateTable(ctx, &dynamodb.CreateTableInput{
		TableName:            aws.String(table),
		AttributeDefinitions: []types.AttributeDefinition{{AttributeName: aws.String("name"), AttributeType: types.ScalarAttributeTypeS}},
		KeySchema:            []types.KeySchemaElement{{AttributeName: aws.String("name"), KeyType: types.KeyTypeHash}},
		BillingMode:          types.BillingModePayPerRequest,
	})
	if err != nil {
		t.Fatalf("create table %s: %v", table, err)
	}
	return db
}

// runner is one replica running its lease loop.
type runner struct {
	l      *lease.Lease
	link   *cuttable
	cancel context.CancelFunc
	done   chan error
}

func start(t *testing.T, db *dynamodb.Client, holder string) *runner {
	t.Helper()
	r := &runner{link: &cuttable{Client: db}, done: make(chan error, 1)}
	r.l = lease.New(lease.Options{
		Client: r.link, Table: "medic-lease", Name: "medic-test", Holder: holder,
		Duration: duration, RenewEvery: renewEvery,
		Logger: log.With(log.NewLogfmtLogger(log.NewSyncWriter(testWriter{t})), "replica", holder), Registerer: prometheus.NewRegistry(),
	})
	var ctx context.Context
	ctx, r.cancel = context.WithCancel(context.Background())
	go func() { r.done <- r.l.Run(ctx) }()
	t.Cleanup(func() { r.stop(t) })
	return r
}

// stop cancels the loop and returns Run's error (nil when already stopped).
func (r *runner) stop(t *testing.T) error {
	t.Helper()
	r.cancel()
	select {
	case err, ok := <-r.done:
		if ok {
			close(r.done)
		}
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return within 10s of cancel")
		return nil
	}
}

// testWriter sends log lines to t.Log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// poll checks the one-leader rule every 20ms until cond holds, for at most
// limit; it returns when cond first held.
func poll(t *testing.T, limit time.Duration, what string, rs []*runner, cond func() bool) time.Time {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		leaders := 0
		for _, r := range rs {
			if r.l.IsLeader() {
				leaders++
			}
		}
		if leaders > 1 {
			t.Fatalf("%d replicas are leader at once (waiting until %s)", leaders, what)
		}
		if cond() {
			return time.Now()
		}
		if time.Now().After(deadline) {
			t.Fatalf("not %s within %s", what, limit)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// leaderOf returns the one runner that is leader, or nil.
func leaderOf(rs []*runner) (leader, standby *runner) {
	switch {
	case rs[0].l.IsLeader():
		return rs[0], rs[1]
	case rs[1].l.IsLeader():
		return rs[1], rs[0]
	}
	return nil, nil
}

// TestMotoCrashedLeader: one of two replicas leads; when it is cut off (a
// crash, a partition) it stops leading before its lease expires, and the
// other takes over only after that expiry; never are both leader.
func TestMotoCrashedLeader(t *testing.T) {
	db := motoTable(t, "medic-lease")
	rs := []*runner{start(t, db, "replica-a"), start(t, db, "replica-b")}

	poll(t, 10*time.Second, "one replica leads", rs, func() bool { l, _ := leaderOf(rs); return l != nil })
	// Both have seen the item: the standby knows who holds it.
	leader, standby := leaderOf(rs)
	poll(t, 3*renewEvery, "the standby knows the holder", rs, func() bool {
		h, _ := standby.l.Leader()
		return h == leader.l.Holder()
	})

	// The fence: the leader leads under a generation the item confirms;
	// the standby under none.
	gen, left := leader.l.Leading()
	if gen < 1 || left <= 0 || !leader.l.StillLeads(context.Background(), gen) {
		t.Errorf("leader: Leading() = %d, %s; StillLeads must hold", gen, left)
	}
	if leader.l.StillLeads(context.Background(), gen+1) {
		t.Error("leader: StillLeads holds for a generation it does not lead under")
	}
	if g, _ := standby.l.Leading(); g != 0 || standby.l.StillLeads(context.Background(), gen) {
		t.Errorf("standby: Leading() = %d or StillLeads(%d) holds", g, gen)
	}

	leader.link.cut.Store(true)
	cutAt := time.Now()
	_, expiry := leader.l.Leader() // the last expiry it wrote (a later write cannot land)
	stepDown := poll(t, duration, "the cut-off leader stands down", rs, func() bool { return !leader.l.IsLeader() })
	if !stepDown.Before(expiry) {
		t.Errorf("the leader stood down at %s, after its lease expired at %s", stepDown.Format(time.StampMilli), expiry.Format(time.StampMilli))
	}
	takeover := poll(t, duration+3*renewEvery, "the standby takes over", rs, standby.l.IsLeader)
	if takeover.Before(expiry) {
		t.Errorf("the standby took over at %s, before the lease expired at %s", takeover.Format(time.StampMilli), expiry.Format(time.StampMilli))
	}
	t.Logf("cut → stand down %s, → takeover %s (expiry %s after the cut)",
		stepDown.Sub(cutAt), takeover.Sub(cutAt), expiry.Sub(cutAt))
	if h, _ := standby.l.Leader(); h != standby.l.Holder() {
		t.Errorf("the new leader reports holder %q", h)
	}
	if g, _ := standby.l.Leading(); g != gen+1 {
		t.Errorf("the new leader leads under generation %d, want %d (one takeover)", g, gen+1)
	}

	// The crashed replica's shutdown cannot reach DynamoDB: Run says so.
	if err := leader.stop(t); !errors.Is(err, errCut) {
		t.Errorf("Run of the cut-off replica = %v, want the failed release", err)
	}
	// The new leader keeps the lease across several renewals.
	poll(t, 2*duration, "a few renewals pass", rs, func() bool { return time.Since(takeover) > 2*duration })
	if !standby.l.IsLeader() {
		t.Errorf("the new leader lost the lease")
	}
}

// TestMotoCleanRelease: a leader that shuts down cleanly deletes the item,
// and the standby takes over at its next write, well before the expiry.
func TestMotoCleanRelease(t *testing.T) {
	db := motoTable(t, "medic-lease")
	rs := []*runner{start(t, db, "replica-a"), start(t, db, "replica-b")}
	poll(t, 10*time.Second, "one replica leads", rs, func() bool { l, _ := leaderOf(rs); return l != nil })
	leader, standby := leaderOf(rs)
	_, expiry := leader.l.Leader()

	stopped := time.Now()
	if err := leader.stop(t); err != nil {
		t.Fatalf("clean shutdown: %v", err)
	}
	if leader.l.IsLeader() {
		t.Errorf("leader after shutdown")
	}
	takeover := poll(t, renewEvery+2*time.Second, "the standby takes over", rs, standby.l.IsLeader)
	if !takeover.Before(expiry) {
		t.Errorf("takeover at %s, not before the released lease's expiry %s: the release did not hand over", takeover.Format(time.StampMilli), expiry.Format(time.StampMilli))
	}
	t.Logf("release → takeover %s", takeover.Sub(stopped))

	out, err := db.GetItem(context.Background(), &dynamodb.GetItemInput{
		TableName: aws.String("medic-lease"), ConsistentRead: aws.Bool(true),
		Key: map[string]types.AttributeValue{"name": &types.AttributeValueMemberS{Value: "medic-test"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if h, ok := out.Item["holder"].(*types.AttributeValueMemberS); !ok || h.Value != standby.l.Holder() {
		t.Errorf("the item names %v, want %s", out.Item["holder"], standby.l.Holder())
	}
	for _, attr := range []string{"expires", "acquired_at"} {
		if _, ok := out.Item[attr].(*types.AttributeValueMemberN); !ok {
			t.Errorf("the item has no number %s: %v", attr, out.Item)
		}
	}
}
