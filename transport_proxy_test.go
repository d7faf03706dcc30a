package lease_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync"
	"testing"

	"github.com/kubelease/lease"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// With Config.ProxyURL every request goes through the proxy: a plain HTTP
// forward proxy receives absolute-URI requests for the API server's host,
// which need not resolve.
func TestProxyURL(t *testing.T) {
	e := newEnv(t)
	target, err := url.Parse(e.srv.URL)
	require.NoError(t, err)
	upstream := &http.Transport{}
	t.Cleanup(upstream.CloseIdleConnections)
	forward := httputil.NewSingleHostReverseProxy(target)
	forward.Transport = upstream
	var (
		mu   sync.Mutex
		seen []string
	)
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Method+" "+r.RequestURI)
		mu.Unlock()
		if !r.URL.IsAbs() {
			http.Error(w, "not a proxy request", http.StatusBadRequest)
			return
		}
		forward.ServeHTTP(w, r)
	}))
	t.Cleanup(proxy.Close)

	const host = "http://kube-api.invalid:6443"
	a := e.newLease("pod-a", func(s *lease.Settings) {
		s.Config = &lease.Config{Host: host, ProxyURL: proxy.URL}
	})
	a.acquire(t)
	require.NoError(t, a.Release(e.ctx()))

	mu.Lock()
	defer mu.Unlock()
	path := "/apis/coordination.k8s.io/v1/namespaces/default/leases"
	assert.Equal(t, []string{
		"GET " + host + path + "/job",
		"POST " + host + path,
		"DELETE " + host + path + "/job",
	}, seen)
	assert.Len(t, e.srv.Requests(), len(seen), "every request went through the proxy")
}

func TestProxyURLInvalid(t *testing.T) {
	const secret = "pr0xy-s3cret"
	tests := []struct{ name, proxyURL, want string }{
		{"ftp", "ftp://proxy.example:21", `Config.ProxyURL "ftp://proxy.example:21" has scheme "ftp"; want http, https, socks5 or socks5h`},
		{"no scheme", "proxy.example:3128", `Config.ProxyURL "proxy.example:3128" has scheme "proxy.example"; want http, https, socks5 or socks5h`},
		{"no host", "http://", `Config.ProxyURL "http://" has no host`},
		{"no host, password", "http://user:" + secret + "@:3128", `Config.ProxyURL "http://user:xxxxx@:3128" has no host`},
		{"bad port, password", "http://user:" + secret + "@proxy.example:port", `Config.ProxyURL "http://xxxxx@proxy.example:port" is not a URL`},
		{"space", "http://proxy example", `Config.ProxyURL "http://proxy example" is not a URL`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := lease.NewKubernetesLease(lease.Settings{Name: "job", Owner: "a",
				Config: &lease.Config{Host: "https://api.example", ProxyURL: tt.proxyURL}})
			require.Error(t, err)
			assert.True(t, errors.Is(err, lease.ErrInvalidSettings), "got %v, want ErrInvalidSettings", err)
			assert.Contains(t, err.Error(), "lease: invalid settings: "+tt.want)
			assert.NotContains(t, err.Error(), secret)
		})
	}
	for _, ok := range []string{"http://proxy.example:3128", "https://user:pw@proxy.example", "socks5://127.0.0.1:1080", "socks5h://proxy.example:1080"} {
		_, err := lease.NewKubernetesLease(lease.Settings{Name: "job", Owner: "a",
			Config: &lease.Config{Host: "https://api.example", ProxyURL: ok}})
		assert.NoError(t, err, "ProxyURL %q", ok)
	}
}
