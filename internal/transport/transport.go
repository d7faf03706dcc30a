package transport

import (
	"context"
	"net"
	"net/http"
	"sync"
	"time"
)

// transportKey identifies the TLS, proxy, credential-plugin and
// health-check setup of a transport, so that leases with the same setup
// share one connection pool.
type transportKey struct {
	caData, caFile, certData, keyData, certFile, keyFile, serverName string
	insecure                                                         bool
	proxyURL                                                         string
	execKey                                                          string // fingerprint of the exec plugin setup
	pingEvery, pingTimeout                                           time.Duration
}

var (
	transportsMu sync.Mutex // guards transports
	transports   = map[transportKey]http.RoundTripper{}
)

// Shared returns the process-wide transport for cfg's TLS, proxy and exec
// plugin setup, with HTTP/2 pings every pingEvery of idle reading and a
// ping timeout, so a dead connection is noticed within about a renewal
// interval rather than the many minutes TCP takes. It validates
// Config.ProxyURL and Config.Exec. Without Config.Exec it is an
// *http.Transport; with it, a transport that moves to a new connection pool
// whenever the plugin hands out another client certificate.
func Shared(cfg *Config, pingEvery, pingTimeout time.Duration) (http.RoundTripper, error) {
	proxy, err := proxyFunc(cfg.ProxyURL)
	if err != nil {
		return nil, err
	}
	var ex *execCache
	if cfg.Exec != nil {
		if ex, err = execCacheFor(cfg); err != nil {
			return nil, err
		}
	}
	key := transportKey{
		caData: string(cfg.CAData), caFile: cfg.CAFile,
		certData: string(cfg.CertData), keyData: string(cfg.KeyData),
		certFile: cfg.CertFile, keyFile: cfg.KeyFile,
		serverName: cfg.ServerName, insecure: cfg.Insecure,
		proxyURL:  cfg.ProxyURL,
		pingEvery: pingEvery, pingTimeout: pingTimeout,
	}
	if ex != nil {
		key.execKey = ex.key
	}
	transportsMu.Lock()
	defer transportsMu.Unlock()
	if tr, ok := transports[key]; ok {
		return tr, nil
	}
	tlsCfg, err := tlsConfig(cfg)
	if err != nil {
		return nil, err
	}
	newTransport := func(dial func(ctx context.Context, network, addr string) (net.Conn, error)) *http.Transport {
		return &http.Transport{
			Proxy:               proxy,
			DialContext:         dial,
			TLSClientConfig:     tlsCfg.Clone(),
			TLSHandshakeTimeout: 10 * time.Second,
			MaxIdleConnsPerHost: 32,
			IdleConnTimeout:     90 * time.Second,
			ForceAttemptHTTP2:   true,
			HTTP2: &http.HTTP2Config{
				SendPingTimeout: pingEvery,
				PingTimeout:     max(pingTimeout, time.Second),
			},
		}
	}
	dial := (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	var tr http.RoundTripper
	if ex == nil {
		tr = newTransport(dial)
	} else {
		// The plugin's client certificate, as of the handshake.
		tlsCfg.GetClientCertificate = ex.clientCertificate
		tr = &execTransport{ex: ex, newTransport: func(conns *connTracker) *http.Transport {
			return newTransport(conns.dialer(dial))
		}}
	}
	transports[key] = tr
	return tr, nil
}
