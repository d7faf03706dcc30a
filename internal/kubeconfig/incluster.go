package kubeconfig

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
)

// ServiceAccountDir is where kubelet mounts a pod's service-account token,
// CA bundle and namespace. Tests (of this package and of package lease)
// point it elsewhere.
var ServiceAccountDir = "/var/run/secrets/kubernetes.io/serviceaccount"

// InCluster returns the Config of a process running in a Kubernetes pod,
// as lease.InClusterConfig documents: the API server from
// $KUBERNETES_SERVICE_HOST and $KUBERNETES_SERVICE_PORT over https, the
// service account's CA bundle and token file, and the namespace from
// $POD_NAMESPACE, else the service account's namespace file, else
// "default".
func InCluster() (*Config, error) {
	host, port := os.Getenv("KUBERNETES_SERVICE_HOST"), os.Getenv("KUBERNETES_SERVICE_PORT")
	if host == "" || port == "" {
		return nil, errors.New("lease: not running in a cluster: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT must be set")
	}
	tokenFile := filepath.Join(ServiceAccountDir, "token")
	f, err := os.Open(tokenFile)
	if err != nil {
		return nil, fmt.Errorf("lease: in-cluster config: service-account token file is not readable: %w", err)
	}
	f.Close()
	return &Config{
		Host:            "https://" + net.JoinHostPort(host, port),
		Namespace:       inClusterNamespace(),
		BearerTokenFile: tokenFile,
		CAFile:          filepath.Join(ServiceAccountDir, "ca.crt"),
	}, nil
}

// inClusterNamespace returns $POD_NAMESPACE, else the service account's
// namespace file, else "default".
func inClusterNamespace() string {
	if ns := os.Getenv("POD_NAMESPACE"); ns != "" {
		return ns
	}
	if b, err := os.ReadFile(filepath.Join(ServiceAccountDir, "namespace")); err == nil {
		if ns := strings.TrimSpace(string(b)); ns != "" {
			return ns
		}
	}
	return "default"
}
