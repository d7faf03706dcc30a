// Package cluster runs a real kube-apiserver (built from k8s.io/kubernetes,
// see Binary) against an in-process etcd on 127.0.0.1, for kubelease's
// end-to-end tests. Linux only (process groups and PDEATHSIG keep every
// process it starts from outliving the test binary).
//
// Users known to the server (static token file):
//
//	AdminToken          "admin"          system:masters
//	LimitedToken        "limited"        Role lease-no-delete in "default": get, list, watch, create, update, patch on leases (no delete)
//	NoLeaseToken        "nolease"        no permissions
//	ByNameToken         "byname"         Role lease-by-name in "default", the shape of examples/deploy/rbac.yaml:
//	                                     create on leases and on events; get, update, delete, watch only on the Lease ByNameLease
//	ByNameNoWatchToken  "byname-nowatch" Role lease-by-name-no-watch: create (leases, events); get, update, delete (no watch)
//	                                     only on the Lease ByNameNoWatchLease
//	ShedToken           "shed"           Role lease-all in "default": every verb on leases
//	LoadToken           "load"           Role lease-all too (the load generator's user)
//
// None but "admin" is exempt from API Priority and Fairness. With
// Options.Shedding, "shed" and "load" share one small priority level, so
// that a load generator (Cluster.Overload) makes the server itself answer
// the shed user with 429 and Retry-After; see Shedding.
package cluster

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kubelease/lease"
)

// Bearer tokens of the users in the token file.
const (
	AdminToken   = "admin-token"
	LimitedToken = "limited-token"
	NoLeaseToken = "nolease-token"
	// ByNameToken's Role has the shape of examples/deploy/rbac.yaml
	// (ByNameRules(ByNameLease, true)).
	ByNameToken = "byname-token"
	// ByNameNoWatchToken's Role is the same without watch
	// (ByNameRules(ByNameNoWatchLease, false)).
	ByNameNoWatchToken = "byname-nowatch-token"
	// ShedToken's user "shed" may do anything with leases in Namespace;
	// with Options.Shedding its requests share a small priority level with
	// LoadToken's.
	ShedToken = "shed-token"
	// LoadToken's user "load" has the same rights; Cluster.Overload uses it.
	LoadToken = "load-token"
)

// The only Leases, besides creating any, that the resourceNames-restricted
// users may touch.
const (
	ByNameLease        = "e2e-by-name"
	ByNameNoWatchLease = "e2e-by-name-nowatch"
)

// PolicyRule is an RBAC rule as it appears in a Role (JSON field names as in
// rbac.authorization.k8s.io/v1).
type PolicyRule struct {
	APIGroups     []string `json:"apiGroups"`
	Resources     []string `json:"resources"`
	ResourceNames []string `json:"resourceNames,omitempty"`
	Verbs         []string `json:"verbs"`
}

// ByNameRules are the rules of examples/deploy/rbac.yaml's Role for the
// Lease name: create on any Lease (create cannot be restricted by
// resourceNames) and on events (core group, for Settings.EventSource), and
// get, update, delete (and, with watch, watch) only on name. kube-apiserver authorizes a watch whose fieldSelector is
// metadata.name=<name> as a watch of that name, so the rule covers the
// library's standby watch.
func ByNameRules(name string, watch bool) []PolicyRule {
	verbs := []string{"get", "update", "delete"}
	if watch {
		verbs = append(verbs, "watch")
	}
	return []PolicyRule{
		{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"}, Verbs: []string{"create"}},
		{APIGroups: []string{""}, Resources: []string{"events"}, Verbs: []string{"create"}},
		{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"}, ResourceNames: []string{name}, Verbs: verbs},
	}
}

// Namespace is where the limited user's Role applies.
const Namespace = "default"

// Timeouts.
var (
	// ReadyTimeout bounds the wait for /readyz after a (re)start.
	ReadyTimeout = 90 * time.Second
	// StopGrace is how long Stop waits after SIGTERM before SIGKILL.
	StopGrace = 10 * time.Second
)

// Cluster is a running kube-apiserver with its etcd.
type Cluster struct {
	// URL is the API server's base URL, https://127.0.0.1:<port>.
	URL string
	// Dir is the cluster's temporary directory (keys, certs, logs, etcd data).
	Dir string

	bin     string
	port    int
	etcd    *etcd
	logPath string
	caData  []byte
	client  *http.Client

	opts Options

	mu      sync.Mutex
	cmd     *exec.Cmd
	exited  chan struct{} // closed when cmd has been waited for
	stopped bool
	// Ready is how long the last (re)start took until /readyz said ok.
	ready time.Duration
}

// Start builds (if needed) and starts a cluster for t, and stops it in
// t.Cleanup. On failure it logs the tail of the API server's log.
func Start(t testing.TB) *Cluster {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Minute)
	defer cancel()
	bin, err := Binary(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c, err := New(ctx, bin, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("kube-apiserver log tail:\n%s", c.LogTail(30))
		}
		c.Stop()
	})
	return c
}

// New starts etcd and the kube-apiserver bin with their files under dir,
// waits until the server is ready, and sets up RBAC. Call Stop when done.
// The error of a failed start includes the tail of the server's log.
func New(ctx context.Context, bin, dir string) (_ *Cluster, err error) {
	return NewWithOptions(ctx, bin, dir, Options{})
}

// Options configure NewWithOptions and StartWithOptions. The zero value is
// what New and Start do.
type Options struct {
	// ExtraArgs are appended to kube-apiserver's command line (for a flag
	// given twice, the later one wins).
	ExtraArgs []string
	// Shedding, when set, makes the server shed load from the users "shed"
	// and "load"; see Shedding.
	Shedding *Shedding
}

// StartWithOptions is Start with opts.
func StartWithOptions(t testing.TB, opts Options) *Cluster {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Minute)
	defer cancel()
	bin, err := Binary(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c, err := NewWithOptions(ctx, bin, t.TempDir(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("kube-apiserver log tail:\n%s", c.LogTail(30))
		}
		c.Stop()
	})
	return c
}

// NewWithOptions is New with opts.
func NewWithOptions(ctx context.Context, bin, dir string, opts Options) (_ *Cluster, err error) {
	c := &Cluster{Dir: dir, bin: bin, logPath: filepath.Join(dir, "kube-apiserver.log"), opts: opts}
	defer func() {
		if err != nil {
			c.Stop()
		}
	}()
	if err := c.writeFiles(); err != nil {
		return nil, err
	}
	if c.etcd, err = startEtcd(dir); err != nil {
		return nil, err
	}
	for attempt := 0; ; attempt++ {
		ports, err := freePorts(1)
		if err != nil {
			return nil, err
		}
		c.port = ports[0]
		c.URL = "https://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(c.port))
		err = c.startAPIServer(ctx)
		if err == nil {
			break
		}
		// A port taken between freePorts and the server's bind: try another.
		if attempt < 3 && strings.Contains(c.LogTail(20), "address already in use") {
			continue
		}
		return nil, err
	}
	if err := c.loadCA(); err != nil {
		return nil, err
	}
	if err := c.setupRBAC(ctx); err != nil {
		return nil, fmt.Errorf("%w\nkube-apiserver log tail:\n%s", err, c.LogTail(30))
	}
	if c.opts.Shedding != nil {
		if err := c.setupShedding(ctx); err != nil {
			return nil, fmt.Errorf("%w\nkube-apiserver log tail:\n%s", err, c.LogTail(30))
		}
	}
	return c, nil
}

func (c *Cluster) path(name string) string { return filepath.Join(c.Dir, name) }

// writeFiles writes the service-account key pair and the token file.
func (c *Cluster) writeFiles() error {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return err
	}
	files := map[string][]byte{
		"sa.key": pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}),
		"sa.pub": pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}),
		"tokens.csv": []byte(AdminToken + ",admin,uid-admin,system:masters\n" +
			LimitedToken + ",limited,uid-limited\n" +
			NoLeaseToken + ",nolease,uid-nolease\n" +
			ByNameToken + ",byname,uid-byname\n" +
			ByNameNoWatchToken + ",byname-nowatch,uid-byname-nowatch\n" +
			ShedToken + ",shed,uid-shed\n" +
			LoadToken + ",load,uid-load\n"),
	}
	if err := os.MkdirAll(c.path("certs"), 0o700); err != nil {
		return err
	}
	for name, data := range files {
		if err := os.WriteFile(c.path(name), data, 0o600); err != nil {
			return err
		}
	}
	return nil
}

func (c *Cluster) args() []string {
	args := c.baseArgs()
	if s := c.opts.Shedding; s != nil {
		args = append(args, s.args()...)
	}
	return append(args, c.opts.ExtraArgs...)
}

func (c *Cluster) baseArgs() []string {
	return []string{
		"--etcd-servers=" + c.etcd.clientURL,
		"--cert-dir=" + c.path("certs"),
		"--secure-port=" + strconv.Itoa(c.port),
		"--bind-address=127.0.0.1",
		"--service-account-issuer=https://kubernetes.default.svc",
		"--service-account-key-file=" + c.path("sa.pub"),
		"--service-account-signing-key-file=" + c.path("sa.key"),
		"--token-auth-file=" + c.path("tokens.csv"),
		"--authorization-mode=RBAC",
		"--service-cluster-ip-range=10.0.0.0/24",
		"--v=0",
		"--profiling=false",
	}
}

// startAPIServer starts the process and waits for /readyz.
func (c *Cluster) startAPIServer(ctx context.Context) error {
	logf, err := os.OpenFile(c.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	fmt.Fprintf(logf, "\n==== %s: starting kube-apiserver on port %d\n", time.Now().Format(time.RFC3339Nano), c.port)
	cmd := exec.Command(c.bin, c.args()...)
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.Dir = c.Dir
	start := time.Now()
	err = StartProcess(cmd)
	logf.Close() // the child has its own copy
	if err != nil {
		return fmt.Errorf("cluster: start kube-apiserver: %w", err)
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		close(exited)
	}()
	c.mu.Lock()
	c.cmd, c.exited = cmd, exited
	c.mu.Unlock()

	if err := c.waitReady(ctx, exited); err != nil {
		c.StopAPIServer()
		return fmt.Errorf("%w\nkube-apiserver log tail (%s):\n%s", err, c.logPath, c.LogTail(30))
	}
	c.mu.Lock()
	c.ready = time.Since(start)
	c.mu.Unlock()
	return nil
}

// waitReady polls /readyz with the admin token until it answers 200.
func (c *Cluster) waitReady(ctx context.Context, exited <-chan struct{}) error {
	// The serving certificate may not exist yet: skip verification here
	// (loadCA pins it afterwards).
	probe := &http.Client{
		Timeout:   2 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}},
	}
	defer probe.CloseIdleConnections()
	deadline := time.Now().Add(ReadyTimeout)
	var last string
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, c.URL+"/readyz", nil)
		req.Header.Set("Authorization", "Bearer "+AdminToken)
		resp, err := probe.Do(req)
		if err == nil {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = fmt.Sprintf("%d %s", resp.StatusCode, tail(string(body), 5))
		} else {
			last = err.Error()
		}
		select {
		case <-exited:
			return fmt.Errorf("cluster: kube-apiserver exited before it was ready (%s)", c.exitStatus())
		case <-ctx.Done():
			return fmt.Errorf("cluster: waiting for /readyz: %w (last answer: %s)", ctx.Err(), last)
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("cluster: kube-apiserver not ready after %v (last answer: %s)", ReadyTimeout, last)
		}
	}
}

func (c *Cluster) exitStatus() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cmd != nil && c.cmd.ProcessState != nil {
		return c.cmd.ProcessState.String()
	}
	return "unknown status"
}

// loadCA reads the self-signed serving certificate the server wrote into
// its cert dir (leaf first, then its CA) and builds the pinned HTTP client.
func (c *Cluster) loadCA() error {
	data, err := os.ReadFile(c.path("certs/apiserver.crt"))
	if err != nil {
		return fmt.Errorf("cluster: serving certificate: %w", err)
	}
	var ca []byte
	for rest := data; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if cert, err := x509.ParseCertificate(block.Bytes); err == nil && cert.IsCA {
			ca = pem.EncodeToMemory(block)
		}
	}
	if ca == nil {
		ca = data // no separate CA: trust the serving certificate itself
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		return errors.New("cluster: no certificate in certs/apiserver.crt")
	}
	c.caData = ca
	// No Client.Timeout: the library may use this client for watches.
	c.client = &http.Client{
		Transport: &http.Transport{
			TLSClientConfig:   &tls.Config{RootCAs: pool},
			ForceAttemptHTTP2: true,
		},
	}
	return nil
}

// CAData is the PEM of the CA that signed the serving certificate.
func (c *Cluster) CAData() []byte { return bytes.Clone(c.caData) }

// HTTPClient returns an HTTP client that trusts the server's certificate,
// for raw requests (add an Authorization header yourself, or use Do).
func (c *Cluster) HTTPClient() *http.Client { return c.client }

// NewTransport returns a new transport (its own connection pool) that
// trusts the server's certificate and, like the library's own, speaks
// HTTP/2 and pings an idle connection after pingEvery, dropping it when no
// answer comes within pingTimeout. Tests wrap it (to count requests) and
// pass it as Config.HTTPClient, which turns the library's transport off.
func (c *Cluster) NewTransport(pingEvery, pingTimeout time.Duration) *http.Transport {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(c.caData)
	return &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: pool},
		TLSHandshakeTimeout: 10 * time.Second,
		IdleConnTimeout:     90 * time.Second,
		ForceAttemptHTTP2:   true,
		HTTP2:               &http.HTTP2Config{SendPingTimeout: pingEvery, PingTimeout: pingTimeout},
	}
}

// AdminConfig is a Config for the system:masters user.
func (c *Cluster) AdminConfig() *lease.Config { return c.Config(AdminToken) }

// Config is a Config for the user with token. It has no HTTPClient, so the
// library builds its own transport (with its HTTP/2 pings).
func (c *Cluster) Config(token string) *lease.Config {
	return &lease.Config{Host: c.URL, BearerToken: token, CAData: c.CAData(), Namespace: Namespace}
}

// Do sends a raw request with token's Authorization and, for a non-nil body,
// a JSON encoding of it. It returns the status code and the body.
func (c *Cluster) Do(ctx context.Context, token, method, path string, body any) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			return 0, nil, err
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.URL+path, rd)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	return resp.StatusCode, data, err
}

// setupRBAC creates the Roles and RoleBindings of the limited and the
// resourceNames-restricted users, then waits until the authorizer applies
// them and the "default" namespace exists.
func (c *Cluster) setupRBAC(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, ReadyTimeout)
	defer cancel()
	const rbac = "/apis/rbac.authorization.k8s.io/v1/namespaces/" + Namespace
	role := func(name string, rules any) map[string]any {
		return map[string]any{
			"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
			"metadata": map[string]any{"name": name},
			"rules":    rules,
		}
	}
	binding := func(roleName, user string) map[string]any {
		return map[string]any{
			"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
			"metadata": map[string]any{"name": roleName + "-" + user},
			"roleRef":  map[string]any{"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": roleName},
			"subjects": []any{map[string]any{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}},
		}
	}
	objects := []struct {
		path string
		obj  map[string]any
	}{
		{rbac + "/roles", role("lease-no-delete", []PolicyRule{{
			APIGroups: []string{"coordination.k8s.io"},
			Resources: []string{"leases"},
			Verbs:     []string{"get", "list", "watch", "create", "update", "patch"},
		}})},
		{rbac + "/rolebindings", binding("lease-no-delete", "limited")},
		{rbac + "/roles", role("lease-by-name", ByNameRules(ByNameLease, true))},
		{rbac + "/rolebindings", binding("lease-by-name", "byname")},
		{rbac + "/roles", role("lease-by-name-no-watch", ByNameRules(ByNameNoWatchLease, false))},
		{rbac + "/rolebindings", binding("lease-by-name-no-watch", "byname-nowatch")},
		{rbac + "/roles", role("lease-all", []PolicyRule{{
			APIGroups: []string{"coordination.k8s.io"},
			Resources: []string{"leases"},
			Verbs:     []string{"*"},
		}})},
		{rbac + "/rolebindings", binding("lease-all", "shed")},
		{rbac + "/rolebindings", binding("lease-all", "load")},
	}
	// The "default" namespace is created by a controller shortly after the
	// server is ready; a POST into it fails with 404 until then.
	if err := c.poll(ctx, "namespace default", func() (bool, string) {
		code, body, err := c.Do(ctx, AdminToken, http.MethodGet, "/api/v1/namespaces/"+Namespace, nil)
		return err == nil && code == http.StatusOK, fmt.Sprint(code, " ", err, " ", snippet(body))
	}); err != nil {
		return err
	}
	for _, o := range objects {
		code, body, err := c.Do(ctx, AdminToken, http.MethodPost, o.path, o.obj)
		if err != nil {
			return fmt.Errorf("cluster: POST %s: %w", o.path, err)
		}
		if code != http.StatusCreated && code != http.StatusConflict {
			return fmt.Errorf("cluster: POST %s: %d %s", o.path, code, snippet(body))
		}
	}
	// RBAC is served from an informer cache: wait until it lets each user
	// read a Lease it may read (a 404 for a Lease that does not exist, not
	// a 403).
	for _, probe := range []struct{ user, token, lease string }{
		{"limited", LimitedToken, "rbac-probe"},
		{"byname", ByNameToken, ByNameLease},
		{"byname-nowatch", ByNameNoWatchToken, ByNameNoWatchLease},
		{"shed", ShedToken, "rbac-probe"},
		{"load", LoadToken, "rbac-probe"},
	} {
		if err := c.poll(ctx, "RBAC for user "+probe.user, func() (bool, string) {
			code, body, err := c.Do(ctx, probe.token, http.MethodGet, "/apis/coordination.k8s.io/v1/namespaces/"+Namespace+"/leases/"+probe.lease, nil)
			return err == nil && code == http.StatusNotFound, fmt.Sprint(code, " ", err, " ", snippet(body))
		}); err != nil {
			return err
		}
	}
	return nil
}

func (c *Cluster) poll(ctx context.Context, what string, ok func() (bool, string)) error {
	var last string
	for {
		var done bool
		if done, last = ok(); done {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("cluster: waiting for %s: %w (last: %s)", what, ctx.Err(), last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func snippet(b []byte) string {
	if len(b) > 300 {
		b = b[:300]
	}
	return string(b)
}

// PID is the process id of the running kube-apiserver, 0 if none.
func (c *Cluster) PID() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cmd == nil || c.cmd.Process == nil {
		return 0
	}
	select {
	case <-c.exited:
		return 0
	default:
		return c.cmd.Process.Pid
	}
}

// ReadyAfter is how long the last (re)start of kube-apiserver took until
// /readyz answered 200.
func (c *Cluster) ReadyAfter() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ready
}

func (c *Cluster) signal(sig syscall.Signal) error {
	pid := c.PID()
	if pid == 0 {
		return errors.New("cluster: kube-apiserver is not running")
	}
	return syscall.Kill(pid, sig)
}

// Freeze stops the kube-apiserver process with SIGSTOP: connections stay
// open, nothing is answered.
func (c *Cluster) Freeze() error { return c.signal(syscall.SIGSTOP) }

// Thaw resumes a frozen kube-apiserver with SIGCONT.
func (c *Cluster) Thaw() error { return c.signal(syscall.SIGCONT) }

// StopAPIServer stops kube-apiserver (etcd keeps running): SIGCONT in case
// it is frozen, SIGTERM, then SIGKILL after StopGrace.
func (c *Cluster) StopAPIServer() {
	c.mu.Lock()
	cmd, exited := c.cmd, c.exited
	c.mu.Unlock()
	if cmd == nil || cmd.Process == nil {
		return
	}
	select {
	case <-exited:
		return
	default:
	}
	pid := cmd.Process.Pid
	syscall.Kill(pid, syscall.SIGCONT)
	syscall.Kill(pid, syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(StopGrace):
		syscall.Kill(-pid, syscall.SIGKILL) // its whole process group
		syscall.Kill(pid, syscall.SIGKILL)
		<-exited
	}
}

// StartAPIServer starts kube-apiserver again on the same port, etcd, keys
// and certificates, and waits until it is ready.
func (c *Cluster) StartAPIServer(ctx context.Context) error {
	if c.PID() != 0 {
		return errors.New("cluster: kube-apiserver is already running")
	}
	return c.startAPIServer(ctx)
}

// Restart stops and starts kube-apiserver (same port, same etcd), failing t
// if it does not come back. It returns how long the server was unreachable.
func (c *Cluster) Restart(t testing.TB) time.Duration {
	t.Helper()
	start := time.Now()
	c.StopAPIServer()
	ctx, cancel := context.WithTimeout(context.Background(), ReadyTimeout+StopGrace)
	defer cancel()
	if err := c.StartAPIServer(ctx); err != nil {
		t.Fatalf("restart: %v", err)
	}
	return time.Since(start)
}

// Stop stops kube-apiserver and etcd. It is idempotent. The directory is
// left for the caller (t.TempDir removes it).
func (c *Cluster) Stop() {
	c.mu.Lock()
	if c.stopped {
		c.mu.Unlock()
		return
	}
	c.stopped = true
	c.mu.Unlock()
	c.StopAPIServer()
	c.etcd.stop()
	if c.client != nil {
		c.client.CloseIdleConnections()
	}
}

// LogTail returns the last n lines of the kube-apiserver log.
func (c *Cluster) LogTail(n int) string {
	data, err := os.ReadFile(c.logPath)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	return tail(string(data), n)
}

// LogPath is the kube-apiserver log file.
func (c *Cluster) LogPath() string { return c.logPath }

// Kubeconfig writes a kubeconfig for the user with token to path: the
// server with its CA, and a context whose namespace is Namespace.
func (c *Cluster) Kubeconfig(path, token string) error {
	cfg := map[string]any{
		"apiVersion":      "v1",
		"kind":            "Config",
		"current-context": "e2e",
		"clusters": []any{map[string]any{"name": "e2e", "cluster": map[string]any{
			"server":                     c.URL,
			"certificate-authority-data": c.caData, // []byte: base64 in JSON, as kubeconfig wants
		}}},
		"users":    []any{map[string]any{"name": "e2e", "user": map[string]any{"token": token}}},
		"contexts": []any{map[string]any{"name": "e2e", "context": map[string]any{"cluster": "e2e", "user": "e2e", "namespace": Namespace}}},
	}
	data, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, data, 0o600)
}
