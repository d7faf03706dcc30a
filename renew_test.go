package lease_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/kubelease/lease"
	"github.com/kubelease/lease/internal/wire"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestRenewalIsOnePut(t *testing.T) {
	e := newEnv(t)
	a := e.newLease("pod-a")
	tok := a.acquire(t)
	e.srv.ResetCounts()
	const renewals = 6
	for range renewals {
		before := e.record().Spec.RenewTime.Time
		a.renewOnce(t)
		after := e.record().Spec.RenewTime.Time
		assert.True(t, after.After(before), "renewTime moved: %v -> %v", before, after)
	}
	assert.Equal(t, map[string]int{"update": renewals}, nonZero(e.srv.Counts()), "steady state: one PUT per renewal, no GET")
	// 6 renewals took about 30s of fake time, twice the TTL: still held.
	assert.True(t, a.CheckAlive())
	got, ok := a.Token()
	assert.True(t, ok)
	assert.Equal(t, tok, got, "renewals keep the tenure's token")
	assert.Equal(t, 0, a.lost.count())
}

func TestRenewalKeepsOthersFields(t *testing.T) {
	e := newEnv(t)
	rec := &wire.Lease{}
	rec.Name, rec.Namespace = "job", "default"
	rec.Labels = map[string]string{"app": "x"}
	rec.Annotations = map[string]string{"note": "keep me"}
	rec.OwnerReferences = []metav1.OwnerReference{{APIVersion: "v1", Kind: "ConfigMap", Name: "owner", UID: "u-1"}}
	rec.Spec.Unknown = map[string]json.RawMessage{
		"strategy":        json.RawMessage(`"OldestEmulationVersion"`),
		"preferredHolder": json.RawMessage(`"pod-z"`),
	}
	e.srv.EnableCoordinatedLeaderElection() // or the server drops strategy and preferredHolder
	require.NoError(t, e.srv.Put(rec))
	a := e.newLease("pod-a")
	a.acquire(t)
	a.renewOnce(t)
	// Someone edits a label between renewals: the renewal's 409 is not a loss.
	require.NoError(t, e.srv.Edit("default", "job", func(l *wire.Lease) { l.Labels["edited"] = "yes" }))
	a.renewOnce(t)
	a.renewOnce(t)

	got := e.record()
	assert.Equal(t, map[string]string{"app": "x", "edited": "yes"}, got.Labels)
	assert.Equal(t, "keep me", got.Annotations["note"])
	assert.Equal(t, rec.OwnerReferences, got.OwnerReferences)
	assert.JSONEq(t, `"OldestEmulationVersion"`, string(got.Spec.Unknown["strategy"]))
	assert.JSONEq(t, `"pod-z"`, string(got.Spec.Unknown["preferredHolder"]))
	assert.True(t, a.CheckAlive())
	assert.Equal(t, 0, a.lost.count())
	assert.Equal(t, 2, e.srv.Count("get"), "acquire's read and one re-read after the label edit's 409")
}

func TestRenewalLoss(t *testing.T) {
	tests := []struct {
		name       string
		change     func(e *env)
		wantReason lease.LostReason
		wantHolder string
	}{
		{"competitor takes over", func(e *env) {
			require.NoError(t, e.srv.Edit("default", "job", func(l *wire.Lease) { l.Spec.HolderIdentity = ptr("pod-c") }))
		}, lease.LostConflict, "pod-c"},
		{"holder cleared", func(e *env) {
			require.NoError(t, e.srv.Edit("default", "job", func(l *wire.Lease) { l.Spec.HolderIdentity = nil }))
		}, lease.LostConflict, ""},
		{"same owner, another instance's nonce", func(e *env) {
			require.NoError(t, e.srv.Edit("default", "job", func(l *wire.Lease) { l.Annotations[lease.NonceAnnotation] = "other" }))
		}, lease.LostConflict, "pod-a"},
		{"deleted", func(e *env) { require.NoError(t, e.srv.Delete("default", "job")) }, lease.LostDeleted, ""},
		{"re-created by someone else: deleted wins over holder change", func(e *env) {
			require.NoError(t, e.srv.Delete("default", "job"))
			e.putRecord("pod-c", epoch, 15, 0)
		}, lease.LostDeleted, "pod-c"},
		{"re-created naming us: uid changed", func(e *env) {
			old := e.record()
			require.NoError(t, e.srv.Delete("default", "job"))
			old.UID, old.ResourceVersion = "", ""
			require.NoError(t, e.srv.Put(old))
		}, lease.LostDeleted, "pod-a"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			a := e.newLease("pod-a")
			tok := a.acquire(t)
			wait := a.events.waitArmed(t)
			tc.change(e)
			a.clk.Step(wait)
			le := a.lost.wait(t)
			assert.Equal(t, tc.wantReason, le.Reason)
			assert.Equal(t, tc.wantHolder, le.Holder)
			assert.Equal(t, tok, le.Token)
			assert.False(t, a.CheckAlive(), "CheckAlive after loss")
			_, ok := a.Token()
			assert.False(t, ok)
			assert.Equal(t, 1, a.lost.count(), "OnLost once")
		})
	}
}

func TestRenewalMicrosecondBump(t *testing.T) {
	e := newEnv(t)
	a := e.newLease("pod-a")
	a.acquire(t)
	// The stored renewTime is ahead of our clock (a wall step back): the
	// renewal must still change it, by 1µs, or it would be a no-op.
	lease.StepWall(a.KubernetesLease, -10*time.Second)
	before := e.record()
	a.renewOnce(t)
	after := e.record()
	assert.Equal(t, before.Spec.RenewTime.Add(time.Microsecond), after.Spec.RenewTime.Time)
	assert.NotEqual(t, before.ResourceVersion, after.ResourceVersion)
}
