package lease

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"

	"k8s.io/utils/clock"
)

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

// The ExecCredential API versions a plugin may speak.
const (
	execV1      = "client.authentication.k8s.io/v1"
	execV1beta1 = "client.authentication.k8s.io/v1beta1"
)

// maxExecOutput bounds how much of a plugin's standard output is kept; an
// ExecCredential with a certificate chain is a few KiB.
const maxExecOutput = 1 << 20

// execTimeout is how long a plugin may run. Tests shorten it; an entry
// takes the value in force when it is created.
var execTimeout = 30 * time.Second

// The wire form of an ExecCredential, v1 and v1beta1 alike.
type (
	execCredential struct {
		APIVersion string      `json:"apiVersion"`
		Kind       string      `json:"kind"`
		Spec       execSpec    `json:"spec"`
		Status     *execStatus `json:"status,omitempty"`
	}
	execSpec struct {
		Cluster     *execCluster `json:"cluster,omitempty"`
		Interactive bool         `json:"interactive"`
	}
	execCluster struct {
		Server                   string `json:"server"`
		TLSServerName            string `json:"tls-server-name,omitempty"`
		InsecureSkipTLSVerify    bool   `json:"insecure-skip-tls-verify,omitempty"`
		CertificateAuthorityData []byte `json:"certificate-authority-data,omitempty"`
		ProxyURL                 string `json:"proxy-url,omitempty"`
	}
	execStatus struct {
		ExpirationTimestamp   string `json:"expirationTimestamp,omitempty"`
		Token                 string `json:"token,omitempty"`
		ClientCertificateData string `json:"clientCertificateData,omitempty"`
		ClientKeyData         string `json:"clientKeyData,omitempty"`
	}
)

// execCred is one answer of a plugin.
type execCred struct {
	gen    uint64 // numbers the answers of one entry, from 1
	token  string
	cert   *tls.Certificate // nil: none
	expiry time.Time        // zero: until a 401
}

// execRun is one run of a plugin, awaited by every request that needs it.
type execRun struct {
	done chan struct{} // closed when cred or err is set
	cred *execCred
	err  error
}

// execCache is the process-wide cache of one plugin setup: one ExecConfig
// (and cluster, when it is provided to the plugin).
type execCache struct {
	key     string     // fingerprint of cfg and the cluster
	cfg     ExecConfig // APIVersion filled in
	info    []byte     // KUBERNETES_EXEC_INFO
	timeout time.Duration

	mu       sync.Mutex // guards the fields below
	cur      *execCred  // nil: none, or dropped after a 401
	lastCert *tls.Certificate
	certGen  uint64 // counts the changes of lastCert
	gen      uint64
	run      *execRun // non-nil while the plugin runs
}

var (
	execCachesMu sync.Mutex // guards execCaches
	execCaches   = map[string]*execCache{}
)

// execCacheFor validates cfg.Exec and returns the process-wide cache entry
// for it.
func execCacheFor(cfg *Config) (*execCache, error) {
	ec := *cfg.Exec
	if ec.APIVersion == "" {
		ec.APIVersion = execV1
	}
	if err := validateExec(cfg, &ec); err != nil {
		return nil, err
	}
	var cluster *execCluster
	if ec.ProvideClusterInfo {
		cluster = &execCluster{Server: cfg.Host, TLSServerName: cfg.ServerName,
			InsecureSkipTLSVerify: cfg.Insecure, CertificateAuthorityData: cfg.CAData, ProxyURL: cfg.ProxyURL}
		if len(cluster.CertificateAuthorityData) == 0 && cfg.CAFile != "" {
			b, err := os.ReadFile(cfg.CAFile)
			if err != nil {
				return nil, fmt.Errorf("lease: reading Config.CAFile: %w", err)
			}
			cluster.CertificateAuthorityData = b
		}
	}
	info, err := json.Marshal(execCredential{APIVersion: ec.APIVersion, Kind: "ExecCredential",
		Spec: execSpec{Cluster: cluster, Interactive: false}})
	if err != nil {
		return nil, fmt.Errorf("lease: encoding KUBERNETES_EXEC_INFO: %w", err)
	}
	fp, err := json.Marshal(struct {
		Exec    ExecConfig
		Cluster *execCluster
	}{ec, cluster})
	if err != nil {
		return nil, fmt.Errorf("lease: fingerprinting Config.Exec: %w", err)
	}
	sum := sha256.Sum256(fp)
	key := hex.EncodeToString(sum[:])

	execCachesMu.Lock()
	defer execCachesMu.Unlock()
	if e, ok := execCaches[key]; ok {
		return e, nil
	}
	ec.Args = append([]string(nil), ec.Args...)
	ec.Env = append([]ExecEnvVar(nil), ec.Env...)
	e := &execCache{key: key, cfg: ec, info: info, timeout: execTimeout}
	execCaches[key] = e
	return e, nil
}

// validateExec checks an ExecConfig (with APIVersion filled in) and that
// cfg sets no other credentials. Errors never hold an Env value.
func validateExec(cfg *Config, ec *ExecConfig) error {
	if ec.Command == "" {
		return errors.New("lease: Config.Exec.Command is empty")
	}
	if ec.APIVersion != execV1 && ec.APIVersion != execV1beta1 {
		return fmt.Errorf("lease: Config.Exec.APIVersion %q is not supported; use %q or %q", ec.APIVersion, execV1, execV1beta1)
	}
	for i, v := range ec.Env {
		if v.Name == "" || strings.ContainsAny(v.Name, "=\x00") {
			return fmt.Errorf("lease: Config.Exec.Env[%d].Name %q is not a valid variable name", i, v.Name)
		}
	}
	if cfg.BearerToken != "" || cfg.BearerTokenFile != "" ||
		len(cfg.CertData) > 0 || len(cfg.KeyData) > 0 || cfg.CertFile != "" || cfg.KeyFile != "" {
		return errors.New("lease: Config.Exec cannot be combined with Config.BearerToken, BearerTokenFile or a client certificate (CertData, KeyData, CertFile, KeyFile)")
	}
	return nil
}

// get returns the cached answer if it has not expired by clk, else runs
// the plugin (or waits for the run under way) and returns its answer.
func (e *execCache) get(ctx context.Context, clk clock.PassiveClock) (*execCred, error) {
	e.mu.Lock()
	if c := e.cur; c != nil && (c.expiry.IsZero() || clk.Now().Before(c.expiry)) {
		e.mu.Unlock()
		return c, nil
	}
	r := e.run
	if r == nil {
		r = &execRun{done: make(chan struct{})}
		e.run = r
		go e.runPlugin(r)
	}
	e.mu.Unlock()
	select {
	case <-r.done:
		return r.cred, r.err
	case <-ctx.Done():
		return nil, fmt.Errorf("lease: exec plugin %q: waiting for it: %w", e.cfg.Command, context.Cause(ctx))
	}
}

// invalidate drops answer gen after a 401, so that the next request runs
// the plugin again. A newer answer is kept: another request already got it.
func (e *execCache) invalidate(gen uint64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.cur != nil && e.cur.gen == gen {
		e.cur = nil
	}
}

// clientCertificate returns the latest client certificate from the plugin,
// or an empty one (send none). Requests run the plugin before they dial,
// so this is the certificate for the request's credentials.
func (e *execCache) clientCertificate(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.lastCert == nil {
		return &tls.Certificate{}, nil
	}
	return e.lastCert, nil
}

// certGeneration counts the changes of the plugin's client certificate: a
// transport made for an older one must not be used any more.
func (e *execCache) certGeneration() uint64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.certGen
}

// runPlugin runs the plugin once, stores its answer and wakes the waiters.
func (e *execCache) runPlugin(r *execRun) {
	cred, err := e.exec()
	e.mu.Lock()
	if err == nil {
		e.gen++
		cred.gen = e.gen
		e.cur = cred
		if !sameCert(e.lastCert, cred.cert) {
			e.certGen++
		}
		e.lastCert = cred.cert
	}
	e.run = nil
	r.cred, r.err = cred, err
	e.mu.Unlock()
	close(r.done)
}

func sameCert(a, b *tls.Certificate) bool {
	if a == nil || b == nil || len(a.Certificate) == 0 || len(b.Certificate) == 0 {
		return a == b
	}
	return bytes.Equal(a.Certificate[0], b.Certificate[0])
}

// execError is a failed plugin run. Its text names the command and the
// problem, never the plugin's standard output or an Env value.
type execError struct {
	msg string
	err error
}

func (e *execError) Error() string { return e.msg }
func (e *execError) Unwrap() error { return e.err }

func (e *execCache) fail(cause error, format string, args ...any) error {
	return &execError{msg: fmt.Sprintf("lease: exec plugin %q: ", e.cfg.Command) + fmt.Sprintf(format, args...), err: cause}
}

// exec runs the plugin and decodes its answer.
func (e *execCache) exec() (*execCred, error) {
	ctx, cancel := context.WithTimeout(context.Background(), e.timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, e.cfg.Command, e.cfg.Args...)
	env := os.Environ()
	for _, v := range e.cfg.Env {
		env = append(env, v.Name+"="+v.Value)
	}
	cmd.Env = append(env, "KUBERNETES_EXEC_INFO="+string(e.info))
	cmd.Stdin = nil // not a terminal: /dev/null
	stdout := &cappedBuffer{max: maxExecOutput}
	stderr := &cappedBuffer{max: 4 << 10}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	cmd.WaitDelay = time.Second // a child that keeps the pipes open
	err := cmd.Run()
	errText := func() string {
		if s := snippet(stderr.buf.Bytes()); s != "" {
			return "; stderr: " + s
		}
		return ""
	}
	var exitErr *exec.ExitError
	switch {
	case err != nil && ctx.Err() != nil:
		return nil, e.fail(nil, "did not finish within %v%s", e.timeout, errText())
	case errors.As(err, &exitErr):
		return nil, e.fail(err, "%v%s", err, errText())
	case errors.Is(err, exec.ErrNotFound) || errors.Is(err, fs.ErrNotExist):
		hint := ""
		if h := strings.Join(strings.Fields(e.cfg.InstallHint), " "); h != "" {
			hint = "; install hint: " + h
		}
		return nil, e.fail(err, "command not found%s", hint)
	case err != nil:
		return nil, e.fail(err, "cannot run it: %v", stripPath(err))
	case stdout.over:
		return nil, e.fail(nil, "standard output is larger than %d bytes", maxExecOutput)
	}
	return e.parse(stdout.buf.Bytes())
}

// stripPath drops the path of an *fs.PathError (it is the command, which
// the message already names).
func stripPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// parse decodes a plugin's standard output. Errors quote at most short,
// bounded fields of it, never a credential.
func (e *execCache) parse(out []byte) (*execCred, error) {
	if len(bytes.TrimSpace(out)) == 0 {
		return nil, e.fail(nil, "printed nothing on standard output; want an ExecCredential")
	}
	var ec execCredential
	if err := json.Unmarshal(out, &ec); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return nil, e.fail(nil, "standard output is not JSON (syntax error at byte %d); want an ExecCredential", se.Offset)
		}
		return nil, e.fail(nil, "standard output is not an ExecCredential JSON object")
	}
	if ec.Kind != "ExecCredential" {
		return nil, e.fail(nil, "standard output has kind %s, want \"ExecCredential\"", shortQuote(ec.Kind))
	}
	if ec.APIVersion != e.cfg.APIVersion {
		return nil, e.fail(nil, "returned apiVersion %s, want %q (Config.Exec.APIVersion)", shortQuote(ec.APIVersion), e.cfg.APIVersion)
	}
	st := ec.Status
	if st == nil {
		return nil, e.fail(nil, "ExecCredential has no status")
	}
	cred := &execCred{token: st.Token}
	switch {
	case (st.ClientCertificateData == "") != (st.ClientKeyData == ""):
		return nil, e.fail(nil, "status.clientCertificateData and status.clientKeyData must be set together")
	case st.ClientCertificateData != "":
		cert, err := tls.X509KeyPair([]byte(st.ClientCertificateData), []byte(st.ClientKeyData))
		if err != nil {
			return nil, e.fail(nil, "status.clientCertificateData and status.clientKeyData are not a PEM certificate and its key: %v", err)
		}
		cred.cert = &cert
	case st.Token == "":
		return nil, e.fail(nil, "ExecCredential has neither status.token nor status.clientCertificateData")
	}
	if st.ExpirationTimestamp != "" {
		t, err := time.Parse(time.RFC3339, st.ExpirationTimestamp)
		if err != nil {
			return nil, e.fail(nil, "status.expirationTimestamp %s is not an RFC 3339 time", shortQuote(st.ExpirationTimestamp))
		}
		cred.expiry = t
	}
	return cred, nil
}

// shortQuote quotes the start of a short field of a plugin's answer.
func shortQuote(s string) string {
	const n = 64
	if len(s) > n {
		return fmt.Sprintf("%q...", s[:n])
	}
	return fmt.Sprintf("%q", s)
}

// cappedBuffer keeps the first max bytes written to it and accepts (and
// drops) the rest, so that a chatty plugin is not blocked or broken.
type cappedBuffer struct {
	max  int
	buf  bytes.Buffer
	over bool
}

func (b *cappedBuffer) Write(p []byte) (int, error) {
	if room := b.max - b.buf.Len(); room < len(p) {
		b.over = true
		b.buf.Write(p[:max(room, 0)])
	} else {
		b.buf.Write(p)
	}
	return len(p), nil
}
