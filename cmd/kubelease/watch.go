package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/kubelease/lease"
)

// watchRecheck is how often "watch" looks at the Lease besides the changes
// its NamespaceWatch reports: no request while that watch has the Lease,
// one GET while the Lease does not exist.
const watchRecheck = time.Second

// holderQueue collects holder changes from the lease's goroutine without
// blocking it.
type holderQueue struct {
	mu      sync.Mutex // guards holders
	holders []string
	ready   chan struct{} // has a value when holders is not empty
}

func (q *holderQueue) push(h string) {
	q.mu.Lock()
	q.holders = append(q.holders, h)
	q.mu.Unlock()
	select {
	case q.ready <- struct{}{}:
	default:
	}
}

func (q *holderQueue) take() []string {
	q.mu.Lock()
	defer q.mu.Unlock()
	hs := q.holders
	q.holders = nil
	return hs
}

func newWatchCommand(kf *kubeFlags) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "watch NAME",
		Short: "Print a line each time the holder of a Lease changes",
		Long: `Watch prints the holder of the Lease NAME, then one line each time it changes
("<none>" when the Lease is released, deleted, or has no holder), until
interrupted. With -o json it prints JSON lines instead. It keeps one list+watch
of the namespace's Leases open (needs "get", "list" and "watch" on leases;
without list or watch it reads the Lease every second instead), and reads
the Lease every second while it does not exist.`,
		Example: `  kubelease watch nightly-backup -n jobs
  kubelease watch nightly-backup -o json | jq .holder`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if output != "" && output != "json" {
				return fmt.Errorf("-o %q: unknown output format (use json)", output)
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			name := args[0]
			cfg, ns, err := kf.config()
			if err != nil {
				return err
			}
			nw, err := lease.NewNamespaceWatch(cfg, ns, "", lease.NamespaceWatchOptions{})
			if err != nil {
				return err
			}
			defer nw.Close()
			nw.Start()
			l, err := lease.NewKubernetesLease(lease.Settings{Name: name, Namespace: ns, Owner: "kubelease-observer-" + defaultID(), Config: cfg, SharedWatch: nw})
			if err != nil {
				return err
			}
			return watchHolders(ctx, l, ns, name, output, cmd.OutOrStdout())
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "", "output format: json (one object per line)")
	return cmd
}

// watchHolders prints the holder of l, then every change, until ctx ends.
func watchHolders(ctx context.Context, l *lease.KubernetesLease, ns, name, output string, w io.Writer) error {
	q := &holderQueue{ready: make(chan struct{}, 1)}
	defer l.OnHolderChange(q.push)()
	h, err := l.Holder(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("%s", describe(err, ns, name))
	}
	last := h.Holder
	if err := printChange(w, newLeaseView(ns, name, h), output); err != nil {
		return err
	}

	defer keepWatching(ctx, l)()

	recheck := time.NewTicker(watchRecheck)
	defer recheck.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-q.ready:
		case <-recheck.C:
		}
		// The queue has what the lease saw; Holder (no request while its
		// watch is open, else one GET) catches what no watch saw.
		cur, err := l.Holder(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%s", describe(err, ns, name))
		}
		for _, holder := range append(q.take(), cur.Holder) {
			if holder == last {
				continue
			}
			last = holder
			v := leaseView{Namespace: ns, Name: name, Holder: holder, Exists: holder != "", ObservedAt: time.Now().UTC()}
			if holder == cur.Holder {
				v = newLeaseView(ns, name, cur)
			}
			if err := printChange(w, v, output); err != nil {
				return err
			}
		}
	}
}

// printChange prints one line for v.
func printChange(w io.Writer, v leaseView, output string) error {
	if output == "json" {
		b, err := json.Marshal(v)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(w, "%s\n", b)
		return err
	}
	line := fmt.Sprintf("%s  %s/%s  holder=%s", v.ObservedAt.Format(time.RFC3339), v.Namespace, v.Name, orNone(v.Holder))
	if v.Holder != "" {
		line += fmt.Sprintf("  transitions=%d  expires-in=%s", v.Transitions, orNone(v.ExpiresIn))
	}
	_, err := fmt.Fprintln(w, line)
	return err
}

// keepWatching keeps l's watch open (l.Wait, again and again) until ctx
// ends or the returned stop is called; stop waits for it. Wait returns at
// once while the Lease is free or expired, hence the pause between Waits.
func keepWatching(ctx context.Context, l *lease.KubernetesLease) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	waiting := make(chan struct{})
	go func() {
		defer close(waiting)
		for l.Wait(ctx) == nil {
			select {
			case <-ctx.Done():
				return
			case <-time.After(watchRecheck):
			}
		}
	}()
	return func() { cancel(); <-waiting }
}
