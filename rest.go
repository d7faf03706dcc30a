package lease

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/kubelease/lease/internal/transport"
	"github.com/kubelease/lease/internal/wire"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/utils/clock"
)

// maxBodyBytes bounds how much of an answer is read. A Lease is well under
// a few KiB; anything larger than this is not one.
const maxBodyBytes = 1 << 20

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
	creds        *transport.Credentials
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
	c.creds = creds
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
	resp, err := c.open(ctx, method, method, path, payload)
	if err != nil {
		if c.ownTransport && errors.Is(err, errTimeout) {
			// The connection may be dead: make the retry dial afresh.
			c.httpc.CloseIdleConnections()
		}
		return nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxBodyBytes+1))
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("lease: %s %s: reading answer: %w", method, path, context.Cause(ctx))
		}
		return nil, fmt.Errorf("%w: %s %s: reading answer: %v", ErrBadResponse, method, path, stripURL(err))
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

// send sends one request about something other than the Lease (an Event)
// and discards the answer's body: nil for a 2xx, the errors of open
// otherwise. It does not drop connections after a timeout, as do does: the
// requests it sends are best effort and must not disturb the renewals'.
func (c *restClient) send(ctx context.Context, op, method, path string, body any) error {
	payload, err := json.Marshal(body)
	if err != nil {
		return fmt.Errorf("lease: encoding %s %s: %w", op, path, err)
	}
	resp, err := c.open(ctx, op, method, path, payload)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxBodyBytes))
	return resp.Body.Close()
}

// stream opens a GET whose body is read as a stream (a watch). The 401
// re-read of credentials, and the note on a 401 error, apply as for do.
func (c *restClient) stream(ctx context.Context, path string) (io.ReadCloser, error) {
	resp, err := c.open(ctx, "watch", http.MethodGet, path, nil)
	if err != nil {
		return nil, err
	}
	return resp.Body, nil
}

// open sends a request and returns the response to a 2xx answer, its body
// unread; any other answer is read, closed and returned as an *APIError. A
// 401 makes the credentials re-read once and the request be sent again
// with the same payload; if the answer is still a 401, its error says
// which credentials were sent, and where. op names the request in errors.
func (c *restClient) open(ctx context.Context, op, method, path string, payload []byte) (*http.Response, error) {
	resp, err := c.openOnce(ctx, op, method, path, payload)
	var apiErr *APIError
	if errors.As(err, &apiErr) && apiErr.StatusCode == http.StatusUnauthorized && c.creds.Refresh() {
		resp, err = c.openOnce(ctx, op, method, path, payload)
	}
	c.noteUnauthorized(err)
	return resp, err
}

// noteUnauthorized adds to a 401 *APIError which credentials were sent,
// and to which server (never the credentials themselves).
func (c *restClient) noteUnauthorized(err error) {
	var e *APIError
	if errors.As(err, &e) && e.StatusCode == http.StatusUnauthorized {
		e.addHint("sent " + c.creds.Describe() + " to " + c.origin)
	}
}

// openOnce is one send of open.
func (c *restClient) openOnce(ctx context.Context, op, method, path string, payload []byte) (*http.Response, error) {
	var rd io.Reader
	if payload != nil {
		rd = bytes.NewReader(payload)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return nil, fmt.Errorf("lease: building %s %s: %w", op, path, err)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", userAgent)
	if payload != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if err := c.creds.Authorize(req); err != nil {
		return nil, err
	}
	resp, err := c.httpc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("lease: %s %s: %w", op, path, context.Cause(ctx))
		}
		return nil, fmt.Errorf("lease: %s %s: %w", op, path, stripURL(err))
	}
	for _, w := range resp.Header.Values("Warning") {
		c.log.Warn("kubelease: API server warning", "method", method, "path", path, "warning", w)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		defer resp.Body.Close()
		data, _ := io.ReadAll(io.LimitReader(resp.Body, maxBodyBytes))
		return nil, decodeError(method, path, resp, data, c.clock.Now())
	}
	return resp, nil
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

// stripURL removes the URL from a *url.Error: the path is already in the
// message and a URL could carry credentials.
func stripURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}
