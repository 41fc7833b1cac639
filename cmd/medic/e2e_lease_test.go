package main

// End-to-end rows of issue 7 on marks under failure: a dropped
// SetInstanceHealth is retried within seconds, and a failover between two
// replicas under the lease marks a bad instance once. Each asserts what the
// emulator records (the instance's health) and what the fault proxies
// counted (SetInstanceHealth calls).

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/medic-sre/medic/internal/emulator"
)

// dropping makes proxy reset the connection of every SetInstanceHealth
// while on is true, before it reaches the emulator; it counts the drops.
func dropping(proxy *emulator.FaultProxy, on *atomic.Bool) *atomic.Int32 {
	var drops atomic.Int32
	proxy.OnAction("SetInstanceHealth", func(w http.ResponseWriter, _ *http.Request) bool {
		if !on.Load() {
			return false
		}
		drops.Add(1)
		emulator.DropConnection(w)
		return true
	})
	return &drops
}

// One SetInstanceHealth call fails on a dropped connection: retried with
// backoff, and marked within seconds of AWS answering again.
func TestE2EDroppedMarkIsRetriedWithinSeconds(t *testing.T) {
	w := newWorld(t, fleetOpts{PerAZ: 2})
	m := w.steady(w.config(cfgOpts{}))
	victim := w.instances()[0].ID

	var down atomic.Bool
	down.Store(true)
	drops := dropping(w.proxy, &down)
	if err := w.app(victim).Status(http.StatusInternalServerError); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "a SetInstanceHealth dropped", func() (bool, string) {
		return drops.Load() >= 1, "no call yet"
	})
	down.Store(false)
	back := time.Now()
	marked := w.waitUnhealthy(victim, 10*time.Second)
	if d := marked.Sub(back); d > 5*time.Second {
		t.Errorf("marked %s after AWS answered again, want within 5s (the backoff caps at 2s)", d.Round(time.Millisecond))
	}
	t.Logf("%d dropped; marked %s after AWS answered again", drops.Load(), marked.Sub(back).Round(time.Millisecond))
	m.waitMetric(10*time.Second, eq(1), "medic_heal_actions_total", "service", svc, "result", "marked")
	if got, want := w.proxy.Count("SetInstanceHealth"), int(drops.Load())+1; got != want {
		t.Errorf("SetInstanceHealth calls = %d, want the %d dropped + 1", got, want-1)
	}
	w.assertOnlyUnhealthy(victim)
}

// leaseConfig adds a lease (3s, renewed every second) to cfg.
func leaseConfig(cfg string) string {
	return strings.Replace(cfg, "global:\n", "global:\n  lease: {table: medic-lease, name: e2e, duration: 3s, renew_every: 1s}\n", 1)
}

// createLeaseTable creates the lease's DynamoDB table in the emulator.
func (w *world) createLeaseTable() {
	w.t.Helper()
	_, err := dynamodb.NewFromConfig(w.moto.Config()).CreateTable(w.ctx, &dynamodb.CreateTableInput{
		TableName:            aws.String("medic-lease"),
		AttributeDefinitions: []ddbtypes.AttributeDefinition{{AttributeName: aws.String("name"), AttributeType: ddbtypes.ScalarAttributeTypeS}},
		KeySchema:            []ddbtypes.KeySchemaElement{{AttributeName: aws.String("name"), KeyType: ddbtypes.KeyTypeHash}},
		BillingMode:          ddbtypes.BillingModePayPerRequest,
	})
	if err != nil {
		w.t.Fatal(err)
	}
}

// Two replicas under the lease; the leader cannot reach SetInstanceHealth
// while the standby sees the bad instance; the leader dies: the new leader
// marks it, once.
func TestE2EFailoverNewLeaderMarksOnce(t *testing.T) {
	w := newWorld(t, fleetOpts{PerAZ: 2})
	w.createLeaseTable()
	cfg := w.writeConfig("medic.yml", leaseConfig(w.config(cfgOpts{})))

	// a leads; every SetInstanceHealth of a is dropped.
	a := w.startMedic(cfg)
	a.waitMetric(20*time.Second, eq(1), "medic_lease_leader")
	var cut atomic.Bool
	cut.Store(true)
	aDrops := dropping(w.proxy, &cut)

	proxyB, err := emulator.StartFaultProxy(w.moto.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = proxyB.Close() })
	b := w.startMedicVia(proxyB, cfg)
	b.waitReady()
	b.waitJudged(svc, "healthy", len(w.instances()), 30*time.Second)
	if v := b.metrics().val("medic_lease_leader"); v != 0 {
		t.Fatalf("b leads (%v) while a does", v)
	}

	victim := w.instances()[0].ID
	if err := w.app(victim).Status(http.StatusInternalServerError); err != nil {
		t.Fatal(err)
	}
	// a tries and cannot reach AWS; b sees the bad instance and stands by.
	eventually(t, 20*time.Second, "a's mark dropped", func() (bool, string) { return aDrops.Load() >= 1, "none yet" })
	b.waitMetric(20*time.Second, ge(1), "medic_heal_actions_total", "service", svc, "result", "standby")
	if n := proxyB.Count("SetInstanceHealth"); n != 0 {
		t.Fatalf("the standby called SetInstanceHealth %d times", n)
	}

	// a dies without releasing the lease: b takes over after its expiry and marks.
	if err := a.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-a.done
	b.waitMetric(15*time.Second, eq(1), "medic_lease_leader")
	// The healer retries an instance whose action did not happen after a
	// cooldown (healer.FailedCooldown today): wait that long and a bit.
	w.waitUnhealthy(victim, 90*time.Second)
	b.waitMetric(10*time.Second, eq(1), "medic_heal_actions_total", "service", svc, "result", "marked")
	// Once: no further call after the mark, a few cycles on.
	b.waitProbes(svc, 3*len(w.instances()), 15*time.Second)
	if n := proxyB.Count("SetInstanceHealth"); n != 1 {
		t.Errorf("the new leader called SetInstanceHealth %d times, want 1", n)
	}
	if n, d := w.proxy.Count("SetInstanceHealth"), int(aDrops.Load()); n != d {
		t.Errorf("the dead leader made %d SetInstanceHealth calls, %d dropped: some reached the emulator", n, d)
	}
	w.assertOnlyUnhealthy(victim)
	if len(b.logsWith("msg", "took over the lease from another holder")) != 1 {
		t.Error("b did not log its takeover once")
	}
}

// hookEvents is a webhook receiver counting the events it gets by kind
// ("/resolved" added to a resolution), from every replica alike.
type hookEvents struct {
	mu     sync.Mutex
	counts map[string]int
}

func startHook(t *testing.T) (*hookEvents, string) {
	h := &hookEvents{counts: map[string]int{}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var p struct {
			Kind     string `json:"kind"`
			Resolved bool   `json:"resolved"`
		}
		if err := json.NewDecoder(r.Body).Decode(&p); err == nil {
			if p.Resolved {
				p.Kind += "/resolved"
			}
			h.mu.Lock()
			h.counts[p.Kind]++
			h.mu.Unlock()
		}
	}))
	t.Cleanup(srv.Close)
	return h, srv.URL + "/hook"
}

func (h *hookEvents) count(kind string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.counts[kind]
}

// Two replicas under the lease, one webhook: the endpoint failing is told
// once, by the leader, though both replicas see it; when the leader dies
// the new leader tells it once more (it still holds), and its recovery
// once.
func TestE2ETwoReplicasTellAConditionOnce(t *testing.T) {
	hook, hookURL := startHook(t)
	w := newWorld(t, fleetOpts{PerAZ: 1})
	w.createLeaseTable()
	t.Setenv("MEDIC_E2E_HOOK_URL", hookURL)
	cfg := w.writeConfig("medic.yml", leaseConfig(w.config(cfgOpts{}))+`notifications:
  sinks:
    - {name: hook, type: webhook, url_env: MEDIC_E2E_HOOK_URL}
`)
	a := w.startMedic(cfg)
	a.waitMetric(20*time.Second, eq(1), "medic_lease_leader")
	b := w.startMedic(cfg)
	b.waitReady()
	b.waitJudged(svc, "healthy", len(w.instances()), 30*time.Second)
	if v := b.metrics().val("medic_lease_leader"); v != 0 {
		t.Fatalf("b leads (%v) while a does", v)
	}

	w.lb.setStatus(http.StatusServiceUnavailable)
	eventually(t, 20*time.Second, "endpoint_failing told", func() (bool, string) {
		return hook.count("endpoint_failing") >= 1, "not yet"
	})
	// b sees the failure too, for several cycles, and tells nothing.
	b.waitMetric(10*time.Second, eq(0), "medic_service_endpoint_success", "service", svc)
	b.waitProbes(svc, 5*len(w.instances()), 15*time.Second)
	if n := hook.count("endpoint_failing"); n != 1 {
		t.Fatalf("endpoint_failing told %d times by two replicas, want 1 (the leader's)", n)
	}

	// a dies holding the lease: b leads after its expiry and tells what
	// still holds, once.
	if err := a.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-a.done
	b.waitMetric(15*time.Second, eq(1), "medic_lease_leader")
	eventually(t, 10*time.Second, "the new leader tells the failing endpoint", func() (bool, string) {
		return hook.count("endpoint_failing") == 2, "not yet"
	})
	w.lb.setStatus(http.StatusOK)
	eventually(t, 20*time.Second, "endpoint_recovered told", func() (bool, string) {
		return hook.count("endpoint_recovered/resolved") >= 1, "not yet"
	})
	b.waitProbes(svc, 3*len(w.instances()), 15*time.Second)
	if n, r := hook.count("endpoint_failing"), hook.count("endpoint_recovered/resolved"); n != 2 || r != 1 {
		t.Errorf("endpoint_failing told %d times (want 2: a, then b on taking over), recovered %d (want 1)", n, r)
	}
}
