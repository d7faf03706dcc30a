package lease

import "github.com/kubelease/lease/internal/kubeconfig"

// InClusterConfig returns a Config for a process running in a Kubernetes
// pod: the API server from $KUBERNETES_SERVICE_HOST and
// $KUBERNETES_SERVICE_PORT over https, the pod's service-account CA bundle
// and token file (the token is re-read as kubelet rotates it), and the
// namespace from $POD_NAMESPACE, else the service account's namespace file,
// else "default".
func InClusterConfig() (*Config, error) {
	return configFrom(kubeconfig.InCluster())
}
