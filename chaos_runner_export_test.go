package lease

// WouldCheckAlive reports what CheckAlive would return now, and the token of
// the tenure it would report, without ending a tenure whose deadline has
// passed (CheckAlive does, and so runs OnLost). The runner campaign's
// checker uses it so that it is never the one that notices a deadline: the
// runner must notice by itself.
func WouldCheckAlive(l *KubernetesLease) (Token, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	t := l.ten
	if t == nil || t.ended || !l.within(t.start) {
		return Token{}, false
	}
	return t.token, true
}
