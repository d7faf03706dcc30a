package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"syscall"
	"time"

	"github.com/kubelease/lease"
)

// options are the flags of the real-cluster mode.
type options struct {
	kubeconfig, context, namespace, name, id string
	exactID                                  bool
	ttl, duration                            time.Duration
}

// contendEvery is RunSingleton's RetryInterval: how often a standby tries
// Acquire, unless the watch of its lease shows sooner that the lease is free.
const contendEvery = 2 * time.Second

// printer prints timestamped lines naming the replica, so that the logs of
// several replicas can be merged and read as one story.
type printer struct{ id string }

func (p printer) printf(format string, args ...any) {
	fmt.Printf("%s %s %s\n", time.Now().UTC().Format("2006-01-02T15:04:05.000Z07:00"), p.id, fmt.Sprintf(format, args...))
}

// runReal is one replica against a real API server. It returns the exit
// code: 0 after a clean shutdown, 1 when it was leading and the final
// Release failed, 2 for bad flags or configuration.
func runReal(o options) int {
	owner, err := ownerID(o.id, o.exactID)
	if err != nil {
		fmt.Fprintf(os.Stderr, "election: %v\n", err)
		return 2
	}
	cfg, source, err := loadConfig(o.kubeconfig, o.context)
	if err != nil {
		fmt.Fprintf(os.Stderr, "election: %v\n", err)
		return 2
	}
	l, err := lease.NewKubernetesLease(lease.Settings{
		Name:      o.name,
		Namespace: o.namespace,
		Owner:     owner,
		TTL:       o.ttl,
		Config:    cfg,
		// The library's warnings (API server warnings, losses) go to stderr.
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "election: %v\n", err)
		return 2
	}
	p := printer{id: owner}
	ns := o.namespace
	if ns == "" {
		ns = cfg.Namespace
	}
	if ns == "" {
		ns = "default"
	}
	p.printf("contending for Lease %s/%s on %s (config: %s), TTL %v, trying every %v or as soon as a watch shows it free", ns, o.name, cfg.Host, source, o.ttl, contendEvery)

	ctx := shutdownContext(o.duration)
	// Set by the callbacks, which run on this goroutine.
	leading := false
	var stopping time.Time // when work stopped at shutdown, just before Release
	lastErr := ""          // the last Acquire error printed, printed again only when it changes
	opts := lease.SingletonOptions{
		RetryInterval: contendEvery,
		OnStarted: func(tok lease.Token) {
			leading, lastErr = true, ""
			p.printf("leading as %s, token %s", owner, tok)
		},
		OnStopped: func(tok lease.Token, reason error) {
			var le *lease.LostError
			if errors.As(reason, &le) {
				leading = false
				p.printf("stopped: %s; contending again", describeLoss(le))
				return
			}
			stopping = time.Now()
			p.printf("stopped: %v; releasing the lease", reason)
		},
		OnAttempt: func(err error) {
			msg := ""
			if err != nil {
				msg = err.Error()
			}
			if msg != "" && msg != lastErr {
				p.printf("acquire failed: %s (retrying with backoff)", msg)
			}
			lastErr = msg
		},
		OnNewHolder: func(holder string) { p.printf("new holder observed: %q", holder) },
	}
	// The work of this demo is only to lead until told to stop; RunSingleton
	// cancels its context on a loss or when ctx ends.
	work := func(ctx context.Context) error {
		<-ctx.Done()
		return nil
	}
	err = lease.RunSingleton(ctx, l, work, opts)
	cause := context.Cause(ctx)
	if err = besides(err, cause); err != nil {
		// A failed Release (or work that did not stop, which leaves the
		// lease unreleased).
		p.printf("release FAILED: %v; peers take over once the lease expires", err)
		return 1
	}
	if leading {
		p.printf("released the lease in %d ms: a standby can take over at once", time.Since(stopping).Milliseconds())
	} else {
		p.printf("shutting down (%v): not leading", cause)
	}
	p.printf("exiting")
	return 0
}

// describeLoss says why a tenure ended.
func describeLoss(le *lease.LostError) string {
	msg := fmt.Sprintf("LOST the lease (token %s): reason %s", le.Token, le.Reason)
	if le.Holder != "" {
		msg += fmt.Sprintf(", holder now %s", le.Holder)
	}
	if le.Err != nil {
		msg += fmt.Sprintf(", last error: %v", le.Err)
	}
	return msg
}

// besides returns err without cause, which RunSingleton returns, joined with
// the Release's error if any, when its context ends: nil when err is only
// cause.
func besides(err, cause error) error {
	errs := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	}
	errs = slices.DeleteFunc(errs, func(e error) bool { return e == cause })
	return errors.Join(errs...)
}

// shutdownContext returns a context that ends on SIGTERM or SIGINT, or
// after d when d > 0, with a cause that says which. After the first signal,
// a second one kills the process as usual.
func shutdownContext(d time.Duration) context.Context {
	ctx, cancel := context.WithCancelCause(context.Background())
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, os.Interrupt)
	go func() {
		sig := <-sigs
		signal.Stop(sigs)
		cancel(fmt.Errorf("received %v", sig))
	}()
	if d > 0 {
		time.AfterFunc(d, func() { cancel(fmt.Errorf("-duration %v has passed", d)) })
	}
	return ctx
}

// ownerID returns the Owner of this process: id (the host name if empty)
// plus "-" and 6 random hex digits, or id itself when exact.
func ownerID(id string, exact bool) (string, error) {
	if exact {
		if id == "" {
			return "", errors.New("-exact-id needs -id")
		}
		return id, nil
	}
	if id == "" {
		host, err := os.Hostname()
		if err != nil || host == "" {
			host = "election"
		}
		id = host
	}
	return id + "-" + randomSuffix(), nil
}

// loadConfig finds the API server: -kubeconfig, else $KUBECONFIG, else the
// pod's service account when $KUBERNETES_SERVICE_HOST is set, else
// ~/.kube/config (the order of lease.DefaultConfig, with a context). It
// also says which it used.
func loadConfig(path, kubeContext string) (*lease.Config, string, error) {
	switch {
	case path != "":
		cfg, err := lease.LoadKubeconfig(path, kubeContext)
		return cfg, "kubeconfig " + path, err
	case os.Getenv("KUBECONFIG") != "":
		cfg, err := lease.LoadKubeconfig("", kubeContext)
		return cfg, "$KUBECONFIG", err
	case os.Getenv("KUBERNETES_SERVICE_HOST") != "":
		if kubeContext != "" {
			return nil, "", errors.New("-context needs a kubeconfig: in a pod, pass -kubeconfig as well")
		}
		cfg, err := lease.InClusterConfig()
		return cfg, "in-cluster service account", err
	default:
		cfg, err := lease.LoadKubeconfig("", kubeContext)
		return cfg, "~/.kube/config", err
	}
}
