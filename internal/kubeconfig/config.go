// Package kubeconfig finds where the Kubernetes API server is and how to
// authenticate to it, as kubectl does: it reads and merges kubeconfig files
// (Load), reads a pod's service-account environment (InCluster), and
// chooses between them (Default).
//
// Each returns a Config, which package lease converts to lease.Config in one
// place; lease.LoadKubeconfig, lease.InClusterConfig and
// lease.DefaultConfig document the behaviour users rely on. Errors start
// with "lease: ", name the file and the entry, and never hold a token, a
// password or an exec env value.
package kubeconfig

import "github.com/kubelease/lease/internal/transport"

// Config is what a kubeconfig context or a pod's service account says
// about the API server; the fields mean what lease.Config's fields of the
// same names mean. File paths are absolute when they come from a
// kubeconfig file.
type Config struct {
	Host      string
	Namespace string

	BearerToken     string
	BearerTokenFile string

	CAData            []byte
	CAFile            string
	CertData, KeyData []byte
	CertFile, KeyFile string
	ServerName        string
	Insecure          bool

	ProxyURL string

	Exec *transport.ExecConfig
}
