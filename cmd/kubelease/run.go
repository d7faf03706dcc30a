package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/kubelease/lease"
)

// Defaults of the run command's flags.
const (
	defaultConflictExitCode = 75 // EX_TEMPFAIL of sysexits.h
	defaultKillAfter        = 10 * time.Second
	// releaseTimeout bounds the Release after CMD has exited.
	releaseTimeout = 10 * time.Second
	// aliveCheckPeriod is how often CheckAlive is polled while CMD runs, to
	// catch a deadline no timer saw (a system suspend), as RunSingleton does.
	aliveCheckPeriod = 250 * time.Millisecond
)

// runOptions are the flags of "kubelease run".
type runOptions struct {
	id           string
	ttl          time.Duration
	timeout      time.Duration
	noWait       bool
	conflictExit int
	signal       string
	killAfter    time.Duration
	slots        int
}

// runLease is what "run" needs of a KubernetesLease or a Semaphore.
type runLease interface {
	lease.Lease
	Wait(ctx context.Context) error
	Token() (lease.Token, bool)
}

// holderView says who holds the lease: key changes only when the holders
// do, text is for people.
type holderView func(ctx context.Context) (key, text string, err error)

func newRunCommand(kf *kubeFlags) *cobra.Command {
	o := &runOptions{}
	cmd := &cobra.Command{
		Use:   "run NAME [flags] -- CMD [ARGS...]",
		Short: "Run a command while holding a Lease",
		Long: `Run acquires the Lease NAME (waiting while another process holds it, showing
on stderr who holds it and when it expires), runs CMD while holding it, and
releases it after CMD has exited, so that a waiting peer starts at once.

CMD gets KUBELEASE_NAME, KUBELEASE_HOLDER (the --id) and KUBELEASE_TOKEN (the
fencing token of this tenure, "<resourceVersion>/<transitions>"; with --slots
also KUBELEASE_SLOT) in its environment. SIGINT, SIGTERM and SIGHUP sent to
kubelease are forwarded to CMD (CMD stays in kubelease's process group, so a
Ctrl-C typed in a terminal reaches it directly as well, then once more
forwarded). If the lease is lost while CMD runs, CMD gets
--signal, then SIGKILL after --kill-after. On Linux CMD is also killed if
kubelease itself is killed.

"kubelease handoff NAME --to ID" asks this process to step down for the
contender ID: CMD gets --signal (then SIGKILL after --kill-after), and once
it has exited the Lease is left to ID, which starts within a round trip.
Other waiting contenders defer to ID for one --ttl. (Not with --slots.)

Exit status: CMD's; 128+N if CMD was killed by signal N; 127 if CMD was not
found, 126 if it is not executable; --conflict-exit-code (75) when --no-wait
finds the lease held or --timeout passes; 1 for other errors.`,
		Example: `  # at most one backup at a time across all replicas
  kubelease run nightly-backup -n jobs -- /backup.sh --full

  # give up at once if another process holds it
  kubelease run migrate --no-wait -- ./migrate up

  # at most 3 builds at once
  kubelease run builds --slots 3 -- make release`,
		Args: func(cmd *cobra.Command, args []string) error {
			if cmd.ArgsLenAtDash() != 1 || len(args) < 2 {
				return errors.New("usage: kubelease run NAME [flags] -- CMD [ARGS...] (one NAME, then CMD after --)")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.run(cmd, kf, args[0], args[1:])
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.id, "id", "", "holder identity written to the Lease; unique per process (default: hostname-<6 random hex>)")
	f.DurationVar(&o.ttl, "ttl", lease.DefaultTTL, "lease duration: how long the Lease stays held after the last renewal if kubelease dies")
	f.DurationVar(&o.timeout, "timeout", 0, "give up waiting for the Lease after this long and exit with --conflict-exit-code (0: wait forever)")
	f.BoolVar(&o.noWait, "no-wait", false, "exit at once with --conflict-exit-code if another process holds the Lease")
	f.IntVar(&o.conflictExit, "conflict-exit-code", defaultConflictExitCode, "exit status when --no-wait finds the Lease held or --timeout passes")
	f.StringVar(&o.signal, "signal", "SIGTERM", "signal sent to CMD when the Lease is lost or handed off (name or number)")
	f.DurationVar(&o.killAfter, "kill-after", defaultKillAfter, "send SIGKILL to CMD this long after --signal if it is still running")
	f.IntVar(&o.slots, "slots", 1, "let up to N processes hold NAME at once (a semaphore of N Leases NAME-slot-0...; NAME must then be a DNS-1123 label)")
	return cmd
}

// run is "kubelease run NAME -- argv...".
func (o *runOptions) run(cmd *cobra.Command, kf *kubeFlags, name string, argv []string) error {
	stderr := cmd.ErrOrStderr()
	sig, err := parseSignal(o.signal)
	if err != nil {
		return err
	}
	switch {
	case o.slots < 1 || o.slots > lease.MaxSlots:
		return fmt.Errorf("--slots %d: must be from 1 to %d", o.slots, lease.MaxSlots)
	case o.conflictExit < 0 || o.conflictExit > 255:
		return fmt.Errorf("--conflict-exit-code %d: must be from 0 to 255", o.conflictExit)
	case o.killAfter < 0 || o.timeout < 0:
		return errors.New("--kill-after and --timeout must not be negative")
	}
	path, err := exec.LookPath(argv[0])
	if err != nil {
		code := 126
		if errors.Is(err, exec.ErrNotFound) || errors.Is(err, fs.ErrNotExist) {
			code = 127
		}
		return &exitCodeError{code: code, msg: fmt.Sprintf("cannot run %s: %v", argv[0], err)}
	}
	cfg, ns, err := kf.config()
	if err != nil {
		return err
	}
	if o.id == "" {
		o.id = defaultID()
	}
	what := ns + "/" + name
	l, view, closeLease, err := o.newLease(cfg, ns, name)
	if err != nil {
		return err
	}
	defer closeLease()

	lost := make(chan error, 1)
	defer l.OnLost(func(reason error) {
		select {
		case lost <- reason:
		default:
		}
	})()

	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)

	if err := o.acquire(cmd.Context(), l, view, what, sigs, stderr); err != nil {
		return err
	}
	code := o.runHeld(cmd, l, path, argv, name, sig, sigs, lost, what)
	rctx, cancel := context.WithTimeout(context.Background(), releaseTimeout)
	defer cancel()
	if err := l.Release(rctx); err != nil {
		fmt.Fprintf(stderr, "kubelease: releasing %s: %s (it expires by itself within --ttl)\n", what, describe(err, ns, name))
	}
	if code != 0 {
		return &exitCodeError{code: code}
	}
	return nil
}

// newLease returns the lease "run" holds, a view of its holders, and what
// to call when done with it.
func (o *runOptions) newLease(cfg *lease.Config, ns, name string) (runLease, holderView, func(), error) {
	s := lease.Settings{Name: name, Namespace: ns, Owner: o.id, TTL: o.ttl, Config: cfg}
	if o.slots == 1 {
		// The holder watches its Lease: a deletion or takeover stops CMD
		// at once, and a handoff request is seen within a round trip.
		s.WatchWhileHolding = true
		kl, err := lease.NewKubernetesLease(s)
		if err != nil {
			return nil, nil, nil, err
		}
		view := func(ctx context.Context) (string, string, error) {
			h, err := kl.Holder(ctx)
			if err != nil {
				return "", "", err
			}
			return h.Holder, fmt.Sprintf("held by %s (expires in %s)", h.Holder, roundDur(h.ExpiresIn)), nil
		}
		return kl, view, func() {}, nil
	}
	s.Name = ""
	sem, err := lease.NewSemaphore(lease.SemaphoreSettings{Name: name, Slots: o.slots, Lease: s})
	if err != nil {
		return nil, nil, nil, err
	}
	view := func(ctx context.Context) (string, string, error) {
		hs, err := sem.Holders(ctx)
		if err != nil {
			return "", "", err
		}
		var keys, parts []string
		for _, h := range hs {
			keys = append(keys, h.Holder)
			if h.Holder != "" {
				parts = append(parts, fmt.Sprintf("%s (expires in %s)", h.Holder, roundDur(h.ExpiresIn)))
			}
		}
		return strings.Join(keys, ","), fmt.Sprintf("held by %d of %d: %s", len(parts), len(hs), strings.Join(parts, ", ")), nil
	}
	return sem, view, sem.Close, nil
}

// signalError is the cause of a wait ended by a signal.
type signalError struct{ sig os.Signal }

func (e *signalError) Error() string { return "interrupted by " + e.sig.String() }

// acquire takes l, waiting as the flags say. A signal from sigs ends the wait.
func (o *runOptions) acquire(ctx context.Context, l runLease, view holderView, what string, sigs <-chan os.Signal, stderr io.Writer) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	if o.timeout > 0 {
		var cancelT context.CancelFunc
		ctx, cancelT = context.WithTimeoutCause(ctx, o.timeout, fmt.Errorf("timed out after %s waiting for %s", o.timeout, what))
		defer cancelT()
	}
	stop := make(chan struct{})
	watcherDone := make(chan struct{})
	var caught os.Signal
	go func() {
		defer close(watcherDone)
		select {
		case s := <-sigs:
			caught = s
			cancel(&signalError{s})
		case <-stop:
		}
	}()
	err := o.acquireLoop(ctx, l, view, what, stderr)
	close(stop)
	<-watcherDone
	if caught != nil {
		if err == nil {
			rctx, rcancel := context.WithTimeout(context.Background(), releaseTimeout)
			defer rcancel()
			_ = l.Release(rctx)
		}
		return &exitCodeError{code: 128 + int(caught.(syscall.Signal)), msg: fmt.Sprintf("interrupted by %s while waiting for %s", caught, what)}
	}
	return err
}

func (o *runOptions) acquireLoop(ctx context.Context, l runLease, view holderView, what string, stderr io.Writer) error {
	ns, name, _ := strings.Cut(what, "/")
	lastKey, lastErr := "\x00", ""
	backoff := 250 * time.Millisecond
	held := "held by another process"
	for {
		ok, err := l.Acquire(ctx)
		if ok {
			return nil
		}
		if ctx.Err() != nil {
			return o.gaveUp(ctx, held)
		}
		if err != nil {
			msg := describe(err, ns, name)
			if fatal(err) {
				return errors.New(msg)
			}
			if msg != lastErr {
				fmt.Fprintf(stderr, "kubelease: %s (retrying)\n", msg)
				lastErr = msg
			}
			select {
			case <-time.After(backoff):
			case <-ctx.Done():
				return o.gaveUp(ctx, held)
			}
			backoff = min(2*backoff, 5*time.Second)
			continue
		}
		backoff = 250 * time.Millisecond
		if key, text, err := view(ctx); err == nil {
			held = text
			if o.noWait {
				return &exitCodeError{code: o.conflictExit, msg: fmt.Sprintf("%s is %s; not waiting (--no-wait)", what, text)}
			}
			if key != lastKey {
				fmt.Fprintf(stderr, "kubelease: %s is %s; waiting\n", what, text)
				lastKey = key
			}
		} else if o.noWait {
			return &exitCodeError{code: o.conflictExit, msg: fmt.Sprintf("%s is held by another process; not waiting (--no-wait)", what)}
		}
		if err := l.Wait(ctx); err != nil && ctx.Err() != nil {
			return o.gaveUp(ctx, held)
		}
	}
}

// gaveUp is the error for a wait that ctx ended.
func (o *runOptions) gaveUp(ctx context.Context, held string) error {
	cause := context.Cause(ctx)
	if _, ok := errors.AsType[*signalError](cause); ok {
		return cause
	}
	return &exitCodeError{code: o.conflictExit, msg: fmt.Sprintf("%v (%s)", cause, held)}
}

// runHeld runs argv while l is held and returns the exit status to report.
func (o *runOptions) runHeld(cmd *cobra.Command, l runLease, path string, argv []string, name string, sig syscall.Signal, sigs <-chan os.Signal, lost <-chan error, what string) int {
	stderr := cmd.ErrOrStderr()
	tok, _ := l.Token()
	c := exec.Command(path, argv[1:]...)
	c.Args[0] = argv[0]
	c.Env = append(os.Environ(), "KUBELEASE_NAME="+name, "KUBELEASE_HOLDER="+o.id, "KUBELEASE_TOKEN="+tok.String())
	if sem, ok := l.(*lease.Semaphore); ok {
		if slot, ok := sem.Slot(); ok {
			c.Env = append(c.Env, "KUBELEASE_SLOT="+strconv.Itoa(slot))
		}
	}
	c.Stdin, c.Stdout, c.Stderr = cmd.InOrStdin(), cmd.OutOrStdout(), stderr
	dieWithParent(c)

	started := make(chan error, 1)
	done := make(chan error, 1)
	go func() {
		// The thread that starts c must live until c exits (dieWithParent).
		runtime.LockOSThread()
		if err := c.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		done <- c.Wait()
	}()
	if err := <-started; err != nil {
		code := 126
		if errors.Is(err, exec.ErrNotFound) || errors.Is(err, fs.ErrNotExist) {
			code = 127
		}
		fmt.Fprintf(stderr, "kubelease: cannot run %s: %v\n", argv[0], err)
		return code
	}

	// A planned handoff ends the tenure as a Release would: this hook,
	// called by the library's step-down, stops CMD as on a loss and waits
	// for it to exit; only then is the Lease left to the new holder.
	handoff := make(chan string, 1)
	exited := make(chan struct{})
	if h, ok := l.(lease.ReleaseHooker); ok {
		defer h.BeforeRelease(func(ctx context.Context) error {
			to, ok := lease.HandoffTo(ctx)
			if !ok {
				return nil
			}
			select {
			case handoff <- to:
			default:
			}
			<-exited
			return nil
		})()
	}
	defer close(exited)

	alive := time.NewTicker(aliveCheckPeriod)
	defer alive.Stop()
	var kill <-chan time.Time
	onLoss := func(reason error) {
		fmt.Fprintf(stderr, "kubelease: lost %s (%v); sending %s to %s\n", what, reason, signalName(sig), argv[0])
		_ = c.Process.Signal(sig)
		kill = time.After(o.killAfter)
	}
	for {
		select {
		case <-done:
			return exitStatus(c.ProcessState)
		case s := <-sigs:
			_ = c.Process.Signal(s)
		case to := <-handoff:
			if kill == nil {
				fmt.Fprintf(stderr, "kubelease: handing %s off to %s; sending %s to %s\n", what, to, signalName(sig), argv[0])
				_ = c.Process.Signal(sig)
				kill = time.After(o.killAfter)
			}
		case reason := <-lost:
			if kill == nil {
				onLoss(reason)
			}
		case <-alive.C:
			if kill == nil && !l.CheckAlive() {
				onLoss(errors.New("lease deadline passed without a renewal"))
			}
		case <-kill:
			fmt.Fprintf(stderr, "kubelease: %s still running %s after %s; sending SIGKILL\n", argv[0], o.killAfter, signalName(sig))
			_ = c.Process.Kill()
			kill = make(chan time.Time) // never again
		}
	}
}

// exitStatus is the shell's view of how a process ended.
func exitStatus(ps *os.ProcessState) int {
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ps.ExitCode()
}

// defaultID is the hostname and 6 random hex digits.
func defaultID() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "kubelease"
	}
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return host + "-" + hex.EncodeToString(b)
}

// roundDur rounds d for display.
func roundDur(d time.Duration) time.Duration {
	if d >= 10*time.Second {
		return d.Round(time.Second)
	}
	return d.Round(100 * time.Millisecond)
}
