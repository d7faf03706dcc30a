package lease

import (
	"bytes"
	"encoding/json"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// maxRetryAfter caps a Retry-After the server asks for.
const maxRetryAfter = time.Minute

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
