package leasetest

import (
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/kubelease/lease"
)

// scMicroTimeRoundTrip: renewTime and acquireTime are stored exactly as
// written, in UTC at microsecond precision, whatever the clock's zone;
// leaseDurationSeconds is the TTL rounded up; and the server refuses a
// MicroTime with another number of digits.
func scMicroTimeRoundTrip(sc *scenario) {
	a := sc.newLease("conf-a", func(s *lease.Settings) { s.TTL, s.RenewalInterval = 1500*time.Millisecond, 0 })
	start := time.Date(2026, 11, 24, 13, 4, 5, 123456789, time.FixedZone("UTC+1", 3600))
	a.clk.SetTime(start)
	sc.acquire(a)
	var raw struct {
		Spec struct {
			AcquireTime          string `json:"acquireTime"`
			RenewTime            string `json:"renewTime"`
			LeaseDurationSeconds int32  `json:"leaseDurationSeconds"`
		} `json:"spec"`
	}
	data := sc.rest.getRaw(sc.name)
	if err := json.Unmarshal(data, &raw); err != nil {
		sc.t.Fatalf("decoding the stored Lease: %v: %s", err, data)
	}
	const want = "2026-11-24T12:04:05.123456Z"
	if raw.Spec.RenewTime != want || raw.Spec.AcquireTime != want {
		sc.t.Errorf("stored renewTime, acquireTime: got %q, %q, want %q", raw.Spec.RenewTime, raw.Spec.AcquireTime, want)
	}
	if raw.Spec.LeaseDurationSeconds != 2 {
		sc.t.Errorf("leaseDurationSeconds for TTL 1.5s: got %d, want 2", raw.Spec.LeaseDurationSeconds)
	}
	if rec := sc.rest.mustGet(sc.name); !rec.Spec.RenewTime.Time.Equal(start.Truncate(time.Microsecond)) {
		sc.t.Errorf("decoded renewTime: got %v, want %v", rec.Spec.RenewTime, start.Truncate(time.Microsecond))
	}

	// The wire format as a third party sees it: a zone offset is accepted
	// and stored in UTC; three digits are refused.
	for _, tc := range []struct {
		renew, stored string
		code          int
	}{
		{"2026-11-24T13:04:05.000001+01:00", "2026-11-24T12:04:05.000001Z", http.StatusCreated},
		{"2026-11-24T12:04:05.123Z", "", http.StatusBadRequest},
	} {
		name := uniqueName("microtime")
		sc.t.Cleanup(func() { sc.rest.remove(name) })
		body := json.RawMessage(`{"apiVersion":"coordination.k8s.io/v1","kind":"Lease","metadata":{"name":"` + name +
			`"},"spec":{"renewTime":"` + tc.renew + `"}}`)
		code, data := sc.rest.do(http.MethodPost, "/apis/coordination.k8s.io/v1/namespaces/"+sc.ns+"/leases", body)
		if code != tc.code {
			sc.t.Errorf("POST with renewTime %q: got %d, want %d: %s", tc.renew, code, tc.code, data)
			continue
		}
		if tc.stored == "" {
			continue
		}
		if err := json.Unmarshal(sc.rest.getRaw(name), &raw); err != nil || raw.Spec.RenewTime != tc.stored {
			sc.t.Errorf("POST with renewTime %q: stored %q (%v), want %q", tc.renew, raw.Spec.RenewTime, err, tc.stored)
		}
	}
}

// scNoAccess403: a user without access to Leases gets an error carrying
// the 403, not false.
func scNoAccess403(sc *scenario) {
	if sc.b.NoAccess == nil {
		sc.t.Skip("ConformanceBackend.NoAccess is nil")
	}
	cfg := sc.b.NoAccess(sc.t)
	a := sc.newLease("conf-a", func(s *lease.Settings) { s.Config = cfg })
	ok, err := a.Acquire(sc.ctx())
	var apiErr *lease.APIError
	if ok || !errors.As(err, &apiErr) {
		sc.t.Fatalf("Acquire without access: got (%v, %v), want (false, a *lease.APIError)", ok, err)
	}
	if apiErr.StatusCode != http.StatusForbidden || apiErr.Reason != "Forbidden" || apiErr.Kind != "leases" {
		sc.t.Errorf("APIError: got %d %s kind %q, want 403 Forbidden kind %q: %v", apiErr.StatusCode, apiErr.Reason, apiErr.Kind, "leases", err)
	}
	if a.CheckAlive() {
		sc.t.Errorf("CheckAlive: got true, want false")
	}
	if err := a.Release(sc.ctx()); err != nil {
		sc.t.Errorf("Release of a lease never held: got %v, want nil", err)
	}
	if rec := sc.rest.get(sc.name); rec != nil {
		sc.t.Errorf("lease after a forbidden Acquire: present (holder %q), want absent", rec.Spec.Holder())
	}
}

// scMissingNamespace404: Acquire in a namespace that does not exist is an
// error whose 404 is about the namespace, not false.
func scMissingNamespace404(sc *scenario) {
	ns := uniqueName("missing-ns")
	a := sc.newLease("conf-a", func(s *lease.Settings) { s.Namespace = ns })
	ok, err := a.Acquire(sc.ctx())
	var apiErr *lease.APIError
	if ok || !errors.As(err, &apiErr) {
		sc.t.Fatalf("Acquire in missing namespace %s: got (%v, %v), want (false, a *lease.APIError)", ns, ok, err)
	}
	if apiErr.StatusCode != http.StatusNotFound || apiErr.Kind != "namespaces" {
		sc.t.Errorf("APIError: got %d %s kind %q, want 404 kind %q: %v", apiErr.StatusCode, apiErr.Reason, apiErr.Kind, "namespaces", err)
	}
	if a.CheckAlive() {
		sc.t.Errorf("CheckAlive: got true, want false")
	}
}
