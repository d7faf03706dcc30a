package leasetest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kubelease/lease"
)

// SemaphoreBackend makes the semaphores TestSemaphore checks. Its
// functions are called from the goroutine of the subtest whose t they are
// given.
type SemaphoreBackend struct {
	// New returns a new Semaphore with slots slots, held as owner, sharing
	// its slots with every other Semaphore New returned for the same t
	// (same SemaphoreSettings.Name and namespace, same slots). Its slot
	// Leases must all be free when a subtest first calls New: the simplest
	// way is a fresh semaphore name, or a fresh server, per t. TestSemaphore
	// releases and closes every Semaphore at the end of its subtest.
	New func(t *testing.T, owner string, slots int) *lease.Semaphore

	// Valid, if set, returns valid settings for a semaphore; InvalidSettings
	// spoils one field of them at a time and checks that NewSemaphore and
	// Validate refuse them. Nil skips InvalidSettings.
	Valid func(t *testing.T) lease.SemaphoreSettings
}

// TestSemaphore checks that the semaphores b makes behave as
// lease.Semaphore documents, one named subtest per behaviour, one after
// another:
//
//   - AtMostSlots: with N slots, N instances acquire, each on a slot of
//     its own (Slot, Token), and the N+1st gets false, nil and holds
//     nothing;
//   - ConcurrentAcquire: 2N instances acquiring at once: exactly N win,
//     on N distinct slots, the others get false, nil;
//   - HoldsOneSlot: Acquire twice on one instance is the same slot and the
//     same token, without taking a second slot;
//   - ReleaseFreesSlot: once Release returns, another instance's Acquire
//     takes the released slot at once, without waiting for anything, with
//     a token greater than the releaser's;
//   - ReleaseWakesWaiter: a contender blocked in Wait returns when a
//     holder releases, and its Acquire then succeeds;
//   - FencingPerSlot: every new tenure of a slot, by another instance or
//     the same one after its Release, has a token greater than the
//     previous tenure of that slot (lease.Token.Compare);
//   - ReleaseIdempotent: Release when nothing is held returns nil, twice
//     in a row returns nil, and a non-holder's Release leaves the holders
//     alone;
//   - RunSingleton: lease.RunSingleton over N=2 slots and 3 contenders
//     runs at most 2 works at once, on distinct slots, and starts the
//     third as soon as one of the running ones stops;
//   - InvalidSettings (needs b.Valid): Slots 0 and above lease.MaxSlots,
//     an empty or non-DNS-1123 Name, and a Name, Labels or SharedWatch in
//     the Lease template are refused by NewSemaphore and Validate with an
//     error matching lease.ErrInvalidSettings that names the value.
//
// It is shaped like TestLease: the same table runs against the fake
// Server and against a real kube-apiserver. Every wait (a call, a Wait, a
// work starting or stopping) is bounded by 10 s of real time, and no
// subtest sleeps: it waits for a call to return or for a work to say, on a
// channel, that it started or stopped.
func TestSemaphore(t *testing.T, b SemaphoreBackend) {
	t.Helper()
	if b.New == nil {
		t.Fatal("leasetest.TestSemaphore: SemaphoreBackend.New must be set")
	}
	for _, c := range semaphoreCases {
		t.Run(c.name, func(t *testing.T) {
			if c.name == "InvalidSettings" && b.Valid == nil {
				t.Skip("SemaphoreBackend.Valid is nil")
			}
			c.run(t, b)
		})
	}
}

// semaphoreCases is the table TestSemaphore runs, in order.
var semaphoreCases = []struct {
	name string
	run  func(t *testing.T, b SemaphoreBackend)
}{
	{"AtMostSlots", stAtMostSlots},
	{"ConcurrentAcquire", stConcurrentAcquire},
	{"HoldsOneSlot", stHoldsOneSlot},
	{"ReleaseFreesSlot", stReleaseFreesSlot},
	{"ReleaseWakesWaiter", stReleaseWakesWaiter},
	{"FencingPerSlot", stFencingPerSlot},
	{"ReleaseIdempotent", stReleaseIdempotent},
	{"RunSingleton", stRunSingleton},
	{"InvalidSettings", stInvalidSettings},
}

// newTableSemaphore makes a semaphore with b.New, and releases and closes
// it when the subtest ends.
func newTableSemaphore(t *testing.T, b SemaphoreBackend, owner string, slots int) *lease.Semaphore {
	t.Helper()
	s := b.New(t, owner, slots)
	if s == nil {
		t.Fatalf("New(%q, %d): got nil semaphore, want one", owner, slots)
	}
	if got := s.Slots(); got != slots {
		t.Fatalf("New(%q, %d): Slots() = %d, want %d", owner, slots, got, slots)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		if err := s.Release(ctx); err != nil {
			t.Logf("cleanup: Release(%q): %v", owner, err)
		}
		s.Close()
	})
	return s
}

// semHeld checks that s holds slot slot with token tok: CheckAlive, Slot
// and Token agree.
func semHeld(t *testing.T, s *lease.Semaphore, slot int, tok lease.Token, what string) {
	t.Helper()
	checkHeld(t, s, true, tok, what)
	if got, ok := s.Slot(); !ok || got != slot {
		t.Errorf("%s: Slot: got (%d, %v), want (%d, true)", what, got, ok, slot)
	}
}

// semFree checks that s holds nothing: CheckAlive, Slot and Token agree.
func semFree(t *testing.T, s *lease.Semaphore, what string) {
	t.Helper()
	checkHeld(t, s, false, lease.Token{}, what)
	if got, ok := s.Slot(); ok {
		t.Errorf("%s: Slot: got (%d, true), want (_, false)", what, got)
	}
}

// semAcquire acquires s and returns its slot and token.
func semAcquire(t *testing.T, s *lease.Semaphore, what string) (int, lease.Token) {
	t.Helper()
	tok := mustAcquire(t, s, what)
	slot, ok := s.Slot()
	if !ok {
		t.Fatalf("%s: Slot after a successful Acquire: got (_, false), want a slot", what)
	}
	if slot < 0 || slot >= s.Slots() {
		t.Fatalf("%s: Slot: got %d, want 0..%d", what, slot, s.Slots()-1)
	}
	return slot, tok
}

// owners returns n owner names: "a", "b", ...
func owners(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = string(rune('a' + i))
	}
	return out
}

func stAtMostSlots(t *testing.T, b SemaphoreBackend) {
	const n = 3
	names := owners(n + 1)
	sems := make([]*lease.Semaphore, n+1)
	for i, o := range names {
		sems[i] = newTableSemaphore(t, b, o, n)
	}
	slots := map[int]string{}
	toks := make([]lease.Token, n)
	for i := range n {
		slot, tok := semAcquire(t, sems[i], names[i])
		if other, dup := slots[slot]; dup {
			t.Fatalf("%s: slot %d is held by %s too", names[i], slot, other)
		}
		slots[slot] = names[i]
		toks[i] = tok
	}
	last := sems[n]
	tok, ok, err := last.AcquireWithToken(callCtx(t))
	switch {
	case err != nil:
		t.Fatalf("%s, with all %d slots held: AcquireWithToken: %v", names[n], n, err)
	case ok:
		s, _ := last.Slot()
		t.Fatalf("%s, with all %d slots held: AcquireWithToken: got true (slot %d, token %v), want false", names[n], n, s, tok)
	case !tok.IsZero():
		t.Errorf("%s: AcquireWithToken: got token %v with false, want zero", names[n], tok)
	}
	mustNotAcquire(t, last, names[n]+", again")
	semFree(t, last, names[n])
	for i := range n {
		slot, _ := sems[i].Slot()
		semHeld(t, sems[i], slot, toks[i], names[i]+" after the extra contender")
	}
}

func stConcurrentAcquire(t *testing.T, b SemaphoreBackend) {
	const n, contenders = 3, 6
	names := owners(contenders)
	sems := make([]*lease.Semaphore, contenders)
	for i, o := range names {
		sems[i] = newTableSemaphore(t, b, o, n)
	}
	type result struct {
		tok lease.Token
		ok  bool
		err error
	}
	results := make([]result, contenders)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i, s := range sems {
		ctx := callCtx(t)
		wg.Go(func() {
			<-start
			tok, ok, err := s.AcquireWithToken(ctx)
			results[i] = result{tok, ok, err}
		})
	}
	close(start)
	wg.Wait()
	held := map[int]string{}
	for i, r := range results {
		switch {
		case r.err != nil:
			t.Errorf("%s: AcquireWithToken: %v", names[i], r.err)
		case r.ok:
			slot, ok := sems[i].Slot()
			if !ok {
				t.Errorf("%s: won but Slot says none", names[i])
				continue
			}
			if other, dup := held[slot]; dup {
				t.Errorf("%s and %s both hold slot %d", other, names[i], slot)
			}
			held[slot] = names[i]
			semHeld(t, sems[i], slot, r.tok, names[i])
		default:
			semFree(t, sems[i], names[i])
		}
	}
	if len(held) != n {
		t.Errorf("instances that acquired: got %d (%v), want %d", len(held), held, n)
	}
}

func stHoldsOneSlot(t *testing.T, b SemaphoreBackend) {
	const n = 2
	a := newTableSemaphore(t, b, "a", n)
	slot, tok := semAcquire(t, a, "a")
	for i := range 3 {
		what := fmt.Sprintf("a, Acquire %d more", i+1)
		ok, err := a.Acquire(callCtx(t))
		if err != nil || !ok {
			t.Fatalf("%s: Acquire: got (%v, %v), want (true, nil)", what, ok, err)
		}
		slot2, tok2 := semAcquire(t, a, what)
		if slot2 != slot || tok2 != tok {
			t.Fatalf("%s: got slot %d token %v, want slot %d token %v", what, slot2, tok2, slot, tok)
		}
	}
	// a took one slot only: another instance takes the other, a third
	// finds none.
	c := newTableSemaphore(t, b, "c", n)
	slotC, _ := semAcquire(t, c, "c, with a holding one of 2 slots")
	if slotC == slot {
		t.Fatalf("c got slot %d, which a holds", slotC)
	}
	mustNotAcquire(t, newTableSemaphore(t, b, "d", n), "d, with a and c holding 2 slots")
	semHeld(t, a, slot, tok, "a at the end")
}

func stReleaseFreesSlot(t *testing.T, b SemaphoreBackend) {
	const n = 2
	a := newTableSemaphore(t, b, "a", n)
	c := newTableSemaphore(t, b, "c", n)
	d := newTableSemaphore(t, b, "d", n)
	slotA, tokA := semAcquire(t, a, "a")
	semAcquire(t, c, "c")
	mustNotAcquire(t, d, "d, both slots held")

	// Once a's Release has returned, nobody holds slot slotA: d's next
	// Acquire must take it, whatever d's watch has or has not seen yet.
	mustRelease(t, a, "a")
	semFree(t, a, "a after Release")
	slotD, tokD := semAcquire(t, d, "d, right after a's Release returned")
	if slotD != slotA {
		t.Errorf("d took slot %d, want slot %d, the one a released", slotD, slotA)
	}
	assertNewer(t, tokD, tokA, "d's token on a's old slot")
	mustNotAcquire(t, a, "a, both slots held again")
}

func stReleaseWakesWaiter(t *testing.T, b SemaphoreBackend) {
	const n = 2
	a := newTableSemaphore(t, b, "a", n)
	c := newTableSemaphore(t, b, "c", n)
	d := newTableSemaphore(t, b, "d", n)
	semAcquire(t, a, "a")
	semAcquire(t, c, "c")
	mustNotAcquire(t, d, "d, both slots held")

	// d's Wait gets longer than the wait for it below, so that a Wait that
	// returns only at its context's end is not taken for a wake-up.
	wctx, cancel := context.WithTimeout(context.Background(), 3*waitTimeout)
	defer cancel()
	woke := make(chan error, 1)
	go func() { woke <- d.Wait(wctx) }()
	// Wait must not return while both slots are held by live holders. A
	// premature return is caught here only when it happens before the
	// Release below (no sleeping), or by d's Acquire before the Release.
	select {
	case err := <-woke:
		t.Fatalf("d: Wait returned (%v) while both slots are held, want it to block", err)
	default:
	}
	mustNotAcquire(t, d, "d, still both slots held")
	mustRelease(t, c, "c")
	select {
	case err := <-woke:
		if err != nil {
			t.Fatalf("d: Wait after c's Release: %v", err)
		}
	case <-time.After(waitTimeout):
		t.Fatalf("d: Wait did not return within %v of c's Release", waitTimeout)
	}
	semAcquire(t, d, "d, woken")
}

func stFencingPerSlot(t *testing.T, b SemaphoreBackend) {
	const n = 2
	names := owners(n + 1)
	sems := make([]*lease.Semaphore, n+1)
	for i, o := range names {
		sems[i] = newTableSemaphore(t, b, o, n)
	}
	last := map[int]lease.Token{} // slot → token of its latest tenure
	holder := map[int]int{}       // slot → index in sems
	take := func(i int, what string) int {
		t.Helper()
		slot, tok := semAcquire(t, sems[i], what)
		if prev, ok := last[slot]; ok {
			assertNewer(t, tok, prev, fmt.Sprintf("%s: token of slot %d", what, slot))
		}
		if h, ok := holder[slot]; ok && h != i && sems[h].CheckAlive() {
			if hs, _ := sems[h].Slot(); hs == slot {
				t.Fatalf("%s: took slot %d, which %s still holds", what, slot, names[h])
			}
		}
		last[slot], holder[slot] = tok, i
		return slot
	}
	take(0, "a")
	take(1, "b")
	idle := 2
	for round := range 6 {
		// Release the holder of slot round%n; alternately the idle
		// instance and the releaser itself take the freed slot.
		slot := round % n
		h := holder[slot]
		what := fmt.Sprintf("round %d", round)
		mustRelease(t, sems[h], fmt.Sprintf("%s: %s", what, names[h]))
		taker := idle
		if round%2 == 1 {
			taker = h
		}
		got := take(taker, fmt.Sprintf("%s: %s", what, names[taker]))
		if got != slot {
			t.Errorf("%s: %s took slot %d, want %d (the only free one)", what, names[taker], got, slot)
		}
		if taker == idle {
			idle = h
		}
	}
}

func stReleaseIdempotent(t *testing.T, b SemaphoreBackend) {
	const n = 1
	a := newTableSemaphore(t, b, "a", n)
	c := newTableSemaphore(t, b, "c", n)
	mustRelease(t, a, "a, before any Acquire")
	mustRelease(t, a, "a, before any Acquire, again")
	semFree(t, a, "a, before any Acquire")

	slot, tok := semAcquire(t, a, "a")
	mustRelease(t, c, "c, never held")
	mustNotAcquire(t, c, "c, while a holds")
	mustRelease(t, c, "c, after a failed Acquire")
	semHeld(t, a, slot, tok, "a after c's Releases")

	mustRelease(t, a, "a, first")
	mustRelease(t, a, "a, second")
	semFree(t, a, "a after two Releases")
	tok2 := mustAcquire(t, a, "a again")
	assertNewer(t, tok2, tok, "a's token after its Release")
}

// semWork is what a work under RunSingleton reports: it started or
// stopped, on which slot.
type semWork struct {
	who   int
	slot  int
	start bool
}

func stRunSingleton(t *testing.T, b SemaphoreBackend) {
	const n, contenders = 2, 3
	names := owners(contenders)
	sems := make([]*lease.Semaphore, contenders)
	for i, o := range names {
		sems[i] = newTableSemaphore(t, b, o, n)
	}
	var (
		mu      sync.Mutex
		running = map[int]int{} // contender → slot, while its work runs
		maxRun  int
		errs    []string
	)
	events := make(chan semWork, 64)
	attempted := make([]chan struct{}, contenders) // closed at the first Acquire that found no free slot
	cancels := make([]context.CancelFunc, contenders)
	done := make([]chan error, contenders)
	for i, s := range sems {
		ctx, cancel := context.WithCancel(context.Background())
		cancels[i], done[i] = cancel, make(chan error, 1)
		attempted[i] = make(chan struct{})
		var once sync.Once
		go func() {
			done[i] <- lease.RunSingleton(ctx, s, func(wctx context.Context) error {
				slot, ok := s.Slot()
				mu.Lock()
				if !ok {
					errs = append(errs, fmt.Sprintf("%s: work runs but Slot says none", names[i]))
				}
				for j, other := range running {
					if other == slot {
						errs = append(errs, fmt.Sprintf("%s: work runs on slot %d while %s's does", names[i], slot, names[j]))
					}
				}
				running[i] = slot
				maxRun = max(maxRun, len(running))
				mu.Unlock()
				events <- semWork{i, slot, true}
				<-wctx.Done()
				mu.Lock()
				delete(running, i)
				mu.Unlock()
				events <- semWork{i, slot, false}
				return nil
			}, lease.SingletonOptions{OnAttempt: func(err error) {
				if err == nil {
					once.Do(func() { close(attempted[i]) })
				}
			}})
		}()
	}
	stopAll := func() {
		for i := range contenders {
			cancels[i]()
		}
		for i := range contenders {
			select {
			case err := <-done[i]:
				if err != nil && !errors.Is(err, context.Canceled) {
					t.Errorf("%s: RunSingleton: %v, want context.Canceled", names[i], err)
				}
				done[i] <- nil // for a second stopAll
			case <-time.After(waitTimeout):
				t.Errorf("%s: RunSingleton did not return within %v of its context's end", names[i], waitTimeout)
			}
		}
	}
	t.Cleanup(stopAll)
	next := func(what string) semWork {
		t.Helper()
		select {
		case e := <-events:
			return e
		case <-time.After(waitTimeout):
			t.Fatalf("%s: no work started or stopped within %v", what, waitTimeout)
			return semWork{}
		}
	}

	// Two works start; the third contender waits.
	started := map[int]int{}
	for len(started) < n {
		e := next("waiting for the first two works")
		if !e.start {
			t.Fatalf("%s's work stopped before the first two started", names[e.who])
		}
		started[e.who] = e.slot
	}
	var waiting int
	for i := range contenders {
		if _, ok := started[i]; !ok {
			waiting = i
		}
	}
	mustNotAcquire(t, newTableSemaphore(t, b, "z", n), "z, with two works running")
	// The waiting contender has found no free slot: from now on it waits
	// (lease.Waker) for a slot to be freed.
	select {
	case <-attempted[waiting]:
	case <-time.After(waitTimeout):
		t.Fatalf("%s: no failed Acquire within %v while two works run", names[waiting], waitTimeout)
	}

	// Stop one running contender: its work stops, and the waiting one's
	// starts on the slot it freed.
	var stop int
	for i := range started {
		stop = i
		break
	}
	cancels[stop]()
	for stopped, woke := false, false; !stopped || !woke; {
		e := next(fmt.Sprintf("after stopping %s (its work stopped: %v; %s's work started: %v)", names[stop], stopped, names[waiting], woke))
		switch {
		case !e.start && e.who == stop:
			stopped = true
		case e.start && e.who == waiting:
			if e.slot != started[stop] {
				t.Errorf("%s's work started on slot %d, want %d (freed by %s)", names[waiting], e.slot, started[stop], names[stop])
			}
			woke = true
		default:
			t.Fatalf("unexpected event after stopping %s: %+v", names[stop], e)
		}
	}
	stopAll()
	mu.Lock()
	defer mu.Unlock()
	for _, e := range errs {
		t.Error(e)
	}
	if maxRun > n {
		t.Errorf("works running at once: up to %d, want at most %d", maxRun, n)
	}
}

func stInvalidSettings(t *testing.T, b SemaphoreBackend) {
	valid := b.Valid(t)
	if err := valid.Validate(); err != nil {
		t.Fatalf("Valid(t).Validate: %v; want nil", err)
	}
	cases := []struct {
		name  string
		spoil func(*lease.SemaphoreSettings)
		want  string // in the error: the field and its value
	}{
		{"Slots0", func(s *lease.SemaphoreSettings) { s.Slots = 0 }, "Slots 0"},
		{"SlotsNegative", func(s *lease.SemaphoreSettings) { s.Slots = -2 }, "Slots -2"},
		{"SlotsAboveMax", func(s *lease.SemaphoreSettings) { s.Slots = lease.MaxSlots + 1 }, fmt.Sprintf("Slots %d", lease.MaxSlots+1)},
		{"NameEmpty", func(s *lease.SemaphoreSettings) { s.Name = "" }, "Name is empty"},
		{"NameNotDNSLabel", func(s *lease.SemaphoreSettings) { s.Name = "Build_Pool" }, `Name "Build_Pool"`},
		{"NameWithDot", func(s *lease.SemaphoreSettings) { s.Name = "build.pool" }, `Name "build.pool"`},
		{"NameTooLong", func(s *lease.SemaphoreSettings) { s.Name = strings.Repeat("a", 64) }, `Name "` + strings.Repeat("a", 64) + `"`},
		{"LeaseName", func(s *lease.SemaphoreSettings) { s.Lease.Name = "mine" }, `Lease.Name "mine"`},
		{"LeaseLabels", func(s *lease.SemaphoreSettings) { s.Lease.Labels = map[string]string{"team": "x"} }, "Lease.Labels map[team:x]"},
		{"LeaseOwnerEmpty", func(s *lease.SemaphoreSettings) { s.Lease.Owner = "" }, "Lease.Owner"},
		{"LeaseTTLTooShort", func(s *lease.SemaphoreSettings) { s.Lease.TTL = time.Millisecond }, "Lease.TTL 1ms"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := valid
			s.Lease.Labels = nil
			c.spoil(&s)
			for _, check := range []struct {
				what string
				err  error
			}{
				{"Validate", s.Validate()},
				{"NewSemaphore", newSemaphoreErr(s)},
			} {
				switch err := check.err; {
				case err == nil:
					t.Errorf("%s: got nil, want an error naming %q", check.what, c.want)
				case !errors.Is(err, lease.ErrInvalidSettings):
					t.Errorf("%s: %v: does not match ErrInvalidSettings", check.what, err)
				case !strings.Contains(err.Error(), c.want):
					t.Errorf("%s: %q does not name %q", check.what, err, c.want)
				case strings.Contains(err.Error(), "\n"):
					t.Errorf("%s: %q is not one line", check.what, err)
				}
			}
		})
	}
	// Several problems are all named, in one error.
	s := valid
	s.Slots, s.Name = 0, "Bad_Name"
	err := s.Validate()
	for _, want := range []string{"Slots 0", `Name "Bad_Name"`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate with Slots 0 and Name Bad_Name: %v; want it to name %q", err, want)
		}
	}
}

// newSemaphoreErr returns NewSemaphore's error for s, closing the
// Semaphore if it made one.
func newSemaphoreErr(s lease.SemaphoreSettings) error {
	sem, err := lease.NewSemaphore(s)
	if sem != nil {
		sem.Close()
	}
	return err
}
