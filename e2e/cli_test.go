package e2e

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kubelease/lease/e2e/cluster"
)

// The CLI tests run `kubelease run` (cmd/kubelease, built by
// kubeleaseBinary) as separate OS processes against the shared
// kube-apiserver, TTL 4 s. See cli_helpers_test.go for how the CMDs report.

// cliHandoff bounds, on a SIGTERM, the time from the holder's CMD's last
// line to the waiting peer's CMD's first: kubelease's Release after CMD has
// exited, the watch event, the peer's Acquire and its fork of CMD.
const cliHandoff = 100 * time.Millisecond

// TestCLIRunNeverOverlaps: three kubelease processes, each started again
// once it has exited, six runs in all, contend for one Lease; their CMDs
// (0.3 s each) never run at once, every run exits 0, and the successive
// tenures' fencing tokens grow.
func TestCLIRunNeverOverlaps(t *testing.T) {
	r := newCLIRig(t)
	script := cliLogStart + "\necho cmd-start\nsleep 0.3\n" + cliLogEnd + "\necho cmd-end"
	const procs, rounds = 3, 2

	type result struct {
		p         *proc
		i, round  int
		err       error
		exited    bool
		startedAt time.Time
	}
	results := make(chan result, procs*rounds)
	launch := func(i, round int) {
		p := r.run(fmt.Sprintf("p%d-r%d", i, round), script)
		start := time.Now()
		go func() {
			err, ok := p.waitExit(60 * time.Second)
			results <- result{p: p, i: i, round: round, err: err, exited: ok, startedAt: start}
		}()
	}
	begin := time.Now()
	for i := range procs {
		launch(i, 0)
	}
	var done []*proc
	for range procs * rounds {
		res := <-results
		if !res.exited {
			t.Fatalf("%s: still running 60s after it started; output:\n%s", res.p.name, res.p.output())
		}
		if c := exitCode(res.err); c != 0 {
			t.Errorf("%s: exit status %d, want 0; output:\n%s", res.p.name, c, res.p.output())
		}
		done = append(done, res.p)
		if res.round+1 < rounds {
			launch(res.i, res.round+1)
		}
	}
	elapsed := time.Since(begin)

	events := r.readCLILog()
	most, started, ended := r.cliConcurrency(events, nil)
	if most != 1 || started != procs*rounds || ended != procs*rounds {
		t.Errorf("CMDs (log order): %d at once, %d started, %d ended; want 1 at once and %d started and ended",
			most, started, ended, procs*rounds)
	}
	var prev cliEvent
	for _, e := range events {
		if !e.start {
			continue
		}
		if !prev.token.IsZero() {
			if c, err := e.token.Compare(prev.token); err != nil || c <= 0 {
				t.Errorf("token of %s (%s) is not above the previous tenure's (%s of %s): %d %v",
					e.holder, e.token, prev.token, prev.holder, c, err)
			}
		}
		prev = e
	}

	// The handoffs as the test's clock saw them (for the log; the
	// assertion above is on the order in which the CMDs wrote).
	type span struct{ start, end time.Time }
	var spans []span
	for _, p := range done {
		s, _, ok1 := p.waitFor(0, "cmd-start", 0)
		e, _, ok2 := p.waitFor(0, "cmd-end", 0)
		if ok1 && ok2 {
			spans = append(spans, span{s.at, e.at})
		}
	}
	slices.SortFunc(spans, func(a, b span) int { return a.start.Compare(b.start) })
	var gaps []time.Duration
	for i := 1; i < len(spans); i++ {
		gaps = append(gaps, spans[i].start.Sub(spans[i-1].end).Round(time.Millisecond))
	}
	t.Logf("%d runs of %d processes in %v, one CMD at a time; gaps from a CMD's end to the next's start: %v",
		started, procs, elapsed.Round(time.Millisecond), gaps)
}

// TestCLIRunSIGKILLPeerWithinTTL: A holds; B waits; SIGKILL to A's kubelease
// (not its CMD: on Linux the kernel kills CMD with it) leaves the Lease to
// expire, and B's CMD starts within TTL + 2 s of the kill, not before A's
// last renewal could have expired.
func TestCLIRunSIGKILLPeerWithinTTL(t *testing.T) {
	r := newCLIRig(t)
	a := r.run("a", "echo cmd-start\nexec sleep 600")
	aStart := mustLine(t, a, 0, "cmd-start", cliHeldWait)
	b := r.run("b", cliLogStart+"\necho cmd-start\n"+cliLogEnd)
	mustLine(t, b, 0, "is held by a ", cliHeldWait)

	killed := time.Now()
	a.signal(syscall.SIGKILL)
	// proc's pipe closes only when every process holding it has gone: A's
	// kubelease and its CMD.
	err, ok := a.waitExit(5 * time.Second)
	if !ok {
		t.Fatalf("a: its CMD still runs 5s after kubelease was killed; output:\n%s", a.output())
	}
	aGone := time.Now()
	if c := exitCode(err); c != 128+int(syscall.SIGKILL) {
		t.Errorf("a: exit status %d (%v), want %d", c, err, 128+int(syscall.SIGKILL))
	}

	l := mustLine(t, b, 0, "cmd-start", cliTTL+10*time.Second)
	took := l.at.Sub(killed)
	t.Logf("B's CMD started %v after SIGKILL of A's kubelease (TTL %v), %v after A's CMD started; A and its CMD gone %v after the kill",
		took.Round(time.Millisecond), cliTTL, l.at.Sub(aStart.at).Round(time.Millisecond), aGone.Sub(killed).Round(time.Millisecond))
	if took > cliTTL+2*time.Second {
		t.Errorf("B's CMD started %v after the kill, want within TTL + 2s = %v", took, cliTTL+2*time.Second)
	}
	// A renews every TTL/3 ± 10 %, so its Lease stays valid at least
	// TTL − 0.44·TTL after the kill; B cannot take it earlier.
	if took < cliTTL/2 {
		t.Errorf("B's CMD started %v after the kill, before A's Lease could have expired (TTL %v)", took, cliTTL)
	}
	if c := mustExit(t, b, cliExitWait); c != 0 {
		t.Errorf("b: exit status %d, want 0", c)
	}
	if !l.at.After(aGone) {
		t.Errorf("B's CMD started at %v, before A's CMD was gone (%v)", l.at, aGone)
	}
}

// TestCLIRunSIGTERMReleasesAfterCMD: A holds with a CMD that traps TERM;
// B waits. SIGTERM to A's kubelease reaches the CMD, which takes 200 ms to
// finish and exits 3; A exits 3, and B's CMD starts within 100 ms of A's
// CMD's end, not before it.
func TestCLIRunSIGTERMReleasesAfterCMD(t *testing.T) {
	r := newCLIRig(t)
	a := r.run("a", `trap 'echo cmd-got-term; sleep 0.2; `+cliLogEnd+`; echo cmd-end; exit 3' TERM
`+cliLogStart+`
echo cmd-start
while :; do sleep 0.05; done`)
	mustLine(t, a, 0, "cmd-start", cliHeldWait)
	b := r.run("b", cliLogStart+"\necho cmd-start\n"+cliLogEnd)
	mustLine(t, b, 0, "is held by a ", cliHeldWait)

	sent := time.Now()
	a.signal(syscall.SIGTERM) // to kubelease only: CMD gets it only if kubelease forwards it
	got := mustLine(t, a, 0, "cmd-got-term", 10*time.Second)
	aEnd := mustLine(t, a, 0, "cmd-end", 10*time.Second)
	if c := mustExit(t, a, cliExitWait); c != 3 {
		t.Errorf("a: exit status %d, want 3 (its CMD's)", c)
	}
	bStart := mustLine(t, b, 0, "cmd-start", 10*time.Second)
	gap := bStart.at.Sub(aEnd.at)
	t.Logf("SIGTERM reached A's CMD after %v; B's CMD started %v after A's CMD ended (bound %v)",
		got.at.Sub(sent).Round(time.Millisecond), gap.Round(100*time.Microsecond), cliHandoff)
	if gap < 0 || gap > cliHandoff {
		t.Errorf("B's CMD started %v after A's CMD ended, want 0 to %v", gap, cliHandoff)
	}
	if c := mustExit(t, b, cliExitWait); c != 0 {
		t.Errorf("b: exit status %d, want 0", c)
	}
	events := r.readCLILog()
	most, started, ended := r.cliConcurrency(events, nil)
	if most != 1 || started != 2 || ended != 2 {
		t.Errorf("CMDs (log order): %d at once, %d started, %d ended; want 1, 2, 2", most, started, ended)
	}
	if len(events) != 4 || events[0].holder != "a" || events[1].holder != "a" || events[2].holder != "b" {
		t.Errorf("log order: got %+v, want a's start and end, then b's", events)
	}
}

// TestCLIExitStatus: kubelease exits with its CMD's status, 128+N when CMD
// is killed by signal N, 127 when CMD is not found, and 75 when --no-wait
// finds the Lease held (without running CMD).
func TestCLIExitStatus(t *testing.T) {
	tests := []struct {
		name string
		argv []string
		want int
		ran  bool // whether CMD must have run
	}{
		{"exit 7", []string{"/bin/sh", "-c", "echo cmd-ran; exit 7"}, 7, true},
		{"killed by SIGKILL", []string{"/bin/sh", "-c", "echo cmd-ran; kill -9 $$"}, 137, true},
		{"not found", []string{"no-such-command-kubelease-e2e"}, 127, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newCLIRig(t)
			p := r.runArgv("x", tc.argv)
			if c := mustExit(t, p, cliExitWait); c != tc.want {
				t.Errorf("exit status %d, want %d; output:\n%s", c, tc.want, p.output())
			}
			if _, _, ran := p.waitFor(0, "cmd-ran", 0); ran != tc.ran {
				t.Errorf("CMD ran: %v, want %v; output:\n%s", ran, tc.ran, p.output())
			}
		})
	}
	t.Run("no-wait while held", func(t *testing.T) {
		r := newCLIRig(t)
		a := r.run("a", "echo cmd-start\nexec sleep 600")
		mustLine(t, a, 0, "cmd-start", cliHeldWait)
		p := r.run("b", "echo cmd-ran", "--no-wait")
		if c := mustExit(t, p, cliExitWait); c != 75 {
			t.Errorf("exit status %d, want 75; output:\n%s", c, p.output())
		}
		if !strings.Contains(p.output(), "is held by a ") || !strings.Contains(p.output(), "--no-wait") {
			t.Errorf("output does not say who holds it and that it did not wait:\n%s", p.output())
		}
		if _, _, ran := p.waitFor(0, "cmd-ran", 0); ran {
			t.Errorf("CMD ran although the Lease was held; output:\n%s", p.output())
		}
	})
}

// TestCLISlots: five kubelease processes with --slots 3, CMDs of 1 s: at
// most three CMDs run at once and at some point exactly three, concurrent
// CMDs have distinct KUBELEASE_SLOT values in 0..2, each slot's tenures have
// growing tokens, and all five complete.
func TestCLISlots(t *testing.T) {
	r := newCLIRig(t)
	const runners, slots = 5, 3
	script := cliLogStart + "\necho cmd-start\nsleep 1\n" + cliLogEnd + "\necho cmd-end"
	begin := time.Now()
	var ps []*proc
	for i := range runners {
		ps = append(ps, r.run(fmt.Sprintf("r%d", i), script, "--slots", strconv.Itoa(slots)))
	}
	for _, p := range ps {
		if c := mustExit(t, p, 60*time.Second); c != 0 {
			t.Errorf("%s: exit status %d, want 0; output:\n%s", p.name, c, p.output())
		}
	}
	elapsed := time.Since(begin)

	events := r.readCLILog()
	var atOnce []int
	most, started, ended := r.cliConcurrency(events, func(running map[string]cliEvent) {
		atOnce = append(atOnce, len(running))
		seen := map[string]string{}
		for h, e := range running {
			n, err := strconv.Atoi(e.slot)
			if err != nil || n < 0 || n >= slots {
				t.Errorf("%s: KUBELEASE_SLOT %q, want 0 to %d", h, e.slot, slots-1)
			}
			if other, dup := seen[e.slot]; dup {
				t.Errorf("%s and %s run at once in slot %s", h, other, e.slot)
			}
			seen[e.slot] = h
		}
	})
	t.Logf("%d CMDs on %d slots in %v; running after each start (log order): %v; most at once: %d",
		started, slots, elapsed.Round(time.Millisecond), atOnce, most)
	if most != slots || started != runners || ended != runners {
		t.Errorf("CMDs: %d at once, %d started, %d ended; want exactly %d at once at some point, and %d started and ended",
			most, started, ended, slots, runners)
	}
	last := map[string]cliEvent{}
	for _, e := range events {
		if !e.start {
			continue
		}
		if p, ok := last[e.slot]; ok {
			if c, err := e.token.Compare(p.token); err != nil || c <= 0 {
				t.Errorf("slot %s: token of %s (%s) is not above %s's (%s): %d %v", e.slot, e.holder, e.token, p.holder, p.token, c, err)
			}
		}
		last[e.slot] = e
	}
}

// cliHandoffBound is the bound on "kubelease handoff --to": from
// the request to the new holder's CMD running, on kube-apiserver.
const cliHandoffBound = time.Second

// TestCLIHandoff: A holds, B and C wait; "kubelease handoff NAME --to b"
// makes A's CMD get SIGTERM and exit, then B (not C) runs, in under a
// second from the request. Then "kubelease status" shows B with its token
// (published at B's first renewal).
func TestCLIHandoff(t *testing.T) {
	r := newCLIRig(t)
	a := r.run("a", `trap 'echo cmd-got-term; `+cliLogEnd+`; echo cmd-end; exit 0' TERM
`+cliLogStart+`
echo cmd-start
while :; do sleep 0.05; done`)
	mustLine(t, a, 0, "cmd-start", cliHeldWait)
	waiter := func(id string) *proc {
		p := r.run(id, `trap '`+cliLogEnd+`; exit 0' TERM
`+cliLogStart+`
echo cmd-start
while :; do sleep 0.05; done`)
		mustLine(t, p, 0, "is held by a ", cliHeldWait)
		return p
	}
	b, c := waiter("b"), waiter("c")

	sent := time.Now()
	h := r.start("handoff", "handoff", r.name, "--to", "b", "--kubeconfig", r.kubeconfig, "-n", cluster.Namespace)
	aEnd := mustLine(t, a, 0, "cmd-end", 10*time.Second)
	bStart := mustLine(t, b, 0, "cmd-start", 10*time.Second)
	done := mustLine(t, h, 0, "handed ", 10*time.Second)
	if code := mustExit(t, h, cliExitWait); code != 0 {
		t.Errorf("handoff: exit status %d, want 0; output:\n%s", code, h.output())
	}
	took := bStart.at.Sub(sent)
	t.Logf("handoff --to b: A's CMD ended %v after the request, B's CMD started %v after it (%v after A's ended); the command said %q",
		aEnd.at.Sub(sent).Round(time.Millisecond), took.Round(time.Millisecond), bStart.at.Sub(aEnd.at).Round(100*time.Microsecond), done.text)
	if took > cliHandoffBound {
		t.Errorf("B's CMD started %v after the handoff request, want under %v", took, cliHandoffBound)
	}
	if code := mustExit(t, a, cliExitWait); code != 0 {
		t.Errorf("a: exit status %d, want 0 (its CMD's); output:\n%s", code, a.output())
	}

	// B publishes its token at its first renewal (TTL/3 after acquiring).
	var out string
	deadline := time.Now().Add(3 * cliTTL)
	for {
		st := r.start("status", "status", r.name, "--kubeconfig", r.kubeconfig, "-n", cluster.Namespace)
		code := mustExit(t, st, cliExitWait)
		out = st.output()
		if code != 0 {
			t.Fatalf("status: exit %d, want 0 (held); output:\n%s", code, out)
		}
		if !strings.Contains(out, "<not yet renewed>") || time.Now().After(deadline) {
			break
		}
		time.Sleep(cliTTL / 16) // polling the server until B's first renewal, bounded by deadline
	}
	t.Logf("kubelease status %s:\n%s", r.name, out)
	events := r.readCLILog()
	if !strings.Contains(out, " b ") || len(events) < 3 || events[2].holder != "b" || !events[2].start {
		t.Errorf("after the handoff: status\n%s\nlog %+v; want b to hold, and to be the first to start after a", out, events)
	}
	if tok := events[2].token.String(); !strings.Contains(out, tok) {
		t.Errorf("status does not show B's token %s:\n%s", tok, out)
	}
	most, _, _ := r.cliConcurrency(events, nil)
	if most != 1 {
		t.Errorf("CMDs at once: %d, want 1", most)
	}
	c.kill(syscall.SIGKILL)
	b.signal(syscall.SIGTERM)
	mustExit(t, b, cliExitWait)
}
