// Package bench measures kubelease side by side with client-go's
// tools/leaderelection, both at a 15 s lease duration, against the same
// API server: the leasetest fake (run in a child process, over TLS and
// HTTP/2 like a real server) and a real kube-apiserver v1.37.2 with etcd
// (github.com/kubelease/lease/e2e/cluster).
//
// What it measures, for each library (see the Run* functions):
//
//   - RunSteady: API requests per minute in steady state, by verb, for
//     holders and for standbys (one holder and two standbys per lease),
//     both libraries at their defaults (kubelease: RunSingleton with zero
//     options, so a standby keeps one watch open and does not poll);
//   - RunHandoff: graceful handoff latency, from the holder stepping down
//     (its context cancelled: kubelease's RunSingleton then releases,
//     client-go releases with ReleaseOnCancel) to the peer's work starting;
//   - RunFailover: crash failover latency, from the holder's transport being
//     cut (it can neither renew nor release) to the peer's work starting,
//     with the peer running all along or started after the crash;
//   - BenchRenew*: CPU time and allocations per renewal (testing.B);
//   - RunScale: memory and goroutines per held lease with 1,000 and 10,000
//     leases in one process, and spurious losses while holding them; and
//     for standby leases in one process, 1,000 with one watch each and
//     10,000 sharing one NamespaceWatch, while the fake holds the Leases
//     itself (SimHolders): requests, open watches, memory and goroutines
//     per standby lease, and spurious holder changes;
//   - RunContention: N contenders starting together on one absent Lease:
//     time to the first holder, requests and 409s until every contender
//     knows the holder.
//   - RunShards: a ShardSet (kubelease only: client-go has none), its
//     members in this process, each with its own Config: 100 shards over
//     5 members on both backends (cold start; requests per member at
//     steady state; a member joining, one leaving gracefully and one
//     crashing: time to settle, shards moved against the ideal N/M, and
//     how long each moved shard ran nowhere, from the OnStopped and
//     OnStarted callbacks), and 1,000 shards over 10 members on the fake
//     (cold start, requests and CPU at steady state).
//   - RunRollout (phase "rollout", kube-apiserver only): rolling updates
//     of examples/controller-runtime (a controller-runtime manager; built
//     by the phase with go build), 3 replicas as separate OS processes:
//     each step starts a new replica, waits for its "ready" line and a
//     readiness delay, sends SIGTERM to an old one (the leader if an old
//     one leads) and waits for its exit. The replicas print
//     started-leading/stopped-leading lines that this process reads
//     through pipes and times with its monotonic clock; the leaderless
//     gap per handoff is measured for controller-runtime's own election
//     (defaults, and with LeaderElectionReleaseOnCancel) and for
//     RunSingleton. Only this phase, keeping the others' results:
//     bash bench/run.sh -phases rollout -backends real -update
//     (about 4 minutes).
//
// cmd/bench runs everything and writes BENCHMARKS.md and docs/latency.png;
// bench_test.go exposes the per-renewal benchmarks to `go test -bench`.
//
// Processes: the fake API server and each scale run are separate
// processes (this binary re-executed with KUBELEASE_BENCH_CHILD set, see
// ChildMain), so that the memory, goroutines, CPU time and allocations
// measured are the client's alone.
package bench
