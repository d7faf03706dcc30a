package transport

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"k8s.io/utils/clock"
)

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
		ec.APIVersion = ExecV1
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
	if ec.APIVersion != ExecV1 && ec.APIVersion != ExecV1beta1 {
		return fmt.Errorf("lease: Config.Exec.APIVersion %q is not supported; use %q or %q", ec.APIVersion, ExecV1, ExecV1beta1)
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
