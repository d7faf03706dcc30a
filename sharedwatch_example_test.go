package lease_test

import (
	"context"
	"fmt"
	"log"
	"sync"

	"github.com/kubelease/lease"
	"github.com/kubelease/lease/leasetest"
)

// A process that stands by for many Leases of one namespace (here three
// shards) shares one list+watch of them: the shards' Leases carry a label,
// and every lease names the same NamespaceWatch.
func ExampleNamespaceWatch() {
	srv := leasetest.NewServer()
	defer srv.Close()
	cfg := srv.Config() // with a real cluster: lease.DefaultConfig()
	shards := []string{"shard-0", "shard-1", "shard-2"}

	w, err := lease.NewNamespaceWatch(cfg, "default", "app=shards", lease.NamespaceWatchOptions{})
	if err != nil {
		log.Fatal(err)
	}
	defer w.Close()
	newLease := func(name, owner string) *lease.KubernetesLease {
		l, err := lease.NewKubernetesLease(lease.Settings{
			Name:        name,
			Owner:       owner,
			Config:      cfg,
			Labels:      map[string]string{"app": "shards"},
			SharedWatch: w,
		})
		if err != nil {
			log.Fatal(err)
		}
		return l
	}

	ctx := context.Background()
	held := map[string]*lease.KubernetesLease{}
	for _, name := range shards { // another process holds every shard
		held[name] = newLease(name, "pod-a")
		if _, err := held[name].Acquire(ctx); err != nil {
			log.Fatal(err)
		}
	}

	runCtx, stop := context.WithCancel(ctx)
	started := make(chan string, len(shards))
	var wg sync.WaitGroup
	for _, name := range shards {
		l := newLease(name, "pod-b")
		wg.Go(func() {
			_ = lease.RunSingleton(runCtx, l, func(ctx context.Context) error {
				<-ctx.Done() // the shard's work
				return nil
			}, lease.SingletonOptions{OnStarted: func(lease.Token) { started <- name }})
			_ = l.Release(ctx)
		})
	}
	if err := srv.AwaitWatchers(ctx, 1); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("pod-b stands by for %d shards: %d list, %d watch\n", len(shards), srv.Count("list"), srv.Count("watch"))

	if err := held["shard-1"].Release(ctx); err != nil {
		log.Fatal(err)
	}
	fmt.Println("pod-b took over", <-started)

	stop()
	wg.Wait()
	for _, l := range held {
		_ = l.Release(ctx)
	}
	fmt.Printf("in all: %d list, %d watch\n", srv.Count("list"), srv.Count("watch"))
	// Output:
	// pod-b stands by for 3 shards: 1 list, 1 watch
	// pod-b took over shard-1
	// in all: 1 list, 1 watch
}
