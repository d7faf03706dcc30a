package lease

// ExecConfig runs a Kubernetes exec credential plugin (the kubeconfig
// "exec" user, as kubectl runs it) for the credentials of a Config.
//
// The plugin is run without a terminal, with the process's environment plus
// Env and with KUBERNETES_EXEC_INFO set to an ExecCredential of APIVersion
// whose spec says interactive is false (and, with ProvideClusterInfo, gives
// the cluster). It must print an ExecCredential of the same APIVersion on
// stdout with status.token, or status.clientCertificateData and
// status.clientKeyData (PEM), or both, and optionally
// status.expirationTimestamp (RFC 3339). Its standard error is captured:
// the start of it goes into the error when the plugin fails.
//
// The answer is cached, for all leases in the process that use an equal
// ExecConfig (and cluster, with ProvideClusterInfo), until its
// expirationTimestamp by the lease's clock, or, without one, until the API
// server answers 401; the plugin is then run again and the request sent
// once more. The plugin never runs twice at once for one cache entry. A
// run that takes longer than 30 seconds is killed. A failed run fails the
// request, with an error naming Command and the problem; the next request
// runs the plugin again.
type ExecConfig struct {
	// Command is the plugin: a path, or a name looked up in $PATH. A
	// relative path with a separator is relative to the working directory
	// (LoadKubeconfig resolves it against the kubeconfig file's directory).
	Command string
	// Args are the plugin's arguments.
	Args []string
	// Env are variables set for the plugin, on top of the process's
	// environment. Their values are never put in an error.
	Env []ExecEnvVar
	// APIVersion is the ExecCredential version the plugin speaks:
	// "client.authentication.k8s.io/v1" or
	// "client.authentication.k8s.io/v1beta1". Empty means v1.
	APIVersion string
	// ProvideClusterInfo passes the cluster in KUBERNETES_EXEC_INFO's
	// spec.cluster: server (Config.Host), certificate-authority-data (from
	// CAData or CAFile), insecure-skip-tls-verify, tls-server-name and
	// proxy-url.
	ProvideClusterInfo bool
	// InstallHint is added to the error when Command is not found.
	InstallHint string
}

// ExecEnvVar is one environment variable set for an exec credential plugin.
type ExecEnvVar struct {
	Name, Value string
}
