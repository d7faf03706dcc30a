// Package e2e runs kubelease against a real kube-apiserver and etcd (see
// package cluster). One cluster is shared by all tests of the binary; the
// tests run one at a time because some of them restart or freeze it.
//
//	cd e2e && go test -count=1 -timeout 40m ./...
//
// The first run builds kube-apiserver (about 10 minutes on 2 cores); later
// runs reuse the cached binary. -short skips everything.
package e2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/kubelease/lease"
	"github.com/kubelease/lease/e2e/cluster"
)

// shared is the cluster of this test binary; nil in -short mode.
var shared *cluster.Cluster

func TestMain(m *testing.M) {
	if os.Getenv(shardChildEnv) != "" {
		os.Exit(shardMemberMain()) // a shard-set member started by shards_test.go
	}
	if os.Getenv(partitionChildEnv) != "" {
		os.Exit(partitionChildMain()) // a contender started by partition_test.go
	}
	flag.Parse()
	if testing.Short() {
		fmt.Println("e2e: -short: skipping the real kube-apiserver tier")
		os.Exit(m.Run())
	}
	begin := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Minute)
	bin, err := cluster.Binary(ctx)
	if err != nil {
		cancel()
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.Exit(1)
	}
	built := time.Since(begin)
	dir, err := os.MkdirTemp("", "kubelease-e2e-")
	if err != nil {
		cancel()
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.Exit(1)
	}
	started := time.Now()
	shared, err = cluster.New(ctx, bin, dir)
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "e2e: kube-apiserver %s at %s: binary in %v, cluster up in %v (apiserver ready %v after exec)\n",
		cluster.KubernetesVersion, shared.URL, built.Round(time.Millisecond),
		time.Since(started).Round(time.Millisecond), shared.ReadyAfter().Round(time.Millisecond))

	code := m.Run()
	if code != 0 {
		fmt.Fprintf(os.Stderr, "e2e: kube-apiserver log tail (%s):\n%s\n", shared.LogPath(), shared.LogTail(40))
	}
	shared.Stop()
	if code == 0 {
		os.RemoveAll(dir)
	} else {
		fmt.Fprintf(os.Stderr, "e2e: kept %s for inspection\n", dir)
	}
	fmt.Fprintf(os.Stderr, "e2e: total %v\n", time.Since(begin).Round(time.Millisecond))
	os.Exit(code)
}

// needCluster returns the shared cluster, or skips t in -short mode.
func needCluster(t *testing.T) *cluster.Cluster {
	t.Helper()
	if testing.Short() {
		t.Skip("e2e: needs a real kube-apiserver; skipped with -short")
	}
	if shared.PID() == 0 {
		t.Fatal("e2e: kube-apiserver is not running (an earlier test left it stopped)")
	}
	return shared
}

var nonDNS = regexp.MustCompile(`[^a-z0-9-]+`)

// leaseName returns a fresh Lease name for t.
func leaseName(t *testing.T) string {
	n := strings.Trim(nonDNS.ReplaceAllString(strings.ToLower(t.Name()), "-"), "-")
	if len(n) > 40 {
		n = n[:40]
	}
	return fmt.Sprintf("e2e-%s-%s", n, randHex(3))
}

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// newLease makes a KubernetesLease on the real clock.
func newLease(t *testing.T, cfg *lease.Config, name, owner string, ttl time.Duration) *lease.KubernetesLease {
	t.Helper()
	l, err := lease.NewKubernetesLease(lease.Settings{
		Name:      name,
		Namespace: cluster.Namespace,
		Owner:     owner + "-" + randHex(3),
		TTL:       ttl,
		Config:    cfg,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		l.Release(ctx)
	})
	return l
}

// lostRecorder collects OnLost reasons.
type lostRecorder struct{ ch chan *lease.LostError }

func recordLost(l lease.Lease) *lostRecorder {
	r := &lostRecorder{ch: make(chan *lease.LostError, 16)}
	l.OnLost(func(reason error) {
		le, _ := reason.(*lease.LostError)
		if le == nil {
			le = &lease.LostError{Reason: "not a *LostError", Err: reason}
		}
		r.ch <- le
	})
	return r
}

// none returns the loss reported so far, if any.
func (r *lostRecorder) none() *lease.LostError {
	select {
	case le := <-r.ch:
		return le
	default:
		return nil
	}
}

// wait waits up to d for a loss.
func (r *lostRecorder) wait(d time.Duration) *lease.LostError {
	select {
	case le := <-r.ch:
		return le
	case <-time.After(d):
		return nil
	}
}

func ctxFor(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
