package lease

import "github.com/kubelease/lease/internal/kubeconfig"

// LoadKubeconfig returns a Config from kubeconfig files, as kubectl reads
// them.
//
// path is one file or a list of files separated by os.PathListSeparator, as
// in $KUBECONFIG; "" means $KUBECONFIG if set, else ~/.kube/config. Files in
// the list that do not exist are skipped; it is an error if none exists
// (never a fall back to ~/.kube/config when $KUBECONFIG is set, as with
// kubectl).
// Files are merged like kubectl does: for clusters, users and contexts the
// first file to define a name wins, and so does the first file to set
// current-context. contextName names the context to use; "" means the
// current-context.
//
// Supported: cluster server, certificate-authority,
// certificate-authority-data, insecure-skip-tls-verify, tls-server-name and
// proxy-url (http, https, socks5 or socks5h; Config.ProxyURL); user token,
// tokenFile (re-read as it rotates), client-certificate,
// client-certificate-data, client-key and client-key-data, and exec
// credential plugins (Config.Exec: command, args, env, apiVersion v1 or
// v1beta1, provideClusterInfo, installHint; interactiveMode Never or
// IfAvailable, the plugin never gets a terminal); context namespace, which
// becomes Config.Namespace. The -data fields are base64. Relative file
// paths, and an exec command that contains a path separator, are resolved
// against the directory of the file that defines the entry; an exec command
// without one is looked up in $PATH. As with kubectl, a user that has a
// token, tokenFile or client certificate does not run its exec plugin (the
// exec entry is still checked).
//
// Refused with an error, when the chosen context uses them: user
// auth-provider (use the exec credential plugin that replaces it, e.g.
// gke-gcloud-auth-plugin or kubelogin, or a token), exec with interactiveMode Always (there is no terminal),
// exec without command or with an apiVersion other than v1 or v1beta1,
// username and password (basic auth), impersonation (as, as-uid, as-groups,
// as-user-extra) and an invalid proxy-url. Other fields are ignored. Errors
// name the file, the entry and the field, and never hold a token, a
// password or an exec env value.
func LoadKubeconfig(path, contextName string) (*Config, error) {
	return configFrom(kubeconfig.Load(path, contextName))
}

// DefaultConfig returns the Config a process most likely means, found as
// kubectl finds it: when $KUBECONFIG is set, from its files and only from
// them (if none of them exists, the error names them; the in-cluster
// config and ~/.kube/config, which may be another cluster, are not tried);
// else InClusterConfig when $KUBERNETES_SERVICE_HOST is set; else from
// ~/.kube/config. A kubeconfig's current context is used. The first of
// these that is present is used, and its error, if any, is returned; if
// none is present the error says what was tried.
func DefaultConfig() (*Config, error) {
	return configFrom(kubeconfig.Default())
}
