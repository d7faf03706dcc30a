package lease_test

import (
	"context"
	"errors"
	"fmt"
	"log"

	"github.com/kubelease/lease"
	"github.com/kubelease/lease/leasetest"
)

// At most two builds at once across all replicas: each replica runs
// RunSingleton over a Semaphore of two slots. The third waits, on the
// Semaphore's watch, until a slot is released.
func ExampleNewSemaphore() {
	srv := leasetest.NewServer()
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())

	events := make(chan string, 16)
	done := make(chan error, 3)
	// build starts a replica that builds while it holds a slot, until
	// finished is closed; then RunSingleton releases the slot and returns.
	build := func(owner string, finished <-chan struct{}) {
		sem, err := lease.NewSemaphore(lease.SemaphoreSettings{
			Name:  "builds",
			Slots: 2,
			Lease: lease.Settings{Owner: owner, Config: srv.Config()}, // in a pod: pod name + a random suffix
		})
		if err != nil {
			log.Fatal(err)
		}
		waiting := false
		go func() {
			defer sem.Close()
			done <- lease.RunSingleton(ctx, sem, func(ctx context.Context) error {
				// Fence per slot: tokens of different slots are tokens of
				// different Leases (sem.Token).
				slot, _ := sem.Slot()
				events <- fmt.Sprintf("%s builds in slot %d", owner, slot)
				select {
				case <-finished:
				case <-ctx.Done():
				}
				return nil
			}, lease.SingletonOptions{
				OnAttempt: func(err error) {
					if err == nil && !waiting { // nil: every slot is held by others
						waiting = true
						events <- owner + " waits for a slot"
					}
				},
			})
		}()
	}

	aDone := make(chan struct{})
	build("replica-a", aDone)
	fmt.Println(<-events)
	build("replica-b", nil)
	fmt.Println(<-events)
	build("replica-c", nil)
	fmt.Println(<-events)

	close(aDone) // replica-a's build is done: RunSingleton releases its slot
	fmt.Println(<-events)
	cancel()
	for range 3 {
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			log.Fatal(err)
		}
	}
	// Output:
	// replica-a builds in slot 1
	// replica-b builds in slot 0
	// replica-c waits for a slot
	// replica-c builds in slot 1
}
