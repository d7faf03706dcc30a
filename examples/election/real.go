package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
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

const (
	contendEvery   = 2 * time.Second // how often a standby tries Acquire
	releaseTimeout = 5 * time.Second // bound on Release at shutdown
)

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
	p.printf("contending for Lease %s/%s on %s (config: %s), TTL %v, trying every %v", ns, o.name, cfg.Host, source, o.ttl, contendEvery)

	ctx, why := shutdownContext(o.duration)

	lost := make(chan struct{}, 1)
	l.OnLost(func(reason error) {
		var le *lease.LostError
		if errors.As(reason, &le) {
			msg := fmt.Sprintf("LOST the lease (token %s): reason %s", le.Token, le.Reason)
			if le.Holder != "" {
				msg += fmt.Sprintf(", holder now %s", le.Holder)
			}
			if le.Err != nil {
				msg += fmt.Sprintf(", last error: %v", le.Err)
			}
			p.printf("%s; stopped leading, contending again", msg)
		} else {
			p.printf("LOST the lease: %v; stopped leading, contending again", reason)
		}
		select {
		case lost <- struct{}{}:
		default:
		}
	})

	tick := time.NewTicker(contendEvery)
	defer tick.Stop()
	lastNote := "" // the last standby message, printed again only when it changes
	for {
		if !l.CheckAlive() {
			tok, ok, err := l.AcquireWithToken(ctx)
			note := ""
			switch {
			case ctx.Err() != nil: // shutting down
			case err != nil:
				note = fmt.Sprintf("acquire failed: %v (retrying every %v)", err, contendEvery)
			case ok:
				p.printf("leading as %s, token %s", owner, tok)
			default:
				note = "standing by: the lease is held by another replica"
			}
			if note != "" && note != lastNote {
				p.printf("%s", note)
			}
			lastNote = note
		}
		select {
		case <-ctx.Done():
			return shutdown(p, l, why())
		case <-tick.C:
		case <-lost: // contend again at once
		}
	}
}

// shutdownContext returns a context that ends on SIGTERM or SIGINT, or
// after d when d > 0, and a function that says which happened. After the
// first signal, a second one kills the process as usual.
func shutdownContext(d time.Duration) (context.Context, func() string) {
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
	return ctx, func() string { return context.Cause(ctx).Error() }
}

// shutdown releases the lease, bounded by releaseTimeout, and returns the
// exit code: 1 only when the lease was held and the Release failed.
func shutdown(p printer, l *lease.KubernetesLease, why string) int {
	held := l.CheckAlive()
	if held {
		p.printf("shutting down (%s): releasing the lease", why)
	} else {
		p.printf("shutting down (%s): not leading", why)
	}
	ctx, cancel := context.WithTimeout(context.Background(), releaseTimeout)
	defer cancel()
	began := time.Now()
	if err := l.Release(ctx); err != nil {
		if !held {
			// After a loss by deadline, Release still deletes the record if
			// it names us; failing that is no handoff lost.
			p.printf("could not clean up the lease record after %d ms: %v", time.Since(began).Milliseconds(), err)
			p.printf("exiting")
			return 0
		}
		p.printf("release FAILED after %d ms: %v; peers take over once the lease expires", time.Since(began).Milliseconds(), err)
		return 1
	}
	if held {
		p.printf("released the lease in %d ms: a standby can take over at its next attempt", time.Since(began).Milliseconds())
	}
	p.printf("exiting")
	return 0
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
