package lease_test

import (
	"context"
	"errors"
	"fmt"
	"log"

	"github.com/kubelease/lease"
	"github.com/kubelease/lease/leasetest"
)

// Run a job on exactly one replica: RunSingleton contends, runs work while
// the lease is held, and releases once work returned. Here a shutdown hook
// calls Release while work runs: work is cancelled first (its context's
// cause matches ErrNotHeld), and only then is the Lease deleted.
func ExampleRunSingleton() {
	srv := leasetest.NewServer()
	defer srv.Close()
	l, err := lease.NewKubernetesLease(lease.Settings{
		Name:   "migrations",
		Owner:  "replica-0", // in a pod: pod name + a random suffix
		Config: srv.Config(),
	})
	if err != nil {
		log.Fatal(err)
	}

	started, hookDone := make(chan struct{}), make(chan struct{})
	go func() { // a shutdown hook, e.g. on SIGTERM
		defer close(hookDone)
		<-started
		if err := l.Release(context.Background()); err != nil {
			log.Fatal(err)
		}
		fmt.Println("released; work had stopped first")
	}()

	err = lease.RunSingleton(context.Background(), l, func(ctx context.Context) error {
		fmt.Println("work runs; held:", l.CheckAlive())
		close(started)
		<-ctx.Done() // a real job stops promptly when ctx is cancelled
		fmt.Println("work stops:", errors.Is(context.Cause(ctx), lease.ErrNotHeld))
		return nil
	}, lease.SingletonOptions{})
	<-hookDone
	fmt.Println("RunSingleton returned ErrNotHeld:", errors.Is(err, lease.ErrNotHeld))
	_, exists := srv.Get("default", "migrations")
	fmt.Println("Lease exists:", exists)
	// Output:
	// work runs; held: true
	// work stops: true
	// released; work had stopped first
	// RunSingleton returned ErrNotHeld: true
	// Lease exists: false
}
