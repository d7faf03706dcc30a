// Command controller-runtime runs a controller-runtime manager (one
// trivial ConfigMap reconciler) under kubelease's lease.RunSingleton, with
// the manager's own leader election off.
//
// Why RunSingleton rather than the manager's LeaderElection: true
//
//   - Handoff within a round trip. On SIGTERM (a rolling update) the leader
//     stops its work, then releases the Lease; every standby keeps a watch
//     on the Lease, sees the release and takes it at once. With
//     controller-runtime's election a standby only polls every RetryPeriod
//     (2 s), and without LeaderElectionReleaseOnCancel the Lease is not
//     released at all: the standbys wait for the whole LeaseDuration (15 s).
//     BENCHMARKS.md ("Rolling update") measures the three.
//   - Work stopped before release. RunSingleton cancels work (here
//     mgr.Start's context), waits for it to return (every controller
//     stopped, in-flight reconciles finished) and only then releases, so two
//     managers never reconcile at once during a handoff; if the manager does
//     not stop within the grace period the Lease is not released and simply
//     expires.
//   - Fencing token. Each tenure has a token (lease.Token) that only grows.
//     The reconciler stamps it on what it writes, so a reader (or a fenced
//     store) can tell a stale leader's write from the current one's: the
//     recipe for side effects outside the API server, which resourceVersion
//     preconditions do not protect.
//
// Manager options that matter here: LeaderElection false (the manager's own
// election would double the Lease traffic and fight RunSingleton), metrics
// and health probe servers off in the manager (it only runs while leading,
// and a standby must answer its probes too: this program serves /healthz
// and /readyz itself, see -health-probe-bind-address), and a new manager
// for every tenure (a manager starts only once; its caches start cold on
// the new leader, which is part of the handoff time).
//
// Every change of leadership is printed on stdout as one line
// "<RFC 3339 time> <id> <event>", events "ready", "acquired" (kubelease
// only: the Lease is held, the manager starts next), "started-leading"
// (the controllers start), "synced" (their ConfigMap informer has synced),
// "stopped-leading" and "exiting", so that a parent (bench's rollout
// phase) can time them. -leader-election controller-runtime runs the same
// manager with controller-runtime's own election instead (LeaseDuration
// 15 s, RenewDeadline 10 s, RetryPeriod 2 s; -release-on-cancel sets
// LeaderElectionReleaseOnCancel), for comparison.
//
// The cluster comes from $KUBECONFIG (else in-cluster, else ~/.kube/config)
// for both libraries.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	"github.com/kubelease/lease"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log"
)

// options are the program's flags.
type options struct {
	namespace, name, id string
	election            string // "kubelease" or "controller-runtime"
	releaseOnCancel     bool
	ttl                 time.Duration
	healthAddr          string
}

func main() {
	var o options
	flag.StringVar(&o.namespace, "namespace", "default", "namespace of the Lease and of the ConfigMaps reconciled")
	flag.StringVar(&o.name, "name", "controller-runtime-example", "name of the Lease")
	flag.StringVar(&o.id, "id", "", "holder identity (default: $POD_NAME, else the host name and pid)")
	flag.StringVar(&o.election, "leader-election", "kubelease", `"kubelease" (RunSingleton, the manager's own election off) or "controller-runtime" (the manager's own election, for comparison)`)
	flag.BoolVar(&o.releaseOnCancel, "release-on-cancel", false, "with -leader-election controller-runtime: LeaderElectionReleaseOnCancel")
	flag.DurationVar(&o.ttl, "ttl", lease.DefaultTTL, "lease duration (controller-runtime: LeaseDuration)")
	flag.StringVar(&o.healthAddr, "health-probe-bind-address", ":8081", `address of /healthz and /readyz, served by standbys too ("0": off)`)
	flag.Parse()
	if o.id == "" {
		o.id = defaultID()
	}
	// controller-runtime logs through logr; its errors go to stderr.
	log.SetLogger(logr.FromSlogHandler(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})))

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	ev := events{id: o.id}
	var err error
	switch o.election {
	case "kubelease":
		err = runKubelease(ctx, o, ev)
	case "controller-runtime":
		err = runControllerRuntime(ctx, o, ev)
	default:
		err = fmt.Errorf("-leader-election %q: want kubelease or controller-runtime", o.election)
	}
	ev.print("exiting")
	if err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintf(os.Stderr, "controller-runtime example: %v\n", err)
		os.Exit(1)
	}
}

// runKubelease runs a manager under RunSingleton until ctx ends.
func runKubelease(ctx context.Context, o options, ev events) error {
	cfg, err := lease.DefaultConfig()
	if err != nil {
		return err
	}
	l, err := lease.NewKubernetesLease(lease.Settings{
		Name:      o.name,
		Namespace: o.namespace,
		Owner:     o.id,
		TTL:       o.ttl,
		Config:    cfg,
		Logger:    slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		return err
	}
	restCfg, err := ctrl.GetConfig()
	if err != nil {
		return err
	}
	// Built before contending, so that the first tenure does not wait for
	// it; a manager starts only once, so each later tenure builds its own.
	next, err := newManager(restCfg, o, nil)
	if err != nil {
		return err
	}
	serveHealth(ctx, o.healthAddr)
	ev.print("ready")

	var token lease.Token // set by OnStarted, read by work: same goroutine
	work := func(ctx context.Context) error {
		mgr := next
		next = nil
		if mgr == nil {
			if mgr, err = newManager(restCfg, o, nil); err != nil {
				return err
			}
		}
		if err := addReconciler(mgr, o.namespace, token.String(), ev); err != nil {
			return err
		}
		// Returns once ctx is cancelled (SIGTERM, or the lease lost) and
		// every controller has stopped; only then does RunSingleton release.
		return mgr.Start(ctx)
	}
	err = lease.RunSingleton(ctx, l, work, lease.SingletonOptions{
		OnStarted: func(tok lease.Token) {
			token = tok
			ev.print("acquired") // the manager starts next
		},
	})
	if errors.Is(err, ctx.Err()) {
		return nil
	}
	return err
}

// runControllerRuntime runs a manager with controller-runtime's own leader
// election, for comparison.
func runControllerRuntime(ctx context.Context, o options, ev events) error {
	restCfg, err := ctrl.GetConfig()
	if err != nil {
		return err
	}
	mgr, err := newManager(restCfg, o, func(mo *ctrl.Options) {
		renew, retry := 10*time.Second, 2*time.Second
		mo.LeaderElection = true
		mo.LeaderElectionID = o.name
		mo.LeaderElectionNamespace = o.namespace
		mo.LeaderElectionReleaseOnCancel = o.releaseOnCancel
		mo.LeaseDuration, mo.RenewDeadline, mo.RetryPeriod = &o.ttl, &renew, &retry
	})
	if err != nil {
		return err
	}
	// The manager's own election has no token: the reconciler stamps the
	// holder identity.
	if err := addReconciler(mgr, o.namespace, o.id, ev); err != nil {
		return err
	}
	serveHealth(ctx, o.healthAddr)
	ev.print("ready")
	return mgr.Start(ctx)
}

// newManager builds a manager with its own leader election, metrics and
// probe servers off; adjust may change the options.
func newManager(cfg *rest.Config, o options, adjust func(*ctrl.Options)) (ctrl.Manager, error) {
	mo := ctrl.Options{
		LeaderElection:         false,
		HealthProbeBindAddress: "0",
	}
	mo.Metrics.BindAddress = "0"
	if adjust != nil {
		adjust(&mo)
	}
	return ctrl.NewManager(cfg, mo)
}

// serveHealth serves /healthz and /readyz on addr until ctx ends, on every
// replica: a standby is ready (so that a rolling update goes on) though its
// manager does not run.
func serveHealth(ctx context.Context, addr string) {
	if addr == "" || addr == "0" {
		return
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintf(os.Stderr, "controller-runtime example: health probes: %v\n", err)
		return
	}
	ok := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux := http.NewServeMux()
	mux.Handle("/healthz", ok)
	mux.Handle("/readyz", ok)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	context.AfterFunc(ctx, func() { _ = srv.Close() })
}

// events prints the leadership events on stdout, one line each.
type events struct{ id string }

var printMu sync.Mutex

func (e events) print(event string) {
	printMu.Lock()
	defer printMu.Unlock()
	fmt.Printf("%s %s %s\n", time.Now().UTC().Format(time.RFC3339Nano), e.id, event)
}

func defaultID() string {
	if p := os.Getenv("POD_NAME"); p != "" {
		return p
	}
	h, err := os.Hostname()
	if err != nil {
		h = "replica"
	}
	return fmt.Sprintf("%s-%d", h, os.Getpid())
}
