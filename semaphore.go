package lease

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/kubelease/lease/internal/wire"
)

// MaxSlots caps SemaphoreSettings.Slots.
const MaxSlots = 1000

// SemaphoreSettings configure a Semaphore. A SemaphoreSettings value is
// copied by NewSemaphore; changing it afterwards has no effect.
type SemaphoreSettings struct {
	// Name names the semaphore: every process whose Semaphore has this
	// name (in the same namespace) shares its slots. It must be a DNS-1123
	// label (lower case letters, digits and '-', at most 63 characters);
	// it labels the slot Leases (LabelSemaphore) and starts their names
	// (SlotLeaseName).
	Name string
	// Slots is how many holders may hold the semaphore at once, from 1 to
	// MaxSlots. Every process must be given the same number: a process
	// given more uses slots the others do not know of.
	Slots int
	// Lease is the template for the slot Leases, as ShardSettings.Lease
	// is for a shard set's: Owner (unique per live process) and Config are
	// required; Name, Labels and SharedWatch must be left empty.
	Lease Settings
}

// Validate reports every invalid field of s, naming the field and its
// value, on one line. The error matches ErrInvalidSettings.
func (s SemaphoreSettings) Validate() error {
	problems := setNameProblems("Name", s.Name)
	if s.Slots < 1 || s.Slots > MaxSlots {
		problems = append(problems, fmt.Sprintf("Slots %d is not between 1 and MaxSlots %d", s.Slots, MaxSlots))
	}
	problems = append(problems, templateProblems(s.Lease)...)
	if len(problems) == 0 {
		return nil
	}
	return fmt.Errorf("%w: semaphore: %s", ErrInvalidSettings, strings.Join(problems, "; "))
}

// Semaphore is a counting semaphore: at most Slots processes hold it at
// once (Consul's lock -n). Each slot is a Lease (SlotLeaseName) with the
// guarantees of a KubernetesLease, so each holder has a slot of its own and
// that slot's fencing token; a Semaphore instance holds at most one slot.
//
// A Semaphore is a Lease: Acquire takes a free slot (trying first the slot
// its Owner hashes to, so that contenders spread out, and skipping the
// slots that one list of them shows held), CheckAlive, OnLost and Release act on
// the slot held. It is also a Waker (a standby wakes when any slot may be
// free) and a ReleaseHooker, so RunSingleton runs work under it: N
// RunSingletons on N processes run at once, the N+1st waits for a slot.
//
// Its standbys (Wait) listen to one NamespaceWatch of its own (label
// LabelSemaphore), which needs list and watch on leases; when list is
// refused, Acquire reads each slot instead and Wait watches each slot
// alone. Close it when done.
type Semaphore struct {
	s     SemaphoreSettings
	watch *NamespaceWatch
	slots []*KubernetesLease
	first int // the slot tried first

	op chan struct{} // serializes Acquire and Release

	mu    sync.Mutex
	held  int                // the slot of the current or last tenure; -1 before the first
	stop  context.CancelFunc // cancels the Acquire in flight; nil when none
	dirty map[int]bool       // slots whose acquiring write had an unknown outcome
	hooks map[uint64]func(ctx context.Context) error
	next  uint64
}

var (
	_ Lease         = (*Semaphore)(nil)
	_ Waker         = (*Semaphore)(nil)
	_ ReleaseHooker = (*Semaphore)(nil)
)

// NewSemaphore validates s and returns a Semaphore for it. No request is
// made until Acquire, Wait or Holders. The error matches
// ErrInvalidSettings and names every invalid field and its value.
func NewSemaphore(s SemaphoreSettings) (*Semaphore, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	sl, err := newSetLeases(s.Lease, LabelSemaphore, s.Name)
	if err != nil {
		return nil, err
	}
	sem := &Semaphore{
		s:     s,
		watch: sl.watch,
		op:    make(chan struct{}, 1),
		held:  -1,
		dirty: map[int]bool{},
		hooks: map[uint64]func(context.Context) error{},
	}
	for i := range s.Slots {
		l, err := sl.lease(SlotLeaseName(s.Name, i), RoleSlot)
		if err != nil {
			return nil, err
		}
		sem.slots = append(sem.slots, l)
	}
	sum := sha256.Sum256([]byte(s.Lease.Owner))
	sem.first = int(binary.BigEndian.Uint16(sum[:2])) % s.Slots
	return sem, nil
}

// Close stops the Semaphore's watch. Release first; Close is idempotent.
func (sem *Semaphore) Close() { sem.watch.Close() }

// Slots returns how many slots the semaphore has.
func (sem *Semaphore) Slots() int { return len(sem.slots) }

// Slot returns the slot this instance holds (from 0), and whether it holds
// one (CheckAlive).
func (sem *Semaphore) Slot() (int, bool) {
	sem.mu.Lock()
	i := sem.held
	sem.mu.Unlock()
	if i < 0 || !sem.slots[i].CheckAlive() {
		return 0, false
	}
	return i, true
}

// Token returns the fencing token of the slot held, and whether one is
// held. Tokens of different slots are tokens of different Leases: fence
// per slot (the slot from Slot, or a store per slot).
func (sem *Semaphore) Token() (Token, bool) {
	sem.mu.Lock()
	i := sem.held
	sem.mu.Unlock()
	if i < 0 {
		return Token{}, false
	}
	return sem.slots[i].Token()
}

// Holders returns what this process knows of each slot, by slot: as its
// watch has it, else after one GET per slot.
func (sem *Semaphore) Holders(ctx context.Context) ([]HolderInfo, error) {
	sem.watch.Start()
	out := make([]HolderInfo, len(sem.slots))
	for i, l := range sem.slots {
		h, err := l.Holder(ctx)
		if err != nil {
			return nil, fmt.Errorf("lease: semaphore %s: slot %d: %w", sem.s.Name, i, err)
		}
		out[i] = h
	}
	return out, nil
}

func (sem *Semaphore) lock(ctx context.Context) error {
	select {
	case sem.op <- struct{}{}:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

func (sem *Semaphore) unlock() { <-sem.op }

// Acquire takes a free slot; see AcquireWithToken.
func (sem *Semaphore) Acquire(ctx context.Context) (bool, error) {
	_, ok, err := sem.AcquireWithToken(ctx)
	return ok, err
}

// AcquireWithToken takes a free slot and returns its tenure's token. It
// returns at once, without I/O, the token of the slot this instance holds
// already. Otherwise it lists the slot Leases (one request) and tries the
// slots one after another, starting with the one its Owner hashes to and
// skipping the ones the list shows held by a live other holder (expiry
// rules (a) and (b)), until one Acquire succeeds: true; false, nil
// when every slot is held by others; an error when a slot's answer could
// not be decided and no other slot was taken. A slot whose acquiring write
// had an unknown outcome is released (deleted if it names us) once another
// slot is taken, and by Release.
func (sem *Semaphore) AcquireWithToken(ctx context.Context) (Token, bool, error) {
	if err := sem.lock(ctx); err != nil {
		return Token{}, false, err
	}
	defer sem.unlock()
	sem.mu.Lock()
	i := sem.held
	sem.mu.Unlock()
	if i >= 0 {
		if tok, ok := sem.slots[i].Token(); ok {
			return tok, true, nil
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sem.mu.Lock()
	sem.stop = cancel
	sem.mu.Unlock()
	defer func() {
		sem.mu.Lock()
		sem.stop = nil
		sem.mu.Unlock()
	}()
	var errs []error
	taken := sem.othersHold(ctx)
	for k := range sem.slots {
		i := (sem.first + k) % len(sem.slots)
		l := sem.slots[i]
		if taken != nil && taken[i] {
			continue
		}
		tok, ok, err := l.AcquireWithToken(ctx)
		if err != nil {
			errs = append(errs, fmt.Errorf("slot %d: %w", i, err))
			sem.mu.Lock()
			sem.dirty[i] = true
			sem.mu.Unlock()
			if ctx.Err() != nil {
				break
			}
			continue
		}
		if ok {
			sem.mu.Lock()
			sem.held = i
			delete(sem.dirty, i)
			sem.mu.Unlock()
			sem.cleanDirty(ctx)
			return tok, true, nil
		}
	}
	if len(errs) > 0 {
		return Token{}, false, fmt.Errorf("lease: semaphore %s: %w", sem.s.Name, errors.Join(errs...))
	}
	return Token{}, false, nil
}

// othersHold lists the slot Leases (one request) and reports, by slot,
// which are held by another holder that may not be taken over yet. It
// returns nil when the list failed (refused, say): every slot is then
// tried.
func (sem *Semaphore) othersHold(ctx context.Context) []bool {
	// Bounded as one of Acquire's requests is: TTL less the margin.
	ttl := sem.slots[0].s.TTL
	ctx, cancel := withTimeout(ctx, sem.slots[0].clock, ttl-margin(ttl))
	defer cancel()
	items, rv, err := sem.watch.fetch(ctx)
	if err != nil {
		return nil
	}
	byName := make(map[string]*wire.Lease, len(items))
	for _, obj := range items {
		byName[obj.Name] = obj
	}
	out := make([]bool, len(sem.slots))
	for i, l := range sem.slots {
		out[i] = l.heldByOtherListed(byName[l.s.Name], rv)
	}
	return out
}

// cleanDirty releases the slots whose acquiring write had an unknown
// outcome, other than the one held: each deletes its record if it names us.
func (sem *Semaphore) cleanDirty(ctx context.Context) {
	sem.mu.Lock()
	var dirty []int
	for i := range sem.dirty {
		if i != sem.held {
			dirty = append(dirty, i)
		}
	}
	sem.mu.Unlock()
	for _, i := range dirty {
		if sem.slots[i].Release(context.WithoutCancel(ctx)) == nil {
			sem.mu.Lock()
			delete(sem.dirty, i)
			sem.mu.Unlock()
		}
	}
}

// CheckAlive reports whether this instance holds a slot right now. It does
// no I/O.
func (sem *Semaphore) CheckAlive() bool {
	_, ok := sem.Slot()
	return ok
}

// OnLost registers handler for every tenure of any slot that ends without
// a voluntary Release, as Lease.OnLost says.
func (sem *Semaphore) OnLost(handler func(reason error)) (unregister func()) {
	if handler == nil {
		return func() {}
	}
	unregs := make([]func(), len(sem.slots))
	for i, l := range sem.slots {
		unregs[i] = l.OnLost(handler)
	}
	return func() {
		for _, u := range unregs {
			u()
		}
	}
}

// BeforeRelease registers hook, called by every later Release before it
// gives the slot up, as ReleaseHooker says.
func (sem *Semaphore) BeforeRelease(hook func(ctx context.Context) error) (unregister func()) {
	if hook == nil {
		return func() {}
	}
	sem.mu.Lock()
	defer sem.mu.Unlock()
	id := sem.next
	sem.next++
	sem.hooks[id] = hook
	return func() {
		sem.mu.Lock()
		defer sem.mu.Unlock()
		delete(sem.hooks, id)
	}
}

// Release gives up the slot held, as KubernetesLease.Release does, so that
// a waiting contender takes it at once, and cleans up any slot whose
// acquiring write had an unknown outcome. It returns nil when no slot is
// held, and is idempotent.
func (sem *Semaphore) Release(ctx context.Context) error {
	sem.mu.Lock()
	hooks := callbacksLocked(sem.hooks)
	sem.mu.Unlock()
	for _, h := range hooks {
		if err := h(ctx); err != nil {
			return err
		}
	}
	sem.mu.Lock()
	if sem.stop != nil {
		sem.stop() // do not wait behind an Acquire in flight
	}
	sem.mu.Unlock()
	if err := sem.lock(context.WithoutCancel(ctx)); err != nil {
		return err
	}
	defer sem.unlock()
	sem.mu.Lock()
	i := sem.held
	sem.mu.Unlock()
	var err error
	if i >= 0 {
		err = sem.slots[i].Release(ctx)
	}
	sem.cleanDirty(ctx)
	return err
}

// Wait returns when an Acquire may succeed: at once when a slot was never
// seen, or may be taken now, else when any slot is seen released, deleted
// or expired. It returns ctx's error when ctx ends first. Wait implements
// Waker; its standbys listen to the Semaphore's watch.
func (sem *Semaphore) Wait(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	wctx, cancel := context.WithCancel(ctx)
	woke := make(chan struct{}, len(sem.slots))
	var wg sync.WaitGroup
	defer func() {
		cancel() // the other slots' Waits return, then
		wg.Wait()
	}()
	for _, l := range sem.slots {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if l.Wait(wctx) == nil {
				woke <- struct{}{}
			}
		}()
	}
	select {
	case <-woke:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
