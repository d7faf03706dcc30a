package lease

import (
	"net/http"

	"github.com/kubelease/lease/internal/kubeconfig"
	"github.com/kubelease/lease/internal/transport"
)

// Config says where the Kubernetes API server is and how to authenticate to
// it. Build one by hand, or with InClusterConfig, LoadKubeconfig or
// DefaultConfig. A Config may be shared by many leases; they then share one
// connection pool. Do not change a Config after passing it to
// NewKubernetesLease.
type Config struct {
	// Host is the API server's base URL, e.g. "https://10.0.0.1:443".
	Host string
	// Namespace is the default namespace for leases (from the kubeconfig
	// context or the service account), used when Settings.Namespace is empty.
	Namespace string

	// BearerToken is sent as "Authorization: Bearer <token>".
	BearerToken string
	// BearerTokenFile, when set, is read for the token instead, re-read about
	// every minute and after any 401 (the request is then retried once).
	// NewKubernetesLease reads it first: a file that cannot be read or holds
	// no token makes it fail, naming the file. A later re-read that fails
	// keeps the previous token and logs a warning (once, until a read
	// succeeds again).
	BearerTokenFile string

	// CAData (PEM) or CAFile verify the server's certificate. Both empty:
	// the system roots.
	CAData []byte
	CAFile string
	// CertData/KeyData (PEM) or CertFile/KeyFile authenticate the client.
	CertData, KeyData []byte
	CertFile, KeyFile string
	// ServerName overrides the name the server certificate is checked for.
	ServerName string
	// Insecure skips verification of the server's certificate. Never in
	// production.
	Insecure bool

	// ProxyURL, when set, is the proxy every request goes through, instead
	// of the one the environment names: an "http", "https", "socks5" or
	// "socks5h" URL with a host, e.g. "http://proxy.internal:3128". Empty:
	// HTTPS_PROXY, HTTP_PROXY and NO_PROXY are honoured (and requests to
	// localhost are never proxied). An invalid URL makes NewKubernetesLease
	// fail. Ignored when HTTPClient is set.
	ProxyURL string

	// Exec, when set, runs a Kubernetes exec credential plugin (as kubectl
	// does for a kubeconfig user with "exec") for a bearer token or a client
	// certificate; see ExecConfig. It cannot be combined with BearerToken,
	// BearerTokenFile or a client certificate: NewKubernetesLease fails.
	Exec *ExecConfig

	// HTTPClient, when set, is used as-is for every request: TLS, proxy and
	// timeouts are then the caller's business, and the library's HTTP/2 pings
	// and dropping of dead connections do not apply. A token from Exec is
	// still sent; a client certificate from Exec cannot be used (requests
	// fail if the plugin returns no token).
	HTTPClient *http.Client
}

// The connection code lives behind two internal packages, each with its own
// small type: internal/kubeconfig finds a kubeconfig.Config, and
// internal/transport builds the transport and the credentials from a
// transport.Config. transportConfig and configFrom are the one place where
// Config is converted to and from them.

// transportConfig returns the part of cfg that the transport and the
// credentials are built from.
func (cfg *Config) transportConfig() *transport.Config {
	tc := &transport.Config{
		Host:            cfg.Host,
		BearerToken:     cfg.BearerToken,
		BearerTokenFile: cfg.BearerTokenFile,
		CAData:          cfg.CAData,
		CAFile:          cfg.CAFile,
		CertData:        cfg.CertData,
		KeyData:         cfg.KeyData,
		CertFile:        cfg.CertFile,
		KeyFile:         cfg.KeyFile,
		ServerName:      cfg.ServerName,
		Insecure:        cfg.Insecure,
		ProxyURL:        cfg.ProxyURL,
		CustomClient:    cfg.HTTPClient != nil,
	}
	if e := cfg.Exec; e != nil {
		tc.Exec = &transport.ExecConfig{
			Command:            e.Command,
			Args:               e.Args,
			Env:                convertEnv[transport.ExecEnvVar](e.Env),
			APIVersion:         e.APIVersion,
			ProvideClusterInfo: e.ProvideClusterInfo,
			InstallHint:        e.InstallHint,
		}
	}
	return tc
}

// configFrom returns the Config for what internal/kubeconfig found, or
// err, unchanged, when it found nothing.
func configFrom(k *kubeconfig.Config, err error) (*Config, error) {
	if err != nil {
		return nil, err
	}
	cfg := &Config{
		Host:            k.Host,
		Namespace:       k.Namespace,
		BearerToken:     k.BearerToken,
		BearerTokenFile: k.BearerTokenFile,
		CAData:          k.CAData,
		CAFile:          k.CAFile,
		CertData:        k.CertData,
		KeyData:         k.KeyData,
		CertFile:        k.CertFile,
		KeyFile:         k.KeyFile,
		ServerName:      k.ServerName,
		Insecure:        k.Insecure,
		ProxyURL:        k.ProxyURL,
	}
	if e := k.Exec; e != nil {
		cfg.Exec = &ExecConfig{
			Command:            e.Command,
			Args:               e.Args,
			Env:                convertEnv[ExecEnvVar](e.Env),
			APIVersion:         e.APIVersion,
			ProvideClusterInfo: e.ProvideClusterInfo,
			InstallHint:        e.InstallHint,
		}
	}
	return cfg, nil
}

// convertEnv converts exec plugin variables between ExecEnvVar and
// transport.ExecEnvVar; nil stays nil.
func convertEnv[To, From ~struct{ Name, Value string }](vars []From) []To {
	if vars == nil {
		return nil
	}
	out := make([]To, len(vars))
	for i, v := range vars {
		out[i] = To(v)
	}
	return out
}
