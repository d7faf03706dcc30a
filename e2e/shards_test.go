package e2e

import (
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kubelease/lease"
	"github.com/kubelease/lease/e2e/cluster"
)

// The shard-set tests run members of one lease.ShardSet as separate OS
// processes (the test binary re-executed as the member program of
// shards_child_test.go) against kube-apiserver, and judge them only by
// what the processes print: "start <shard> <token> <ns>" and
// "stop <shard> <token> <ns> <cause>", stamped with the wall clock of the
// machine they share. Every test checks, over the whole run:
//
//   - fencing: the successive starts of a shard, in time order and
//     whichever process made them, have strictly increasing tokens
//     (lease.Token.Compare);
//   - exclusivity: no two processes run a shard at once. A process's work
//     runs from its start line to its stop line; for a process killed with
//     SIGKILL, until the kill; for one frozen with SIGSTOP, until the
//     freeze (a frozen process does nothing; what it does after SIGCONT is
//     checked apart: it must stop every work within shardThawStop).
const (
	shardCount = 12
	shardTTL   = 4 * time.Second
	// shardTakeover bounds the time from a member's SIGKILL or SIGSTOP
	// until the others run all its shards: its Leases expire by rule (a)
	// one TTL after the others last saw them renewed, and the others are
	// woken by that expiry.
	shardTakeover = shardTTL + 2*time.Second
	// shardSettle bounds the time for freshly started members to settle.
	shardSettle = 20 * time.Second
	// shardThawStop bounds the time from SIGCONT until a thawed member has
	// stopped every work it ran when frozen (its runner checks CheckAlive
	// every 250 ms; its member Lease is lost too).
	shardThawStop = 2 * time.Second
	// shardHandoffGap bounds, on a graceful leave, the time from the
	// leaving member's stop of a shard to its start elsewhere: a release
	// and a watch event, far below the TTL a takeover would wait.
	shardHandoffGap = shardTTL / 2
)

// shardRig is one shard set whose members are OS processes.
type shardRig struct {
	t          *testing.T
	c          *cluster.Cluster
	set        string
	shards     []string
	kubeconfig string
	members    []*shardMember
}

// shardMember is one member process and what the test did to it.
type shardMember struct {
	*proc
	owner                        string
	killedAt, frozenAt, thawedAt time.Time
}

// shardEvent is one start or stop line of a member.
type shardEvent struct {
	m     *shardMember
	start bool
	shard string
	tok   lease.Token
	at    time.Time // the member's clock
	cause string    // of a stop
}

func newShardRig(t *testing.T) *shardRig {
	c := needCluster(t)
	r := &shardRig{t: t, c: c, set: "e2e-shards-" + randHex(4), shards: shardNames(shardCount)}
	r.kubeconfig = filepath.Join(t.TempDir(), "kubeconfig")
	if err := c.Kubeconfig(r.kubeconfig, cluster.AdminToken); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// After the members are killed (their cleanups run first): drop
		// whatever Leases of the set are left.
		q := url.Values{"labelSelector": {lease.LabelShardSet + "=" + r.set}}
		code, body, err := c.Do(ctxFor(t, 10*time.Second), cluster.AdminToken, http.MethodDelete,
			strings.TrimSuffix(leasesPath, "/")+"?"+q.Encode(), nil)
		if err != nil || code != http.StatusOK {
			t.Logf("deleting the Leases of set %s: %d %v %.200s", r.set, code, err, body)
		}
	})
	return r
}

// start starts a member process named name.
func (r *shardRig) start(name string) *shardMember {
	r.t.Helper()
	exe, err := os.Executable()
	if err != nil {
		r.t.Fatal(err)
	}
	owner := name + "-" + randHex(3)
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(),
		shardChildEnv+"=1",
		"KUBELEASE_E2E_KUBECONFIG="+r.kubeconfig,
		"KUBELEASE_E2E_SET="+r.set,
		"KUBELEASE_E2E_SHARDS="+strconv.Itoa(len(r.shards)),
		"KUBELEASE_E2E_OWNER="+owner,
		"KUBELEASE_E2E_TTL="+shardTTL.String(),
	)
	m := &shardMember{proc: startProc(r.t, name, cmd), owner: owner}
	r.members = append(r.members, m)
	return m
}

// startN starts n members, m0, m1, ...
func (r *shardRig) startN(n int) []*shardMember {
	out := make([]*shardMember, n)
	for i := range out {
		out[i] = r.start(fmt.Sprintf("m%d", i))
	}
	return out
}

// events parses m's start and stop lines.
func (m *shardMember) events(t *testing.T) []shardEvent {
	var out []shardEvent
	for _, l := range m.linesSince(0) {
		f := strings.SplitN(l.text, " ", 5)
		if len(f) < 4 || (f[0] != "start" && f[0] != "stop") {
			continue
		}
		tok, err := lease.ParseToken(f[2])
		if err != nil {
			t.Errorf("%s: bad token in %q: %v", m.name, l.text, err)
			continue
		}
		ns, err := strconv.ParseInt(f[3], 10, 64)
		if err != nil {
			t.Errorf("%s: bad time in %q: %v", m.name, l.text, err)
			continue
		}
		e := shardEvent{m: m, start: f[0] == "start", shard: f[1], tok: tok, at: time.Unix(0, ns)}
		if len(f) == 5 {
			e.cause = f[4]
		}
		out = append(out, e)
	}
	return out
}

// running returns the shards whose work m runs as its output says (a
// start without its stop), with their start events.
func (m *shardMember) running(t *testing.T) map[string]shardEvent {
	out := map[string]shardEvent{}
	for _, e := range m.events(t) {
		if e.start {
			out[e.shard] = e
		} else if s, ok := out[e.shard]; ok && s.tok == e.tok {
			delete(out, e.shard)
		}
	}
	return out
}

// owners returns, for each shard, the members among ms that run it.
func (r *shardRig) owners(ms []*shardMember) map[string][]string {
	out := map[string][]string{}
	for _, m := range ms {
		for shard := range m.running(r.t) {
			out[shard] = append(out[shard], m.owner)
		}
	}
	return out
}

// describe renders owners for a message.
func describe(owners map[string][]string) string {
	keys := slices.Sorted(func(yield func(string) bool) {
		for k := range owners {
			if !yield(k) {
				return
			}
		}
	})
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, " %s=%s", k, strings.Join(owners[k], "+"))
	}
	return b.String()
}

// changes returns a function that waits until any of ms prints a line or
// exits after changes was called, or until the deadline. Call it before
// looking at the output, so that no line is missed in between.
func changes(ms []*shardMember) func(deadline time.Time) {
	cases := []reflect.SelectCase{{Dir: reflect.SelectRecv}}
	for _, m := range ms {
		m.mu.Lock()
		ch := m.change
		m.mu.Unlock()
		cases = append(cases, reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(ch)})
	}
	return func(deadline time.Time) {
		t := time.NewTimer(time.Until(deadline))
		defer t.Stop()
		cases[0].Chan = reflect.ValueOf(t.C)
		reflect.Select(cases)
	}
}

// settle waits up to d until the members live run every shard, each on
// exactly one of them, as lease.AssignShards assigns the shards over
// their owners, and each of them sees exactly these members (its last
// "assigned" line). It returns when that happened, and fails the test
// after d with what each runs.
func (r *shardRig) settle(live []*shardMember, d time.Duration, what string) time.Time {
	r.t.Helper()
	var names []string
	for _, m := range live {
		names = append(names, m.owner)
	}
	want := lease.AssignShards(r.shards, names)
	deadline := time.Now().Add(d)
	for {
		wait := changes(r.members)
		now := time.Now()
		owners := r.owners(live)
		if matches(owners, want) && agreed(live, names, want) {
			r.checkBalance(owners, len(live), what)
			return now
		}
		if now.After(deadline) {
			r.t.Fatalf("%s: not settled within %v: running:%s\nwant (AssignShards over %v):%s",
				what, d, describe(owners), names, describe(single(want)))
		}
		wait(deadline)
	}
}

// lastAssigned returns the members and shards of m's last "assigned"
// line.
func (m *shardMember) lastAssigned() (members, mine string) {
	lines := m.linesSince(0)
	for i := len(lines) - 1; i >= 0; i-- {
		f := strings.Fields(lines[i].text)
		if len(f) == 4 && f[0] == "assigned" {
			return f[2], f[3]
		}
	}
	return "", ""
}

// agreed reports whether every member of live sees exactly the members
// names as live and is assigned its shards of want: the members agree,
// so nothing moves until membership changes.
func agreed(live []*shardMember, names []string, want map[string]string) bool {
	all := slices.Sorted(slices.Values(names))
	for _, m := range live {
		var mine []string
		for shard, o := range want {
			if o == m.owner {
				mine = append(mine, shard)
			}
		}
		slices.Sort(mine)
		members, got := m.lastAssigned()
		if members != orDash(all) || got != orDash(mine) {
			return false
		}
	}
	return true
}

func single(m map[string]string) map[string][]string {
	out := map[string][]string{}
	for k, v := range m {
		out[k] = []string{v}
	}
	return out
}

// matches reports whether every shard of want runs on exactly its owner,
// and nothing else runs.
func matches(owners map[string][]string, want map[string]string) bool {
	if len(owners) != len(want) {
		return false
	}
	for shard, o := range want {
		if got := owners[shard]; len(got) != 1 || got[0] != o {
			return false
		}
	}
	return true
}

// checkBalance checks that every one of n members runs ⌊N/n⌋ or ⌈N/n⌉
// shards (max − min ≤ 1).
func (r *shardRig) checkBalance(owners map[string][]string, n int, what string) {
	r.t.Helper()
	count := map[string]int{}
	for _, os := range owners {
		for _, o := range os {
			count[o]++
		}
	}
	var cs []int
	for _, c := range count {
		cs = append(cs, c)
	}
	if len(cs) != n || slices.Max(cs)-slices.Min(cs) > 1 {
		r.t.Errorf("%s: shards per member %v over %d members; want every member within one of the others", what, count, n)
	}
}

// checkHistory checks fencing and exclusivity (see the top of this file)
// over everything the members printed.
func (r *shardRig) checkHistory() {
	r.t.Helper()
	problems, starts := r.history()
	for _, p := range problems {
		r.t.Error(p)
	}
	r.t.Logf("history: %d work starts over %d shards and %d member processes", starts, len(r.shards), len(r.members))
}

// history returns what breaks fencing or exclusivity in the members'
// output, and how many work starts it has.
func (r *shardRig) history() (problems []string, total int) {
	type span struct {
		from, to time.Time
		e        shardEvent
	}
	forever := time.Now().Add(time.Hour)
	starts := map[string][]shardEvent{}
	spans := map[string][]span{}
	for _, m := range r.members {
		evs := m.events(r.t)
		for i, e := range evs {
			if !e.start {
				continue
			}
			starts[e.shard] = append(starts[e.shard], e)
			to := forever
			for _, s := range evs[i+1:] {
				if !s.start && s.shard == e.shard && s.tok == e.tok {
					to = s.at
					break
				}
			}
			if !m.killedAt.IsZero() && m.killedAt.Before(to) {
				to = m.killedAt
			}
			if !m.frozenAt.IsZero() && e.at.Before(m.frozenAt) && m.frozenAt.Before(to) {
				to = m.frozenAt
			}
			spans[e.shard] = append(spans[e.shard], span{e.at, to, e})
		}
	}
	for _, shard := range r.shards {
		ss := starts[shard]
		total += len(ss)
		sort.Slice(ss, func(i, j int) bool { return ss[i].at.Before(ss[j].at) })
		for i := 1; i < len(ss); i++ {
			c, err := ss[i].tok.Compare(ss[i-1].tok)
			if err != nil || c != 1 {
				problems = append(problems, fmt.Sprintf("%s: %s started with token %v after %s started with %v: want a greater token (Compare = %d, %v)",
					shard, ss[i].m.name, ss[i].tok, ss[i-1].m.name, ss[i-1].tok, c, err))
			}
		}
		sp := spans[shard]
		sort.Slice(sp, func(i, j int) bool { return sp[i].from.Before(sp[j].from) })
		for i := 1; i < len(sp); i++ {
			for _, prev := range sp[:i] {
				if sp[i].from.Before(prev.to) {
					problems = append(problems, fmt.Sprintf("%s: %s started it (token %v) at %s while %s ran it (token %v, %s – %s)",
						shard, sp[i].e.m.name, sp[i].e.tok, sp[i].from.Format("15:04:05.000"),
						prev.e.m.name, prev.e.tok, prev.from.Format("15:04:05.000"), prev.to.Format("15:04:05.000")))
				}
			}
		}
	}
	return problems, total
}

// TestShardHistoryCheck shows that the shard tests' history check is not
// vacuous: on made-up output (no cluster needed) it passes handoffs,
// takeovers from killed and frozen members and a rejoin, and it flags a
// start while another member runs the shard, a start with a smaller
// token, and a frozen member's work counted past a takeover only when it
// started after the freeze.
func TestShardHistoryCheck(t *testing.T) {
	t0 := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	at := func(ms int) string {
		return strconv.FormatInt(t0.Add(time.Duration(ms)*time.Millisecond).UnixNano(), 10)
	}
	member := func(name string, lines ...string) *shardMember {
		p := &proc{t: t, name: name}
		for _, l := range lines {
			p.lines = append(p.lines, line{text: l})
		}
		return &shardMember{proc: p, owner: name}
	}
	for _, tc := range []struct {
		name    string
		members func() []*shardMember
		want    []string // substrings, one per problem; none: clean
	}{
		{"Handoff", func() []*shardMember {
			return []*shardMember{
				member("a", "start s 100/0 "+at(0), "stop s 100/0 "+at(1000)+" lease: not held"),
				member("b", "start s 105/0 "+at(1010)),
			}
		}, nil},
		{"Overlap", func() []*shardMember {
			return []*shardMember{
				member("a", "start s 100/0 "+at(0), "stop s 100/0 "+at(1000)+" lease: not held"),
				member("b", "start s 105/0 "+at(900)),
			}
		}, []string{"s: b started it (token 105/0) at 12:00:00.900 while a ran it"}},
		{"TokenNotGreater", func() []*shardMember {
			return []*shardMember{
				member("a", "start s 100/0 "+at(0), "stop s 100/0 "+at(1000)+" x"),
				member("b", "start s 99/1 "+at(1010)),
			}
		}, []string{"s: b started with token 99/1 after a started with 100/0"}},
		{"KilledThenTakenOver", func() []*shardMember {
			a := member("a", "start s 100/0 "+at(0))
			a.killedAt = t0.Add(500 * time.Millisecond)
			return []*shardMember{a, member("b", "start s 130/1 "+at(5000))}
		}, nil},
		{"FrozenThenThawed", func() []*shardMember {
			a := member("a", "start s 100/0 "+at(0), "stop s 100/0 "+at(6000)+" lease: lost", "start s 150/2 "+at(7000))
			a.frozenAt, a.thawedAt = t0.Add(500*time.Millisecond), t0.Add(5900*time.Millisecond)
			return []*shardMember{a, member("b", "start s 130/1 "+at(5000), "stop s 130/1 "+at(6900)+" lease: not held")}
		}, nil},
		{"StartedAfterFreezeStillCounts", func() []*shardMember {
			a := member("a", "start s 100/0 "+at(0), "stop s 100/0 "+at(300)+" x", "start s 110/0 "+at(400), "stop s 110/0 "+at(6000)+" lease: lost")
			a.frozenAt = t0.Add(200 * time.Millisecond) // a bogus freeze time: a printed after it
			return []*shardMember{a, member("b", "start s 130/1 "+at(5000))}
		}, []string{"s: b started it (token 130/1) at 12:00:05.000 while a ran it (token 110/0"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &shardRig{t: t, shards: []string{"s"}, members: tc.members()}
			problems, _ := r.history()
			if len(problems) != len(tc.want) {
				t.Fatalf("problems: got %q, want %d matching %q", problems, len(tc.want), tc.want)
			}
			for i, w := range tc.want {
				if !strings.Contains(problems[i], w) {
					t.Errorf("problem %d: got %q, want it to contain %q", i, problems[i], w)
				}
			}
		})
	}
}

// without returns ms without x.
func without(ms []*shardMember, x *shardMember) []*shardMember {
	return slices.DeleteFunc(slices.Clone(ms), func(m *shardMember) bool { return m == x })
}

// takenOver checks, after gone stopped counting (killed, frozen or left
// at since), when each of its shards started elsewhere, and returns the
// shortest and the longest time from since.
func (r *shardRig) takenOver(gone *shardMember, was map[string]shardEvent, others []*shardMember, since time.Time) (shortest, longest time.Duration) {
	shortest = -1
	for shard := range was {
		var first time.Time
		for _, m := range others {
			for _, e := range m.events(r.t) {
				if e.start && e.shard == shard && e.at.After(since) && (first.IsZero() || e.at.Before(first)) {
					first = e.at
				}
			}
		}
		if first.IsZero() {
			r.t.Errorf("%s: %s's shard never started elsewhere", shard, gone.name)
			continue
		}
		d := first.Sub(since)
		longest = max(longest, d)
		if shortest < 0 || d < shortest {
			shortest = d
		}
	}
	return shortest, longest
}

// checkNotBeforeExpiry checks that none of the shards of a member that
// stopped at since (SIGKILL, SIGSTOP) started elsewhere before its tenure
// could have ended: its last renewal was at most a RenewalInterval (TTL/3,
// +10 % jitter) before since, and its deadline is TTL − TTL/50 after that.
func (r *shardRig) checkNotBeforeExpiry(gone *shardMember, shortest time.Duration) {
	r.t.Helper()
	earliest := shardTTL - shardTTL/3*11/10 - shardTTL/50
	if shortest >= 0 && shortest < earliest {
		r.t.Errorf("a shard of %s started elsewhere %v after it stopped, before its Lease could have expired (%v)", gone.name, shortest, earliest)
	}
}

// TestShardSetKill: three member processes over 12 shards settle as
// AssignShards says (4 each); one is killed with SIGKILL (no Release):
// the other two run all 12 shards, as AssignShards over the two, within
// TTL + 2 s of the kill. Fencing and exclusivity hold throughout.
func TestShardSetKill(t *testing.T) {
	r := newShardRig(t)
	ms := r.startN(3)
	begin := time.Now()
	settled := r.settle(ms, shardSettle, "three members")
	t.Logf("three members settled %v after their start", settled.Sub(begin).Round(time.Millisecond))

	victim := ms[1]
	was := victim.running(t)
	victim.kill(syscall.SIGKILL)
	victim.killedAt = time.Now()
	if _, ok := victim.waitExit(10 * time.Second); !ok {
		t.Fatalf("%s did not die from SIGKILL", victim.name)
	}
	rest := without(ms, victim)
	done := r.settle(rest, shardTakeover+5*time.Second, "after SIGKILL of "+victim.name)
	took := done.Sub(victim.killedAt)
	shortest, longest := r.takenOver(victim, was, rest, victim.killedAt)
	r.checkNotBeforeExpiry(victim, shortest)
	t.Logf("%s's %d shards were taken over %v after its SIGKILL (shards started elsewhere %v to %v after it; TTL %v)",
		victim.name, len(was), took.Round(time.Millisecond), shortest.Round(time.Millisecond), longest.Round(time.Millisecond), shardTTL)
	if took > shardTakeover {
		t.Errorf("the others took %v to run all of %s's shards, want at most TTL + 2 s = %v", took, victim.name, shardTakeover)
	}
	r.checkHistory()
}

// TestShardSetFreeze: three member processes settle; one is frozen with
// SIGSTOP: the other two run all 12 shards within TTL + 2 s. On SIGCONT the
// thawed member stops every work it ran (it notices that its Leases are
// lost) within 2 s, rejoins, and the three settle again as AssignShards
// says. Fencing and exclusivity hold throughout (the thawed member's works
// count as ended at the freeze; their stops are checked apart).
func TestShardSetFreeze(t *testing.T) {
	r := newShardRig(t)
	ms := r.startN(3)
	r.settle(ms, shardSettle, "three members")

	frozen := ms[2]
	was := frozen.running(t)
	frozen.signal(syscall.SIGSTOP)
	frozen.frozenAt = time.Now()
	t.Cleanup(func() { frozen.kill(syscall.SIGCONT) })
	rest := without(ms, frozen)
	done := r.settle(rest, shardTakeover+5*time.Second, "after SIGSTOP of "+frozen.name)
	took := done.Sub(frozen.frozenAt)
	shortest, longest := r.takenOver(frozen, was, rest, frozen.frozenAt)
	r.checkNotBeforeExpiry(frozen, shortest)
	t.Logf("%s's %d shards were taken over %v after its SIGSTOP (shards started elsewhere %v to %v after it)",
		frozen.name, len(was), took.Round(time.Millisecond), shortest.Round(time.Millisecond), longest.Round(time.Millisecond))
	if took > shardTakeover {
		t.Errorf("the others took %v to run all of %s's shards, want at most TTL + 2 s = %v", took, frozen.name, shardTakeover)
	}

	// Thaw: every work the frozen member ran must stop at once.
	from := frozen.next()
	frozen.thawedAt = time.Now()
	frozen.signal(syscall.SIGCONT)
	for shard, e := range was {
		l, _, ok := frozen.waitFor(from, fmt.Sprintf("stop %s %s ", shard, e.tok), shardThawStop+5*time.Second)
		if !ok {
			t.Errorf("%s: %s did not stop its work (token %v) after SIGCONT", shard, frozen.name, e.tok)
			continue
		}
		if d := l.at.Sub(frozen.thawedAt); d > shardThawStop {
			t.Errorf("%s: %s stopped its work %v after SIGCONT, want at most %v: %s", shard, frozen.name, d, shardThawStop, l.text)
		}
		// The work's context ended because the shard's Lease was lost, or
		// because the member, its own Lease lost, gave its shards up.
		if !strings.Contains(l.text, "lost") && !strings.Contains(l.text, "not held") {
			t.Errorf("%s: %s stopped its work after SIGCONT with a cause other than a loss: %s", shard, frozen.name, l.text)
		}
	}
	rejoined := r.settle(ms, shardSettle, "after SIGCONT of "+frozen.name)
	t.Logf("%s rejoined and the three settled %v after SIGCONT", frozen.name, rejoined.Sub(frozen.thawedAt).Round(time.Millisecond))
	r.checkHistory()
}

// TestShardSetGracefulLeave: three member processes settle; one gets
// SIGTERM: it cancels its context, Run withdraws (member Lease released at
// once, each shard released as its work returns) and the process exits 0;
// the other two run all 12 shards as AssignShards says, each moved shard
// starting elsewhere within TTL/2 of its stop (a handoff, not an expiry).
// Then the other two leave as well, and no Lease of the set is left.
func TestShardSetGracefulLeave(t *testing.T) {
	r := newShardRig(t)
	ms := r.startN(3)
	r.settle(ms, shardSettle, "three members")

	leaver := ms[0]
	was := leaver.running(t)
	sent := time.Now()
	leaver.signal(syscall.SIGTERM)
	rest := without(ms, leaver)
	done := r.settle(rest, shardTakeover, "after SIGTERM of "+leaver.name)
	if err, ok := leaver.waitExit(10 * time.Second); !ok || err != nil {
		t.Errorf("%s after SIGTERM: exited %v, err %v; want exit 0", leaver.name, ok, err)
	}
	stops := map[string]shardEvent{}
	for _, e := range leaver.events(t) {
		if !e.start && e.at.After(sent) {
			stops[e.shard] = e
		}
	}
	var longest time.Duration
	for shard, s := range was {
		stop, ok := stops[shard]
		if !ok || stop.tok != s.tok {
			t.Errorf("%s: %s printed no stop for token %v after SIGTERM", shard, leaver.name, s.tok)
			continue
		}
		_, gap := r.takenOver(leaver, map[string]shardEvent{shard: s}, rest, stop.at)
		longest = max(longest, gap)
		if gap > shardHandoffGap {
			t.Errorf("%s: started elsewhere %v after %s stopped it, want at most %v (a handoff, not an expiry)", shard, gap, leaver.name, shardHandoffGap)
		}
	}
	t.Logf("%s left: the others ran all shards %v after SIGTERM; longest unowned gap of a moved shard %v",
		leaver.name, done.Sub(sent).Round(time.Millisecond), longest.Round(time.Millisecond))

	for _, m := range rest {
		m.signal(syscall.SIGTERM)
	}
	for _, m := range rest {
		if err, ok := m.waitExit(10 * time.Second); !ok || err != nil {
			t.Errorf("%s after SIGTERM: exited %v, err %v; want exit 0", m.name, ok, err)
		}
	}
	q := url.Values{"labelSelector": {lease.LabelShardSet + "=" + r.set}}
	code, body, err := r.c.Do(ctxFor(t, 10*time.Second), cluster.AdminToken, http.MethodGet,
		strings.TrimSuffix(leasesPath, "/")+"?"+q.Encode(), nil)
	if err != nil || code != http.StatusOK {
		t.Fatalf("listing the set's Leases: %d %v", code, err)
	}
	if strings.Contains(string(body), `"holderIdentity"`) {
		t.Errorf("Leases of the set remain after every member left: %.500s", body)
	}
	r.checkHistory()
}
