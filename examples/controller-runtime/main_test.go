package main

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
)

func TestReconcilerStampsLabelledConfigMaps(t *testing.T) {
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "a", Namespace: "default", Labels: map[string]string{Label: "true"}}}
	c := fake.NewClientBuilder().WithObjects(cm).Build()
	r := &reconciler{Client: c, stamp: "42/1"}
	ctx := context.Background()
	key := types.NamespacedName{Namespace: "default", Name: "a"}
	for range 2 { // the second is a no-op
		if _, err := r.Reconcile(ctx, ctrl.Request{NamespacedName: key}); err != nil {
			t.Fatal(err)
		}
	}
	var got corev1.ConfigMap
	if err := c.Get(ctx, key, &got); err != nil {
		t.Fatal(err)
	}
	if got.Annotations[Annotation] != "42/1" {
		t.Fatalf("annotation %q, want 42/1", got.Annotations[Annotation])
	}
	// A ConfigMap deleted meanwhile is not an error.
	if _, err := r.Reconcile(ctx, ctrl.Request{NamespacedName: types.NamespacedName{Namespace: "default", Name: "gone"}}); err != nil {
		t.Fatal(err)
	}
}

func TestNewManagerHasItsOwnElectionOff(t *testing.T) {
	cfg := &rest.Config{Host: "https://127.0.0.1:1"}
	var seen ctrl.Options
	if _, err := newManager(cfg, options{}, func(o *ctrl.Options) { seen = *o }); err != nil {
		t.Fatal(err)
	}
	if seen.LeaderElection || seen.Metrics.BindAddress != "0" || seen.HealthProbeBindAddress != "0" {
		t.Fatalf("options %+v: want leader election, metrics and probes off", seen)
	}
	mgr, err := newManager(cfg, options{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := addReconciler(mgr, "default", "1/0", events{id: "t"}); err != nil {
		t.Fatal(err)
	}
}

func TestLeadingReporterNeedsLeaderElection(t *testing.T) {
	if !(leadingReporter{}).NeedLeaderElection() {
		t.Fatal("the reporter must start and stop with the controllers")
	}
	t.Setenv("POD_NAME", "")
	if id := defaultID(); !strings.Contains(id, "-") {
		t.Fatalf("default id %q: want host-pid", id)
	}
}
