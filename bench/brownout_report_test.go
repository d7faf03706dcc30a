package bench

import (
	"strings"
	"testing"
	"time"
)

func TestBrownoutReport(t *testing.T) {
	s := time.Second
	r := &BrownoutResult{
		Lanes: 1, Rounds: 1, Grid: []time.Duration{4 * s, 12 * s}, Latencies: []time.Duration{2 * s}, LatencyFor: 12 * s,
		Trials: []BrownoutTrial{
			{Lib: Kubelease, Kind: BrownoutReset, X: 4 * s, Kept: true, ShouldKeep: true},
			{Lib: ClientGo, Kind: BrownoutReset, X: 4 * s, Kept: true},
			{Lib: Kubelease, Kind: BrownoutReset, X: 12 * s, ShouldKeep: true, Leaderless: 2 * s, Trace: []string{"+0.000s renew attempt failed"}},
			{Lib: ClientGo, Kind: BrownoutReset, X: 12 * s, Overlap: true},
			{Lib: ClientGo, Kind: BrownoutLatency, X: 2 * s, Kept: true},
			{Lib: ClientGo, Kind: BrownoutAPF, X: 4 * s, Err: "no leader"},
		},
		Fences: []BrownoutFence{{Lib: Kubelease, Tenures: 2, Writes: 100}, {Lib: ClientGo, Tenures: 3, Writes: 90, Stale: 7, Overlaps: 1, OverlapTime: 700 * time.Millisecond}},
	}
	if s := r.Summarise(Kubelease); s.Trials != 2 || s.Kept != 1 || s.Missed != 1 || s.Leaderless != 2*time.Second {
		t.Errorf("kubelease summary %+v", s)
	}
	if s := r.Summarise(ClientGo); s.Trials != 3 || s.Kept != 2 || s.Errors != 1 {
		t.Errorf("client-go summary %+v", s)
	}
	var b strings.Builder
	brownoutSection(&b, &Results{Brownout: r, RealVersion: "v1.37.2"})
	out := b.String()
	for _, want := range []string{
		"## 9. Brownouts",
		"| 4s | 1/1 | 1/1 |",
		"| 12s | **0/1** | **0/1** |",
		"| 2s | – | 1/1 |",
		"| stale writes (refused by the fence) | 0 | 7 |",
		"| overlapping tenures (total overlap) | 0 (0s) | 1 (700ms) |",
		"renew attempt failed",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
}
