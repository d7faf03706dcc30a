package lease

// Fuzz targets for the parsers that read what the API server and the user
// hand the library, one file for each source file they fuzz
// (fuzz_<file>_test.go; kubeconfig files have theirs in
// internal/kubeconfig). This one fuzzes rest.go's decodeLease. Each target
// asserts properties of the result, not only the absence of panics. Seed
// corpora are both added here with f.Add and committed under
// testdata/fuzz/<FuzzName>/.
//
// Run one with, e.g.:
//
//	go test -run '^$' -fuzz '^FuzzDecodeLease$' -fuzztime 60s -parallel 2 .

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kubelease/lease/internal/wire"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// fuzzLeaseSeeds are Lease answers, most of them as kube-apiserver sends
// them, and some that it never would.
var fuzzLeaseSeeds = []string{
	// A controller-manager Lease, with managedFields.
	`{"kind":"Lease","apiVersion":"coordination.k8s.io/v1","metadata":{"name":"kube-controller-manager","namespace":"kube-system","uid":"0b6a1f5e-2f0c-4f55-9a7e-3c0d3f1d2a44","resourceVersion":"184467","creationTimestamp":"2026-11-20T08:15:02Z","managedFields":[{"manager":"kube-controller-manager","operation":"Update","apiVersion":"coordination.k8s.io/v1","time":"2026-11-24T11:59:58Z","fieldsType":"FieldsV1","fieldsV1":{"f:spec":{"f:acquireTime":{},"f:holderIdentity":{},"f:leaseDurationSeconds":{},"f:leaseTransitions":{},"f:renewTime":{}}}}]},"spec":{"holderIdentity":"cp-1_5b0c7a1e-7a0e-4d0f-9e39-1b8f2c6d0e11","leaseDurationSeconds":15,"acquireTime":"2026-11-20T08:15:02.120934Z","renewTime":"2026-11-24T11:59:58.803412Z","leaseTransitions":3}}` + "\n",
	// Coordinated leader election fields the library does not model.
	`{"kind":"Lease","apiVersion":"coordination.k8s.io/v1","metadata":{"name":"kube-scheduler","namespace":"kube-system","uid":"u-2","resourceVersion":"9","labels":{"app":"x"},"annotations":{"a":"b"}},"spec":{"holderIdentity":"node-a","leaseDurationSeconds":10,"renewTime":"2026-11-24T12:00:00.000001Z","leaseTransitions":0,"strategy":"OldestEmulationVersion","preferredHolder":"node-b","futureField":{"nested":[1,2.5,"x",null,true]}}}`,
	// Nulls everywhere.
	`{"kind":"Lease","apiVersion":"coordination.k8s.io/v1","metadata":{"name":"n","uid":"u","resourceVersion":"1","labels":null,"managedFields":null,"deletionTimestamp":null},"spec":{"holderIdentity":null,"leaseDurationSeconds":null,"acquireTime":null,"renewTime":null,"leaseTransitions":null,"strategy":null}}`,
	`{"metadata":{"name":"n","uid":"u","resourceVersion":"1"},"spec":null}`,
	// No kind, no spec.
	`{"metadata":{"name":"a","uid":"b","resourceVersion":"2"}}`,
	// Huge numbers: kept verbatim when unknown, refused when modelled.
	`{"kind":"Lease","metadata":{"name":"a","uid":"b","resourceVersion":"99999999999999999999999999"},"spec":{"leaseTransitions":2147483647,"big":123456789012345678901234567890,"huger":1e400,"neg":-0.0e-7}}`,
	`{"kind":"Lease","metadata":{"name":"a","uid":"b","resourceVersion":"3"},"spec":{"leaseDurationSeconds":2147483648}}`,
	// Wrong types.
	`{"kind":"Lease","metadata":{"name":"a","uid":"b","resourceVersion":"3"},"spec":{"leaseDurationSeconds":"15"}}`,
	`{"kind":"Lease","metadata":[],"spec":"x"}`,
	`{"kind":"Lease","metadata":{"name":"a","uid":"b","resourceVersion":"3"},"spec":{"renewTime":"yesterday"}}`,
	// Not a Lease.
	`{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Success","details":{"name":"a","group":"coordination.k8s.io","kind":"leases","uid":"b"}}`,
	`{"kind":"Lease","metadata":{"name":"a","resourceVersion":"3"}}`,
	// Case-folded and duplicate keys, HTML and odd Unicode in unknown fields.
	`{"kind":"Lease","metadata":{"name":"a","uid":"b","resourceVersion":"3"},"spec":{"holderIdentity":"x","HolderIdentity":"y","note":"<a&b> \u2028 \ud800 é","note":"again"}}`,
	`{"kind":"Lease","metadata":{"name":"a","uid":"b","resourceVersion":"3"},"spec":{"strategy":"s1"},"spec":{"preferredHolder":"p"}}`,
	// Timestamps with offsets and more than microsecond precision.
	`{"kind":"Lease","metadata":{"name":"a","uid":"b","resourceVersion":"3","creationTimestamp":"2026-11-24T12:00:00.999999999+02:00"},"spec":{"acquireTime":"2026-11-24T12:00:00.123456+05:30","renewTime":"2026-11-24T23:59:59.999999-00:00"}}`,
	`{"kind":"Lease","metadata":{"name":"a","uid":"b","resourceVersion":"3"},"spec":{"renewTime":"2026-11-24T12:00:00.123456789Z"}}`,
	// Not JSON objects.
	``, `null`, `[]`, `"Lease"`, `{`, `{"kind":"Lease"`,
}

func FuzzDecodeLease(f *testing.F) {
	for _, s := range fuzzLeaseSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		obj, err := decodeLease(data)
		if err != nil {
			if obj != nil {
				t.Fatalf("decodeLease returned both %+v and error %v", obj, err)
			}
			return
		}
		if obj.Name == "" || obj.UID == "" || obj.ResourceVersion == "" {
			t.Fatalf("decodeLease accepted a Lease without name, uid or resourceVersion: %+v", obj.ObjectMeta)
		}
		if obj.Kind != "" && obj.Kind != wire.Kind {
			t.Fatalf("decodeLease accepted kind %q", obj.Kind)
		}

		// Round trip: what the library would write back decodes to the same
		// object, which writes the same bytes again.
		b1, err := json.Marshal(obj)
		if err != nil {
			t.Fatalf("a decoded Lease does not marshal: %v", err)
		}

		// Every spec field the library does not model survives: it is in
		// Unknown with the bytes it came with, is written back, and nothing
		// is invented.
		in := fuzzSpecFields(t, data)
		out := fuzzSpecFields(t, b1)
		for k, v := range in {
			if fuzzKnownSpecFields[k] {
				continue
			}
			got, ok := obj.Spec.Unknown[k]
			if !ok {
				t.Fatalf("unknown spec field %q was dropped; Unknown = %s", k, fuzzKeys(obj.Spec.Unknown))
			}
			if !bytes.Equal(got, v) {
				t.Fatalf("unknown spec field %q: got %s, want %s", k, got, v)
			}
			written, ok := out[k]
			if !ok {
				t.Fatalf("unknown spec field %q is not written back: %s", k, b1)
			}
			if c1, c2 := fuzzCanonical(t, v), fuzzCanonical(t, written); !bytes.Equal(c1, c2) {
				t.Fatalf("unknown spec field %q is written back as %s, want %s", k, c2, c1)
			}
		}
		for k := range obj.Spec.Unknown {
			if _, ok := in[k]; !ok || fuzzKnownSpecFields[k] {
				t.Fatalf("Unknown has field %q, which the input's spec does not have as an unknown field", k)
			}
		}

		// DeepCopy is equal and writes the same bytes.
		cp := obj.DeepCopy()
		if !reflect.DeepEqual(cp, obj) {
			t.Fatalf("DeepCopy differs:\n%+v\n%+v", cp, obj)
		}
		if b3, err := json.Marshal(cp); err != nil || !bytes.Equal(b3, b1) {
			t.Fatalf("DeepCopy marshals differently (%v):\n%s\n%s", err, b3, b1)
		}

		if !fuzzTimesRoundTrip(obj) {
			// apimachinery writes such timestamps in a form it cannot read
			// back, or as null; an API server never sends them.
			return
		}
		obj2, err := decodeLease(b1)
		if err != nil {
			t.Fatalf("a marshalled Lease does not decode: %v\nmarshalled: %s", err, b1)
		}
		b2, err := json.Marshal(obj2)
		if err != nil {
			t.Fatalf("a re-decoded Lease does not marshal: %v", err)
		}
		if !bytes.Equal(b1, b2) {
			t.Fatalf("round trip is not stable:\nfirst:  %s\nsecond: %s", b1, b2)
		}
		if obj2.Name != obj.Name || obj2.Namespace != obj.Namespace || obj2.UID != obj.UID ||
			obj2.ResourceVersion != obj.ResourceVersion {
			t.Fatalf("identity changed in the round trip: %+v, then %+v", obj.ObjectMeta, obj2.ObjectMeta)
		}
		if obj2.Spec.Holder() != obj.Spec.Holder() || obj2.Spec.Transitions() != obj.Spec.Transitions() {
			t.Fatalf("holder or transitions changed in the round trip: %q/%d, then %q/%d",
				obj.Spec.Holder(), obj.Spec.Transitions(), obj2.Spec.Holder(), obj2.Spec.Transitions())
		}

		// The unknown spec fields are the same after the round trip.
		if len(obj2.Spec.Unknown) != len(obj.Spec.Unknown) {
			t.Fatalf("unknown spec fields changed in the round trip: %s, then %s",
				fuzzKeys(obj.Spec.Unknown), fuzzKeys(obj2.Spec.Unknown))
		}
		for k, v := range obj.Spec.Unknown {
			v2, ok := obj2.Spec.Unknown[k]
			if !ok {
				t.Fatalf("unknown spec field %q was dropped in the round trip; Unknown = %s", k, fuzzKeys(obj2.Spec.Unknown))
			}
			if c1, c2 := fuzzCanonical(t, v), fuzzCanonical(t, v2); !bytes.Equal(c1, c2) {
				t.Fatalf("unknown spec field %q changed in the round trip: %s, then %s", k, c1, c2)
			}
		}
	})
}

// fuzzTimesRoundTrip reports whether every timestamp of obj reads back as
// itself once written by metav1.Time (to the second) or metav1.MicroTime (to
// the microsecond). Not so, in apimachinery, for a time whose UTC year is
// outside 0..9999 (written as "10000-..." or "-0001-...", which do not
// parse), for a set field holding the zero time (written as null, which
// reads back as unset), or for a time that truncates to the zero time.
func fuzzTimesRoundTrip(obj *wire.Lease) bool {
	ok := func(t time.Time, precision time.Duration, set bool) bool {
		if t.IsZero() {
			return !set
		}
		u := t.UTC()
		u = u.Add(-time.Duration(u.Nanosecond()) % precision)
		return 0 <= u.Year() && u.Year() <= 9999 && !u.IsZero()
	}
	m := obj.ObjectMeta
	good := ok(m.CreationTimestamp.Time, time.Second, false)
	if m.DeletionTimestamp != nil {
		good = good && ok(m.DeletionTimestamp.Time, time.Second, true)
	}
	for _, mf := range m.ManagedFields {
		if mf.Time != nil {
			good = good && ok(mf.Time.Time, time.Second, true)
		}
	}
	for _, mt := range []*metav1.MicroTime{obj.Spec.AcquireTime, obj.Spec.RenewTime} {
		if mt != nil {
			good = good && ok(mt.Time, time.Microsecond, true)
		}
	}
	return good
}

// fuzzKnownSpecFields are the spec fields wire.LeaseSpec models.
var fuzzKnownSpecFields = map[string]bool{
	"holderIdentity": true, "leaseDurationSeconds": true, "acquireTime": true,
	"renewTime": true, "leaseTransitions": true,
}

// fuzzSpecMap decodes a JSON object like wire.LeaseSpec does: a later
// "spec" replaces an earlier one instead of being merged into it.
type fuzzSpecMap map[string]json.RawMessage

func (m *fuzzSpecMap) UnmarshalJSON(b []byte) error {
	var v map[string]json.RawMessage
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*m = v
	return nil
}

// fuzzSpecFields returns the fields of the spec of a Lease document that
// decoded, by JSON name.
func fuzzSpecFields(t *testing.T, data []byte) fuzzSpecMap {
	t.Helper()
	var doc struct {
		Spec fuzzSpecMap `json:"spec"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatalf("decodeLease accepted a document whose spec is not an object: %v", err)
	}
	return doc.Spec
}

// fuzzCanonical is raw as json.Marshal writes it (compact, HTML-escaped).
func fuzzCanonical(t *testing.T, raw json.RawMessage) []byte {
	t.Helper()
	b, err := json.Marshal(raw)
	if err != nil {
		t.Fatalf("unknown spec field value %s is not valid JSON: %v", raw, err)
	}
	return b
}

func fuzzKeys(m map[string]json.RawMessage) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, strconv.Quote(k))
	}
	return "[" + strings.Join(keys, " ") + "]"
}
