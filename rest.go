package lease

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/kubelease/lease/internal/transport"
	"github.com/kubelease/lease/internal/wire"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/utils/clock"
)

// maxBodyBytes bounds how much of an answer is read. A Lease is well under
// a few KiB; anything larger than this is not one.
const maxBodyBytes = 1 << 20

// maxRetryAfter caps a Retry-After the server asks for.
const maxRetryAfter = time.Minute

var schemaLeases = schema.GroupResource{Group: "coordination.k8s.io", Resource: "leases"}

// userAgent is "kubelease/<version> (<os>/<arch>)".
var userAgent = "kubelease/" + moduleVersion() + " (" + runtime.GOOS + "/" + runtime.GOARCH + ")"

func moduleVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == "github.com/kubelease/lease" && d.Version != "" {
				return d.Version
			}
		}
		if bi.Main.Path == "github.com/kubelease/lease" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			return bi.Main.Version
		}
	}
	return "devel"
}

// restClient is the small Kubernetes REST client for one Lease's endpoints.
// It is safe for concurrent use.
type restClient struct {
	base  string // scheme://host[:port][/prefix], no trailing slash
	httpc *http.Client
	// ownTransport is true when the library built the transport, so it may
	// drop dead connections after a timed-out attempt.
	ownTransport bool
	creds        *credentials
	log          *slog.Logger
	clock        clock.PassiveClock // for Retry-After dates
	// origin is base without user info, to name the server in errors.
	origin string
}

func newRESTClient(cfg *Config, s resolved) (*restClient, error) {
	u, err := url.Parse(cfg.Host)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, fmt.Errorf("lease: Config.Host %q is not an http(s) URL with a host", cfg.Host)
	}
	c := &restClient{base: strings.TrimSuffix(u.String(), "/"), log: s.Logger, clock: s.Clock}
	u.User = nil
	c.origin = strings.TrimSuffix(u.String(), "/")
	tc := cfg.transportConfig()
	if cfg.HTTPClient != nil {
		c.httpc = cfg.HTTPClient
	} else {
		tr, err := transport.Shared(tc, s.RenewalInterval, s.TTL/10)
		if err != nil {
			return nil, err
		}
		c.httpc = &http.Client{Transport: tr}
		c.ownTransport = true
	}
	creds, err := transport.NewCredentials(tc, s.Clock, s.Logger)
	if err != nil {
		return nil, err
	}
	c.creds = &credentials{creds}
	return c, nil
}

// result is a decoded successful answer.
type result struct {
	code int
	obj  *wire.Lease
}

// do sends one request and classifies the answer: a *result for 2xx, an
// *APIError for a server answer that is not a success, an error matching
// ErrBadResponse for an answer that cannot be understood, and the transport
// or context error otherwise. A 401 makes the credentials re-read once and
// the request be sent again, with the same body; if the answer is still a
// 401, its error says which credentials were sent, and where.
func (c *restClient) do(ctx context.Context, method, path string, body any) (*result, error) {
	var payload []byte
	if body != nil {
		var err error
		if payload, err = json.Marshal(body); err != nil {
			return nil, fmt.Errorf("lease: encoding %s %s: %w", method, path, err)
		}
	}
	res, err := c.send(ctx, method, path, payload)
	var apiErr *APIError
	if errors.As(err, &apiErr) && apiErr.StatusCode == http.StatusUnauthorized && c.creds.refresh() {
		res, err = c.send(ctx, method, path, payload)
	}
	c.noteUnauthorized(err)
	return res, err
}

// noteUnauthorized adds to a 401 *APIError which credentials were sent,
// and to which server (never the credentials themselves).
func (c *restClient) noteUnauthorized(err error) {
	var e *APIError
	if errors.As(err, &e) && e.StatusCode == http.StatusUnauthorized {
		e.addHint("sent " + c.creds.describe() + " to " + c.origin)
	}
}

func (c *restClient) send(ctx context.Context, method, path string, payload []byte) (*result, error) {
	var rd io.Reader
	if payload != nil {
		rd = bytes.NewReader(payload)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return nil, fmt.Errorf("lease: building %s %s: %w", method, path, err)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", userAgent)
	if payload != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if err := c.creds.authorize(req); err != nil {
		return nil, err
	}
	resp, err := c.httpc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			if c.ownTransport && errors.Is(context.Cause(ctx), errTimeout) {
				// The connection may be dead: make the retry dial afresh.
				c.httpc.CloseIdleConnections()
			}
			return nil, fmt.Errorf("lease: %s %s: %w", method, path, context.Cause(ctx))
		}
		return nil, fmt.Errorf("lease: %s %s: %w", method, path, stripURL(err))
	}
	defer resp.Body.Close()
	for _, w := range resp.Header.Values("Warning") {
		c.log.Warn("kubelease: API server warning", "method", method, "path", path, "warning", w)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxBodyBytes+1))
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("lease: %s %s: reading answer: %w", method, path, context.Cause(ctx))
		}
		return nil, fmt.Errorf("%w: %s %s: reading answer: %v", ErrBadResponse, method, path, stripURL(err))
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, decodeError(method, path, resp, data, c.clock.Now())
	}
	if len(data) > maxBodyBytes {
		return nil, fmt.Errorf("%w: %s %s: answer larger than %d bytes", ErrBadResponse, method, path, maxBodyBytes)
	}
	res := &result{code: resp.StatusCode}
	if method == http.MethodDelete {
		return res, nil // a Status, not the object
	}
	obj, err := decodeLease(data)
	if err != nil {
		hint := ""
		if looksHTML(resp, data) {
			hint = " (" + notAPIHint(resp, path) + ")"
		}
		return nil, fmt.Errorf("%w: %s %s: %d answer is not a Lease: %v%s", ErrBadResponse, method, path, resp.StatusCode, err, hint)
	}
	res.obj = obj
	return res, nil
}

// decodeLease decodes a Lease answer and checks the parts the library
// relies on.
func decodeLease(data []byte) (*wire.Lease, error) {
	var obj wire.Lease
	if err := json.Unmarshal(data, &obj); err != nil {
		return nil, err
	}
	if obj.Kind != "" && obj.Kind != wire.Kind {
		return nil, fmt.Errorf("kind is %q", obj.Kind)
	}
	if obj.Name == "" || obj.ResourceVersion == "" || obj.UID == "" {
		return nil, fmt.Errorf("metadata.name, uid or resourceVersion missing")
	}
	return &obj, nil
}

// decodeError turns a non-2xx answer into an *APIError, whether or not its
// body is a metav1.Status. An answer that does not look like the
// Kubernetes API's (an HTML page, or a 404 or a text that is not a Status,
// but not the plain-text 429 of priority and fairness) gets a hint asking
// whether Config.Host is the API server.
func decodeError(method, path string, resp *http.Response, data []byte, now time.Time) error {
	e := &APIError{StatusCode: resp.StatusCode, Method: method, Path: path}
	e.RetryAfter, _ = parseRetryAfter(resp.Header.Get("Retry-After"), now)
	var st metav1.Status
	if json.Unmarshal(data, &st) == nil && st.Kind == "Status" {
		e.Reason, e.Message = st.Reason, snippet([]byte(st.Message))
		if st.Details != nil {
			e.Kind = st.Details.Kind
			if e.RetryAfter == 0 && st.Details.RetryAfterSeconds > 0 {
				e.RetryAfter = min(time.Duration(st.Details.RetryAfterSeconds)*time.Second, maxRetryAfter)
			}
		}
	} else {
		e.Message = snippet(data)
		if resp.StatusCode != http.StatusTooManyRequests &&
			(resp.StatusCode == http.StatusNotFound || looksHTML(resp, data) || isText(resp)) {
			e.addHint(notAPIHint(resp, path))
		}
	}
	if e.Reason == "" {
		e.Reason = reasonForCode(resp.StatusCode)
	}
	return e
}

// looksHTML reports an HTML answer, by its Content-Type or its first byte.
func looksHTML(resp *http.Response, data []byte) bool {
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	return mt == "text/html" || mt == "application/xhtml+xml" || bytes.HasPrefix(bytes.TrimSpace(data), []byte("<"))
}

// isText reports a text/* Content-Type.
func isText(resp *http.Response) bool {
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	return strings.HasPrefix(mt, "text/")
}

// notAPIHint asks whether Config.Host is the API server, naming it when
// resp's request is known: its URL without user info and without the API
// path (path, which may carry a query).
func notAPIHint(resp *http.Response, path string) string {
	host := ""
	if req := resp.Request; req != nil && req.URL != nil {
		u := *req.URL
		u.User, u.RawQuery, u.RawPath = nil, "", ""
		apiPath, _, _ := strings.Cut(path, "?")
		u.Path = strings.TrimSuffix(u.Path, apiPath)
		host = strings.TrimSuffix(u.String(), "/") + " "
	}
	return "not a Kubernetes API answer; is Config.Host " + host + "the Kubernetes API server?"
}

// snippet returns the start of a text body, on one line.
func snippet(data []byte) string {
	const n = 200
	s := strings.Join(strings.Fields(string(data)), " ")
	if len(s) > n {
		s = s[:n] + "..."
	}
	return strings.ToValidUTF8(s, "?")
}

// parseRetryAfter reads a Retry-After header: delay-seconds or an HTTP date.
// It returns false for an empty or malformed value; the delay is capped at
// maxRetryAfter and never negative.
func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if n, err := strconv.ParseUint(v, 10, 63); err == nil {
		if n > uint64(maxRetryAfter/time.Second) {
			return maxRetryAfter, true
		}
		return time.Duration(n) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		return min(max(t.Sub(now), 0), maxRetryAfter), true
	}
	return 0, false
}

// stripURL removes the URL from a *url.Error: the path is already in the
// message and a URL could carry credentials.
func stripURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// withTimeout returns a context that is cancelled after d on clk (so a fake
// clock drives it), with a cause wrapping context.DeadlineExceeded.
func withTimeout(parent context.Context, clk clock.Clock, d time.Duration) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancelCause(context.WithValue(parent, deadlineKey{}, clk.Now().Add(d)))
	if d <= 0 {
		cancel(errTimeout)
		return ctx, func() {}
	}
	t := clk.NewTimer(d)
	done := make(chan struct{})
	go func() {
		defer close(done)
		select {
		case <-t.C():
			cancel(errTimeout)
		case <-ctx.Done():
			t.Stop()
		}
	}()
	return ctx, func() {
		cancel(context.Canceled)
		<-done
	}
}

// deadlineKey is the context key under which withTimeout records when, on
// the injected clock, the context will time out (for tests that drive a
// fake clock and need to know which timers are due).
type deadlineKey struct{}

// errTimeout is the cause of a request or operation that ran out of time.
var errTimeout = fmt.Errorf("lease: timed out: %w", context.DeadlineExceeded)
