package lease

import (
	"reflect"
	"sync"
)

// busy is the set of lease instances on which a RunSingleton work may be
// running (ErrBusy), keyed by pointer. Leases that are not pointers are not
// tracked.
var busy = struct {
	mu sync.Mutex // guards m
	m  map[any]struct{}
}{m: map[any]struct{}{}}

func busyKey(l Lease) (any, bool) {
	v := reflect.ValueOf(l)
	if v.Kind() != reflect.Pointer {
		return nil, false
	}
	return v.Pointer(), true
}

// claim marks l busy; false when it already was.
func claim(l Lease) bool {
	k, ok := busyKey(l)
	if !ok {
		return true
	}
	busy.mu.Lock()
	defer busy.mu.Unlock()
	if _, taken := busy.m[k]; taken {
		return false
	}
	busy.m[k] = struct{}{}
	return true
}

// unclaim undoes claim.
func unclaim(l Lease) {
	if k, ok := busyKey(l); ok {
		busy.mu.Lock()
		delete(busy.m, k)
		busy.mu.Unlock()
	}
}
