package lease

// Fuzz targets for the parsers that read what the API server and the user
// hand the library (kubeconfig files have theirs in internal/kubeconfig).
// Each target asserts properties of the result, not only the absence of
// panics. Seed corpora are both added here with f.Add and committed under
// testdata/fuzz/<FuzzName>/.
//
// Run one with, e.g.:
//
//	go test -run '^$' -fuzz '^FuzzDecodeLease$' -fuzztime 60s -parallel 2 .

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"math/big"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/kubelease/lease/internal/wire"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
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

// fuzzErrorSeeds are non-2xx answers: real Status bodies, proxy and
// priority-and-fairness plain text, and garbage.
var fuzzErrorSeeds = []struct {
	code       int
	retryAfter string
	body       string
}{
	{409, "", `{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Operation cannot be fulfilled on leases.coordination.k8s.io \"my-lease\": the object has been modified; please apply your changes to the latest version and try again","reason":"Conflict","details":{"name":"my-lease","group":"coordination.k8s.io","kind":"leases"},"code":409}` + "\n"},
	{409, "", `{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"leases.coordination.k8s.io \"my-lease\" already exists","reason":"AlreadyExists","details":{"name":"my-lease","group":"coordination.k8s.io","kind":"leases"},"code":409}`},
	{404, "", `{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"namespaces \"nope\" not found","reason":"NotFound","details":{"name":"nope","kind":"namespaces"},"code":404}`},
	{404, "", `{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"leases.coordination.k8s.io \"my-lease\" not found","reason":"NotFound","details":{"name":"my-lease","group":"coordination.k8s.io","kind":"leases"},"code":404}`},
	{429, "1", "Too many requests, please try again later.\n"},
	{429, "", `{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"storage is (re)initializing","reason":"TooManyRequests","details":{"retryAfterSeconds":1},"code":429}`},
	{500, "", `{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Internal error occurred: etcdserver: request timed out","reason":"InternalError","details":{"causes":[{"message":"etcdserver: request timed out"}],"retryAfterSeconds":2147483647},"code":500}`},
	{503, "Wed, 21 Oct 2015 07:28:00 GMT", "<html><head><title>503 Service Temporarily Unavailable</title></head>\r\n<body>\r\n<center><h1>503 Service Temporarily Unavailable</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"},
	{401, "", `{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Unauthorized","reason":"Unauthorized","code":401}`},
	{403, "", `{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"leases.coordination.k8s.io \"my-lease\" is forbidden: User \"system:serviceaccount:default:default\" cannot update resource \"leases\" in API group \"coordination.k8s.io\" in the namespace \"default\"","reason":"Forbidden","details":{"name":"my-lease","group":"coordination.k8s.io","kind":"leases"},"code":403}`},
	{422, "", `{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Lease.coordination.k8s.io \"x\" is invalid: spec.leaseDurationSeconds: Invalid value: 0: must be greater than 0","reason":"Invalid","details":{"name":"x","group":"coordination.k8s.io","kind":"Lease","causes":[{"reason":"FieldValueInvalid","message":"Invalid value: 0: must be greater than 0","field":"spec.leaseDurationSeconds"}]},"code":422}`},
	{504, " 120 ", `{"kind":"Status","status":"Failure","reason":"","message":""}`},
	{400, "-1", `{"kind":"Status","details":null}`},
	{502, "soon", "\xff\xfe bad \xc3 utf8 \t\n " + strings.Repeat("é", 150)},
	{599, "", ""},
}

func FuzzDecodeError(f *testing.F) {
	for _, s := range fuzzErrorSeeds {
		f.Add(s.code, s.retryAfter, []byte(s.body))
	}
	const method, path = "PUT", "/apis/coordination.k8s.io/v1/namespaces/default/leases/my-lease"
	f.Fuzz(func(t *testing.T, code int, retryAfter string, body []byte) {
		// Any HTTP code but 2xx: send decodes 2xx answers as a Lease.
		if code < 100 || code > 599 {
			code = 100 + (code%500+500)%500
		}
		if 200 <= code && code <= 299 {
			code += 200
		}
		resp := &http.Response{
			StatusCode: code,
			Header:     http.Header{},
			Body:       io.NopCloser(bytes.NewReader(body)),
		}
		if retryAfter != "" {
			resp.Header.Set("Retry-After", retryAfter)
		}
		err := decodeError(method, path, resp, body, time.Now())
		e, ok := err.(*APIError)
		if !ok || e == nil {
			t.Fatalf("decodeError returned %T %v, want a non-nil *APIError", err, err)
		}
		if e.StatusCode != code || e.Method != method || e.Path != path {
			t.Fatalf("got code %d, method %q, path %q; want %d, %q, %q", e.StatusCode, e.Method, e.Path, code, method, path)
		}
		if e.Reason == "" {
			t.Errorf("Reason is empty for a %d answer", code)
		}
		if len(e.Message) > 210 {
			t.Errorf("Message is %d bytes, want at most about 200: %q", len(e.Message), e.Message)
		}
		if !utf8.ValidString(e.Message) {
			t.Errorf("Message is not valid UTF-8: %q", e.Message)
		}
		if e.RetryAfter < 0 || e.RetryAfter > maxRetryAfter {
			t.Errorf("RetryAfter is %v, want within [0, %v]", e.RetryAfter, maxRetryAfter)
		}
		// A delay-seconds header is honoured exactly.
		if n, err := strconv.ParseUint(strings.TrimSpace(retryAfter), 10, 63); err == nil && n > 0 {
			want := maxRetryAfter
			if n <= uint64(maxRetryAfter/time.Second) {
				want = time.Duration(n) * time.Second
			}
			if e.RetryAfter != want {
				t.Errorf("Retry-After %q: RetryAfter is %v, want %v", retryAfter, e.RetryAfter, want)
			}
		}
		var st metav1.Status
		if json.Unmarshal(body, &st) == nil && st.Kind == "Status" {
			if st.Reason != "" && e.Reason != st.Reason {
				t.Errorf("Reason is %q, want the Status reason %q", e.Reason, st.Reason)
			}
			if st.Details != nil && e.Kind != st.Details.Kind {
				t.Errorf("Kind is %q, want the Status details.kind %q", e.Kind, st.Details.Kind)
			}
		} else {
			if e.Kind != "" {
				t.Errorf("Kind is %q for an answer that is not a Status", e.Kind)
			}
			if strings.ContainsAny(e.Message, "\r\n\t") {
				t.Errorf("Message of a text answer is not on one line: %q", e.Message)
			}
		}
		msg := e.Error()
		if !strings.HasPrefix(msg, "lease: "+method+" "+path+": "+strconv.Itoa(code)+" ") {
			t.Errorf("Error() = %q, want it to start with the request and the code", msg)
		}
		if got := apierrors.ReasonForError(err); got != e.Reason {
			t.Errorf("apierrors.ReasonForError = %q, want %q", got, e.Reason)
		}
		if s := e.Status(); int(s.Code) != code || s.Reason != e.Reason || s.Message != e.Message {
			t.Errorf("Status() = %+v does not match the error %+v", s, e)
		}
	})
}

// fuzzTokenSeeds are pairs of tokens, canonical or not.
var fuzzTokenSeeds = [][2]string{
	{"184467/3", "184468/3"},
	{"1/0", "1/0"},
	{"1/2147483647", "2/0"},
	{"99999999999999999999999999999999/7", "100000000000000000000000000000000/0"},
	{"0/1", "1/1"},
	{"01/1", "1/01"},
	{"1/-1", "1/+1"},
	{"1/2147483648", "1/-0"},
	{"", "/"},
	{"abc/1", "1/1/1"},
	{"\u0661/1", "1/\u0661"},
	{" 1/1", "1/1 "},
}

func FuzzParseToken(f *testing.F) {
	for _, s := range fuzzTokenSeeds {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, s, other string) {
		tok, err := ParseToken(s)
		if err != nil {
			if !errors.Is(err, ErrInvalidToken) {
				t.Fatalf("ParseToken(%q): error %v does not match ErrInvalidToken", s, err)
			}
			if !strings.HasPrefix(err.Error(), "lease: ") {
				t.Fatalf("ParseToken(%q): error %q does not start with %q", s, err, "lease: ")
			}
			if !tok.IsZero() {
				t.Fatalf("ParseToken(%q) returned %+v with error %v", s, tok, err)
			}
			return
		}
		if got := tok.String(); got != s {
			t.Fatalf("ParseToken(%q).String() = %q", s, got)
		}
		if tok.Transitions < 0 || tok.IsZero() {
			t.Fatalf("ParseToken(%q) = %+v", s, tok)
		}
		if again, err := ParseToken(tok.String()); err != nil || again != tok {
			t.Fatalf("ParseToken(%q) = %+v, %v; want %+v", tok.String(), again, err, tok)
		}
		if c, err := tok.Compare(tok); c != 0 || err != nil {
			t.Fatalf("%v.Compare(itself) = %d, %v; want 0, nil", tok, c, err)
		}
		rv, ok := new(big.Int).SetString(tok.ResourceVersion, 10)
		if !ok || rv.Sign() <= 0 {
			t.Fatalf("ParseToken(%q) accepted resourceVersion %q", s, tok.ResourceVersion)
		}
		if _, err := tok.Compare(Token{ResourceVersion: "0" + tok.ResourceVersion}); !errors.Is(err, ErrInvalidToken) {
			t.Fatalf("comparing with a non-canonical resourceVersion: got %v, want ErrInvalidToken", err)
		}

		// Compare orders by the integer value, antisymmetrically.
		u, err := ParseToken(other)
		if err != nil {
			if _, cerr := tok.Compare(Token{ResourceVersion: other}); cerr == nil && !fuzzCanonicalRV(other) {
				t.Fatalf("Compare accepted resourceVersion %q", other)
			}
			return
		}
		c1, err1 := tok.Compare(u)
		c2, err2 := u.Compare(tok)
		if err1 != nil || err2 != nil {
			t.Fatalf("comparing %v and %v: %v, %v", tok, u, err1, err2)
		}
		urv, _ := new(big.Int).SetString(u.ResourceVersion, 10)
		if want := rv.Cmp(urv); c1 != want || c2 != -want {
			t.Fatalf("%v.Compare(%v) = %d and back %d; want %d and %d", tok, u, c1, c2, want, -want)
		}
	})
}

// fuzzCanonicalRV reports whether s is a canonical positive integer.
func fuzzCanonicalRV(s string) bool {
	if s == "" || s[0] == '0' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// fuzzRetryAfterSeeds are Retry-After values and "now" (Unix seconds).
var fuzzRetryAfterSeeds = []struct {
	v   string
	now int64
}{
	{"3", 1795003200},
	{" 0 ", 1795003200},
	{"120", 1795003200},
	{"9223372036854775807", 0},
	{"99999999999999999999999", 0},
	{"-1", 0},
	{"1.5", 0},
	{"+5", 0},
	{"Wed, 21 Oct 2015 07:28:00 GMT", 1445412470},
	{"Wed, 21 Oct 2015 07:28:00 GMT", 1445412490},
	{"Wednesday, 21-Oct-15 07:28:00 GMT", 1445412470},
	{"Wed Oct 21 07:28:00 2015", 1445412470},
	{"Mon, 01 Jan 0001 00:00:00 GMT", 1 << 62},
	{"Fri, 31 Dec 9999 23:59:59 GMT", -1 << 62},
	{"", 0},
	{"\t5\n", 0},
}

func FuzzParseRetryAfter(f *testing.F) {
	for _, s := range fuzzRetryAfterSeeds {
		f.Add(s.v, s.now)
	}
	f.Fuzz(func(t *testing.T, v string, nowUnix int64) {
		now := time.Unix(nowUnix, 0)
		d, ok := parseRetryAfter(v, now)
		if d < 0 || d > maxRetryAfter {
			t.Fatalf("parseRetryAfter(%q) = %v, want within [0, %v]", v, d, maxRetryAfter)
		}
		if !ok && d != 0 {
			t.Fatalf("parseRetryAfter(%q) = %v, false; want 0 when not ok", v, d)
		}
		tv := strings.TrimSpace(v)
		if tv == "" && ok {
			t.Fatalf("parseRetryAfter(%q) is ok for an empty value", v)
		}
		if n, err := strconv.ParseUint(tv, 10, 63); err == nil {
			want := maxRetryAfter
			if n <= uint64(maxRetryAfter/time.Second) {
				want = time.Duration(n) * time.Second
			}
			if !ok || d != want {
				t.Fatalf("parseRetryAfter(%q) = %v, %v; want %v, true", v, d, ok, want)
			}
		}
		if ok {
			if _, err := strconv.ParseUint(tv, 10, 63); err != nil {
				if _, err := http.ParseTime(tv); err != nil {
					t.Fatalf("parseRetryAfter(%q) is ok for a value that is neither delay-seconds nor an HTTP date", v)
				}
			}
		}
		if d2, ok2 := parseRetryAfter(v, now); d2 != d || ok2 != ok {
			t.Fatalf("parseRetryAfter(%q) is not deterministic: %v, %v then %v, %v", v, d, ok, d2, ok2)
		}
	})
}
