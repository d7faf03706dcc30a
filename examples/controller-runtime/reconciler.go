package main

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
)

// Label selects the ConfigMaps the reconciler stamps.
const Label = "kubelease.example/reconcile"

// Annotation is where the reconciler stamps its fencing token (kubelease)
// or its identity (controller-runtime's own election).
const Annotation = "kubelease.example/reconciled-by"

// reconciler stamps every ConfigMap labelled Label=true with stamp.
type reconciler struct {
	client.Client
	stamp string
}

// Reconcile implements reconcile.Reconciler.
func (r *reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var cm corev1.ConfigMap
	if err := r.Get(ctx, req.NamespacedName, &cm); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if cm.Annotations[Annotation] == r.stamp {
		return ctrl.Result{}, nil
	}
	patch := client.MergeFrom(cm.DeepCopy())
	if cm.Annotations == nil {
		cm.Annotations = map[string]string{}
	}
	cm.Annotations[Annotation] = r.stamp
	err := r.Patch(ctx, &cm, patch)
	if apierrors.IsNotFound(err) {
		err = nil
	}
	return ctrl.Result{}, err
}

// addReconciler adds the ConfigMap controller to mgr, and a runnable that
// reports when the manager's leader-only work starts and stops.
func addReconciler(mgr ctrl.Manager, namespace, stamp string, ev events) error {
	labelled := predicate.NewPredicateFuncs(func(o client.Object) bool {
		return o.GetNamespace() == namespace && o.GetLabels()[Label] == "true"
	})
	err := ctrl.NewControllerManagedBy(mgr).
		For(&corev1.ConfigMap{}, builder.WithPredicates(labelled)).
		Complete(&reconciler{Client: mgr.GetClient(), stamp: stamp})
	if err != nil {
		return err
	}
	return mgr.Add(leadingReporter{ev, mgr.GetCache()})
}

// leadingReporter is a runnable that needs leader election, like the
// controllers: the manager starts it with them and cancels it with them.
// It reports "started-leading" then, and "synced" once the ConfigMap
// informer has synced: the controller's informer starts only with the
// controller, on the leader (in both elections), and the controller
// reconciles only once it has synced.
type leadingReporter struct {
	ev    events
	cache cache.Cache
}

var _ manager.LeaderElectionRunnable = leadingReporter{}

func (r leadingReporter) Start(ctx context.Context) error {
	r.ev.print("started-leading")
	go func() {
		if _, err := r.cache.GetInformer(ctx, &corev1.ConfigMap{}); err == nil && r.cache.WaitForCacheSync(ctx) {
			r.ev.print("synced")
		}
	}()
	<-ctx.Done()
	r.ev.print("stopped-leading")
	return nil
}

func (leadingReporter) NeedLeaderElection() bool { return true }
