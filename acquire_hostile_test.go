package lease_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/kubelease/lease"
	"github.com/kubelease/lease/leasetest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// leaseJSON is a Lease "job" as a GET would return it, with spec as given.
func leaseJSON(spec string) []byte {
	return fmt.Appendf(nil, `{"kind":"Lease","apiVersion":"coordination.k8s.io/v1","metadata":{"name":"job","namespace":"default","uid":"u-1","resourceVersion":"100"},"spec":%s}`, spec)
}

// TestHostileRecords feeds Acquire records with missing or absurd spec
// fields and checks the decision a user would see.
func TestHostileRecords(t *testing.T) {
	now := epoch.Format("2006-01-02T15:04:05.000000Z07:00")
	tests := []struct {
		name    string
		spec    string
		observe time.Duration // observed unchanged this long before the second try
		wantOK  bool          // after observing
	}{
		{"negative duration counts as our TTL", `{"holderIdentity":"x","leaseDurationSeconds":-5,"renewTime":"` + now + `"}`, 15 * time.Second, true},
		{"negative duration not yet our TTL", `{"holderIdentity":"x","leaseDurationSeconds":-5,"renewTime":"` + now + `"}`, 14 * time.Second, false},
		{"no renewTime: must observe", `{"holderIdentity":"x","leaseDurationSeconds":15}`, 15 * time.Second, true},
		{"renewTime in the year 3000", `{"holderIdentity":"x","leaseDurationSeconds":15,"renewTime":"3000-01-01T00:00:00.000000Z"}`, 15 * time.Second, true},
		{"duration of years is capped", `{"holderIdentity":"x","leaseDurationSeconds":2000000000,"renewTime":"` + now + `"}`, lease.MaxLeaseDuration, true},
		{"negative transitions", `{"holderIdentity":"","leaseTransitions":-7}`, 0, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			b := e.newLease("pod-b", func(s *lease.Settings) { s.MaxClockSkew = -1 })
			// The record exists for real (so a takeover PUT can succeed), but
			// every GET answers with the hostile copy.
			e.putRecord("x", epoch, 15, 0)
			e.srv.InjectFault(leasetest.Fault{Verb: "get", Status: 200, Body: leaseJSON(tc.spec), Times: -1})
			if tc.observe > 0 {
				ok, err := b.Acquire(e.ctx())
				require.NoError(t, err)
				require.False(t, ok, "first look")
				b.clk.Step(tc.observe)
			}
			ok, err := b.Acquire(e.ctx())
			if !tc.wantOK {
				require.NoError(t, err)
				assert.False(t, ok)
				return
			}
			// The takeover PUT carries resourceVersion 100, which the real
			// record does not have: a 409, then re-reads of the same
			// hostile copy until the retries are used up. What matters is
			// that the decision was "expired": a write was attempted.
			require.NoError(t, err)
			assert.Positive(t, e.srv.Count("update"), "expired: a takeover write was attempted")
		})
	}
}

// TestHostileAnswers covers answers that are not what was asked for.
func TestHostileAnswers(t *testing.T) {
	tests := []struct {
		name  string
		fault leasetest.Fault
		want  string
	}{
		{"200 with someone else's object on create", leasetest.Fault{Verb: "create", Status: 201,
			Body: []byte(`{"kind":"Lease","metadata":{"name":"other","namespace":"default","uid":"u","resourceVersion":"5"},"spec":{}}`)}, "asked for Lease default/job, got default/other"},
		{"created object without uid", leasetest.Fault{Verb: "create", Status: 201,
			Body: []byte(`{"kind":"Lease","metadata":{"name":"job","namespace":"default","resourceVersion":"5"},"spec":{}}`)}, "uid or resourceVersion missing"},
		{"a ConfigMap instead of a Lease", leasetest.Fault{Verb: "create", Status: 201,
			Body: []byte(`{"kind":"ConfigMap","metadata":{"name":"job","namespace":"default","uid":"u","resourceVersion":"5"}}`)}, `kind is "ConfigMap"`},
		{"wrong types", leasetest.Fault{Verb: "create", Status: 201,
			Body: []byte(`{"kind":"Lease","metadata":{"name":"job"},"spec":{"leaseDurationSeconds":"fifteen"}}`)}, "not a Lease"},
		{"null body", leasetest.Fault{Verb: "create", Status: 201, Body: []byte(`null`)}, "not a Lease"},
		{"empty 200 body", leasetest.Fault{Verb: "create", Status: 201, Body: []byte{}}, "not a Lease"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.srv.InjectFault(tc.fault)
			b := e.newLease("pod-b")
			ok, err := b.Acquire(e.ctx())
			require.Error(t, err)
			assert.False(t, ok)
			assert.ErrorIs(t, err, lease.ErrBadResponse)
			assert.Contains(t, err.Error(), tc.want)
			assert.False(t, b.CheckAlive())
		})
	}
}
