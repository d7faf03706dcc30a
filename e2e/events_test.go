package e2e

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/kubelease/lease"
	"github.com/kubelease/lease/e2e/cluster"
)

// coreEvent is the part of a core/v1 Event the tests check.
type coreEvent struct {
	Metadata struct {
		Name      string `json:"name"`
		Namespace string `json:"namespace"`
	} `json:"metadata"`
	InvolvedObject struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Namespace  string `json:"namespace"`
		Name       string `json:"name"`
		UID        string `json:"uid"`
	} `json:"involvedObject"`
	Type    string `json:"type"`
	Reason  string `json:"reason"`
	Message string `json:"message"`
	Source  struct {
		Component string `json:"component"`
	} `json:"source"`
	Count int32 `json:"count"`
}

// leaseEvents lists, as the admin, the Events about the Lease name.
func leaseEvents(t *testing.T, c *cluster.Cluster, name string) []coreEvent {
	t.Helper()
	path := "/api/v1/namespaces/" + cluster.Namespace + "/events?fieldSelector=" +
		url.QueryEscape("involvedObject.name="+name)
	code, body, err := c.Do(ctxFor(t, 10*time.Second), cluster.AdminToken, http.MethodGet, path, nil)
	if err != nil || code != http.StatusOK {
		t.Fatalf("GET %s: %d %v %.300s", path, code, err, body)
	}
	var list struct {
		Items []coreEvent `json:"items"`
	}
	if err := json.Unmarshal(body, &list); err != nil {
		t.Fatal(err)
	}
	return list.Items
}

// awaitEventMessages polls until the Events about name hold every one of
// msgs, and returns them.
func awaitEventMessages(t *testing.T, c *cluster.Cluster, name string, msgs ...string) map[string]coreEvent {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		got := map[string]coreEvent{}
		for _, ev := range leaseEvents(t, c, name) {
			got[ev.Message] = ev
		}
		missing := ""
		for _, m := range msgs {
			if _, ok := got[m]; !ok {
				missing = m
			}
		}
		if missing == "" {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("no event %q about Lease %s within 20s; got %v", missing, name, got)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// leaseUID reads the Lease's uid as the admin.
func leaseUID(t *testing.T, c *cluster.Cluster, name string) string {
	t.Helper()
	code, body, err := c.Do(ctxFor(t, 10*time.Second), cluster.AdminToken, http.MethodGet, leasesPath+name, nil)
	if err != nil || code != http.StatusOK {
		t.Fatalf("GET lease %s: %d %v %.300s", name, code, err, body)
	}
	var obj struct {
		Metadata struct {
			UID string `json:"uid"`
		} `json:"metadata"`
	}
	if err := json.Unmarshal(body, &obj); err != nil {
		t.Fatal(err)
	}
	return obj.Metadata.UID
}

// TestEventsByNameRBAC: with the Role of examples/deploy/rbac.yaml (user
// byname), a lease with EventSource posts "became leader" and "stopped
// leading" about its Lease, reason LeaderElection, as kube-apiserver
// stores them; a loss posts a Warning LeaseLost.
func TestEventsByNameRBAC(t *testing.T) {
	c := needCluster(t)
	name := cluster.ByNameLease
	owner := "events-" + randHex(3)
	l, err := lease.NewKubernetesLease(lease.Settings{
		Name: name, Namespace: cluster.Namespace, Owner: owner,
		Config: c.Config(cluster.ByNameToken), EventSource: "kubelease-e2e",
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Release(ctxFor(t, 10*time.Second)) })
	if ok, err := l.Acquire(ctxFor(t, 10*time.Second)); err != nil || !ok {
		t.Fatalf("Acquire = %v, %v", ok, err)
	}
	uid := leaseUID(t, c, name)
	if err := l.Release(ctxFor(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	became, stopped := owner+" became leader", owner+" stopped leading"
	got := awaitEventMessages(t, c, name, became, stopped)
	for _, m := range []string{became, stopped} {
		ev := got[m]
		io := ev.InvolvedObject
		if ev.Type != "Normal" || ev.Reason != lease.EventReasonLeaderElection || ev.Source.Component != "kubelease-e2e" || ev.Count != 1 {
			t.Errorf("%q: type %q reason %q source %q count %d", m, ev.Type, ev.Reason, ev.Source.Component, ev.Count)
		}
		if io.APIVersion != "coordination.k8s.io/v1" || io.Kind != "Lease" || io.Name != name || io.Namespace != cluster.Namespace || io.UID != uid {
			t.Errorf("%q: involvedObject %+v, want the Lease %s/%s uid %s", m, io, cluster.Namespace, name, uid)
		}
		if ev.Metadata.Namespace != cluster.Namespace || !strings.HasPrefix(ev.Metadata.Name, name+".") {
			t.Errorf("%q: event %s/%s", m, ev.Metadata.Namespace, ev.Metadata.Name)
		}
	}

	// A loss: an operator deletes the Lease under the holder.
	if ok, err := l.Acquire(ctxFor(t, 10*time.Second)); err != nil || !ok {
		t.Fatalf("Acquire again = %v, %v", ok, err)
	}
	lost := recordLost(l)
	code, body, err := c.Do(ctxFor(t, 10*time.Second), cluster.AdminToken, http.MethodDelete, leasesPath+name, nil)
	if err != nil || code != http.StatusOK {
		t.Fatalf("DELETE: %d %v %.300s", code, err, body)
	}
	if le := lost.wait(30 * time.Second); le == nil || le.Reason != lease.LostDeleted {
		t.Fatalf("OnLost: %v, want deleted", le)
	}
	warn := awaitEventMessages(t, c, name, owner+" lost the lease (deleted)")[owner+" lost the lease (deleted)"]
	if warn.Type != "Warning" || warn.Reason != lease.EventReasonLeaseLost {
		t.Errorf("loss event: type %q reason %q", warn.Type, warn.Reason)
	}
}

// TestEventsForbiddenKeepsLease: a user without RBAC for events (limited:
// leases only) holds and renews its lease as usual; the 403s are logged
// once, and no event is stored.
func TestEventsForbiddenKeepsLease(t *testing.T) {
	c := needCluster(t)
	name := leaseName(t)
	logs := &logLines{}
	l, err := lease.NewKubernetesLease(lease.Settings{
		Name: name, Namespace: cluster.Namespace, Owner: "events-" + randHex(3),
		TTL: 3 * time.Second, Config: c.Config(cluster.LimitedToken), EventSource: "kubelease-e2e",
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		l.Release(ctxFor(t, 10*time.Second)) // limited may not delete: 403
		c.Do(ctxFor(t, 10*time.Second), cluster.AdminToken, http.MethodDelete, leasesPath+name, nil)
	})
	lost := recordLost(l)
	if ok, err := l.Acquire(ctxFor(t, 10*time.Second)); err != nil || !ok {
		t.Fatalf("Acquire = %v, %v", ok, err)
	}
	tok, _ := l.Token()
	// Hold for three TTLs: renewals go on; the event's 403 does not matter.
	deadline := time.Now().Add(9 * time.Second)
	for time.Now().Before(deadline) {
		if !l.CheckAlive() {
			t.Fatalf("lost the lease: %v", lost.none())
		}
		time.Sleep(200 * time.Millisecond)
	}
	if now, ok := l.Token(); !ok || now != tok {
		t.Errorf("token %v %v, want the same tenure %v", now, ok, tok)
	}
	out := logs.String()
	if n := strings.Count(out, "level=WARN msg=\"kubelease: posting an event failed"); n != 1 {
		t.Errorf("%d warnings about events, want 1:\n%s", n, out)
	}
	if !strings.Contains(out, "403") || !strings.Contains(out, `grant \"create\" on \"events\"`) {
		t.Errorf("the warning does not say 403 and what to grant:\n%s", out)
	}
	if strings.Contains(out, cluster.LimitedToken) {
		t.Errorf("a credential was logged:\n%s", out)
	}
	if evs := leaseEvents(t, c, name); len(evs) != 0 {
		t.Errorf("events stored for a user without RBAC: %+v", evs)
	}
}
