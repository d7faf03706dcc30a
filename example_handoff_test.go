package lease_test

import (
	"context"
	"errors"
	"fmt"
	"log"

	"github.com/kubelease/lease"
	"github.com/kubelease/lease/leasetest"
)

// Move a lease to a named replica without waiting for it to expire (a
// rolling update, a node drain): RequestHandoff asks the holder to step
// down; its work is stopped first, then the replica named takes it.
func ExampleRequestHandoff() {
	srv := leasetest.NewServer()
	defer srv.Close()
	newLease := func(owner string) *lease.KubernetesLease {
		l, err := lease.NewKubernetesLease(lease.Settings{
			Name:              "leader",
			Owner:             owner,
			Config:            srv.Config(),
			WatchWhileHolding: true, // see a handoff request at once, not at the next renewal
		})
		if err != nil {
			log.Fatal(err)
		}
		return l
	}
	a, b := newLease("replica-a"), newLease("replica-b")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	aStarted, aStopped, bStarted := make(chan struct{}), make(chan error, 1), make(chan struct{})
	go func() {
		_ = lease.RunSingleton(ctx, a, func(wctx context.Context) error {
			close(aStarted)
			<-wctx.Done()
			aStopped <- context.Cause(wctx)
			return nil
		}, lease.SingletonOptions{})
	}()
	<-aStarted
	bDone := make(chan error, 1)
	go func() {
		bDone <- lease.RunSingleton(ctx, b, func(wctx context.Context) error {
			close(bStarted)
			<-wctx.Done()
			return nil
		}, lease.SingletonOptions{})
	}()

	// An operator (or "kubelease handoff leader --to replica-b").
	if err := lease.RequestHandoff(ctx, srv.Config(), "", "leader", "replica-b"); err != nil {
		log.Fatal(err)
	}
	cause := <-aStopped
	var lost *lease.LostError
	if errors.As(cause, &lost) {
		fmt.Println("replica-a's work stopped:", lost.Reason, "to", lost.Holder)
	}
	<-bStarted
	info, err := lease.ReadLease(ctx, srv.Config(), "", "leader")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("holder:", info.Holder, "transitions:", info.Transitions)
	cancel()
	<-bDone
	// Output:
	// replica-a's work stopped: handoff to replica-b
	// holder: replica-b transitions: 1
}

// ListLeases shows who holds what, as "kubelease list" does; ForceRelease
// deletes one Lease by hand, only if it is still the record that was read.
func ExampleListLeases() {
	srv := leasetest.NewServer()
	defer srv.Close()
	ctx := context.Background()
	for _, name := range []string{"backup", "report"} {
		l, err := lease.NewKubernetesLease(lease.Settings{Name: name, Owner: "cron-" + name, Config: srv.Config()})
		if err != nil {
			log.Fatal(err)
		}
		if _, err := l.Acquire(ctx); err != nil {
			log.Fatal(err)
		}
		defer l.Release(ctx)
	}
	infos, err := lease.ListLeases(ctx, srv.Config(), "", "")
	if err != nil {
		log.Fatal(err)
	}
	for _, info := range infos {
		fmt.Println(info.Name, "held by", info.Holder)
	}
	// An operator clears "backup" (its holder is gone, say).
	if err := lease.ForceRelease(ctx, srv.Config(), infos[0]); err != nil {
		log.Fatal(err)
	}
	info, err := lease.ReadLease(ctx, srv.Config(), "", "backup")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("backup exists:", info.Exists)
	// Output:
	// backup held by cron-backup
	// report held by cron-report
	// backup exists: false
}
