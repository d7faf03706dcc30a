package e2e

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/kubelease/lease"
	"github.com/kubelease/lease/e2e/cluster"
)

// The partition contender program. TestMain runs it instead of the tests
// when partitionChildEnv is set, so that the partition campaign
// (partition_test.go) starts contenders as separate OS processes by
// re-executing the test binary. Its settings come from the environment:
//
//	KUBELEASE_E2E_PARTITION_CHILD=1
//	KUBELEASE_E2E_KUBECONFIG   kubeconfig file (admin) of the real server
//	KUBELEASE_E2E_PROXY        https://127.0.0.1:port: this contender's faultproxy,
//	                           which replaces the kubeconfig's server
//	KUBELEASE_E2E_LEASE        the Lease's name
//	KUBELEASE_E2E_OWNER        this contender's Owner
//	KUBELEASE_E2E_TTL          the Lease's TTL (a time.Duration)
//	KUBELEASE_E2E_SKEW         Settings.MaxClockSkew (a time.Duration; -1ns: fast path off)
//	KUBELEASE_E2E_STORE        http://127.0.0.1:port: the fenced store
//	KUBELEASE_E2E_BUG          planted bug: "" (none), or "ignorecancel=<duration>":
//	                           the work goes on writing that long after its
//	                           context is cancelled
//
// It runs lease.RunSingleton until SIGTERM or SIGINT. The work writes its
// token to the fenced store first, then every 50 ms while its context is
// live; once cancelled, it reports its stop, then (as a paused process
// acting late would) makes one "late" write with its old token TTL later,
// which the store must refuse if a newer tenure has written meanwhile. It
// prints one line per event on stdout, each with the wall clock in Unix
// nanoseconds (all processes share one machine's clock):
//
//	ready <owner>
//	acquired <token> <ns>                      Observer.Acquired
//	renewed <ns> <stamp-ns> <deadline-ns>      Observer.Renewed: stamp = ns − latency, deadline = ns + left
//	start <token> <ns>                         work starts (before its first write)
//	stop <token> <ns> <cause>                  work's last write is done and it returns
//	exit <ns> <RunSingleton's error>
const partitionChildEnv = "KUBELEASE_E2E_PARTITION_CHILD"

// partitionObserver prints the lease's acquisitions and renewals.
type partitionObserver struct{ say func(string, ...any) }

func (o partitionObserver) Acquired(tok lease.Token) {
	o.say("acquired %s %d", tok, time.Now().UnixNano())
}

func (o partitionObserver) Renewed(latency, left time.Duration) {
	now := time.Now()
	o.say("renewed %d %d %d", now.UnixNano(), now.Add(-latency).UnixNano(), now.Add(left).UnixNano())
}
func (partitionObserver) RenewFailed(error)     {}
func (partitionObserver) Lost(lease.LostReason) {}
func (partitionObserver) Released()             {}

// partitionChildMain is the contender's main; it returns the exit code.
func partitionChildMain() int {
	say, fail := childOutput("partition child")
	ttl, err := time.ParseDuration(os.Getenv("KUBELEASE_E2E_TTL"))
	if err != nil {
		return fail(err)
	}
	skew, err := time.ParseDuration(os.Getenv("KUBELEASE_E2E_SKEW"))
	if err != nil {
		return fail(err)
	}
	var ignoreCancel time.Duration
	if bug := os.Getenv("KUBELEASE_E2E_BUG"); bug != "" {
		v, ok := strings.CutPrefix(bug, "ignorecancel=")
		if !ok {
			return fail(fmt.Errorf("unknown bug %q", bug))
		}
		if ignoreCancel, err = time.ParseDuration(v); err != nil {
			return fail(err)
		}
	}
	cfg, err := lease.LoadKubeconfig(os.Getenv("KUBELEASE_E2E_KUBECONFIG"), "")
	if err != nil {
		return fail(err)
	}
	cfg.Host = os.Getenv("KUBELEASE_E2E_PROXY")
	store := os.Getenv("KUBELEASE_E2E_STORE") + "/write"
	owner := os.Getenv("KUBELEASE_E2E_OWNER")
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	l, err := lease.NewKubernetesLease(lease.Settings{
		Name:         os.Getenv("KUBELEASE_E2E_LEASE"),
		Namespace:    cluster.Namespace,
		Owner:        owner,
		TTL:          ttl,
		MaxClockSkew: skew,
		Config:       cfg,
		Logger:       log,
		Observer:     partitionObserver{say},
	})
	if err != nil {
		return fail(err)
	}
	hc := &http.Client{Timeout: 2 * time.Second}
	// write sends one fenced write; it reports whether the store accepted it.
	write := func(tok lease.Token, kind string, seq int) bool {
		resp, err := hc.PostForm(store, url.Values{
			"owner": {owner}, "token": {tok.String()}, "kind": {kind},
			"seq": {strconv.Itoa(seq)}, "ts": {strconv.FormatInt(time.Now().UnixNano(), 10)},
		})
		if err != nil {
			fmt.Fprintln(os.Stderr, "partition child: store:", err)
			return false
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	say("ready %s", owner)
	err = lease.RunSingleton(ctx, l, func(wctx context.Context) error {
		tok, ok := l.Token()
		if !ok {
			return nil // lost before work started
		}
		say("start %s %d", tok, time.Now().UnixNano())
		seq := 0
		for {
			if wctx.Err() != nil {
				if ignoreCancel <= 0 {
					break
				}
				// The planted bug: go on writing for a while after the
				// tenure ended.
				end := time.Now().Add(ignoreCancel)
				for time.Now().Before(end) {
					seq++
					write(tok, "work", seq)
					time.Sleep(50 * time.Millisecond)
				}
				break
			}
			seq++
			write(tok, "work", seq)
			select {
			case <-wctx.Done():
			case <-time.After(50 * time.Millisecond):
			}
		}
		say("stop %s %d %s", tok, time.Now().UnixNano(), oneLine(context.Cause(wctx)))
		if ctx.Err() == nil {
			go func() { // a paused process acting late: the fence must refuse it
				time.Sleep(ttl)
				write(tok, "late", seq+1)
			}()
		}
		return nil
	}, lease.SingletonOptions{GracePeriod: ignoreCancel + 10*time.Second})
	say("exit %d %s", time.Now().UnixNano(), oneLine(err))
	return 0
}
