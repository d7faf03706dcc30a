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
	p("## 9. Brownouts: the API server slow, shedding or unreachable (kube-apiserver %s)\n\n", res.RealVersion)
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
	brownoutFindings(b, r, sums, fences)
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

// brownoutFindings explains what the tables show, where the data shows it.
func brownoutFindings(b *strings.Builder, r *BrownoutResult, sums map[Lib]BrownoutSummary, fences map[Lib]BrownoutFence) {
	p := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	latMissed := 0
	for _, t := range r.Trials {
		if t.Lib == Kubelease && t.Kind == BrownoutLatency && t.Err == "" && !t.Kept && t.ShouldKeep {
			latMissed++
		}
	}
	p("**Why** (from the traces and the libraries' code):\n\n")
	if f := fences[ClientGo]; f.Overlaps > 0 {
		p("- client-go's overlaps and stale writes (%d, %v in all): in client-go v0.37.2 `LeaderElector.renew`, having failed to renew for RenewDeadline, calls `release()` (with `ReleaseOnCancel`) with a fresh RenewDeadline of 10 s, and only when that returns does `Run` cancel the context of `OnStartedLeading`. While the server or the holder's network is still out (or its HTTP/2 connection dead), the work runs up to 10 s more, past the lease's expiry (15 s after the last renewal), and the standby starts meanwhile.\n", f.Overlaps, f.OverlapTime.Round(time.Millisecond))
	}
	p("- client-go also loses leases after short dropping blackholes (D = 4–8 s, 5 s or more left): the blackhole leaves its HTTP/2 connection dead, and its requests wait on it until RenewDeadline. kubelease closes the connection of an attempt that timed out and retries on a fresh one.\n")
	p("- After D ≈ 10 s (2 s retry period + 10 s RenewDeadline) client-go gives up; kubelease keeps going until its deadline (14.7 s after the last renewal), so it keeps what ends by then with a retry to spare. Both lose what ends past the deadline: those losses are not spurious by rule.\n")
	if sums[ClientGo].Leaderless < sums[Kubelease].Leaderless {
		p("- Time without a leader is shorter for client-go because its loser takes the lease back at once (the record still names it, or it has just released it) — the same process, its work restarted, often while the overlap above lasts; kubelease's next leader starts only once the lost lease has expired (about 0.3 s after the loss, which comes TTL/50 before the expiry; seconds when the standby is slowed too: latency, 429, APF).\n")
	}
	if latMissed > 0 {
		p("- kubelease misses its goal under latency (%d trial(s), L = 4 s): an attempt's timeout is min(RenewalInterval, max(R/2, 1 s), R) for R left before the deadline, so the first attempt of a renewal (R ≈ 9.7 s) waits at most ≈ 4.85 s and later ones less; a server slower than that never answers in time, and the lease is kept only if the slowness ends before the deadline. client-go's single PUT may take up to RenewDeadline (10 s).\n", latMissed)
	}
	p("\n")
}
