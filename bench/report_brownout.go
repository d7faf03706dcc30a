package bench

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// brownoutCell counts the trials of one library in one (kind, x) cell.
type brownoutCell struct{ kept, n int }

func (c brownoutCell) String() string {
	if c.n == 0 {
		return "–"
	}
	s := fmt.Sprintf("%d/%d", c.kept, c.n)
	if c.kept < c.n {
		s = "**" + s + "**"
	}
	return s
}

// brownoutCells counts r's trials by library, kind and x (trials that
// errored are left out).
func brownoutCells(r *BrownoutResult) map[Lib]map[string]map[time.Duration]brownoutCell {
	out := map[Lib]map[string]map[time.Duration]brownoutCell{}
	for _, t := range r.Trials {
		if t.Err != "" {
			continue
		}
		if out[t.Lib] == nil {
			out[t.Lib] = map[string]map[time.Duration]brownoutCell{}
		}
		if out[t.Lib][t.Kind] == nil {
			out[t.Lib][t.Kind] = map[time.Duration]brownoutCell{}
		}
		c := out[t.Lib][t.Kind][t.X]
		c.n++
		if t.Kept {
			c.kept++
		}
		out[t.Lib][t.Kind][t.X] = c
	}
	return out
}

// BrownoutSummary is one library's totals over the campaign.
type BrownoutSummary struct {
	Trials, Kept, Errors int
	// Missed: losses in trials kubelease's goal says it keeps.
	Missed int
	// Leaderless: total and longest time without a leader after losses.
	Leaderless, MaxLeaderless time.Duration
}

// Summarise returns lib's totals.
func (r *BrownoutResult) Summarise(lib Lib) BrownoutSummary {
	var s BrownoutSummary
	for _, t := range r.Trials {
		if t.Lib != lib {
			continue
		}
		if t.Err != "" {
			s.Errors++
			continue
		}
		s.Trials++
		if t.Kept {
			s.Kept++
			continue
		}
		if t.ShouldKeep {
			s.Missed++
		}
		if t.Leaderless > 0 {
			s.Leaderless += t.Leaderless
			s.MaxLeaderless = max(s.MaxLeaderless, t.Leaderless)
		}
	}
	return s
}

func brownoutSection(b *strings.Builder, res *Results) {
	r := res.Brownout
	if r == nil {
		return
	}
	p := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	p("## 8. Brownouts: the API server slow, shedding or unreachable (kube-apiserver %s)\n\n", res.RealVersion)
	p("Run on %s in %s (seed %d, %d Lease(s) per library at once, %d round(s): each cell has up to %d trial(s) per library)", r.Started.UTC().Format("2006-01-02 15:04 UTC"), r.Took.Round(time.Second), r.Seed, r.Lanes, r.Rounds, r.Lanes*r.Rounds)
	if r.Quick {
		p(" — **quick run, not for publishing**")
	}
	p(".\n\n")
	p("Each Lease has a holder and a standby, each behind its own fault proxy (`e2e/faultproxy`, TLS-terminating mode), as the user `shed` (not exempt from API Priority and Fairness). ")
	p("An outage starts at a seeded phase of the holder's renewal cycle (after a successful renewal, phase × 5 s for kubelease, × 2 s for client-go) and lasts D: ")
	p("**blackhole** — the holder's proxy accepts and reads but passes nothing, and the connections open meanwhile stay dead (a partition of the holder, a middlebox that lost its state); ")
	p("**blackhole-deliver** — the same, but the held bytes are delivered at the end (packets lost, then retransmitted); ")
	p("**reset** — the holder's connections are reset and new ones refused; ")
	p("**429** — both candidates' proxies answer every request 429 with `Retry-After: 1`; ")
	p("**apf** — the server itself sheds: a bounded load generator fills the one-seat APF priority level of the user `shed` (`--max-requests-inflight=10 --max-mutating-requests-inflight=5`, queue of 8; `cluster.Shedding`), so the server answers 429 `Retry-After: 1` or queues; every Lease at once, phase not controlled; ")
	p("**latency** — both proxies forward every request L after it arrived (a slow server), for %v. ", r.LatencyFor)
	p("Kept: the holder renewed after the outage and never stopped leading. kubelease at its defaults (`RunSingleton`, TTL 15 s); client-go `LeaderElector` 15/10/2 s with `ReleaseOnCancel` (re-run after each loss).\n\n")

	cells := brownoutCells(r)
	kinds := []string{BrownoutBlackhole, BrownoutBlackholeDeliver, BrownoutReset, Brownout429, BrownoutAPF}
	kinds = slices.DeleteFunc(kinds, func(k string) bool { return cells[Kubelease][k] == nil && cells[ClientGo][k] == nil })
	if len(kinds) > 0 {
		p("**Survival: leases kept / trials, by outage length D** (kubelease | client-go)\n\n| D |")
		for _, k := range kinds {
			p(" %s: kubelease | client-go |", k)
		}
		p("\n|---|")
		for range kinds {
			p("---|---|")
		}
		p("\n")
		for _, d := range r.Grid {
			p("| %v |", d)
			for _, k := range kinds {
				p(" %s | %s |", cells[Kubelease][k][d], cells[ClientGo][k][d])
			}
			p("\n")
		}
		p("\n")
	}
	if cells[Kubelease][BrownoutLatency] != nil || cells[ClientGo][BrownoutLatency] != nil {
		p("**Survival under latency: leases kept / trials, by the server's answer time L** (for %v)\n\n| L | kubelease | client-go |\n|---|---|---|\n", r.LatencyFor)
		for _, l := range r.Latencies {
			p("| %v | %s | %s |\n", l, cells[Kubelease][BrownoutLatency][l], cells[ClientGo][BrownoutLatency][l])
		}
		p("\n")
	}
	p("**Per library** (all kinds)\n\n| | kubelease | client-go |\n|---|---|---|\n")
	sums := map[Lib]BrownoutSummary{Kubelease: r.Summarise(Kubelease), ClientGo: r.Summarise(ClientGo)}
	fences := map[Lib]BrownoutFence{}
	for _, f := range r.Fences {
		fences[f.Lib] = f
	}
	row := func(name string, f func(Lib) string) {
		p("| %s | %s | %s |\n", name, f(Kubelease), f(ClientGo))
	}
	row("trials (errored, left out)", func(l Lib) string { return fmt.Sprintf("%d (%d)", sums[l].Trials, sums[l].Errors) })
	row("leases kept", func(l Lib) string { return fmt.Sprintf("%d", sums[l].Kept) })
	row("spurious leadership losses", func(l Lib) string { return fmt.Sprintf("%d", sums[l].Trials-sums[l].Kept) })
	row("… of outages ending ≥ 1.5 s before the holder's deadline (latency: L ≤ 4 s) — kubelease's goal: 0", func(l Lib) string { return fmt.Sprintf("%d", sums[l].Missed) })
	row("time without a leader after losses: total (longest)", func(l Lib) string {
		return fmt.Sprintf("%v (%v)", sums[l].Leaderless.Round(100*time.Millisecond), sums[l].MaxLeaderless.Round(100*time.Millisecond))
	})
	row("tenures", func(l Lib) string { return fmt.Sprintf("%d", fences[l].Tenures) })
	row("fenced writes (every 100 ms while leading)", func(l Lib) string { return fmt.Sprintf("%d", fences[l].Writes) })
	row("stale writes (refused by the fence)", func(l Lib) string { return fmt.Sprintf("%d", fences[l].Stale) })
	row("overlapping tenures (total overlap)", func(l Lib) string {
		return fmt.Sprintf("%d (%v)", fences[l].Overlaps, fences[l].OverlapTime.Round(time.Millisecond))
	})
	p("\nThe fence: kubelease's work writes its `Token` (ordered by `Token.Compare`), client-go's a sequence number it takes in `OnStartedLeading`; a write older than the newest one seen is refused and counted stale. ")
	p("The APF load sent %d requests, %d of them shed; the candidates got %d answers 429 in all.\n\n", r.ShedLoad.Requests, r.ShedLoad.Rejected, r.ShedHolder)
	var missed []BrownoutTrial
	for _, t := range r.Trials {
		if t.Lib == Kubelease && t.Err == "" && !t.Kept && t.ShouldKeep {
			missed = append(missed, t)
		}
	}
	if len(missed) > 0 {
		p("**kubelease losses its goal says it keeps** (traces from the outage's start):\n\n")
		for i, t := range missed {
			if i == 5 {
				p("- … and %d more (bench/results.json)\n", len(missed)-5)
				break
			}
			p("- %s D/L %v: outage started %v after the last renewal, ended %v before the deadline", t.Kind, t.X, t.SinceRenewal.Round(10*time.Millisecond), t.Left.Round(10*time.Millisecond))
			if len(t.Trace) > 0 {
				tr := t.Trace
				if len(tr) > 12 {
					tr = tr[:12]
				}
				p(": `%s`", strings.Join(tr, "` · `"))
			}
			p("\n")
		}
		p("\n")
	}
}
