package e2e

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/kubelease/lease"
	"github.com/kubelease/lease/e2e/cluster"
)

// The shard-set member program. TestMain runs it instead of the tests
// when shardChildEnv is set in the environment, so that the shard-set
// tests can start members as separate OS processes by re-executing the
// test binary (no build step). Its settings come from the environment:
//
//	KUBELEASE_E2E_SHARD_MEMBER=1
//	KUBELEASE_E2E_KUBECONFIG   kubeconfig file (admin)
//	KUBELEASE_E2E_SET          the shard set's name
//	KUBELEASE_E2E_SHARDS       how many shards: shard-00, shard-01, ...
//	KUBELEASE_E2E_OWNER        this member's Owner
//	KUBELEASE_E2E_TTL          the Leases' TTL (a time.Duration)
//
// It runs lease.ShardSet.Run until SIGTERM or SIGINT and prints one line
// per event on stdout, each with the wall-clock time in Unix nanoseconds
// (all members run on one machine, so the test orders events of different
// processes by it):
//
//	member <owner>
//	start <shard> <token> <ns>            work starts under token
//	stop <shard> <token> <ns> <cause>     work returns; cause is its context's
//	assigned <ns> <members,...> <shards,...>   the assignment as this member sees it
//	exit <ns> <Run's error>
//
// Library logs (Info and above) go to stderr. It exits 0 when Run returned
// the cancellation of its context alone, 1 otherwise, 2 on bad settings.
const shardChildEnv = "KUBELEASE_E2E_SHARD_MEMBER"

// shardNames returns n shard names: shard-00, shard-01, ...
func shardNames(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("shard-%02d", i)
	}
	return out
}

// shardMemberMain is the member program's main; it returns the exit code.
func shardMemberMain() int {
	say, fail := childOutput("shard member")
	n, err := strconv.Atoi(os.Getenv("KUBELEASE_E2E_SHARDS"))
	if err != nil {
		return fail(err)
	}
	ttl, err := time.ParseDuration(os.Getenv("KUBELEASE_E2E_TTL"))
	if err != nil {
		return fail(err)
	}
	cfg, err := lease.LoadKubeconfig(os.Getenv("KUBELEASE_E2E_KUBECONFIG"), "")
	if err != nil {
		return fail(err)
	}
	owner := os.Getenv("KUBELEASE_E2E_OWNER")
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	set, err := lease.NewShardSet(lease.ShardSettings{
		Set:    os.Getenv("KUBELEASE_E2E_SET"),
		Shards: shardNames(n),
		Lease:  lease.Settings{Owner: owner, Namespace: cluster.Namespace, TTL: ttl, Config: cfg, Logger: log},
	})
	if err != nil {
		return fail(err)
	}
	defer set.Close()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	say("member %s", owner)
	err = set.Run(ctx, func(ctx context.Context, shard string, tok lease.Token) error {
		say("start %s %s %d", shard, tok, time.Now().UnixNano())
		<-ctx.Done()
		say("stop %s %s %d %s", shard, tok, time.Now().UnixNano(), oneLine(context.Cause(ctx)))
		return nil
	}, lease.ShardOptions{
		OnAssigned: func(members, mine []string) {
			say("assigned %d %s %s", time.Now().UnixNano(), orDash(members), orDash(mine))
		},
	})
	say("exit %d %s", time.Now().UnixNano(), oneLine(err))
	if cause := context.Cause(ctx); err != nil && cause != nil && err.Error() == cause.Error() {
		return 0 // Run returned ctx's cause alone: a clean withdrawal
	}
	return 1
}

func oneLine(err error) string {
	if err == nil {
		return "<nil>"
	}
	return strings.ReplaceAll(err.Error(), "\n", " | ")
}

func orDash(xs []string) string {
	if len(xs) == 0 {
		return "-"
	}
	return strings.Join(xs, ",")
}
