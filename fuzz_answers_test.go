package lease

// Fuzz targets for the parsers of answers.go: decodeError and
// parseRetryAfter read what the API server, or a proxy in front of it,
// answers. As every fuzz target of this package (fuzz_*_test.go), each
// asserts properties of the result, not only the absence of panics. Seed
// corpora are both added here with f.Add and committed under
// testdata/fuzz/<FuzzName>/.
//
// Run one with, e.g.:
//
//	go test -run '^$' -fuzz '^FuzzDecodeError$' -fuzztime 60s -parallel 2 .

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

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
