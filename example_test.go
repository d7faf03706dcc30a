package lease_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/kubelease/lease"
	"github.com/kubelease/lease/leasetest"
)

// A job that must not run twice: take the lease, work while it is held,
// release it. The fake API server stands in for a cluster; with a real one,
// pass lease.DefaultConfig() as Config.
func ExampleKubernetesLease() {
	srv := leasetest.NewServer()
	defer srv.Close()
	ctx := context.Background()

	newLease := func(owner string) *lease.KubernetesLease {
		l, err := lease.NewKubernetesLease(lease.Settings{
			Name:   "nightly-report",
			Owner:  owner, // in a pod: pod name + a random suffix
			Config: srv.Config(),
		})
		if err != nil {
			log.Fatal(err)
		}
		return l
	}
	a, b := newLease("worker-a"), newLease("worker-b")

	ok, err := a.Acquire(ctx)
	if err != nil {
		log.Fatal(err)
	}
	tok, _ := a.Token()
	fmt.Println("worker-a holds it:", ok, a.CheckAlive(), "transitions:", tok.Transitions)

	ok, err = b.Acquire(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("worker-b holds it:", ok)

	if err := a.Release(ctx); err != nil {
		log.Fatal(err)
	}
	fmt.Println("worker-a holds it after Release:", a.CheckAlive())

	ok, err = b.Acquire(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("worker-b holds it now:", ok)
	if err := b.Release(ctx); err != nil {
		log.Fatal(err)
	}
	// Output:
	// worker-a holds it: true true transitions: 0
	// worker-b holds it: false
	// worker-a holds it after Release: false
	// worker-b holds it now: true
}

// Fencing: each tenure's token is greater than every earlier one, so a
// store that remembers the highest token it has seen can refuse writes
// from a holder whose tenure is over.
func ExampleKubernetesLease_AcquireWithToken() {
	srv := leasetest.NewServer()
	defer srv.Close()
	ctx := context.Background()
	l, err := lease.NewKubernetesLease(lease.Settings{Name: "migration", Owner: "worker-a", Config: srv.Config()})
	if err != nil {
		log.Fatal(err)
	}

	// fencedWrite stands in for a store that keeps the highest token seen.
	var highest lease.Token
	fencedWrite := func(tok lease.Token) bool {
		if !highest.IsZero() {
			if c, err := tok.Compare(highest); err != nil || c < 0 {
				return false
			}
		}
		highest = tok
		return true
	}

	first, ok, err := l.AcquireWithToken(ctx)
	if err != nil || !ok {
		log.Fatal(ok, err)
	}
	fmt.Println("first tenure writes:", fencedWrite(first))
	if err := l.Release(ctx); err != nil {
		log.Fatal(err)
	}

	second, ok, err := l.AcquireWithToken(ctx)
	if err != nil || !ok {
		log.Fatal(ok, err)
	}
	defer l.Release(ctx)
	c, err := second.Compare(first)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("second token compared with first:", c)
	fmt.Println("second tenure writes:", fencedWrite(second))
	fmt.Println("a late write from the first tenure:", fencedWrite(first))
	// Output:
	// first tenure writes: true
	// second token compared with first: 1
	// second tenure writes: true
	// a late write from the first tenure: false
}

func ExampleParseToken() {
	tok, err := lease.ParseToken("12345/3")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(tok.ResourceVersion, tok.Transitions, tok)

	_, err = lease.ParseToken("abc/1")
	fmt.Println(errors.Is(err, lease.ErrInvalidToken))
	// Output:
	// 12345 3 12345/3
	// true
}

func ExampleToken_Compare() {
	older := lease.Token{ResourceVersion: "99", Transitions: 4}
	newer := lease.Token{ResourceVersion: "100", Transitions: 0} // the Lease was re-created
	c1, _ := older.Compare(newer)
	c2, _ := newer.Compare(older)
	c3, _ := newer.Compare(newer)
	fmt.Println(c1, c2, c3)

	// Tokens from API servers before Kubernetes 1.35 may not be integers.
	_, err := older.Compare(lease.Token{ResourceVersion: "xyz"})
	fmt.Println(errors.Is(err, lease.ErrInvalidToken))
	// Output:
	// -1 1 0
	// true
}

// OnLost tells the holder when a tenure ends without its Release. Here a
// third party deletes the Lease; the holder notices at its next renewal,
// within a second with this short TTL.
func ExampleKubernetesLease_OnLost() {
	srv := leasetest.NewServer()
	defer srv.Close()
	l, err := lease.NewKubernetesLease(lease.Settings{
		Name:   "job",
		Owner:  "worker-a",
		TTL:    3 * time.Second, // renewed every second
		Config: srv.Config(),
	})
	if err != nil {
		log.Fatal(err)
	}
	lost := make(chan error, 1)
	unregister := l.OnLost(func(reason error) { lost <- reason })
	defer unregister()

	if ok, err := l.Acquire(context.Background()); err != nil || !ok {
		log.Fatal(ok, err)
	}
	defer l.Release(context.Background())

	if err := srv.Delete("default", "job"); err != nil { // someone else deletes it
		log.Fatal(err)
	}
	// The next renewal finds the lease gone.
	select {
	case reason := <-lost:
		var le *lease.LostError
		errors.As(reason, &le)
		fmt.Println("lost:", errors.Is(reason, lease.ErrLost), "reason:", le.Reason)
		fmt.Println("still held:", l.CheckAlive())
	case <-time.After(10 * time.Second):
		log.Fatal("OnLost handler not called")
	}
	// Output:
	// lost: true reason: deleted
	// still held: false
}
