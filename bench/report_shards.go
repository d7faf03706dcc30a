package bench

import (
	"fmt"
	"strings"
	"time"
)

// Goals of the shard-set benchmarks.
const (
	goalShardMove  = 50 * time.Millisecond         // unowned per graceful move, kube-apiserver
	goalShardCrash = LeaseDuration + 2*time.Second // a crashed member's shards re-owned
)

// shardMoveSamples returns the unowned time of every graceful move (join
// and leave) of r.
func shardMoveSamples(r ShardResult) []time.Duration {
	var out []time.Duration
	for _, mv := range r.Moves {
		if mv.Kind != ShardCrash {
			out = append(out, mv.Unowned...)
		}
	}
	return out
}

// shardGoals writes the goal rows of the shard sets.
func shardGoals(b *strings.Builder, res *Results) {
	p := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	for _, r := range res.Shards {
		if !r.Changes {
			continue
		}
		if s := shardMoveSamples(r); len(s) > 0 {
			d := Summarise(s)
			verdict := "yes"
			if d.Max > goalShardMove {
				verdict = fmt.Sprintf("**no**: max %s", fmtDur(d.Max))
			}
			if r.Backend != "kube-apiserver" {
				verdict += " (the goal is set for kube-apiserver)"
			}
			p("| Shard set, %d shards × %d members: each shard moved by a join or a graceful leave unowned ≤ 50 ms (%s) | p50 %s, p99 %s, max %s over %d moves | %s |\n",
				r.Shards, r.Members, r.Backend, fmtDur(d.P50), fmtDur(d.P99), fmtDur(d.Max), d.N, verdict)
		}
		if mv, ok := r.Move(ShardCrash); ok {
			d := Summarise(mv.Reowned)
			verdict := "yes"
			if mv.TimedOut || len(mv.Reowned) != mv.Orphans || d.Max > goalShardCrash {
				verdict = fmt.Sprintf("**no**: %d of %d re-owned, last after %s", len(mv.Reowned), mv.Orphans, fmtDur(d.Max))
			}
			p("| Shard set: every shard of a crashed member re-owned within lease duration + 2 s = 17 s (%s) | %d shards: p50 %s, last %s after the cut | %s |\n",
				r.Backend, mv.Orphans, fmtDur(d.P50), fmtDur(d.Max), verdict)
		}
	}
}

// shardFindings are the shard-set lines of "Also found".
func shardFindings(res *Results) []string {
	var lines []string
	for _, r := range res.Shards {
		var parts []string
		extra := false
		for _, kind := range []string{ShardJoin, ShardLeave, ShardCrash} {
			var starts, diff, n int
			var ideal float64
			for _, mv := range r.Moves {
				if mv.Kind == kind {
					starts, diff, ideal, n = starts+mv.Starts, diff+mv.AssignDiff, ideal+mv.Ideal, n+1
				}
			}
			if n == 0 || float64(starts) <= 1.1*ideal {
				continue
			}
			extra = extra || starts > diff
			parts = append(parts, fmt.Sprintf("a %s moved %.1f shards (mean of %d; ideal %.1f, `AssignShards` itself %.1f)", kind, float64(starts)/float64(n), n, ideal/float64(n), float64(diff)/float64(n)))
		}
		if len(parts) > 0 {
			why := "the assignment itself moves them: with exact quotas a shard whose highest-scoring member is full goes to its next choice, and when the membership changes, which members are full changes too, so some shards also move between members that stay"
			if extra {
				why += "; beyond that, some shards were taken and given back while members saw different memberships"
			}
			lines = append(lines, fmt.Sprintf("Shard set on %s, %d shards: %s. More than the ideal N/M because %s.", r.Backend, r.Shards, strings.Join(parts, ", "), why))
		}
		if r.Members == 0 || r.Shards == 0 {
			continue
		}
		if d := Summarise(r.ColdStartTimes); d.N > 0 {
			late := 0
			for _, t := range r.ColdStartTimes {
				if t > d.P50+r.TTL*2/3 {
					late++
				}
			}
			if late > 0 && late < d.N/10+1 {
				lines = append(lines, fmt.Sprintf("Shard set on %s, cold start of %d members on %d shards: %d shard(s) started only after %s, while half had started by %s: about one TTL later: their Lease stayed held, with no work running on any member, until it expired.", r.Backend, r.Members, r.Shards, late, fmtDur(d.Max), fmtDur(d.P50)))
			}
		}
		quota := (r.Shards + r.Members - 1) / r.Members
		var greedy []string
		for _, f := range r.ColdFirst {
			if f > quota {
				greedy = append(greedy, fmt.Sprint(f))
			}
		}
		if len(greedy) > 0 || r.ColdStarts > r.Shards {
			lines = append(lines, fmt.Sprintf("Shard set on %s, cold start of %d members on %d shards (settled in %s): %d of them first computed an assignment from fewer members than there were, giving themselves %s shards instead of %d (a member that has announced itself before it sees the others assigns itself their shards too, and starts a runner for each); %d tenures started for %d shards, and the members computed %d assignments until settled.",
				r.Backend, r.Members, r.Shards, fmtDur(r.ColdSettled), len(greedy), strings.Join(greedy, ", "), quota, r.ColdStarts, r.Shards, r.ColdViews))
		}
	}
	return lines
}

func shardSection(b *strings.Builder, res *Results) {
	if len(res.Shards) == 0 {
		return
	}
	p := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	p("## 7. Shard sets (`ShardSet`)\n\n")
	r0 := res.Shards[0]
	if r0.Command != "" && r0.Command != res.Command {
		p("Measured by `%s` on %s (a later run than the sections above; see the header).\n\n", r0.Command, r0.Started.UTC().Format("2006-01-02 15:04 UTC"))
	}
	p("N shards spread over M members. All members run in the harness process, each with its own `ShardSet`, `Config` and counting `RoundTripper` (the transports share one connection pool, as in the other sections), on the real clock, at the defaults: TTL %.0f s (RenewalInterval 5 s ± 10 %%; no shorter TTL was needed to bound the run), `ShardOptions` zero but for the callbacks. A shard's work waits for its context. Which member runs which shard is followed from the `OnStarted` and `OnStopped` callbacks, timestamped on this process's clock. **Settled** means every shard runs on exactly one member, the one `lease.AssignShards(shards, live members)` gives it. ", r0.TTL.Seconds())
	p("The members start together (cold start); after the set settled and a warm-up, every member's requests are counted for a window; then %d round(s) of a member joining and, once that settled, the longest-standing member leaving (its context cancelled: it releases its member Lease and, as each work returns, that shard's Lease), each 1–3 s after the previous change settled; and 1–5 s after the last settled the next one crashes (its transport cut: it can neither renew nor release; its works are abandoned to their own deadline).\n\n", max(r0.Cycles, 1))
	p("client-go has no shard sets (nor anything that spreads work over members); the nearest figures in this report are one `LeaderElector` per lease: section 1 (requests per held lease%s) and section 2 (graceful handoff%s).\n\n", clientGoHolderRate(res), clientGoHandoff(res))

	p("**Membership changes.** *Moved*: shard tenures started on live members from the change until a second after it settled; *assignment*: shards `AssignShards` gives another owner after the change than before; *ideal*: N/M, M the larger membership. *Unowned*: per moved shard, from the old owner's work returning (`OnStopped`, just before it releases the shard's Lease) to the new owner's work starting (`OnStarted`); for a crash, from the cut to the new owner's start.\n\n")
	p("| Backend | shards × members | change | settled | moved | assignment | ideal | unowned per move p50 / p99 / max | unowned, total |\n|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range res.Shards {
		for _, mv := range r.Moves {
			settled := fmtDur(mv.Settled)
			if mv.TimedOut {
				settled = "**timed out**"
			}
			from := map[string]string{ShardJoin: " (from its Run)", ShardLeave: " (from its cancel)", ShardCrash: " (from the cut)"}[mv.Kind]
			un, total := mv.Unowned, time.Duration(0)
			if mv.Kind == ShardCrash {
				un = mv.Reowned
			}
			for _, d := range un {
				total += d
			}
			d := Summarise(un)
			dist := "–"
			if d.N > 0 {
				dist = fmt.Sprintf("%s / %s / %s", fmtDur(d.P50), fmtDur(d.P99), fmtDur(d.Max))
			}
			p("| %s | %d × %d | %s, %d → %d | %s%s | %d | %d | %.1f | %s | %s |\n", r.Backend, r.Shards, r.Members, mv.Kind, mv.Before, mv.After, settled, from, mv.Starts, mv.AssignDiff, mv.Ideal, dist, fmtDur(total))
		}
	}
	p("\nHow a move goes: the members that lose a shard stop its work as soon as their watch shows the new membership (join: the newcomer's member Lease; leave: the leaver's member Lease released), then release the shard's Lease; the member that gains it starts the shard's runner once it has itself computed the new assignment (the newcomer: once it has listed the set and announced itself), and acquires the Lease when it is free. So a shard's unowned time is about the slower of the two sides: on a join, the newcomer's own start-up after the old owners saw it; on a leave, the others see the leaver's member Lease released first (it releases it before it cancels its works) and stand by, so it is the old owner's release, the watch event and the new owner's create (a create without a read: its standby saw the shard deleted). On kube-apiserver each change sends some 50–70 writes at once (the table below), whose round trips on this 2-core machine, shared by kube-apiserver, etcd and the six members, are 10–45 ms at p50 against about 5 ms alone (a single graceful handoff is section 2): that, not the protocol, is what puts a move above 50 ms here.\n\n")
	var timeline []string
	for _, r := range res.Shards {
		for _, mv := range r.Moves {
			if len(mv.Seen) == 0 {
				continue
			}
			sd := Summarise(mv.Seen)
			writes := "–"
			if wd := Summarise(mv.Writes); wd.N > 0 {
				writes = fmt.Sprintf("%d: %s / %s / %s", wd.N, fmtDur(wd.P50), fmtDur(wd.P90), fmtDur(wd.Max))
			}
			timeline = append(timeline, fmt.Sprintf("| %s | %s | %s – %s | %s – %s | %s – %s | %s |", r.Backend, mv.Kind, fmtDur(sd.Min), fmtDur(sd.Max), fmtDur(mv.FirstStop), fmtDur(mv.LastStop), fmtDur(mv.FirstStart), fmtDur(mv.LastStart), writes))
		}
	}
	if len(timeline) > 0 {
		p("Timeline of each change, from the change: when the live members saw the new membership (`OnAssigned`, first – last member), the first and last work stop and start on live members, and the round trips of the members' writes (releases, the leaver's included; acquisitions; renewals) from the change until settled:\n\n")
		p("| Backend | change | members saw it | stops | starts | writes: n: p50 / p90 / max |\n|---|---|---|---|---|---|\n%s\n\n", strings.Join(timeline, "\n"))
	}

	var crash []string
	for _, r := range res.Shards {
		mv, ok := r.Move(ShardCrash)
		if !ok {
			continue
		}
		rd, zd := Summarise(mv.Reowned), Summarise(mv.ZombieStopped)
		zs := "–"
		if zd.N > 0 {
			zs = fmt.Sprintf("%s / %s (%d of %d)", fmtDur(zd.P50), fmtDur(zd.Max), zd.N, mv.Orphans)
		}
		crash = append(crash, fmt.Sprintf("| %s | %d | %s / %s | %s | %d | %d |", r.Backend, mv.Orphans, fmtDur(rd.P50), fmtDur(rd.Max), zs, mv.Overlaps, r.Doubles))
	}
	if len(crash) > 0 {
		p("**Crash.** The crashed member's shards are taken when the others have seen its member Lease expire and each shard's Lease has expired (rule (a) or, from the record's renewTime, rule (b) with MaxClockSkew 1 s): at most lease duration + 1 s after its last renewal, which came up to 5 s before the cut. *Its own works stopped*: when the cut member's works returned (it cannot renew, so its tenures run out); *overlaps* counts shards started on a live member before that (must be 0); *doubles* counts starts while another live member ran the shard, over the whole run (must be 0).\n\n")
		p("| Backend | its shards | re-owned after the cut p50 / last | its own works stopped after the cut p50 / last | overlaps | doubles |\n|---|---|---|---|---|---|\n%s\n\n", strings.Join(crash, "\n"))
	}

	p("**Cold start and steady state.** *Cold start*: from starting every member at once to settled; when the shards' works (last) started, first / median / last; and the shard tenures started until then (N when no member took a shard it had to give back). Requests per member per minute over the window, by the members' own `RoundTripper`s (on the fake, the server's own count agrees); CPU is the harness process's, all members together, during the window (the API server runs in other processes).\n\n")
	p("| Backend | shards × members | cold start settled | shards started: first / median / last | tenures started | window | requests / member / min (by verb) | server's count / member / min | per held Lease / min | CPU (all members) | tenures started in the window |\n|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range res.Shards {
		cold := fmtDur(r.ColdSettled)
		if r.ColdTimedOut {
			cold = "**timed out**"
		}
		var all Counts
		for _, c := range r.PerMember {
			all = all.Add(c)
		}
		n := max(len(r.PerMember), 1)
		reqs, server, perLease, cpu := "–", "–", "–", "–"
		if r.Window > 0 && all.Total() > 0 {
			reqs = fmt.Sprintf("%.1f (%s)", r.PerMemberMinute(), verbsPerMinute(all.Verbs, n, r.Window))
			// Each member holds its member Lease and about N/M shards.
			held := float64(r.Shards + len(r.PerMember))
			perLease = fmt.Sprintf("%.1f", float64(all.Total())/held/r.Window.Minutes())
			cpu = fmt.Sprintf("%.1f %% of a core (%.0f µs per request)", 100*r.CPU.Seconds()/r.Window.Seconds(), float64(r.CPU.Microseconds())/float64(all.Total()))
		}
		if r.Server != nil && r.Window > 0 {
			server = fmt.Sprintf("%.1f", float64(sumMap(r.Server))/float64(n)/r.Window.Minutes())
		}
		starts := "–"
		if d := Summarise(r.ColdStartTimes); d.N > 0 {
			starts = fmt.Sprintf("%s / %s / %s", fmtDur(d.Min), fmtDur(d.P50), fmtDur(d.Max))
		}
		p("| %s | %d × %d | %s | %s | %d | %s | %s | %s | %s | %s | %d |\n", r.Backend, r.Shards, r.Members, cold, starts, r.ColdStarts, r.Window, reqs, server, perLease, cpu, r.WindowStarts)
	}
	p("\nA member renews its member Lease and each shard it holds every RenewalInterval (one PUT each, about 12 a minute per Lease), and keeps one watch of the set's Leases open (counted when opened, so none in the window); with N/M shards per member that is about 12 × (N/M + 1) requests a minute.\n\n")
}

// clientGoHolderRate cites client-go's requests per held lease from the
// steady-state section, if measured.
func clientGoHolderRate(res *Results) string {
	var parts []string
	for _, r := range res.Steady {
		if c, ok := findGroup(r, ClientGo, "defaults"); ok {
			parts = append(parts, fmt.Sprintf("%.1f a minute on %s", r.PerLeaseMinute(c.Holder.Total()), r.Backend))
		}
	}
	if len(parts) == 0 {
		return ""
	}
	return ", client-go: " + strings.Join(parts, ", ")
}

// clientGoHandoff cites client-go's graceful handoff p50, if measured.
func clientGoHandoff(res *Results) string {
	var parts []string
	for _, backend := range backendsOf(res) {
		if c, ok := findLatency(res, backend, ClientGo, ScenarioHandoff); ok && len(c.Samples) > 0 {
			parts = append(parts, fmt.Sprintf("p50 %s on %s", fmtDur(Summarise(c.Samples).P50), backend))
		}
	}
	if len(parts) == 0 {
		return ""
	}
	return ", client-go: " + strings.Join(parts, ", ")
}
