package bench

import (
	"errors"
	"maps"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
)

// ErrPartitioned is what a cut Tap answers every request with.
var ErrPartitioned = errors.New("bench: partitioned: the transport was cut")

// Counts are requests by Kubernetes verb and answers by HTTP status code.
type Counts struct {
	Verbs map[string]int `json:"verbs"`
	Codes map[int]int    `json:"codes"`
	// Errors is requests that got no answer (transport errors).
	Errors int `json:"errors"`
}

// Total is the number of requests.
func (c Counts) Total() int {
	n := 0
	for _, v := range c.Verbs {
		n += v
	}
	return n
}

// Writes is the number of create, update and delete requests.
func (c Counts) Writes() int { return c.Verbs["create"] + c.Verbs["update"] + c.Verbs["delete"] }

// Add returns c + o.
func (c Counts) Add(o Counts) Counts {
	out := Counts{Verbs: maps.Clone(c.Verbs), Codes: maps.Clone(c.Codes), Errors: c.Errors + o.Errors}
	if out.Verbs == nil {
		out.Verbs = map[string]int{}
	}
	if out.Codes == nil {
		out.Codes = map[int]int{}
	}
	for k, v := range o.Verbs {
		out.Verbs[k] += v
	}
	for k, v := range o.Codes {
		out.Codes[k] += v
	}
	return out
}

// VerbNames returns the verbs of c in a fixed order.
func (c Counts) VerbNames() []string {
	var names []string
	for k := range c.Verbs {
		names = append(names, k)
	}
	sort.Slice(names, func(i, j int) bool { return verbOrder(names[i]) < verbOrder(names[j]) })
	return names
}

func verbOrder(v string) string {
	order := map[string]string{"get": "0", "create": "1", "update": "2", "delete": "3", "watch": "4", "list": "5"}
	if o, ok := order[v]; ok {
		return o
	}
	return "9" + v
}

// Counter counts requests and answers; it is safe for concurrent use.
type Counter struct {
	mu sync.Mutex
	c  Counts
}

// NewCounter returns an empty Counter.
func NewCounter() *Counter {
	return &Counter{c: Counts{Verbs: map[string]int{}, Codes: map[int]int{}}}
}

func (c *Counter) request(verb string) {
	c.mu.Lock()
	c.c.Verbs[verb]++
	c.mu.Unlock()
}

func (c *Counter) answer(code int, err error) {
	c.mu.Lock()
	if err != nil {
		c.c.Errors++
	} else {
		c.c.Codes[code]++
	}
	c.mu.Unlock()
}

// Snapshot returns a copy of the counts so far.
func (c *Counter) Snapshot() Counts {
	c.mu.Lock()
	defer c.mu.Unlock()
	return Counts{Verbs: maps.Clone(c.c.Verbs), Codes: maps.Clone(c.c.Codes), Errors: c.c.Errors}
}

// Reset zeroes the counts.
func (c *Counter) Reset() {
	c.mu.Lock()
	c.c = Counts{Verbs: map[string]int{}, Codes: map[int]int{}}
	c.mu.Unlock()
}

// Tap is an http.RoundTripper in front of a client's transport: it counts
// the client's requests into Counter (when set) and can be cut, after which
// every request fails at once without reaching the network, as for a
// process that crashed or was partitioned away.
type Tap struct {
	// Inner sends the requests. For client-go it is set by
	// rest.Config.WrapTransport.
	Inner http.RoundTripper
	// Counter, when set, counts requests and answers.
	Counter *Counter
	// OnAnswer, when set, is called after each answer with the verb and
	// the status code (0 for a transport error).
	OnAnswer func(verb string, code int)

	cut atomic.Bool
}

// Cut makes every later request fail with ErrPartitioned.
func (t *Tap) Cut() { t.cut.Store(true) }

// RoundTrip implements http.RoundTripper.
func (t *Tap) RoundTrip(req *http.Request) (*http.Response, error) {
	if t.cut.Load() {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, ErrPartitioned
	}
	verb := Verb(req)
	if t.Counter != nil {
		t.Counter.request(verb)
	}
	resp, err := t.Inner.RoundTrip(req)
	code := 0
	if err == nil {
		code = resp.StatusCode
	}
	if t.Counter != nil {
		t.Counter.answer(code, err)
	}
	if t.OnAnswer != nil {
		t.OnAnswer(verb, code)
	}
	return resp, err
}

// CloseIdleConnections passes the call on to Inner.
func (t *Tap) CloseIdleConnections() {
	if c, ok := t.Inner.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

// Verb names the Kubernetes verb of a request to the Lease API: get, list,
// watch, create, update, patch or delete.
func Verb(req *http.Request) string {
	switch req.Method {
	case http.MethodGet:
		if w := req.URL.Query().Get("watch"); w == "true" || w == "1" {
			return "watch"
		}
		if strings.HasSuffix(strings.TrimSuffix(req.URL.Path, "/"), "/leases") {
			return "list"
		}
		return "get"
	case http.MethodPost:
		return "create"
	case http.MethodPut:
		return "update"
	case http.MethodPatch:
		return "patch"
	case http.MethodDelete:
		return "delete"
	}
	return strings.ToLower(req.Method)
}
