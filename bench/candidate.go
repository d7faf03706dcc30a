package bench

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/kubelease/lease"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	coordinationv1client "k8s.io/client-go/kubernetes/typed/coordination/v1"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

// Lib names a leader-election library.
type Lib string

// The libraries compared.
const (
	Kubelease Lib = "kubelease"
	ClientGo  Lib = "client-go"
)

// Libs are both libraries, kubelease first.
var Libs = []Lib{Kubelease, ClientGo}

// The durations both libraries run with: client-go's defaults
// (LeaseDuration 15 s, RenewDeadline 10 s, RetryPeriod 2 s) and kubelease's
// (TTL 15 s, RenewalInterval TTL/3, RunSingleton's ResyncInterval 1 min).
const (
	LeaseDuration = 15 * time.Second
	RenewDeadline = 10 * time.Second
	RetryPeriod   = 2 * time.Second
)

// CandOpts configure a Candidate.
type CandOpts struct {
	// Counter, when set, counts the candidate's requests.
	Counter *Counter
	// OnStarted is called when the candidate's work starts (it holds the
	// lease), with the time.
	OnStarted func(at time.Time)
	// OnNewHolder is called when the candidate sees another holder than
	// before, itself included (kubelease: SingletonOptions.OnNewHolder, for
	// every holder change its watch shows; client-go:
	// LeaderCallbacks.OnNewLeader).
	OnNewHolder func(holder string)

	// kubelease only: Settings.MaxClockSkew (0: default 1 s; negative:
	// fast path off). RunSingleton always runs with zero options (its
	// defaults) but for the callbacks above.
	MaxClockSkew time.Duration
}

// Candidate is one process contending for a lease: kubelease's
// RunSingleton or client-go's LeaderElector, each with default settings
// at a 15 s lease duration. Its work starts when it holds the lease and
// runs until the lease is lost or the candidate stops.
type Candidate struct {
	Lib Lib
	ID  string

	tap    *Tap
	run    func(ctx context.Context)
	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
}

// NewCandidate prepares a candidate for the Lease name on be; Start starts
// it. Preparing builds the client, so that Start costs no more than a
// goroutine.
func NewCandidate(be Backend, lib Lib, name, id string, o CandOpts) (*Candidate, error) {
	c := &Candidate{Lib: lib, ID: id, tap: &Tap{Counter: o.Counter}, done: make(chan struct{})}
	started := func() {
		if o.OnStarted != nil {
			o.OnStarted(time.Now())
		}
	}
	switch lib {
	case Kubelease:
		l, err := lease.NewKubernetesLease(lease.Settings{
			Name: name, Owner: id, Config: be.LeaseConfig(c.tap),
			TTL: LeaseDuration, MaxClockSkew: o.MaxClockSkew,
		})
		if err != nil {
			return nil, err
		}
		opts := lease.SingletonOptions{OnNewHolder: o.OnNewHolder}
		c.run = func(ctx context.Context) {
			_ = lease.RunSingleton(ctx, l, func(wctx context.Context) error {
				started()
				<-wctx.Done()
				return nil
			}, opts)
		}
	case ClientGo:
		cs, err := coordinationv1client.NewForConfig(be.RestConfig(c.tap))
		if err != nil {
			return nil, err
		}
		le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
			Lock: &resourcelock.LeaseLock{
				LeaseMeta:  metav1.ObjectMeta{Name: name, Namespace: be.Namespace()},
				Client:     cs,
				LockConfig: resourcelock.ResourceLockConfig{Identity: id},
			},
			LeaseDuration:   LeaseDuration,
			RenewDeadline:   RenewDeadline,
			RetryPeriod:     RetryPeriod,
			ReleaseOnCancel: true,
			Name:            name,
			Callbacks: leaderelection.LeaderCallbacks{
				OnStartedLeading: func(ctx context.Context) {
					started()
					<-ctx.Done()
				},
				OnStoppedLeading: func() {},
				OnNewLeader: func(holder string) {
					if o.OnNewHolder != nil {
						o.OnNewHolder(holder)
					}
				},
			},
		})
		if err != nil {
			return nil, err
		}
		c.run = le.Run
	default:
		return nil, fmt.Errorf("bench: unknown library %q", lib)
	}
	return c, nil
}

// StartCandidate is NewCandidate and Start.
func StartCandidate(be Backend, lib Lib, name, id string, o CandOpts) (*Candidate, error) {
	c, err := NewCandidate(be, lib, name, id, o)
	if err != nil {
		return nil, err
	}
	c.Start()
	return c, nil
}

// Start starts contending.
func (c *Candidate) Start() {
	ctx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	go func() {
		defer close(c.done)
		c.run(ctx)
	}()
}

// Stop steps down gracefully: it cancels the candidate's context
// (kubelease's RunSingleton then stops work and releases; client-go
// releases with ReleaseOnCancel) and waits until it has returned.
func (c *Candidate) Stop() {
	if c.cancel == nil {
		return // never started
	}
	c.once.Do(c.cancel)
	<-c.done
}

// Crash cuts the candidate's transport: from now on it reaches no server,
// so it can neither renew nor release, as a crashed or partitioned
// process. Stop it afterwards to free it.
func (c *Candidate) Crash() { c.tap.Cut() }
