package leasetest_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/kubelease/lease"
	"github.com/kubelease/lease/leasetest"
)

// A KubernetesLease talks to the fake server as to a kube-apiserver; the
// test reads what it stored and how many requests it took.
func ExampleNewServer() {
	srv := leasetest.NewServer()
	defer srv.Close()

	l, err := lease.NewKubernetesLease(lease.Settings{
		Name: "nightly-report", Owner: "pod-a", Config: srv.Config(),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx := context.Background()
	ok, err := l.Acquire(ctx)
	fmt.Println("acquired:", ok, err)

	stored, _ := srv.Get("default", "nightly-report")
	fmt.Println("holder:", stored.Spec.Holder())
	fmt.Println("requests:", srv.Counts())

	if err := l.Release(ctx); err != nil {
		fmt.Println(err)
	}
	_, found := srv.Get("default", "nightly-report")
	fmt.Println("stored after Release:", found)
	// Output:
	// acquired: true <nil>
	// holder: pod-a
	// requests: map[create:1 get:1]
	// stored after Release: false
}

// Conformance runs in a test function, which go test calls with a
// *testing.T; an Example cannot, so this one only shows the call. Against
// a real kube-apiserver, Config returns a Config that reaches it instead.
func ExampleConformance() {
	var _ = func(t *testing.T) { // func TestConformance(t *testing.T) in a _test.go file
		leasetest.Conformance(t, leasetest.ConformanceBackend{
			Config: func(t *testing.T) *lease.Config {
				return leasetest.NewServerT(t).Config()
			},
		})
	}
}

// A MemoryLease stands in for a KubernetesLease in tests of code that
// takes a lease.Lease.
func ExampleMemoryLease() {
	arbiter := leasetest.NewArbiter()
	a, _ := arbiter.NewLease("nightly-report", "pod-a")
	b, _ := arbiter.NewLease("nightly-report", "pod-b")
	ctx := context.Background()

	lost := make(chan error, 1)
	a.OnLost(func(reason error) { lost <- reason })

	okA, _ := a.Acquire(ctx)
	okB, _ := b.Acquire(ctx)
	fmt.Println("a:", okA, "b:", okB)

	arbiter.Expire("nightly-report") // a missed its deadline
	fmt.Println(<-lost)
	okB, _ = b.Acquire(ctx)
	fmt.Println("a alive:", a.CheckAlive(), "b:", okB)
	// Output:
	// a: true b: false
	// lease: lost tenure 1/0: deadline
	// a alive: false b: true
}
