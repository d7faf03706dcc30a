package lease

import (
	"fmt"
	"net/http"
	"time"
)

// HealthCheck returns an error when this instance believes it holds the
// lease but its last successful renewal is older than the lease duration
// plus tolerance: its renewal goroutine is stuck and nothing has checked
// the deadline. A process in that state should be restarted; point a
// liveness probe at HealthHandler. It returns nil when the lease is not
// held or is being renewed on time. It does no I/O and changes nothing.
func (l *KubernetesLease) HealthCheck(tolerance time.Duration) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	t := l.ten
	if t == nil || t.ended {
		return nil
	}
	n := l.now()
	since := max(n.mono.Sub(t.start.mono), n.wall.Sub(t.start.wall))
	if since > l.s.TTL+tolerance {
		return fmt.Errorf("lease: %s believed held but last renewed %v ago (lease duration %v)", l.path, since.Round(time.Millisecond), l.s.TTL)
	}
	return nil
}

// HealthHandler serves check as an HTTP health endpoint: 200 "ok" when it
// returns nil, 503 with the error's text otherwise. For a lease:
//
//	http.Handle("/healthz/lease", lease.HealthHandler(func() error { return l.HealthCheck(5 * time.Second) }))
func HealthHandler(check func() error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if err := check(); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(w, err)
			return
		}
		fmt.Fprintln(w, "ok")
	})
}
