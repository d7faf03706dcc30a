package lease_test

import (
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/kubelease/lease"
	"github.com/kubelease/lease/leasetest"
	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clocktesting "k8s.io/utils/clock/testing"
)

// putSetLease stores a Lease of shard set "orders" with role, held by
// holder, renewed at renew.
func putSetLease(t testing.TB, srv *leasetest.Server, name, role, holder string, renew time.Time) {
	t.Helper()
	obj := &leasetest.Lease{}
	obj.Name, obj.Namespace = name, "default"
	obj.Labels = map[string]string{lease.LabelShardSet: "orders", lease.LabelRole: role}
	obj.Spec.HolderIdentity = ptr(holder)
	obj.Spec.LeaseDurationSeconds = ptr(int32(15))
	obj.Spec.RenewTime = &metav1.MicroTime{Time: renew}
	obj.Spec.AcquireTime = &metav1.MicroTime{Time: renew}
	obj.Spec.LeaseTransitions = ptr(int32(0))
	require.NoError(t, srv.Put(obj))
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reconcileCPUPerEvent runs member "a" (kept unannounced: its member Lease
// is held by an intruder, so it runs no shard) of a set of n shards, all
// held by the live member "z", makes k watch events (member y comes and
// goes), each awaited, and returns the process CPU per event.
func reconcileCPUPerEvent(t testing.TB, n, k int) time.Duration {
	srv := leasetest.NewServer()
	defer srv.Close()
	shards := make([]string, n)
	for i := range shards {
		shards[i] = fmt.Sprintf("shard-%05d", i)
		putSetLease(t, srv, lease.ShardLeaseName("orders", shards[i]), lease.RoleShard, "z", epoch)
	}
	putSetLease(t, srv, lease.MemberLeaseName("orders", "z"), lease.RoleMember, "z", epoch)
	putSetLease(t, srv, lease.MemberLeaseName("orders", "a"), lease.RoleMember, "intruder", epoch)

	set, err := lease.NewShardSet(lease.ShardSettings{Set: "orders", Shards: shards,
		Lease: lease.Settings{Owner: "a", Config: srv.Config(), Clock: clocktesting.NewFakeClock(epoch), TTL: 15 * time.Second}})
	require.NoError(t, err)
	assigned := make(chan []string, 16)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- set.Run(ctx, func(ctx context.Context, _ string, _ lease.Token) error { <-ctx.Done(); return nil },
			lease.ShardOptions{OnAssigned: func(members, _ []string) { assigned <- members }})
	}()
	defer func() {
		cancel()
		select {
		case <-done:
		case <-time.After(waitFor):
			t.Error("Run did not return")
		}
		set.Close()
	}()
	await := func(want []string) {
		t.Helper()
		deadline := time.After(waitFor)
		for {
			select {
			case got := <-assigned:
				if fmt.Sprint(got) == fmt.Sprint(want) {
					return
				}
			case <-deadline:
				t.Fatalf("members %v not seen within %v; status %+v", want, waitFor, set.Status())
			}
		}
	}
	await([]string{"intruder", "z"})
	// Each event makes member y come or go, so that a's loop reconciles
	// once per event (OnAssigned tells when): no coalescing.
	putSetLease(t, srv, lease.MemberLeaseName("orders", "y"), lease.RoleMember, "", epoch)
	start := cpuTime()
	for i := range k {
		holder, want := "", []string{"intruder", "z"}
		if i%2 == 0 {
			holder, want = "y", []string{"intruder", "y", "z"}
		}
		require.NoError(t, srv.Edit("default", lease.MemberLeaseName("orders", "y"), func(l *leasetest.Lease) {
			l.Spec.HolderIdentity = ptr(holder)
			l.Spec.RenewTime = &metav1.MicroTime{Time: epoch.Add(time.Duration(i+1) * time.Millisecond)}
		}))
		await(want)
	}
	return (cpuTime() - start) / time.Duration(k)
}

// BenchmarkShardSetEvent measures the process CPU one watch event of a
// shard set costs a member, with few and with MaxShards shards (review:
// reconcile once cloned the whole map and walked every shard on every
// event; it now touches only what changed). Run it with
// go test -run XXX -bench ShardSetEvent -benchtime 200x .
func BenchmarkShardSetEvent(b *testing.B) {
	for _, n := range []int{10, lease.MaxShards} {
		b.Run(fmt.Sprintf("shards=%d", n), func(b *testing.B) {
			per := reconcileCPUPerEvent(b, n, b.N)
			b.ReportMetric(float64(per.Microseconds()), "cpu-µs/event")
		})
	}
}

// BenchmarkAssignShards10000x100 is AssignShards at MaxShards over 100
// members (review: it once scored every pair with SHA-256 and sorted all
// of them: 2.8 s of CPU).
func BenchmarkAssignShards10000x100(b *testing.B) {
	shards := make([]string, lease.MaxShards)
	for i := range shards {
		shards[i] = fmt.Sprintf("shard-%05d", i)
	}
	members := make([]string, 100)
	for i := range members {
		members[i] = fmt.Sprintf("pod-%04d", i)
	}
	for b.Loop() {
		lease.AssignShards(shards, members)
	}
}
