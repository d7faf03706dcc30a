package lease

import (
	"net/http"
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
	// every minute and after any 401 (the request is then retried once). A
	// failed re-read keeps the previous token.
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

	// HTTPClient, when set, is used as-is for every request: TLS, proxy and
	// timeouts are then the caller's business, and the library's HTTP/2 pings
	// and dropping of dead connections do not apply.
	HTTPClient *http.Client
}
