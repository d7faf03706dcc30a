package bench

import (
	"fmt"
	"strings"
	"time"
)

// goalRolloutGap is the kubelease goal: leaderless per handoff of a rolling
// update, kube-apiserver.
const goalRolloutGap = 50 * time.Millisecond

// rolloutGoals writes the goal row of the rolling updates.
func rolloutGoals(b *strings.Builder, res *Results) {
	for _, r := range res.Rollout {
		if !strings.HasPrefix(r.Variant, "kubelease") {
			continue
		}
		d := Summarise(r.Gaps)
		verdict := "yes"
		switch {
		case d.N == 0:
			verdict = "**no handoff measured**"
		case d.Max > goalRolloutGap:
			verdict = fmt.Sprintf("**no**: max %s", fmtDur(d.Max))
		}
		fmt.Fprintf(b, "| Rolling update of a controller-runtime manager under `RunSingleton`: leaderless ≤ 50 ms per handoff (%s) | p50 %s, max %s over %d handoffs | %s |\n",
			r.Backend, fmtDur(d.P50), fmtDur(d.Max), d.N, verdict)
	}
}

// rolloutSection writes the rolling-update table.
func rolloutSection(b *strings.Builder, res *Results) {
	if len(res.Rollout) == 0 {
		return
	}
	p := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	r0 := res.Rollout[0]
	p("## 8. Rolling update\n\n")
	p("`examples/controller-runtime` (a controller-runtime v0.25 manager with one ConfigMap reconciler), %d replicas as separate OS processes on %s, %d rolling updates per variant one after the other. ", r0.Replicas, r0.Backend, r0.Rollouts)
	p("Each step waits %s (what a Deployment, the scheduler and the kubelet take to start a pod: without it a new process would contend milliseconds after the old leader released, which flatters polling), starts a new replica, waits until it prints `ready` and %s more (a readiness probe's period: the new replica is then a standby in its steady state), then sends SIGTERM to an old one (the leader when an old replica leads, else the oldest: the worst order, leadership can move at every step) and waits until it exits; the next step does not wait for a leader (a Deployment waits only for readiness), a rolling update ends when some replica leads. ", r0.StartDelay, r0.ReadyDelay)
	p("Each replica prints `started-leading` when the manager starts its leader-only runnables (the controllers: work starts), `synced` when the controller's ConfigMap informer has synced (it reconciles from then on) and `stopped-leading` when the manager cancels them; the parent reads the lines through pipes and times them with its own monotonic clock. ")
	p("A **handoff** is a leaderless interval: from the leader's `stopped-leading` to the next `started-leading` of any replica (with controller-runtime's own election, several steps can fall in one).\n\n")
	p("| Variant | Steps (leader terminated) | Handoffs | Leaderless per handoff p50 | max | of which until the Lease was held, p50 | Leaderless in all | Until the informer synced, p50 / max | Two leading at once | Took |\n|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range res.Rollout {
		d := Summarise(r.Gaps)
		lease := "–"
		if len(r.LeaseGaps) > 0 {
			lease = fmtDur(Summarise(r.LeaseGaps).P50)
		}
		synced := "–"
		if len(r.SyncGaps) > 0 {
			sd := Summarise(r.SyncGaps)
			synced = fmtDur(sd.P50) + " / " + fmtDur(sd.Max)
		}
		p("| %s | %d (%d) | %d | %s | %s | %s | %s | %s | %d | %s |\n", r.Variant, r.Steps, r.LeaderSteps, d.N, fmtDur(d.P50), fmtDur(d.Max), lease, fmtDur(r.Leaderless()), synced, r.Overlaps, r.Took.Round(time.Second))
	}
	p("\n")
	for _, r := range res.Rollout {
		for _, f := range r.Failures {
			p("- %s: **%s**\n", r.Variant, f)
		}
	}
	p("Settings: controller-runtime `LeaseDuration` 15 s, `RenewDeadline` 10 s, `RetryPeriod` 2 s (its defaults), `LeaderElectionReleaseOnCancel` off or on; kubelease `RunSingleton` with zero options, TTL 15 s, the manager's own election off and one manager built per tenure. The column \"until the Lease was held\" (kubelease: its `OnStarted`) splits off the manager's start. In every variant the controller's informer starts only on the new leader (a LIST and a WATCH of ConfigMaps), and client-go's `cache.WaitForCacheSync`, which controller-runtime's controllers wait on before their workers start, polls every 100 ms: the column \"until the informer synced\" (from the same start) includes that. ")
	p("Without `ReleaseOnCancel` the old leader leaves its Lease to expire, so the standbys wait out the lease duration; with it they still learn of the release only at their next poll (every `RetryPeriod`); kubelease's standbys watch the Lease and take it when the release shows.\n\n")
}
