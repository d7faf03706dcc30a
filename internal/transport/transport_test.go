package transport

import (
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestSharedKey(t *testing.T) {
	p := newPlugin(t, "PLUGIN_TOKEN", "tok")
	base := Config{Host: "https://api.example", CAData: nil}
	get := func(cfg Config) http.RoundTripper {
		t.Helper()
		tr, err := Shared(&cfg, 5*time.Second, time.Second)
		require.NoError(t, err)
		return tr
	}
	plain := get(base)
	assert.Same(t, plain, get(base), "the same setup shares a transport")

	withProxy := base
	withProxy.ProxyURL = "http://proxy-" + filepath.Base(p.Dir) + ".example:3128"
	proxied := get(withProxy)
	assert.NotSame(t, plain, proxied, "ProxyURL is part of the key")
	assert.Same(t, proxied, get(withProxy))
	require.IsType(t, &http.Transport{}, proxied)
	u, err := proxied.(*http.Transport).Proxy(httptest.NewRequest(http.MethodGet, "https://api.example/", nil))
	require.NoError(t, err)
	assert.Equal(t, withProxy.ProxyURL, u.String())

	withExec := base
	withExec.Exec = p.exec
	execTr := get(withExec)
	assert.NotSame(t, plain, execTr, "the exec plugin is part of the key")
	require.IsType(t, &execTransport{}, execTr)
	assert.NotNil(t, execTr.(*execTransport).current().TLSClientConfig.GetClientCertificate)
	other := *p.exec
	other.Args = []string{"--other"}
	withOther := base
	withOther.Exec = &other
	assert.NotSame(t, execTr, get(withOther), "another ExecConfig, another transport")
	same := *p.exec
	withSame := base
	withSame.Exec = &same
	assert.Same(t, execTr, get(withSame), "an equal ExecConfig shares the transport")
}
