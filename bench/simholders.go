package bench

import (
	"container/heap"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/kubelease/lease/leasetest"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// SimHolders asks a fake API server process to hold N Leases itself, by
// direct writes (leasetest.Server.Put and Edit: no HTTP, no request
// counted), renewing each as a kubelease holder at its defaults does: the
// record names holder Prefix+i, leaseDurationSeconds 15, and its renewTime
// is rewritten every RenewalInterval (TTL/3 = 5 s) ± 10 %, the first
// renewals spread over one interval. Every renewal is a MODIFIED event for
// whoever watches the Lease, as a holder's PUT would be. The standby scale
// runs use it, so that the holders cost the machine (two cores, shared
// with the fake and the measured process) next to nothing and can never
// lose their leases to the load: a holder change a standby sees is then
// the standby's doing.
type SimHolders struct {
	Prefix    string            `json:"prefix"`
	N         int               `json:"n"`
	Namespace string            `json:"namespace"`
	Labels    map[string]string `json:"labels,omitempty"`
}

// simRenewals counts the renewals of the fake process's SimHolders.
var simRenewals atomic.Int64

// startSimHolders creates the Leases of h on srv and starts renewing them
// until the process ends.
func startSimHolders(srv *leasetest.Server, h SimHolders) error {
	now := time.Now()
	interval := LeaseDuration / 3
	due := make(simQueue, 0, h.N)
	for i := range h.N {
		name := h.Prefix + strconv.Itoa(i)
		holder := name
		dur := int32(LeaseDuration / time.Second)
		var zero int32
		mt := metav1.NewMicroTime(now)
		l := &leasetest.Lease{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: h.Namespace, Labels: h.Labels},
			Spec: leasetest.LeaseSpec{
				HolderIdentity: &holder, LeaseDurationSeconds: &dur,
				AcquireTime: &mt, RenewTime: &mt, LeaseTransitions: &zero,
			},
		}
		if err := srv.Put(l); err != nil {
			return err
		}
		due = append(due, simDue{at: now.Add(rand.N(interval)), name: name})
	}
	heap.Init(&due)
	go func() {
		for len(due) > 0 {
			time.Sleep(time.Until(due[0].at))
			now := time.Now()
			for len(due) > 0 && !due[0].at.After(now) {
				d := &due[0]
				mt := metav1.NewMicroTime(time.Now())
				if err := srv.Edit(h.Namespace, d.name, func(l *leasetest.Lease) { l.Spec.RenewTime = &mt }); err != nil {
					fmt.Fprintln(os.Stderr, "bench: simulated holder:", err)
				}
				simRenewals.Add(1)
				// RenewalInterval ± 10 % after this renewal, as kubelease's
				// renewal wait.
				d.at = time.Now().Add(interval + time.Duration((2*rand.Float64()-1)*0.1*float64(interval)))
				heap.Fix(&due, 0)
			}
		}
	}()
	return nil
}

// simDue is when a simulated holder renews next.
type simDue struct {
	at   time.Time
	name string
}

// simQueue is a min-heap of simDue by time.
type simQueue []simDue

func (q simQueue) Len() int           { return len(q) }
func (q simQueue) Less(i, j int) bool { return q[i].at.Before(q[j].at) }
func (q simQueue) Swap(i, j int)      { q[i], q[j] = q[j], q[i] }
func (q *simQueue) Push(x any)        { *q = append(*q, x.(simDue)) }
func (q *simQueue) Pop() any {
	old := *q
	x := old[len(old)-1]
	*q = old[:len(old)-1]
	return x
}
