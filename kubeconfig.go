package lease

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"k8s.io/apimachinery/pkg/util/yaml"
)

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
// current-context. context names the context to use; "" means the
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
func LoadKubeconfig(path, context string) (*Config, error) {
	fromEnv := false
	if path == "" {
		var err error
		if path, fromEnv, err = defaultKubeconfigPath(); err != nil {
			return nil, err
		}
	}
	kc, err := readKubeconfigs(filepath.SplitList(path))
	if err != nil {
		var none *noKubeconfigError
		if errors.As(err, &none) {
			none.fromEnv = fromEnv
		}
		return nil, err
	}
	return kc.config(context)
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
	if os.Getenv("KUBECONFIG") != "" {
		return LoadKubeconfig("", "")
	}
	tried := []string{"$KUBECONFIG (not set)"}
	if os.Getenv("KUBERNETES_SERVICE_HOST") != "" {
		return InClusterConfig()
	}
	tried = append(tried, "in-cluster ($KUBERNETES_SERVICE_HOST not set)")
	home, err := os.UserHomeDir()
	if err != nil {
		tried = append(tried, fmt.Sprintf("~/.kube/config (%v)", err))
	} else {
		file := filepath.Join(home, ".kube", "config")
		cfg, err := LoadKubeconfig(file, "")
		if !errors.As(err, new(*noKubeconfigError)) {
			return cfg, err
		}
		tried = append(tried, file+" (does not exist)")
	}
	return nil, fmt.Errorf("lease: no Kubernetes configuration found; tried %s", strings.Join(tried, ", "))
}

// defaultKubeconfigPath is $KUBECONFIG if set (fromEnv is then true), else
// ~/.kube/config.
func defaultKubeconfigPath() (path string, fromEnv bool, err error) {
	if env := os.Getenv("KUBECONFIG"); env != "" {
		return env, true, nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", false, fmt.Errorf("lease: kubeconfig: $KUBECONFIG is not set and the home directory is unknown: %w", err)
	}
	return filepath.Join(home, ".kube", "config"), false, nil
}

// noKubeconfigError says that none of the kubeconfig files exists.
type noKubeconfigError struct {
	paths   []string
	fromEnv bool // the paths came from $KUBECONFIG
}

func (e *noKubeconfigError) Error() string {
	switch {
	case e.fromEnv && len(e.paths) == 0:
		return "lease: kubeconfig: $KUBECONFIG is set but names no file; unset KUBECONFIG or point it at an existing file"
	case e.fromEnv:
		return fmt.Sprintf("lease: kubeconfig: no file named by $KUBECONFIG exists (%s); unset KUBECONFIG or point it at an existing file", strings.Join(e.paths, ", "))
	default:
		return fmt.Sprintf("lease: kubeconfig: no such file: %s", strings.Join(e.paths, string(os.PathListSeparator)))
	}
}

func (e *noKubeconfigError) Unwrap() error { return fs.ErrNotExist }

// The subset of the kubeconfig format that is read. Refused fields are
// decoded only to be detected.
type (
	kubeconfigFile struct {
		CurrentContext string `json:"current-context"`
		Clusters       []struct {
			Name    string            `json:"name"`
			Cluster kubeconfigCluster `json:"cluster"`
		} `json:"clusters"`
		Users []struct {
			Name string         `json:"name"`
			User kubeconfigUser `json:"user"`
		} `json:"users"`
		Contexts []struct {
			Name    string            `json:"name"`
			Context kubeconfigContext `json:"context"`
		} `json:"contexts"`
	}
	kubeconfigCluster struct {
		Server                   string `json:"server"`
		CertificateAuthority     string `json:"certificate-authority"`
		CertificateAuthorityData string `json:"certificate-authority-data"`
		InsecureSkipTLSVerify    bool   `json:"insecure-skip-tls-verify"`
		TLSServerName            string `json:"tls-server-name"`
		ProxyURL                 string `json:"proxy-url"`
	}
	kubeconfigUser struct {
		Token                 string          `json:"token"`
		TokenFile             string          `json:"tokenFile"`
		ClientCertificate     string          `json:"client-certificate"`
		ClientCertificateData string          `json:"client-certificate-data"`
		ClientKey             string          `json:"client-key"`
		ClientKeyData         string          `json:"client-key-data"`
		AuthProvider          json.RawMessage `json:"auth-provider"`
		Exec                  *kubeconfigExec `json:"exec"`
		Username              json.RawMessage `json:"username"`
		Password              json.RawMessage `json:"password"`
		As                    json.RawMessage `json:"as"`
		AsUID                 json.RawMessage `json:"as-uid"`
		AsGroups              json.RawMessage `json:"as-groups"`
		AsUserExtra           json.RawMessage `json:"as-user-extra"`
	}
	kubeconfigExec struct {
		Command string   `json:"command"`
		Args    []string `json:"args"`
		Env     []struct {
			Name  string `json:"name"`
			Value string `json:"value"`
		} `json:"env"`
		APIVersion         string `json:"apiVersion"`
		InstallHint        string `json:"installHint"`
		ProvideClusterInfo bool   `json:"provideClusterInfo"`
		InteractiveMode    string `json:"interactiveMode"`
	}
	kubeconfigContext struct {
		Cluster   string `json:"cluster"`
		User      string `json:"user"`
		Namespace string `json:"namespace"`
	}
)

// defined is an entry with the file that defined it.
type defined[T any] struct {
	file string
	v    T
}

// kubeconfig is the merge of several kubeconfig files.
type kubeconfig struct {
	files          []string // the files read, in order
	currentContext string
	clusters       map[string]defined[kubeconfigCluster]
	users          map[string]defined[kubeconfigUser]
	contexts       map[string]defined[kubeconfigContext]
}

// readKubeconfigs reads and merges the files that exist among paths.
func readKubeconfigs(paths []string) (*kubeconfig, error) {
	kc := &kubeconfig{
		clusters: map[string]defined[kubeconfigCluster]{},
		users:    map[string]defined[kubeconfigUser]{},
		contexts: map[string]defined[kubeconfigContext]{},
	}
	var named []string
	seen := map[string]bool{}
	for _, p := range paths {
		if p == "" {
			continue
		}
		named = append(named, p)
		file, err := filepath.Abs(p)
		if err != nil {
			return nil, fmt.Errorf("lease: kubeconfig %s: %w", p, err)
		}
		if seen[file] {
			continue
		}
		seen[file] = true
		data, err := os.ReadFile(file)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("lease: kubeconfig %s: %w", file, err)
		}
		if err := kc.merge(file, data); err != nil {
			return nil, err
		}
	}
	if len(kc.files) == 0 {
		return nil, &noKubeconfigError{paths: named}
	}
	return kc, nil
}

// merge adds the entries of one file that earlier files did not define.
func (kc *kubeconfig) merge(file string, data []byte) error {
	js, err := yaml.ToJSON(data)
	if err != nil {
		return fmt.Errorf("lease: kubeconfig %s: invalid YAML: %w", file, err)
	}
	var f kubeconfigFile
	if err := json.Unmarshal(js, &f); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return fmt.Errorf("lease: kubeconfig %s: not a kubeconfig file: field %s: unexpected %s", file, te.Field, te.Value)
		}
		return fmt.Errorf("lease: kubeconfig %s: not a kubeconfig file: %w", file, err)
	}
	kc.files = append(kc.files, file)
	if kc.currentContext == "" {
		kc.currentContext = f.CurrentContext
	}
	for _, c := range f.Clusters {
		if _, ok := kc.clusters[c.Name]; !ok {
			kc.clusters[c.Name] = defined[kubeconfigCluster]{file, c.Cluster}
		}
	}
	for _, u := range f.Users {
		if _, ok := kc.users[u.Name]; !ok {
			kc.users[u.Name] = defined[kubeconfigUser]{file, u.User}
		}
	}
	for _, c := range f.Contexts {
		if _, ok := kc.contexts[c.Name]; !ok {
			kc.contexts[c.Name] = defined[kubeconfigContext]{file, c.Context}
		}
	}
	return nil
}

// config builds the Config for the named context ("" = current-context).
func (kc *kubeconfig) config(name string) (*Config, error) {
	read := strings.Join(kc.files, ", ")
	if name == "" {
		if name = kc.currentContext; name == "" {
			return nil, fmt.Errorf("lease: kubeconfig: no context given and no current-context set (read %s)", read)
		}
	}
	ctx, ok := kc.contexts[name]
	if !ok {
		return nil, fmt.Errorf("lease: kubeconfig: context %q not found (read %s)", name, read)
	}
	ctxErr := entryError(ctx.file, "context", name)
	if ctx.v.Cluster == "" {
		return nil, ctxErr("cluster is not set")
	}
	cluster, ok := kc.clusters[ctx.v.Cluster]
	if !ok {
		return nil, ctxErr("cluster %q not found (read %s)", ctx.v.Cluster, read)
	}
	cfg := &Config{Namespace: ctx.v.Namespace}
	if err := applyCluster(cfg, cluster.file, ctx.v.Cluster, cluster.v); err != nil {
		return nil, err
	}
	if ctx.v.User == "" {
		return cfg, nil
	}
	user, ok := kc.users[ctx.v.User]
	if !ok {
		return nil, ctxErr("user %q not found (read %s)", ctx.v.User, read)
	}
	if err := applyUser(cfg, user.file, ctx.v.User, user.v); err != nil {
		return nil, err
	}
	return cfg, nil
}

func applyCluster(cfg *Config, file, name string, c kubeconfigCluster) error {
	fail := entryError(file, "cluster", name)
	if c.ProxyURL != "" {
		if _, problem := parseProxyURL(c.ProxyURL); problem != "" {
			return fail("proxy-url %q %s", redactURL(c.ProxyURL), problem)
		}
	}
	if c.Server == "" {
		return fail("server is not set")
	}
	cfg.Host = c.Server
	if !strings.Contains(cfg.Host, "://") {
		cfg.Host = "https://" + cfg.Host
	}
	cfg.CAFile = resolvePath(file, c.CertificateAuthority)
	var err error
	if cfg.CAData, err = decodeData(fail, "certificate-authority-data", c.CertificateAuthorityData); err != nil {
		return err
	}
	cfg.Insecure = c.InsecureSkipTLSVerify
	cfg.ServerName = c.TLSServerName
	cfg.ProxyURL = c.ProxyURL
	return nil
}

func applyUser(cfg *Config, file, name string, u kubeconfigUser) error {
	fail := entryError(file, "user", name)
	switch {
	case isSet(u.AuthProvider):
		return fail("auth-provider is not supported; use an exec credential plugin (gke-gcloud-auth-plugin, kubelogin) or a token")
	case isSet(u.Username):
		return fail("username: basic auth is not supported")
	case isSet(u.Password):
		return fail("password: basic auth is not supported")
	}
	for _, f := range []struct {
		name string
		v    json.RawMessage
	}{{"as", u.As}, {"as-uid", u.AsUID}, {"as-groups", u.AsGroups}, {"as-user-extra", u.AsUserExtra}} {
		if isSet(f.v) {
			return fail("%s: impersonation is not supported", f.name)
		}
	}
	cfg.BearerToken = u.Token
	cfg.BearerTokenFile = resolvePath(file, u.TokenFile)
	cfg.CertFile = resolvePath(file, u.ClientCertificate)
	cfg.KeyFile = resolvePath(file, u.ClientKey)
	var err error
	if cfg.CertData, err = decodeData(fail, "client-certificate-data", u.ClientCertificateData); err != nil {
		return err
	}
	if cfg.KeyData, err = decodeData(fail, "client-key-data", u.ClientKeyData); err != nil {
		return err
	}
	if u.Exec == nil {
		return nil
	}
	ec, err := execFromKubeconfig(fail, file, u.Exec)
	if err != nil {
		return err
	}
	// As kubectl: static credentials win over the plugin.
	if cfg.BearerToken == "" && cfg.BearerTokenFile == "" && cfg.CertFile == "" && cfg.KeyFile == "" &&
		len(cfg.CertData) == 0 && len(cfg.KeyData) == 0 {
		cfg.Exec = ec
	}
	return nil
}

// execFromKubeconfig checks a user's exec entry and converts it. A command
// with a path separator is resolved against the directory of file.
func execFromKubeconfig(fail func(string, ...any) error, file string, e *kubeconfigExec) (*ExecConfig, error) {
	switch {
	case e.Command == "":
		return nil, fail("exec: command is not set")
	case e.APIVersion == "":
		return nil, fail("exec: apiVersion is not set; use %s or %s", execV1, execV1beta1)
	case e.APIVersion != execV1 && e.APIVersion != execV1beta1:
		return nil, fail("exec: apiVersion %q is not supported; use %s or %s", e.APIVersion, execV1, execV1beta1)
	}
	switch e.InteractiveMode {
	case "", "Never", "IfAvailable":
	case "Always":
		return nil, fail("exec: interactiveMode Always needs a terminal, and a lease's plugin runs without one; use IfAvailable or Never")
	default:
		return nil, fail("exec: interactiveMode %q is not Never, IfAvailable or Always", e.InteractiveMode)
	}
	ec := &ExecConfig{
		Command:            e.Command,
		Args:               e.Args,
		APIVersion:         e.APIVersion,
		ProvideClusterInfo: e.ProvideClusterInfo,
		InstallHint:        e.InstallHint,
	}
	if strings.ContainsRune(ec.Command, filepath.Separator) {
		ec.Command = resolvePath(file, ec.Command)
	}
	for i, v := range e.Env {
		if v.Name == "" {
			return nil, fail("exec: env[%d]: name is not set", i)
		}
		ec.Env = append(ec.Env, ExecEnvVar{Name: v.Name, Value: v.Value})
	}
	return ec, nil
}

// entryError returns a constructor of errors about one entry of a file, as
// in `lease: kubeconfig /f: user "alice": ...`.
func entryError(file, kind, name string) func(format string, args ...any) error {
	prefix := fmt.Sprintf("lease: kubeconfig %s: %s %q: ", file, kind, name)
	return func(format string, args ...any) error {
		return fmt.Errorf(prefix+format, args...)
	}
}

// decodeData decodes a base64 -data field; the error never holds the value.
func decodeData(fail func(string, ...any) error, field, s string) ([]byte, error) {
	if s == "" {
		return nil, nil
	}
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, fail("%s is not valid base64", field)
	}
	return b, nil
}

// resolvePath resolves a relative path against the directory of file.
func resolvePath(file, p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(filepath.Dir(file), p)
}

// isSet reports whether a field was given a value (not absent, not null).
func isSet(raw json.RawMessage) bool {
	return len(raw) > 0 && string(raw) != "null"
}
