package lease

import "time"

// CheckAlive reports whether this instance holds the lease now. It does no
// I/O: it checks that both the monotonic and the wall-clock time elapsed
// since the stamp of the last successful write are below TTL minus the
// deadline margin. The first failed check ends the tenure for good (OnLost
// handlers then run with LostDeadline), even if a renewal answer arrives
// later or a clock steps back.
func (l *KubernetesLease) CheckAlive() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.aliveLocked()
}

// Token returns the fencing token of the current tenure. ok is true exactly
// when CheckAlive would return true.
func (l *KubernetesLease) Token() (Token, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.aliveLocked() {
		return Token{}, false
	}
	return l.ten.token, true
}

func (l *KubernetesLease) aliveLocked() bool {
	t := l.ten
	if t == nil || t.ended {
		return false
	}
	if !l.within(t.start) {
		l.endLocked(t, LostDeadline, "", t.lastErr)
		return false
	}
	return true
}

// within reports whether now is before the deadline of a write stamped st,
// on both the monotonic and the wall clock.
func (l *KubernetesLease) within(st stamp) bool {
	if l.ignoresDeadline() {
		return true
	}
	n := l.now()
	limit := l.s.TTL - margin(l.s.TTL)
	return n.mono.Sub(st.mono) < limit && n.wall.Sub(st.wall) < limit
}

// remaining is the time left before the deadline of st: the smaller of
// what the monotonic and the wall clock say.
func (l *KubernetesLease) remaining(st stamp) time.Duration {
	if l.ignoresDeadline() {
		return l.s.TTL
	}
	n := l.now()
	return l.s.TTL - margin(l.s.TTL) - max(n.mono.Sub(st.mono), n.wall.Sub(st.wall))
}

// endLocked ends tenure t because it was lost, and runs the OnLost
// handlers, each on its own goroutine, after CheckAlive has turned false.
func (l *KubernetesLease) endLocked(t *tenure, reason LostReason, holder string, err error) {
	if t.ended {
		return
	}
	if reason == LostDeadline && err == nil {
		err = errTimeout
	}
	t.ended = true
	lost := &LostError{Reason: reason, Holder: holder, Token: t.token, Err: err}
	t.lost = lost
	t.cancel()
	l.s.Observer.Lost(reason)
	go l.log.Warn("kubelease: lost", "reason", string(reason), "holder", holder, "err", err) // never log under l.mu
	for _, h := range l.handlers {
		go h(lost)
	}
	l.postEventLocked(t.obj, eventWarning, EventReasonLeaseLost, lostLease(l.s.Owner, reason, holder))
	l.emit("lost")
}
