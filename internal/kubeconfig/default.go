package kubeconfig

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Default returns the Config a process most likely means, found as kubectl
// finds it (see lease.DefaultConfig): when $KUBECONFIG is set, from its
// files and only from them; else InCluster when $KUBERNETES_SERVICE_HOST
// is set; else from ~/.kube/config. The first of these that is present is
// used, and its error, if any, is returned; if none is present the error
// says what was tried.
func Default() (*Config, error) {
	if os.Getenv("KUBECONFIG") != "" {
		return Load("", "")
	}
	tried := []string{"$KUBECONFIG (not set)"}
	if os.Getenv("KUBERNETES_SERVICE_HOST") != "" {
		return InCluster()
	}
	tried = append(tried, "in-cluster ($KUBERNETES_SERVICE_HOST not set)")
	home, err := os.UserHomeDir()
	if err != nil {
		tried = append(tried, fmt.Sprintf("~/.kube/config (%v)", err))
	} else {
		file := filepath.Join(home, ".kube", "config")
		cfg, err := Load(file, "")
		if !errors.As(err, new(*noFileError)) {
			return cfg, err
		}
		tried = append(tried, file+" (does not exist)")
	}
	return nil, fmt.Errorf("lease: no Kubernetes configuration found; tried %s", strings.Join(tried, ", "))
}
