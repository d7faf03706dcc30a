package lease

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"os"
	"sync"
	"time"
)

// transportKey identifies the TLS and health-check setup of a transport, so
// that leases with the same setup share one connection pool.
type transportKey struct {
	caData, caFile, certData, keyData, certFile, keyFile, serverName string
	insecure                                                         bool
	pingEvery, pingTimeout                                           time.Duration
}

var (
	transportsMu sync.Mutex // guards transports
	transports   = map[transportKey]*http.Transport{}
)

// sharedTransport returns the process-wide transport for cfg's TLS setup,
// with HTTP/2 pings every pingEvery of idle reading and a ping timeout, so a
// dead connection is noticed within about a renewal interval rather than
// the many minutes TCP takes.
func sharedTransport(cfg *Config, pingEvery, pingTimeout time.Duration) (*http.Transport, error) {
	key := transportKey{
		caData: string(cfg.CAData), caFile: cfg.CAFile,
		certData: string(cfg.CertData), keyData: string(cfg.KeyData),
		certFile: cfg.CertFile, keyFile: cfg.KeyFile,
		serverName: cfg.ServerName, insecure: cfg.Insecure,
		pingEvery: pingEvery, pingTimeout: pingTimeout,
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
	tr := &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:     tlsCfg,
		TLSHandshakeTimeout: 10 * time.Second,
		MaxIdleConnsPerHost: 32,
		IdleConnTimeout:     90 * time.Second,
		ForceAttemptHTTP2:   true,
		HTTP2: &http.HTTP2Config{
			SendPingTimeout: pingEvery,
			PingTimeout:     max(pingTimeout, time.Second),
		},
	}
	transports[key] = tr
	return tr, nil
}

// tlsConfig builds the client TLS configuration: verified, TLS 1.2 or later.
func tlsConfig(cfg *Config) (*tls.Config, error) {
	c := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: cfg.ServerName, InsecureSkipVerify: cfg.Insecure}
	ca := cfg.CAData
	if len(ca) == 0 && cfg.CAFile != "" {
		b, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("lease: reading Config.CAFile: %w", err)
		}
		ca = b
	}
	if len(ca) > 0 {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(ca) {
			return nil, fmt.Errorf("lease: Config CA data holds no PEM certificate")
		}
		c.RootCAs = pool
	}
	certPEM, keyPEM := cfg.CertData, cfg.KeyData
	if len(certPEM) == 0 && cfg.CertFile != "" {
		b, err := os.ReadFile(cfg.CertFile)
		if err != nil {
			return nil, fmt.Errorf("lease: reading Config.CertFile: %w", err)
		}
		certPEM = b
	}
	if len(keyPEM) == 0 && cfg.KeyFile != "" {
		b, err := os.ReadFile(cfg.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("lease: reading Config.KeyFile: %w", err)
		}
		keyPEM = b
	}
	if len(certPEM) > 0 || len(keyPEM) > 0 {
		cert, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			return nil, fmt.Errorf("lease: client certificate and key: %w", err)
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return c, nil
}
