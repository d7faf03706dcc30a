package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kubelease/lease"
	"github.com/kubelease/lease/e2e/cluster"
)

const leasesPath = "/apis/coordination.k8s.io/v1/namespaces/" + cluster.Namespace + "/leases/"

// TestReleaseWithoutDeleteRBAC: a user whose Role allows everything on
// leases but delete can acquire and renew, and Release then fails with a
// 403 that says it is about delete.
func TestReleaseWithoutDeleteRBAC(t *testing.T) {
	c := needCluster(t)
	name := leaseName(t)
	l := newLease(t, c.Config(cluster.LimitedToken), name, "limited", 15*time.Second)
	t.Cleanup(func() { c.Do(context.Background(), cluster.AdminToken, http.MethodDelete, leasesPath+name, nil) })

	ok, err := l.Acquire(ctxFor(t, 30*time.Second))
	if err != nil || !ok {
		t.Fatalf("Acquire as limited = %v, %v; want true, nil", ok, err)
	}
	err = l.Release(ctxFor(t, 30*time.Second))
	if err == nil {
		t.Fatal("Release as a user without delete permission returned nil")
	}
	var apiErr *lease.APIError
	if !errors.As(err, &apiErr) {
		t.Fatalf("Release error %v (%T) is not an *APIError", err, err)
	}
	if apiErr.StatusCode != http.StatusForbidden {
		t.Errorf("Release error status = %d, want 403 (%v)", apiErr.StatusCode, err)
	}
	msg := err.Error()
	if !strings.Contains(msg, "delete") || !strings.Contains(strings.ToLower(msg), "forbidden") {
		t.Errorf("Release error does not say it is a forbidden delete: %v", err)
	}
	t.Logf("Release as limited: %v", err)
	if l.CheckAlive() {
		t.Error("CheckAlive true after a Release that failed to delete")
	}
	// The record is still there, naming "limited": nobody deleted it.
	code, body, err := c.Do(ctxFor(t, 10*time.Second), cluster.AdminToken, http.MethodGet, leasesPath+name, nil)
	if err != nil || code != http.StatusOK {
		t.Fatalf("GET lease after failed release: %d %v %s", code, err, body)
	}
	if err := l.Release(ctxFor(t, 30*time.Second)); err != nil {
		t.Errorf("second Release = %v, want nil (already released)", err)
	}
}

// overlapChecker samples CheckAlive of several leases for the same name and
// records any instant at which two of them are true.
type overlapChecker struct {
	stop     chan struct{}
	done     chan struct{}
	overlaps atomic.Int64
	first    atomic.Value // string
}

func checkOverlap(t *testing.T, ls map[string]lease.Lease) *overlapChecker {
	o := &overlapChecker{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(o.done)
		for {
			var alive []string
			for name, l := range ls {
				if l.CheckAlive() {
					alive = append(alive, name)
				}
			}
			if len(alive) > 1 {
				if o.overlaps.Add(1) == 1 {
					o.first.Store(time.Now().Format(time.RFC3339Nano) + ": " + strings.Join(alive, " and "))
				}
			}
			select {
			case <-o.stop:
				return
			case <-time.After(2 * time.Millisecond):
			}
		}
	}()
	t.Cleanup(func() { o.finish(t) })
	return o
}

func (o *overlapChecker) finish(t *testing.T) {
	select {
	case <-o.stop:
	default:
		close(o.stop)
	}
	<-o.done
	if n := o.overlaps.Load(); n > 0 {
		t.Errorf("two holders at once, %d samples; first at %v", n, o.first.Load())
	}
}

// renewTime reads the Lease's spec.renewTime with the admin token.
func renewTime(ctx context.Context, c *cluster.Cluster, name string) (string, error) {
	code, body, err := c.Do(ctx, cluster.AdminToken, http.MethodGet, leasesPath+name, nil)
	if err != nil {
		return "", err
	}
	if code != http.StatusOK {
		return "", errors.New(http.StatusText(code) + ": " + string(body))
	}
	var obj struct {
		Spec struct {
			RenewTime      string `json:"renewTime"`
			HolderIdentity string `json:"holderIdentity"`
		} `json:"spec"`
	}
	if err := json.Unmarshal(body, &obj); err != nil {
		return "", err
	}
	return obj.Spec.HolderIdentity + "@" + obj.Spec.RenewTime, nil
}

// TestRestartWithinDeadline restarts kube-apiserver right after a renewal
// while a 15 s lease is held. If the server is back before the holder's
// deadline, the holder keeps the lease (no OnLost, same token); otherwise it
// loses it with reason deadline. A peer contending all along never holds
// while the holder believes it does.
func TestRestartWithinDeadline(t *testing.T) {
	c := needCluster(t)
	const ttl = 15 * time.Second
	name := leaseName(t)
	holder := newLease(t, c.AdminConfig(), name, "holder", ttl)
	peer := newLease(t, c.AdminConfig(), name, "peer", ttl)
	lost := recordLost(holder)
	peerLost := recordLost(peer)

	tok, ok, err := holder.AcquireWithToken(ctxFor(t, 30*time.Second))
	if err != nil || !ok {
		t.Fatalf("holder Acquire = %v, %v", ok, err)
	}
	overlap := checkOverlap(t, map[string]lease.Lease{"holder": holder, "peer": peer})

	// The peer contends throughout: errors while the server is down, false
	// while the holder holds.
	var (
		peerWins   atomic.Int64
		peerErrs   atomic.Int64
		peerFalses atomic.Int64
		wg         sync.WaitGroup
	)
	stopPeer := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			ok, err := peer.Acquire(ctx)
			cancel()
			switch {
			case err != nil:
				peerErrs.Add(1)
			case ok:
				peerWins.Add(1)
				if holder.CheckAlive() {
					t.Errorf("peer acquired while the holder's CheckAlive is true")
				}
			default:
				peerFalses.Add(1)
			}
			select {
			case <-stopPeer:
				return
			case <-time.After(300 * time.Millisecond):
			}
		}
	}()
	defer func() {
		close(stopPeer)
		wg.Wait()
	}()

	// Stop the server just after a renewal, so the holder's deadline is
	// about a full TTL after the stop.
	ctx := ctxFor(t, 2*time.Minute)
	before, err := renewTime(ctx, c, name)
	if err != nil {
		t.Fatal(err)
	}
	for {
		now, err := renewTime(ctx, c, name)
		if err != nil {
			t.Fatal(err)
		}
		if now != before {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	stopAt := time.Now()
	down := c.Restart(t)
	t.Logf("kube-apiserver restarted: unreachable for %v (ready %v after exec)", down.Round(time.Millisecond), c.ReadyAfter().Round(time.Millisecond))

	// Give the holder two renewal intervals to renew against the new server.
	time.Sleep(2 * ttl / 3)
	backBy := down

	if le := lost.none(); le == nil && holder.CheckAlive() {
		// Kept: same tenure, same token, and the record still names it.
		if backBy >= ttl {
			t.Errorf("holder kept the lease although the server was down %v >= TTL %v", backBy, ttl)
		}
		if got, ok := holder.Token(); !ok || got != tok {
			t.Errorf("holder token after restart = %v, %v; want %v, true", got, ok, tok)
		}
		ok, err := peer.Acquire(ctxFor(t, 10*time.Second))
		if err != nil || ok {
			t.Errorf("peer Acquire after the restart = %v, %v; want false, nil", ok, err)
		}
		t.Logf("holder kept the lease across a %v restart; peer: %d false, %d errors, %d wins",
			backBy.Round(time.Millisecond), peerFalses.Load(), peerErrs.Load(), peerWins.Load())
		if peerWins.Load() != 0 {
			t.Errorf("peer won %d times while the holder kept the lease", peerWins.Load())
		}
	} else {
		if le == nil {
			le = lost.wait(5 * time.Second)
		}
		if le == nil {
			t.Fatal("holder's CheckAlive is false but OnLost was not called")
		}
		if le.Reason != lease.LostDeadline {
			t.Errorf("holder lost with reason %q, want %q (%v)", le.Reason, lease.LostDeadline, le)
		}
		if backBy < ttl/2 {
			t.Errorf("holder lost the lease (%v) although the server was back after %v, well within TTL %v", le, backBy, ttl)
		}
		t.Logf("holder lost after a %v outage (stop at %v): %v", backBy, stopAt.Format(time.TimeOnly), le)
	}
	if le := peerLost.none(); le != nil {
		t.Errorf("peer OnLost: %v", le)
	}
	overlap.finish(t)
}

// TestFrozenAPIServer freezes kube-apiserver with SIGSTOP while a 5 s lease
// is held: the holder's CheckAlive turns false at its deadline (no later than
// TTL after the freeze) with OnLost reason deadline, although every request
// just hangs. After SIGCONT a peer acquires, with a larger token.
func TestFrozenAPIServer(t *testing.T) {
	c := needCluster(t)
	const ttl = 5 * time.Second
	renewEvery := ttl / 3
	name := leaseName(t)
	holder := newLease(t, c.AdminConfig(), name, "holder", ttl)
	peer := newLease(t, c.AdminConfig(), name, "peer", ttl)
	lost := recordLost(holder)

	oldTok, ok, err := holder.AcquireWithToken(ctxFor(t, 30*time.Second))
	if err != nil || !ok {
		t.Fatalf("holder Acquire = %v, %v", ok, err)
	}
	overlap := checkOverlap(t, map[string]lease.Lease{"holder": holder, "peer": peer})
	time.Sleep(2 * renewEvery) // a renewal or two on the live server

	if err := c.Freeze(); err != nil {
		t.Fatal(err)
	}
	frozen := time.Now()
	thawed := false
	thaw := func() {
		if !thawed {
			thawed = true
			if err := c.Thaw(); err != nil {
				t.Errorf("thaw: %v", err)
			}
		}
	}
	t.Cleanup(thaw)

	for holder.CheckAlive() && time.Since(frozen) < ttl+5*time.Second {
		time.Sleep(5 * time.Millisecond)
	}
	falseAfter := time.Since(frozen)
	t.Logf("CheckAlive turned false %v after SIGSTOP (TTL %v, renewal interval %v)", falseAfter.Round(time.Millisecond), ttl, renewEvery)
	if holder.CheckAlive() {
		t.Fatalf("CheckAlive still true %v after the API server froze", falseAfter)
	}
	if falseAfter > ttl+time.Second {
		t.Errorf("CheckAlive turned false %v after the freeze, want within TTL + 1s = %v", falseAfter, ttl+time.Second)
	}
	// The last renewal before the freeze was at most about one renewal
	// interval earlier: the deadline cannot come much sooner than this.
	if earliest := ttl - renewEvery - ttl/50 - 500*time.Millisecond; falseAfter < earliest {
		t.Errorf("CheckAlive turned false only %v after the freeze, before any possible deadline (%v)", falseAfter, earliest)
	}
	le := lost.wait(time.Second)
	if le == nil {
		t.Fatal("no OnLost within 1s of CheckAlive turning false")
	}
	if le.Reason != lease.LostDeadline {
		t.Errorf("OnLost reason %q, want %q (%v)", le.Reason, lease.LostDeadline, le)
	}
	if le.Token != oldTok {
		t.Errorf("OnLost token %v, want the tenure's %v", le.Token, oldTok)
	}
	t.Logf("OnLost: %v", le)

	thaw()
	thawedAt := time.Now()
	var newTok lease.Token
	deadline := time.Now().Add(ttl + lease.DefaultMaxClockSkew + 20*time.Second)
	for {
		tok, ok, err := peer.AcquireWithToken(ctxFor(t, 10*time.Second))
		if ok {
			newTok = tok
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("peer could not acquire after the thaw: last %v, %v", ok, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("peer acquired %v after SIGSTOP (%v after SIGCONT) with token %v (old %v)", time.Since(frozen).Round(time.Millisecond), time.Since(thawedAt).Round(time.Millisecond), newTok, oldTok)
	cmp, err := newTok.Compare(oldTok)
	if err != nil || cmp <= 0 {
		t.Errorf("new token %v Compare old %v = %d, %v; want > 0", newTok, oldTok, cmp, err)
	}
	// The old holder's Release must not touch the peer's lease.
	if err := holder.Release(ctxFor(t, 10*time.Second)); err != nil {
		t.Logf("old holder Release: %v", err)
	}
	if !peer.CheckAlive() {
		t.Error("peer lost the lease after the old holder's Release")
	}
	if who, err := renewTime(ctxFor(t, 10*time.Second), c, name); err != nil || !strings.HasPrefix(who, "peer-") {
		t.Errorf("lease after the old holder's Release: %q, %v; want the peer's", who, err)
	}
	overlap.finish(t)
}

// TestRestartBeyondDeadline keeps kube-apiserver down longer than a 5 s
// lease: the holder loses it by deadline while the server is down (no later
// than TTL after the stop), and once the server is back a peer acquires
// with a larger token. Never two holders.
func TestRestartBeyondDeadline(t *testing.T) {
	c := needCluster(t)
	const ttl = 5 * time.Second
	name := leaseName(t)
	holder := newLease(t, c.AdminConfig(), name, "holder", ttl)
	peer := newLease(t, c.AdminConfig(), name, "peer", ttl)
	lost := recordLost(holder)

	oldTok, ok, err := holder.AcquireWithToken(ctxFor(t, 30*time.Second))
	if err != nil || !ok {
		t.Fatalf("holder Acquire = %v, %v", ok, err)
	}
	overlap := checkOverlap(t, map[string]lease.Lease{"holder": holder, "peer": peer})
	time.Sleep(ttl / 2)

	stopped := time.Now()
	c.StopAPIServer()
	t.Cleanup(func() {
		if c.PID() == 0 { // leave the shared cluster running for the next test
			c.StartAPIServer(context.Background())
		}
	})
	t.Logf("kube-apiserver stopped in %v", time.Since(stopped).Round(time.Millisecond))
	le := lost.wait(ttl + 2*time.Second)
	if le == nil {
		t.Fatalf("no OnLost within TTL + 2s of stopping the server (CheckAlive %v)", holder.CheckAlive())
	}
	lostAfter := time.Since(stopped)
	t.Logf("holder lost %v after the stop: %v", lostAfter.Round(time.Millisecond), le)
	if le.Reason != lease.LostDeadline {
		t.Errorf("OnLost reason %q, want %q", le.Reason, lease.LostDeadline)
	}
	if lostAfter > ttl+time.Second {
		t.Errorf("lost %v after the stop, want within TTL + 1s", lostAfter)
	}
	if holder.CheckAlive() {
		t.Error("CheckAlive true after OnLost")
	}
	time.Sleep(time.Second) // stay down past the deadline a little longer

	if err := c.StartAPIServer(ctxFor(t, 2*time.Minute)); err != nil {
		t.Fatal(err)
	}
	t.Logf("kube-apiserver back %v after the stop (ready %v after exec)", time.Since(stopped).Round(time.Millisecond), c.ReadyAfter().Round(time.Millisecond))
	var newTok lease.Token
	deadline := time.Now().Add(ttl + lease.DefaultMaxClockSkew + 20*time.Second)
	for {
		tok, ok, err := peer.AcquireWithToken(ctxFor(t, 10*time.Second))
		if ok {
			newTok = tok
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("peer could not acquire after the restart: last %v, %v", ok, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if cmp, err := newTok.Compare(oldTok); err != nil || cmp <= 0 {
		t.Errorf("new token %v Compare old %v = %d, %v; want > 0", newTok, oldTok, cmp, err)
	}
	t.Logf("peer acquired %v after the stop, token %v (old %v)", time.Since(stopped).Round(time.Millisecond), newTok, oldTok)
	overlap.finish(t)
}
