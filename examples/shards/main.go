// Command shards shows a lease.ShardSet at work:
//
//	go run ./examples/shards
//
// It starts an in-process fake Kubernetes API server (leasetest.NewServer)
// and three replicas, each a lease.ShardSet with an Owner of its own, its
// own lease.Config and HTTP client, on the real clock with a 3 s TTL, that
// share 12 partitions (shard set "orders"). Each replica's work for a
// partition runs until its context is cancelled. The demo prints, with the
// elapsed time on every line:
//
//  1. the assignment once it has settled: every partition worked on by the
//     replica that lease.AssignShards gives it, every replica seeing the
//     same members;
//  2. a crash of one replica: its HTTP client is cut off first (every
//     request fails from then on), then its Run is stopped, so its works
//     end and the Releases it tries fail. The API server sees what a crash
//     leaves: Leases that are no longer renewed, none released (the demo
//     checks that they still name it). It prints how long after the crash
//     each of its partitions was re-owned: its member Lease and its
//     partitions' Leases must expire first, which by the fast path
//     (expiry rule (b), MaxClockSkew 1 s) is TTL + 1 s after their last
//     renewal, so 3 to 4 s here. It also prints any partition the
//     survivors moved between them;
//  3. a fourth replica joining: each partition that moves (to it, or at
//     times between the others as the quotas shift) is released by its old
//     owner once that owner's work has returned, and the demo prints the
//     time from the old owner's OnStopped to the new owner's OnStarted;
//  4. a clean shutdown, after which the Leases left in the API server are
//     listed: only the crashed replica's member Lease, which nobody
//     deletes.
//
// After each change the demo checks that no partition ever ran on two
// replicas at once. It exits 0 when all of this happened, and 1 with a
// message when a step did not happen within 15 s. It takes about 6
// seconds. With -v the library's logs go to stderr.
package main

import (
	"flag"
	"fmt"
	"os"
	"sync"
	"time"
)

const (
	setName     = "orders"
	partitions  = 12
	ttl         = 3 * time.Second
	stepTimeout = 15 * time.Second // bound on every wait in this demo
)

var (
	start time.Time
	outMu sync.Mutex // one line at a time on stdout
)

// say prints one line prefixed with the time elapsed since the start.
func say(format string, args ...any) {
	outMu.Lock()
	defer outMu.Unlock()
	fmt.Printf("%6.3fs  %s\n", time.Since(start).Seconds(), fmt.Sprintf(format, args...))
}

func fail(format string, args ...any) {
	say("FAILED: "+format, args...)
	os.Exit(1)
}

func main() {
	verbose := flag.Bool("v", false, "log the library's events to stderr")
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "shards: unexpected arguments %q\n", flag.Args())
		flag.Usage()
		os.Exit(2)
	}
	runDemo(*verbose)
}
