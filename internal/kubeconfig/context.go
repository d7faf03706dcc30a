package kubeconfig

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/kubelease/lease/internal/transport"
)

// config builds the Config for the named context ("" = current-context).
func (kc *merged) config(name string) (*Config, error) {
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

func applyCluster(cfg *Config, file, name string, c fileCluster) error {
	fail := entryError(file, "cluster", name)
	if c.ProxyURL != "" {
		if _, problem := transport.ParseProxyURL(c.ProxyURL); problem != "" {
			return fail("proxy-url %q %s", transport.RedactURL(c.ProxyURL), problem)
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

func applyUser(cfg *Config, file, name string, u fileUser) error {
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
	ec, err := execFromFile(fail, file, u.Exec)
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

// execFromFile checks a user's exec entry and converts it. A command with
// a path separator is resolved against the directory of file.
func execFromFile(fail func(string, ...any) error, file string, e *fileExec) (*transport.ExecConfig, error) {
	switch {
	case e.Command == "":
		return nil, fail("exec: command is not set")
	case e.APIVersion == "":
		return nil, fail("exec: apiVersion is not set; use %s or %s", transport.ExecV1, transport.ExecV1beta1)
	case e.APIVersion != transport.ExecV1 && e.APIVersion != transport.ExecV1beta1:
		return nil, fail("exec: apiVersion %q is not supported; use %s or %s", e.APIVersion, transport.ExecV1, transport.ExecV1beta1)
	}
	switch e.InteractiveMode {
	case "", "Never", "IfAvailable":
	case "Always":
		return nil, fail("exec: interactiveMode Always needs a terminal, and a lease's plugin runs without one; use IfAvailable or Never")
	default:
		return nil, fail("exec: interactiveMode %q is not Never, IfAvailable or Always", e.InteractiveMode)
	}
	ec := &transport.ExecConfig{
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
		ec.Env = append(ec.Env, transport.ExecEnvVar{Name: v.Name, Value: v.Value})
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
