// Package transport carries a lease's requests to the Kubernetes API
// server: the process-wide HTTP transports (TLS, proxy, HTTP/2 pings), the
// credentials each request carries (a bearer token, static or from a file
// that is re-read as it rotates, or the answer of an exec credential
// plugin), and the runs of those plugins.
//
// Its input is Config, which package lease converts from lease.Config in one
// place. Errors start with "lease: " and name the lease.Config field they
// are about, because that is what the user wrote.
package transport

// Config is the part of lease.Config that the transport and the
// credentials are built from; the fields mean what lease.Config's fields of
// the same names mean.
type Config struct {
	// Host is the API server's base URL; it is given to an exec plugin
	// that asks for the cluster.
	Host string

	BearerToken     string
	BearerTokenFile string

	CAData            []byte
	CAFile            string
	CertData, KeyData []byte
	CertFile, KeyFile string
	ServerName        string
	Insecure          bool

	ProxyURL string

	Exec *ExecConfig

	// CustomClient is true when the caller brings its own HTTP client
	// (lease.Config.HTTPClient): the library's transport is then not used,
	// so a client certificate cannot be presented.
	CustomClient bool
}

// ExecConfig says how to run an exec credential plugin, as
// lease.ExecConfig does.
type ExecConfig struct {
	Command            string
	Args               []string
	Env                []ExecEnvVar
	APIVersion         string // "" means ExecV1
	ProvideClusterInfo bool
	InstallHint        string
}

// ExecEnvVar is one environment variable set for an exec plugin.
type ExecEnvVar struct {
	Name, Value string
}

// The ExecCredential API versions a plugin may speak.
const (
	ExecV1      = "client.authentication.k8s.io/v1"
	ExecV1beta1 = "client.authentication.k8s.io/v1beta1"
)
