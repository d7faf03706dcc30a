package lease

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
)

// serviceAccountDir is where kubelet mounts a pod's service-account token,
// CA bundle and namespace. Tests point it elsewhere.
var serviceAccountDir = "/var/run/secrets/kubernetes.io/serviceaccount"

// InClusterConfig returns a Config for a process running in a Kubernetes
// pod: the API server from $KUBERNETES_SERVICE_HOST and
// $KUBERNETES_SERVICE_PORT over https, the pod's service-account CA bundle
// and token file (the token is re-read as kubelet rotates it), and the
// namespace from $POD_NAMESPACE, else the service account's namespace file,
// else "default".
func InClusterConfig() (*Config, error) {
	host, port := os.Getenv("KUBERNETES_SERVICE_HOST"), os.Getenv("KUBERNETES_SERVICE_PORT")
	if host == "" || port == "" {
		return nil, errors.New("lease: not running in a cluster: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT must be set")
	}
	tokenFile := filepath.Join(serviceAccountDir, "token")
	f, err := os.Open(tokenFile)
	if err != nil {
		return nil, fmt.Errorf("lease: in-cluster config: service-account token file is not readable: %w", err)
	}
	f.Close()
	return &Config{
		Host:            "https://" + net.JoinHostPort(host, port),
		Namespace:       inClusterNamespace(),
		BearerTokenFile: tokenFile,
		CAFile:          filepath.Join(serviceAccountDir, "ca.crt"),
	}, nil
}

// inClusterNamespace returns $POD_NAMESPACE, else the service account's
// namespace file, else "default".
func inClusterNamespace() string {
	if ns := os.Getenv("POD_NAMESPACE"); ns != "" {
		return ns
	}
	if b, err := os.ReadFile(filepath.Join(serviceAccountDir, "namespace")); err == nil {
		if ns := strings.TrimSpace(string(b)); ns != "" {
			return ns
		}
	}
	return "default"
}
