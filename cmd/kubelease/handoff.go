package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/kubelease/lease"
)

// defaultHandoffTimeout bounds "handoff"'s wait for the new holder.
const defaultHandoffTimeout = 30 * time.Second

func newHandoffCommand(kf *kubeFlags) *cobra.Command {
	var (
		to      string
		timeout time.Duration
		noWait  bool
	)
	cmd := &cobra.Command{
		Use:   "handoff NAME --to ID",
		Short: "Ask the holder of a Lease to hand it to a named contender",
		Long: `Handoff asks the holder of the Lease NAME to step down for the contender
whose --id is ID (for draining a node, or a rolling update without a gap),
then waits until ID holds it (--timeout; --no-wait returns once asked).

It writes the annotation kubelease.io/preferred-holder=ID. A holder running
"kubelease run" (or the Go library) sees it at once, sends --signal to its
CMD, waits for CMD to exit, and leaves the Lease free for ID; other
contenders defer to ID for one lease duration, then contend as usual (so
a handoff to a contender that is not running costs at most that). The new
holder removes the annotation. A holder started with handoffs disabled
ignores it.

Exit status: 0 once ID holds the Lease (or is asked, with --no-wait); 1 if
there is no Lease, on errors, or when --timeout passes first. It needs
"get", "update" and "watch" on the Lease.`,
		Example: `  # move the job off this node before draining it
  kubelease handoff nightly-backup -n jobs --to backup-7f9c-2
  kubelease handoff nightly-backup --to backup-7f9c-2 --no-wait`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			switch {
			case to == "":
				return fmt.Errorf("handoff %s: --to is required: the --id of the contender that should take the Lease (kubelease status %s shows the holder)", name, name)
			case timeout <= 0:
				return fmt.Errorf("--timeout %s: must be positive", timeout)
			}
			l, cfg, ns, err := newObserver(kf, name)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			changes := make(chan string, 64)
			defer l.OnHolderChange(func(h string) {
				select {
				case changes <- h:
				default:
				}
			})()
			before, err := l.Holder(ctx)
			if err != nil {
				return fmt.Errorf("%s", describe(err, ns, name))
			}
			out := cmd.OutOrStdout()
			if before.Holder == to && before.ExpiresIn > 0 {
				fmt.Fprintf(out, "%s/%s is already held by %s\n", ns, name, to)
				return nil
			}
			start := time.Now()
			if err := lease.RequestHandoff(ctx, cfg, ns, name, to); err != nil {
				if errors.Is(err, lease.ErrNotHeld) {
					return fmt.Errorf("no Lease %s/%s: nothing to hand off (start %s and it takes the Lease as usual)", ns, name, to)
				}
				return fmt.Errorf("%s", describe(err, ns, name))
			}
			from := orNone(before.Holder)
			if noWait {
				fmt.Fprintf(out, "asked %s to hand %s/%s to %s\n", from, ns, name, to)
				return nil
			}
			if err := awaitHolder(ctx, l, changes, to); err != nil {
				cur := "unknown"
				if h, herr := l.Holder(context.WithoutCancel(ctx)); herr == nil {
					cur = orNone(h.Holder)
				}
				return fmt.Errorf("asked %s to hand %s/%s to %s, but after %s it is held by %s: is %s contending (kubelease run %s --id %s)? The others defer to it for one lease duration", from, ns, name, to, timeout, cur, to, name, to)
			}
			fmt.Fprintf(out, "handed %s/%s from %s to %s in %s\n", ns, name, from, to, time.Since(start).Round(time.Millisecond))
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&to, "to", "", "the --id (holderIdentity) of the contender that should take the Lease (required)")
	f.DurationVar(&timeout, "timeout", defaultHandoffTimeout, "give up waiting for the new holder after this long")
	f.BoolVar(&noWait, "no-wait", false, "return once the handoff is asked for, without waiting for it")
	return cmd
}

// awaitHolder waits until l sees to as holder, keeping l's watch open with
// Wait meanwhile.
func awaitHolder(ctx context.Context, l *lease.KubernetesLease, changes <-chan string, to string) error {
	// The watch wakes Wait when the Lease is left to to; the holder
	// changes come as events.
	defer keepWatching(ctx, l)()
	for {
		if h, err := l.Holder(ctx); err == nil && h.Holder == to {
			return nil
		}
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case h := <-changes:
			if h == to {
				return nil
			}
		case <-time.After(watchRecheck):
		}
	}
}
