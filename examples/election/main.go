// Command election is the first thing to run to see kubelease at work:
//
//	go run ./examples/election
//
// It starts an in-process fake Kubernetes API server (leasetest.NewServer)
// and three replicas that contend for one coordination.k8s.io/v1 Lease, each
// a lease.KubernetesLease on the real clock with a 3 s TTL running
// lease.RunSingleton on its own goroutine. A replica that does not hold the
// lease waits in RunSingleton on a watch of the Lease (the lease's Waker),
// not on a poll. The demo then shows, with the elapsed time on every line:
//
//  1. which replica holds the lease, and its fencing token;
//  2. a crash: the holder is cut off from the API server (every request it
//     makes fails), without a Release. When its deadline passes its work's
//     context is cancelled, with the *lease.LostError as its cause, and
//     another replica, once the record has expired, takes over with a
//     larger token;
//  3. a graceful handoff: the new holder's work returns, so RunSingleton
//     releases (deletes) the Lease; the watch of the last replica sees it
//     and its work starts within milliseconds, instead of after the TTL;
//  4. a clean shutdown.
//
// A replica leads at most once in the demo: after a crash or a step-down it
// does not contend again. The program exits 0 when all of this happened,
// and 1 with a message when a step did not happen within 10 s. It takes
// about 5 seconds.
//
// # One replica against a real cluster
//
// Given any flag, the program is instead one replica of a leader election
// on a real cluster (run it several times, or see examples/deploy for a
// three-replica Deployment):
//
//	go run ./examples/election -kubeconfig ~/.kube/config -name election-demo
//
// It runs lease.RunSingleton, which tries Acquire every 2 s (or as soon as
// a watch shows the Lease free) until it holds the Lease, and prints
// "leading as <id>, token <token>" when it does, "stopped: <reason>" when it
// loses the lease (and contends again) or shuts down, and "new holder
// observed: <id>" when another replica takes the lease. On SIGTERM or SIGINT
// (or when -duration has passed) RunSingleton stops the work and calls
// Release (bounded to min(TTL, 10 s)), so a standby takes over at once
// instead of waiting for the TTL. Every line starts with a UTC timestamp and
// the replica's id. It exits 0 after a clean shutdown, 1 if it was leading
// and the Release failed, 2 on bad flags or configuration.
//
// Flags:
//
//	-kubeconfig PATH   kubeconfig file(s); default: $KUBECONFIG if set, else
//	                   in-cluster when $KUBERNETES_SERVICE_HOST is set, else
//	                   ~/.kube/config
//	-context NAME      kubeconfig context (default: the current context)
//	-namespace NS      namespace of the Lease (default: the context's or the
//	                   pod's namespace, else "default")
//	-name NAME         Lease name (default "election-demo")
//	-id ID             this replica's Owner; "-" and 6 random hex digits are
//	                   appended (a new suffix per process start, so a
//	                   restarted pod never shares an Owner with its previous
//	                   self), unless -exact-id is given. Default: the host
//	                   name (the pod name in a pod) plus the suffix.
//	-exact-id          use -id as it is; it must then be unique per process
//	-ttl D             lease TTL (default 15s)
//	-duration D        release and exit after D (default 0: run until a
//	                   signal)
//
// With no flag at all it always runs the in-process demo above, even inside
// a pod: pass at least one flag (e.g. -name) for the real mode.
package main

import (
	"flag"
	"fmt"
	"os"
	"time"
)

func main() {
	var o options
	flag.StringVar(&o.kubeconfig, "kubeconfig", "", "kubeconfig file(s) (default: $KUBECONFIG, else in-cluster, else ~/.kube/config)")
	flag.StringVar(&o.context, "context", "", "kubeconfig context (default: the current context)")
	flag.StringVar(&o.namespace, "namespace", "", "namespace of the Lease (default: the context's or pod's namespace, else \"default\")")
	flag.StringVar(&o.name, "name", leaseName, "name of the Lease")
	flag.StringVar(&o.id, "id", "", "Owner of this replica; -<6 random hex> is appended unless -exact-id (default: host name)")
	flag.BoolVar(&o.exactID, "exact-id", false, "use -id as given, without a random suffix")
	flag.DurationVar(&o.ttl, "ttl", 15*time.Second, "lease TTL")
	flag.DurationVar(&o.duration, "duration", 0, "release and exit after this long (0: run until SIGTERM/SIGINT)")
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "election: unexpected arguments %q\n", flag.Args())
		flag.Usage()
		os.Exit(2)
	}
	if flag.NFlag() == 0 {
		runDemo()
		return
	}
	os.Exit(runReal(o))
}
