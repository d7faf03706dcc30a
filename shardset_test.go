package lease_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kubelease/lease"
	"github.com/kubelease/lease/leasetest"
	"github.com/stretchr/testify/require"
	clocktesting "k8s.io/utils/clock/testing"
)

// shardRig runs members of one shard set against the env's fake server and
// records who runs which shard, failing the test if two members' works of
// one shard overlap.
type shardRig struct {
	e      *env
	shards []string
	mu     sync.Mutex
	owner  map[string]*rigMember // shard → the member whose work runs it
	causes []error               // why works were stopped, in order
	poke   chan struct{}         // a work started or stopped
}

type rigMember struct {
	name   string
	cut    atomic.Bool // every request fails: the member is cut off
	dead   bool        // crashed: its works no longer count (guarded by the rig's mu)
	clk    *clocktesting.FakeClock
	set    *lease.ShardSet
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
	err    error
}

// cutTransport fails every request while its member is cut off.
type cutTransport struct{ m *rigMember }

func (c cutTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if c.m.cut.Load() {
		return nil, errors.New("cut off")
	}
	return http.DefaultTransport.RoundTrip(req)
}

func newShardRig(e *env, n int) *shardRig {
	r := &shardRig{e: e, owner: map[string]*rigMember{}, poke: make(chan struct{}, 1)}
	for i := range n {
		r.shards = append(r.shards, fmt.Sprintf("part-%02d", i))
	}
	return r
}

func (r *shardRig) wake() {
	select {
	case r.poke <- struct{}{}:
	default:
	}
}

// join starts member name on a fake clock of its own.
func (r *shardRig) join(name string) *rigMember {
	return r.joinOn(name, clocktesting.NewFakeClock(epoch))
}

// joinOn starts member name on clk.
func (r *shardRig) joinOn(name string, clk *clocktesting.FakeClock) *rigMember {
	r.e.t.Helper()
	return r.joinWith(name, clk, nil, lease.ShardOptions{})
}

// crash cuts m off, as a process that died: its works stop counting.
func (r *shardRig) crash(m *rigMember) {
	m.cut.Store(true)
	r.mu.Lock()
	m.dead = true
	for shard, o := range r.owner {
		if o == m {
			delete(r.owner, shard)
		}
	}
	r.mu.Unlock()
}

// leave ends the member's Run and returns what it returned.
func (m *rigMember) leave(t *testing.T) error {
	m.once.Do(func() {
		m.cut.Store(false)
		m.cancel()
		select {
		case m.err = <-m.done:
		case <-time.After(waitFor):
			t.Errorf("member %s did not leave within %v", m.name, waitFor)
		}
	})
	return m.err
}

// settled waits until every shard runs on one of members, as AssignShards
// over them says, calling step (if not nil) every 10 ms of real time while
// it waits, and returns the owners.
func (r *shardRig) settled(t *testing.T, step func(), members ...string) map[string]string {
	t.Helper()
	want := lease.AssignShards(r.shards, members)
	deadline := time.After(waitFor)
	for {
		r.mu.Lock()
		got := make(map[string]string, len(r.owner))
		for k, v := range r.owner {
			got[k] = v.name
		}
		r.mu.Unlock()
		if maps.Equal(got, want) {
			return got
		}
		var tick <-chan time.Time
		if step != nil {
			tick = time.After(10 * time.Millisecond)
		}
		select {
		case <-r.poke:
		case <-tick:
			step()
		case <-deadline:
			t.Fatalf("not settled over %v within %v: %v", members, waitFor, got)
		}
	}
}

func TestShardSetJoinLeave(t *testing.T) {
	e := newEnv(t)
	r := newShardRig(e, 12)
	a := r.join("a")
	r.settled(t, nil, "a")
	b := r.join("b")
	r.settled(t, nil, "a", "b")
	r.join("c")
	got := r.settled(t, nil, "a", "b", "c")
	count := map[string]int{}
	for _, m := range got {
		count[m]++
	}
	require.Equal(t, map[string]int{"a": 4, "b": 4, "c": 4}, count)

	require.ErrorIs(t, b.leave(t), context.Canceled)
	r.settled(t, nil, "a", "c")
	st := a.set.Status()
	require.True(t, st.Announced)
	require.Equal(t, []string{"a", "c"}, st.Members)
	require.Len(t, st.Running, 6)
	require.Equal(t, st.Assigned, slices.Sorted(maps.Keys(st.Running)))

	// Works given up to another member were cancelled with a cause that
	// says so; b's own were cancelled with its ctx's.
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range r.causes {
		if !errors.Is(c, context.Canceled) {
			require.ErrorIs(t, c, lease.ErrNotHeld)
		}
	}
}

// A member that vanishes without releasing (cut off, its clock stopped)
// drops out once its member Lease expires, and its shards are taken once
// theirs do.
func TestShardSetCrashedMemberShardsTaken(t *testing.T) {
	e := newEnv(t)
	r := newShardRig(e, 12)
	clk := clocktesting.NewFakeClock(epoch) // a's and c's
	r.joinOn("a", clk)
	b := r.join("b")
	r.joinOn("c", clk)
	r.settled(t, nil, "a", "b", "c")
	r.crash(b)
	// b neither renews nor releases: after one TTL (+ MaxClockSkew) on
	// a's and c's clock its Leases have expired.
	r.settled(t, func() { clk.Step(500 * time.Millisecond) }, "a", "c")
	require.GreaterOrEqual(t, clk.Since(epoch), 15*time.Second, "b's shards were taken before its Leases could expire")
}

func TestShardSetRunErrors(t *testing.T) {
	e := newEnv(t)
	r := newShardRig(e, 3)
	a := r.join("a")
	r.settled(t, nil, "a")
	err := a.set.Run(e.ctx(), func(context.Context, string, lease.Token) error { return nil }, lease.ShardOptions{})
	require.ErrorIs(t, err, lease.ErrBusy)
	err = a.set.Run(e.ctx(), nil, lease.ShardOptions{})
	require.ErrorContains(t, err, "work is nil")
}

func TestShardSettingsValidate(t *testing.T) {
	cfg := &lease.Config{Host: "https://127.0.0.1:1"}
	ok := lease.ShardSettings{Set: "orders", Shards: []string{"a", "b"}, Lease: lease.Settings{Owner: "me", Config: cfg}}
	require.NoError(t, ok.Validate())
	for _, c := range []struct {
		name string
		mod  func(*lease.ShardSettings)
		want string
	}{
		{"no set", func(s *lease.ShardSettings) { s.Set = "" }, "Set is empty"},
		{"bad set", func(s *lease.ShardSettings) { s.Set = "Orders_1" }, `Set "Orders_1" is not a DNS-1123 label`},
		{"no shards", func(s *lease.ShardSettings) { s.Shards = nil }, "Shards is empty"},
		{"empty shard", func(s *lease.ShardSettings) { s.Shards = []string{"a", ""} }, "Shards[1] is empty"},
		{"duplicate", func(s *lease.ShardSettings) { s.Shards = []string{"a", "b", "a"} }, `Shards[2] "a" repeats Shards[0]`},
		{"too many", func(s *lease.ShardSettings) { s.Shards = numbered("s", lease.MaxShards+1) }, "more than MaxShards"},
		{"name set", func(s *lease.ShardSettings) { s.Lease.Name = "x" }, `Lease.Name "x" must be empty`},
		{"labels set", func(s *lease.ShardSettings) { s.Lease.Labels = map[string]string{"a": "b"} }, "Lease.Labels"},
		{"no owner", func(s *lease.ShardSettings) { s.Lease.Owner = "" }, "Lease.Owner is empty"},
		{"no config", func(s *lease.ShardSettings) { s.Lease.Config = nil }, "Lease.Config is nil"},
		{"bad ttl", func(s *lease.ShardSettings) { s.Lease.TTL = time.Millisecond }, "Lease.TTL 1ms is below the minimum"},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := ok
			s.Shards = slices.Clone(ok.Shards)
			c.mod(&s)
			err := s.Validate()
			require.ErrorIs(t, err, lease.ErrInvalidSettings)
			require.ErrorContains(t, err, c.want)
			require.NotContains(t, err.Error(), "\n")
			_, err = lease.NewShardSet(s)
			require.ErrorIs(t, err, lease.ErrInvalidSettings)
		})
	}
}

func TestShardLeaseNames(t *testing.T) {
	seen := map[string]string{}
	for _, shard := range []string{"a", "A", "a_b", "a-b", "a.b", "ünï/cödé", "", "-", strings50("x")} {
		n := lease.ShardLeaseName("orders", shard)
		require.Empty(t, validationProblems(n), "%q → %q", shard, n)
		require.LessOrEqual(t, len(n), 63+3+40+1+10)
		if other, dup := seen[n]; dup {
			t.Fatalf("shards %q and %q share the Lease name %q", other, shard, n)
		}
		seen[n] = shard
	}
	require.Regexp(t, `^orders-s-a-b-[0-9a-f]{10}$`, lease.ShardLeaseName("orders", "A_B"))
	require.Regexp(t, `^orders-m-[0-9a-f]{10}$`, lease.MemberLeaseName("orders", "pod-1/x"))
	require.Equal(t, "build-slot-7", lease.SlotLeaseName("build", 7))
}

func strings50(s string) string {
	out := ""
	for range 50 {
		out += s
	}
	return out
}

// With the wall-clock rule (b) off, a vanished member's shards are taken
// one TTL after the others first saw its last records, not one TTL after
// each new owner first looked at them: a shard's Lease starts from what
// the set's watch saw (it took two TTLs before).
func TestShardSetCrashedMemberShardsTakenAfterOneTTLWithoutFastPath(t *testing.T) {
	e := newEnv(t)
	r := newShardRig(e, 12)
	noFastPath := func(s *lease.Settings) { s.MaxClockSkew = -1 }
	clk := clocktesting.NewFakeClock(epoch) // a's and c's
	r.joinWith("a", clk, noFastPath, lease.ShardOptions{})
	b := r.joinWith("b", clocktesting.NewFakeClock(epoch), noFastPath, lease.ShardOptions{})
	r.joinWith("c", clk, noFastPath, lease.ShardOptions{})
	r.settled(t, nil, "a", "b", "c")
	r.crash(b)
	r.settled(t, func() { clk.Step(500 * time.Millisecond) }, "a", "c")
	took := clk.Since(epoch)
	require.GreaterOrEqual(t, took, 15*time.Second, "b's shards were taken before its Leases could expire")
	require.Less(t, took, 20*time.Second, "b's shards were taken %v after its last renewal, not about one TTL (15s)", took)
}

// A member that leaves releases its member Lease before it cancels its
// works, so that the others stand by for its shards before they are let go.
func TestShardSetLeaveReleasesMemberLeaseFirst(t *testing.T) {
	e := newEnv(t)
	set, err := lease.NewShardSet(lease.ShardSettings{
		Set: "orders", Shards: []string{"a", "b"},
		Lease: lease.Settings{Owner: "m", Config: e.srv.Config(), Clock: clocktesting.NewFakeClock(epoch), TTL: 15 * time.Second},
	})
	require.NoError(t, err)
	defer set.Close()
	ctx, cancel := context.WithCancel(context.Background())
	started := make(chan struct{}, 2)
	memberGone := make(chan bool, 2)
	done := make(chan error, 1)
	go func() {
		done <- set.Run(ctx, func(ctx context.Context, _ string, _ lease.Token) error {
			started <- struct{}{}
			<-ctx.Done()
			_, exists := e.srv.Get("default", lease.MemberLeaseName("orders", "m"))
			memberGone <- !exists
			return nil
		}, lease.ShardOptions{})
	}()
	for range 2 {
		select {
		case <-started:
		case <-time.After(waitFor):
			t.Fatal("works did not start")
		}
	}
	cancel()
	for range 2 {
		require.True(t, <-memberGone, "a work was cancelled while the member Lease was still stored")
	}
	require.ErrorIs(t, <-done, context.Canceled)
}

// inflight counts the POSTs in flight through it, and their most at once.
type inflight struct {
	mu       sync.Mutex
	now, top int
	reached  chan struct{} // closed when now first reaches at
	closed   bool          // reached is closed
	at       int
}

func (f *inflight) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method != http.MethodPost {
		return http.DefaultTransport.RoundTrip(req)
	}
	f.mu.Lock()
	f.now++
	f.top = max(f.top, f.now)
	if f.now == f.at && !f.closed {
		f.closed = true
		close(f.reached)
	}
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		f.now--
		f.mu.Unlock()
	}()
	return http.DefaultTransport.RoundTrip(req)
}

// A member that finds many shards free contends for at most 64 at a time,
// rather than sending an Acquire for every shard at once (a cold start of
// many members, each alone for a moment, once sent thousands).
func TestShardSetContendsForAtMost64ShardsAtOnce(t *testing.T) {
	e := newEnv(t)
	// The member Lease exists, free, so that taking it is an update, and
	// every create is a shard's.
	putSetLease(t, e.srv, lease.MemberLeaseName("orders", "m"), lease.RoleMember, "", epoch)
	gate := make(chan struct{})
	e.srv.InjectFault(leasetest.Fault{Verb: "create", Times: -1, Gate: gate})
	f := &inflight{reached: make(chan struct{}), at: 64}
	cfg := e.srv.Config()
	cfg.HTTPClient = &http.Client{Transport: f}
	set, err := lease.NewShardSet(lease.ShardSettings{
		Set: "orders", Shards: numbered("s", 100),
		Lease: lease.Settings{Owner: "m", Config: cfg, Clock: clocktesting.NewFakeClock(epoch), TTL: 15 * time.Second},
	})
	require.NoError(t, err)
	defer set.Close()
	started := make(chan string, 100)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- set.Run(ctx, func(ctx context.Context, shard string, _ lease.Token) error {
			started <- shard
			<-ctx.Done()
			return nil
		}, lease.ShardOptions{})
	}()
	select {
	case <-f.reached:
	case <-time.After(waitFor):
		t.Fatal("64 creates were not in flight at once")
	}
	// While those 64 are held, no 65th is sent (a bounded look).
	time.Sleep(300 * time.Millisecond)
	f.mu.Lock()
	top := f.top
	f.mu.Unlock()
	require.Equal(t, 64, top, "creates in flight at once")
	close(gate)
	for range 100 {
		select {
		case <-started:
		case <-time.After(waitFor):
			t.Fatal("not every shard started")
		}
	}
	f.mu.Lock()
	require.LessOrEqual(t, f.top, 64)
	f.mu.Unlock()
	cancel()
	require.ErrorIs(t, <-done, context.Canceled)
}

// A shard's new owner, woken by the watch that saw its old owner delete
// it, creates it at once: one round trip, no read first.
func TestShardHandoverCreatesWithoutRead(t *testing.T) {
	for _, createFirst := range []bool{false, true} {
		t.Run(fmt.Sprint("createFirst=", createFirst), func(t *testing.T) {
			e := newEnv(t)
			sh := e.newShared(shardSelector)
			h := e.onShared(sh, shard(1), "h")
			ok, err := h.Acquire(e.ctx())
			require.NoError(t, err)
			require.True(t, ok)
			c := e.standby(sh, shard(1), "c")
			if createFirst {
				lease.SetCreateFirst(c.KubernetesLease)
			}
			woke := make(chan error, 1)
			go func() { woke <- c.Wait(e.ctx()) }()
			require.NoError(t, e.srv.AwaitWatchers(e.ctx(), 1))
			require.NoError(t, h.Release(e.ctx()))
			require.NoError(t, <-woke)
			e.srv.ResetCounts()
			ok, err = c.Acquire(e.ctx())
			require.NoError(t, err)
			require.True(t, ok)
			wantGets := 1
			if createFirst {
				wantGets = 0
			}
			require.Equal(t, wantGets, e.srv.Count("get"), "reads before the create")
			require.Equal(t, 1, e.srv.Count("create"))
		})
	}
}
